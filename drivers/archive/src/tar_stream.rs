//! A streaming tar reader with raw-byte accounting.
//!
//! This is a hand-written state machine rather than `tar::Archive` because the layer pipeline
//! needs two things that crate does not offer: (1) an exact account of every byte that is *not*
//! entry payload (header blocks, PAX / GNU long-name records, padding, end-of-archive blocks), in
//! the order and grouping Go's `archive/tar` fork in vbatts/tar-split reports them with
//! `RawAccounting`, so tar-split metadata can be written byte-exact; and (2) payload copies done by
//! someone else (the host copies file contents straight from the stream into the layer, never
//! through this reader's buffers), which needs a reader that never reads ahead of what it parsed.
//! The `tar` crate is used only to decode the fields of a header block.
//!
//! Grouping of raw bytes (matches tar-split's `RawBytes()`): the padding after an entry's payload
//! is reported together with the *next* header, i.e. it is gathered by [`TarStreamReader::next_entry`],
//! not after the payload. The end-of-archive zero blocks are gathered by the `next_entry` call that
//! returns `Ok(None)`.
//!
//! End of input follows Go's `archive/tar`: a clean EOF exactly where a header block would start
//! (or where the padding of the previous entry would start) ends the archive like the two zero
//! blocks do; an EOF inside a block, a payload or a padding is [`ArchiveError::UnexpectedEof`].

use std::io::{self, Read};

use crate::error::ArchiveError;

/// Size of a tar block.
const BLOCK: usize = 512;
/// Upper bound on PAX and GNU long-name records, as Go's `maxSpecialFileSize`: a hostile header
/// cannot make us buffer an arbitrary amount of metadata.
const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

/// What an entry is, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`'0'`, or NUL without a trailing slash in the name).
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
    /// An old-GNU sparse file (`'S'`); not supported by the applier.
    GnuSparse,
    /// Any other type flag, as it appears in the header.
    Other(u8),
}

impl EntryKind {
    /// The type flag of a header, with Go's rule for the old NUL flag.
    fn from_flag(flag: u8, path: &[u8]) -> EntryKind {
        match flag {
            b'0' => EntryKind::Regular,
            0 if path.ends_with(b"/") => EntryKind::Directory,
            0 => EntryKind::Regular,
            b'1' => EntryKind::Link,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::Char,
            b'4' => EntryKind::Block,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            b'g' => EntryKind::PaxGlobal,
            b'S' => EntryKind::GnuSparse,
            other => EntryKind::Other(other),
        }
    }

    /// Types whose size field never announces a payload (Go's `isHeaderOnlyType`).
    fn is_header_only(self) -> bool {
        matches!(
            self,
            EntryKind::Link
                | EntryKind::Symlink
                | EntryKind::Char
                | EntryKind::Block
                | EntryKind::Directory
                | EntryKind::Fifo
        )
    }
}

/// The decoded header of one entry, after PAX and GNU long-name records were merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntryHeader {
    /// The full name as in the archive (ustar prefix joined, PAX `path` / GNU long name applied);
    /// not cleaned.
    pub path: Vec<u8>,
    /// Target of a hard or symbolic link (PAX `linkpath` / GNU long link applied), else empty.
    pub link_name: Vec<u8>,
    /// The entry's type.
    pub kind: EntryKind,
    /// Permission and mode bits as stored (may include setuid/setgid/sticky).
    pub mode: u32,
    /// Owner, as stored (container IDs).
    pub uid: u64,
    /// Group, as stored (container IDs).
    pub gid: u64,
    /// The size field as Go reports it (PAX `size` applied). Header-only types (links, dirs,
    /// devices, fifos) have no payload whatever this says: use [`TarStreamReader::payload_remaining`].
    pub size: u64,
    /// Modification time: seconds since the epoch and nanoseconds.
    pub mtime: (i64, u32),
    /// Access time if the archive carries one (PAX `atime` or the GNU header field).
    pub atime: Option<(i64, u32)>,
    /// Device major number (devices only; 0 otherwise).
    pub dev_major: u32,
    /// Device minor number (devices only; 0 otherwise).
    pub dev_minor: u32,
    /// Extended attributes from `SCHILY.xattr.*` PAX records, in archive order, later duplicates
    /// replacing earlier ones.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Owner name, if any.
    pub uname: Option<Vec<u8>>,
    /// Group name, if any.
    pub gname: Option<Vec<u8>>,
    /// All PAX records that applied to this entry (key, value), in order.
    pub pax_records: Vec<(String, Vec<u8>)>,
}

/// A streaming tar reader; see the module documentation.
pub struct TarStreamReader<R: Read> {
    inner: R,
    /// `Some` when raw accounting is on: non-payload bytes gathered since the last `take_raw`.
    raw: Option<Vec<u8>>,
    /// Payload bytes of the current entry not consumed yet.
    remaining: u64,
    /// Padding bytes that follow the current entry's payload.
    pad: u64,
    /// The end-of-archive was reached (or an error happened): `next_entry` answers `None`.
    finished: bool,
}

/// Metadata gathered from PAX and GNU long-name records that precede an entry.
#[derive(Default)]
struct PendingMeta {
    pax: Vec<(String, Vec<u8>)>,
    gnu_long_name: Option<Vec<u8>>,
    gnu_long_link: Option<Vec<u8>>,
}

/// Outcome of trying to fill a buffer at a place where EOF may be legitimate.
enum Fill {
    Full,
    CleanEof,
}

impl<R: Read> TarStreamReader<R> {
    /// A reader over `inner`, which must be positioned at the start of the archive.
    pub fn new(inner: R) -> Self {
        TarStreamReader {
            inner,
            raw: None,
            remaining: 0,
            pad: 0,
            finished: false,
        }
    }

    /// Keep a copy of every byte that is not entry payload (headers incl. PAX/GNU long-name
    /// records, padding, end-of-archive blocks), for tar-split. Payload that `next_entry` skips
    /// because nobody read it is also kept, as the tar-split fork does.
    pub fn with_raw_accounting(mut self) -> Self {
        self.raw = Some(Vec::new());
        self
    }

    /// Advances to the next entry: skips whatever of the current payload was not consumed and its
    /// padding, reads the header(s). `Ok(None)` at the end-of-archive marker (two zero blocks) or
    /// at a clean EOF on a block boundary, like Go's archive/tar.
    pub fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        if self.finished {
            return Ok(None);
        }
        self.skip_payload()?;
        if let Fill::CleanEof = self.read_padding()? {
            self.finished = true;
            return Ok(None);
        }
        let mut meta = PendingMeta::default();
        loop {
            let mut block = [0u8; BLOCK];
            if let Fill::CleanEof = self.fill_raw(&mut block, true)? {
                self.finished = true;
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                let mut second = [0u8; BLOCK];
                if let Fill::CleanEof = self.fill_raw(&mut second, true)? {
                    self.finished = true;
                    return Ok(None);
                }
                self.finished = true;
                if second.iter().all(|b| *b == 0) {
                    return Ok(None);
                }
                return Err(ArchiveError::InvalidHeader(
                    "zero block followed by a non-zero block".into(),
                ));
            }
            let header = tar::Header::from_byte_slice(&block);
            verify_checksum(&block)?;
            let flag = header.entry_type().as_byte();
            let block_size = u64::try_from(parse_numeric("size", &block[124..136])?)
                .map_err(|_| ArchiveError::InvalidHeader("negative size".into()))?;
            match flag {
                b'x' | b'L' | b'K' => {
                    let data = self.read_special(block_size)?;
                    match flag {
                        b'x' => meta.pax.extend(parse_pax(&data)?),
                        b'L' => meta.gnu_long_name = Some(c_string(&data).to_vec()),
                        _ => meta.gnu_long_link = Some(c_string(&data).to_vec()),
                    }
                    continue;
                }
                b'g' => {
                    let data = self.read_special(block_size)?;
                    let mut entry = decode_header(header, PendingMeta::default())?;
                    entry.pax_records = parse_pax(&data)?;
                    entry.size = 0;
                    return Ok(Some(entry));
                }
                _ => {}
            }
            let entry = decode_header(header, meta)?;
            // Header-only types have no payload in Go's reader, whatever the size field says; an
            // old-GNU sparse entry's payload is the stored fragments (the size field), not the
            // real size.
            let payload = if entry.kind.is_header_only() {
                0
            } else if entry.kind == EntryKind::GnuSparse {
                block_size
            } else {
                entry.size
            };
            self.start_payload(payload);
            return Ok(Some(entry));
        }
    }

    /// Reads payload of the current entry (0 at its end).
    pub fn read_payload(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::Stream(e)),
            }
        };
        if n == 0 {
            self.finished = true;
            return Err(ArchiveError::UnexpectedEof);
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// For payload copied by someone else straight from [`Self::inner_mut`]: marks `n` bytes
    /// consumed (at most what remains).
    pub fn payload_consumed(&mut self, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
    }

    /// Payload bytes of the current entry not consumed yet.
    pub fn payload_remaining(&self) -> u64 {
        self.remaining
    }

    /// The underlying reader, positioned at the first unconsumed payload byte of the current entry
    /// (the reader never reads ahead of what it has parsed).
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Raw bytes gathered since the last call (empty without raw accounting).
    pub fn take_raw(&mut self) -> Vec<u8> {
        self.raw.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Gives back the underlying reader, positioned after the last byte this reader consumed.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn start_payload(&mut self, len: u64) {
        self.remaining = len;
        self.pad = padding_of(len);
    }

    /// Discards the unconsumed payload. Like the tar-split fork's `discard`, skipped payload counts
    /// as raw when accounting is on, so the raw stream plus the payload actually read is always
    /// the whole input.
    fn skip_payload(&mut self) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while self.remaining > 0 {
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            let n = self.read_payload(&mut scratch[..want])?;
            if let Some(raw) = self.raw.as_mut() {
                raw.extend_from_slice(&scratch[..n]);
            }
        }
        Ok(())
    }

    /// Reads the padding after the previous payload; a clean EOF where it starts is the end of the
    /// archive (Go's `tryReadFull` in `next`).
    fn read_padding(&mut self) -> Result<Fill, ArchiveError> {
        let pad = self.pad as usize;
        self.pad = 0;
        if pad == 0 {
            return Ok(Fill::Full);
        }
        let mut buf = [0u8; BLOCK];
        self.fill_raw(&mut buf[..pad], true)
    }

    /// Reads the payload of a PAX or GNU long-name record, plus its padding, all raw.
    fn read_special(&mut self, len: u64) -> Result<Vec<u8>, ArchiveError> {
        if len > MAX_SPECIAL_FILE_SIZE {
            return Err(ArchiveError::InvalidHeader(format!(
                "extended header of {len} bytes exceeds the limit"
            )));
        }
        let mut data = vec![0u8; len as usize];
        self.fill_raw(&mut data, false)?;
        self.pad = padding_of(len);
        if let Fill::CleanEof = self.read_padding()? {
            return Err(ArchiveError::UnexpectedEof);
        }
        Ok(data)
    }

    /// Fills `buf` from the input and records it as raw. With `eof_ok`, zero bytes before EOF is
    /// [`Fill::CleanEof`]; a partial fill is always [`ArchiveError::UnexpectedEof`].
    fn fill_raw(&mut self, buf: &mut [u8], eof_ok: bool) -> Result<Fill, ArchiveError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::Stream(e)),
            }
        }
        if filled == 0 && eof_ok && !buf.is_empty() {
            return Ok(Fill::CleanEof);
        }
        if filled < buf.len() {
            self.finished = true;
            return Err(ArchiveError::UnexpectedEof);
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.extend_from_slice(buf);
        }
        Ok(Fill::Full)
    }
}

/// Bytes of padding after a payload of `len` bytes.
fn padding_of(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

/// Checks the header checksum the way Go does (unsigned or signed sum, checksum field as spaces).
fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), ArchiveError> {
    let stored = parse_numeric("checksum", &block[148..156])?;
    let mut unsigned: u32 = 0;
    let mut signed: i64 = 0;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    if stored == i64::from(unsigned) || stored == signed {
        Ok(())
    } else {
        Err(ArchiveError::InvalidHeader(format!(
            "checksum mismatch (stored {stored}, computed {unsigned})"
        )))
    }
}

/// Parses a numeric header field like Go's `parseNumeric`: base-256 when the high bit is set,
/// else octal with surrounding spaces and NULs trimmed, an empty field being 0. Not the `tar`
/// crate's accessors: they reject empty fields, which Go (and so real archives) accept.
fn parse_numeric(name: &str, field: &[u8]) -> Result<i64, ArchiveError> {
    let bad = || {
        ArchiveError::InvalidHeader(format!("{name} field {:?}", String::from_utf8_lossy(field)))
    };
    if let Some(first) = field.first().filter(|b| **b & 0x80 != 0) {
        // Two's complement, sign in bit 6 of the first byte.
        let negative = first & 0x40 != 0;
        let mut value: i128 = i128::from(first & 0x7f);
        if negative {
            value -= 0x80;
        }
        for b in &field[1..] {
            value = (value << 8) | i128::from(*b);
            if value > i128::from(i64::MAX) || value < i128::from(i64::MIN) {
                return Err(bad());
            }
        }
        return i64::try_from(value).map_err(|_| bad());
    }
    let trimmed = trim_field(field);
    if trimmed.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(c_string(trimmed)).map_err(|_| bad())?;
    i64::from_str_radix(text, 8).map_err(|_| bad())
}

/// Trims spaces and NULs at both ends.
fn trim_field(field: &[u8]) -> &[u8] {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |e| e + 1);
    &field[start..end]
}

/// The bytes before the first NUL (Go's `cString`).
fn c_string(b: &[u8]) -> &[u8] {
    match b.iter().position(|c| *c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// Parses PAX records by their length prefix. Not `tar::PaxExtensions`: it splits on newlines,
/// which breaks on binary xattr values that contain one; Go parses by length.
fn parse_pax(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let bad = |why: &str| ArchiveError::InvalidHeader(format!("malformed PAX record: {why}"));
    let mut records = Vec::new();
    // Trailing NULs are tolerated (some writers pad the record block).
    while !data.is_empty() && data.iter().any(|b| *b != 0) {
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad length"))?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("length out of range"));
        }
        let record = &data[space + 1..len - 1];
        data = &data[len..];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("no '='"))?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| bad("key is not UTF-8"))?;
        let value = &record[eq + 1..];
        // Go's validPAXRecord: names may not hide a NUL.
        if matches!(key, "path" | "linkpath" | "uname" | "gname") && value.contains(&0) {
            return Err(bad("NUL in a name"));
        }
        records.push((key.to_string(), value.to_vec()));
    }
    Ok(records)
}

/// Parses a PAX time "secs[.frac]" into normalised (secs, nanos).
fn parse_pax_time(value: &[u8]) -> Result<(i64, u32), ArchiveError> {
    let bad = || {
        ArchiveError::InvalidHeader(format!("bad PAX time {:?}", String::from_utf8_lossy(value)))
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (secs_text, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let secs: i64 = secs_text.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().map_err(|_| bad())?;
    if secs_text.starts_with('-') && nanos > 0 {
        Ok((secs.checked_sub(1).ok_or_else(bad)?, 1_000_000_000 - nanos))
    } else {
        Ok((secs, nanos))
    }
}

fn parse_pax_number(key: &str, value: &[u8]) -> Result<u64, ArchiveError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ArchiveError::InvalidHeader(format!(
                "bad PAX {key} {:?}",
                String::from_utf8_lossy(value)
            ))
        })
}

/// Decodes a header block and merges the pending PAX / GNU records (PAX first, then GNU long
/// names, as Go does).
fn decode_header(header: &tar::Header, meta: PendingMeta) -> Result<TarEntryHeader, ArchiveError> {
    let block = header.as_bytes();
    let path = header.path_bytes().into_owned();
    let flag = header.entry_type().as_byte();
    let size = parse_numeric("size", &block[124..136])?;
    let mut entry = TarEntryHeader {
        kind: EntryKind::from_flag(flag, &path),
        path,
        link_name: header
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default(),
        mode: u32::try_from(parse_numeric("mode", &block[100..108])? & 0o7777_7777).unwrap_or(0),
        uid: u64::try_from(parse_numeric("uid", &block[108..116])?).unwrap_or(0),
        gid: u64::try_from(parse_numeric("gid", &block[116..124])?).unwrap_or(0),
        size: u64::try_from(size)
            .map_err(|_| ArchiveError::InvalidHeader("negative size".into()))?,
        mtime: (parse_numeric("mtime", &block[136..148])?, 0),
        atime: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
        uname: header
            .username_bytes()
            .filter(|u| !u.is_empty())
            .map(<[u8]>::to_vec),
        gname: header
            .groupname_bytes()
            .filter(|g| !g.is_empty())
            .map(<[u8]>::to_vec),
        pax_records: Vec::new(),
    };
    let has_dev_fields = header.as_ustar().is_some() || header.as_gnu().is_some();
    if matches!(entry.kind, EntryKind::Char | EntryKind::Block) && has_dev_fields {
        entry.dev_major = u32::try_from(parse_numeric("devmajor", &block[329..337])?)
            .map_err(|_| ArchiveError::InvalidHeader("devmajor out of range".into()))?;
        entry.dev_minor = u32::try_from(parse_numeric("devminor", &block[337..345])?)
            .map_err(|_| ArchiveError::InvalidHeader("devminor out of range".into()))?;
    }
    if header.as_gnu().is_some() {
        // GNU headers may carry an atime; zero means "not set".
        let atime = parse_numeric("atime", &block[345..357])?;
        if atime != 0 {
            entry.atime = Some((atime, 0));
        }
    }
    for (key, value) in &meta.pax {
        match key.as_str() {
            "path" => entry.path = value.clone(),
            "linkpath" => entry.link_name = value.clone(),
            "uname" => entry.uname = Some(value.clone()),
            "gname" => entry.gname = Some(value.clone()),
            "uid" => entry.uid = parse_pax_number(key, value)?,
            "gid" => entry.gid = parse_pax_number(key, value)?,
            "size" => entry.size = parse_pax_number(key, value)?,
            "mtime" => entry.mtime = parse_pax_time(value)?,
            "atime" => entry.atime = Some(parse_pax_time(value)?),
            _ => {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    entry.xattrs.retain(|(n, _)| n != name);
                    entry.xattrs.push((name.to_string(), value.clone()));
                }
            }
        }
    }
    entry.pax_records = meta.pax;
    if let Some(name) = meta.gnu_long_name {
        entry.path = name;
    }
    if let Some(link) = meta.gnu_long_link {
        entry.link_name = link;
    }
    // Go decides the NUL type flag after the final name is known.
    if flag == 0 {
        entry.kind = EntryKind::from_flag(0, &entry.path);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_700_000_000);
        h
    }

    /// A tar with a file, a dir, a symlink, a hardlink and an empty file.
    fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Directory, 0);
        h.set_mode(0o755);
        b.append_data(&mut h, "dir/", io::empty()).unwrap();
        let mut h = header(tar::EntryType::Regular, 5);
        b.append_data(&mut h, "dir/file", &b"hello"[..]).unwrap();
        let mut h = header(tar::EntryType::Regular, 0);
        b.append_data(&mut h, "empty", io::empty()).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "link", "dir/file").unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "hard", "dir/file").unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(data: &[u8]) -> Result<Vec<(TarEntryHeader, Vec<u8>)>, ArchiveError> {
        let mut r = TarStreamReader::new(data);
        let mut out = Vec::new();
        while let Some(h) = r.next_entry()? {
            let mut payload = Vec::new();
            let mut buf = [0u8; 3];
            loop {
                let n = r.read_payload(&mut buf)?;
                if n == 0 {
                    break;
                }
                payload.extend_from_slice(&buf[..n]);
            }
            out.push((h, payload));
        }
        Ok(out)
    }

    #[test]
    fn plain_entries_are_decoded() {
        let entries = read_all(&sample_tar()).unwrap();
        let names: Vec<_> = entries.iter().map(|(h, _)| h.path.clone()).collect();
        assert_eq!(
            names,
            vec![
                b"dir/".to_vec(),
                b"dir/file".to_vec(),
                b"empty".to_vec(),
                b"link".to_vec(),
                b"hard".to_vec()
            ]
        );
        let (dir, _) = &entries[0];
        assert_eq!(dir.kind, EntryKind::Directory);
        assert_eq!(dir.mode, 0o755);
        let (file, payload) = &entries[1];
        assert_eq!(file.kind, EntryKind::Regular);
        assert_eq!(payload, b"hello");
        assert_eq!((file.uid, file.gid), (1000, 1001));
        assert_eq!(file.mtime, (1_700_000_000, 0));
        assert_eq!(entries[2].0.size, 0);
        assert!(entries[2].1.is_empty());
        assert_eq!(entries[3].0.kind, EntryKind::Symlink);
        assert_eq!(entries[3].0.link_name, b"dir/file");
        assert_eq!(entries[4].0.kind, EntryKind::Link);
        assert_eq!(entries[4].0.link_name, b"dir/file");
    }

    #[test]
    fn unread_payload_is_skipped() {
        let data = sample_tar();
        let mut r = TarStreamReader::new(&data[..]);
        let mut names = Vec::new();
        while let Some(h) = r.next_entry().unwrap() {
            names.push(h.path);
        }
        assert_eq!(names.len(), 5);
    }

    #[test]
    fn pax_long_names_and_xattrs() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("path", long.as_bytes()),
            ("SCHILY.xattr.user.a", &b"one\nline\0two"[..]),
            ("SCHILY.xattr.security.capability", &b"\x01\x02"[..]),
            ("mtime", &b"1700000000.25"[..]),
            ("uid", &b"70000"[..]),
        ])
        .unwrap();
        let mut h = header(tar::EntryType::Regular, 2);
        b.append_data(&mut h, "short", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let entries = read_all(&data).unwrap();
        assert_eq!(entries.len(), 1);
        let (h, payload) = &entries[0];
        assert_eq!(h.path, long.as_bytes());
        assert_eq!(payload, b"hi");
        assert_eq!(h.mtime, (1_700_000_000, 250_000_000));
        assert_eq!(h.uid, 70000);
        assert_eq!(
            h.xattrs,
            vec![
                ("user.a".to_string(), b"one\nline\0two".to_vec()),
                ("security.capability".to_string(), b"\x01\x02".to_vec()),
            ]
        );
    }

    #[test]
    fn gnu_long_names() {
        let long = "x".repeat(200);
        let target = "y".repeat(150);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(3);
        h.set_mode(0o600);
        // append_data writes a GNU long-name record for names over 100 bytes.
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "s", &target).unwrap();
        let data = b.into_inner().unwrap();
        let entries = read_all(&data).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.path, long.as_bytes());
        assert_eq!(entries[0].1, b"abc");
        assert_eq!(entries[1].0.link_name, target.as_bytes());
    }

    #[test]
    fn raw_accounting_concatenation_is_the_original() {
        let long = "z".repeat(300);
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])])
            .unwrap();
        let mut h = header(tar::EntryType::Regular, 700);
        b.append_data(&mut h, "a", &[7u8; 700][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, &long, &b"q"[..]).unwrap();
        let mut h = header(tar::EntryType::Directory, 0);
        b.append_data(&mut h, "d/", io::empty()).unwrap();
        let data = b.into_inner().unwrap();

        let mut r = TarStreamReader::new(&data[..]).with_raw_accounting();
        let mut rebuilt = Vec::new();
        let mut raw_before = Vec::new();
        while let Some(_h) = r.next_entry().unwrap() {
            let raw = r.take_raw();
            raw_before.push(raw.len());
            rebuilt.extend_from_slice(&raw);
            let mut buf = [0u8; 100];
            loop {
                let n = r.read_payload(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                rebuilt.extend_from_slice(&buf[..n]);
            }
            // Like tar-split: nothing is raw between the payload and the next header read.
            assert!(r.take_raw().is_empty());
        }
        rebuilt.extend_from_slice(&r.take_raw());
        assert_eq!(rebuilt, data);
        // First entry: PAX header block + PAX record block + header block.
        assert_eq!(raw_before[0], 3 * BLOCK);
        // Second: the 700-byte payload's padding (324) + long-name header + name block + header.
        assert_eq!(raw_before[1], 324 + 3 * BLOCK);
    }

    #[test]
    fn skipped_payload_counts_as_raw_like_tar_split() {
        let data = sample_tar();
        let mut r = TarStreamReader::new(&data[..]).with_raw_accounting();
        let mut raw = Vec::new();
        while r.next_entry().unwrap().is_some() {
            raw.extend_from_slice(&r.take_raw());
        }
        raw.extend_from_slice(&r.take_raw());
        assert_eq!(raw, data);
    }

    #[test]
    fn payload_copied_from_inner() {
        let data = sample_tar();
        let mut r = TarStreamReader::new(io::Cursor::new(data));
        r.next_entry().unwrap();
        r.next_entry().unwrap();
        assert_eq!(r.payload_remaining(), 5);
        let mut copied = Vec::new();
        let n = io::copy(&mut r.inner_mut().take(5), &mut copied).unwrap();
        r.payload_consumed(n);
        assert_eq!(copied, b"hello");
        assert_eq!(r.payload_remaining(), 0);
        assert_eq!(r.next_entry().unwrap().unwrap().path, b"empty");
    }

    #[test]
    fn truncated_payload_is_unexpected_eof() {
        let data = sample_tar();
        // Cut inside "hello" (second entry: header at 512, payload at 1024).
        let cut = &data[..1024 + 3];
        assert!(matches!(read_all(cut), Err(ArchiveError::UnexpectedEof)));
        // Cut inside a header block.
        let cut = &data[..512 + 100];
        assert!(matches!(read_all(cut), Err(ArchiveError::UnexpectedEof)));
    }

    #[test]
    fn eof_on_block_boundary_ends_like_go() {
        let data = sample_tar();
        // Without the end-of-archive blocks: Go's reader ends cleanly.
        let without_trailer = &data[..data.len() - 1024];
        assert_eq!(read_all(without_trailer).unwrap().len(), 5);
        // With one zero block only.
        let one_zero = &data[..data.len() - 512];
        assert_eq!(read_all(one_zero).unwrap().len(), 5);
    }

    #[test]
    fn junk_is_invalid_header() {
        let junk = vec![0x41u8; 2048];
        assert!(matches!(
            read_all(&junk),
            Err(ArchiveError::InvalidHeader(_))
        ));
        let mut data = sample_tar();
        data[600] ^= 0x55; // corrupt the second header's name: checksum mismatch
        assert!(matches!(
            read_all(&data),
            Err(ArchiveError::InvalidHeader(_))
        ));
        // A zero block followed by a non-zero block.
        let mut data = vec![0u8; 512];
        data.extend_from_slice(&sample_tar());
        assert!(matches!(
            read_all(&data),
            Err(ArchiveError::InvalidHeader(_))
        ));
    }

    #[test]
    fn hardlink_size_field_has_no_payload() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Link, 0);
        h.set_link_name("target").unwrap();
        h.set_path("hl").unwrap();
        h.set_size(10); // bogus size on a header-only type: Go reads no payload
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        let mut h = header(tar::EntryType::Regular, 1);
        b.append_data(&mut h, "after", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let entries = read_all(&data).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.size, 10);
        assert!(entries[0].1.is_empty());
        assert_eq!(entries[1].1, b"x");
    }

    /// Mutated and truncated archives never panic: every outcome is a value or an error.
    #[test]
    fn mutations_never_panic() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", &b"p/a/x"[..]), ("SCHILY.xattr.user.a", &b"1"[..])])
            .unwrap();
        let mut h = header(tar::EntryType::Regular, 600);
        b.append_data(&mut h, "f", &[1u8; 600][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        b.append_data(&mut h, "g".repeat(150), io::empty()).unwrap();
        let base = [b.into_inner().unwrap(), sample_tar()].concat();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut data = base.clone();
            for _ in 0..(1 + next() % 8) {
                let at = (next() as usize) % data.len();
                data[at] = next() as u8;
            }
            if round % 3 == 0 {
                data.truncate((next() as usize) % data.len());
            }
            let mut r = TarStreamReader::new(&data[..]).with_raw_accounting();
            let mut buf = [0u8; 97];
            'entries: for _ in 0..64 {
                match r.next_entry() {
                    Ok(Some(_)) => loop {
                        match r.read_payload(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(_) => break 'entries,
                        }
                    },
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn pax_names_with_nul_are_invalid() {
        assert!(
            matches!(parse_pax(b"15 path=a\0/etc\n"), Err(ArchiveError::InvalidHeader(m)) if m.contains("NUL"))
        );
        let ok = parse_pax(b"20 SCHILY.xattr.a=\0\n").unwrap();
        assert_eq!(ok, vec![("SCHILY.xattr.a".to_string(), vec![0])]);
    }

    #[test]
    fn pax_time_parsing() {
        assert_eq!(parse_pax_time(b"12").unwrap(), (12, 0));
        assert_eq!(parse_pax_time(b"12.5").unwrap(), (12, 500_000_000));
        assert_eq!(parse_pax_time(b"-1.5").unwrap(), (-2, 500_000_000));
        assert_eq!(parse_pax_time(b"1.1234567891").unwrap(), (1, 123_456_789));
        assert!(parse_pax_time(b"x").is_err());
        assert!(parse_pax_time(b"-9223372036854775808.5").is_err());
    }
}
