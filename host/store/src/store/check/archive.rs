//! A layer's archive re-created for `check`: from tar-split (or the driver's diff), digested,
//! measured, and its headers collected for the content comparison.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::tree::Header;
use crate::layers::LayerRecord;
use crate::store::diff::reassemble_layer;
use crate::store::layers::{find_layer, layer_mappings};
use crate::store::Ctx;

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

/// Reads every header of an archive, then whatever follows its end; an error is the
/// archive's (upstream reads the diff with Go's tar reader in the same way).
fn read_headers(reader: impl Read) -> Result<Vec<Header>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut headers = Vec::new();
    let mut failure = None;
    match archive.entries() {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) => headers.push(Header::from_entry(&e)),
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => failure = Some(e.to_string()),
    }
    // The writer must never block on a full pipe: drain to the end.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    match failure {
        Some(e) => Err(e),
        None => Ok(headers),
    }
}

impl Ctx<'_> {
    /// Where a layer's tar-split is: its own store's `<drv>-layers`.
    fn check_tar_split_path(&self, id: &str, ro_index: Option<usize>) -> PathBuf {
        match ro_index {
            Some(i) => self
                .store
                .ro_root(i)
                .join(format!("{}-layers", self.store.driver_name))
                .join(format!("{id}.tar-split.gz")),
            None => self.tar_split_path(id),
        }
    }

    /// Re-creates a layer's archive (from tar-split, or the driver's diff when there is
    /// none, as upstream's `Diff`), digests it and collects its headers.
    pub(super) fn layer_archive(
        &mut self,
        layer: &LayerRecord,
        ro_index: Option<usize>,
    ) -> Result<(Vec<Header>, String, u64), String> {
        let tar_split = self.check_tar_split_path(&layer.id, ro_index);
        let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
        std::thread::scope(|scope| {
            let collector = scope.spawn(move || read_headers(reader));
            let mut tee = DigestTee {
                digest: crate::digest::Digester::new(),
                out: writer,
            };
            let produced = if tar_split.exists() {
                reassemble_layer(self, layer, &tar_split, &mut tee).map_err(|e| e.to_string())
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
                    .map_err(|e| e.to_string())
            };
            let DigestTee { digest, out } = tee;
            drop(out);
            let headers = collector
                .join()
                .unwrap_or_else(|_| Err("reading the archive failed".to_string()));
            produced?;
            let headers = headers?;
            Ok((headers, digest.digest(), digest.count()))
        })
    }
}
