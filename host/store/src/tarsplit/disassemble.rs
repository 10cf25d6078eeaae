//! Disassembly: a tar stream, fed in pieces, recorded as tar-split.

use std::io::{self, Read, Write};

use storage_archive::tar_parser::{Need, SparseMap, TarEntryHeader, TarParser};
use storage_driver::parsed_tar::Piece;

use super::crc::FileCrc;
use super::{Result, TarSplitEntry, TarSplitError, TarSplitWriter, BLOCK, MAX_RAW, TRAILING_CHUNK};

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
/// [`reassemble`](super::reassemble()) writes the regions back where they were. (Old-GNU sparse entries make Go's
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
        Self::with_spill_dir(tarsplit_out, None)
    }

    /// A disassembler writing tar-split to `tarsplit_out` whose writer spills the paths it
    /// has seen into `spill_dir` ([`TarSplitWriter::with_spill_dir`]).
    pub fn with_spill_dir(
        tarsplit_out: W,
        spill_dir: Option<std::sync::Arc<crate::store_dir::StoreDir>>,
    ) -> Self {
        Disassembler {
            packer: TarSplitWriter::with_spill_dir(tarsplit_out, spill_dir),
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
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.feed_with(data, None)
    }

    /// Feeds the next bytes of the tar stream and says how they are cut, in `pieces` (byte
    /// ranges relative to `data`): header bytes, payload, the headers parsed from them, the
    /// end of the archive; a reader downstream then need not parse the headers again. After
    /// an error, `pieces` cover the bytes before [`Disassembler::position`]'s.
    pub fn feed_outlined(&mut self, data: &[u8], pieces: &mut Vec<Piece>) -> Result<()> {
        self.feed_with(data, Some(pieces))
    }

    /// Whether the end of the archive was seen (what follows is trailing data).
    pub fn ended(&self) -> bool {
        matches!(self.phase, Phase::Trailing)
    }

    fn feed_with(&mut self, data: &[u8], mut pieces: Option<&mut Vec<Piece>>) -> Result<()> {
        let mut at = 0;
        while at < data.len() {
            match self.step(&data[at..], at, pieces.as_deref_mut()) {
                Ok(used) => {
                    self.position += used as u64;
                    at += used;
                }
                Err(e) => {
                    // The failing step may have noted its bytes (a payload whose file entry
                    // was then refused): the outline covers only what was taken in.
                    if let Some(pieces) = pieces {
                        clip(pieces, at);
                    }
                    return Err(e);
                }
            }
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

    /// Consumes a prefix of `data` (which starts `at` bytes into the fed chunk) and returns
    /// its length; notes in `pieces` what it was.
    fn step(&mut self, data: &[u8], at: usize, pieces: Option<&mut Vec<Piece>>) -> Result<usize> {
        if let Phase::Trailing = self.phase {
            let take = (TRAILING_CHUNK - self.raw.len()).min(data.len());
            outline_raw(pieces, at..at + take);
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
                        self.start_file(&entry)?;
                        if let Some(pieces) = pieces {
                            outline_raw(Some(&mut *pieces), at..at + take);
                            pieces.push(Piece::Header(Box::new(entry)));
                        }
                        return Ok(take);
                    }
                }
                outline_raw(pieces, at..at + take);
                Ok(take)
            }
            Need::Payload(remaining) => {
                let take = clamp(remaining, data.len());
                if let Some(pieces) = pieces {
                    pieces.push(Piece::Payload(at..at + take));
                }
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
                if let Some(pieces) = pieces {
                    pieces.push(Piece::End);
                }
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

    fn start_file(&mut self, entry: &TarEntryHeader) -> Result<()> {
        // Go's tarlog uses uint32(hdr.Uid): IDs wrap, they are not rejected.
        self.log_owner(&entry.path, entry.uid as u32, entry.gid as u32);
        let raw = std::mem::take(&mut self.raw);
        self.packer.add_segment(&raw)?;
        let size = i64::try_from(entry.size)
            .map_err(|_| TarSplitError::InvalidHeader("size out of range".into()))?;
        self.file = Some(PassingFile {
            name: entry.path.clone(),
            size,
            crc: FileCrc::new(),
            sparse: entry.sparse.clone().map(SparseCursor::new),
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

/// Drops what `pieces` say of the bytes from `at` on.
fn clip(pieces: &mut Vec<Piece>, at: usize) {
    while let Some(Piece::Raw(range) | Piece::Payload(range)) = pieces.last_mut() {
        if range.start < at {
            range.end = range.end.min(at);
            return;
        }
        pieces.pop();
    }
}

/// Notes header bytes, joined to the piece before when that is header bytes too.
fn outline_raw(pieces: Option<&mut Vec<Piece>>, range: std::ops::Range<usize>) {
    let Some(pieces) = pieces else { return };
    if range.is_empty() {
        return;
    }
    if let Some(Piece::Raw(last)) = pieces.last_mut() {
        if last.end == range.start {
            last.end = range.end;
            return;
        }
    }
    pieces.push(Piece::Raw(range));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal found after a step noted its bytes (a payload whose file entry repeats a
    /// path) leaves an outline of exactly the bytes taken in (found by fuzzing).
    #[test]
    fn a_refused_step_leaves_no_bytes_in_the_outline() {
        let mut t = crate::tarsplit::test_tar::TestTar::default();
        t.file(b"a", b"first", (0, 0))
            .file(b"./a", b"second", (0, 0))
            .end();
        let mut d = Disassembler::new(Vec::new());
        let mut pieces = Vec::new();
        let err = d
            .feed_outlined(&t.bytes, &mut pieces)
            .expect_err("a repeated path");
        assert!(matches!(err, TarSplitError::DuplicatePath(_)), "{err}");
        let covered = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Raw(r) | Piece::Payload(r) => Some(r.clone()),
                _ => None,
            })
            .fold(0, |at, r| {
                assert_eq!(r.start, at);
                r.end
            });
        assert_eq!(covered as u64, d.position());
        assert!(d.position() < t.bytes.len() as u64);
    }

    #[test]
    fn base_names_are_go_path_base() {
        assert_eq!(base_name(b"d/.wh.x/"), b".wh.x");
        assert_eq!(base_name(b".wh.top"), b".wh.top");
    }
}
