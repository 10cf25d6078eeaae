//! Conversions between the archive crate's filesystem types and errors and their WIT form.

use std::io;

use storage_archive::fs as afs;

use crate::bindings::storage::plugin::{entries, types};

pub(super) fn kind_to_wit(kind: afs::FileKind) -> types::FileKind {
    match kind {
        afs::FileKind::Regular => types::FileKind::Regular,
        afs::FileKind::Directory => types::FileKind::Directory,
        afs::FileKind::Symlink => types::FileKind::Symlink,
        afs::FileKind::CharDevice => types::FileKind::CharDevice,
        afs::FileKind::BlockDevice => types::FileKind::BlockDevice,
        afs::FileKind::Fifo => types::FileKind::Fifo,
        afs::FileKind::Socket => types::FileKind::Socket,
    }
}

pub(super) fn kind_from_wit(kind: types::FileKind) -> afs::FileKind {
    match kind {
        types::FileKind::Regular => afs::FileKind::Regular,
        types::FileKind::Directory => afs::FileKind::Directory,
        types::FileKind::Symlink => afs::FileKind::Symlink,
        types::FileKind::CharDevice => afs::FileKind::CharDevice,
        types::FileKind::BlockDevice => afs::FileKind::BlockDevice,
        types::FileKind::Fifo => afs::FileKind::Fifo,
        types::FileKind::Socket => afs::FileKind::Socket,
    }
}

pub(super) fn time_to_wit(t: afs::Timestamp) -> types::Timestamp {
    types::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

pub(super) fn time_from_wit(t: types::Timestamp) -> afs::Timestamp {
    afs::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

pub(super) fn sparse_map_to_wit(map: &afs::SparseMap) -> types::SparseMap {
    types::SparseMap {
        real_size: map.real_size,
        regions: map
            .regions
            .iter()
            .map(|r| types::SparseRegion {
                offset: r.offset,
                length: r.length,
            })
            .collect(),
    }
}

pub(super) fn sparse_map_from_wit(map: types::SparseMap) -> afs::SparseMap {
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

pub(super) fn metadata_from_wit(meta: entries::EntryMetadata) -> afs::EntryMetadata {
    afs::EntryMetadata {
        uid: meta.uid,
        gid: meta.gid,
        ignore_chown_errors: meta.ignore_chown_errors,
        xattrs: meta.xattrs,
        mode: meta.mode,
        atime: time_from_wit(meta.atime),
        mtime: time_from_wit(meta.mtime),
    }
}

pub(super) fn stat_to_wit(st: afs::FileStat) -> types::FileStat {
    types::FileStat {
        kind: kind_to_wit(st.kind),
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        mtime: time_to_wit(st.mtime),
        atime: time_to_wit(st.atime),
        dev: st.dev,
        ino: st.ino,
        nlink: st.nlink,
        rdev_major: st.rdev_major,
        rdev_minor: st.rdev_minor,
    }
}

/// Archive filesystem error → WIT error.
pub fn error_to_wit(e: afs::FsError) -> types::FsError {
    use afs::FsErrorKind as K;
    let kind = match e.kind {
        K::NotFound => types::FsErrorKind::NotFound,
        K::AlreadyExists => types::FsErrorKind::AlreadyExists,
        K::NotEmpty => types::FsErrorKind::NotEmpty,
        K::NotADirectory => types::FsErrorKind::NotADirectory,
        K::PathEscape => types::FsErrorKind::PathEscape,
        K::PermissionDenied => types::FsErrorKind::PermissionDenied,
        K::Unsupported => types::FsErrorKind::Unsupported,
        K::UnexpectedEof => types::FsErrorKind::UnexpectedEof,
        K::Other => types::FsErrorKind::Other,
    };
    types::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

/// WIT error → archive filesystem error.
pub fn error_from_wit(e: types::FsError) -> afs::FsError {
    use types::FsErrorKind as K;
    let kind = match e.kind {
        K::NotFound => afs::FsErrorKind::NotFound,
        K::AlreadyExists => afs::FsErrorKind::AlreadyExists,
        K::NotEmpty => afs::FsErrorKind::NotEmpty,
        K::NotADirectory => afs::FsErrorKind::NotADirectory,
        K::PathEscape => afs::FsErrorKind::PathEscape,
        K::PermissionDenied => afs::FsErrorKind::PermissionDenied,
        K::Unsupported => afs::FsErrorKind::Unsupported,
        K::UnexpectedEof => afs::FsErrorKind::UnexpectedEof,
        K::Other => afs::FsErrorKind::Other,
    };
    afs::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

pub(super) fn other_error(message: impl Into<String>) -> types::FsError {
    types::FsError {
        kind: types::FsErrorKind::Other,
        errno: 0,
        message: message.into(),
    }
}

pub(crate) fn io_error(e: io::Error, what: &str) -> types::FsError {
    error_to_wit(storage_driver::confined::io_error(e, what))
}

/// Handles are checked by the component model before the host sees them, so a missing entry is
/// a host bug; the guest still gets an error, never a panic.
pub(super) fn missing(e: wasmtime::component::ResourceTableError) -> types::FsError {
    other_error(format!("invalid handle: {e}"))
}
