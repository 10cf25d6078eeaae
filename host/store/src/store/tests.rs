//! Tests of the store as a whole: wiping, the Go CLI on the same files, split and
//! read-only image stores.

use crate::containers::ContainerRecord;
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use crate::lock::LockFile;
use crate::records::sha256_digest;
use crate::store::test_support::{copy_tree, named, registry, tar_with, test_driver, TestRoot};
use crate::store::{
    CheckOptions, ContainerOptions, DiffCompression, ImageOptions, Kind, LayerOptions, Store,
    StoreError,
};
use storage_driver::DriverRegistry;

#[test]
fn wipe_removes_everything() {
    let root = TestRoot::new();
    let store = root.open();
    store.create_layer(None, &named(&["l"])).expect("l");
    store
        .create_image(
            Some("l"),
            &ImageOptions {
                names: vec!["i".into()],
                ..Default::default()
            },
        )
        .expect("img");
    store
        .create_container("i", &ContainerOptions::default())
        .expect("ctr");
    store.wipe().expect("wipe");
    assert!(store.layers().expect("l").is_empty());
    assert!(store.images().expect("i").is_empty());
    assert!(store.containers().expect("c").is_empty());
}

/// Runs the Go reference CLI on `root` with the vfs driver; `None` when it is not installed.
fn go_cli(root: &TestRoot, args: &[&str]) -> Option<std::process::Output> {
    let out = std::process::Command::new(storage_test_support::reference_binary()?)
        .arg("--graph")
        .arg(root.graph(""))
        .arg("--run")
        .arg(root.run(""))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .ok()?;
    Some(out)
}

#[test]
fn go_cli_interoperates_on_files_and_locks() {
    let root = TestRoot::new();
    let Some(created) = go_cli(&root, &["create-layer", "-n", "golayer"]) else {
        eprintln!("no reference containers-storage; skipped");
        return;
    };
    assert!(created.status.success(), "{created:?}");
    // Our test driver keeps layers as <home>/dir/<id>, the vfs layout.
    let mut registry = DriverRegistry::new();
    registry.register("vfs", test_driver);
    let mut opts = root.opts.clone();
    opts.driver_name = "vfs".to_string();
    let store = Store::open(&opts, &registry).expect("open");
    let go_layer = store.layer("golayer").expect("Go's layer is visible");
    let ours = store
        .create_layer(Some("golayer"), &named(&["ourlayer"]))
        .expect("create");
    assert_eq!(ours.parent, go_layer.id);
    let listed = go_cli(&root, &["layers"]).expect("go");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("name: ourlayer") && text.contains("name: golayer"),
        "{text}"
    );

    // While we hold layers.lock exclusively, the Go CLI waits.
    let lock = LockFile::open(&root.graph("vfs-layers/layers.lock"), false).expect("lock");
    let guard = lock.lock_exclusive().expect("exclusive");
    let started = std::time::Instant::now();
    let graph = root.graph("");
    let run = root.run("");
    let go = storage_test_support::reference_binary().expect("found above");
    let child = std::thread::spawn(move || {
        std::process::Command::new(go)
            .arg("--graph")
            .arg(graph)
            .arg("--run")
            .arg(run)
            .args(["--storage-driver", "vfs", "layers"])
            .output()
            .map(|o| (o.status.success(), std::time::Instant::now()))
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let released = std::time::Instant::now();
    drop(guard);
    let (ok, finished) = child.join().expect("join").expect("run");
    assert!(ok);
    assert!(finished >= released, "Go CLI did not wait for our lock");
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));

    // Images and containers cross over too.
    let img = go_cli(&root, &["create-image", "-n", "goimage", "golayer"]).expect("go");
    assert!(img.status.success(), "{img:?}");
    let ctr = store
        .create_container(
            "goimage",
            &ContainerOptions {
                names: vec!["ourctr".into()],
                ..Default::default()
            },
        )
        .expect("container from Go's image");
    let listed = go_cli(&root, &["containers"]).expect("go");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("name: ourctr"));
    let deleted = go_cli(&root, &["delete-container", "ourctr"]).expect("go");
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(store.container(&ctr.id).is_err());
    assert!(
        store.layer(&ctr.layer).is_err(),
        "Go removed the container's layer"
    );

    // Tar-split and digests cross over: Go re-creates the tar we imported, and we
    // re-create the one Go imported.
    let tar = tar_with(&[("f.txt", b"interop"), ("g.txt", b"")]);
    let imported = store
        .import_layer(None, &named(&["ourimport"]), &mut tar.as_slice())
        .expect("import");
    let go_diff = go_cli(&root, &["diff", "-u", "ourimport"]).expect("go");
    assert!(go_diff.status.success(), "{go_diff:?}");
    assert_eq!(go_diff.stdout, tar, "Go reassembles our tar-split");
    let tar_file = root.dir.path().join("go.tar");
    let go_tar = tar_with(&[("h.txt", b"from go")]);
    std::fs::write(&tar_file, &go_tar).expect("write");
    let tar_file = tar_file.display().to_string();
    let go_import =
        go_cli(&root, &["import-layer", "-n", "goimport", "-f", &tar_file]).expect("go");
    assert!(go_import.status.success(), "{go_import:?}");
    let go_layer = store.layer("goimport").expect("Go's import");
    assert_eq!(go_layer.uncompressed_digest, sha256_digest(&go_tar));
    let mut ours_diff = Vec::new();
    store
        .diff("goimport", None, DiffCompression::None, &mut ours_diff)
        .expect("diff");
    assert_eq!(ours_diff, go_tar, "we reassemble Go's tar-split");
    store.delete_layer(&imported.id).expect("delete");

    // Records Go wrote re-serialize byte for byte.
    let go_ctr = go_cli(
        &root,
        &["create-container", "-n", "goctr", "-m", "a<b>&c", "goimage"],
    )
    .expect("go");
    assert!(go_ctr.status.success(), "{go_ctr:?}");
    let named_img = go_cli(&root, &["add-names", "-n", "x&y", "goimage"]).expect("go");
    assert!(named_img.status.success(), "{named_img:?}");
    // Upstream 1.60 puts added names first and records the history from the new list
    // (1.43 appended them: ["goimage", "x&y"], history ["x&y", "goimage"]).
    let renamed = store.image("x&y").expect("renamed");
    assert_eq!(renamed.names, vec!["x&y", "goimage"]);
    assert_eq!(renamed.names_history, vec!["goimage", "x&y"]);
    for (file, kind) in [
        ("vfs-layers/layers.json", 0),
        ("vfs-images/images.json", 1),
        ("vfs-containers/containers.json", 2),
    ] {
        let bytes = std::fs::read(root.graph(file)).expect("read");
        let again = match kind {
            0 => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<LayerRecord>>(&bytes).expect("parse"),
            ),
            1 => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<ImageRecord>>(&bytes).expect("parse"),
            ),
            _ => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<ContainerRecord>>(&bytes).expect("parse"),
            ),
        };
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&bytes),
            "{file}"
        );
    }

    // Go deletes our layer; we notice through its lock token.
    let deleted = go_cli(&root, &["delete-layer", &ours.id]).expect("go");
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(store.layer("ourlayer").is_err());
}

#[test]
fn split_image_store_holds_images_and_read_only_layers() {
    let root = TestRoot::new();
    let mut opts = root.opts.clone();
    let is = root.dir.path().join("is");
    opts.image_store = Some(is.clone());
    let store = Store::open(&opts, &registry()).expect("open");
    let ro = store
        .create_layer(
            None,
            &LayerOptions {
                read_only: true,
                ..named(&["ro"])
            },
        )
        .expect("ro layer");
    let rw = store
        .create_layer(Some("ro"), &named(&["rw"]))
        .expect("rw layer");
    let img = store
        .create_image(Some("ro"), &ImageOptions::default())
        .expect("img");
    let is_layers = std::fs::read_to_string(is.join("testfs-layers/layers.json")).expect("read");
    assert!(is_layers.contains(&ro.id) && !is_layers.contains(&rw.id));
    let layers = std::fs::read_to_string(root.graph("testfs-layers/layers.json")).expect("read");
    let id_key = |id: &str| format!(r#""id":"{id}""#);
    assert!(layers.contains(&id_key(&rw.id)) && !layers.contains(&id_key(&ro.id)));
    assert!(
        std::fs::read_to_string(is.join("testfs-images/images.json"))
            .expect("read")
            .contains(&img.id)
    );
    store
        .set_big_data(Kind::Layer, &ro.id, "k", b"v")
        .expect("big data");
    assert!(is.join(format!("testfs-layers/{}/k", ro.id)).exists());
    let again = Store::open(&opts, &registry()).expect("reopen");
    assert_eq!(again.layers().expect("layers").len(), 2);
    assert_eq!(again.big_data(Kind::Layer, "ro", "k").expect("get"), b"v");
}

/// A store reads the folders it opened, not what their paths name later: with a read-only
/// store swapped, after the store opened, for a copy without its tar-splits and big data,
/// the layer's archive is still re-created byte for byte from the tar-split (the driver's
/// own diff of the copy would differ) and the image's data is still there.
#[test]
fn tar_splits_and_big_data_are_read_from_the_folders_opened() {
    let ro_root = TestRoot::new();
    let tar = tar_with(&[("f.txt", b"from the tar-split"), ("g.txt", b"")]);
    let image = {
        let ro = ro_root.open();
        ro.import_layer(None, &named(&["base"]), &mut tar.as_slice())
            .expect("import");
        let image = ro
            .create_image(Some("base"), &ImageOptions::default())
            .expect("image");
        ro.set_big_data(Kind::Image, &image.id, "manifest", b"{}")
            .expect("big data");
        image
    };
    let graph = ro_root.graph("");
    let decoy = ro_root.dir.path().join("decoy");
    copy_tree(&graph, &decoy).expect("copy");
    for entry in std::fs::read_dir(decoy.join("testfs-layers")).expect("ls") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".tar-split.gz") {
            std::fs::remove_file(path).expect("rm");
        }
    }
    std::fs::remove_dir_all(decoy.join("testfs-images").join(&image.id)).expect("rm");

    let root = TestRoot::new();
    let mut opts = root.opts.clone();
    opts.driver_options = vec![format!("testfs.imagestore={}", graph.display())];
    let store = Store::open(&opts, &registry()).expect("open");
    std::fs::rename(&graph, ro_root.dir.path().join("moved")).expect("move");
    std::fs::rename(&decoy, &graph).expect("swap");

    let mut diff = Vec::new();
    store
        .diff("base", None, DiffCompression::None, &mut diff)
        .expect("diff");
    assert!(
        diff == tar,
        "not re-created from the opened store's tar-split ({} bytes, {} imported)",
        diff.len(),
        tar.len()
    );
    assert_eq!(
        store
            .big_data(Kind::Image, &image.id, "manifest")
            .expect("get"),
        b"{}"
    );
    let report = store.check(&CheckOptions::default()).expect("check");
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn read_only_image_stores_are_visible_and_copied_on_rename() {
    let ro_root = TestRoot::new();
    let (layer, image) = {
        let ro = ro_root.open();
        let layer = ro.create_layer(None, &named(&["base"])).expect("layer");
        let image = ro
            .create_image(
                Some("base"),
                &ImageOptions {
                    names: vec!["img".into()],
                    ..Default::default()
                },
            )
            .expect("image");
        ro.set_big_data(Kind::Image, &image.id, "manifest", b"{}")
            .expect("big data");
        (layer, image)
    };
    let ro_images_json = std::fs::read(ro_root.graph("testfs-images/images.json")).expect("read");
    let root = TestRoot::new();
    let mut opts = root.opts.clone();
    opts.driver_options = vec![format!("testfs.imagestore={}", ro_root.graph("").display())];
    let store = Store::open(&opts, &registry()).expect("open");
    let layers = store.layers().expect("layers");
    assert_eq!(layers.len(), 1);
    assert!(layers[0].read_only);
    assert!(store.image("img").expect("image").read_only);
    assert_eq!(
        store.big_data(Kind::Image, "img", "manifest").expect("get"),
        b"{}"
    );
    let err = store.delete_layer(&layer.id).expect_err("read-only");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    let c = store
        .create_container("img", &ContainerOptions::default())
        .expect("container");
    assert_eq!(store.layer(&c.layer).expect("layer").parent, layer.id);
    store
        .add_names("img", &["renamed".to_string()])
        .expect("add names");
    let copy = store.image("renamed").expect("copy");
    assert_eq!(copy.id, image.id);
    assert!(!copy.read_only);
    assert_eq!(
        store
            .big_data(Kind::Image, "renamed", "manifest")
            .expect("get"),
        b"{}"
    );
    let after = std::fs::read(ro_root.graph("testfs-images/images.json")).expect("read");
    assert_eq!(after, ro_images_json, "the read-only store is untouched");
}
