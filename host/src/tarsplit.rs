//! tar-split: the record that lets an imported layer archive be re-created byte for byte
//! from the files of the layer (spec §5.2, FACTS.md).
//!
//! The format is that of Go's `vbatts/tar-split` as containers/storage writes it: a gzip
//! stream of JSON objects, one a line, each either a raw segment (type 2: tar headers,
//! padding, end-of-archive blocks and anything after them, as base64) or a file entry
//! (type 1: the entry's name, its size and the CRC-64/ISO of its content). No Rust crate
//! writes it, so it is written here, field order and string escaping included, so that
//! the lines equal those the Go writer produces for the same tar.
//!
//! The parts: [`TarSplitWriter`] packs entries; [`TarSplitReader`] reads them back;
//! [`Disassembler`] walks a tar stream fed to it in pieces and records it (a push parser,
//! so that the same bytes can be handed to a driver without a second thread);
//! [`reassemble`] writes the original tar from a tar-split and the layer's files.
//!
//! What can go wrong: the tar is malformed or truncated, names repeat
//! (`duplicates of file paths not supported`), the tar-split file is corrupt, a file's
//! content no longer matches its checksum (`file integrity checksum failed for "<name>"`).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crc_fast::{CrcAlgorithm, Digest as Crc64Digest};

use crate::driver::{DriverError, FileGetter};

/// A new digest of the CRC tar-split stores for file contents (Go's
/// `crc64.MakeTable(crc64.ISO)`). Every byte of every imported or re-created file goes through
/// it, so it is `crc-fast`'s carry-less-multiply (PCLMULQDQ) implementation, many times the
/// speed of a table-driven one.
fn crc64() -> Crc64Digest {
    Crc64Digest::new(CrcAlgorithm::Crc64GoIso)
}

/// Tar block size.
const BLOCK: usize = 512;
/// Upper bound of a PAX or GNU long-name header's content (Go's `maxSpecialFileSize`).
const MAX_SPECIAL_FILE: u64 = 1 << 20;
/// Upper bound of raw bytes between two file entries; only a chain of meta headers can
/// reach it, and nothing legitimate does.
const MAX_RAW: usize = 16 << 20;
/// Segment size for what follows the end-of-archive blocks (Go reads it in 1 MiB chunks).
const TRAILING_CHUNK: usize = 1 << 20;

/// Errors of writing, reading, disassembling and reassembling tar-split.
#[derive(Debug, thiserror::Error)]
pub enum TarSplitError {
    /// Reading or writing a stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Two entries of one archive have the same cleaned path (Go's `ErrDuplicatePath`).
    #[error("duplicates of file paths not supported: {0:?}")]
    DuplicatePath(String),
    /// A tar header is malformed.
    #[error("archive/tar: invalid tar header: {0}")]
    InvalidHeader(String),
    /// The tar ends inside a header or an entry's content.
    #[error("unexpected EOF in the layer tar")]
    UnexpectedEof,
    /// The tar uses a feature whose bytes cannot be re-created from the files.
    #[error("tar-split: {0} are not supported")]
    Unsupported(&'static str),
    /// A tar-split line is not valid JSON or not an entry.
    #[error("corrupt tar-split data: {0}")]
    Corrupt(String),
    /// A file's content does not match the checksum recorded at import.
    #[error("file integrity checksum failed for {0:?}")]
    ChecksumMismatch(String),
    /// The layer could not give a file's content.
    #[error("reading {name:?} from the layer: {source}")]
    File {
        /// The entry name.
        name: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
}

/// Result of tar-split operations.
pub type Result<T> = std::result::Result<T, TarSplitError>;

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> TarSplitError {
    move |source| TarSplitError::Io { context, source }
}

/// One record of a tar-split stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarSplitEntry {
    /// Raw bytes of the archive other than file contents (type 2).
    Segment(Vec<u8>),
    /// A tar entry (type 1), whatever its kind.
    File {
        /// The entry's path as the tar names it, byte for byte.
        name: Vec<u8>,
        /// The size field of the entry (after PAX overrides).
        size: i64,
        /// CRC-64/ISO of the content, big-endian; `None` when `size` is 0.
        crc: Option<[u8; 8]>,
    },
}

// ---------------------------------------------------------------------------------------
// Writing

/// Writes tar-split records: gzip (fastest level, as upstream's pgzip `BestSpeed`) of
/// JSON lines, rejecting repeated paths as Go's `jsonPacker` does.
pub struct TarSplitWriter<W: Write> {
    out: flate2::write::GzEncoder<W>,
    position: u64,
    seen: HashSet<Vec<u8>>,
    line: Vec<u8>,
}

impl<W: Write> TarSplitWriter<W> {
    /// A writer packing into `out`.
    pub fn new(out: W) -> Self {
        TarSplitWriter {
            out: flate2::write::GzEncoder::new(out, flate2::Compression::fast()),
            position: 0,
            seen: HashSet::new(),
            line: Vec::new(),
        }
    }

    /// Appends one record.
    pub fn add(&mut self, entry: &TarSplitEntry) -> Result<()> {
        if let TarSplitEntry::File { name, .. } = entry {
            let cleaned = clean_path(name);
            if !self.seen.insert(cleaned) {
                return Err(TarSplitError::DuplicatePath(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
        }
        self.line.clear();
        encode_line(&mut self.line, entry, self.position);
        self.out
            .write_all(&self.line)
            .map_err(io_err("writing tar-split"))?;
        self.position += 1;
        Ok(())
    }

    /// Appends a raw segment.
    pub fn add_segment(&mut self, bytes: &[u8]) -> Result<()> {
        self.add(&TarSplitEntry::Segment(bytes.to_vec()))
    }

    /// How many records were written.
    pub fn records(&self) -> u64 {
        self.position
    }

    /// Writes the gzip trailer and returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        self.out.finish().map_err(io_err("finishing tar-split"))
    }
}

/// Encodes one record as Go's `json.Encoder` encodes `storage.Entry`, newline included:
/// fields in struct order, `name`/`name_raw`/`size` omitted when empty, `payload` null
/// when absent.
fn encode_line(out: &mut Vec<u8>, entry: &TarSplitEntry, position: u64) {
    match entry {
        TarSplitEntry::Segment(bytes) => {
            out.extend_from_slice(b"{\"type\":2,\"payload\":\"");
            out.extend_from_slice(BASE64.encode(bytes).as_bytes());
            out.extend_from_slice(b"\"");
        }
        TarSplitEntry::File { name, size, crc } => {
            out.extend_from_slice(b"{\"type\":1");
            if !name.is_empty() {
                match std::str::from_utf8(name) {
                    Ok(text) => {
                        out.extend_from_slice(b",\"name\":");
                        go_json_string(out, text);
                    }
                    Err(_) => {
                        out.extend_from_slice(b",\"name_raw\":\"");
                        out.extend_from_slice(BASE64.encode(name).as_bytes());
                        out.push(b'"');
                    }
                }
            }
            if *size != 0 {
                out.extend_from_slice(format!(",\"size\":{size}").as_bytes());
            }
            match crc {
                Some(crc) => {
                    out.extend_from_slice(b",\"payload\":\"");
                    out.extend_from_slice(BASE64.encode(crc).as_bytes());
                    out.push(b'"');
                }
                None => out.extend_from_slice(b",\"payload\":null"),
            }
        }
    }
    out.extend_from_slice(format!(",\"position\":{position}}}\n").as_bytes());
}

/// A JSON string escaped as Go's `encoding/json` escapes it with HTML escaping on (the
/// default): `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`, control characters other than
/// `\n`, `\r`, `\t` as `\u00XX` (the Go 1.19 the reference CLI is built with).
fn go_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32 as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Go's `filepath.Clean` on bytes, which the packer uses to detect repeated paths.
fn clean_path(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(part);
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

// ---------------------------------------------------------------------------------------
// Reading

#[derive(serde::Deserialize)]
struct JsonEntry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
}

/// Reads the records of a tar-split stream, in order: gzip of JSON lines as stored on
/// disk, or the JSON lines already decompressed (told apart by the gzip magic).
pub struct TarSplitReader<R: Read> {
    lines: io::BufReader<MaybeGzip<R>>,
    /// The current JSON line (reused).
    line: Vec<u8>,
}

/// The tar-split bytes, gunzipped when they are gzip.
enum MaybeGzip<R: Read> {
    Gzip(Box<flate2::read::MultiGzDecoder<crate::compress::PeekedReader<R>>>),
    Plain(crate::compress::PeekedReader<R>),
    Failed(Option<io::Error>),
}

impl<R: Read> Read for MaybeGzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeGzip::Gzip(r) => r.read(buf),
            MaybeGzip::Plain(r) => r.read(buf),
            MaybeGzip::Failed(err) => Err(err
                .take()
                .unwrap_or_else(|| io::Error::other("reading tar-split failed"))),
        }
    }
}

impl<R: Read> TarSplitReader<R> {
    /// A reader of the tar-split in `input` (gzip-compressed or not).
    pub fn new(input: R) -> Self {
        use crate::compress::{sniff, CompressError, Compression};
        let source = match sniff(input) {
            Ok((Compression::Gzip, peeked)) => {
                MaybeGzip::Gzip(Box::new(flate2::read::MultiGzDecoder::new(peeked)))
            }
            Ok((_, peeked)) => MaybeGzip::Plain(peeked),
            Err(CompressError::Io { source, .. }) => MaybeGzip::Failed(Some(source)),
            Err(other) => MaybeGzip::Failed(Some(io::Error::other(other.to_string()))),
        };
        // tar-split is one JSON record per line (Go's `json.Encoder`): each line is parsed from
        // a slice, several times faster than serde_json's byte-at-a-time `io::Read` parsing.
        TarSplitReader {
            lines: io::BufReader::with_capacity(64 * 1024, source),
            line: Vec::with_capacity(1024),
        }
    }

    /// The next record, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<TarSplitEntry>> {
        use io::BufRead;
        let raw: JsonEntry = loop {
            self.line.clear();
            let n = self
                .lines
                .read_until(b'\n', &mut self.line)
                .map_err(|e| TarSplitError::Corrupt(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            break serde_json::from_slice(&self.line)
                .map_err(|e| TarSplitError::Corrupt(e.to_string()))?;
        };
        let decode = |field: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|e| TarSplitError::Corrupt(format!("{field}: {e}")))
        };
        let payload = raw
            .payload
            .as_deref()
            .map(|p| decode("payload", p))
            .transpose()?;
        match raw.kind {
            2 => Ok(Some(TarSplitEntry::Segment(payload.unwrap_or_default()))),
            1 => {
                let name = match (&raw.name_raw, raw.name) {
                    (Some(name_raw), _) if !name_raw.is_empty() => decode("name_raw", name_raw)?,
                    (_, name) => name.unwrap_or_default().into_bytes(),
                };
                let crc = match payload {
                    None => None,
                    Some(p) => Some(<[u8; 8]>::try_from(p.as_slice()).map_err(|_| {
                        TarSplitError::Corrupt(format!(
                            "checksum of {:?} is {} bytes, not 8",
                            String::from_utf8_lossy(&name),
                            p.len()
                        ))
                    })?),
                };
                Ok(Some(TarSplitEntry::File {
                    name,
                    size: raw.size.unwrap_or(0),
                    crc,
                }))
            }
            other => Err(TarSplitError::Corrupt(format!(
                "unknown entry type {other}"
            ))),
        }
    }
}

impl<R: Read> Iterator for TarSplitReader<R> {
    type Item = Result<TarSplitEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

// ---------------------------------------------------------------------------------------
// Reassembly

/// Writes the original uncompressed tar recorded by `tarsplit` (the `.tar-split.gz`
/// bytes, or them already gunzipped) to `out`, taking file contents from `files`, and returns the number of bytes written. Each file's CRC is
/// checked (`file integrity checksum failed for "<name>"`), as upstream's
/// `asm.WriteOutputTarStream` does; like it, a file is copied whole.
pub fn reassemble(
    tarsplit: impl Read,
    files: &mut dyn FileGetter,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut written = 0u64;
    let mut buf = vec![0u8; 128 * 1024];
    for entry in TarSplitReader::new(tarsplit) {
        match entry? {
            TarSplitEntry::Segment(bytes) => {
                out.write_all(&bytes)
                    .map_err(io_err("writing the reassembled tar"))?;
                written += bytes.len() as u64;
            }
            TarSplitEntry::File { size, .. } if size <= 0 => {}
            TarSplitEntry::File { name, crc, .. } => {
                let shown = String::from_utf8_lossy(&name).into_owned();
                let mut file = files
                    .get_bytes(&name)
                    .map_err(|source| TarSplitError::File {
                        name: shown.clone(),
                        source,
                    })?;
                let mut digest = crc64();
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(TarSplitError::File {
                                name: shown,
                                source: DriverError::io("reading layer file", e),
                            })
                        }
                    };
                    digest.update(&buf[..n]);
                    out.write_all(&buf[..n])
                        .map_err(io_err("writing the reassembled tar"))?;
                    written += n as u64;
                }
                if crc != Some(digest.finalize().to_be_bytes()) {
                    return Err(TarSplitError::ChecksumMismatch(shown));
                }
            }
        }
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------
// Disassembly

/// The owners a tar names, as upstream's `uidset`/`gidset` log them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSets {
    /// Distinct user IDs, sorted.
    pub uids: Vec<u32>,
    /// Distinct group IDs, sorted.
    pub gids: Vec<u32>,
}

/// Meta headers whose content describes the next entry (or, for `g`, is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaKind {
    Pax,
    GlobalPax,
    LongName,
    LongLink,
}

#[derive(Debug)]
enum State {
    /// Collecting a header block.
    Header,
    /// One zero block seen; collecting the next.
    SecondZero,
    /// Collecting the content of a meta header.
    Meta {
        kind: MetaKind,
        name: Vec<u8>,
        remaining: u64,
        padding: u64,
        data: Vec<u8>,
    },
    /// Passing a file's content through the CRC.
    Payload { remaining: u64, padding: u64 },
    /// Collecting padding into the raw bytes.
    Pad { remaining: u64 },
    /// After the end-of-archive blocks: everything is kept as segments.
    Trailing,
}

/// A tar walker fed in pieces that records the tar as tar-split (the job of Go's
/// `asm.NewInputTarStream` and its forked `archive/tar` reader with raw accounting), and
/// logs the owners of non-whiteout entries.
///
/// Segments are cut where Go cuts them: each entry's headers (PAX and GNU long-name
/// headers included) with the padding of the entry before, then the file entry; after
/// the last entry, the padding and the end-of-archive blocks, then what follows in
/// chunks of up to 1 MiB, then an empty segment for the end of the stream (as the
/// tar-split of the reference CLI, checked against it). Go cuts what follows the end
/// blocks at the boundaries of its own reads (a bufio window, then whatever the source
/// returns), which no stream-independent rule reproduces; trailing data under one window
/// comes out identical, longer trailing data is split differently but reassembles the
/// same.
pub struct Disassembler<W: Write> {
    packer: TarSplitWriter<W>,
    state: State,
    block: Vec<u8>,
    raw: Vec<u8>,
    pax: BTreeMap<Vec<u8>, Vec<u8>>,
    long_name: Option<Vec<u8>>,
    file_name: Vec<u8>,
    file_size: i64,
    crc: Crc64Digest,
    uids: std::collections::BTreeSet<u32>,
    gids: std::collections::BTreeSet<u32>,
}

impl<W: Write> Disassembler<W> {
    /// A disassembler writing tar-split to `tarsplit_out`.
    pub fn new(tarsplit_out: W) -> Self {
        Disassembler {
            packer: TarSplitWriter::new(tarsplit_out),
            state: State::Header,
            block: Vec::with_capacity(BLOCK),
            raw: Vec::new(),
            pax: BTreeMap::new(),
            long_name: None,
            file_name: Vec::new(),
            file_size: 0,
            crc: crc64(),
            uids: Default::default(),
            gids: Default::default(),
        }
    }

    /// Feeds the next bytes of the tar stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let used = self.step(data)?;
            data = &data[used..];
        }
        Ok(())
    }

    /// Ends the stream: checks it ended where a tar may end, writes the last segments and
    /// the gzip trailer, and returns the writer and the owner sets.
    pub fn finish(mut self) -> Result<(W, IdSets)> {
        match &self.state {
            State::Header | State::SecondZero if self.block.is_empty() => {
                // The input ended where a header or the second zero block would start:
                // Go takes that as the end of the archive.
                self.end_of_archive()?;
            }
            State::Pad { .. } => self.end_of_archive()?,
            State::Trailing => {}
            _ => return Err(TarSplitError::UnexpectedEof),
        }
        if !self.raw.is_empty() {
            let chunk = std::mem::take(&mut self.raw);
            self.packer.add_segment(&chunk)?;
        }
        // Go's read loop records the final zero-length read too.
        self.packer.add_segment(&[])?;
        let out = self.packer.finish()?;
        Ok((
            out,
            IdSets {
                uids: self.uids.into_iter().collect(),
                gids: self.gids.into_iter().collect(),
            },
        ))
    }

    /// Consumes a prefix of `data` and returns its length.
    fn step(&mut self, data: &[u8]) -> Result<usize> {
        match &mut self.state {
            State::Header | State::SecondZero => {
                let take = (BLOCK - self.block.len()).min(data.len());
                self.block.extend_from_slice(&data[..take]);
                if self.block.len() == BLOCK {
                    self.on_block()?;
                }
                Ok(take)
            }
            State::Meta {
                remaining,
                data: content,
                ..
            } => {
                let take = clamp(*remaining, data.len());
                content.extend_from_slice(&data[..take]);
                self.raw.extend_from_slice(&data[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.on_meta_done()?;
                }
                Ok(take)
            }
            State::Payload { remaining, padding } => {
                let take = clamp(*remaining, data.len());
                self.crc.update(&data[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    let padding = *padding;
                    self.end_file(padding)?;
                }
                Ok(take)
            }
            State::Pad { remaining } => {
                let take = clamp(*remaining, data.len());
                self.raw.extend_from_slice(&data[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.state = State::Header;
                }
                Ok(take)
            }
            State::Trailing => {
                let take = (TRAILING_CHUNK - self.raw.len()).min(data.len());
                self.raw.extend_from_slice(&data[..take]);
                if self.raw.len() == TRAILING_CHUNK {
                    let chunk = std::mem::take(&mut self.raw);
                    self.packer.add_segment(&chunk)?;
                }
                Ok(take)
            }
        }
    }

    fn end_of_archive(&mut self) -> Result<()> {
        if !self.raw.is_empty() {
            let raw = std::mem::take(&mut self.raw);
            self.packer.add_segment(&raw)?;
        }
        self.state = State::Trailing;
        Ok(())
    }

    fn on_block(&mut self) -> Result<()> {
        let block: [u8; BLOCK] = std::mem::take(&mut self.block)
            .try_into()
            .map_err(|_| TarSplitError::InvalidHeader("short block".into()))?;
        self.block = Vec::with_capacity(BLOCK);
        self.raw.extend_from_slice(&block);
        if self.raw.len() > MAX_RAW {
            return Err(TarSplitError::InvalidHeader(
                "too many metadata headers before an entry".into(),
            ));
        }
        let zero = block.iter().all(|&b| b == 0);
        if matches!(self.state, State::SecondZero) {
            if !zero {
                return Err(TarSplitError::InvalidHeader(
                    "zero block followed by a non-zero block".into(),
                ));
            }
            return self.end_of_archive();
        }
        if zero {
            self.state = State::SecondZero;
            return Ok(());
        }
        let header = parse_header(&block)?;
        match header.typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                if header.size < 0 || header.size as u64 > MAX_SPECIAL_FILE {
                    return Err(TarSplitError::InvalidHeader(
                        "metadata header too large".into(),
                    ));
                }
                let size = header.size as u64;
                let kind = match header.typeflag {
                    b'x' => MetaKind::Pax,
                    b'g' => MetaKind::GlobalPax,
                    b'L' => MetaKind::LongName,
                    _ => MetaKind::LongLink,
                };
                self.state = State::Meta {
                    kind,
                    name: header.name,
                    remaining: size,
                    padding: padding_of(size),
                    data: Vec::new(),
                };
                if size == 0 {
                    self.on_meta_done()?;
                }
                Ok(())
            }
            b'S' => Err(TarSplitError::Unsupported("GNU sparse files")),
            _ => self.start_file(header),
        }
    }

    fn on_meta_done(&mut self) -> Result<()> {
        let State::Meta {
            kind,
            name,
            padding,
            data,
            ..
        } = std::mem::replace(&mut self.state, State::Header)
        else {
            return Ok(());
        };
        match kind {
            MetaKind::Pax => self.pax = parse_pax(&data)?,
            MetaKind::LongName => self.long_name = Some(c_string(&data).to_vec()),
            MetaKind::LongLink => {}
            MetaKind::GlobalPax => {
                // Go returns a global header as an entry of its own, named by its header
                // (or its `path` record), with no size and owner 0.
                let records = parse_pax(&data)?;
                let name = records.get(&b"path"[..]).cloned().unwrap_or(name);
                self.pax.clear();
                self.long_name = None;
                self.log_owner(&name, 0, 0);
                let raw = std::mem::take(&mut self.raw);
                self.packer.add_segment(&raw)?;
                self.packer.add(&TarSplitEntry::File {
                    name,
                    size: 0,
                    crc: None,
                })?;
            }
        }
        self.state = if padding > 0 {
            State::Pad { remaining: padding }
        } else {
            State::Header
        };
        Ok(())
    }

    fn start_file(&mut self, mut header: Header) -> Result<()> {
        let pax = std::mem::take(&mut self.pax);
        if pax.keys().any(|k| k.starts_with(b"GNU.sparse.")) {
            return Err(TarSplitError::Unsupported("PAX sparse files"));
        }
        for (key, value) in &pax {
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| {
                        TarSplitError::InvalidHeader(format!(
                            "PAX record {} is not a number",
                            String::from_utf8_lossy(key)
                        ))
                    })
            };
            match key.as_slice() {
                b"path" => header.name = value.clone(),
                b"uid" => header.uid = number()?,
                b"gid" => header.gid = number()?,
                b"size" => header.size = number()?,
                _ => {}
            }
        }
        if let Some(long) = self.long_name.take() {
            if !long.is_empty() {
                header.name = long;
            }
        }
        if header.size < 0 {
            return Err(TarSplitError::InvalidHeader("negative size".into()));
        }
        let header_only = match header.typeflag {
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => true,
            0 | b'0' => header.name.ends_with(b"/") && header.typeflag == 0,
            _ => false,
        };
        let content = if header_only { 0 } else { header.size as u64 };
        // Go's tarlog uses uint32(hdr.Uid): IDs wrap, they are not rejected.
        self.log_owner(&header.name, header.uid as u32, header.gid as u32);
        let raw = std::mem::take(&mut self.raw);
        self.packer.add_segment(&raw)?;
        self.file_name = header.name;
        self.file_size = header.size;
        self.crc = crc64();
        let padding = padding_of(content);
        if content == 0 {
            self.end_file(padding)
        } else {
            self.state = State::Payload {
                remaining: content,
                padding,
            };
            Ok(())
        }
    }

    fn end_file(&mut self, padding: u64) -> Result<()> {
        let digest = std::mem::replace(&mut self.crc, crc64());
        let crc = (self.file_size > 0).then(|| digest.finalize().to_be_bytes());
        self.packer.add(&TarSplitEntry::File {
            name: std::mem::take(&mut self.file_name),
            size: self.file_size,
            crc,
        })?;
        self.state = if padding > 0 {
            State::Pad { remaining: padding }
        } else {
            State::Header
        };
        Ok(())
    }

    fn log_owner(&mut self, name: &[u8], uid: u32, gid: u32) {
        if !base_name(name).starts_with(b".wh.") {
            self.uids.insert(uid);
            self.gids.insert(gid);
        }
    }
}

/// Records the whole tar in `tar` as tar-split into `out` (a pull-style convenience over
/// [`Disassembler`]); returns the owner sets and the number of tar bytes read.
pub fn disassemble(mut tar: impl Read, out: impl Write) -> Result<(IdSets, u64)> {
    let mut disassembler = Disassembler::new(out);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(TarSplitError::Io {
                    context: "reading the layer tar",
                    source,
                })
            }
        };
        total += n as u64;
        disassembler.feed(&buf[..n])?;
    }
    let (_, ids) = disassembler.finish()?;
    Ok((ids, total))
}

fn clamp(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// `path.Base` of Go, on bytes.
fn base_name(name: &[u8]) -> &[u8] {
    let mut end = name.len();
    while end > 0 && name[end - 1] == b'/' {
        end -= 1;
    }
    let trimmed = &name[..end];
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

// ---------------------------------------------------------------------------------------
// Tar header parsing (only what tar-split needs: names, sizes, owners, kinds)

struct Header {
    name: Vec<u8>,
    typeflag: u8,
    size: i64,
    uid: i64,
    gid: i64,
}

fn c_string(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

fn parse_octal(field: &[u8]) -> Result<i64> {
    let trimmed: &[u8] = {
        let start = field.iter().position(|&b| b != b' ' && b != 0);
        let end = field.iter().rposition(|&b| b != b' ' && b != 0);
        match (start, end) {
            (Some(s), Some(e)) => &field[s..=e],
            _ => return Ok(0),
        }
    };
    let digits = c_string(trimmed);
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| u64::from_str_radix(d, 8).ok())
        .map(|v| v as i64)
        .ok_or_else(|| {
            TarSplitError::InvalidHeader(format!(
                "bad octal field {:?}",
                String::from_utf8_lossy(field)
            ))
        })
}

/// Go's `parseNumeric`: base-256 when the high bit is set, octal otherwise.
fn parse_numeric(field: &[u8]) -> Result<i64> {
    let Some(&first) = field.first() else {
        return Ok(0);
    };
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in field.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return Err(TarSplitError::InvalidHeader(
                "numeric field overflows".into(),
            ));
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 > 0 {
        return Err(TarSplitError::InvalidHeader(
            "numeric field overflows".into(),
        ));
    }
    Ok(if inv == 0xff { !(x as i64) } else { x as i64 })
}

fn parse_header(block: &[u8; BLOCK]) -> Result<Header> {
    let recorded = parse_octal(&block[148..156])?;
    let (unsigned, signed) = block
        .iter()
        .enumerate()
        .fold((0i64, 0i64), |(u, s), (i, &b)| {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            (u + i64::from(b), s + i64::from(b as i8))
        });
    if recorded != unsigned && recorded != signed {
        return Err(TarSplitError::InvalidHeader("checksum mismatch".into()));
    }
    let magic = &block[257..263];
    let version = &block[263..265];
    let prefix: &[u8] = if magic == b"ustar\0" {
        if &block[508..512] == b"tar\0" {
            &block[345..476]
        } else {
            &block[345..500]
        }
    } else {
        // GNU (`ustar  \0`) keeps times there; V7 has no prefix.
        let _ = version;
        &[]
    };
    let mut name = c_string(&block[0..100]).to_vec();
    let prefix = c_string(prefix);
    if !prefix.is_empty() {
        let mut joined = prefix.to_vec();
        joined.push(b'/');
        joined.extend_from_slice(&name);
        name = joined;
    }
    Ok(Header {
        name,
        typeflag: block[156],
        size: parse_numeric(&block[124..136])?,
        uid: parse_numeric(&block[108..116])?,
        gid: parse_numeric(&block[116..124])?,
    })
}

/// Parses PAX records (`"%d %s=%s\n"`), later keys replacing earlier ones.
fn parse_pax(mut data: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let bad = || TarSplitError::InvalidHeader("malformed PAX record".into());
    let mut records = BTreeMap::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() {
            return Err(bad());
        }
        records.insert(key.to_vec(), value.to_vec());
        data = &data[len..];
    }
    Ok(records)
}

/// Builds tars block by block for tests, so every byte (PAX and GNU headers, padding,
/// names that are not UTF-8, junk after the end) is under the test's control.
#[cfg(test)]
pub(crate) mod test_tar {
    /// A tar being built.
    #[derive(Default)]
    pub(crate) struct TestTar {
        pub(crate) bytes: Vec<u8>,
    }

    fn octal(field: &mut [u8], value: u64) {
        let width = field.len() - 1;
        let digits = format!("{value:0width$o}");
        field[..width].copy_from_slice(digits.as_bytes());
        field[width] = 0;
    }

    /// A USTAR (or, with `gnu`, GNU) header block with a valid checksum.
    pub(crate) fn header(
        name: &[u8],
        typeflag: u8,
        size: u64,
        owner: (u64, u64),
        link: &[u8],
        gnu: bool,
    ) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..name.len()].copy_from_slice(name);
        let mode = if typeflag == b'5' { 0o755 } else { 0o644 };
        octal(&mut b[100..108], mode);
        octal(&mut b[108..116], owner.0);
        octal(&mut b[116..124], owner.1);
        octal(&mut b[124..136], size);
        octal(&mut b[136..148], 1_700_000_000);
        b[156] = typeflag;
        b[157..157 + link.len()].copy_from_slice(link);
        if gnu {
            b[257..265].copy_from_slice(b"ustar  \0");
        } else {
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
        }
        b[265..269].copy_from_slice(b"root");
        b[297..301].copy_from_slice(b"root");
        b[148..156].copy_from_slice(b"        ");
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        let digits = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(digits.as_bytes());
        b
    }

    impl TestTar {
        fn content(&mut self, data: &[u8]) {
            self.bytes.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            self.bytes.extend(std::iter::repeat_n(0u8, pad));
        }

        /// A regular file.
        pub(crate) fn file(&mut self, name: &[u8], data: &[u8], owner: (u64, u64)) -> &mut Self {
            let h = header(name, b'0', data.len() as u64, owner, b"", false);
            self.bytes.extend_from_slice(&h);
            self.content(data);
            self
        }

        /// A directory.
        pub(crate) fn dir(&mut self, name: &[u8], owner: (u64, u64)) -> &mut Self {
            let h = header(name, b'5', 0, owner, b"", false);
            self.bytes.extend_from_slice(&h);
            self
        }

        /// A hard link (`typeflag` b'1') or symlink (b'2') to `target`.
        pub(crate) fn link(&mut self, name: &[u8], typeflag: u8, target: &[u8]) -> &mut Self {
            let h = header(name, typeflag, 0, (0, 0), target, false);
            self.bytes.extend_from_slice(&h);
            self
        }

        /// A PAX extended header applying to the next entry.
        pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut data = Vec::new();
            for (key, value) in records {
                let body = key.len() + value.len() + 3;
                let mut len = body + 1;
                while format!("{len}").len() + body != len {
                    len += 1;
                }
                data.extend_from_slice(format!("{len} {key}=").as_bytes());
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            let h = header(
                b"PaxHeaders.0/x",
                b'x',
                data.len() as u64,
                (0, 0),
                b"",
                false,
            );
            self.bytes.extend_from_slice(&h);
            self.content(&data);
            self
        }

        /// A PAX global header (an entry of its own for tar-split).
        pub(crate) fn global_pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let start = self.bytes.len();
            self.pax(records);
            let mut h: [u8; 512] = self.bytes[start..start + 512].try_into().expect("block");
            let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).expect("octal"), 8)
                .expect("size");
            h = header(b"pax_global_header", b'g', size, (0, 0), b"", false);
            self.bytes[start..start + 512].copy_from_slice(&h);
            self
        }

        /// A GNU long-name header naming the next entry.
        pub(crate) fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
            let mut data = name.to_vec();
            data.push(0);
            let h = header(b"././@LongLink", b'L', data.len() as u64, (0, 0), b"", true);
            self.bytes.extend_from_slice(&h);
            self.content(&data);
            self
        }

        /// The two end-of-archive blocks.
        pub(crate) fn end(&mut self) -> &mut Self {
            self.bytes.extend(std::iter::repeat_n(0u8, 1024));
            self
        }

        /// Raw bytes (junk after the end, say).
        pub(crate) fn raw(&mut self, data: &[u8]) -> &mut Self {
            self.bytes.extend_from_slice(data);
            self
        }
    }

    /// The archive of many kinds the tests share: nested dirs, files with padding and
    /// without, links, PAX long names and xattrs, a GNU long name, a whiteout owned by
    /// an ID that must not be logged, names that are not UTF-8 or need JSON escapes.
    pub(crate) fn varied() -> TestTar {
        let long = format!("d/{}", "n".repeat(150));
        let gnu_long = format!("d/{}", "g".repeat(120));
        let mut t = TestTar::default();
        t.dir(b"d/", (0, 0))
            .file(b"d/a", b"hello\n", (1000, 1001))
            .file(b"d/block", &[7u8; 512], (0, 0))
            .file(b"d/empty", b"", (0, 0))
            .link(b"d/hard", b'1', b"d/a")
            .link(b"d/sym", b'2', b"a")
            .pax(&[("path", long.as_bytes()), ("SCHILY.xattr.user.k", b"v\0x")])
            .file(b"placeholder", &[b'x'; 700], (5, 6))
            .gnu_long_name(gnu_long.as_bytes())
            .file(b"shortened", b"gnu", (0, 0))
            .file(b"d/.wh.gone", b"", (4242, 4343))
            .file(b"d/caf\xe9", b"latin1", (0, 0))
            .file(b"d/<q\"&>\x01", b"esc", (0, 0))
            .pax(&[("uid", b"70000"), ("gid", b"70001")])
            .file(b"d/bigid", b"z", (0, 0))
            .end();
        t
    }
}

#[cfg(test)]
mod tests {

    /// The fast CRC is Go's `crc64.ISO` checksum, as the table-driven reference computes it,
    /// over lengths that exercise its SIMD folding, its tail and split updates.
    #[test]
    fn crc64_matches_the_reference_go_iso_checksum() {
        let reference = crc::Crc::<u64>::new(&crc::CRC_64_GO_ISO);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 15, 16, 17, 127, 128, 255, 256, 4096, 65_537, 70_000] {
            let mut digest = crc64();
            let (a, b) = data[..len].split_at(len / 3);
            digest.update(a);
            digest.update(b);
            assert_eq!(digest.finalize(), reference.checksum(&data[..len]), "{len}");
        }
    }
    use super::test_tar::{header, varied, TestTar};
    use super::*;
    use std::collections::HashMap;

    /// Files of a layer held in memory, served by raw name.
    #[derive(Default)]
    struct MemFiles(HashMap<Vec<u8>, Vec<u8>>);

    impl FileGetter for MemFiles {
        fn get(&mut self, path: &str) -> crate::driver::DriverResult<Box<dyn Read + '_>> {
            self.get_bytes(path.as_bytes())
        }

        fn get_bytes(&mut self, path: &[u8]) -> crate::driver::DriverResult<Box<dyn Read + '_>> {
            match self.0.get(path) {
                Some(data) => Ok(Box::new(&data[..])),
                None => Err(DriverError::LayerNotFound(
                    String::from_utf8_lossy(path).into_owned(),
                )),
            }
        }
    }

    /// The file contents of a tar, by the names tar-split records (read back with the
    /// `tar` crate, an independent parser).
    fn files_of(tar_bytes: &[u8]) -> MemFiles {
        let mut files = MemFiles::default();
        let mut archive = tar::Archive::new(tar_bytes);
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path_bytes().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("content");
            files.0.insert(name, data);
        }
        files
    }

    fn entries_of(tarsplit: &[u8]) -> Vec<TarSplitEntry> {
        TarSplitReader::new(tarsplit)
            .collect::<Result<Vec<_>>>()
            .expect("read back")
    }

    fn split(tar_bytes: &[u8]) -> (Vec<u8>, IdSets) {
        let mut out = Vec::new();
        let (ids, read) = disassemble(tar_bytes, &mut out).expect("disassemble");
        assert_eq!(read, tar_bytes.len() as u64);
        (out, ids)
    }

    fn reassembled(tarsplit: &[u8], files: &mut MemFiles) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let n = reassemble(tarsplit, files, &mut out)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    #[test]
    fn varied_tar_reassembles_byte_for_byte() {
        let mut t = varied();
        t.raw(b"trailing junk after the end");
        let (ts, ids) = split(&t.bytes);
        let mut files = files_of(&t.bytes);
        assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
        assert_eq!(ids.uids, vec![0, 5, 1000, 70000]);
        assert_eq!(ids.gids, vec![0, 6, 1001, 70001]);
    }

    #[test]
    fn segments_are_cut_where_go_cuts_them() {
        let mut t = TestTar::default();
        t.file(b"a", b"12345", (0, 0))
            .dir(b"d/", (0, 0))
            .end()
            .raw(b"junk");
        let (ts, _) = split(&t.bytes);
        let entries = entries_of(&ts);
        let a_header = t.bytes[..512].to_vec();
        let mut pad_and_d = vec![0u8; 507];
        pad_and_d.extend_from_slice(&t.bytes[1024..1536]);
        let crc = crc_fast::checksum(CrcAlgorithm::Crc64GoIso, b"12345").to_be_bytes();
        assert_eq!(
            entries,
            vec![
                TarSplitEntry::Segment(a_header),
                TarSplitEntry::File {
                    name: b"a".to_vec(),
                    size: 5,
                    crc: Some(crc)
                },
                TarSplitEntry::Segment(pad_and_d),
                TarSplitEntry::File {
                    name: b"d/".to_vec(),
                    size: 0,
                    crc: None
                },
                TarSplitEntry::Segment(vec![0u8; 1024]),
                TarSplitEntry::Segment(b"junk".to_vec()),
                TarSplitEntry::Segment(Vec::new()),
            ]
        );
    }

    #[test]
    fn json_lines_match_go_encoding() {
        let mut line = Vec::new();
        let file = TarSplitEntry::File {
            name: b"d/<q\"&>\x01\\\n".to_vec(),
            size: 3,
            crc: Some([0, 0, 0, 0, 0, 0, 0, 1]),
        };
        encode_line(&mut line, &file, 7);
        assert_eq!(
            String::from_utf8(line.clone()).expect("utf8"),
            "{\"type\":1,\"name\":\"d/\\u003cq\\\"\\u0026\\u003e\\u0001\\\\\\n\",\"size\":3,\"payload\":\"AAAAAAAAAAE=\",\"position\":7}\n"
        );
        line.clear();
        let raw = TarSplitEntry::File {
            name: b"caf\xe9".to_vec(),
            size: 0,
            crc: None,
        };
        encode_line(&mut line, &raw, 0);
        assert_eq!(
            line,
            b"{\"type\":1,\"name_raw\":\"Y2Fm6Q==\",\"payload\":null,\"position\":0}\n"
        );
        line.clear();
        encode_line(&mut line, &TarSplitEntry::Segment(Vec::new()), 2);
        assert_eq!(line, b"{\"type\":2,\"payload\":\"\",\"position\":2}\n");
    }

    #[test]
    fn feeding_byte_by_byte_records_the_same() {
        let mut t = varied();
        t.raw(&[0u8; 3000]);
        let (whole, ids) = split(&t.bytes);
        let mut piecewise = Disassembler::new(Vec::new());
        for byte in &t.bytes {
            piecewise.feed(std::slice::from_ref(byte)).expect("feed");
        }
        let (out, ids2) = piecewise.finish().expect("finish");
        assert_eq!(entries_of(&whole), entries_of(&out));
        assert_eq!(ids, ids2);
    }

    #[test]
    fn large_trailing_data_is_chunked() {
        let mut t = TestTar::default();
        t.file(b"f", b"x", (0, 0)).end();
        let junk_len = TRAILING_CHUNK * 2 + 10;
        t.raw(&vec![0xAB; junk_len]);
        let (ts, _) = split(&t.bytes);
        let sizes: Vec<usize> = entries_of(&ts)
            .iter()
            .filter_map(|e| match e {
                TarSplitEntry::Segment(s) => Some(s.len()),
                _ => None,
            })
            .collect();
        assert_eq!(
            sizes,
            vec![512, 511 + 1024, TRAILING_CHUNK, TRAILING_CHUNK, 10, 0]
        );
        let mut files = files_of(&t.bytes);
        assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
    }

    #[test]
    fn tampered_file_fails_the_checksum() {
        let t = varied();
        let (ts, _) = split(&t.bytes);
        let mut files = files_of(&t.bytes);
        files.0.insert(b"d/a".to_vec(), b"HELLO\n".to_vec());
        let err = reassembled(&ts, &mut files).expect_err("tampered");
        assert_eq!(
            err.to_string(),
            "file integrity checksum failed for \"d/a\""
        );
    }

    #[test]
    fn missing_file_is_reported_with_its_name() {
        let t = varied();
        let (ts, _) = split(&t.bytes);
        let mut files = files_of(&t.bytes);
        files.0.remove(&b"d/block"[..]);
        let err = reassembled(&ts, &mut files).expect_err("missing");
        assert!(matches!(err, TarSplitError::File { ref name, .. } if name == "d/block"));
    }

    #[test]
    fn repeated_paths_are_refused() {
        let mut t = TestTar::default();
        t.file(b"./a/b", b"1", (0, 0))
            .file(b"a//b/", b"2", (0, 0))
            .end();
        let err = disassemble(&t.bytes[..], Vec::new()).expect_err("duplicate");
        assert!(matches!(err, TarSplitError::DuplicatePath(ref p) if p == "a//b/"));
    }

    #[test]
    fn truncated_and_malformed_tars_are_refused() {
        let t = varied();
        for cut in [100, 600, 1027] {
            let err = disassemble(&t.bytes[..cut], Vec::new()).expect_err("truncated");
            assert!(
                matches!(err, TarSplitError::UnexpectedEof),
                "cut {cut}: {err}"
            );
        }
        let mut bad = header(b"f", b'0', 0, (0, 0), b"", false);
        bad[148] = b'7';
        let err = disassemble(&bad[..], Vec::new()).expect_err("checksum");
        assert!(matches!(err, TarSplitError::InvalidHeader(_)));
        let mut zero_then_data = vec![0u8; 512];
        zero_then_data.extend_from_slice(&header(b"f", b'0', 0, (0, 0), b"", false));
        let err = disassemble(&zero_then_data[..], Vec::new()).expect_err("zero block");
        assert!(matches!(err, TarSplitError::InvalidHeader(_)));
        let sparse = header(b"s", b'S', 0, (0, 0), b"", true);
        let err = disassemble(&sparse[..], Vec::new()).expect_err("sparse");
        assert!(matches!(err, TarSplitError::Unsupported(_)));
    }

    #[test]
    fn tar_without_end_blocks_still_reassembles() {
        let mut t = TestTar::default();
        t.file(b"f", b"abc", (0, 0));
        let (ts, _) = split(&t.bytes);
        let mut files = files_of(&t.bytes);
        assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
    }

    #[test]
    fn numeric_fields_parse_like_go() {
        assert_eq!(parse_numeric(b"0000644\0").expect("octal"), 0o644);
        assert_eq!(parse_numeric(b"  17 \0").expect("spaces"), 0o17);
        assert_eq!(parse_numeric(b"\0\0\0").expect("empty"), 0);
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]).expect("base-256"),
            256
        );
        assert_eq!(parse_numeric(&[0xff; 8]).expect("negative"), -1);
        assert!(parse_numeric(b"9\0").is_err());
    }

    #[test]
    fn paths_clean_like_go() {
        for (input, cleaned) in [
            ("", "."),
            ("./", "."),
            ("./a/b/", "a/b"),
            ("a//b/../c", "a/c"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("a/..", "."),
        ] {
            assert_eq!(clean_path(input.as_bytes()), cleaned.as_bytes(), "{input}");
        }
        assert_eq!(base_name(b"d/.wh.x/"), b".wh.x");
        assert_eq!(base_name(b".wh.top"), b".wh.top");
    }

    #[test]
    fn mutated_tars_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = varied().bytes;
        for _ in 0..3000 {
            let mut t = base.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..t.len());
                t[at] = rng.random();
            }
            let cut = rng.random_range(0..=t.len());
            // Errors are fine; panics and hangs are not. What is accepted accounts for
            // no more bytes than it was given.
            let mut ts = Vec::new();
            if disassemble(&t[..cut], &mut ts).is_ok() {
                let segments: usize = entries_of(&ts)
                    .iter()
                    .map(|e| match e {
                        TarSplitEntry::Segment(s) => s.len(),
                        TarSplitEntry::File { .. } => 0,
                    })
                    .sum();
                assert!(segments <= cut);
            }
        }
    }

    #[test]
    fn decompressed_tarsplit_is_read_too() {
        let t = varied();
        let (ts, _) = split(&t.bytes);
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&ts[..])
            .read_to_end(&mut plain)
            .expect("gunzip");
        assert_eq!(entries_of(&plain), entries_of(&ts));
        let mut files = files_of(&t.bytes);
        assert_eq!(
            reassembled(&plain, &mut files).expect("reassemble"),
            t.bytes
        );
    }

    #[test]
    fn corrupt_tarsplit_is_reported() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"type\":9,\"payload\":null,\"position\":0}\n")
            .expect("write");
        let data = gz.finish().expect("finish");
        let err = TarSplitReader::new(&data[..])
            .next()
            .expect("one")
            .expect_err("bad type");
        assert!(matches!(err, TarSplitError::Corrupt(_)));
    }
}
