//! Conversions between the archive crate's options, changes and errors and the WIT records.

use crate::bindings::storage::plugin::{archive_types, types};
use crate::host_fs;

pub(super) fn id_mapping_to_wit(m: &storage_archive::IdMapping) -> types::IdMapping {
    let ranges = |r: &[storage_archive::IdRange]| {
        r.iter()
            .map(|r| types::IdRange {
                container_id: r.container_id,
                host_id: r.host_id,
                size: r.size,
            })
            .collect()
    };
    types::IdMapping {
        uids: ranges(&m.uids),
        gids: ranges(&m.gids),
    }
}

pub(super) fn apply_options_to_wit(
    o: &storage_archive::ApplyOptions,
) -> archive_types::ApplyOptions {
    archive_types::ApplyOptions {
        whiteout_format: match o.whiteout_format {
            storage_archive::WhiteoutFormat::Aufs => archive_types::WhiteoutFormat::Aufs,
            storage_archive::WhiteoutFormat::Overlay => archive_types::WhiteoutFormat::Overlay,
        },
        rootless_overlay: o.rootless_overlay,
        id_mapping: id_mapping_to_wit(&o.id_mapping),
        force_mask: o.force_mask,
        ignore_chown_errors: o.ignore_chown_errors,
        skip_device_nodes: o.skip_device_nodes,
    }
}

pub(super) fn diff_options_to_wit(o: &storage_archive::DiffOptions) -> archive_types::DiffOptions {
    let names = |m: &std::collections::BTreeMap<u32, Vec<u8>>| {
        m.iter().map(|(id, name)| (*id, name.clone())).collect()
    };
    archive_types::DiffOptions {
        id_mapping: id_mapping_to_wit(&o.id_mapping),
        now: types::Timestamp {
            secs: o.now.secs,
            nanos: o.now.nanos,
        },
        user_names: names(&o.user_names),
        group_names: names(&o.group_names),
    }
}

pub(super) fn changes_from_wit(
    changes: Vec<archive_types::Change>,
) -> Vec<storage_archive::Change> {
    changes
        .into_iter()
        .map(|c| storage_archive::Change {
            path: c.path,
            kind: match c.kind {
                archive_types::ChangeKind::Add => storage_archive::ChangeKind::Add,
                archive_types::ChangeKind::Modify => storage_archive::ChangeKind::Modify,
                archive_types::ChangeKind::Delete => storage_archive::ChangeKind::Delete,
            },
        })
        .collect()
}

/// The archive crate names filesystem operations with static strings; the guest's names are
/// mapped back onto them so the message reads the same as natively.
fn static_op(op: &str) -> &'static str {
    const OPS: &[&str] = &[
        "lstat",
        "read_dir",
        "readlink",
        "read_file",
        "copy_file_to_output",
        "get_xattr",
        "list_xattrs",
        "mkdir",
        "write_file_from_input",
        "create",
        "symlink",
        "hardlink",
        "link",
        "mknod",
        "mkfifo",
        "lchown",
        "chown",
        "chmod",
        "set_xattr",
        "setxattr",
        "remove_xattr",
        "set_times",
        "utimes",
        "remove",
        "remove_all",
        "rename",
        "open",
    ];
    OPS.iter()
        .find(|known| **known == op)
        .copied()
        .unwrap_or("filesystem operation")
}

/// The guest's error as the archive crate's own.
pub(crate) fn archive_error_from_wit(
    e: archive_types::ArchiveError,
) -> storage_archive::ArchiveError {
    use archive_types::ArchiveError as W;
    use storage_archive::ArchiveError as E;
    match e {
        W::InvalidHeader(m) => E::InvalidHeader(m),
        W::UnexpectedEof => E::UnexpectedEof,
        W::PathEscape(p) => E::PathEscape(p),
        W::Refused(p) => E::Refused {
            path: p.path,
            reason: p.reason,
        },
        W::Fs(f) => E::Fs {
            op: static_op(&f.op),
            path: f.path,
            source: host_fs::error_from_wit(f.error),
        },
        W::Stream(m) => E::Stream(std::io::Error::other(m)),
        W::Unsupported(p) => E::Unsupported {
            path: p.path,
            reason: p.reason,
        },
    }
}
