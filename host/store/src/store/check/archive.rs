//! A layer's archive re-created for `check`: from tar-split (or the driver's diff), digested,
//! measured, and its headers collected for the content comparison.

use std::io::{Read, Write};
use std::sync::Arc;

use storage_archive::{ArchiveError, TarStreamReader};
use storage_driver::DriverError;

use super::tree::Header;
use crate::layers::LayerRecord;
use crate::store::diff::{open_tar_split, reassemble_layer};
use crate::store::layers::{find_layer, layer_mappings};
use crate::store::staged::tar_split_name;
use crate::store::{Ctx, StoreError};
use crate::store_dir::DirFile;

/// Why a layer's archive could not be re-created or read for `check` (a problem of that
/// layer in the report, in these words).
#[derive(Debug, thiserror::Error)]
pub(super) enum LayerArchiveError {
    /// The pipe between the producer and the header reader could not be made.
    #[error("{}", storage_archive::error::os_error_text(.0))]
    Pipe(#[source] std::io::Error),
    /// Re-creating the archive from its tar-split failed.
    #[error("{0}")]
    Reassemble(#[source] StoreError),
    /// The driver's diff (a layer without tar-split) failed.
    #[error("{0}")]
    Diff(#[source] DriverError),
    /// The re-created archive does not read as tar.
    #[error("{0}")]
    Read(#[source] ArchiveError),
    /// The thread reading the headers panicked.
    #[error("reading the archive failed")]
    ReaderPanicked,
}

/// Digests and counts the bytes of a re-created archive while passing them to the reader
/// that collects its headers.
struct DigestTee<W: Write> {
    digest: crate::digest::Digester,
    out: W,
}

impl<W: Write> Write for DigestTee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(buf)?;
        self.digest.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads every header of an archive with the one tar parser, then whatever follows its end;
/// an error is the archive's (upstream reads the diff with Go's tar reader in the same way).
fn read_headers(reader: impl Read) -> Result<Vec<Header>, ArchiveError> {
    let mut archive = TarStreamReader::new(reader);
    let mut headers = Vec::new();
    let failure = loop {
        match archive.next_entry() {
            Ok(Some(entry)) => headers.push(Header::from_entry(&entry)),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // The writer must never block on a full pipe: drain to the end. A read error only ends
    // the drain (the writer then fails and says so); the archive's own error is kept.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    match failure {
        Some(e) => Err(e),
        None => Ok(headers),
    }
}

impl Ctx<'_> {
    /// Where a layer's tar-split is: its own store's `<drv>-layers`.
    fn check_tar_split_file(&self, id: &str, ro_index: Option<usize>) -> DirFile {
        match ro_index.and_then(|i| self.store.ro_layers_dir(i)) {
            Some(dir) => DirFile::new(Arc::clone(dir), tar_split_name(id)),
            None => self.tar_split_file(id),
        }
    }

    /// Re-creates a layer's archive (from tar-split, or the driver's diff when there is
    /// none, as upstream's `Diff`), digests it and collects its headers.
    pub(super) fn layer_archive(
        &mut self,
        layer: &LayerRecord,
        ro_index: Option<usize>,
    ) -> Result<(Vec<Header>, String, u64), LayerArchiveError> {
        let tar_split = open_tar_split(&self.check_tar_split_file(&layer.id, ro_index))
            .map_err(LayerArchiveError::Reassemble)?;
        let (reader, writer) = std::io::pipe().map_err(LayerArchiveError::Pipe)?;
        std::thread::scope(|scope| {
            let collector = scope.spawn(move || read_headers(reader));
            let mut tee = DigestTee {
                digest: crate::digest::Digester::new(),
                out: writer,
            };
            let produced = if let Some(tar_split) = tar_split {
                reassemble_layer(self, layer, tar_split, &mut tee)
                    .map_err(LayerArchiveError::Reassemble)
            } else {
                let parent = (!layer.parent.is_empty()).then_some(layer.parent.as_str());
                let parent_mappings = parent
                    .and_then(|p| find_layer(self.st, p))
                    .map(|p| layer_mappings(&p))
                    .unwrap_or_default();
                self.driver()
                    .diff(
                        &layer.id,
                        &layer_mappings(layer),
                        parent,
                        &parent_mappings,
                        &mut tee,
                    )
                    .map_err(LayerArchiveError::Diff)
            };
            let DigestTee { digest, out } = tee;
            drop(out);
            let headers = collector.join();
            produced?;
            let headers = headers
                .map_err(|_| LayerArchiveError::ReaderPanicked)?
                .map_err(LayerArchiveError::Read)?;
            Ok((headers, digest.digest(), digest.count()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarsplit::test_tar::{varied, TestTar};

    /// Headers as Go's reader gives them: PAX and GNU long names, PAX owners applied; what
    /// follows the end is read (the writer of the pipe never blocks) and is not an entry.
    #[test]
    fn headers_are_read_as_go_reads_them() {
        let mut t = varied();
        t.raw(&[0xAB; 3000]);
        let headers = read_headers(&t.bytes[..]).expect("headers");
        let long = format!("d/{}", "n".repeat(150));
        let gnu_long = format!("d/{}", "g".repeat(120));
        let named = |name: &str| {
            headers
                .iter()
                .find(|h| h.name == name)
                .unwrap_or_else(|| panic!("{name} in {headers:?}"))
        };
        assert_eq!(headers.len(), 12);
        assert_eq!((named(&long).size, named(&long).uid), (700, 5));
        assert_eq!(named(&gnu_long).size, 3);
        assert_eq!((named("d/bigid").uid, named("d/bigid").gid), (70000, 70001));
        assert_eq!(named("d/hard").typeflag, b'1');
        assert_eq!(named("d/hard").linkname, "d/a");
        assert_eq!(named("d/").typeflag, b'5');
        assert!(headers.iter().any(|h| h.name == "d/caf\u{fffd}"));
    }

    /// Sparse files have their real names, sizes and a regular file's type in both forms
    /// (the `tar` crate this replaced saw PAX 1.0 entries under their `GNUSparseFile.0/`
    /// names with the map's bytes in their sizes).
    #[test]
    fn sparse_files_are_regular_files_of_their_real_size() {
        let regions: Vec<(u64, &[u8])> = (0..30).map(|i| (i * 1000, &b"data"[..])).collect();
        let mut t = TestTar::default();
        t.sparse_pax1(b"d/pax1", 40_000, &regions)
            .sparse_old_gnu(b"d/oldgnu", 40_000, &regions)
            .end();
        let headers = read_headers(&t.bytes[..]).expect("headers");
        let seen: Vec<_> = headers
            .iter()
            .map(|h| (h.name.as_str(), h.typeflag, h.size))
            .collect();
        assert_eq!(seen, [("d/pax1", b'0', 40_000), ("d/oldgnu", b'0', 40_000)]);
    }

    #[test]
    fn a_damaged_archive_is_an_error() {
        let mut t = TestTar::default();
        t.file(b"f", &[1u8; 1000], (0, 0)).end();
        assert!(read_headers(&t.bytes[..700]).is_err());
        let mut bad = t.bytes.clone();
        bad[148] ^= 1;
        assert!(read_headers(&bad[..]).is_err());
    }
}
