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

use std::collections::HashSet;
use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crc_fast::{CrcAlgorithm, Digest as Crc64Digest};

use storage_archive::tar_parser::{Need, SparseMap, TarEntryHeader, TarParser};
use storage_archive::ArchiveError;

use storage_driver::{DriverError, FileGetter};

/// A new digest of the CRC tar-split stores for file contents (Go's
/// `crc64.MakeTable(crc64.ISO)`). Every byte of every imported or re-created file goes through
/// it, so it is `crc-fast`'s carry-less-multiply (PCLMULQDQ) implementation, many times the
/// speed of a table-driven one.
fn crc64() -> Crc64Digest {
    Crc64Digest::new(CrcAlgorithm::Crc64GoIso)
}

/// Tar block size.
const BLOCK: usize = 512;
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
                        crate::gojson::write_string(out, text);
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
/// bytes, or them already gunzipped) to `out`, taking file contents from `files`, and
/// returns the number of bytes written. Each file's CRC is checked (`file integrity
/// checksum failed for "<name>"`), as upstream's `asm.WriteOutputTarStream` does; like it,
/// a file is copied whole, except a sparse file's: of that, only its data regions are
/// written, where the archive had them (see [`Disassembler`]).
pub fn reassemble(
    tarsplit: impl Read,
    files: &mut dyn FileGetter,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut written = 0u64;
    let mut buf = vec![0u8; 128 * 1024];
    // The segments since the last file entry: the headers of the next one.
    let mut headers = HeaderWindow::default();
    for entry in TarSplitReader::new(tarsplit) {
        match entry? {
            TarSplitEntry::Segment(bytes) => {
                out.write_all(&bytes)
                    .map_err(io_err("writing the reassembled tar"))?;
                written += bytes.len() as u64;
                headers.push(&bytes);
            }
            TarSplitEntry::File { size, .. } if size <= 0 => headers.clear(),
            TarSplitEntry::File { name, crc, .. } => {
                let sparse = headers.sparse_map();
                headers.clear();
                let shown = String::from_utf8_lossy(&name).into_owned();
                let file = files.get(&name).map_err(|source| TarSplitError::File {
                    name: shown.clone(),
                    source,
                })?;
                let (digest, n) = copy_checked(file, sparse.as_ref(), out, &mut buf, &shown)?;
                written += n;
                if crc != Some(digest.to_be_bytes()) {
                    return Err(TarSplitError::ChecksumMismatch(shown));
                }
            }
        }
    }
    Ok(written)
}

/// Copies a layer file to the re-created tar: all of it, or only the data regions of a
/// sparse one. Returns the CRC of all of its content and the bytes written.
fn copy_checked(
    mut file: Box<dyn Read + '_>,
    sparse: Option<&SparseMap>,
    out: &mut dyn Write,
    buf: &mut [u8],
    shown: &str,
) -> Result<(u64, u64)> {
    let mut digest = crc64();
    let mut position = 0u64;
    let mut written = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(TarSplitError::File {
                    name: shown.to_string(),
                    source: DriverError::io("reading layer file", e),
                })
            }
        };
        let chunk = &buf[..n];
        digest.update(chunk);
        match sparse {
            None => {
                out.write_all(chunk)
                    .map_err(io_err("writing the reassembled tar"))?;
                written += n as u64;
            }
            Some(map) => {
                let end = position + n as u64;
                for region in &map.regions {
                    let from = region.offset.max(position);
                    let to = (region.offset + region.length).min(end);
                    if from < to {
                        // Both within this chunk, which is in memory.
                        let part = &chunk[(from - position) as usize..(to - position) as usize];
                        out.write_all(part)
                            .map_err(io_err("writing the reassembled tar"))?;
                        written += part.len() as u64;
                    }
                }
            }
        }
        position += n as u64;
    }
    Ok((digest.finalize(), written))
}

/// The raw bytes recorded since the last file entry, kept to find out whether the next entry
/// is a sparse file. They are the previous entry's padding (under a block) followed by whole
/// blocks of headers, so the headers start at `len % 512`.
#[derive(Default)]
struct HeaderWindow {
    bytes: Vec<u8>,
    /// More than any header group was recorded: not headers (trailing data).
    overflowed: bool,
}

impl HeaderWindow {
    fn push(&mut self, bytes: &[u8]) {
        if self.overflowed || self.bytes.len() + bytes.len() > MAX_RAW {
            self.overflowed = true;
            self.bytes.clear();
            return;
        }
        self.bytes.extend_from_slice(bytes);
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.overflowed = false;
    }

    /// The sparse map of the entry these headers describe, if it is a sparse file. Anything
    /// that does not parse (a tar-split written by Go, which drops PAX 1.0 maps) is taken for
    /// a plain file, which Go's reassembly would write.
    fn sparse_map(&self) -> Option<SparseMap> {
        if self.overflowed {
            return None;
        }
        let start = self.bytes.len() % BLOCK;
        let blocks = &self.bytes[start..];
        // Cheap test first: an old-GNU sparse header, or GNU sparse records in PAX data.
        let old_gnu = blocks
            .chunks(BLOCK)
            .any(|b| b.len() == BLOCK && b[156] == b'S');
        if !old_gnu && !contains(blocks, b"GNU.sparse.") {
            return None;
        }
        let mut parser = TarParser::new();
        let mut rest = blocks;
        loop {
            let Need::Raw { len, .. } = parser.need() else {
                return None;
            };
            if rest.len() < len {
                return None;
            }
            let (now, later) = rest.split_at(len);
            rest = later;
            match parser.push_raw(now) {
                Ok(Some(entry)) if rest.is_empty() => return entry.sparse,
                Ok(None) => continue,
                Ok(Some(_)) | Err(_) => return None,
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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

/// Where the disassembler is in the stream.
enum Phase {
    /// Headers and payloads, as the parser says.
    Tar,
    /// After the end of the archive: everything is kept as segments.
    Trailing,
}

/// A tar walker fed in pieces that records the tar as tar-split (the job of Go's
/// `asm.NewInputTarStream` and its forked `archive/tar` reader with raw accounting), and
/// logs the owners of non-whiteout entries. The tar is read by the project's one parser,
/// [`storage_archive::tar_parser`], fed exactly the bytes it asks for.
///
/// Segments are cut where Go cuts them: each entry's headers (PAX and GNU long-name
/// headers included) with the padding of the entry before, then the file entry; after
/// the last entry, the padding and the end-of-archive blocks, then what follows in
/// chunks of up to 1 MiB (as the tar-split of upstream 1.60, checked against it; 1.43's
/// older tar-split also wrote an empty segment at the very end). Go cuts what follows the end
/// blocks at the boundaries of its own reads (a bufio window, then whatever the source
/// returns), which no stream-independent rule reproduces; trailing data under one window
/// comes out identical, longer trailing data is split differently but reassembles the
/// same.
///
/// Sparse files differ from Go on purpose. Go's fork reads a PAX 1.0 sparse map as payload
/// and records neither it nor the stored regions, so its tar-split cannot give the archive
/// back; here the map's blocks are part of the entry's header segment, and the file entry
/// has Go's size (the real size) and CRC (of the content with its holes as zeros), so that
/// [`reassemble`] writes the regions back where they were. (Old-GNU sparse entries make Go's
/// fork crash; they are recorded the same way.)
pub struct Disassembler<W: Write> {
    packer: TarSplitWriter<W>,
    parser: TarParser,
    phase: Phase,
    /// Bytes gathered toward what the parser asked for.
    pending: Vec<u8>,
    /// Raw bytes since the last file entry: the next segment.
    raw: Vec<u8>,
    /// Bytes of the tar taken in so far.
    position: u64,
    /// The entry whose payload is passing.
    file: Option<PassingFile>,
    uids: std::collections::BTreeSet<u32>,
    gids: std::collections::BTreeSet<u32>,
}

/// The file entry whose payload is being checksummed.
struct PassingFile {
    name: Vec<u8>,
    size: i64,
    crc: FileCrc,
    /// For a sparse file: its regions not reached yet, and the position in the file.
    sparse: Option<SparseCursor>,
}

impl<W: Write> Disassembler<W> {
    /// A disassembler writing tar-split to `tarsplit_out`.
    pub fn new(tarsplit_out: W) -> Self {
        Disassembler {
            packer: TarSplitWriter::new(tarsplit_out),
            parser: TarParser::new(),
            phase: Phase::Tar,
            pending: Vec::with_capacity(BLOCK * 2),
            raw: Vec::new(),
            position: 0,
            file: None,
            uids: Default::default(),
            gids: Default::default(),
        }
    }

    /// Feeds the next bytes of the tar stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let used = self.step(data)?;
            self.position += used as u64;
            data = &data[used..];
        }
        Ok(())
    }

    /// How many bytes of the tar were taken in (after an error: up to where it was found).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Ends the stream: checks it ended where a tar may end, writes the last segments and
    /// the gzip trailer, and returns the writer and the owner sets.
    pub fn finish(mut self) -> Result<(W, IdSets)> {
        if let Phase::Tar = self.phase {
            match self.parser.need() {
                Need::Raw { .. } => {
                    // The input ended: what was gathered is all there is.
                    let gathered = std::mem::take(&mut self.pending);
                    self.raw.extend_from_slice(&gathered);
                    if self.parser.push_raw(&gathered)?.is_some() {
                        return Err(TarSplitError::UnexpectedEof);
                    }
                    if !self.parser.is_done() {
                        return Err(TarSplitError::UnexpectedEof);
                    }
                    self.end_of_archive()?;
                }
                Need::Payload(_) => return Err(TarSplitError::UnexpectedEof),
                Need::Done => self.end_of_archive()?,
            }
        }
        if !self.raw.is_empty() {
            let chunk = std::mem::take(&mut self.raw);
            self.packer.add_segment(&chunk)?;
        }
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
        if let Phase::Trailing = self.phase {
            let take = (TRAILING_CHUNK - self.raw.len()).min(data.len());
            self.raw.extend_from_slice(&data[..take]);
            if self.raw.len() == TRAILING_CHUNK {
                let chunk = std::mem::take(&mut self.raw);
                self.packer.add_segment(&chunk)?;
            }
            return Ok(take);
        }
        match self.parser.need() {
            Need::Raw { len, .. } => {
                let take = (len - self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..take]);
                if self.pending.len() == len {
                    self.raw.extend_from_slice(&self.pending);
                    if self.raw.len() > MAX_RAW {
                        return Err(TarSplitError::InvalidHeader(
                            "too many metadata headers before an entry".into(),
                        ));
                    }
                    let entry = self.parser.push_raw(&self.pending)?;
                    self.pending.clear();
                    if let Some(entry) = entry {
                        self.start_file(entry)?;
                    }
                }
                Ok(take)
            }
            Need::Payload(remaining) => {
                let take = clamp(remaining, data.len());
                if let Some(file) = self.file.as_mut() {
                    file.update(&data[..take]);
                }
                self.parser.consume_payload(take as u64);
                if self.parser.payload_remaining() == 0 {
                    self.end_file()?;
                }
                Ok(take)
            }
            Need::Done => {
                self.end_of_archive()?;
                Ok(0)
            }
        }
    }

    fn end_of_archive(&mut self) -> Result<()> {
        if !self.raw.is_empty() {
            let raw = std::mem::take(&mut self.raw);
            self.packer.add_segment(&raw)?;
        }
        self.phase = Phase::Trailing;
        Ok(())
    }

    fn start_file(&mut self, entry: TarEntryHeader) -> Result<()> {
        // Go's tarlog uses uint32(hdr.Uid): IDs wrap, they are not rejected.
        self.log_owner(&entry.path, entry.uid as u32, entry.gid as u32);
        let raw = std::mem::take(&mut self.raw);
        self.packer.add_segment(&raw)?;
        let size = i64::try_from(entry.size)
            .map_err(|_| TarSplitError::InvalidHeader("size out of range".into()))?;
        self.file = Some(PassingFile {
            name: entry.path,
            size,
            crc: FileCrc::new(),
            sparse: entry.sparse.map(SparseCursor::new),
        });
        if self.parser.payload_remaining() == 0 {
            self.end_file()?;
        }
        Ok(())
    }

    fn end_file(&mut self) -> Result<()> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        file.finish_holes();
        let crc = (file.size > 0).then(|| file.crc.finalize().to_be_bytes());
        self.packer.add(&TarSplitEntry::File {
            name: file.name,
            size: file.size,
            crc,
        })
    }

    fn log_owner(&mut self, name: &[u8], uid: u32, gid: u32) {
        if !base_name(name).starts_with(b".wh.") {
            self.uids.insert(uid);
            self.gids.insert(gid);
        }
    }
}

impl PassingFile {
    /// Payload bytes of the entry: for a sparse file, data of its regions in order, the
    /// holes before each counted as zeros.
    fn update(&mut self, mut data: &[u8]) {
        let Some(cursor) = self.sparse.as_mut() else {
            self.crc.update(data);
            return;
        };
        while !data.is_empty() {
            let (hole, room) = cursor.next_room();
            self.crc.zeros(hole);
            let take = clamp(room, data.len());
            self.crc.update(&data[..take]);
            cursor.advance(take as u64);
            data = &data[take..];
            if take == 0 {
                // More payload than the regions hold: the parser checked it cannot be.
                self.crc.update(data);
                break;
            }
        }
    }

    /// The holes after the last data, up to the real size.
    fn finish_holes(&mut self) {
        if let Some(cursor) = self.sparse.as_mut() {
            let rest = cursor.rest();
            self.crc.zeros(rest);
        }
    }
}

/// Walks the regions of a sparse file as its stored bytes pass.
struct SparseCursor {
    map: SparseMap,
    /// The region the next stored byte belongs to.
    region: usize,
    /// Bytes of that region already passed.
    into_region: u64,
    /// The position in the file up to which content (data or zeros) was counted.
    position: u64,
}

impl SparseCursor {
    fn new(map: SparseMap) -> Self {
        SparseCursor {
            map,
            region: 0,
            into_region: 0,
            position: 0,
        }
    }

    /// The zeros before the next stored byte, and how many stored bytes follow at once.
    fn next_room(&mut self) -> (u64, u64) {
        while let Some(r) = self.map.regions.get(self.region) {
            if self.into_region < r.length {
                let at = r.offset + self.into_region;
                let hole = at.saturating_sub(self.position);
                self.position = at;
                return (hole, r.length - self.into_region);
            }
            self.region += 1;
            self.into_region = 0;
        }
        (0, 0)
    }

    fn advance(&mut self, n: u64) {
        self.into_region += n;
        self.position += n;
    }

    /// Zeros from the position to the real size; afterwards, none.
    fn rest(&mut self) -> u64 {
        let rest = self.map.real_size.saturating_sub(self.position);
        self.position = self.map.real_size;
        rest
    }
}

/// The CRC-64 of a file's content, able to count a run of zeros without reading them (a hole
/// of a sparse file may be terabytes: hashing them byte by byte would be a denial of service).
struct FileCrc {
    digest: Crc64Digest,
}

/// `xorout` of CRC-64/GO-ISO: the digest's state is the checksum with it applied.
const CRC64_XOROUT: u64 = u64::MAX;

/// Holes up to this size are hashed as a buffer of zeros; longer ones are combined.
const ZEROS_BUFFER: u64 = 64 * 1024;

impl FileCrc {
    fn new() -> Self {
        FileCrc { digest: crc64() }
    }

    fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }

    fn finalize(&self) -> u64 {
        self.digest.finalize()
    }

    /// Appends `n` zero bytes.
    fn zeros(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if n <= ZEROS_BUFFER {
            static ZEROS: [u8; ZEROS_BUFFER as usize] = [0; ZEROS_BUFFER as usize];
            // Bounded by ZEROS_BUFFER just above.
            self.digest.update(&ZEROS[..n as usize]);
            return;
        }
        let combined = crc_fast::checksum_combine(
            CrcAlgorithm::Crc64GoIso,
            self.digest.finalize(),
            crc64_of_zeros(n),
            n,
        );
        self.digest =
            Crc64Digest::new_with_init_state(CrcAlgorithm::Crc64GoIso, combined ^ CRC64_XOROUT);
    }
}

/// The CRC-64 of `n` zero bytes, by doubling: O(log n) combinations.
fn crc64_of_zeros(n: u64) -> u64 {
    let alg = CrcAlgorithm::Crc64GoIso;
    let mut result: Option<(u64, u64)> = None;
    let (mut power, mut power_len) = (crc_fast::checksum(alg, &[0]), 1u64);
    let mut rest = n;
    while rest > 0 {
        if rest & 1 == 1 {
            result = Some(match result {
                None => (power, power_len),
                Some((crc, len)) => (
                    crc_fast::checksum_combine(alg, crc, power, power_len),
                    len + power_len,
                ),
            });
        }
        rest >>= 1;
        if rest > 0 {
            power = crc_fast::checksum_combine(alg, power, power, power_len);
            power_len *= 2;
        }
    }
    result.map_or_else(|| crc_fast::checksum(alg, &[]), |(crc, _)| crc)
}

impl From<ArchiveError> for TarSplitError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::UnexpectedEof => TarSplitError::UnexpectedEof,
            ArchiveError::InvalidHeader(m) => TarSplitError::InvalidHeader(m),
            other => TarSplitError::InvalidHeader(other.to_string()),
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
        fn get(&mut self, path: &[u8]) -> storage_driver::DriverResult<Box<dyn Read + '_>> {
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
            vec![512, 511 + 1024, TRAILING_CHUNK, TRAILING_CHUNK, 10]
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
        // An old-GNU sparse entry is recorded (Go's fork crashes on it), an `S` header that
        // is not GNU is not one.
        let sparse = header(b"s", b'S', 0, (0, 0), b"", true);
        disassemble(&sparse[..], Vec::new()).expect("an empty old-GNU sparse file");
        let not_gnu = header(b"s", b'S', 0, (0, 0), b"", false);
        let err = disassemble(&not_gnu[..], Vec::new()).expect_err("sparse");
        assert!(matches!(err, TarSplitError::InvalidHeader(_)), "{err}");
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
