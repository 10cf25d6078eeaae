//! Flag declarations in the shape of docker's `mflag` (which upstream's CLI uses): every flag
//! has one or more long spellings (`--bzip2`, `--bz2`), at most one short letter, and is a
//! boolean, a single value (last use wins) or a list (each use appends).

use std::collections::BTreeMap;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--x`, `--x=true`, `--x=false`; never takes the next argument as its value.
    Bool,
    /// `--x v` or `--x=v`; the last use wins.
    Value,
    /// Like `Value`, but every use appends.
    List,
}

/// One flag of a command (or of every command, for the global flags).
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Long spellings without dashes; the first one is the flag's key.
    pub long: &'static [&'static str],
    /// The short letter, if any.
    pub short: Option<char>,
    /// What it takes.
    pub kind: FlagKind,
    /// One line of help.
    pub help: &'static str,
    /// The value a value flag has when it is not given, where that is not empty (shown in the
    /// man pages and, as upstream's flag list shows it, after `=`; the action applies it).
    pub default: Option<&'static str>,
    /// How many of `long` upstream's flag list shows: spellings after them are ours (accepted
    /// and in the man pages, left out of the list so that it reads as upstream's).
    pub listed: usize,
}

impl FlagSpec {
    /// The key the flag's values are stored under: its first long spelling.
    pub fn key(&self) -> &'static str {
        self.long[0]
    }

    /// The same flag with a default value (see [`FlagSpec::default`]).
    pub const fn with_default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    /// The same flag with another line of help (upstream words a shared flag per command:
    /// `--id` is "Layer ID" for create-layer, "Image ID" for create-image).
    pub const fn with_help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }

    /// The same flag with only its first `count` long spellings in the flag list (see
    /// [`FlagSpec::listed`]).
    pub const fn listing_only(mut self, count: usize) -> Self {
        self.listed = count;
        self
    }

    /// The long spellings the flag list shows.
    pub fn listed_long(&self) -> &'static [&'static str] {
        &self.long[..self.listed.min(self.long.len())]
    }

    /// Whether `token` (a flag name with its dashes, without `=value`) names this flag.
    pub fn is_spelled(&self, token: &str) -> bool {
        if let Some(long) = token.strip_prefix("--") {
            return self.long.contains(&long);
        }
        match (token.strip_prefix('-'), self.short) {
            (Some(s), Some(c)) => s.len() == c.len_utf8() && s.starts_with(c),
            _ => false,
        }
    }
}

/// Declares a flag (a `const` constructor for the flag tables).
pub const fn flag(
    long: &'static [&'static str],
    short: Option<char>,
    kind: FlagKind,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        long,
        short,
        kind,
        help,
        default: None,
        listed: usize::MAX,
    }
}

/// The flags every command accepts, before or after its name (upstream re-registers them
/// in each command's flag set).
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    flag(
        &["run"],
        Some('R'),
        FlagKind::Value,
        "Root of the runtime state tree",
    ),
    flag(
        &["graph"],
        Some('g'),
        FlagKind::Value,
        "Root of the storage tree",
    ),
    // `--driver` is ours.
    flag(
        &["storage-driver", "driver"],
        Some('s'),
        FlagKind::Value,
        "Storage driver to use ($STORAGE_DRIVER)",
    )
    .listing_only(1),
    flag(
        &["storage-opt"],
        None,
        FlagKind::List,
        "Set storage driver options ($STORAGE_OPTS)",
    ),
    flag(
        &["image-store"],
        None,
        FlagKind::Value,
        "Root of the separate image store",
    ),
    flag(
        &["transient-store"],
        None,
        FlagKind::Bool,
        "Transient store",
    ),
    flag(
        &["debug"],
        Some('D'),
        FlagKind::Bool,
        "Print debugging information",
    ),
    // The flag list says what the default is for the user running it (see
    // `usage::flag_defaults`).
    flag(
        &["unshare"],
        Some('U'),
        FlagKind::Bool,
        "Run in a user namespace",
    ),
];

/// `-j/--json`.
pub const JSON: FlagSpec = flag(&["json"], Some('j'), FlagKind::Bool, "Prefer JSON output");
/// `-n/--name`, repeatable.
pub const NAME: FlagSpec = flag(&["name"], Some('n'), FlagKind::List, "Name");
/// `-i/--id`.
pub const ID: FlagSpec = flag(&["id"], Some('i'), FlagKind::Value, "ID");
/// `-l/--label`.
pub const LABEL: FlagSpec = flag(&["label"], Some('l'), FlagKind::Value, "Mount Label");
/// `-m/--metadata`.
pub const METADATA: FlagSpec = flag(&["metadata"], Some('m'), FlagKind::Value, "Metadata");
/// `-f/--metadata-file`.
pub const METADATA_FILE: FlagSpec = flag(
    &["metadata-file"],
    Some('f'),
    FlagKind::Value,
    "Metadata File",
);
/// `-f/--file` of commands that read or write data.
pub const FILE: FlagSpec = flag(&["file"], Some('f'), FlagKind::Value, "Data file");
/// `-q/--quiet`.
pub const QUIET: FlagSpec = flag(&["quiet"], Some('q'), FlagKind::Bool, "Only print IDs");
/// `-f/--force`.
pub const FORCE: FlagSpec = flag(&["force"], Some('f'), FlagKind::Bool, "Force the operation");

/// The ID-mapping flags of create-layer, create-storage-layer, import-layer and
/// create-container.
pub const ID_MAP_FLAGS: [FlagSpec; 6] = [
    flag(&["hostuidmap"], None, FlagKind::Bool, "Force host UID map"),
    flag(&["hostgidmap"], None, FlagKind::Bool, "Force host GID map"),
    flag(&["uidmap"], None, FlagKind::Value, "UID map"),
    flag(&["gidmap"], None, FlagKind::Value, "GID map"),
    flag(
        &["subuidmap"],
        None,
        FlagKind::Value,
        "subuid UID map for a user",
    ),
    flag(
        &["subgidmap"],
        None,
        FlagKind::Value,
        "subgid GID map for a group",
    ),
];

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The values given for the flags of one invocation, by flag key, in command-line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagValues {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl FlagValues {
    /// Records one use of flag `key` (booleans are recorded as their validated value).
    pub fn push(&mut self, key: &'static str, value: String) {
        self.values.entry(key).or_default().push(value);
    }

    /// Appends every value of `other` after the ones already recorded.
    pub fn extend(&mut self, other: FlagValues) {
        for (key, values) in other.values {
            self.values.entry(key).or_default().extend(values);
        }
    }

    /// Whether the flag was given at all.
    pub fn given(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| !v.is_empty())
    }

    /// A boolean flag: its last value, false when never given.
    pub fn bool(&self, key: &str) -> bool {
        self.value(key).and_then(parse_go_bool).unwrap_or(false)
    }

    /// A value flag: its last value.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A value flag: its last value, or the empty string.
    pub fn value_or_empty(&self, key: &str) -> &str {
        self.value(key).unwrap_or("")
    }

    /// A list flag: every value in order.
    pub fn list(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_accepts_strconv_spellings_only() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_go_bool("yes"), None);
        assert_eq!(parse_go_bool("tRuE"), None);
    }

    #[test]
    fn values_last_wins_and_lists_append() {
        let mut v = FlagValues::default();
        v.push("graph", "/a".into());
        v.push("graph", "/b".into());
        v.push("name", "x".into());
        let mut later = FlagValues::default();
        later.push("name", "y".into());
        later.push("debug", "false".into());
        v.extend(later);
        assert_eq!(v.value("graph"), Some("/b"));
        assert_eq!(v.list("name"), ["x", "y"]);
        assert!(!v.bool("debug"));
        assert!(v.given("debug"));
        assert!(!v.given("run"));
    }

    #[test]
    fn spellings() {
        let bz = flag(&["bzip2", "bz2"], Some('b'), FlagKind::Bool, "");
        assert!(bz.is_spelled("--bzip2"));
        assert!(bz.is_spelled("--bz2"));
        assert!(bz.is_spelled("-b"));
        assert!(!bz.is_spelled("-bz2"));
        assert!(!bz.is_spelled("--b"));
    }
}
