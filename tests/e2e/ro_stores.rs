//! Additional read-only image stores (`<drv>.imagestore=`, `.imagestore=`,
//! `additionalimagestores` in storage.conf) and the split `--image-store` (upstream's `store.go`).

use std::path::{Path, PathBuf};

use crate::harness::{first_line, run_env, tar_of, Output, Scratch};

/// A store filled with one imported layer and an image on it, to be used read-only.
struct ReadOnlySource {
    store: Scratch,
    layer: String,
    image: String,
}

impl ReadOnlySource {
    fn new() -> Self {
        let store = Scratch::new();
        let layer = store.import_layer(
            &["-n", "rolayer"],
            &tar_of(&[("etc/", b""), ("etc/os", b"ro")]),
        );
        let image = first_line(&store.ok(&["create-image", "-n", "roimg", &layer]));
        store.ok(&["set-image-data", "-f", "/dev/null", &image, "manifest"]);
        store.ok(&["shutdown"]);
        ReadOnlySource {
            store,
            layer,
            image,
        }
    }

    fn root(&self) -> PathBuf {
        self.store.graph()
    }

    /// The store's record files, to show they are left alone.
    fn records(&self) -> Vec<Vec<u8>> {
        let drv = crate::DRIVER;
        [
            format!("{drv}-layers/layers.json"),
            format!("{drv}-images/images.json"),
        ]
        .iter()
        .map(|f| std::fs::read(self.root().join(f)).unwrap_or_default())
        .collect()
    }
}

/// Runs `args` on `s` with the read-only store `ro` added by `option` (`<drv>.imagestore`).
fn with_ro(s: &Scratch, option: &str, ro: &Path, args: &[&str]) -> Output {
    let opt = format!("{option}={}", ro.display());
    let mut full = vec!["--storage-opt", opt.as_str()];
    full.extend_from_slice(args);
    s.run(&full)
}

fn ok_with_ro(s: &Scratch, ro: &Path, args: &[&str]) -> String {
    let o = with_ro(s, &format!("{}.imagestore", crate::DRIVER), ro, args);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "{args:?}: {o:?}");
    o.out()
}

#[test]
fn layers_and_images_of_a_read_only_store_are_listed_as_read_only() {
    let ro = ReadOnlySource::new();
    let s = Scratch::new();
    let own = s.create_layer(&["-n", "mine"]);
    let layers = ok_with_ro(&s, &ro.root(), &["layers", "-q"]);
    assert_eq!(layers, format!("{own}\n{}\n", ro.layer));
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["layer", &ro.layer]),
        format!("ID: {}\nName: rolayer\nRead Only: true\n", ro.layer)
    );
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["layer", &own]),
        format!("ID: {own}\nName: mine\n")
    );
    let image = ok_with_ro(&s, &ro.root(), &["image", "roimg"]);
    assert!(image.starts_with(&format!("ID: {}\n", ro.image)), "{image}");
    assert!(image.ends_with("Read Only: true\n"), "{image}");
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["images", "-q"]),
        format!("{}\n", ro.image)
    );
    // The driver-independent spelling works too.
    let o = with_ro(&s, ".imagestore", &ro.root(), &["images", "-q"]);
    assert_eq!(o.out(), format!("{}\n", ro.image), "{o:?}");
    // The archive of a read-only layer comes back from its store.
    let o = with_ro(
        &s,
        &format!("{}.imagestore", crate::DRIVER),
        &ro.root(),
        &["diff", "-u", "rolayer"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout == tar_of(&[("etc/", b""), ("etc/os", b"ro")]),
        "the imported archive, from the read-only store's tar-split"
    );
}

#[test]
fn writes_to_a_read_only_store_are_refused_with_one_line() {
    let ro = ReadOnlySource::new();
    let before = ro.records();
    let s = Scratch::new();
    let opt = format!("{}.imagestore", crate::DRIVER);
    for args in [
        vec!["delete-layer", "rolayer"],
        vec!["delete-image", "roimg"],
        vec!["set-metadata", "-m", "x", "rolayer"],
        vec!["add-names", "-n", "other", "rolayer"],
        vec!["applydiff", "rolayer"],
        vec!["mount", "rolayer"],
        vec!["mount", "-r", "roimg"],
    ] {
        let o = with_ro(&s, &opt, &ro.root(), &args);
        assert_eq!(o.code, 1, "{args:?}: {o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {o:?}");
        assert!(o.stderr.contains("read-only"), "{args:?}: {o:?}");
    }
    assert_eq!(ro.records(), before, "the read-only store is unchanged");
}

#[test]
fn containers_from_a_read_only_image() {
    let ro = ReadOnlySource::new();
    let before = ro.records();
    let s = Scratch::new();
    let ctr = first_line(&ok_with_ro(
        &s,
        &ro.root(),
        &["create-container", "-n", "c", "roimg"],
    ));
    let mp = ok_with_ro(&s, &ro.root(), &["mount", "c"])
        .trim_end()
        .to_string();
    assert_eq!(std::fs::read(Path::new(&mp).join("etc/os")).unwrap(), b"ro");
    std::fs::write(Path::new(&mp).join("new"), b"n").unwrap();
    ok_with_ro(&s, &ro.root(), &["unmount", "c"]);
    // The container's layer is ours and writable; its parent is the read-only layer.
    let layer: serde_json::Value =
        serde_json::from_str(&ok_with_ro(&s, &ro.root(), &["container", "-j", &ctr])).unwrap();
    let layer = layer[0]["layer"].as_str().unwrap().to_string();
    let changes = ok_with_ro(&s, &ro.root(), &["changes", &layer]);
    assert_eq!(changes, "Add \"/new\"\n");
    let text = ok_with_ro(&s, &ro.root(), &["layer", &layer]);
    assert_eq!(text, format!("ID: {layer}\nParent: {}\n", ro.layer));
    ok_with_ro(&s, &ro.root(), &["delete-container", "c"]);
    assert_eq!(ro.records(), before, "the read-only store is unchanged");
}

#[test]
fn a_mapped_container_from_a_read_only_image_has_its_own_layer_reowned() {
    use std::os::unix::fs::MetadataExt;
    let ro = ReadOnlySource::new();
    let before = ro.records();
    let s = Scratch::new();
    let ctr = first_line(&ok_with_ro(
        &s,
        &ro.root(),
        &[
            "create-container",
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:200000:65536",
            "roimg",
        ],
    ));
    // No mapped copy can be recorded in a read-only image.
    let image: serde_json::Value =
        serde_json::from_str(&ok_with_ro(&s, &ro.root(), &["image", "-j", "roimg"])).unwrap();
    assert!(image[0].get("mapped-layers").is_none(), "{image}");
    let mp = ok_with_ro(&s, &ro.root(), &["mount", &ctr])
        .trim_end()
        .to_string();
    let meta = std::fs::symlink_metadata(Path::new(&mp).join("etc/os")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 200_000));
    ok_with_ro(&s, &ro.root(), &["unmount", &ctr]);
    // The read-only store's files keep their owners.
    let file = match crate::DRIVER {
        "vfs" => format!("vfs/dir/{}/etc/os", ro.layer),
        "btrfs" => format!("btrfs/subvolumes/{}/etc/os", ro.layer),
        drv => format!("{drv}/{}/diff/etc/os", ro.layer),
    };
    let meta = std::fs::symlink_metadata(ro.root().join(file)).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let o = with_ro(
        &s,
        &format!("{}.imagestore", crate::DRIVER),
        &ro.root(),
        &["diff", "-u", "rolayer"],
    );
    assert!(
        o.stdout == tar_of(&[("etc/", b""), ("etc/os", b"ro")]),
        "{}",
        o.stderr
    );
    ok_with_ro(&s, &ro.root(), &["delete-container", &ctr]);
    assert_eq!(ro.records(), before, "the read-only store is unchanged");
}

#[test]
fn add_names_copies_a_read_only_image_and_the_copy_can_be_deleted() {
    let ro = ReadOnlySource::new();
    let before = ro.records();
    let s = Scratch::new();
    ok_with_ro(&s, &ro.root(), &["add-names", "-n", "renamed", "roimg"]);
    assert_eq!(ro.records(), before, "the read-only store is unchanged");
    // The copy is in our image store, under the same ID, writable, with its big data.
    let ours: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            s.graph()
                .join(format!("{}-images/images.json", crate::DRIVER)),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ours[0]["id"], ro.image.as_str());
    // Added names come first (upstream 1.60).
    assert_eq!(ours[0]["names"], serde_json::json!(["renamed", "roimg"]));
    let image = ok_with_ro(&s, &ro.root(), &["image", "renamed"]);
    assert!(!image.contains("Read Only"), "{image}");
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["list-image-data", "renamed"]),
        "manifest\n"
    );
    // Deleting the copy works (upstream fails on the read-only top layer) and leaves the
    // read-only store's image and layer in place.
    ok_with_ro(&s, &ro.root(), &["delete-image", "renamed"]);
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["images", "-q"]),
        format!("{}\n", ro.image)
    );
    assert!(ok_with_ro(&s, &ro.root(), &["image", "roimg"]).ends_with("Read Only: true\n"));
    assert_eq!(
        ok_with_ro(&s, &ro.root(), &["layers", "-q"]),
        format!("{}\n", ro.layer)
    );
    assert_eq!(ro.records(), before, "the read-only store is unchanged");
}

#[test]
fn additional_image_stores_from_storage_conf() {
    let ro = ReadOnlySource::new();
    let s = Scratch::new();
    let conf = s.dir().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"{}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n\
             [storage.options]\nadditionalimagestores = [\"{}\"]\n",
            crate::DRIVER,
            s.graph().display(),
            s.run_root().display(),
            ro.root().display()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let o = run_env(&["images", "-q"], &[("CONTAINERS_STORAGE_CONF", &conf)]);
    assert_eq!((o.code, o.out()), (0, format!("{}\n", ro.image)), "{o:?}");
    let o = run_env(&["layer", "rolayer"], &[("CONTAINERS_STORAGE_CONF", &conf)]);
    assert!(o.out().ends_with("Read Only: true\n"), "{o:?}");
    let o = run_env(&["shutdown"], &[("CONTAINERS_STORAGE_CONF", &conf)]);
    assert_eq!(o.code, 0, "{o:?}");
}

/// Runs `args` on `s` with the split image store `is`.
fn split(s: &Scratch, is: &Path, args: &[&str]) -> String {
    let is = is.display().to_string();
    let mut full = vec!["--image-store", is.as_str()];
    full.extend_from_slice(args);
    let o = s.run(&full);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "{args:?}: {o:?}");
    o.out()
}

#[test]
fn split_image_store_keeps_images_and_read_only_layers_apart() {
    let s = Scratch::new();
    let is = s.dir().join("images");
    let drv = crate::DRIVER;
    let tar = tar_of(&[("bin/", b""), ("bin/sh", b"sh")]);
    let o = s.run_with_input(
        &[
            "--image-store",
            &is.display().to_string(),
            "import-layer",
            "-r",
            "-n",
            "base",
        ],
        &tar,
    );
    assert_eq!(o.code, 0, "{o:?}");
    let base = first_line(&o.out());
    let img = first_line(&split(&s, &is, &["create-image", "-n", "img", &base]));
    let rw = first_line(&split(&s, &is, &["create-layer", "-n", "scratch"]));
    let ctr = first_line(&split(&s, &is, &["create-container", "-n", "c", "img"]));

    let ids = |path: PathBuf| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(is.join(format!("{drv}-images/images.json"))),
        std::slice::from_ref(&img)
    );
    assert_eq!(
        ids(is.join(format!("{drv}-layers/layers.json"))),
        std::slice::from_ref(&base)
    );
    assert!(is
        .join(format!("{drv}-layers/{base}.tar-split.gz"))
        .is_file());
    let graph_layers = ids(s.graph().join(format!("{drv}-layers/layers.json")));
    assert!(
        graph_layers.contains(&rw) && !graph_layers.contains(&base),
        "{graph_layers:?}"
    );
    assert!(!s.graph().join(format!("{drv}-images/images.json")).exists());
    // The read-only layer's data is in the image store's driver home.
    let data = match drv {
        "vfs" => is.join(format!("vfs/dir/{base}")),
        "btrfs" => is.join(format!("btrfs/subvolumes/{base}")),
        _ => is.join(format!("{drv}/{base}")),
    };
    assert!(data.is_dir(), "{}", data.display());

    // Everything is usable together, and nothing is reported read-only.
    assert!(!split(&s, &is, &["layer", "base"]).contains("Read Only"));
    let mp = split(&s, &is, &["mount", "c"]).trim_end().to_string();
    assert_eq!(std::fs::read(Path::new(&mp).join("bin/sh")).unwrap(), b"sh");
    std::fs::write(Path::new(&mp).join("added"), b"a").unwrap();
    split(&s, &is, &["unmount", "c"]);
    let c: serde_json::Value =
        serde_json::from_str(&split(&s, &is, &["container", "-j", &ctr])).unwrap();
    let layer = c[0]["layer"].as_str().unwrap().to_string();
    assert_eq!(split(&s, &is, &["changes", &layer]), "Add \"/added\"\n");
    let o = s.run(&[
        "--image-store",
        &is.display().to_string(),
        "diff",
        "-u",
        "base",
    ]);
    assert_eq!((o.code, o.stdout == tar), (0, true), "{}", o.stderr);
    split(&s, &is, &["delete-container", "c"]);
    let o = s.run(&[
        "--image-store",
        &is.display().to_string(),
        "delete-image",
        "img",
    ]);
    assert_eq!((o.code, o.stderr), (0, format!("img: {base}\n")));
    assert_eq!(split(&s, &is, &["layers", "-q"]), format!("{rw}\n"));
    assert!(!data.exists(), "{}", data.display());
}

#[test]
fn split_image_store_keeps_mapped_copies_with_the_image() {
    use std::os::unix::fs::MetadataExt;
    let s = Scratch::new();
    let is = s.dir().join("images");
    let is_arg = is.display().to_string();
    let drv = crate::DRIVER;
    let o = s.run_with_input(
        &["--image-store", &is_arg, "import-layer", "-r"],
        &tar_of(&[("f", b"x")]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let base = first_line(&o.out());
    let img = first_line(&split(&s, &is, &["create-image", &base]));
    let ctr = first_line(&split(
        &s,
        &is,
        &[
            "create-container",
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:100000:65536",
            &img,
        ],
    ));
    let image: serde_json::Value =
        serde_json::from_str(&split(&s, &is, &["image", "-j", &img])).unwrap();
    let mapped = image[0]["mapped-layers"][0].as_str().unwrap().to_string();
    // The copy is an image layer: recorded, with its tar-split, in the image store.
    let records = std::fs::read_to_string(is.join(format!("{drv}-layers/layers.json"))).unwrap();
    assert!(records.contains(&mapped), "{records}");
    assert!(is
        .join(format!("{drv}-layers/{mapped}.tar-split.gz"))
        .is_file());
    let mp = split(&s, &is, &["mount", &ctr]).trim_end().to_string();
    let meta = std::fs::symlink_metadata(Path::new(&mp).join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 100_000));
    split(&s, &is, &["unmount", &ctr]);
    split(&s, &is, &["delete-container", &ctr]);
    let o = s.run(&["--image-store", &is_arg, "delete-image", &img]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(split(&s, &is, &["layers", "-q"]), "");
}

#[test]
fn go_lists_a_read_only_store_as_we_do() {
    // Go and we share vfs's layout; its overlay needs its own feature probes.
    if crate::DRIVER != "vfs" {
        eprintln!("go_lists_a_read_only_store_as_we_do: needs the vfs suite; skipped");
        return;
    }
    let Some(go_cli) = crate::harness::reference_binary() else {
        return;
    };
    let ro = ReadOnlySource::new();
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "vfs");
    let listing = |s: &Scratch| -> Vec<String> {
        [
            vec!["layer", "rolayer"],
            vec!["image", "roimg"],
            vec!["layers"],
            vec!["images"],
        ]
        .iter()
        .map(|args| {
            let o = with_ro(s, "vfs.imagestore", &ro.root(), args);
            assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
            // The size is computed differently; everything else must match.
            o.out()
                .lines()
                .filter(|l| !l.starts_with("Size"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
    };
    assert_eq!(listing(&ours), listing(&go));
}
