//! What one entry is: its kind, the header the parser hands out, the fields a header block
//! gives it, and what a PAX header's GNU sparse records change in it.

use super::header::RawHeader;
use super::pax::{self, PaxRecords};
use super::sparse::{self, SparseMap};
use crate::error::ArchiveError;

/// What an entry is, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`'0'`, NUL without a trailing slash, `'7'` contiguous, and old-GNU
    /// sparse `'S'`, whose map is in [`TarEntryHeader::sparse`]).
    Regular,
    /// A hard link to `link_name` (`'1'`).
    Link,
    /// A symbolic link to `link_name` (`'2'`).
    Symlink,
    /// A character device (`'3'`).
    Char,
    /// A block device (`'4'`).
    Block,
    /// A directory (`'5'`, or NUL with a trailing slash in the name).
    Directory,
    /// A named pipe (`'6'`).
    Fifo,
    /// A PAX global header (`'g'`); returned as an entry like Go does, its records are in
    /// [`TarEntryHeader::pax_records`] and it has no payload.
    PaxGlobal,
    /// Any other type flag, as it appears in the header.
    Other(u8),
}

impl EntryKind {
    /// The kind of a type flag, with Go's rule for the old NUL flag.
    pub(super) fn from_flag(flag: u8, path: &[u8]) -> EntryKind {
        match flag {
            b'0' | b'7' | b'S' => EntryKind::Regular,
            0 if path.ends_with(b"/") => EntryKind::Directory,
            0 => EntryKind::Regular,
            b'1' => EntryKind::Link,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::Char,
            b'4' => EntryKind::Block,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            b'g' => EntryKind::PaxGlobal,
            other => EntryKind::Other(other),
        }
    }
}

/// Types whose size field never announces data (Go's `isHeaderOnlyType`).
pub(super) fn is_header_only(flag: u8) -> bool {
    matches!(flag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

/// The decoded header of one entry, after PAX records, GNU long names and sparse maps were
/// merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntryHeader {
    /// The full name as in the archive (ustar prefix joined, PAX `path`, GNU long name or
    /// `GNU.sparse.name` applied); not cleaned.
    pub path: Vec<u8>,
    /// Target of a hard or symbolic link (PAX `linkpath` / GNU long link applied), else empty.
    pub link_name: Vec<u8>,
    /// The entry's type.
    pub kind: EntryKind,
    /// The type flag byte as stored (`S` for an old-GNU sparse file).
    pub typeflag: u8,
    /// Permission and mode bits as stored (may include setuid/setgid/sticky).
    pub mode: u32,
    /// Owner, as stored (container IDs); Go's `int`, so a negative field wraps.
    pub uid: u64,
    /// Group, as stored (container IDs).
    pub gid: u64,
    /// The size Go reports: the PAX `size` applied, and for a sparse file its real size
    /// (holes included). What follows in the stream is [`TarParser::need`](super::TarParser::need)'s
    /// payload.
    pub size: u64,
    /// Modification time: seconds since the epoch and nanoseconds.
    pub mtime: (i64, u32),
    /// Access time if the archive carries one (PAX `atime` or the GNU/star header field).
    pub atime: Option<(i64, u32)>,
    /// Device major number (devices only; 0 otherwise).
    pub dev_major: u32,
    /// Device minor number (devices only; 0 otherwise).
    pub dev_minor: u32,
    /// Extended attributes from `SCHILY.xattr.*` PAX records, later records replacing
    /// earlier ones.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Owner name, if any.
    pub uname: Option<Vec<u8>>,
    /// Group name, if any.
    pub gname: Option<Vec<u8>>,
    /// All PAX records that applied to this entry (key, value).
    pub pax_records: Vec<(Vec<u8>, Vec<u8>)>,
    /// For a sparse file, where its data is; the payload is then only the regions' bytes.
    pub sparse: Option<SparseMap>,
}

impl TarEntryHeader {
    /// The bytes of the entry's data in the stream (after any PAX 1.0 map).
    pub fn stored_size(&self) -> u64 {
        match (&self.sparse, self.kind) {
            (Some(map), _) => map.stored_size(),
            (None, EntryKind::PaxGlobal) => 0,
            (None, _) if is_header_only(self.typeflag) => 0,
            (None, _) => self.size,
        }
    }
}

/// What the GNU sparse records of a PAX header say.
pub(super) enum PaxSparse {
    /// No sparse map: a plain entry.
    None,
    /// A PAX 0.x map (regions) and the real size.
    Map(Vec<(i64, i64)>, i64),
    /// A PAX 1.0 map, which starts the entry's data; the real size.
    Map1x0(i64),
}

/// An entry with the fields of a header block and nothing merged yet.
pub(super) fn base_entry(header: &RawHeader, kind: EntryKind) -> TarEntryHeader {
    let device = matches!(header.typeflag, b'3' | b'4');
    TarEntryHeader {
        path: header.name.clone(),
        link_name: header.link_name.clone(),
        kind,
        typeflag: header.typeflag,
        // Mode bits and type bits of the field; Go keeps the whole number.
        mode: (header.mode & 0o7777_7777) as u32,
        // Go's `int(...)`: negative owners wrap when taken as unsigned.
        uid: header.uid as u64,
        gid: header.gid as u64,
        size: 0,
        mtime: (header.mtime, 0),
        atime: header.atime.filter(|a| *a != 0).map(|a| (a, 0)),
        dev_major: if device {
            u32::try_from(header.dev_major).unwrap_or(0)
        } else {
            0
        },
        dev_minor: if device {
            u32::try_from(header.dev_minor).unwrap_or(0)
        } else {
            0
        },
        xattrs: Vec::new(),
        uname: Some(header.uname.clone()).filter(|u| !u.is_empty()),
        gname: Some(header.gname.clone()).filter(|g| !g.is_empty()),
        pax_records: Vec::new(),
        sparse: None,
    }
}

/// GNU sparse records of a PAX header (Go's `readGNUSparsePAXHeaders`): which version,
/// the real name and size, and the map (or that it follows in the data).
pub(super) fn pax_sparse(
    pax: &PaxRecords,
    entry: &mut TarEntryHeader,
) -> Result<PaxSparse, ArchiveError> {
    let major = pax.get(b"GNU.sparse.major");
    let minor = pax.get(b"GNU.sparse.minor");
    let map = pax.get(pax::GNU_SPARSE_MAP).filter(|m| !m.is_empty());
    let is_1x0 = match (major, minor) {
        (Some(b"0"), Some(b"0" | b"1")) => false,
        (Some(b"1"), Some(b"0")) => true,
        (Some(_), _) | (_, Some(_)) => return Ok(PaxSparse::None),
        (None, None) if map.is_some() => false,
        (None, None) => return Ok(PaxSparse::None),
    };
    if let Some(name) = pax.get(b"GNU.sparse.name").filter(|n| !n.is_empty()) {
        entry.path = name.to_vec();
        entry.kind = EntryKind::from_flag(entry.typeflag, &entry.path);
    }
    let real = pax
        .get(b"GNU.sparse.size")
        .filter(|s| !s.is_empty())
        .or_else(|| pax.get(b"GNU.sparse.realsize").filter(|s| !s.is_empty()));
    let real_size = match real {
        Some(text) => pax::parse_int("GNU.sparse.size", text)?,
        None => i64::try_from(entry.size)
            .map_err(|_| ArchiveError::InvalidHeader("size out of range".into()))?,
    };
    entry.size = u64::try_from(real_size)
        .map_err(|_| ArchiveError::InvalidHeader("negative real size".into()))?;
    if is_1x0 {
        return Ok(PaxSparse::Map1x0(real_size));
    }
    let regions =
        sparse::pax_0x_regions(map.unwrap_or_default(), pax.get(b"GNU.sparse.numblocks"))?;
    Ok(PaxSparse::Map(regions, real_size))
}
