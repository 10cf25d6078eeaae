//! The entries of a layer tar the host parsed already (`tar-headers`): an import's tar is
//! parsed once, on the host, to record tar-split, and applied from those headers here.

use storage_archive::{ArchiveError, EntryKind, TarEntries, TarEntryHeader};

use crate::bindings::storage::plugin::archive_types as wit_archive;
use crate::bindings::storage::plugin::streams::InputStream;
use crate::bindings::storage::plugin::tar_headers as wit_headers;
use crate::convert::{sparse_map, timestamp};
use crate::guest_fs::{GuestDir, GuestInput};

/// Applies the layer tar lent as `input` to `fs`: from the entries the host parsed when it
/// has (an import's tar: tar-split needed every header on the host), else by parsing the
/// bytes here.
pub fn apply_input<'a>(
    fs: &mut GuestDir<'a>,
    input: &'a InputStream,
    options: &storage_archive::ApplyOptions,
) -> Result<u64, ArchiveError> {
    match wit_headers::next_header(input).map_err(archive_error)? {
        wit_headers::NextEntry::Unparsed => {
            storage_archive::apply_layer(fs, &mut GuestInput::new(input), options)
        }
        first => storage_archive::apply_entries(fs, &mut HostEntries::new(input, first), options),
    }
}

/// The host's parsed entries of a stream, for [`storage_archive::apply_entries`].
pub struct HostEntries<'a> {
    input: GuestInput<'a>,
    stream: &'a InputStream,
    /// The answer already received and not handed out yet.
    pending: Option<wit_headers::NextEntry>,
    /// Payload of the current entry not consumed yet.
    remaining: u64,
}

impl<'a> HostEntries<'a> {
    /// The entries of `stream`, whose first answer was `first`.
    pub fn new(stream: &'a InputStream, first: wit_headers::NextEntry) -> Self {
        HostEntries {
            input: GuestInput::new(stream),
            stream,
            pending: Some(first),
            remaining: 0,
        }
    }
}

impl<'a> TarEntries for HostEntries<'a> {
    type Input = GuestInput<'a>;

    fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        let answer = match self.pending.take() {
            Some(answer) => answer,
            None => wit_headers::next_header(self.stream).map_err(archive_error)?,
        };
        let header = match answer {
            wit_headers::NextEntry::Entry(header) => Some(header_from_wit(header)),
            wit_headers::NextEntry::End => None,
            // A parsed stream stays parsed; an answer otherwise is the host's bug.
            wit_headers::NextEntry::Unparsed => {
                return Err(ArchiveError::InvalidHeader(
                    "the host stopped giving parsed headers".into(),
                ))
            }
        };
        self.remaining = header.as_ref().map_or(0, TarEntryHeader::stored_size);
        Ok(header)
    }

    fn payload_remaining(&self) -> u64 {
        self.remaining
    }

    fn payload_consumed(&mut self, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
    }

    fn input_mut(&mut self) -> &mut GuestInput<'a> {
        &mut self.input
    }
}

/// A header as the host sent it, in the archive crate's form. Owner and group names and the
/// PAX records are not sent: applying does not use them.
fn header_from_wit(h: wit_headers::TarHeader) -> TarEntryHeader {
    use wit_headers::EntryKind as W;
    TarEntryHeader {
        path: h.path,
        link_name: h.link_name,
        kind: match h.kind {
            W::Regular => EntryKind::Regular,
            W::Link => EntryKind::Link,
            W::Symlink => EntryKind::Symlink,
            W::CharDevice => EntryKind::Char,
            W::BlockDevice => EntryKind::Block,
            W::Directory => EntryKind::Directory,
            W::Fifo => EntryKind::Fifo,
            W::PaxGlobal => EntryKind::PaxGlobal,
            W::Other(flag) => EntryKind::Other(flag),
        },
        typeflag: h.typeflag,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        size: h.size,
        mtime: time(h.mtime),
        atime: h.atime.map(time),
        dev_major: h.dev_major,
        dev_minor: h.dev_minor,
        xattrs: h.xattrs,
        uname: None,
        gname: None,
        pax_records: Vec::new(),
        sparse: h.sparse.map(sparse_map),
    }
}

fn time(t: crate::bindings::storage::plugin::types::Timestamp) -> (i64, u32) {
    let t = timestamp(t);
    (t.secs, t.nanos)
}

/// The host parser's refusal as the archive crate's error (what the guest's own parser
/// would have said).
fn archive_error(e: wit_archive::ArchiveError) -> ArchiveError {
    match e {
        wit_archive::ArchiveError::InvalidHeader(why) => ArchiveError::InvalidHeader(why),
        wit_archive::ArchiveError::UnexpectedEof => ArchiveError::UnexpectedEof,
        wit_archive::ArchiveError::Stream(why) => ArchiveError::Stream(std::io::Error::other(why)),
        other => ArchiveError::Stream(std::io::Error::other(format!("{other:?}"))),
    }
}
