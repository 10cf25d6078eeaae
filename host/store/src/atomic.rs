//! Atomic file writes by path: a reader sees the old content or the new, never a mix
//! (upstream's `store.go`). [`StoreDir::write_atomic`] does the work under the parent's
//! handle.
//!
//! [`StoreDir::write_atomic`]: crate::store_dir::StoreDir::write_atomic

use std::io;
use std::path::Path;

use crate::store_dir::DirFile;

/// Writes `data` to `path` through a temp file in the same directory (created with its
/// parents, 0700, if missing) and a rename; mode 0600. With `durable`, the data and the
/// directory are flushed (see [`StoreDir::write_atomic`](crate::store_dir::StoreDir::write_atomic)).
pub fn write_file(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let file = DirFile::create_at(path)?;
    file.dir().write_atomic(file.name(), data, durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_a_created_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/x.json");
        write_file(&path, b"[1]", true).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"[1]");
    }
}
