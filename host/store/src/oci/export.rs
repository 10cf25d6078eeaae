//! Exporting an image of the store as an OCI layout. Layer blobs are re-created through
//! tar-split (the store's `diff`) and compressed as the layer was when imported (gzip,
//! zstd or none; bzip2 and xz, which cannot be written, become gzip). When every blob
//! comes out as the stored manifest describes it, the stored manifest and config are
//! written as they are; otherwise they are rewritten to describe the new blobs. The image
//! is added to an existing layout's `index.json` (replacing an entry of the same ref).
//!
//! A failure removes the blobs this export added (the whole directory when it made it);
//! `index.json` is written last, atomically.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::blob::BlobReader;
use super::import::read_index;
use super::layout::{
    self, layer_media_type, Descriptor, Index, Manifest, Platform, MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST, REF_NAME_ANNOTATION,
};
use super::{OciError, Progress, Result};
use crate::compress::{self, Compression};
use crate::digest::{sha256_digest, Digester};
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use crate::store::{DiffCompression, Kind, Store};

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The reference to give the image in the layout (`DIR:REF`).
    pub reference: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The config's digest.
    pub config_digest: String,
    /// The layer blobs' digests, base first.
    pub layers: Vec<String>,
    /// Whether manifest or config had to be rewritten (blobs differ from the stored ones).
    pub rewritten: bool,
}

/// The stored manifest (parsed and as bytes) and the stored config bytes.
type Stored = (Manifest, Vec<u8>, Vec<u8>);

/// One layer blob as written.
struct WrittenLayer {
    descriptor: Descriptor,
    diff_id: String,
}

/// Exports image `name` of `store` into the layout `dir`.
pub fn export_image(
    store: &Store,
    name: &str,
    dir: &Path,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<ExportReport> {
    let image = store.image(name)?;
    let chain = layer_chain(store, &image)?;
    let mut out = LayoutWriter::open(dir)?;
    let result = write_image(store, &image, &chain, &mut out, opts, progress);
    progress.finish();
    match result {
        Ok(report) => Ok(report),
        Err(e) => {
            out.roll_back();
            Err(e)
        }
    }
}

fn write_image(
    store: &Store,
    image: &ImageRecord,
    chain: &[LayerRecord],
    out: &mut LayoutWriter,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<ExportReport> {
    let stored = stored_documents(store, image)?;
    let mut layers = Vec::new();
    for (i, layer) in chain.iter().enumerate() {
        let what = format!("layer {}/{} {}", i + 1, chain.len(), short(&layer.id));
        progress.start(&what, u64::try_from(layer.uncompressed_size).ok());
        let media_type = stored
            .as_ref()
            .and_then(|(m, _, _)| m.layers.get(i))
            .map(|d| d.media_type.clone());
        layers.push(write_layer(store, layer, media_type, out, progress)?);
    }
    let (manifest_bytes, manifest_type, config_digest, rewritten) = match stored {
        Some((manifest, manifest_bytes, config_bytes)) if same_blobs(&manifest, &layers) => {
            out.put_blob(&config_bytes)?;
            let kind = manifest_media_type(&manifest);
            (manifest_bytes, kind, manifest.config.digest, false)
        }
        stored => {
            let (manifest, config) = rewrite(image, stored, &layers)?;
            let config_digest = out.put_blob(&config)?;
            let bytes = serde_json::to_vec(&manifest).map_err(|source| OciError::Json {
                what: "the new manifest".to_string(),
                source,
            })?;
            debug_assert_eq!(config_digest, manifest.config.digest);
            (bytes, MEDIA_OCI_MANIFEST.to_string(), config_digest, true)
        }
    };
    let manifest_digest = out.put_blob(&manifest_bytes)?;
    let mut entry = Descriptor {
        media_type: manifest_type,
        digest: manifest_digest.clone(),
        size: manifest_bytes.len() as u64,
        ..Default::default()
    };
    if let Some(r) = &opts.reference {
        entry
            .annotations
            .insert(REF_NAME_ANNOTATION.to_string(), r.clone());
    }
    out.add_to_index(entry)?;
    Ok(ExportReport {
        manifest_digest,
        config_digest,
        layers: layers.into_iter().map(|l| l.descriptor.digest).collect(),
        rewritten,
    })
}

/// The image's layers, base first.
fn layer_chain(store: &Store, image: &ImageRecord) -> Result<Vec<LayerRecord>> {
    let mut chain = Vec::new();
    let mut next = image.top_layer.clone();
    while !next.is_empty() {
        if chain.len() > 4096 {
            return Err(OciError::Inconsistent(format!(
                "the layer chain of image {} loops",
                image.id
            )));
        }
        let layer = store.layer(&next)?;
        next = layer.parent.clone();
        chain.push(layer);
    }
    chain.reverse();
    Ok(chain)
}

/// The stored manifest (parsed and as bytes) and config bytes, when the image has an
/// OCI or Docker schema 2 manifest whose config is stored under its digest.
fn stored_documents(store: &Store, image: &ImageRecord) -> Result<Option<Stored>> {
    if !image.big_data_names.iter().any(|k| k == "manifest") {
        return Ok(None);
    }
    let bytes = store.big_data(Kind::Image, &image.id, "manifest")?;
    let Ok(manifest) = layout::parse_manifest("the stored manifest", &bytes) else {
        return Ok(None);
    };
    let key = &manifest.config.digest;
    if !image.big_data_names.contains(key) {
        return Ok(None);
    }
    let config = store.big_data(Kind::Image, &image.id, key)?;
    if sha256_digest(&config) != *key {
        return Ok(None);
    }
    Ok(Some((manifest, bytes, config)))
}

fn manifest_media_type(manifest: &Manifest) -> String {
    if manifest.media_type == MEDIA_DOCKER_MANIFEST {
        MEDIA_DOCKER_MANIFEST.to_string()
    } else {
        MEDIA_OCI_MANIFEST.to_string()
    }
}

/// Whether the blobs written are those the stored manifest names.
fn same_blobs(manifest: &Manifest, layers: &[WrittenLayer]) -> bool {
    manifest.layers.len() == layers.len()
        && manifest
            .layers
            .iter()
            .zip(layers)
            .all(|(m, l)| m.digest == l.descriptor.digest && m.size == l.descriptor.size)
}

/// A manifest and config describing the blobs written: the stored manifest with its layer
/// descriptors replaced, or a new one for an image that has none. The stored config is
/// kept byte for byte when its diff IDs are those of the layers written (tar-split
/// re-creates every layer exactly, so they are): the config digest is the image ID, in
/// this store and in every store the layout is copied into. Only a config whose diff IDs
/// disagree is rewritten.
fn rewrite(
    image: &ImageRecord,
    stored: Option<Stored>,
    layers: &[WrittenLayer],
) -> Result<(Manifest, Vec<u8>)> {
    let diff_ids: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::Value::String(l.diff_id.clone()))
        .collect();
    let (mut manifest, config_bytes) = match stored {
        Some((manifest, _, config_bytes)) => {
            let mut config: serde_json::Value =
                serde_json::from_slice(&config_bytes).map_err(|source| OciError::Json {
                    what: "the stored config".to_string(),
                    source,
                })?;
            if config["rootfs"]["diff_ids"] == serde_json::Value::Array(diff_ids.clone()) {
                (manifest, config_bytes)
            } else {
                config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
                (manifest, config_json(&config)?)
            }
        }
        None => {
            let host = Platform::host();
            let mut config = serde_json::json!({
                "architecture": host.architecture,
                "os": host.os,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            if !image.created.is_empty() {
                config["created"] = serde_json::Value::String(image.created.clone());
            }
            (Manifest::default(), config_json(&config)?)
        }
    };
    let old_layers = std::mem::take(&mut manifest.layers);
    manifest.schema_version = 2;
    manifest.media_type = MEDIA_OCI_MANIFEST.to_string();
    manifest.config = Descriptor {
        media_type: MEDIA_OCI_CONFIG.to_string(),
        digest: sha256_digest(&config_bytes),
        size: config_bytes.len() as u64,
        annotations: std::mem::take(&mut manifest.config.annotations),
        ..Default::default()
    };
    manifest.layers = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut d = l.descriptor.clone();
            if let Some(old) = old_layers.get(i) {
                d.annotations = old.annotations.clone();
            }
            d
        })
        .collect();
    Ok((manifest, config_bytes))
}

/// A config written anew.
fn config_json(config: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec(config).map_err(|source| OciError::Json {
        what: "the new config".to_string(),
        source,
    })
}

/// Writes one layer's blob: the layer's archive re-created through tar-split, compressed
/// as recorded (or as the stored manifest's media type says, for an uncompressed record).
fn write_layer(
    store: &Store,
    layer: &LayerRecord,
    stored_media_type: Option<String>,
    out: &mut LayoutWriter,
    progress: &mut dyn Progress,
) -> Result<WrittenLayer> {
    let recorded = Compression::from_number(u64::from(layer.compression)).unwrap_or_default();
    let compression = match recorded {
        Compression::None => stored_media_type
            .as_deref()
            .and_then(|m| layout::layer_compression(m).ok())
            .filter(|_| layer.compressed_digest.is_empty())
            .unwrap_or(Compression::None),
        Compression::Gzip | Compression::Zstd => recorded,
        Compression::Bzip2 | Compression::Xz => Compression::Gzip,
    };
    let (tmp, file) = out.temp_file()?;
    let mut compressed = HashingWriter::new(io::BufWriter::new(file));
    let written = (|| -> Result<(String, String, u64)> {
        let encoder = compress::compressor(compression, &mut compressed)?;
        // Tar-split reassembly writes headers and payloads in small pieces; the encoder
        // gets them in large chunks, which is faster and compresses a small layer in one
        // call, as a tool compressing a whole tar in memory does.
        let mut plain = HashingWriter::new(ProgressWriter {
            inner: io::BufWriter::with_capacity(1 << 20, encoder),
            progress: &mut *progress,
        });
        store.diff(&layer.id, None, DiffCompression::None, &mut plain)?;
        let diff_id = plain.digester.digest();
        let encoder = plain
            .inner
            .inner
            .into_inner()
            .map_err(|e| OciError::io("compressing", tmp.clone(), e.into_error()))?;
        let compressed = encoder
            .finish()
            .map_err(|e| OciError::io("compressing", tmp.clone(), e))?;
        compressed
            .flush()
            .map_err(|e| OciError::io("writing", tmp.clone(), e))?;
        Ok((
            diff_id,
            compressed.digester.digest(),
            compressed.digester.count(),
        ))
    })();
    drop(compressed);
    let (diff_id, digest, size) = match written {
        Ok(w) => w,
        Err(e) => {
            remove_leftover(&tmp);
            return Err(e);
        }
    };
    out.commit_blob(&tmp, &digest)?;
    Ok(WrittenLayer {
        descriptor: Descriptor {
            media_type: layer_media_type(compression).to_string(),
            digest,
            size,
            ..Default::default()
        },
        diff_id,
    })
}

/// A writer that digests and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            digester: Digester::new(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that tells a [`Progress`] how many bytes went through.
struct ProgressWriter<'a, W> {
    inner: W,
    progress: &'a mut dyn Progress,
}

impl<W: Write> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
    /// Not passed on: the store flushes the tar stream when it ends, and a flush reaching
    /// the deflate encoder would add a sync point, making the blob differ from one
    /// compressed in one go. The encoder is finished explicitly instead.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The layout being written: what it had, what this export added.
struct LayoutWriter {
    dir: PathBuf,
    blobs: BlobReader,
    made_dir: bool,
    added: Vec<PathBuf>,
    index: Index,
}

impl LayoutWriter {
    /// Opens `dir` as a layout: an existing one (its index is kept), an empty or missing
    /// directory (a new one); anything else is refused.
    fn open(dir: &Path) -> Result<Self> {
        let made_dir = !dir.exists();
        let index = if dir.join("oci-layout").exists() {
            read_index(dir)?
        } else {
            let non_empty = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if non_empty {
                return Err(OciError::NotALayout(format!(
                    "{} is neither an OCI image layout nor empty",
                    dir.display()
                )));
            }
            Index {
                schema_version: 2,
                ..Default::default()
            }
        };
        let blob_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blob_dir)
            .map_err(|e| OciError::io("creating", blob_dir.clone(), e))?;
        Ok(LayoutWriter {
            dir: dir.to_path_buf(),
            blobs: BlobReader::new(dir),
            made_dir,
            added: Vec::new(),
            index,
        })
    }

    /// A new temp file among the blobs.
    fn temp_file(&self) -> Result<(PathBuf, std::fs::File)> {
        let path = self.dir.join("blobs").join("sha256").join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| OciError::io("creating", path.clone(), e))?;
        Ok((path, file))
    }

    /// Moves a written temp file to its blob path (or drops it when the blob is there).
    fn commit_blob(&mut self, tmp: &Path, digest: &str) -> Result<()> {
        let path = self.blobs.path(digest)?;
        if path.exists() {
            remove_leftover(tmp);
            return Ok(());
        }
        let file = std::fs::File::open(tmp).map_err(|e| OciError::io("opening", tmp, e))?;
        file.sync_all()
            .map_err(|e| OciError::io("syncing", tmp, e))?;
        std::fs::rename(tmp, &path).map_err(|e| OciError::io("renaming", tmp, e))?;
        self.added.push(path);
        Ok(())
    }

    /// Writes a small blob; returns its digest.
    fn put_blob(&mut self, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
        if self.blobs.path(&digest)?.exists() {
            return Ok(digest);
        }
        let (tmp, mut file) = self.temp_file()?;
        if let Err(e) = file.write_all(data) {
            remove_leftover(&tmp);
            return Err(OciError::io("writing", tmp, e));
        }
        drop(file);
        self.commit_blob(&tmp, &digest)?;
        Ok(digest)
    }

    /// Adds an entry to `index.json` (replacing one with the same ref, or the same digest
    /// and no ref) and writes it with `oci-layout`.
    fn add_to_index(&mut self, entry: Descriptor) -> Result<()> {
        let reference = entry.ref_name().map(str::to_string);
        self.index.manifests.retain(|d| match &reference {
            Some(r) => d.ref_name() != Some(r.as_str()),
            None => !(d.ref_name().is_none() && d.digest == entry.digest),
        });
        self.index.manifests.push(entry);
        let layout_path = self.dir.join("oci-layout");
        if !layout_path.exists() {
            write_public(&layout_path, layout::LAYOUT_FILE_CONTENT.as_bytes())?;
            self.added.push(layout_path);
        }
        let bytes = serde_json::to_vec(&self.index).map_err(|source| OciError::Json {
            what: "index.json".to_string(),
            source,
        })?;
        write_public(&self.dir.join("index.json"), &bytes)
    }

    /// Removes what this export added. Best effort: it runs on the way out of the error
    /// that is reported; what stays is logged.
    fn roll_back(&self) {
        if self.made_dir {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                log::debug!(
                    "rolling back the export: removing {}: {e}",
                    self.dir.display()
                );
            }
            return;
        }
        for path in &self.added {
            remove_leftover(path);
        }
    }
}

/// Removes a temp file or an added file on the way out of an error, or a temp file whose
/// blob was already there. Best effort: an export fails or succeeds on its own account, and
/// a file left behind is named in the log.
fn remove_leftover(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        log::debug!("removing {}: {e}", path.display());
    }
}

/// Writes a file readable by all (as layouts are) through a temp file and a rename.
fn write_public(path: &Path, data: &[u8]) -> Result<()> {
    crate::atomic::write_file(path, data, true).map_err(|e| OciError::io("writing", path, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| OciError::io("changing the mode of", path, e))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
