//! The import pipeline of a layer blob (upstream's
//! `layerStore.applyDiffWithOptions` in `layers.go`): detect the compression, digest and count the
//! blob as given and the tar inside it, record tar-split, log the owners, and hand the very same
//! tar bytes to the driver.
//!
//! Three threads share the work: one reads, decompresses and digests the blob and hands each
//! chunk of the tar to the other two; one records tar-split with the [`Disassembler`]; the
//! calling thread runs the driver over the same chunks. When the driver stops reading early
//! (the end-of-archive blocks are enough for it), the rest of the stream is read anyway, so
//! digests, sizes and tar-split cover every byte, as Go's drain does. Memory stays bounded
//! by the channels, whatever the layer's size, but for one set: tar-split refuses a path
//! that repeats, so it remembers every path it recorded, in 16 bytes a path
//! ([`storage_archive::PathSet`]; `bench/memory.py` measures an import's peak).
//!
//! What can go wrong: the blob cannot be read or decompressed ([`IngestError::Io`],
//! [`IngestError::Compress`]), the tar is malformed or repeats a path
//! ([`IngestError::TarSplit`]), or the driver fails ([`IngestError::Apply`]).

use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc};

use crate::compress::{self, CompressError, Compression};
use crate::digest::{Digester, DigestingReader};
use crate::store_dir::StoreDir;
use crate::tarsplit::{Disassembler, IdSets, TarSplitError};
use storage_driver::parsed_tar::{Outline, ParsedTarStream, Piece, SharedParsedTar};
use storage_driver::DriverError;

/// What the import of one layer blob measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    /// sha256 of the blob exactly as given (`compressed-diff-digest`).
    pub compressed_digest: String,
    /// Length of the blob as given (`compressed-size`).
    pub compressed_size: u64,
    /// sha256 of the uncompressed tar (`diff-digest`); the compressed digest when the blob
    /// was not compressed.
    pub uncompressed_digest: String,
    /// Length of the uncompressed tar, everything after the end-of-archive blocks
    /// included (`diff-size`).
    pub uncompressed_size: u64,
    /// The blob's compression (`compression`).
    pub compression: Compression,
    /// Distinct owner user IDs of the entries, whiteouts excluded, sorted (`uidset`).
    pub uids: Vec<u32>,
    /// Distinct owner group IDs of the entries, whiteouts excluded, sorted (`gidset`).
    pub gids: Vec<u32>,
}

/// Errors of the import pipeline.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Detecting the compression or starting the decoder failed.
    #[error("{0}")]
    Compress(#[from] CompressError),
    /// The tar could not be recorded (malformed, truncated, repeated paths).
    #[error("{0}")]
    TarSplit(#[from] TarSplitError),
    /// The driver failed to apply the tar.
    #[error("{0}")]
    Apply(#[source] DriverError),
    /// A thread of the pipeline panicked (a bug, not a property of the blob).
    #[error("{0}")]
    Panicked(&'static str),
    /// Reading or decompressing the blob failed after the driver finished.
    #[error("{context}: {}", storage_archive::error::os_error_text(source))]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Imports one layer blob: reads `input` (compressed or not), writes its tar-split
/// (gzip) to `tarsplit_out`, passes the uncompressed tar to `apply`, and returns the
/// digests, sizes, compression and owner sets to record.
///
/// `apply` gets the tar with the headers tar-split parsed ([`SharedParsedTar`]): the archive
/// logic reads the entries from it instead of parsing each header a second time, and
/// anyone else reads it as plain bytes. It may stop reading before the end; the rest is then
/// read and recorded here.
///
/// When something fails, the first cause is the error: a blob that cannot be read or
/// decompressed, else whichever of tar-split and `apply` failed first in the stream. When
/// `apply` fails (a refused entry, a full disk), the reading stops there, and tar-split's
/// resulting "unexpected EOF" is a consequence, not a cause; a tar that is malformed
/// before the place `apply` failed is the blob's fault and is reported as such.
///
/// Reading, decompressing and digesting run on a second thread and tar-split on a third,
/// which hands the outlined tar on to this thread, where `apply` runs: each stage works on
/// its own chunk, so an import takes about the time of the slowest of the three (the
/// driver's system calls on many small files, decompression on gzip). Memory stays bounded
/// by the channels.
pub fn ingest_layer(
    input: &mut (dyn Read + Send),
    tarsplit_out: &mut (dyn Write + Send),
    spill_dir: Option<Arc<StoreDir>>,
    apply: &mut dyn FnMut(SharedParsedTar) -> Result<u64, DriverError>,
) -> Result<DiffSummary, IngestError> {
    std::thread::scope(|scope| {
        let (chunks, chunk_receiver) = mpsc::sync_channel::<io::Result<Chunk>>(CHANNEL_CHUNKS);
        let (outlines, outline_receiver) = mpsc::sync_channel::<Outline>(CHANNEL_CHUNKS);
        let (recycle, recycled) = mpsc::channel::<Outline>();
        let producer = scope.spawn(move || produce(input, chunks));
        let recorder = scope
            .spawn(move || record(chunk_receiver, outlines, recycled, tarsplit_out, spill_dir));
        let tar =
            SharedParsedTar::new(ParsedTarStream::new(outline_receiver).recycling_to(recycle));
        let consumed = consume(tar.clone(), apply);
        let applied_up_to = tar.delivered();
        let met_refusal = tar.met_refusal();
        // Hang up before joining, so a recorder blocked on a full channel stops.
        drop(tar);
        let produced = producer.join().unwrap_or(Err(IngestError::Panicked(
            "reading the layer: the reading thread panicked",
        )));
        let recorded = recorder.join();
        let produced = produced?;
        let recorded = recorded.map_err(|_| {
            IngestError::Panicked("recording tar-split: the tar-split thread panicked")
        })?;
        let ids = match (recorded, consumed) {
            (Ok(ids), Ok(())) => ids,
            (Ok(_), Err(applying)) => return Err(applying),
            // The applying side hung up first: its error is the cause.
            (Err(Recording::Abandoned), Err(applying)) => return Err(applying),
            (Err(Recording::Abandoned), Ok(())) => {
                return Err(IngestError::Panicked(
                    "recording tar-split: the applying side stopped reading without an error",
                ))
            }
            (Err(Recording::Failed(recording, _)), Ok(())) => return Err(recording.into()),
            (Err(Recording::Failed(recording, at)), Err(applying)) => {
                // `apply` stopped at the parser's refusal, or failed further on: the tar's
                // fault; else `apply` failed before the place tar-split did.
                let consequence =
                    matches!(recording, TarSplitError::UnexpectedEof) && produced.stopped_early;
                return Err(if !met_refusal && (consequence || at > applied_up_to) {
                    applying
                } else {
                    recording.into()
                });
            }
        };
        let uncompressed_digest = if produced.compression == Compression::None {
            produced.compressed_digest.clone()
        } else {
            produced.uncompressed_digest
        };
        Ok(DiffSummary {
            compressed_digest: produced.compressed_digest,
            compressed_size: produced.compressed_size,
            uncompressed_digest,
            uncompressed_size: produced.uncompressed_size,
            compression: produced.compression,
            uids: ids.uids,
            gids: ids.gids,
        })
    })
}

/// A piece of the tar, shared by the applying and the recording threads.
type Chunk = std::sync::Arc<Vec<u8>>;

/// How many chunks may wait between the reading thread and each of the others.
const CHANNEL_CHUNKS: usize = 4;

/// The size of one chunk of tar handed over.
const CHUNK_SIZE: usize = 256 * 1024;

/// What the reading thread measured.
struct Produced {
    /// The applying side hung up before the end of the input (it failed).
    stopped_early: bool,
    compression: Compression,
    compressed_digest: String,
    compressed_size: u64,
    uncompressed_digest: String,
    uncompressed_size: u64,
}

/// The reading thread: sniffs, decompresses and digests `input`, and sends the tar in
/// chunks to the recording thread. A read error is sent on too, so the applying side stops
/// at the same place.
fn produce(
    input: &mut (dyn Read + Send),
    chunks: mpsc::SyncSender<io::Result<Chunk>>,
) -> Result<Produced, IngestError> {
    let mut blob = Digester::new();
    let mut tar = Digester::new();
    let mut tar_size = 0u64;
    let mut stopped_early = false;
    let (compression, peeked) = compress::sniff(input)?;
    {
        let mut decompressed =
            compress::decompressor(compression, DigestingReader::new(peeked, &mut blob))?;
        loop {
            // Not zero-filled first: `read_to_end` reads into the spare capacity.
            let mut chunk = Vec::with_capacity(CHUNK_SIZE);
            let n = match (&mut decompressed)
                .take(CHUNK_SIZE as u64)
                .read_to_end(&mut chunk)
            {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    // `io::Error` is not `Clone`: the other side gets a copy (kind and text)
                    // only so that it stops here; the original, with its cause, is the error
                    // reported (this thread's result wins). A send fails only when the other
                    // side has already stopped, which is as good.
                    let message = source.to_string();
                    if chunks
                        .send(Err(io::Error::new(source.kind(), message)))
                        .is_err()
                    {
                        log::debug!("the layer's reader failed after the import stopped");
                    }
                    return Err(IngestError::Io {
                        context: "reading the layer",
                        source,
                    });
                }
            };
            tar_size += n as u64;
            // Uncompressed input: the blob's digest is the tar's, so hash only once.
            if compression != Compression::None {
                tar.update(&chunk);
            }
            if chunks.send(Ok(Chunk::new(chunk))).is_err() {
                // The applying side stopped (it failed): its error is the one to report.
                stopped_early = true;
                break;
            }
        }
    }
    Ok(Produced {
        stopped_early,
        compression,
        compressed_digest: blob.digest(),
        compressed_size: blob.count(),
        uncompressed_digest: if compression == Compression::None {
            String::new()
        } else {
            tar.digest()
        },
        uncompressed_size: tar_size,
    })
}

/// Why tar-split was not recorded.
enum Recording {
    /// The tar is malformed (or ended early) at this position.
    Failed(TarSplitError, u64),
    /// The applying side hung up before the end: it failed, and its error is the cause.
    Abandoned,
}

/// The recording thread: turns the tar into tar-split on `out` as its chunks come, and hands
/// every chunk on to the applying thread, outlined (header bytes, payload, the headers it
/// parsed, the end). At the first malformed piece it stops recording, says so in the
/// outline (the refusal), and hands the rest on as plain bytes. A read error ends the tar
/// for the applying side (the reading thread reports it).
fn record(
    chunks: mpsc::Receiver<io::Result<Chunk>>,
    outlines: mpsc::SyncSender<Outline>,
    recycled: mpsc::Receiver<Outline>,
    out: &mut (dyn Write + Send),
    spill_dir: Option<Arc<StoreDir>>,
) -> Result<IdSets, Recording> {
    let mut disassembler = Some(Disassembler::with_spill_dir(out, spill_dir));
    let mut failed = None;
    // Lists of pieces the applying side has read, emptied here (their headers freed by the
    // thread that made them) and filled again.
    let mut spare: Vec<Vec<Piece>> = Vec::new();
    for chunk in chunks {
        let Ok(chunk) = chunk else {
            return Err(failed.unwrap_or(Recording::Abandoned));
        };
        for read in recycled.try_iter() {
            let mut pieces = read.pieces;
            pieces.clear();
            if spare.len() < CHANNEL_CHUNKS {
                spare.push(pieces);
            }
        }
        let mut pieces = spare.pop().unwrap_or_default();
        match disassembler.as_mut() {
            Some(d) => {
                let start = d.position();
                if let Err(e) = d.feed_outlined(&chunk, &mut pieces) {
                    let at = d.position();
                    let cut = usize::try_from(at - start).unwrap_or(chunk.len());
                    pieces.push(Piece::Refused(e.to_string()));
                    pieces.push(Piece::Raw(cut..chunk.len()));
                    failed = Some(Recording::Failed(e, at));
                    disassembler = None;
                }
            }
            None => pieces.push(Piece::Raw(0..chunk.len())),
        }
        if outlines.send(Outline { chunk, pieces }).is_err() {
            return Err(failed.unwrap_or(Recording::Abandoned));
        }
    }
    let Some(disassembler) = disassembler else {
        return Err(failed.unwrap_or(Recording::Abandoned));
    };
    let ended = disassembler.ended();
    let at = disassembler.position();
    let finished = disassembler.finish();
    let last = match &finished {
        Ok(_) if ended => None,
        Ok(_) => Some(Piece::End),
        Err(e) => Some(Piece::Refused(e.to_string())),
    };
    if let Some(piece) = last {
        let sent = outlines.send(Outline {
            chunk: Chunk::default(),
            pieces: vec![piece],
        });
        if sent.is_err() {
            // The applying side has stopped: it needs no end.
            log::debug!("the applying side stopped before the end of the layer");
        }
    }
    finished
        .map(|(_, ids)| ids)
        .map_err(|e| Recording::Failed(e, at))
}

/// The applying thread: runs `apply` over the tar and reads whatever it left, so digests,
/// sizes and tar-split cover every byte, as Go's drain does.
fn consume(
    mut tar: SharedParsedTar,
    apply: &mut dyn FnMut(SharedParsedTar) -> Result<u64, DriverError>,
) -> Result<(), IngestError> {
    apply(tar.clone()).map_err(IngestError::Apply)?;
    io::copy(&mut tar, &mut io::sink()).map_err(|source| IngestError::Io {
        context: "reading the rest of the layer",
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::compressor;
    use crate::digest::sha256_digest;
    use crate::tarsplit::test_tar::{varied, TestTar};
    use crate::tarsplit::{disassemble, reassemble, TarSplitEntry, TarSplitReader};
    use std::path::{Path, PathBuf};

    fn compressed(kind: Compression, data: &[u8]) -> Vec<u8> {
        let mut w = compressor(kind, Vec::new()).expect("compressor");
        w.write_all(data).expect("compress");
        w.finish().expect("finish")
    }

    /// Runs the pipeline with an apply step that reads everything and keeps it.
    fn ingest_all(blob: &[u8]) -> (DiffSummary, Vec<u8>, Vec<u8>) {
        let mut tarsplit = Vec::new();
        let mut applied = Vec::new();
        let summary = ingest_layer(
            &mut &blob[..],
            &mut tarsplit,
            None,
            &mut |mut r: SharedParsedTar| {
                r.read_to_end(&mut applied)
                    .map(|n| n as u64)
                    .map_err(|e| DriverError::io("apply", e))
            },
        )
        .expect("ingest");
        (summary, tarsplit, applied)
    }

    fn lines(tarsplit_gz: &[u8]) -> Vec<String> {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(tarsplit_gz)
            .read_to_string(&mut text)
            .expect("gunzip");
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn every_compression_yields_the_same_tar_record() {
        let mut t = varied();
        t.raw(b"junk");
        let tar = t.bytes;
        let (plain, plain_ts, applied) = ingest_all(&tar);
        assert_eq!(applied, tar);
        assert_eq!(plain.compression, Compression::None);
        assert_eq!(plain.compressed_digest, sha256_digest(&tar));
        assert_eq!(plain.uncompressed_digest, plain.compressed_digest);
        assert_eq!(
            (plain.compressed_size, plain.uncompressed_size),
            (tar.len() as u64, tar.len() as u64)
        );
        assert_eq!(plain.uids, vec![0, 5, 1000, 70000]);
        assert_eq!(plain.gids, vec![0, 6, 1001, 70001]);
        let mut reference = Vec::new();
        disassemble(&tar[..], &mut reference).expect("disassemble");
        assert_eq!(lines(&plain_ts), lines(&reference));
        for kind in [Compression::Gzip, Compression::Zstd] {
            let blob = compressed(kind, &tar);
            let (summary, ts, applied) = ingest_all(&blob);
            assert_eq!(applied, tar);
            assert_eq!(summary.compression, kind);
            assert_eq!(summary.compressed_digest, sha256_digest(&blob));
            assert_eq!(summary.compressed_size, blob.len() as u64);
            assert_eq!(summary.uncompressed_digest, sha256_digest(&tar));
            assert_eq!(summary.uncompressed_size, tar.len() as u64);
            assert_eq!((&summary.uids, &summary.gids), (&plain.uids, &plain.gids));
            assert_eq!(lines(&ts), lines(&plain_ts));
        }
    }

    #[test]
    fn an_apply_that_stops_early_still_gets_everything_recorded() {
        let mut t = varied();
        t.raw(&[1u8; 100_000]);
        let blob = compressed(Compression::Gzip, &t.bytes);
        let mut tarsplit = Vec::new();
        let summary = ingest_layer(
            &mut &blob[..],
            &mut tarsplit,
            None,
            &mut |mut r: SharedParsedTar| {
                let mut first = [0u8; 512];
                r.read_exact(&mut first)
                    .map_err(|e| DriverError::io("apply", e))?;
                Ok(512)
            },
        )
        .expect("ingest");
        assert_eq!(summary.uncompressed_size, t.bytes.len() as u64);
        assert_eq!(summary.uncompressed_digest, sha256_digest(&t.bytes));
        assert_eq!(summary.compressed_size, blob.len() as u64);
        let last = TarSplitReader::new(&tarsplit[..])
            .filter_map(|e| match e.expect("entry") {
                TarSplitEntry::Segment(s) => Some(s.len()),
                TarSplitEntry::File { .. } => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(last[last.len() - 1], 100_000);
    }

    #[test]
    fn the_drivers_error_is_returned_as_is() {
        let t = varied();
        let err = ingest_layer(
            &mut &t.bytes[..],
            &mut Vec::new(),
            None,
            &mut |_r: SharedParsedTar| Err(DriverError::Unsupported("testing")),
        )
        .expect_err("apply fails");
        assert!(matches!(
            err,
            IngestError::Apply(DriverError::Unsupported("testing"))
        ));
    }

    /// A driver that fails midway (a full disk, a refused entry) stops the reading; the
    /// tar-split then ends early, but its "unexpected EOF" is a consequence: the driver's
    /// error is the first cause and the one reported.
    #[test]
    fn a_driver_failing_midway_is_the_first_cause() {
        let mut t = TestTar::default();
        for i in 0..40 {
            t.file(format!("f{i}").as_bytes(), &[7u8; 50_000], (0, 0));
        }
        t.end();
        let err = ingest_layer(
            &mut &t.bytes[..],
            &mut Vec::new(),
            None,
            &mut |mut r: SharedParsedTar| {
                let mut some = vec![0u8; 600_000];
                r.read_exact(&mut some)
                    .map_err(|e| DriverError::io("apply", e))?;
                Err(DriverError::io(
                    "create \"f11\"",
                    io::Error::from_raw_os_error(28),
                ))
            },
        )
        .expect_err("the driver fails");
        assert!(matches!(err, IngestError::Apply(_)), "{err}");
        assert!(err.to_string().contains("no space left on device"), "{err}");
    }

    /// An `apply` that reads the whole tar and writes nothing.
    fn read_all(mut r: SharedParsedTar) -> Result<u64, DriverError> {
        let mut sink = Vec::new();
        r.read_to_end(&mut sink)
            .map_err(|e| DriverError::io("apply", e))?;
        Ok(0)
    }

    /// An `apply` that takes the entries tar-split parsed (as the archive logic does) and
    /// their payloads.
    fn read_entries(
        mut r: SharedParsedTar,
    ) -> Result<Vec<(storage_archive::TarEntryHeader, Vec<u8>)>, DriverError> {
        use storage_archive::ParsedTar;
        let mut entries = Vec::new();
        while let Some(header) = r.next_header()? {
            let mut payload = vec![0u8; header.stored_size() as usize];
            r.read_exact(&mut payload)
                .map_err(|e| DriverError::io("apply", e))?;
            entries.push((header, payload));
        }
        Ok(entries)
    }

    #[test]
    fn the_driver_gets_the_headers_tar_split_parsed() {
        let mut t = varied();
        t.raw(b"trailing junk");
        let mut expected = Vec::new();
        let mut reader = storage_archive::TarStreamReader::new(&t.bytes[..]);
        while let Some(header) = reader.next_entry().expect("entry") {
            let mut payload = vec![0u8; reader.payload_remaining() as usize];
            let mut filled = 0;
            while filled < payload.len() {
                filled += reader
                    .read_payload(&mut payload[filled..])
                    .expect("payload");
            }
            expected.push((header, payload));
        }
        assert!(expected.len() > 5);
        for blob in [t.bytes.clone(), compressed(Compression::Gzip, &t.bytes)] {
            let mut got = Vec::new();
            let mut tarsplit = Vec::new();
            let summary = ingest_layer(&mut &blob[..], &mut tarsplit, None, &mut |r| {
                got = read_entries(r)?;
                Ok(0)
            })
            .expect("ingest");
            assert_eq!(got, expected);
            // The rest was read for the digests and tar-split all the same.
            assert_eq!(summary.uncompressed_size, t.bytes.len() as u64);
            assert_eq!(summary.uncompressed_digest, sha256_digest(&t.bytes));
            let mut reference = Vec::new();
            disassemble(&t.bytes[..], &mut reference).expect("disassemble");
            assert_eq!(lines(&tarsplit), lines(&reference));
        }
    }

    /// A tar the parser refuses stops a driver reading entries at the refusal, and the
    /// parser's reason is the error: not the driver's account of it.
    #[test]
    fn a_refused_tar_is_the_parsers_error_for_a_driver_reading_entries() {
        let mut t = TestTar::default();
        t.file(b"a", b"1", (0, 0)).file(b"./a", b"2", (0, 0)).end();
        let mut junk = varied().bytes;
        junk.truncate(1536);
        junk.extend_from_slice(&[b'x'; 512]);
        junk.extend_from_slice(&[0u8; 1024]);
        for (tar, duplicate) in [(t.bytes, true), (junk, false)] {
            let err = ingest_layer(&mut &tar[..], &mut Vec::new(), None, &mut |r| {
                read_entries(r).map(|_| 0)
            })
            .expect_err("refused");
            match err {
                IngestError::TarSplit(TarSplitError::DuplicatePath(_)) => assert!(duplicate),
                IngestError::TarSplit(TarSplitError::InvalidHeader(_)) => assert!(!duplicate),
                other => panic!("not the parser's error: {other}"),
            }
        }
    }

    /// A blob that does not decompress is the first cause, not the truncated tar behind it.
    #[test]
    fn a_corrupt_compressed_blob_is_the_first_cause() {
        let mut blob = compressed(Compression::Gzip, &varied().bytes);
        let middle = blob.len() / 2;
        blob[middle..].iter_mut().for_each(|b| *b ^= 0x5a);
        let err = ingest_layer(&mut &blob[..], &mut Vec::new(), None, &mut read_all)
            .expect_err("corrupt gzip");
        assert!(matches!(err, IngestError::Io { .. }), "{err}");
    }

    #[test]
    fn a_malformed_tar_is_reported_as_such_even_through_the_driver() {
        let mut t = TestTar::default();
        t.file(b"a", b"1", (0, 0)).file(b"./a", b"2", (0, 0)).end();
        let err = ingest_layer(&mut &t.bytes[..], &mut Vec::new(), None, &mut read_all)
            .expect_err("duplicate");
        assert!(
            matches!(err, IngestError::TarSplit(TarSplitError::DuplicatePath(_))),
            "{err}"
        );
        let truncated = &varied().bytes[..700];
        let err = ingest_layer(
            &mut &truncated[..],
            &mut Vec::new(),
            None,
            &mut |_r: SharedParsedTar| Ok(0),
        )
        .expect_err("truncated");
        assert!(
            matches!(err, IngestError::TarSplit(TarSplitError::UnexpectedEof)),
            "{err}"
        );
    }

    #[test]
    fn a_large_layer_streams() {
        // 64 MiB of content through a generator: nothing may hold the whole layer.
        struct Generated {
            tar_head: Vec<u8>,
            remaining: u64,
            tail: Vec<u8>,
        }
        impl Read for Generated {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if !self.tar_head.is_empty() {
                    let n = buf.len().min(self.tar_head.len());
                    buf[..n].copy_from_slice(&self.tar_head[..n]);
                    self.tar_head.drain(..n);
                    return Ok(n);
                }
                if self.remaining > 0 {
                    let n = buf.len().min(self.remaining as usize);
                    buf[..n].fill(b'q');
                    self.remaining -= n as u64;
                    return Ok(n);
                }
                let n = buf.len().min(self.tail.len());
                buf[..n].copy_from_slice(&self.tail[..n]);
                self.tail.drain(..n);
                Ok(n)
            }
        }
        let size = 64u64 << 20;
        let head = crate::tarsplit::test_tar::header(b"big", b'0', size, (3, 4), b"", false);
        let mut input = Generated {
            tar_head: head.to_vec(),
            remaining: size,
            tail: vec![0u8; 1024],
        };
        let mut tarsplit = Vec::new();
        let summary = ingest_layer(
            &mut input,
            &mut tarsplit,
            None,
            &mut |mut r: SharedParsedTar| {
                io::copy(&mut r, &mut io::sink()).map_err(|e| DriverError::io("apply", e))
            },
        )
        .expect("ingest");
        assert_eq!(summary.uncompressed_size, 512 + size + 1024);
        assert_eq!((summary.uids, summary.gids), (vec![3], vec![4]));
        assert!(tarsplit.len() < 4096, "tar-split holds no content");
    }

    // ---- differential test against the Go reference CLI -------------------------------

    struct GoImport {
        id: String,
        tarsplit: Vec<u8>,
        record: serde_json::Value,
        layer_dir: PathBuf,
    }

    /// The Go reference CLI; these tests need it.
    fn go_binary() -> PathBuf {
        storage_test_support::reference_binary()
            .expect("containers-storage (the Go reference CLI) must be installed")
    }

    fn go_import(root: &Path, blob: &Path) -> GoImport {
        let out = std::process::Command::new(go_binary())
            .arg("--graph")
            .arg(root.join("g"))
            .arg("--run")
            .arg(root.join("r"))
            .args(["--storage-driver", "vfs", "import-layer", "-f"])
            .arg(blob)
            .output()
            .expect("running the Go reference CLI");
        assert!(
            out.status.success(),
            "Go import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout)
            .expect("id")
            .trim()
            .to_string();
        let layers = root.join("g/vfs-layers");
        let tarsplit = std::fs::read(layers.join(format!("{id}.tar-split.gz"))).expect("tar-split");
        let all: Vec<serde_json::Value> = serde_json::from_slice(
            &std::fs::read(layers.join("layers.json")).expect("layers.json"),
        )
        .expect("json");
        let record = all
            .into_iter()
            .find(|r| r["id"] == id.as_str())
            .expect("record");
        GoImport {
            tarsplit,
            record,
            layer_dir: root.join("g/vfs/dir").join(&id),
            id,
        }
    }

    /// Puts `tarsplit` in place of the Go-written one and has Go's `diff` re-create the
    /// uncompressed tar from it.
    fn go_diff_with(root: &Path, id: &str, tarsplit: &[u8]) -> Vec<u8> {
        let path = root.join(format!("g/vfs-layers/{id}.tar-split.gz"));
        std::fs::write(&path, tarsplit).expect("replace tar-split");
        let out_path = root.join("diff.tar");
        let out = std::process::Command::new(go_binary())
            .arg("--graph")
            .arg(root.join("g"))
            .arg("--run")
            .arg(root.join("r"))
            .args(["--storage-driver", "vfs", "diff", "-u", "-f"])
            .arg(&out_path)
            .arg(id)
            .output()
            .expect("containers-storage diff");
        assert!(
            out.status.success(),
            "Go diff failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&out_path).expect("diff output")
    }

    /// Serves files from a layer directory the Go CLI extracted.
    struct DirFiles(PathBuf);

    impl storage_driver::FileGetter for DirFiles {
        fn get(&mut self, path: &[u8]) -> storage_driver::DriverResult<Box<dyn Read + '_>> {
            use std::os::unix::ffi::OsStrExt;
            let full = self.0.join(std::ffi::OsStr::from_bytes(path));
            let file = std::fs::File::open(&full).map_err(|e| DriverError::io("open", e))?;
            Ok(Box::new(file))
        }
    }

    fn ids(value: &serde_json::Value) -> Vec<u32> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn agrees_with_the_go_reference_cli() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut junk = varied();
        junk.raw(b"some trailing junk\n");
        let built_by_tar_crate = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(100_000);
            h.set_mode(0o600);
            h.set_uid(12);
            h.set_gid(13);
            b.append_data(
                &mut h,
                format!("long/{}", "x".repeat(200)),
                &[9u8; 100_000][..],
            )
            .expect("append");
            let mut d = tar::Header::new_ustar();
            d.set_entry_type(tar::EntryType::Directory);
            d.set_size(0);
            d.set_mode(0o755);
            b.append_data(&mut d, "long/", &[][..]).expect("dir");
            b.into_inner().expect("finish")
        };
        let mut odd = TestTar::default();
        odd.global_pax(&[("comment", b"global")])
            .file("ctl\x08\x0c\x7f\u{2028}".as_bytes(), b"c", (7, 8))
            .file(b".wh.gone", b"", (9, 9))
            .dir(b"no-end-blocks/", (7, 8));
        let mut one_zero = TestTar::default();
        one_zero.file(b"f", b"1", (7, 7)).raw(&[0u8; 512]);
        let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "global-control-names-no-end",
                odd.bytes.clone(),
                odd.bytes.clone(),
            ),
            (
                "one-zero-block",
                one_zero.bytes.clone(),
                one_zero.bytes.clone(),
            ),
            ("empty", Vec::new(), Vec::new()),
            ("plain", varied().bytes, varied().bytes),
            (
                "gzip",
                compressed(Compression::Gzip, &varied().bytes),
                varied().bytes,
            ),
            ("junk", junk.bytes.clone(), junk.bytes.clone()),
            (
                "zstd-tar-crate",
                compressed(Compression::Zstd, &built_by_tar_crate),
                built_by_tar_crate.clone(),
            ),
        ];
        for (name, blob, tar) in cases {
            let case_dir = dir.path().join(name);
            std::fs::create_dir_all(&case_dir).expect("mkdir");
            let blob_path = case_dir.join("blob");
            std::fs::write(&blob_path, &blob).expect("write blob");
            let go = go_import(&case_dir, &blob_path);
            let (ours, our_ts, _) = ingest_all(&blob);

            let (go_lines, our_lines) = (lines(&go.tarsplit), lines(&our_ts));
            assert_eq!(
                go_lines.len(),
                our_lines.len(),
                "{name}: record count\n{go_lines:#?}\n{our_lines:#?}"
            );
            for (i, (g, o)) in go_lines.iter().zip(&our_lines).enumerate() {
                assert_eq!(g, o, "{name}: line {i}");
            }
            let r = &go.record;
            assert_eq!(
                r["compressed-diff-digest"],
                ours.compressed_digest.as_str(),
                "{name}"
            );
            let size = |key: &str| r[key].as_u64().unwrap_or(0);
            assert_eq!(size("compressed-size"), ours.compressed_size, "{name}");
            assert_eq!(
                r["diff-digest"],
                ours.uncompressed_digest.as_str(),
                "{name}"
            );
            assert_eq!(size("diff-size"), ours.uncompressed_size, "{name}");
            assert_eq!(
                r["compression"].as_u64().unwrap_or(0),
                u64::from(ours.compression.as_number()),
                "{name}"
            );
            assert_eq!(ids(&r["uidset"]), ours.uids, "{name}");
            if name.starts_with("global") {
                // Go logs a global header as an entry owned by 0.
                assert_eq!((&ours.uids[..], &ours.gids[..]), (&[0, 7][..], &[0, 8][..]));
            }
            assert_eq!(ids(&r["gidset"]), ours.gids, "{name}");

            // Go's tar-split, read by our reader, with files from Go's extracted layer,
            // gives back the original tar; so does ours.
            for ts in [&go.tarsplit, &our_ts] {
                let mut out = Vec::new();
                reassemble(&ts[..], &mut DirFiles(go.layer_dir.clone()), &mut out)
                    .expect("reassemble");
                assert!(out == tar, "{name}: reassembly differs");
            }
            // And Go re-creates the tar from our tar-split.
            assert_eq!(
                go_diff_with(&case_dir, &go.id, &our_ts),
                tar,
                "{name}: Go's diff"
            );
        }
    }
}
