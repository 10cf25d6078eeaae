//! The vfs driver's options (`--storage-opt`), as upstream's `vfs` driver parses them.

/// What the options say; the image stores themselves are the host's business (the host answers
/// `additional_image_stores` from the same options), the driver only accepts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VfsOptions {
    /// Directories of additional (read-only) image stores.
    pub image_stores: Vec<String>,
    /// Ignore failures to change owners when applying layers.
    pub ignore_chown_errors: bool,
}

/// Parses `key=value` options; an unknown key is an error worded like upstream's.
pub fn parse(options: &[String]) -> Result<VfsOptions, String> {
    let mut parsed = VfsOptions::default();
    for option in options {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| format!("unable to parse key/value option: {option}"))?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "vfs.imagestore" | ".imagestore" => parsed.image_stores.extend(
                value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "vfs.ignore_chown_errors" | ".ignore_chown_errors" => {
                parsed.ignore_chown_errors = parse_bool(value).ok_or_else(|| {
                    format!("strconv.ParseBool: parsing {value:?}: invalid syntax")
                })?
            }
            // Upstream names this one apart (`mountopt` of a configuration file lands here).
            "vfs.mountopt" => return Err("vfs driver does not support mount options".into()),
            _ => return Err(format!("vfs driver does not support {key} options")),
        }
    }
    Ok(parsed)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
