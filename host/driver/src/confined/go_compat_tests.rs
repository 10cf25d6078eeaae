//! Our tar of a tree against the Go implementation's, byte for byte.

#![allow(clippy::unwrap_used)]

use super::trees::ReadDir;
use super::*;
use crate::idmap::IdMappings;
use std::process::Command;
use storage_archive::fs::{FsWrite, Timestamp};

/// Runs the Go CLI on a private vfs store; `None` when it is not installed.
fn go_cli(root: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("containers-storage")
        .arg("--graph")
        .arg(root.join("g"))
        .arg("--run")
        .arg(root.join("r"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .ok()?;
    assert!(out.status.success(), "{args:?}: {:?}", out);
    Some(out.stdout)
}

/// Our tar of a whole tree is byte-identical to what the Go implementation's naive diff
/// of the same vfs layer writes.
#[test]
fn tree_tar_matches_go_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(created) = go_cli(tmp.path(), &["create-layer"]) else {
        return; // the Go CLI is not installed here
    };
    let id = String::from_utf8(created).unwrap();
    let id = id.split_whitespace().last().unwrap().to_string();
    let dir = tmp.path().join("g/vfs/dir").join(&id);
    let mut fs: ReadDir<'_> = ConfinedDir::open(&dir).unwrap();
    let mut input: &[u8] = b"hello\n";
    let long = format!("{}/{}", "l".repeat(120), "f".repeat(60));
    let very_long = "v".repeat(180);
    fs.mkdir(b"sub", 0o750).unwrap();
    fs.mkdir("l".repeat(120).as_bytes(), 0o755).unwrap();
    for name in [&b"file"[..], long.as_bytes(), very_long.as_bytes()] {
        let mut input: &[u8] = b"data";
        fs.write_file_from_input(name, 0o644, 4, &mut input)
            .unwrap();
    }
    fs.write_file_from_input(b"sub/x", 0o4755, 6, &mut input)
        .unwrap();
    fs.set_xattr(b"file", "user.k", b"v").unwrap();
    fs.hardlink(b"file", b"hard").unwrap();
    fs.symlink(b"file", b"link").unwrap();
    fs.mkfifo(b"fifo", 0o600).unwrap();
    let t = Timestamp {
        secs: 1_600_000_000,
        nanos: 700_000_000,
    };
    for p in [&b"file"[..], b"sub/x", b"link", b"fifo", b"sub"] {
        fs.set_times(p, t, t).unwrap();
    }
    let go_tar = go_cli(tmp.path(), &["diff", &id]).unwrap();
    let mut ours = Vec::new();
    write_tar(&dir, &mut ours, &diff_options(&IdMappings::default())).unwrap();
    assert!(go_tar == ours, "tar bytes differ from Go's");
}
