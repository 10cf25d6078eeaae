//! Reassembly: the original tar, re-created from its tar-split and the layer's files.

use std::io::{self, Read, Write};

use storage_archive::tar_parser::{Need, SparseMap, TarParser};
use storage_driver::{DriverError, FileGetter};

use super::crc::crc64;
use super::{io_err, Result, TarSplitEntry, TarSplitError, TarSplitReader, BLOCK, MAX_RAW};

/// Writes the original uncompressed tar recorded by `tarsplit` (the `.tar-split.gz`
/// bytes, or them already gunzipped) to `out`, taking file contents from `files`, and
/// returns the number of bytes written. Each file's CRC is checked (`file integrity
/// checksum failed for "<name>"`), as upstream's `asm.WriteOutputTarStream` does; like it,
/// a file is copied whole, except a sparse file's: of that, only its data regions are
/// written, where the archive had them (see [`Disassembler`](super::Disassembler)).
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
