//! The `tar-headers` interface: the entries of a layer tar the host has parsed already (an
//! import's, parsed once to record tar-split), handed to the archive logic instead of having
//! it parse the same header bytes again.

use storage_archive::{ArchiveError, EntryKind, ParsedTar, TarEntryHeader};
use wasmtime::component::Resource;

use super::convert::sparse_map_to_wit;
use super::{HostState, LentInput};
use crate::bindings::storage::plugin::{archive_types, tar_headers, types};

impl tar_headers::Host for HostState {
    fn next_header(
        &mut self,
        input: Resource<LentInput>,
    ) -> Result<tar_headers::NextEntry, archive_types::ArchiveError> {
        let input = self
            .table
            .get_mut(&input)
            .map_err(|e| archive_types::ArchiveError::Stream(format!("input handle: {e}")))?;
        let Some(parsed) = input.parsed.as_mut() else {
            return Ok(tar_headers::NextEntry::Unparsed);
        };
        match parsed.next_header() {
            Ok(Some(header)) => Ok(tar_headers::NextEntry::Entry(header_to_wit(header))),
            Ok(None) => Ok(tar_headers::NextEntry::End),
            Err(e) => Err(error_to_wit(e)),
        }
    }
}

/// A parsed header in its WIT form.
fn header_to_wit(h: TarEntryHeader) -> tar_headers::TarHeader {
    use tar_headers::EntryKind as W;
    let timestamp = |(secs, nanos): (i64, u32)| types::Timestamp { secs, nanos };
    tar_headers::TarHeader {
        path: h.path,
        link_name: h.link_name,
        kind: match h.kind {
            EntryKind::Regular => W::Regular,
            EntryKind::Link => W::Link,
            EntryKind::Symlink => W::Symlink,
            EntryKind::Char => W::CharDevice,
            EntryKind::Block => W::BlockDevice,
            EntryKind::Directory => W::Directory,
            EntryKind::Fifo => W::Fifo,
            EntryKind::PaxGlobal => W::PaxGlobal,
            EntryKind::Other(flag) => W::Other(flag),
        },
        typeflag: h.typeflag,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        size: h.size,
        mtime: timestamp(h.mtime),
        atime: h.atime.map(timestamp),
        dev_major: h.dev_major,
        dev_minor: h.dev_minor,
        xattrs: h.xattrs,
        sparse: h.sparse.as_ref().map(sparse_map_to_wit),
    }
}

/// Why the host's parser refused the stream, as the guest's error.
fn error_to_wit(e: ArchiveError) -> archive_types::ArchiveError {
    match e {
        ArchiveError::InvalidHeader(why) => archive_types::ArchiveError::InvalidHeader(why),
        ArchiveError::UnexpectedEof => archive_types::ArchiveError::UnexpectedEof,
        other => archive_types::ArchiveError::Stream(other.to_string()),
    }
}
