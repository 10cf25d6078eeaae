//! What a component may import. Checked at load time, before anything runs, so a component
//! asking for the host's filesystem or network is refused with a message naming the import
//! instead of failing obscurely at instantiation. What the allowed WASI imports do is
//! [`crate::wasi`]'s.

use super::error::ComponentError;

/// Import prefixes never granted: the guest works only on directories and streams lent per
/// call through `storage:plugin`.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "wasi:filesystem",
        "components get no filesystem; they work on directories the host lends",
    ),
    ("wasi:sockets", "components get no network"),
    ("wasi:http", "components get no network"),
];

/// The package whose version must match the host's.
const PACKAGE: &str = "storage:plugin/";

/// Checks the names of a component's imports; `Ok` when every one is allowed. Of the other
/// WASI imports Rust's std pulls in, the host implements what ordinary code needs and grants
/// nothing of the host by ([`crate::wasi`]: random numbers, the wall clock, stderr and stdout
/// kept for error messages, an empty environment); the rest (`wasi:cli/stdin`,
/// `wasi:cli/exit`, `wasi:clocks/monotonic-clock`, `wasi:io/poll`, ...) is linked as functions
/// that trap, and a guest that calls one stops with an error naming the import.
pub fn check_imports<'a>(
    name: &str,
    imports: impl IntoIterator<Item = &'a str>,
) -> Result<(), ComponentError> {
    let (_, host_version) = super::WIT_PACKAGE
        .split_once('@')
        .unwrap_or((super::WIT_PACKAGE, ""));
    for import in imports {
        for (prefix, why) in FORBIDDEN {
            if import.starts_with(prefix) {
                return Err(ComponentError::Refused {
                    name: name.to_string(),
                    import: import.to_string(),
                    why: (*why).to_string(),
                });
            }
        }
        if let Some(rest) = import.strip_prefix(PACKAGE) {
            let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
            if version != host_version {
                return Err(ComponentError::Refused {
                    name: name.to_string(),
                    import: import.to_string(),
                    why: format!(
                        "built against WIT version {}, this host implements {}",
                        if version.is_empty() {
                            "(none)"
                        } else {
                            version
                        },
                        super::WIT_PACKAGE
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_plugin_package_and_harmless_wasi() {
        let imports = [
            "storage:plugin/types@0.3.0",
            "storage:plugin/filesystem@0.3.0",
            "wasi:cli/stderr@0.2.6",
            "wasi:random/random@0.2.6",
        ];
        assert!(check_imports("ok", imports).is_ok());
    }

    #[test]
    fn refuses_filesystem_and_sockets_naming_the_import() {
        for import in ["wasi:filesystem/preopens@0.2.6", "wasi:sockets/tcp@0.2.0"] {
            let err = check_imports("bad", ["storage:plugin/types@0.3.0", import])
                .expect_err("must refuse");
            let message = err.to_string();
            assert!(message.contains(import), "{message}");
            assert!(message.contains("component bad refused"), "{message}");
        }
    }

    #[test]
    fn refuses_another_wit_version() {
        let err = check_imports("old", ["storage:plugin/filesystem@0.0.9"]).expect_err("refuse");
        let message = err.to_string();
        assert!(message.contains("WIT version 0.0.9"), "{message}");
        assert!(message.contains("storage:plugin@0.3.0"), "{message}");
    }
}
