//! Conversions between the WIT types and the `storage-archive` crate's types.

use storage_archive::fs as afs;

use crate::bindings::storage::plugin::archive_types as wit_archive;
use crate::bindings::storage::plugin::entries as wit_entries;
use crate::bindings::storage::plugin::types as wit;

/// WIT file kind → archive file kind.
pub fn file_kind(kind: wit::FileKind) -> afs::FileKind {
    match kind {
        wit::FileKind::Regular => afs::FileKind::Regular,
        wit::FileKind::Directory => afs::FileKind::Directory,
        wit::FileKind::Symlink => afs::FileKind::Symlink,
        wit::FileKind::CharDevice => afs::FileKind::CharDevice,
        wit::FileKind::BlockDevice => afs::FileKind::BlockDevice,
        wit::FileKind::Fifo => afs::FileKind::Fifo,
        wit::FileKind::Socket => afs::FileKind::Socket,
    }
}

/// Archive file kind → WIT file kind.
pub fn wit_file_kind(kind: afs::FileKind) -> wit::FileKind {
    match kind {
        afs::FileKind::Regular => wit::FileKind::Regular,
        afs::FileKind::Directory => wit::FileKind::Directory,
        afs::FileKind::Symlink => wit::FileKind::Symlink,
        afs::FileKind::CharDevice => wit::FileKind::CharDevice,
        afs::FileKind::BlockDevice => wit::FileKind::BlockDevice,
        afs::FileKind::Fifo => wit::FileKind::Fifo,
        afs::FileKind::Socket => wit::FileKind::Socket,
    }
}

/// WIT timestamp → archive timestamp.
pub fn timestamp(t: wit::Timestamp) -> afs::Timestamp {
    afs::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

/// Archive timestamp → WIT timestamp.
pub fn wit_timestamp(t: afs::Timestamp) -> wit::Timestamp {
    wit::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

/// Archive entry metadata → WIT entry metadata.
pub fn wit_entry_metadata(meta: &afs::EntryMetadata) -> wit_entries::EntryMetadata {
    wit_entries::EntryMetadata {
        uid: meta.uid,
        gid: meta.gid,
        ignore_chown_errors: meta.ignore_chown_errors,
        xattrs: meta.xattrs.clone(),
        mode: meta.mode,
        atime: wit_timestamp(meta.atime),
        mtime: wit_timestamp(meta.mtime),
    }
}

/// WIT stat → archive stat.
pub fn file_stat(st: wit::FileStat) -> afs::FileStat {
    afs::FileStat {
        kind: file_kind(st.kind),
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        mtime: timestamp(st.mtime),
        atime: timestamp(st.atime),
        dev: st.dev,
        ino: st.ino,
        nlink: st.nlink,
        rdev_major: st.rdev_major,
        rdev_minor: st.rdev_minor,
    }
}

/// WIT directory entry → archive directory entry.
pub fn dir_entry(e: wit::DirEntry) -> afs::DirEntry {
    afs::DirEntry {
        name: e.name,
        kind: file_kind(e.kind),
        ino: e.ino,
    }
}

/// WIT filesystem error → archive filesystem error.
pub fn fs_error(e: wit::FsError) -> afs::FsError {
    let kind = match e.kind {
        wit::FsErrorKind::NotFound => afs::FsErrorKind::NotFound,
        wit::FsErrorKind::AlreadyExists => afs::FsErrorKind::AlreadyExists,
        wit::FsErrorKind::NotEmpty => afs::FsErrorKind::NotEmpty,
        wit::FsErrorKind::NotADirectory => afs::FsErrorKind::NotADirectory,
        wit::FsErrorKind::PathEscape => afs::FsErrorKind::PathEscape,
        wit::FsErrorKind::PermissionDenied => afs::FsErrorKind::PermissionDenied,
        wit::FsErrorKind::Unsupported => afs::FsErrorKind::Unsupported,
        wit::FsErrorKind::UnexpectedEof => afs::FsErrorKind::UnexpectedEof,
        wit::FsErrorKind::Other => afs::FsErrorKind::Other,
    };
    afs::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

/// Archive filesystem error → WIT filesystem error.
pub fn wit_fs_error(e: afs::FsError) -> wit::FsError {
    let kind = match e.kind {
        afs::FsErrorKind::NotFound => wit::FsErrorKind::NotFound,
        afs::FsErrorKind::AlreadyExists => wit::FsErrorKind::AlreadyExists,
        afs::FsErrorKind::NotEmpty => wit::FsErrorKind::NotEmpty,
        afs::FsErrorKind::NotADirectory => wit::FsErrorKind::NotADirectory,
        afs::FsErrorKind::PathEscape => wit::FsErrorKind::PathEscape,
        afs::FsErrorKind::PermissionDenied => wit::FsErrorKind::PermissionDenied,
        afs::FsErrorKind::Unsupported => wit::FsErrorKind::Unsupported,
        afs::FsErrorKind::UnexpectedEof => wit::FsErrorKind::UnexpectedEof,
        afs::FsErrorKind::Other => wit::FsErrorKind::Other,
    };
    wit::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

/// WIT ID mapping → archive ID mapping.
pub fn id_mapping(m: wit::IdMapping) -> storage_archive::IdMapping {
    let ranges = |r: Vec<wit::IdRange>| {
        r.into_iter()
            .map(|r| storage_archive::IdRange {
                container_id: r.container_id,
                host_id: r.host_id,
                size: r.size,
            })
            .collect()
    };
    storage_archive::IdMapping {
        uids: ranges(m.uids),
        gids: ranges(m.gids),
    }
}

/// WIT apply options → archive apply options.
pub fn apply_options(o: wit_archive::ApplyOptions) -> storage_archive::ApplyOptions {
    storage_archive::ApplyOptions {
        whiteout_format: match o.whiteout_format {
            wit_archive::WhiteoutFormat::Aufs => storage_archive::WhiteoutFormat::Aufs,
            wit_archive::WhiteoutFormat::Overlay => storage_archive::WhiteoutFormat::Overlay,
        },
        rootless_overlay: o.rootless_overlay,
        id_mapping: id_mapping(o.id_mapping),
        force_mask: o.force_mask,
        ignore_chown_errors: o.ignore_chown_errors,
        skip_device_nodes: o.skip_device_nodes,
    }
}

/// WIT sparse map → archive sparse map.
pub fn sparse_map(map: wit::SparseMap) -> afs::SparseMap {
    afs::SparseMap {
        real_size: map.real_size,
        regions: map
            .regions
            .into_iter()
            .map(|r| afs::SparseRegion {
                offset: r.offset,
                length: r.length,
            })
            .collect(),
    }
}

/// Archive sparse map → WIT sparse map.
pub fn wit_sparse_map(map: &afs::SparseMap) -> wit::SparseMap {
    wit::SparseMap {
        real_size: map.real_size,
        regions: map
            .regions
            .iter()
            .map(|r| wit::SparseRegion {
                offset: r.offset,
                length: r.length,
            })
            .collect(),
    }
}

/// WIT diff options → archive diff options.
pub fn diff_options(o: wit_archive::DiffOptions) -> storage_archive::DiffOptions {
    storage_archive::DiffOptions {
        id_mapping: id_mapping(o.id_mapping),
        now: timestamp(o.now),
        user_names: o.user_names.into_iter().collect(),
        group_names: o.group_names.into_iter().collect(),
    }
}

/// WIT overlay options → archive overlay options.
pub fn overlay_options(o: wit_archive::OverlayOptions) -> storage_archive::OverlayOptions {
    storage_archive::OverlayOptions {
        rootless: o.rootless,
    }
}

/// Archive changes → WIT changes.
pub fn changes(changes: Vec<storage_archive::Change>) -> Vec<wit_archive::Change> {
    changes
        .into_iter()
        .map(|c| wit_archive::Change {
            path: c.path,
            kind: match c.kind {
                storage_archive::ChangeKind::Add => wit_archive::ChangeKind::Add,
                storage_archive::ChangeKind::Modify => wit_archive::ChangeKind::Modify,
                storage_archive::ChangeKind::Delete => wit_archive::ChangeKind::Delete,
            },
        })
        .collect()
}

/// Archive error → WIT archive error (the host re-creates the same message from it).
pub fn archive_error(e: storage_archive::ArchiveError) -> wit_archive::ArchiveError {
    use storage_archive::ArchiveError as E;
    match e {
        E::InvalidHeader(m) => wit_archive::ArchiveError::InvalidHeader(m),
        E::UnexpectedEof => wit_archive::ArchiveError::UnexpectedEof,
        E::PathEscape(p) => wit_archive::ArchiveError::PathEscape(p),
        E::Refused { path, reason } => {
            wit_archive::ArchiveError::Refused(wit_archive::EntryProblem { path, reason })
        }
        E::Fs { op, path, source } => {
            wit_archive::ArchiveError::Fs(wit_archive::FsOperationError {
                op: op.to_string(),
                path,
                error: wit_fs_error(source),
            })
        }
        E::Stream(e) => wit_archive::ArchiveError::Stream(e.to_string()),
        E::Unsupported { path, reason } => {
            wit_archive::ArchiveError::Unsupported(wit_archive::EntryProblem { path, reason })
        }
    }
}
