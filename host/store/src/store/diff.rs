//! Diffs: applying an archive to a layer (digests, tar-split, driver apply), producing a
//! layer's archive (byte-exact from tar-split when unmodified), changes and diff sizes.

use std::io::{Read, Write};
use std::path::Path;

use std::sync::Arc;

use rustix::fs::OFlags;

use super::big_data::item_path;
use super::files::sync_filesystem;
use super::images::find_image;
use super::layers::{find_layer, layer_mappings, optional_layer_id};
use super::staged::tar_split_name;
use super::{Ctx, Kind, State, Store, StoreError};
use crate::compress::Compression;
use crate::layers::LayerRecord;
use crate::records::big_data_file_name;
use crate::store_dir::DirFile;
use storage_driver::idmap::IdMappings;
use storage_driver::parsed_tar::SharedParsedTar;
use storage_driver::{ApplyDiffOpts, Change, DriverError, MountOpts};

/// The compression `diff` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffCompression {
    /// The compression recorded for the layer when it was imported.
    AsRecorded,
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2 (cannot be written).
    Bzip2,
    /// xz (cannot be written).
    Xz,
}

impl Ctx<'_> {
    /// Applies an archive to an existing layer: digests, tar-split, driver apply, then a
    /// flush of the driver's filesystem before the record says the layer is complete. The
    /// tar-split streams to a temp file beside the layer's, put in place when all is done.
    pub(super) fn apply_diff_to(
        &mut self,
        record: &mut LayerRecord,
        diff: &mut (dyn Read + Send),
    ) -> Result<u64, StoreError> {
        let dir = self.store.writable_layer_data_dir(record.in_image_store);
        let file = DirFile::new(Arc::clone(dir), tar_split_name(&record.id));
        let tmp = file.sibling(format!(
            ".{}.tmp{}",
            tar_split_name(&record.id),
            std::process::id()
        ));
        let applied = self
            .store
            .apply_archive(record, diff, &tmp, false)
            .and_then(|n| {
                publish(&tmp, &file)?;
                crate::crash_point::crash_point("apply-diff:tar-split-published");
                Ok(n)
            });
        if applied.is_err() {
            super::files::log_best_effort(
                format_args!("removing the temp tar-split of layer {}", record.id),
                tmp.dir().remove_file(tmp.name()),
            );
        }
        applied
    }
}

/// Renames a finished file into place and flushes the directory that holds it.
pub(super) fn publish(from: &DirFile, to: &DirFile) -> Result<(), StoreError> {
    from.dir()
        .rename(from.name(), to.dir(), to.name())
        .map_err(|e| StoreError::io("renaming", from.path(), e))?;
    crate::crash_point::crash_point("publish:renamed");
    to.dir()
        .sync()
        .map_err(|e| StoreError::io("flushing", to.dir().path(), e))
}

impl Store {
    /// Applies an archive to the driver's layer `record.id` (which has the record's parent
    /// and mappings), streaming its tar-split to `tarsplit_path` (flushed), and flushes the
    /// driver's filesystem; fills the record's digests, sizes and owner sets. Takes no lock:
    /// the caller holds the store's, or owns a staged layer no other command touches.
    /// `size_unused`: the caller drops the returned size (see [`ApplyDiffOpts::size_unused`]).
    pub(super) fn apply_archive(
        &self,
        record: &mut LayerRecord,
        diff: &mut (dyn Read + Send),
        tarsplit: &DirFile,
        size_unused: bool,
    ) -> Result<u64, StoreError> {
        let parent = (!record.parent.is_empty()).then(|| record.parent.clone());
        let opts = ApplyDiffOpts {
            id_mappings: layer_mappings(record),
            mount_label: record.mount_label.clone(),
            ignore_chown_errors: false,
            force_mask: None,
            parsed: None,
            size_unused,
        };
        let driver = self.driver.as_ref();
        let id = record.id.clone();
        let mut applied = 0u64;
        let mut apply = |mut tar: SharedParsedTar| -> Result<u64, DriverError> {
            // The driver reads the entries tar-split parsed, or the same bytes.
            let opts = ApplyDiffOpts {
                parsed: Some(tar.clone()),
                ..opts.clone()
            };
            let n = driver.apply_diff(&id, parent.as_deref(), &mut tar, &opts)?;
            crate::crash_point::crash_point("apply-archive:applied");
            applied = n;
            Ok(n)
        };
        let file = tarsplit
            .dir()
            .open_file(
                tarsplit.name(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW,
                0o600,
            )
            .map_err(|e| StoreError::io("creating", tarsplit.path(), e))?;
        let mut out = std::io::BufWriter::new(file);
        // The paths tar-split has seen spill next to the tar-split being written.
        let spill_dir = Some(Arc::clone(tarsplit.shared_dir()));
        let summary = crate::ingest::ingest_layer(diff, &mut out, spill_dir, &mut apply)?;
        crate::crash_point::crash_point("apply-archive:ingested");
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", tarsplit.path(), e.into_error()))?;
        file.sync_all()
            .map_err(|e| StoreError::io("flushing", tarsplit.path(), e))?;
        sync_filesystem(
            self.syscalls.as_ref(),
            self.driver_home_of(record.in_image_store),
        )?;
        crate::crash_point::crash_point("apply-archive:flushed");
        record.compressed_digest = summary.compressed_digest;
        record.compressed_size = summary.compressed_size as i64;
        record.uncompressed_digest = summary.uncompressed_digest;
        record.uncompressed_size = summary.uncompressed_size as i64;
        record.compression = summary.compression as u8;
        record.uids = summary.uids;
        record.gids = summary.gids;
        Ok(applied)
    }
}

impl Store {
    /// The layer and the layer to compare with (`from`, default: its parent), with the
    /// mappings each is stored with (upstream's `layerMappings` of both).
    fn diff_pair(st: &State, layer: &str, from: Option<&str>) -> Result<DiffPair, StoreError> {
        let l = find_layer(st, layer).ok_or(StoreError::LayerUnknown)?;
        let from = optional_layer_id(st, from)?
            .or_else(|| (!l.parent.is_empty()).then(|| l.parent.clone()));
        let from_mappings = from
            .as_deref()
            .and_then(|id| find_layer(st, id))
            .map(|f| layer_mappings(&f))
            .unwrap_or_default();
        Ok(DiffPair {
            mappings: layer_mappings(&l),
            layer: l,
            from,
            from_mappings,
        })
    }

    /// Changes of a layer against `from` (default: its parent), in the driver's order, as
    /// upstream prints them (not sorted).
    pub fn changes(&self, layer: &str, from: Option<&str>) -> Result<Vec<Change>, StoreError> {
        self.write(|ctx| {
            let pair = Self::diff_pair(ctx.st, layer, from)?;
            ctx.driver()
                .changes(
                    &pair.layer.id,
                    &pair.mappings,
                    pair.from.as_deref(),
                    &pair.from_mappings,
                )
                .map_err(|e| StoreError::driver(format!("listing changes of {}", pair.layer.id), e))
        })
    }

    /// Size of the changes of a layer against `from`.
    pub fn diff_size(&self, layer: &str, from: Option<&str>) -> Result<u64, StoreError> {
        self.write(|ctx| {
            let pair = Self::diff_pair(ctx.st, layer, from)?;
            ctx.driver()
                .diff_size(
                    &pair.layer.id,
                    &pair.mappings,
                    pair.from.as_deref(),
                    &pair.from_mappings,
                )
                .map_err(|e| {
                    StoreError::driver(format!("measuring the diff of {}", pair.layer.id), e)
                })
        })
    }

    /// The size of an image, as upstream's `ImageSize`: each layer reachable from its top
    /// layer and mapped top layers counted once (the recorded uncompressed size when the
    /// record has a digest for it, else the driver's diff size against the parent), plus
    /// its big data items.
    pub fn image_size(&self, name: &str) -> Result<i64, StoreError> {
        self.write(|ctx| {
            let image = find_image(ctx.st, name).ok_or(StoreError::ImageUnknown)?;
            let mut queue: Vec<String> = std::iter::once(&image.top_layer)
                .chain(&image.mapped_top_layers)
                .filter(|id| !id.is_empty())
                .cloned()
                .collect();
            let mut visited = std::collections::BTreeSet::new();
            let mut size: i64 = 0;
            while let Some(id) = queue.pop() {
                if !visited.insert(id.clone()) {
                    continue;
                }
                let layer = find_layer(ctx.st, &id).ok_or(StoreError::LayerUnknown)?;
                let n = if layer.uncompressed_digest.is_empty() || layer.uncompressed_size == -1 {
                    let parent = (!layer.parent.is_empty()).then_some(layer.parent.as_str());
                    let parent_mappings = parent
                        .and_then(|p| find_layer(ctx.st, p))
                        .map(|p| layer_mappings(&p))
                        .unwrap_or_default();
                    let mappings = layer_mappings(&layer);
                    let measured =
                        ctx.driver()
                            .diff_size(&layer.id, &mappings, parent, &parent_mappings);
                    let n = measured.map_err(|e| {
                        StoreError::driver(
                            format!("size/digest of layer with ID {id:?} could not be calculated"),
                            e,
                        )
                    })?;
                    i64::try_from(n).unwrap_or(i64::MAX)
                } else {
                    layer.uncompressed_size
                };
                size = size.saturating_add(n);
                if !layer.parent.is_empty() {
                    queue.push(layer.parent.clone());
                }
            }
            let (parent, _) = self.big_data_dir(ctx.st, Kind::Image, &image.id)?;
            for key in &image.big_data_names {
                let n = match image.big_data_sizes.get(key) {
                    Some(n) => *n,
                    None => {
                        let len = parent
                            .open_dir(&image.id)
                            .and_then(|dir| dir.size_of(&big_data_file_name(key)))
                            .map_err(|e| {
                                let path = item_path(parent, &image.id, key);
                                StoreError::io("reading the size of", path, e)
                            })?;
                        i64::try_from(len).unwrap_or(i64::MAX)
                    }
                };
                size = size.saturating_add(n);
            }
            Ok(size)
        })
    }

    /// Writes the layer's archive against `from`, compressed as asked.
    pub fn diff(
        &self,
        layer: &str,
        from: Option<&str>,
        compression: DiffCompression,
        out: &mut dyn Write,
    ) -> Result<(), StoreError> {
        self.write(|ctx| {
            let DiffPair {
                layer: l,
                mappings,
                from,
                from_mappings,
            } = Self::diff_pair(ctx.st, layer, from)?;
            let kind = match compression {
                DiffCompression::AsRecorded => {
                    Compression::from_number(u64::from(l.compression)).unwrap_or_default()
                }
                DiffCompression::None => Compression::None,
                DiffCompression::Gzip => Compression::Gzip,
                DiffCompression::Zstd => Compression::Zstd,
                DiffCompression::Bzip2 | DiffCompression::Xz => {
                    return Err(StoreError::UnsupportedCompression)
                }
            };
            let mut writer = crate::compress::compressor(kind, out).map_err(|e| match e {
                crate::compress::CompressError::UnsupportedFormat(_) => {
                    StoreError::UnsupportedCompression
                }
                other => StoreError::Compress(other),
            })?;
            let real_parent = (!l.parent.is_empty()).then(|| l.parent.clone());
            let tar_split = match from == real_parent {
                true => open_tar_split(&ctx.tar_split_file(&l.id))?,
                false => None,
            };
            if let Some(tar_split) = tar_split {
                reassemble_layer(ctx, &l, tar_split, &mut writer)?;
            } else {
                ctx.driver()
                    .diff(
                        &l.id,
                        &mappings,
                        from.as_deref(),
                        &from_mappings,
                        &mut writer,
                    )
                    .map_err(|e| {
                        StoreError::driver(format!("producing the diff of {}", l.id), e)
                    })?;
            }
            writer.finish().map_err(StoreError::FinishDiff)?;
            Ok(())
        })
    }

    /// Applies an archive to an existing layer.
    pub fn apply_diff(&self, layer: &str, diff: &mut (dyn Read + Send)) -> Result<u64, StoreError> {
        self.write(|ctx| {
            let i = ctx.rw_layer_index(layer)?;
            let mut record = ctx.st.layers.records[i].clone();
            let applied = ctx.apply_diff_to(&mut record, diff)?;
            if let Some(i) = ctx.st.layers.find(&record.id) {
                ctx.st.layers.records[i] = record;
            }
            ctx.save_layers()?;
            Ok(applied)
        })
    }
}

/// A layer, the layer it is compared with, and the ID mappings each is stored with.
struct DiffPair {
    layer: LayerRecord,
    mappings: IdMappings,
    from: Option<String>,
    from_mappings: IdMappings,
}

/// Opens a layer's tar-split to read; `None` when the layer has none (it was not imported,
/// or its store kept none).
pub(super) fn open_tar_split(tar_split: &DirFile) -> Result<Option<std::fs::File>, StoreError> {
    tar_split
        .dir()
        .open_existing(tar_split.name())
        .map_err(|e| StoreError::io("opening", tar_split.path(), e))
}

/// Re-creates the imported archive of `layer` from its tar-split (`file`, opened by
/// [`open_tar_split`]) and the layer's files.
pub(super) fn reassemble_layer(
    ctx: &mut Ctx<'_>,
    layer: &LayerRecord,
    file: std::fs::File,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let tar_split_reader = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let store = ctx.store;
    match store.driver.diff_getter(&layer.id) {
        Ok(mut getter) => {
            crate::tarsplit::reassemble(tar_split_reader, getter.as_mut(), out)?;
            Ok(())
        }
        Err(_) => {
            let opts = MountOpts {
                options: vec!["ro".to_string()],
                ..Default::default()
            };
            // A read-only store's layer has no mount count of ours to keep: the driver
            // is asked for it directly, and released after.
            let counted = ctx.st.layers.has_id(&layer.id);
            let root = if counted {
                ctx.mount_layer(&layer.id, &opts)?
            } else {
                let opts = MountOpts {
                    id_mappings: super::layers::layer_mappings(layer),
                    ..opts
                };
                store
                    .driver
                    .get(&layer.id, &opts)
                    .map_err(|e| StoreError::driver(format!("mounting layer {}", layer.id), e))?
            };
            let result = MountedFiles::open(&root).and_then(|mut getter| {
                crate::tarsplit::reassemble(tar_split_reader, &mut getter, out)
                    .map_err(StoreError::from)
            });
            let unmounted = if counted {
                ctx.unmount_layer(&layer.id, false).map(|_| ())
            } else {
                store
                    .driver
                    .put(&layer.id)
                    .map_err(|e| StoreError::driver(format!("unmounting layer {}", layer.id), e))
            };
            result?;
            unmounted
        }
    }
}

/// Files of a mounted layer, for tar-split reassembly: every open is confined to the mount
/// (the toolkit's `ConfinedDir`: parents resolved in the root, the last component never
/// followed), and only a regular file is opened, so a layer changed since its import (a
/// symlink, a fifo or a device where the tar-split has a file) can neither feed a file from
/// outside it into the archive nor hang the command.
struct MountedFiles {
    root: storage_driver::confined::ConfinedDir<std::io::Empty, std::io::Sink>,
}

impl MountedFiles {
    /// The files of the layer mounted at `root`.
    fn open(root: &Path) -> Result<MountedFiles, StoreError> {
        let root = storage_driver::confined::ConfinedDir::open(root)
            .map_err(|e| StoreError::io("opening", root, e))?;
        Ok(MountedFiles { root })
    }
}

impl storage_driver::FileGetter for MountedFiles {
    fn get(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, DriverError> {
        use std::os::unix::ffi::OsStrExt;
        let shown = String::from_utf8_lossy(path);
        let rel = Path::new(std::ffi::OsStr::from_bytes(path));
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        if rel.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            return Err(DriverError::io(
                format!("opening {shown:?}"),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path leaves the layer"),
            ));
        }
        let file = self
            .root
            .open_regular(rel.as_os_str().as_bytes())
            .map_err(|e| DriverError::io(format!("opening {shown:?}"), std::io::Error::other(e)))?;
        Ok(Box::new(file))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::io::Write;

    use crate::records::sha256_digest;
    use crate::store::test_support::{named, tar_with, TestRoot};
    use crate::store::DiffCompression;

    #[test]
    fn import_records_digests_and_diff_reproduces_the_tar() {
        let root = TestRoot::new();
        let store = root.open();
        let tar = tar_with(&[("a.txt", b"hello"), ("b.txt", b"world!")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gzip");
        let blob = gz.finish().expect("gzip");
        let layer = store
            .import_layer(None, &named(&["imp"]), &mut blob.as_slice())
            .expect("import");
        assert_eq!(layer.compression, 2);
        assert_eq!(layer.compressed_digest, sha256_digest(&blob));
        assert_eq!(layer.uncompressed_digest, sha256_digest(&tar));
        assert_eq!(layer.uncompressed_size, tar.len() as i64);
        assert!(layer.flags.is_empty());
        assert!(root
            .graph(&format!("testfs-layers/{}.tar-split.gz", layer.id))
            .exists());
        let mut out = Vec::new();
        store
            .diff("imp", None, DiffCompression::None, &mut out)
            .expect("diff");
        assert_eq!(out, tar, "tar-split reassembly is byte-exact");
        let err = store
            .diff("imp", None, DiffCompression::Xz, &mut Vec::new())
            .expect_err("xz");
        assert_eq!(err.to_string(), "unsupported compression format");
        let changes = store.changes("imp", None).expect("changes");
        assert_eq!(changes.len(), 2);
        assert_eq!(store.diff_size("imp", None).expect("size"), 11);
        let bad = store.import_layer(None, &named(&["bad"]), &mut &b"not a tar at all"[..]);
        assert!(bad.is_err());
        assert_eq!(
            store.layers().expect("layers").len(),
            1,
            "failed import rolled back"
        );
    }
    /// A mounted layer's files are opened inside the mount and only when regular: a symlink
    /// (to a file outside), a fifo and a path with `..` are errors, and nothing blocks.
    #[test]
    fn mounted_files_are_confined_to_the_layer_and_regular() {
        use storage_driver::FileGetter;
        let tmp = tempfile::tempdir().expect("tempdir");
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"host file").expect("write");
        let layer = tmp.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).expect("mkdir");
        std::fs::write(layer.join("etc/file"), b"layer file").expect("write");
        std::os::unix::fs::symlink(&secret, layer.join("etc/link")).expect("symlink");
        std::os::unix::fs::symlink("/", layer.join("up")).expect("symlink");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            layer.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        let mut files = super::MountedFiles::open(&layer).expect("open");
        let mut read = |path: &[u8]| -> Result<Vec<u8>, String> {
            let mut data = Vec::new();
            let mut file = files.get(path).map_err(|e| e.to_string())?;
            file.read_to_end(&mut data).map_err(|e| e.to_string())?;
            Ok(data)
        };
        assert_eq!(read(b"etc/file").as_deref(), Ok(&b"layer file"[..]));
        assert_eq!(read(b"/etc/file").as_deref(), Ok(&b"layer file"[..]));
        assert!(
            read(b"etc/link").is_err(),
            "followed a symlink out of the layer"
        );
        assert!(read(b"fifo").is_err(), "opened a fifo");
        assert!(read(b"../secret").is_err());
        // A directory symlink resolves inside the layer, where there is no `secret`.
        assert!(read(b"up/secret").is_err());
    }
}
