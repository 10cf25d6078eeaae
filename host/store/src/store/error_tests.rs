//! Errors keep their cause: what an import or a diff fails with is the typed error of the
//! step that failed, reachable through `source()`, and its message is the one it always was.

use std::error::Error as _;
use std::io::Read;

use crate::ingest::IngestError;
use crate::store::test_support::{named, tar_with, TestRoot, STUCK};
use crate::store::{DiffCompression, LayerOptions, MountOptions, StoreError};
use crate::tarsplit::TarSplitError;
use storage_driver::DriverError;

/// A blob that gives `good` and then fails the way a disk does.
struct FailingBlob {
    good: Vec<u8>,
    pos: usize,
}

impl Read for FailingBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.good.len() {
            let n = buf.len().min(self.good.len() - self.pos);
            buf[..n].copy_from_slice(&self.good[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        Err(std::io::Error::other("disk on fire"))
    }
}

#[test]
fn a_failed_import_keeps_the_read_error_as_its_source() {
    let root = TestRoot::new();
    let store = root.open();
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    let mut blob = FailingBlob {
        good: tar[..700].to_vec(),
        pos: 0,
    };
    let err = store
        .import_layer(None, &named(&["l1"]), &mut blob)
        .expect_err("the blob fails");
    assert_eq!(err.to_string(), "reading the layer: disk on fire");
    assert!(
        matches!(err, StoreError::Ingest(IngestError::Io { .. })),
        "{err:?}"
    );
    let ingest = err
        .source()
        .and_then(|s| s.downcast_ref::<IngestError>())
        .expect("the store error's source is the ingest error");
    let io = ingest
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the ingest error's source is the read error");
    assert_eq!(io.to_string(), "disk on fire");
    assert!(store.layer("l1").is_err(), "rolled back");
}

#[test]
fn a_malformed_layer_keeps_the_tar_split_error_as_its_source() {
    let root = TestRoot::new();
    let store = root.open();
    let mut tar = tar_with(&[("etc/hostname", b"box\n")]);
    tar.truncate(600);
    let err = store
        .import_layer(None, &named(&["l1"]), &mut &tar[..])
        .expect_err("truncated");
    let ingest = err
        .source()
        .and_then(|s| s.downcast_ref::<IngestError>())
        .expect("the ingest error");
    assert!(
        ingest.source().is_some(),
        "the ingest error names its cause: {ingest:?}"
    );
    assert_eq!(err.to_string(), ingest.to_string(), "no prefix added");
}

#[test]
fn a_diff_from_corrupt_tar_split_keeps_the_parser_error_as_its_source() {
    let root = TestRoot::new();
    let store = root.open();
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    let layer = store
        .import_layer(None, &named(&["l1"]), &mut &tar[..])
        .expect("import");
    let tar_split = root.graph(&format!("testfs-layers/{}.tar-split.gz", layer.id));
    assert!(tar_split.exists(), "{}", tar_split.display());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"{not json\n").expect("gzip");
    std::fs::write(&tar_split, gz.finish().expect("gzip")).expect("corrupt it");
    let err = store
        .diff(&layer.id, None, DiffCompression::None, &mut Vec::new())
        .expect_err("corrupt tar-split");
    assert!(
        err.to_string().starts_with("corrupt tar-split data: "),
        "{err}"
    );
    let tar_split_error = err
        .source()
        .and_then(|s| s.downcast_ref::<TarSplitError>())
        .expect("the store error's source is the tar-split error");
    assert!(
        matches!(tar_split_error, TarSplitError::Json(_)),
        "{tar_split_error:?}"
    );
    assert!(tar_split_error
        .source()
        .is_some_and(|s| s.is::<serde_json::Error>()));
}

#[test]
fn a_layer_that_cannot_be_unmounted_is_not_removed() {
    let root = TestRoot::new();
    let store = root.open();
    let id = format!("{STUCK}1");
    let opts = LayerOptions {
        id: Some(id.clone()),
        ..Default::default()
    };
    store.create_layer(None, &opts).expect("create");
    store.mount(&id, &MountOptions::default()).expect("mount");
    let err = store.delete_layer(&id).expect_err("busy");
    assert_eq!(
        err.to_string(),
        format!("unmounting layer {id}: unmount: device or resource busy")
    );
    assert!(err
        .source()
        .is_some_and(|s| s.downcast_ref::<DriverError>().is_some()));
    let layer = store.layer(&id).expect("still recorded");
    assert_eq!(layer.mount_count, 1, "still counted as mounted");
    assert!(
        root.graph(&format!("testfs/dir/{id}")).exists(),
        "data kept"
    );
}
