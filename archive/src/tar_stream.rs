//! A streaming tar reader over the one parser ([`crate::tar_parser`]): it reads exactly the
//! bytes the parser asks for, so it never reads ahead of what it parsed, and payload can be
//! copied by someone else (the host copies file contents straight from the stream into the
//! layer, never through this reader's buffers) from [`TarStreamReader::inner_mut`].
//!
//! With raw accounting on, it keeps every byte that is not payload (header blocks, PAX / GNU
//! long-name records, sparse maps, padding, end-of-archive blocks), grouped as tar-split's
//! `RawBytes()` groups them: the padding after an entry's payload comes with the *next*
//! header, and the end-of-archive blocks with the `next_entry` call that returns `Ok(None)`.
//!
//! End of input follows Go's `archive/tar`: a clean EOF exactly where a header block would
//! start (or where the padding of the previous entry would start) ends the archive like the
//! two zero blocks do; an EOF inside a block, a payload or a padding is
//! [`ArchiveError::UnexpectedEof`].

use std::io::{self, Read};

use crate::error::ArchiveError;
pub use crate::tar_parser::{EntryKind, SparseMap, SparseRegion, TarEntryHeader};
use crate::tar_parser::{Need, TarParser};

/// A streaming tar reader; see the module documentation.
pub struct TarStreamReader<R: Read> {
    inner: R,
    parser: TarParser,
    /// `Some` when raw accounting is on: non-payload bytes gathered since the last `take_raw`.
    raw: Option<Vec<u8>>,
    /// Scratch space for the bytes the parser asks for.
    scratch: Vec<u8>,
}

impl<R: Read> TarStreamReader<R> {
    /// A reader over `inner`, which must be positioned at the start of the archive.
    pub fn new(inner: R) -> Self {
        TarStreamReader {
            inner,
            parser: TarParser::new(),
            raw: None,
            scratch: Vec::new(),
        }
    }

    /// Keep a copy of every byte that is not entry payload, for tar-split. Payload that
    /// `next_entry` skips because nobody read it is also kept, as the tar-split fork does.
    pub fn with_raw_accounting(mut self) -> Self {
        self.raw = Some(Vec::new());
        self
    }

    /// Advances to the next entry: skips whatever of the current payload was not consumed and
    /// its padding, reads the header(s). `Ok(None)` at the end-of-archive marker (two zero
    /// blocks) or at a clean EOF on a block boundary, like Go's archive/tar.
    pub fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        loop {
            match self.parser.need() {
                Need::Done => return Ok(None),
                Need::Payload(n) => self.skip_payload(n)?,
                Need::Raw { len, .. } => {
                    let filled = self.fill_scratch(len)?;
                    if let Some(raw) = self.raw.as_mut() {
                        raw.extend_from_slice(&self.scratch[..filled]);
                    }
                    if let Some(entry) = self.parser.push_raw(&self.scratch[..filled])? {
                        return Ok(Some(entry));
                    }
                }
            }
        }
    }

    /// Reads payload of the current entry (0 at its end).
    pub fn read_payload(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let remaining = self.parser.payload_remaining();
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining)
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
            return Err(ArchiveError::UnexpectedEof);
        }
        self.parser.consume_payload(n as u64);
        Ok(n)
    }

    /// For payload copied by someone else straight from [`Self::inner_mut`]: marks `n` bytes
    /// consumed (at most what remains).
    pub fn payload_consumed(&mut self, n: u64) {
        self.parser.consume_payload(n);
    }

    /// Payload bytes of the current entry not consumed yet (for a sparse file, the bytes of
    /// its data regions).
    pub fn payload_remaining(&self) -> u64 {
        self.parser.payload_remaining()
    }

    /// The underlying reader, positioned at the first unconsumed payload byte of the current
    /// entry (the reader never reads ahead of what it has parsed).
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

    /// Discards the unconsumed payload. Like the tar-split fork's `discard`, skipped payload
    /// counts as raw when accounting is on, so the raw stream plus the payload actually read
    /// is always the whole input.
    fn skip_payload(&mut self, mut remaining: u64) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            let n = self.read_payload(&mut scratch[..want])?;
            if let Some(raw) = self.raw.as_mut() {
                raw.extend_from_slice(&scratch[..n]);
            }
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Reads up to `len` bytes into the scratch buffer, stopping early only at the end of
    /// the input; returns how many it got.
    fn fill_scratch(&mut self, len: usize) -> Result<usize, ArchiveError> {
        self.scratch.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            match self.inner.read(&mut self.scratch[filled..len]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::Stream(e)),
            }
        }
        Ok(filled)
    }
}

/// Where [`crate::apply::apply_entries`] takes a tar's entries from: a reader that parses
/// the bytes itself ([`TarStreamReader`]), or a stream whose headers the one parser already
/// read on the way in ([`ParsedEntries`]: the store parses every header of an import to
/// record tar-split, and hands the headers on instead of having them parsed twice).
pub trait TarEntries {
    /// What payload is read from, positioned at the current entry's first unconsumed payload
    /// byte (someone else may copy payload straight from it).
    type Input: Read + ?Sized;

    /// Advances to the next entry, skipping what was left of the current one; `Ok(None)` at
    /// the end of the archive.
    fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError>;

    /// Payload bytes of the current entry not consumed yet.
    fn payload_remaining(&self) -> u64;

    /// Marks `n` bytes of payload copied by someone else from [`TarEntries::input_mut`].
    fn payload_consumed(&mut self, n: u64);

    /// The stream payload is read from.
    fn input_mut(&mut self) -> &mut Self::Input;
}

impl<R: Read + ?Sized> TarEntries for TarStreamReader<&mut R> {
    type Input = R;

    fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        TarStreamReader::next_entry(self)
    }

    fn payload_remaining(&self) -> u64 {
        TarStreamReader::payload_remaining(self)
    }

    fn payload_consumed(&mut self, n: u64) {
        TarStreamReader::payload_consumed(self, n)
    }

    fn input_mut(&mut self) -> &mut R {
        self.inner_mut()
    }
}

/// A tar stream whose headers were parsed before it got here: the headers in order, and the
/// tar's bytes. Reading gives the tar's bytes as they come (all of them, for a reader that
/// parses them itself); [`ParsedTar::next_header`] skips to the next entry's payload instead.
pub trait ParsedTar: Read {
    /// Skips what is left of the current entry and the next entry's header blocks, and
    /// returns that entry's header (the stream is then at its payload, whose length is its
    /// [`TarEntryHeader::stored_size`]); `Ok(None)` at the end of the archive. An archive the
    /// parser refused is an error here, at the entry where it was refused.
    fn next_header(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError>;
}

/// The entries of a [`ParsedTar`], for [`crate::apply::apply_entries`].
pub struct ParsedEntries<'a, P: ParsedTar + ?Sized> {
    tar: &'a mut P,
    /// Payload of the current entry not consumed yet.
    remaining: u64,
}

impl<'a, P: ParsedTar + ?Sized> ParsedEntries<'a, P> {
    /// The entries of `tar`, which must be at the start of the archive (or between entries).
    pub fn new(tar: &'a mut P) -> Self {
        ParsedEntries { tar, remaining: 0 }
    }
}

impl<P: ParsedTar + ?Sized> TarEntries for ParsedEntries<'_, P> {
    type Input = P;

    fn next_entry(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        let next = self.tar.next_header()?;
        self.remaining = next.as_ref().map_or(0, TarEntryHeader::stored_size);
        Ok(next)
    }

    fn payload_remaining(&self) -> u64 {
        self.remaining
    }

    fn payload_consumed(&mut self, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
    }

    fn input_mut(&mut self) -> &mut P {
        self.tar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar_parser::header::BLOCK;

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
}
