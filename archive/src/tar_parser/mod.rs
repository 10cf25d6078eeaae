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

mod entry;
pub mod header;
pub mod pax;
pub mod sparse;

use crate::error::ArchiveError;
use entry::{base_entry, is_header_only, pax_sparse, PaxSparse};
pub use entry::{EntryKind, TarEntryHeader};
use header::{decode_block, is_zero_block, BlockFormat, RawHeader, BLOCK};
use pax::PaxRecords;
pub use sparse::{SparseMap, SparseRegion};

/// Upper bound on PAX and GNU long-name records, as Go's `maxSpecialFileSize`: a hostile
/// header cannot make us buffer an arbitrary amount of metadata.
pub const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

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

    /// Whether the bytes [`Need::Raw`] asks for end with a block where a header goes (the
    /// last 512 of them, after the previous payload's padding), rather than metadata records
    /// or sparse extension and map blocks. An entry's own header is the last such block
    /// before [`TarParser::push_raw`] returns the entry: what a filter rewriting header
    /// fields must change, and nothing else.
    pub fn header_next(&self) -> bool {
        matches!(self.state, State::Header { .. } | State::SecondZero)
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
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // From the records, empty values included: upstream sets xattrs from
                // `PAXRecords`, where Go's merge would drop an empty one.
                let name = String::from_utf8(name.to_vec()).map_err(|_| {
                    ArchiveError::InvalidHeader(format!(
                        "xattr name {:?} is not UTF-8",
                        String::from_utf8_lossy(name)
                    ))
                })?;
                entry.xattrs.retain(|(n, _)| *n != name);
                entry.xattrs.push((name, value.to_vec()));
                continue;
            }
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
                _ => {}
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
        match pax_sparse(&pending.pax, &mut entry)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block with the checksum set; `edit` fills the fields.
    fn block(name: &[u8], flag: u8, size: u64, gnu: bool, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0000000\0");
        b[116..124].copy_from_slice(b"0000000\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[136..148].copy_from_slice(b"00000000000\0");
        b[156] = flag;
        if gnu {
            b[257..265].copy_from_slice(b"ustar  \0");
        } else {
            b[257..265].copy_from_slice(b"ustar\x0000");
        }
        edit(&mut b);
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    fn padded(mut data: Vec<u8>) -> Vec<u8> {
        let len = data.len() as u64;
        data.resize(data.len() + padding_of(len), 0);
        data
    }

    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len = len.to_string().len() + body;
            }
            data.extend(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut out = block(b"PaxHeaders/x", b'x', data.len() as u64, false, |_| {});
        out.extend(padded(data));
        out
    }

    /// Each entry with its payload, and the bytes that were raw.
    type Parsed = (Vec<(TarEntryHeader, Vec<u8>)>, Vec<u8>);

    /// Drives the parser over `tar` as the stream reader does.
    fn parse(tar: &[u8]) -> Result<Parsed, ArchiveError> {
        let mut p = TarParser::new();
        let mut rest = tar;
        let mut entries = Vec::new();
        let mut raw = Vec::new();
        loop {
            match p.need() {
                Need::Done => return Ok((entries, raw)),
                Need::Raw { len, .. } => {
                    let take = len.min(rest.len());
                    raw.extend_from_slice(&rest[..take]);
                    let got = p.push_raw(&rest[..take])?;
                    rest = &rest[take..];
                    if let Some(e) = got {
                        entries.push((e, Vec::new()));
                    }
                }
                Need::Payload(n) => {
                    let take = (n as usize).min(rest.len());
                    if take == 0 {
                        return Err(ArchiveError::UnexpectedEof);
                    }
                    if let Some(last) = entries.last_mut() {
                        last.1.extend_from_slice(&rest[..take]);
                    }
                    p.consume_payload(take as u64);
                    rest = &rest[take..];
                }
            }
        }
    }

    #[test]
    fn old_gnu_sparse_with_an_extension_block() {
        // Six regions: four in the header, two in one extension block.
        let regions: Vec<(u64, u64)> = (0..6).map(|i| (i * 4096, 10)).collect();
        let mut tar = block(b"sparse", b'S', 60, true, |b| {
            for (i, (o, l)) in regions[..4].iter().enumerate() {
                let at = 386 + i * 24;
                b[at..at + 12].copy_from_slice(format!("{o:011o}\0").as_bytes());
                b[at + 12..at + 24].copy_from_slice(format!("{l:011o}\0").as_bytes());
            }
            b[482] = 1;
            b[483..495].copy_from_slice(format!("{:011o}\0", 6 * 4096).as_bytes());
        });
        let mut ext = vec![0u8; BLOCK];
        for (i, (o, l)) in regions[4..].iter().enumerate() {
            let at = i * 24;
            ext[at..at + 12].copy_from_slice(format!("{o:011o}\0").as_bytes());
            ext[at + 12..at + 24].copy_from_slice(format!("{l:011o}\0").as_bytes());
        }
        tar.extend(&ext);
        tar.extend(padded(vec![b'd'; 60]));
        tar.extend([0u8; 1024]);
        let (entries, raw) = parse(&tar).unwrap();
        assert_eq!(entries.len(), 1);
        let (e, payload) = &entries[0];
        assert_eq!(e.kind, EntryKind::Regular);
        assert_eq!(e.size, 6 * 4096);
        let map = e.sparse.as_ref().unwrap();
        assert_eq!(map.regions.len(), 6);
        assert_eq!(
            map.regions[5],
            SparseRegion {
                offset: 5 * 4096,
                length: 10
            }
        );
        assert_eq!(payload, &vec![b'd'; 60]);
        // The extension block is a header byte, not payload.
        assert_eq!(raw.len() + 60, tar.len());
    }

    #[test]
    fn pax_1_0_sparse_map_is_read_from_the_data() {
        let mut tar = pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"dir/real-name"),
            ("GNU.sparse.realsize", b"1048576"),
        ]);
        let map = padded(b"2\n0\n5\n1048000\n3\n".to_vec());
        tar.extend(block(
            b"dir/GNUSparseFile.1/real-name",
            b'0',
            (map.len() + 8) as u64,
            false,
            |_| {},
        ));
        tar.extend(&map);
        tar.extend(padded(b"abcdeXYZ".to_vec()));
        tar.extend([0u8; 1024]);
        let (entries, _) = parse(&tar).unwrap();
        let (e, payload) = &entries[0];
        assert_eq!(e.path, b"dir/real-name");
        assert_eq!(e.size, 1_048_576);
        assert_eq!(e.stored_size(), 8);
        assert_eq!(payload, b"abcdeXYZ");
        assert_eq!(
            e.sparse.as_ref().unwrap().regions,
            vec![
                SparseRegion {
                    offset: 0,
                    length: 5
                },
                SparseRegion {
                    offset: 1_048_000,
                    length: 3
                }
            ]
        );
    }

    #[test]
    fn pax_0_1_sparse_map_and_bad_maps() {
        let mut tar = pax(&[
            ("GNU.sparse.size", b"100"),
            ("GNU.sparse.numblocks", b"1"),
            ("GNU.sparse.map", b"50,4"),
        ]);
        tar.extend(block(b"f", b'0', 4, false, |_| {}));
        tar.extend(padded(b"wxyz".to_vec()));
        let (entries, _) = parse(&tar).unwrap();
        assert_eq!(entries[0].0.size, 100);
        assert_eq!(entries[0].1, b"wxyz");
        // A region beyond the real size, and regions holding more than the archive stores.
        for map in [&b"98,4"[..], b"0,5"] {
            let mut bad = pax(&[
                ("GNU.sparse.size", b"100"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.map", map),
            ]);
            bad.extend(block(b"f", b'0', 4, false, |_| {}));
            bad.extend(padded(b"wxyz".to_vec()));
            assert!(matches!(parse(&bad), Err(ArchiveError::InvalidHeader(_))));
        }
    }

    #[test]
    fn records_apply_like_go() {
        // A second extended header replaces the first; empty values keep the header's, but
        // an empty xattr is an xattr.
        let mut tar = pax(&[("uid", b"5"), ("SCHILY.xattr.user.a", b"1")]);
        tar.extend(pax(&[
            ("gid", b"70000"),
            ("path", b""),
            ("SCHILY.xattr.user.empty", b""),
        ]));
        tar.extend(block(b"name", b'0', 0, false, |_| {}));
        let (entries, _) = parse(&tar).unwrap();
        let e = &entries[0].0;
        assert_eq!((e.uid, e.gid, e.path.as_slice()), (0, 70000, &b"name"[..]));
        assert_eq!(e.xattrs, vec![("user.empty".to_string(), Vec::new())]);
    }

    #[test]
    fn a_global_header_is_an_entry_and_its_padding_comes_with_the_next() {
        let mut tar = Vec::new();
        let data = b"18 comment=global\n".to_vec();
        tar.extend(block(
            b"pax_global_header",
            b'g',
            data.len() as u64,
            false,
            |_| {},
        ));
        tar.extend(padded(data));
        tar.extend(block(b"f", b'0', 0, false, |_| {}));
        let mut p = TarParser::new();
        let global = p.push_raw(&tar[..BLOCK]).unwrap();
        assert!(global.is_none());
        let global = p.push_raw(&tar[BLOCK..BLOCK + 18]).unwrap().unwrap();
        assert_eq!((global.kind, global.uid), (EntryKind::PaxGlobal, 0));
        assert_eq!(
            p.need(),
            Need::Raw {
                len: 494 + BLOCK,
                eof_ok: true
            }
        );
    }

    #[test]
    fn where_the_input_may_end() {
        let file = block(b"f", b'0', 3, false, |_| {});
        let mut tar = file.clone();
        tar.extend(padded(b"abc".to_vec()));
        // After the payload: at the padding, or after it, ends cleanly; inside it does not.
        let mut p = TarParser::new();
        p.push_raw(&tar[..BLOCK]).unwrap().unwrap();
        p.consume_payload(3);
        assert!(p.push_raw(&[]).unwrap().is_none());
        assert!(p.is_done());
        let mut p = TarParser::new();
        p.push_raw(&tar[..BLOCK]).unwrap().unwrap();
        p.consume_payload(3);
        assert!(p.push_raw(&[0u8; 509]).unwrap().is_none());
        assert!(p.is_done());
        let mut p = TarParser::new();
        p.push_raw(&tar[..BLOCK]).unwrap().unwrap();
        p.consume_payload(3);
        assert!(matches!(
            p.push_raw(&[0u8; 100]),
            Err(ArchiveError::UnexpectedEof)
        ));
        // Inside a header.
        let mut p = TarParser::new();
        assert!(matches!(
            p.push_raw(&file[..100]),
            Err(ArchiveError::UnexpectedEof)
        ));
    }
}
