//! The archive rules the host enforces for every component, whatever its code says: no
//! overlay attribute but the opaque mark on a directory, and device nodes only where
//! upstream makes them. Each refusal is one `permission-denied` error saying which rule.

use crate::bindings::storage::plugin::types;

/// Whether `name` is one of overlayfs's own attributes (`trusted.overlay.*`, or
/// `user.overlay.*` of a rootless overlay).
fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// A refusal by the host's policy.
fn refused(message: String) -> types::FsError {
    types::FsError {
        kind: types::FsErrorKind::PermissionDenied,
        errno: 0,
        message: format!("refused by the host's policy: {message}"),
    }
}

/// Whether xattr `name` = `value` may be set on `path`; `is_dir` is asked only for an
/// overlay attribute. The one overlay attribute a layer may carry is the opaque mark, `y`,
/// on a directory (the archive logic writes it for `.wh..wh..opq`); any other (redirect,
/// metacopy, origin, ...) would make the kernel's overlay follow what the guest wrote.
pub(super) fn check_xattr(
    path: &[u8],
    name: &str,
    value: &[u8],
    is_dir: impl FnOnce() -> Result<bool, types::FsError>,
) -> Result<(), types::FsError> {
    if !is_overlay_xattr(name) {
        return Ok(());
    }
    if name.ends_with(".overlay.opaque") && value == b"y" && is_dir()? {
        return Ok(());
    }
    let opaque = if name.starts_with("user.") {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    };
    Err(refused(format!(
        "xattr {name} = {:?} on {:?} (only {opaque} = \"y\" on a directory)",
        String::from_utf8_lossy(value),
        String::from_utf8_lossy(path),
    )))
}

/// Whether a device node `major:minor` of `kind` may be made. As upstream's archive code:
/// character and block devices are made by root outside a user namespace (in one, upstream
/// skips them, and the kernel would refuse them); the overlay whiteout, a character device
/// 0:0, the kernel lets anyone make. Fifos are not device nodes (`mkfifo`).
pub(super) fn check_device_node(
    path: &[u8],
    kind: types::FileKind,
    major: u32,
    minor: u32,
    in_user_namespace: bool,
) -> Result<(), types::FsError> {
    let letter = match kind {
        types::FileKind::CharDevice => 'c',
        types::FileKind::BlockDevice => 'b',
        other => {
            return Err(refused(format!(
                "mknod of {:?} as {other:?} (only character and block devices)",
                String::from_utf8_lossy(path)
            )))
        }
    };
    let whiteout = letter == 'c' && major == 0 && minor == 0;
    if in_user_namespace && !whiteout {
        return Err(refused(format!(
            "device node {:?} ({letter} {major}:{minor}) in a user namespace (upstream skips \
             device nodes there; only the overlay whiteout, c 0:0, is made)",
            String::from_utf8_lossy(path)
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use types::FileKind;

    fn dir() -> Result<bool, types::FsError> {
        Ok(true)
    }
    fn file() -> Result<bool, types::FsError> {
        Ok(false)
    }

    #[test]
    fn only_the_opaque_mark_on_a_directory_passes() {
        assert!(check_xattr(b"d", "trusted.overlay.opaque", b"y", dir).is_ok());
        assert!(check_xattr(b"d", "user.overlay.opaque", b"y", dir).is_ok());
        assert!(check_xattr(b"f", "user.comment", b"x", file).is_ok());
        assert!(check_xattr(b"f", "security.capability", b"\x01", file).is_ok());
        for (name, value, is_dir) in [
            ("trusted.overlay.opaque", &b"y"[..], false),
            ("trusted.overlay.opaque", b"x", true),
            ("trusted.overlay.redirect", b"/etc", true),
            ("user.overlay.metacopy", b"", false),
        ] {
            let err = check_xattr(b"p", name, value, || Ok(is_dir)).unwrap_err();
            assert_eq!(err.kind, types::FsErrorKind::PermissionDenied);
            assert!(
                err.message
                    .starts_with(&format!("refused by the host's policy: xattr {name} = ")),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn device_nodes_as_upstream_makes_them() {
        // Outside a user namespace (root): any character or block device.
        assert!(check_device_node(b"null", FileKind::CharDevice, 1, 3, false).is_ok());
        assert!(check_device_node(b"sda", FileKind::BlockDevice, 8, 0, false).is_ok());
        // In one: only the overlay whiteout.
        assert!(check_device_node(b".wh", FileKind::CharDevice, 0, 0, true).is_ok());
        for (kind, major, minor) in [(FileKind::CharDevice, 1, 3), (FileKind::BlockDevice, 0, 0)] {
            let err = check_device_node(b"dev/x", kind, major, minor, true).unwrap_err();
            assert_eq!(err.kind, types::FsErrorKind::PermissionDenied);
            assert!(
                err.message.contains("in a user namespace"),
                "{}",
                err.message
            );
        }
        // mknod makes device nodes only.
        for kind in [FileKind::Regular, FileKind::Directory, FileKind::Fifo] {
            let err = check_device_node(b"x", kind, 0, 0, false).unwrap_err();
            assert!(
                err.message.contains("only character and block devices"),
                "{}",
                err.message
            );
        }
    }
}
