//! The one tar parser: a sans-I/O state machine that reads the headers of a tar stream the
//! way Go's `archive/tar` (in the tar-split fork containers/storage uses) does, and says
//! exactly which bytes are header and which are payload.
//!
//! Every reader of tar in the project goes through it: the pull reader the archive logic
//! applies layers with ([`crate::tar_stream::TarStreamReader`]), and the host's tar-split
//! disassembler, which is fed the stream in pieces. The parser never sees payload bytes and
//! never asks for more than it needs, so whoever drives it can copy payload straight from
//! the stream to a file and still account for every byte.
//!
//! Driving it: ask [`TarParser::need`]. For [`Need::Raw`], give exactly that many bytes to
//! [`TarParser::push_raw`] (fewer only when the input ended: then all that was left); it may
//! answer with an entry. For [`Need::Payload`], the entry's data follows: pass it on, then
//! report it with [`TarParser::consume_payload`]. [`Need::Done`]: the archive ended (two
//! zero blocks, or a clean end of input where a header would start); whatever follows is not
//! tar.
//!
//! Byte grouping matches tar-split's `RawBytes()`: the raw bytes pushed between two entries
//! are the padding of the first's payload, then the headers of the second (PAX, GNU long
//! names, old-GNU sparse extension blocks), then, for a PAX 1.0 sparse entry, the blocks of
//! its sparse map (Go's fork reads those as payload and drops them from tar-split; keeping
//! them here is what lets such an archive be re-created byte for byte).
//!
//! What can go wrong: [`ArchiveError::InvalidHeader`] (bad checksum, malformed numbers or
//! PAX records, a bad sparse map, a zero block followed by data, metadata over the size
//! limit) and [`ArchiveError::UnexpectedEof`] (the input ended inside a header, a metadata
//! record or a payload).

pub mod header;
pub mod pax;
pub mod sparse;

use crate::error::ArchiveError;
use header::{decode_block, is_zero_block, BlockFormat, RawHeader, BLOCK};
use pax::PaxRecords;
pub use sparse::{SparseMap, SparseRegion};

/// Upper bound on PAX and GNU long-name records, as Go's `maxSpecialFileSize`: a hostile
/// header cannot make us buffer an arbitrary amount of metadata.
pub const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

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
    fn from_flag(flag: u8, path: &[u8]) -> EntryKind {
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
fn is_header_only(flag: u8) -> bool {
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
    /// (holes included). What follows in the stream is [`TarParser::need`]'s payload.
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

/// What the parser needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Exactly `len` bytes that are not payload (headers, padding, metadata records). Fewer
    /// may be given only at the end of the input; none at all is the clean end of the
    /// archive when `eof_ok`.
    Raw {
        /// How many bytes.
        len: usize,
        /// Whether the input may end before them.
        eof_ok: bool,
    },
    /// `n` bytes of the last entry's data follow (never 0).
    Payload(u64),
    /// The archive ended; nothing more is tar.
    Done,
}

/// Metadata records that precede an entry.
#[derive(Default)]
struct Pending {
    pax: PaxRecords,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

enum State {
    /// The padding (`pad` bytes) after the previous payload, then a header block.
    Header { pad: usize },
    /// One zero block seen; the second may follow.
    SecondZero,
    /// The data of a metadata header (PAX `x`/`g`, GNU `L`/`K`).
    Special { header: Box<RawHeader>, len: usize },
    /// Extension blocks of an old-GNU sparse entry.
    OldSparse {
        entry: Box<TarEntryHeader>,
        regions: Vec<(i64, i64)>,
        real_size: i64,
        stored: u64,
    },
    /// The blocks of a PAX 1.0 sparse map at the start of the entry's data.
    Map1x0 {
        entry: Box<TarEntryHeader>,
        map: sparse::Map1x0,
        real_size: i64,
        stored: u64,
    },
    /// Data of the last entry; `pad` bytes of padding follow it.
    Payload { remaining: u64, pad: usize },
    /// The end of the archive.
    Done,
}

/// The sans-I/O tar header parser; see the module documentation.
pub struct TarParser {
    state: State,
    pending: Pending,
}

impl Default for TarParser {
    fn default() -> Self {
        Self::new()
    }
}

impl TarParser {
    /// A parser at the start of an archive.
    pub fn new() -> Self {
        TarParser {
            state: State::Header { pad: 0 },
            pending: Pending::default(),
        }
    }

    /// What the parser needs next.
    pub fn need(&self) -> Need {
        match &self.state {
            // Padding and header in one read: a clean end may come at either boundary.
            State::Header { pad } => Need::Raw {
                len: pad + BLOCK,
                eof_ok: true,
            },
            State::SecondZero => Need::Raw {
                len: BLOCK,
                eof_ok: true,
            },
            State::Special { len, .. } => Need::Raw {
                len: *len,
                eof_ok: false,
            },
            State::OldSparse { .. } | State::Map1x0 { .. } => Need::Raw {
                len: BLOCK,
                eof_ok: false,
            },
            State::Payload { remaining, .. } => Need::Payload(*remaining),
            State::Done => Need::Done,
        }
    }

    /// Whether the archive ended.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Payload bytes of the current entry not consumed yet.
    pub fn payload_remaining(&self) -> u64 {
        match self.state {
            State::Payload { remaining, .. } => remaining,
            _ => 0,
        }
    }

    /// Reports `n` payload bytes passed on (at most what remains).
    pub fn consume_payload(&mut self, n: u64) {
        if let State::Payload { remaining, pad } = &mut self.state {
            *remaining = remaining.saturating_sub(n);
            if *remaining == 0 {
                self.state = State::Header { pad: *pad };
            }
        }
    }

    /// Gives the bytes [`Need::Raw`] asked for; fewer means the input ended after them.
    /// Returns an entry when its headers are complete.
    pub fn push_raw(&mut self, bytes: &[u8]) -> Result<Option<TarEntryHeader>, ArchiveError> {
        let result = self.step(bytes);
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn step(&mut self, bytes: &[u8]) -> Result<Option<TarEntryHeader>, ArchiveError> {
        let Need::Raw { len, eof_ok } = self.need() else {
            return Err(ArchiveError::InvalidHeader(
                "tar parser given header bytes where none were expected".into(),
            ));
        };
        let state = std::mem::replace(&mut self.state, State::Done);
        if let State::Header { pad } = state {
            // A clean end before the padding or right after it ends the archive, as Go's
            // `tryReadFull` of the padding and `readHeader` do.
            if bytes.is_empty() || bytes.len() == pad {
                return Ok(None);
            }
            if bytes.len() < len {
                return Err(ArchiveError::UnexpectedEof);
            }
            let block = block_of(&bytes[pad..])?;
            return self.on_header(block);
        }
        if bytes.len() < len {
            return if bytes.is_empty() && eof_ok {
                Ok(None)
            } else {
                Err(ArchiveError::UnexpectedEof)
            };
        }
        match state {
            State::SecondZero => {
                if is_zero_block(bytes) {
                    Ok(None)
                } else {
                    Err(ArchiveError::InvalidHeader(
                        "zero block followed by a non-zero block".into(),
                    ))
                }
            }
            State::Special { header, len } => self.on_special(*header, &bytes[..len]),
            State::OldSparse {
                mut entry,
                mut regions,
                real_size,
                stored,
            } => {
                let (more, extended) = sparse::old_gnu_regions(block_of(bytes)?, true)?;
                regions.extend(more);
                if extended {
                    self.state = State::OldSparse {
                        entry,
                        regions,
                        real_size,
                        stored,
                    };
                    return Ok(None);
                }
                entry.sparse = Some(sparse::validate(&regions, real_size, stored)?);
                Ok(Some(self.start_payload(*entry)))
            }
            State::Map1x0 {
                mut entry,
                mut map,
                real_size,
                stored,
            } => match map.push_block(bytes)? {
                None => {
                    if map.len() >= stored {
                        return Err(ArchiveError::InvalidHeader(
                            "sparse map: the PAX 1.0 map runs past the entry's data".into(),
                        ));
                    }
                    self.state = State::Map1x0 {
                        entry,
                        map,
                        real_size,
                        stored,
                    };
                    Ok(None)
                }
                Some(regions) => {
                    let stored = stored.checked_sub(map.len()).ok_or_else(|| {
                        ArchiveError::InvalidHeader(
                            "sparse map: the PAX 1.0 map runs past the entry's data".into(),
                        )
                    })?;
                    entry.sparse = Some(sparse::validate(&regions, real_size, stored)?);
                    Ok(Some(self.start_payload(*entry)))
                }
            },
            State::Header { .. } | State::Payload { .. } | State::Done => {
                Err(ArchiveError::InvalidHeader("tar parser out of step".into()))
            }
        }
    }

    fn on_header(&mut self, block: &[u8; BLOCK]) -> Result<Option<TarEntryHeader>, ArchiveError> {
        if is_zero_block(block) {
            self.state = State::SecondZero;
            return Ok(None);
        }
        let header = decode_block(block)?;
        match header.typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let size = u64::try_from(header.size)
                    .map_err(|_| ArchiveError::InvalidHeader("negative size".into()))?;
                if size > MAX_SPECIAL_FILE_SIZE {
                    return Err(ArchiveError::InvalidHeader(format!(
                        "extended header of {size} bytes exceeds the limit"
                    )));
                }
                // Bounded by the limit just checked.
                let len = size as usize;
                if len == 0 {
                    return self.on_special(header, &[]);
                }
                self.state = State::Special {
                    header: Box::new(header),
                    len,
                };
                Ok(None)
            }
            _ => self.on_entry(header, block),
        }
    }

    /// The data of a metadata header is complete; its padding is read with the next header.
    fn on_special(
        &mut self,
        header: RawHeader,
        data: &[u8],
    ) -> Result<Option<TarEntryHeader>, ArchiveError> {
        self.state = State::Header {
            pad: padding_of(data.len() as u64),
        };
        match header.typeflag {
            b'x' => {
                // A second extended header replaces the first, as in Go.
                self.pending.pax = pax::parse_records(data)?;
                Ok(None)
            }
            b'L' => {
                self.pending.long_name = Some(header::c_string(data).to_vec());
                Ok(None)
            }
            b'K' => {
                self.pending.long_link = Some(header::c_string(data).to_vec());
                Ok(None)
            }
            _ => {
                // A global header is an entry of its own, named by its block or its `path`
                // record, with nothing of the pending records, as Go returns it.
                let records = pax::parse_records(data)?;
                self.pending = Pending::default();
                let mut entry = base_entry(&header, EntryKind::PaxGlobal);
                // Go's global header carries its name and records, nothing else.
                (entry.mode, entry.uid, entry.gid, entry.mtime) = (0, 0, 0, (0, 0));
                entry.link_name.clear();
                (entry.uname, entry.gname, entry.atime) = (None, None, None);
                if let Some(path) = records.get(b"path").filter(|p| !p.is_empty()) {
                    entry.path = path.to_vec();
                }
                entry.pax_records = records
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                Ok(Some(entry))
            }
        }
    }

    /// A file header: merge what preceded it (PAX first, then GNU long names, as Go does),
    /// then find out whether a sparse map follows.
    fn on_entry(
        &mut self,
        header: RawHeader,
        block: &[u8; BLOCK],
    ) -> Result<Option<TarEntryHeader>, ArchiveError> {
        let pending = std::mem::take(&mut self.pending);
        let mut entry = base_entry(&header, EntryKind::Regular);
        let mut size = header.size;
        for (key, value) in pending.pax.iter() {
            // Go keeps the header's value when a record is empty.
            if value.is_empty() {
                continue;
            }
            match key {
                b"path" => entry.path = value.to_vec(),
                b"linkpath" => entry.link_name = value.to_vec(),
                b"uname" => entry.uname = Some(value.to_vec()),
                b"gname" => entry.gname = Some(value.to_vec()),
                b"uid" => entry.uid = pax::parse_int("uid", value)? as u64,
                b"gid" => entry.gid = pax::parse_int("gid", value)? as u64,
                b"size" => size = pax::parse_int("size", value)?,
                b"mtime" => entry.mtime = pax::parse_time(value)?,
                b"atime" => entry.atime = Some(pax::parse_time(value)?),
                b"ctime" => {
                    pax::parse_time(value)?;
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        let name = String::from_utf8(name.to_vec()).map_err(|_| {
                            ArchiveError::InvalidHeader(format!(
                                "xattr name {:?} is not UTF-8",
                                String::from_utf8_lossy(name)
                            ))
                        })?;
                        entry.xattrs.retain(|(n, _)| *n != name);
                        entry.xattrs.push((name, value.to_vec()));
                    }
                }
            }
        }
        if let Some(name) = pending.long_name.filter(|n| !n.is_empty()) {
            entry.path = name;
        }
        if let Some(link) = pending.long_link.filter(|l| !l.is_empty()) {
            entry.link_name = link;
        }
        entry.kind = EntryKind::from_flag(header.typeflag, &entry.path);
        if size < 0 {
            return Err(ArchiveError::InvalidHeader("negative size".into()));
        }
        // Checked non-negative just above.
        let stored = if is_header_only(header.typeflag) {
            0
        } else {
            size as u64
        };
        entry.size = size as u64;
        entry.pax_records = pending
            .pax
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        if header.typeflag == b'S' {
            if header.format != BlockFormat::Gnu {
                return Err(ArchiveError::InvalidHeader(
                    "a sparse entry in a header that is not GNU".into(),
                ));
            }
            let real_size = sparse::old_gnu_real_size(block)?;
            entry.size = u64::try_from(real_size)
                .map_err(|_| ArchiveError::InvalidHeader("negative real size".into()))?;
            let (regions, extended) = sparse::old_gnu_regions(block, false)?;
            if extended {
                self.state = State::OldSparse {
                    entry: Box::new(entry),
                    regions,
                    real_size,
                    stored,
                };
                return Ok(None);
            }
            entry.sparse = Some(sparse::validate(&regions, real_size, stored)?);
            return Ok(Some(self.start_payload(entry)));
        }
        match self.pax_sparse(&pending.pax, &mut entry)? {
            PaxSparse::None => Ok(Some(self.start_payload(entry))),
            PaxSparse::Map(regions, real_size) => {
                if is_header_only(header.typeflag) {
                    return Err(ArchiveError::InvalidHeader(
                        "a sparse map on an entry without data".into(),
                    ));
                }
                entry.sparse = Some(sparse::validate(&regions, real_size, stored)?);
                Ok(Some(self.start_payload(entry)))
            }
            PaxSparse::Map1x0(real_size) => {
                if is_header_only(header.typeflag) {
                    return Err(ArchiveError::InvalidHeader(
                        "a sparse map on an entry without data".into(),
                    ));
                }
                if stored == 0 {
                    return Err(ArchiveError::UnexpectedEof);
                }
                self.state = State::Map1x0 {
                    entry: Box::new(entry),
                    map: sparse::Map1x0::default(),
                    real_size,
                    stored,
                };
                Ok(None)
            }
        }
    }

    /// GNU sparse records of a PAX header (Go's `readGNUSparsePAXHeaders`): which version,
    /// the real name and size, and the map (or that it follows in the data).
    fn pax_sparse(
        &self,
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

    fn start_payload(&mut self, entry: TarEntryHeader) -> TarEntryHeader {
        // A PAX 1.0 map is whole blocks: the padding depends on the data alone.
        let stored = entry.stored_size();
        let pad = padding_of(stored);
        self.state = if stored == 0 {
            State::Header { pad }
        } else {
            State::Payload {
                remaining: stored,
                pad,
            }
        };
        entry
    }
}

enum PaxSparse {
    None,
    Map(Vec<(i64, i64)>, i64),
    Map1x0(i64),
}

/// An entry with the fields of a header block and nothing merged yet.
fn base_entry(header: &RawHeader, kind: EntryKind) -> TarEntryHeader {
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

fn block_of(bytes: &[u8]) -> Result<&[u8; BLOCK], ArchiveError> {
    bytes
        .get(..BLOCK)
        .and_then(|b| b.try_into().ok())
        .ok_or(ArchiveError::UnexpectedEof)
}

/// Bytes of padding after data of `len` bytes.
pub fn padding_of(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}
