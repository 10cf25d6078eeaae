//! Applying a layer through a confined tree whose privileged calls go to the recording
//! double: which owners (through the layer's ID mapping), device nodes, whiteouts and xattrs
//! an archive gets. No root needed (CI runs these as an unprivileged user): the double
//! leaves an empty file where a node would be, and makes no chown.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use storage_archive::{ApplyOptions, IdMapping, IdRange, WhiteoutFormat};

use super::*;
use crate::syscalls::{Call, FileType, RecordingSyscalls};

/// security.capability v2: effective, CAP_NET_RAW permitted.
const CAP: [u8; 20] = [0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn header(kind: tar::EntryType, uid: u64, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h
}

/// A device node, a set-user-ID file with a capability, a symlink and a user's file, with
/// overlay whiteouts of a file and of a directory's old content.
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["dev", "bin", "home", "home/user", "etc", "var"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755, 0);
        b.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    let mut h = header(tar::EntryType::Char, 0, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", std::io::empty()).unwrap();
    b.append_pax_extensions([("SCHILY.xattr.security.capability", &CAP[..])])
        .unwrap();
    let mut h = header(tar::EntryType::Regular, 0, 0o4755, 4);
    b.append_data(&mut h, "bin/ping", &b"ping"[..]).unwrap();
    let mut h = header(tar::EntryType::Symlink, 5, 0o777, 0);
    b.append_link(&mut h, "lib", "usr/lib").unwrap();
    let mut h = header(tar::EntryType::Regular, 1000, 0o644, 1);
    b.append_data(&mut h, "home/user/f", &b"f"[..]).unwrap();
    for whiteout in ["etc/.wh.gone", "var/.wh..wh..opq"] {
        let mut h = header(tar::EntryType::Regular, 0, 0o644, 0);
        b.append_data(&mut h, whiteout, std::io::empty()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_layer_is_applied_with_mapped_owners_nodes_whiteouts_and_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = std::fs::canonicalize(tmp.path()).unwrap();
    let sys = Arc::new(RecordingSyscalls::new());
    let mut dir: ConfinedDir<dyn std::io::Read, dyn std::io::Write> = ConfinedDir::open(&layer)
        .unwrap()
        .with_syscalls(sys.clone());
    let shifted = vec![IdRange {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    }];
    let opts = ApplyOptions {
        whiteout_format: WhiteoutFormat::Overlay,
        id_mapping: IdMapping {
            uids: shifted.clone(),
            gids: shifted,
        },
        ..Default::default()
    };
    let tar = layer_tar();
    storage_archive::apply_layer(&mut dir, &mut &tar[..], &opts).unwrap();

    let calls = sys.calls();
    let expect = |call: Call| assert!(calls.contains(&call), "{call:?} in {calls:#?}");
    let at = |p: &str| layer.join(p);
    expect(Call::Mknod {
        path: at("dev/null"),
        kind: FileType::CharacterDevice,
        mode: 0o666,
        dev: rustix::fs::makedev(1, 3),
    });
    expect(Call::Chown {
        path: at("dev/null"),
        uid: Some(100_000),
        gid: Some(100_000),
        follow: false,
    });
    expect(Call::Fchown {
        path: at("bin/ping"),
        uid: Some(100_000),
        gid: Some(100_000),
    });
    expect(Call::SetXattr {
        path: at("bin/ping"),
        name: "security.capability".into(),
        value: CAP.to_vec(),
    });
    expect(Call::Chown {
        path: at("lib"),
        uid: Some(100_005),
        gid: Some(100_005),
        follow: false,
    });
    expect(Call::Fchown {
        path: at("home/user/f"),
        uid: Some(101_000),
        gid: Some(101_000),
    });
    // Overlay whiteouts: a 0:0 character device, and the opaque xattr on the directory.
    expect(Call::Mknod {
        path: at("etc/gone"),
        kind: FileType::CharacterDevice,
        mode: 0,
        dev: 0,
    });
    expect(Call::SetXattr {
        path: at("var"),
        name: "trusted.overlay.opaque".into(),
        value: b"y".to_vec(),
    });
    // The capability goes on after the owner: a chown would clear it.
    let position = |wanted: &Call| calls.iter().position(|c| c == wanted).unwrap();
    assert!(
        position(&Call::Fchown {
            path: at("bin/ping"),
            uid: Some(100_000),
            gid: Some(100_000),
        }) < position(&Call::SetXattr {
            path: at("bin/ping"),
            name: "security.capability".into(),
            value: CAP.to_vec(),
        })
    );
    assert_eq!(std::fs::read(at("bin/ping")).unwrap(), b"ping");
}

#[test]
fn a_refused_chown_fails_the_apply_unless_told_to_ignore_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sys = Arc::new(RecordingSyscalls::new());
    sys.fail_when(
        |c| matches!(c, Call::Chown { .. } | Call::Fchown { .. }),
        libc::EPERM,
    );
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 1000, 0o644, 1);
    tar.append_data(&mut h, "f", &b"f"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let apply = |ignore: bool, dir: &Path| {
        let mut fs: ConfinedDir<dyn std::io::Read, dyn std::io::Write> =
            ConfinedDir::open(dir).unwrap().with_syscalls(sys.clone());
        let opts = ApplyOptions {
            ignore_chown_errors: ignore,
            ..Default::default()
        };
        storage_archive::apply_layer(&mut fs, &mut &tar[..], &opts)
    };
    std::fs::create_dir(tmp.path().join("a")).unwrap();
    std::fs::create_dir(tmp.path().join("b")).unwrap();
    let err = apply(false, &tmp.path().join("a")).unwrap_err();
    assert!(err.to_string().contains("operation not permitted"), "{err}");
    apply(true, &tmp.path().join("b")).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("b/f")).unwrap(), b"f");
}
