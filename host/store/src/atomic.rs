//! Atomic file writes: a reader sees the old content or the new, never a mix (upstream's
//! `store.go`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Writes `data` to `path` through a temp file in the same directory and a rename; mode
/// 0600. With `durable`, the data and the directory are fsynced (volatile files skip it,
/// as upstream does, because they are meant to vanish on a crash anyway).
pub fn write_file(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let point =
        |step: &str| crate::crash_point::crash_point_with(|| format!("atomic-write:{name}:{step}"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        if durable {
            file.sync_all()?;
        }
        point("before-rename");
        std::fs::rename(&tmp, path)?;
        point("after-rename");
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        // The write's error is the one to report; a temp file that stays is only garbage
        // (no reader opens it). After a successful rename there is none to remove.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                log::debug!("removing {}: {e}", tmp.display());
            }
            _ => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_file_with_mode_0600_and_no_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/x.json");
        assert!(!path.exists());
        write_file(&path, b"[1]", true).expect("write");
        write_file(&path, b"[2,3]", false).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"[2,3]");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let entries = std::fs::read_dir(path.parent().expect("parent"))
            .expect("ls")
            .count();
        assert_eq!(entries, 1, "temp files left behind");
    }
}
