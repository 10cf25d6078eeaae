//! Lexical path handling for archive entries: the only place names from an archive become paths
//! handed to the filesystem interface.

use crate::error::ArchiveError;

/// Cleans an entry name into a relative `/`-separated path (empty = the root): `.` and empty
/// components dropped, `..` applied lexically. A name that is absolute, or whose `..` climbs above
/// the root, is [`ArchiveError::PathEscape`].
pub fn clean_entry_path(name: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    if name.starts_with(b"/") {
        return Err(escape(name));
    }
    clean_below(&[], name).ok_or_else(|| escape(name))
}

/// Lexically resolves `rel` against the directory `base` (a cleaned path); `None` if it climbs
/// above the root.
pub fn clean_below(base: &[u8], rel: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = base
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for component in rel.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join(&b'/'))
}

/// The parent of a cleaned path (the root's parent is the root).
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// The last component of a cleaned path.
pub fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `dir/name` for a cleaned `dir` (the root is empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
        out.extend_from_slice(dir);
        out.push(b'/');
        out.extend_from_slice(name);
        out
    }
}

/// Lossy text of a path for error messages.
pub fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn escape(name: &[u8]) -> ArchiveError {
    ArchiveError::PathEscape(display(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean_entry_path(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(clean_entry_path(b"a/../b").unwrap(), b"b");
        assert_eq!(clean_entry_path(b"./").unwrap(), b"");
        assert!(clean_entry_path(b"../x").is_err());
        assert!(clean_entry_path(b"a/../../x").is_err());
        assert!(clean_entry_path(b"/etc/passwd").is_err());
        assert_eq!(clean_below(b"a/b", b"../c").unwrap(), b"a/c");
        assert!(clean_below(b"a", b"../../c").is_none());
    }

    #[test]
    fn components() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
        assert_eq!(base_name(b"a/b/c"), b"c");
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a", b"x"), b"a/x");
    }
}
