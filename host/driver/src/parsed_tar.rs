//! A layer tar on its way to a driver, with the headers the store already parsed.
//!
//! An import parses every header once, to record tar-split (the store's `Disassembler`), and
//! hands the tar on in [`Outline`]s: the bytes as they came, cut into header bytes, payload
//! and the parsed [`TarEntryHeader`]s between them. A [`ParsedTarStream`] reads them back
//! either way: as the plain tar ([`Read`]: every byte, for a driver that parses it itself), or
//! entry by entry ([`ParsedTar::next_header`]: the archive logic skips the header bytes and
//! copies payload) — so the header is not parsed a second time.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use storage_archive::{ArchiveError, ParsedTar, TarEntryHeader};

/// One piece of an [`Outline`], in stream order.
#[derive(Debug)]
pub enum Piece {
    /// Bytes of the chunk that are not payload: header blocks, PAX and GNU records, padding,
    /// end-of-archive blocks, and whatever follows the archive.
    Raw(Range<usize>),
    /// Bytes of the chunk that are the current entry's payload.
    Payload(Range<usize>),
    /// The header of the entry whose payload follows, parsed from the `Raw` bytes before it.
    Header(Box<TarEntryHeader>),
    /// The end of the archive: no entry follows (trailing bytes may).
    End,
    /// The parser refused the tar here (why); the rest of the stream comes as `Raw`.
    Refused(String),
}

/// A chunk of the tar and how it is cut.
#[derive(Debug)]
pub struct Outline {
    /// The bytes, shared with whoever else reads them.
    pub chunk: Arc<Vec<u8>>,
    /// The pieces, in order; the byte ranges cover the chunk.
    pub pieces: Vec<Piece>,
}

/// The receiving end of an outlined tar; see the module documentation.
#[derive(Debug)]
pub struct ParsedTarStream {
    outlines: Receiver<Outline>,
    /// Where read outlines go back to, to be freed (or reused) by the thread that made them:
    /// the allocator serves each thread from its own arena, and frees across threads
    /// contend for the maker's (a tenth of a many-small-files import, measured).
    recycle: Option<Sender<Outline>>,
    /// The outline being read (`None` before the first and after the last).
    current: Option<Outline>,
    /// The piece being read in it.
    piece: usize,
    /// Bytes of that piece already read.
    offset: usize,
    /// Bytes of the tar read or skipped so far.
    delivered: u64,
    /// A `Piece::Refused` was met by `next_header`.
    refused: bool,
}

impl ParsedTarStream {
    /// The stream of the outlines `outlines` brings; its end is the sender's hang-up.
    pub fn new(outlines: Receiver<Outline>) -> Self {
        ParsedTarStream {
            outlines,
            recycle: None,
            current: None,
            piece: 0,
            offset: 0,
            delivered: 0,
            refused: false,
        }
    }

    /// Sends each outline back on `recycle` once it is read (headers included: an entry
    /// gets a copy of its header), so that its maker frees it.
    pub fn recycling_to(mut self, recycle: Sender<Outline>) -> Self {
        self.recycle = Some(recycle);
        self
    }

    /// Bytes of the tar read or skipped so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether [`ParsedTar::next_header`] stopped at the parser's refusal (the reason is the
    /// parser's to report, not the reader's).
    pub fn met_refusal(&self) -> bool {
        self.refused
    }

    /// The current piece, receiving the next outline when this one is done; `None` at the
    /// end of the stream.
    fn piece(&mut self) -> Option<&mut Piece> {
        loop {
            let done = match &self.current {
                Some(outline) => self.piece >= outline.pieces.len(),
                None => true,
            };
            if !done {
                break;
            }
            let next = self.outlines.recv().ok()?;
            if let (Some(read), Some(recycle)) = (self.current.take(), &self.recycle) {
                if let Err(unwanted) = recycle.send(read) {
                    // The maker has finished: freed here.
                    drop(unwanted.0);
                }
            }
            self.current = Some(next);
            self.piece = 0;
            self.offset = 0;
        }
        let outline = self.current.as_mut()?;
        outline.pieces.get_mut(self.piece)
    }

    fn advance(&mut self) {
        self.piece += 1;
        self.offset = 0;
    }
}

impl Read for ParsedTarStream {
    /// The tar's next bytes, header bytes and payload alike.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let offset = self.offset;
            let range = match self.piece() {
                None => return Ok(0),
                Some(Piece::Raw(range) | Piece::Payload(range)) => range.clone(),
                Some(Piece::Header(_) | Piece::End | Piece::Refused(_)) => {
                    self.advance();
                    continue;
                }
            };
            let left = range.len() - offset;
            if left == 0 {
                self.advance();
                continue;
            }
            let n = left.min(buf.len());
            let start = range.start + offset;
            let chunk = match &self.current {
                Some(outline) => &outline.chunk,
                None => return Ok(0),
            };
            buf[..n].copy_from_slice(&chunk[start..start + n]);
            self.offset += n;
            self.delivered += n as u64;
            return Ok(n);
        }
    }
}

impl ParsedTar for ParsedTarStream {
    fn next_header(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        loop {
            let offset = self.offset;
            match self.piece() {
                None => return Err(ArchiveError::UnexpectedEof),
                Some(Piece::Raw(range) | Piece::Payload(range)) => {
                    let skipped = (range.len() - offset) as u64;
                    self.delivered += skipped;
                    self.advance();
                }
                Some(Piece::Header(header)) => {
                    // A copy: the original goes back with its outline (see `recycle`).
                    let header = TarEntryHeader::clone(header);
                    self.advance();
                    return Ok(Some(header));
                }
                // Stays put: asking again is the end again.
                Some(Piece::End) => return Ok(None),
                Some(Piece::Refused(why)) => {
                    let why = why.clone();
                    self.refused = true;
                    return Err(ArchiveError::InvalidHeader(why));
                }
            }
        }
    }
}

/// A [`ParsedTarStream`] that can be handed on (to another thread, into a component's
/// resource table) while its first owner keeps a handle to read the rest and count.
#[derive(Debug, Clone)]
pub struct SharedParsedTar(Arc<Mutex<ParsedTarStream>>);

impl SharedParsedTar {
    /// Shares `stream`.
    pub fn new(stream: ParsedTarStream) -> Self {
        SharedParsedTar(Arc::new(Mutex::new(stream)))
    }

    fn lock(&self) -> MutexGuard<'_, ParsedTarStream> {
        // A reader that panicked left the stream where it was: still a valid position.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`ParsedTarStream::delivered`].
    pub fn delivered(&self) -> u64 {
        self.lock().delivered()
    }

    /// See [`ParsedTarStream::met_refusal`].
    pub fn met_refusal(&self) -> bool {
        self.lock().met_refusal()
    }
}

impl Read for SharedParsedTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

impl ParsedTar for SharedParsedTar {
    fn next_header(&mut self) -> Result<Option<TarEntryHeader>, ArchiveError> {
        self.lock().next_header()
    }
}

/// The layer tar the archive logic applies ([`crate::archive_runtime::ArchiveOps::apply_tar`]).
pub enum LayerTar<'a> {
    /// Only the bytes.
    Stream(&'a mut dyn Read),
    /// The bytes with their headers already parsed (an import): the archive logic reads the
    /// entries instead of parsing the headers again; anyone else reads the bytes.
    Parsed(SharedParsedTar),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn empty_header() -> TarEntryHeader {
        TarEntryHeader {
            path: Vec::new(),
            link_name: Vec::new(),
            kind: storage_archive::EntryKind::Other(0),
            typeflag: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: (0, 0),
            atime: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            uname: None,
            gname: None,
            pax_records: Vec::new(),
            sparse: None,
        }
    }

    fn header(path: &str, size: u64) -> Box<TarEntryHeader> {
        let mut h = empty_header();
        h.path = path.as_bytes().to_vec();
        h.kind = storage_archive::EntryKind::Regular;
        h.typeflag = b'0';
        h.size = size;
        Box::new(h)
    }

    /// Two outlines: `HHHH` header bytes, header `a` (3 bytes `abc`), padding `pp`, header bytes
    /// `KK` split across the chunks, header `b` (2 bytes `de`), end, trailing `zz`.
    fn stream() -> ParsedTarStream {
        let (tx, rx) = sync_channel(4);
        tx.send(Outline {
            chunk: Arc::new(b"HHHHabcppK".to_vec()),
            pieces: vec![
                Piece::Raw(0..4),
                Piece::Header(header("a", 3)),
                Piece::Payload(4..7),
                Piece::Raw(7..10),
            ],
        })
        .unwrap();
        tx.send(Outline {
            chunk: Arc::new(b"Kdezz".to_vec()),
            pieces: vec![
                Piece::Raw(0..1),
                Piece::Header(header("b", 2)),
                Piece::Payload(1..3),
                Piece::End,
                Piece::Raw(3..5),
            ],
        })
        .unwrap();
        ParsedTarStream::new(rx)
    }

    #[test]
    fn reading_gives_every_byte_and_skips_the_headers() {
        let mut s = stream();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"HHHHabcppKKdezz");
        assert_eq!(s.delivered(), 15);
    }

    #[test]
    fn entries_skip_header_bytes_and_unread_payload() {
        let mut s = stream();
        let a = s.next_header().unwrap().unwrap();
        assert_eq!(a.path, b"a");
        let mut two = [0u8; 2];
        s.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"ab");
        // The rest of `a`, the padding and `b`'s header bytes are skipped.
        let b = s.next_header().unwrap().unwrap();
        assert_eq!(b.path, b"b");
        let mut payload = [0u8; 2];
        s.read_exact(&mut payload).unwrap();
        assert_eq!(&payload, b"de");
        assert!(s.next_header().unwrap().is_none());
        assert!(s.next_header().unwrap().is_none(), "the end stays the end");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"zz");
        assert_eq!(s.delivered(), 15);
    }

    #[test]
    fn a_refusal_is_an_error_for_entries_and_nothing_for_bytes() {
        let (tx, rx) = sync_channel(4);
        tx.send(Outline {
            chunk: Arc::new(b"HHjunk".to_vec()),
            pieces: vec![
                Piece::Raw(0..2),
                Piece::Refused("bad header".into()),
                Piece::Raw(2..6),
            ],
        })
        .unwrap();
        drop(tx);
        let mut parsed = SharedParsedTar::new(ParsedTarStream::new(rx));
        let mut bytes = parsed.clone();
        let err = parsed.next_header().unwrap_err();
        assert!(matches!(err, ArchiveError::InvalidHeader(ref why) if why == "bad header"));
        assert!(parsed.met_refusal());
        let mut rest = Vec::new();
        bytes.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"junk");
        assert_eq!(bytes.delivered(), 6);
    }

    #[test]
    fn a_stream_cut_before_its_end_is_an_unexpected_end() {
        let (tx, rx) = sync_channel(4);
        tx.send(Outline {
            chunk: Arc::new(b"HH".to_vec()),
            pieces: vec![Piece::Raw(0..2)],
        })
        .unwrap();
        drop(tx);
        let mut s = ParsedTarStream::new(rx);
        assert!(matches!(s.next_header(), Err(ArchiveError::UnexpectedEof)));
    }
}
