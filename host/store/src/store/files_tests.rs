//! The flush before a layer is complete, against the recording double: the store's test
//! driver keeps layers as plain directories, so no root is needed (CI runs these as an
//! unprivileged user).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use storage_driver::syscalls::{Call, RecordingSyscalls};

use super::super::test_support::{named, registry, tar_with, TestRoot};
use super::super::Store;

/// A store in `root` whose system calls are made on `sys`.
fn open_with(root: &TestRoot, sys: &Arc<RecordingSyscalls>) -> Store {
    let mut drivers = registry();
    drivers.set_syscalls(sys.clone());
    Store::open(&root.opts, &drivers).unwrap()
}

/// Whether the `layers.json` of the store at `graph` says the layer named `name` is
/// incomplete (`None`: not there).
fn recorded_incomplete(graph: &Path, name: &str) -> Option<bool> {
    let text = std::fs::read_to_string(graph.join("testfs-layers/layers.json")).ok()?;
    let records: serde_json::Value = serde_json::from_str(&text).ok()?;
    records.as_array()?.iter().find_map(|r| {
        let names = r["names"].as_array()?;
        names
            .iter()
            .any(|n| n == name)
            .then(|| r["flags"]["incomplete"] == serde_json::Value::Bool(true))
    })
}

/// How many layers are being filled (staging markers) in the store at `graph`.
fn staged(graph: &Path) -> usize {
    std::fs::read_dir(graph.join("testfs-layers/staging"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn the_driver_home_is_flushed_before_the_layer_is_recorded() {
    let root = TestRoot::new();
    let sys = Arc::new(RecordingSyscalls::new());
    let store = open_with(&root, &sys);
    // Look at the record on disk at the moment of the flush (the matcher sees every call;
    // it fails none).
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = Arc::clone(&seen);
        let graph = root.opts.graph_root.clone();
        sys.fail_when(
            move |c| {
                if matches!(c, Call::Syncfs { .. }) {
                    let record = recorded_incomplete(&graph, "l1");
                    seen.lock().unwrap().push((record, staged(&graph)));
                }
                false
            },
            0,
        );
    }
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    store
        .import_layer(None, &named(&["l1"]), &mut &tar[..])
        .unwrap();
    let home = std::fs::canonicalize(root.graph("testfs")).unwrap();
    let flushes: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Syncfs { .. }))
        .collect();
    assert_eq!(flushes, vec![Call::Syncfs { path: home }]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(None, 1)],
        "flushed while the layer is only staged, before any record names it"
    );
    assert_eq!(
        recorded_incomplete(&root.opts.graph_root, "l1"),
        Some(false)
    );
    assert_eq!(staged(&root.opts.graph_root), 0, "the marker is gone");
}

#[test]
fn a_failed_flush_fails_the_import_and_the_layer_is_never_complete() {
    let root = TestRoot::new();
    let sys = Arc::new(RecordingSyscalls::new());
    sys.fail_when(|c| matches!(c, Call::Syncfs { .. }), libc::EIO);
    let store = open_with(&root, &sys);
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    let err = store
        .import_layer(None, &named(&["l1"]), &mut &tar[..])
        .unwrap_err();
    assert!(
        err.to_string().starts_with("flushing the filesystem of"),
        "{err}"
    );
    assert!(store.layer("l1").is_err(), "rolled back");
    assert_eq!(recorded_incomplete(&root.opts.graph_root, "l1"), None);
    assert_eq!(staged(&root.opts.graph_root), 0, "the marker is gone");
    assert_eq!(
        std::fs::read_dir(root.graph("testfs/dir")).unwrap().count(),
        0,
        "the driver's data is gone too"
    );

    // Applying to an existing layer: the error, and the record keeps what it had.
    let sys_ok = Arc::new(RecordingSyscalls::new());
    let layer = open_with(&root, &sys_ok)
        .create_layer(None, &named(&["l2"]))
        .unwrap();
    let err = store.apply_diff(&layer.id, &mut &tar[..]).unwrap_err();
    assert!(err.to_string().contains("input/output error"), "{err}");
    let after = store.layer("l2").unwrap();
    assert_eq!(after.uncompressed_digest, layer.uncompressed_digest);
    assert_eq!(after.uncompressed_size, layer.uncompressed_size);
}

#[test]
fn a_created_layer_is_flushed_before_it_is_complete_and_a_failed_flush_fails_it() {
    let root = TestRoot::new();
    let graph = root.opts.graph_root.clone();
    let sys = Arc::new(RecordingSyscalls::new());
    let store = open_with(&root, &sys);
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    store
        .import_layer(None, &named(&["base"]), &mut &tar[..])
        .unwrap();
    // A child (a copy of its parent, for a driver that copies) is flushed while its record
    // still says incomplete.
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = Arc::clone(&seen);
        let graph = graph.clone();
        sys.fail_when(
            move |c| {
                if matches!(c, Call::Syncfs { .. }) {
                    seen.lock()
                        .unwrap()
                        .push(recorded_incomplete(&graph, "copy"));
                }
                false
            },
            0,
        );
    }
    store.create_layer(Some("base"), &named(&["copy"])).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![Some(true)]);
    assert_eq!(recorded_incomplete(&graph, "copy"), Some(false));

    // A failed flush fails the creation, which is rolled back.
    let failing = Arc::new(RecordingSyscalls::new());
    failing.fail_when(|c| matches!(c, Call::Syncfs { .. }), libc::EIO);
    let store = open_with(&root, &failing);
    let err = store
        .create_layer(Some("base"), &named(&["copy2"]))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("flushing the filesystem of"),
        "{err}"
    );
    assert!(store.layer("copy2").is_err(), "rolled back");
    assert_eq!(recorded_incomplete(&graph, "copy2"), None);
    assert_eq!(
        std::fs::read_dir(root.graph("testfs/dir")).unwrap().count(),
        2,
        "only base's and copy's data"
    );
}

#[test]
fn a_layer_of_a_split_image_store_flushes_the_image_stores_home() {
    let mut root = TestRoot::new();
    let is = root.dir.path().join("is");
    root.opts.image_store = Some(is.clone());
    let sys = Arc::new(RecordingSyscalls::new());
    let store = open_with(&root, &sys);
    let tar = tar_with(&[("etc/hostname", b"box\n")]);
    // A read-only layer lives in the image store; a container's (writable) in the graph root.
    store
        .import_layer(
            None,
            &super::super::LayerOptions {
                read_only: true,
                ..named(&["image-layer"])
            },
            &mut &tar[..],
        )
        .unwrap();
    store
        .create_layer(Some("image-layer"), &named(&["rw"]))
        .unwrap();
    let flushes: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Syncfs { .. }))
        .collect();
    let home = |p: std::path::PathBuf| Call::Syncfs {
        path: std::fs::canonicalize(p).unwrap(),
    };
    assert_eq!(
        flushes,
        vec![home(is.join("testfs")), home(root.graph("testfs"))]
    );
}
