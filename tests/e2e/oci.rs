//! OCI image layouts: `import-oci`, `export-oci`, `verify`, `prune`, ID and digest prefix
//! resolution, and interop with Debian's skopeo both ways. Every layout is built here:
//! tars made by the test, JSON written by the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{first_line, gzip, tar_of, Output, Scratch};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF: &str = "org.opencontainers.image.ref.name";

fn sha256(data: &[u8]) -> String {
    crate::skopeo::sha256(data)
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// One layer of a test image: its tar, and whether the blob is gzipped.
struct TestLayer {
    tar: Vec<u8>,
    gzipped: bool,
}

impl TestLayer {
    fn plain(entries: &[(&str, &[u8])]) -> Self {
        TestLayer {
            tar: tar_of(entries),
            gzipped: false,
        }
    }
    fn gz(entries: &[(&str, &[u8])]) -> Self {
        TestLayer {
            tar: tar_of(entries),
            gzipped: true,
        }
    }
    fn blob(&self) -> Vec<u8> {
        if self.gzipped {
            gzip(&self.tar)
        } else {
            self.tar.clone()
        }
    }
    fn media_type(&self) -> &'static str {
        if self.gzipped {
            LAYER_GZIP
        } else {
            LAYER_TAR
        }
    }
}

/// An image written into a layout: its manifest descriptor parts and documents.
struct TestImage {
    manifest_digest: String,
    manifest_size: usize,
    config: Vec<u8>,
    diff_ids: Vec<String>,
}

/// A layout directory being built.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex(digest))
    }

    fn put(&self, data: &[u8]) -> String {
        let digest = sha256(data);
        std::fs::write(self.blob_path(&digest), data).unwrap();
        digest
    }

    /// Writes an image's blobs; `arch` goes into its config.
    fn image(&self, layers: &[TestLayer], arch: &str) -> TestImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(&l.tar)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let descriptors: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let blob = l.blob();
                serde_json::json!({
                    "mediaType": l.media_type(),
                    "digest": self.put(&blob),
                    "size": blob.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": self.put(&config), "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        TestImage {
            manifest_digest: self.put(&manifest),
            manifest_size: manifest.len(),
            config,
            diff_ids,
        }
    }

    fn index(&self, entries: &[serde_json::Value]) {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    fn arg(&self, reference: &str) -> String {
        format!("{}:{reference}", self.dir.display())
    }
}

fn entry(image: &TestImage, reference: Option<&str>) -> serde_json::Value {
    let mut e = serde_json::json!({
        "mediaType": MANIFEST,
        "digest": image.manifest_digest,
        "size": image.manifest_size,
    });
    if let Some(r) = reference {
        e["annotations"] = serde_json::json!({ REF: r });
    }
    e
}

/// A layout with one two-layer image tagged `v1` (an uncompressed and a gzip layer).
fn two_layer_layout(dir: PathBuf) -> (Layout, TestImage) {
    let layout = Layout::new(dir);
    let image = layout.image(
        &[
            TestLayer::plain(&[("etc/", b""), ("etc/os-release", b"ID=test\n")]),
            TestLayer::gz(&[("app/", b""), ("app/run.sh", b"#!/bin/sh\necho hi\n")]),
        ],
        "amd64",
    );
    layout.index(&[entry(&image, Some("v1"))]);
    (layout, image)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The stored state a failed command must leave unchanged.
fn snapshot(s: &Scratch) -> (String, String, Vec<String>) {
    let mut driver_dirs: Vec<String> = std::fs::read_dir(s.graph())
        .map(|d| {
            d.filter_map(Result::ok)
                .flat_map(|e| {
                    std::fs::read_dir(e.path())
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                        .map(|f| f.path().display().to_string())
                })
                .filter(|p| !p.ends_with(".lock") && !p.contains("components"))
                .collect()
        })
        .unwrap_or_default();
    driver_dirs.sort();
    (
        s.ok(&["layers", "-j"]),
        s.ok(&["images", "-j"]),
        driver_dirs,
    )
}

fn assert_one_line_failure(what: &str, o: &Output, needle: &str) {
    assert_ne!(o.code, 0, "{what}: should fail: {o:?}");
    assert_eq!(
        o.stderr.lines().count(),
        1,
        "{what}: one line: {:?}",
        o.stderr
    );
    assert!(
        o.stderr.contains(needle),
        "{what}: {:?} lacks {needle:?}",
        o.stderr
    );
}

#[test]
fn round_trip_keeps_image_digests_and_config() {
    let s = Scratch::new();
    let (layout, image) = two_layer_layout(s.dir().join("in"));
    let out = s.ok(&["import-oci", &layout.arg("v1")]);
    let id = hex(&sha256(&image.config)).to_string();
    assert_eq!(
        out,
        format!("{id}\n\tv1\n"),
        "image ID is the config digest"
    );

    let images = s.run(&["images", "-j"]).json();
    assert_eq!(
        images[0]["digest"],
        image.manifest_digest.as_str(),
        "{images}"
    );
    let by_digest = s.ok(&["images-by-digest", "-q", &image.manifest_digest]);
    assert_eq!(by_digest.trim(), id);
    let layers = s.run(&["layers", "-j"]).json();
    let diffs: Vec<&str> = layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff-digest"].as_str().unwrap())
        .collect();
    assert_eq!(diffs, image.diff_ids);
    assert_eq!(layers[1]["compression"], 2, "gzip recorded");
    let key = sha256(&image.config);
    assert_eq!(s.run(&["get-image-data", &id, &key]).stdout, image.config);

    let exported = s.dir().join("out");
    let printed = s.ok(&["export-oci", "v1", &format!("{}:again", exported.display())]);
    assert_eq!(
        printed.trim(),
        image.manifest_digest,
        "identical blobs keep the stored manifest"
    );
    let index = read_json(&exported.join("index.json"));
    assert_eq!(index["manifests"][0]["annotations"][REF], "again");
    assert!(exported.join("oci-layout").is_file());

    let fresh = Scratch::new();
    let out = fresh.ok(&["import-oci", &format!("{}:again", exported.display())]);
    assert_eq!(first_line(&out), id);
    let images = fresh.run(&["images", "-j"]).json();
    assert_eq!(images[0]["digest"], image.manifest_digest.as_str());
    let layers2 = fresh.run(&["layers", "-j"]).json();
    assert_eq!(without_created(layers2), without_created(layers));
    assert_eq!(
        fresh.run(&["get-image-data", &id, &key]).stdout,
        image.config
    );
    fresh.ok(&["verify", &id]);

    // A second export into the same layout adds to its index.
    s.ok(&["export-oci", &id, &format!("{}:other", exported.display())]);
    let index = read_json(&exported.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

/// A list of records without their creation times, to compare two stores.
fn without_created(mut records: serde_json::Value) -> serde_json::Value {
    for r in records.as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("created");
    }
    records
}

#[test]
fn an_export_of_a_layer_compressed_otherwise_rewrites_the_manifest() {
    let s = Scratch::new();
    let layout = Layout::new(s.dir().join("in"));
    // A gzip stream flate2 would not write (no compression): our export recompresses it,
    // so the manifest must be rewritten, the config kept.
    let tar = tar_of(&[("f", b"data")]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut enc, &tar).unwrap();
    let odd = enc.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": layout.put(&config), "size": config.len()},
        "layers": [{"mediaType": LAYER_GZIP, "digest": layout.put(&odd), "size": odd.len()}],
    }))
    .unwrap();
    let md = layout.put(&manifest);
    layout
        .index(&[serde_json::json!({"mediaType": MANIFEST, "digest": md, "size": manifest.len()})]);
    s.ok(&["import-oci", "-n", "odd", &layout.dir.display().to_string()]);
    let out = s.dir().join("out");
    let report = s
        .run(&["export-oci", "-j", "odd", &out.display().to_string()])
        .json();
    assert_eq!(report["rewritten"], true, "{report}");
    assert_ne!(report["manifest"], md.as_str());
    assert_eq!(
        report["config"],
        sha256(&config).as_str(),
        "config bytes kept"
    );
    // The rewritten layout imports into a fresh store as the same image.
    let fresh = Scratch::new();
    let imported = fresh.ok(&["import-oci", "-n", "odd", &out.display().to_string()]);
    assert_eq!(first_line(&imported), hex(&sha256(&config)));
    fresh.ok(&["verify", "odd"]);
}

#[test]
fn two_images_on_one_base_store_it_once() {
    let s = Scratch::new();
    let layout = Layout::new(s.dir().join("in"));
    let base = || TestLayer::gz(&[("base/", b""), ("base/lib", b"shared\n")]);
    let a = layout.image(&[base(), TestLayer::gz(&[("a", b"A")])], "amd64");
    let b = layout.image(&[base(), TestLayer::gz(&[("b", b"B")])], "amd64");
    layout.index(&[entry(&a, Some("a")), entry(&b, Some("b"))]);
    // Two images and no ref: the command asks which.
    let o = s.run(&["import-oci", &layout.dir.display().to_string()]);
    assert_one_line_failure("no ref", &o, "name one as DIR:REF, or use --all");

    s.ok(&["import-oci", &layout.arg("a")]);
    let second = s.run(&["import-oci", "-j", &layout.arg("b")]).json();
    assert_eq!(second[0]["reused-layers"], 1, "{second}");
    let layers = s.run(&["layers", "-j"]).json();
    assert_eq!(
        layers.as_array().unwrap().len(),
        3,
        "base stored once: {layers}"
    );
    // Importing again changes nothing.
    let again = s
        .run(&[
            "import-oci",
            "-j",
            "--all",
            &layout.dir.display().to_string(),
        ])
        .json();
    assert_eq!(again[0]["reused-layers"], 2, "{again}");
    assert_eq!(again.as_array().unwrap().len(), 2);
    assert_eq!(s.run(&["layers", "-j"]).json().as_array().unwrap().len(), 3);
    assert_eq!(s.run(&["images", "-j"]).json().as_array().unwrap().len(), 2);
}

#[test]
fn a_multi_platform_index_picks_the_host_or_the_asked_platform() {
    let s = Scratch::new();
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let layout = Layout::new(s.dir().join("in"));
    let native = layout.image(&[TestLayer::gz(&[("arch", host.as_bytes())])], host);
    let other = layout.image(&[TestLayer::gz(&[("arch", b"s390x")])], "s390x");
    let platform_entry = |image: &TestImage, arch: &str| {
        let mut e = entry(image, None);
        e["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        e
    };
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [platform_entry(&other, "s390x"), platform_entry(&native, host)],
    }))
    .unwrap();
    let nested_digest = layout.put(&nested);
    layout.index(&[serde_json::json!({
        "mediaType": INDEX, "digest": nested_digest, "size": nested.len(),
        "annotations": {REF: "multi"},
    })]);
    let out = s.ok(&["import-oci", &layout.arg("multi")]);
    assert_eq!(first_line(&out), hex(&sha256(&native.config)));
    let fresh = Scratch::new();
    let out = fresh.ok(&[
        "import-oci",
        "--platform",
        "linux/s390x",
        "-n",
        "z",
        &layout.arg("multi"),
    ]);
    assert_eq!(out, format!("{}\n\tz\n", hex(&sha256(&other.config))));
    let o = fresh.run(&[
        "import-oci",
        "--platform",
        "linux/riscv64",
        &layout.arg("multi"),
    ]);
    assert_one_line_failure(
        "no such platform",
        &o,
        "no image for platform linux/riscv64",
    );
    let o = fresh.run(&["import-oci", "--platform", "linux", &layout.arg("multi")]);
    assert_one_line_failure("bad platform", &o, "invalid platform");
}

/// What breaks a layout in one case of the bad-input test.
type Breaker = Box<dyn Fn(&Layout, &TestImage)>;

#[test]
fn bad_layouts_are_refused_and_leave_the_store_as_it_was() {
    let s = Scratch::new();
    // Something in the store already, so "unchanged" means something.
    let (good, _) = two_layer_layout(s.dir().join("good"));
    s.ok(&["import-oci", &good.arg("v1")]);
    let before = snapshot(&s);

    // Each case: a fresh three-layer layout (its first layer new to the store, so a
    // failure after applying it must remove it), then one thing broken.
    let cases: Vec<(&str, &str, Breaker)> = vec![
        (
            "missing blob",
            "is missing",
            Box::new(|l: &Layout, img: &TestImage| {
                let m = manifest_of(l, img);
                std::fs::remove_file(l.blob_path(m["layers"][2]["digest"].as_str().unwrap()))
                    .unwrap();
            }),
        ),
        (
            "corrupt blob",
            "has digest",
            Box::new(|l: &Layout, img: &TestImage| {
                let m = manifest_of(l, img);
                let path = l.blob_path(m["layers"][2]["digest"].as_str().unwrap());
                let mut data = std::fs::read(&path).unwrap();
                let last = data.len() - 1;
                data[last] ^= 0xff;
                std::fs::write(path, data).unwrap();
            }),
        ),
        (
            "blob of another size",
            "has size",
            Box::new(|l: &Layout, img: &TestImage| {
                let m = manifest_of(l, img);
                let path = l.blob_path(m["layers"][2]["digest"].as_str().unwrap());
                let mut data = std::fs::read(&path).unwrap();
                data.extend_from_slice(b"trailing");
                std::fs::write(path, data).unwrap();
            }),
        ),
        (
            "config digest mismatch",
            "has digest",
            Box::new(|l: &Layout, img: &TestImage| {
                let path = l.blob_path(&sha256(&img.config));
                let mut data = std::fs::read(&path).unwrap();
                data[0] = b' ';
                std::fs::write(path, data).unwrap();
            }),
        ),
        (
            "diff ID mismatch",
            "the config says",
            Box::new(|l: &Layout, img: &TestImage| {
                let mut config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
                config["rootfs"]["diff_ids"][2] = serde_json::json!(sha256(b"nope"));
                rewrite_image(l, img, None, Some(config));
            }),
        ),
        (
            "unknown media type",
            "unsupported layer media type",
            Box::new(|l: &Layout, img: &TestImage| {
                let mut m = manifest_of(l, img);
                m["layers"][1]["mediaType"] = serde_json::json!("application/x-unknown");
                rewrite_image(l, img, Some(m), None);
            }),
        ),
        (
            "broken index.json",
            "parsing index.json",
            Box::new(|l: &Layout, _: &TestImage| {
                std::fs::write(l.dir.join("index.json"), b"{\"schemaVersion\": 2, \"manif")
                    .unwrap();
            }),
        ),
        (
            "not a layout",
            "is not an OCI image layout",
            Box::new(|l: &Layout, _: &TestImage| {
                std::fs::remove_file(l.dir.join("oci-layout")).unwrap();
            }),
        ),
    ];
    for (i, (what, needle, breaker)) in cases.iter().enumerate() {
        let layout = Layout::new(s.dir().join(format!("bad{i}")));
        let image = layout.image(
            &[
                TestLayer::gz(&[("new1", format!("case {i}").as_bytes())]),
                TestLayer::plain(&[("new2", b"two")]),
                TestLayer::gz(&[("new3", b"three")]),
            ],
            "amd64",
        );
        layout.index(&[entry(&image, Some("v1"))]);
        breaker(&layout, &image);
        let o = s.run(&["import-oci", &layout.arg("v1")]);
        assert_one_line_failure(what, &o, needle);
        assert_eq!(snapshot(&s), before, "{what}: the store changed");
    }
}

fn manifest_of(l: &Layout, img: &TestImage) -> serde_json::Value {
    read_json(&l.blob_path(&img.manifest_digest))
}

/// Rewrites an image's manifest and/or config in place and points index.json at it.
fn rewrite_image(
    l: &Layout,
    img: &TestImage,
    manifest: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
) {
    let mut manifest = manifest.unwrap_or_else(|| manifest_of(l, img));
    if let Some(config) = config {
        let bytes = serde_json::to_vec(&config).unwrap();
        manifest["config"]["digest"] = serde_json::json!(l.put(&bytes));
        manifest["config"]["size"] = serde_json::json!(bytes.len());
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = l.put(&bytes);
    l.index(&[serde_json::json!({
        "mediaType": MANIFEST, "digest": digest, "size": bytes.len(),
        "annotations": {REF: "v1"},
    })]);
}

/// A file of a layer's content, where this suite's driver keeps it.
fn layer_file(s: &Scratch, layer: &str, rel: &str) -> PathBuf {
    crate::harness::layer_dir(&s.graph(), crate::DRIVER, layer).join(rel)
}

#[test]
fn verify_finds_an_intact_image_and_a_broken_one() {
    let s = Scratch::new();
    let (layout, _) = two_layer_layout(s.dir().join("in"));
    let id = first_line(&s.ok(&["import-oci", &layout.arg("v1")]));
    let out = s.ok(&["verify", "v1"]);
    assert_eq!(out, format!("image {id}: ok (2 layers, 4 data items)\n"));

    // Damage a layer's content and an item of big data.
    let layers = s.run(&["layers", "-j"]).json();
    let top = layers[1]["id"].as_str().unwrap().to_string();
    let file = layer_file(&s, &top, "app/run.sh");
    assert!(file.is_file(), "{} should exist", file.display());
    std::fs::write(&file, b"#!/bin/sh\necho tampered\n").unwrap();
    let manifest_file = s
        .graph()
        .join(format!("{}-images", crate::DRIVER))
        .join(&id)
        .join("manifest");
    std::fs::write(&manifest_file, b"{}").unwrap();

    let o = s.run(&["verify", &id]);
    assert_eq!(o.code, 1, "{o:?}");
    let text = o.out();
    assert!(text.starts_with(&format!("image {id}:\n")), "{text}");
    // Changed content no longer re-creates the imported archive (the CRC tar-split keeps
    // of each file tells first).
    assert!(
        text.contains(&format!(" layer {top}: its content cannot be re-created: file integrity checksum failed for \"app/run.sh\"")),
        "{text}"
    );
    assert!(
        text.contains(" big data \"manifest\" has size 2, recorded"),
        "{text}"
    );
    let o = s.run(&["verify", "no-such-image"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr, "no-such-image: image not known\n");
}

#[test]
fn prune_removes_what_nothing_references() {
    let s = Scratch::new();
    let (layout, _) = two_layer_layout(s.dir().join("in"));
    s.ok(&["import-oci", &layout.arg("v1")]);
    let kept: Vec<String> = s
        .ok(&["layers", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    let orphan = s.import_layer(&[], &tar_of(&[("orphan", b"x")]));
    let child = s.import_layer(&[&orphan], &tar_of(&[("child", b"y")]));
    let dangling_layer = s.import_layer(&[], &tar_of(&[("dangling", b"z")]));
    let dangling = first_line(&s.ok(&["create-image", &dangling_layer]));
    // A container keeps its image and layers.
    let used_layer = s.import_layer(&[], &tar_of(&[("used", b"u")]));
    let used = first_line(&s.ok(&["create-image", &used_layer]));
    s.ok(&["create-container", &used]);

    let dry = s.ok(&["prune", "--dry-run"]);
    assert_eq!(dry, format!("layer {child}\nlayer {orphan}\n"));
    assert!(
        s.ok(&["layers", "-q"]).contains(&orphan),
        "a dry run removes nothing"
    );

    assert_eq!(s.ok(&["prune"]), dry);
    let left = s.ok(&["layers", "-q"]);
    assert!(!left.contains(&orphan) && !left.contains(&child), "{left}");
    assert!(
        left.contains(&dangling_layer),
        "the unnamed image still holds its layer"
    );

    let dangling_dry = s.ok(&["prune", "--dangling", "--dry-run"]);
    assert_eq!(
        dangling_dry,
        format!("image {dangling}\nlayer {dangling_layer}\n")
    );
    assert_eq!(s.ok(&["prune", "--dangling"]), dangling_dry);
    assert!(s.fails(&["image", &dangling]).stdout.is_empty());
    let left: Vec<String> = s
        .ok(&["layers", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    for layer in &kept {
        assert!(left.contains(layer), "image layer {layer} kept");
    }
    assert!(
        left.contains(&used_layer),
        "the container's image layer kept"
    );
    s.ok(&["image", &used]);
    assert_eq!(s.ok(&["prune", "--dangling"]), "", "nothing left to prune");
}

#[test]
fn ambiguous_prefixes_are_errors_that_list_the_candidates() {
    let s = Scratch::new();
    let a = format!("abc1{}", "0".repeat(60));
    let b = format!("abc2{}", "0".repeat(60));
    s.create_layer(&["-i", &a]);
    s.create_layer(&["-i", &b]);
    let o = s.run(&["get-names", "abc"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(
        o.stderr,
        format!("\"abc\" is ambiguous: it is a prefix of {a}, {b}\n")
    );
    // The commands that otherwise exit 1 silently for an unknown name say why here.
    let o = s.run(&["layer", "abc", &a]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.out().starts_with(&format!("ID: {a}\n")), "{o:?}");
    assert_eq!(
        o.stderr,
        format!("\"abc\" is ambiguous: it is a prefix of {a}, {b}\n")
    );
    let o = s.run(&["delete-layer", "abc"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is ambiguous"), "{o:?}");
    assert_eq!(
        s.ok(&["layers", "-q"]),
        format!("{a}\n{b}\n"),
        "nothing deleted"
    );
    s.ok(&["set-names", "-n", "first", "abc1"]);

    // Images are found by a prefix of their manifest digest too.
    let (layout, image) = two_layer_layout(s.dir().join("in"));
    s.ok(&["import-oci", &layout.arg("v1")]);
    let prefix = &image.manifest_digest[..19];
    assert_eq!(s.ok(&["get-names", prefix]), "v1\n");
    let config_prefix = format!("sha256:{}", &hex(&sha256(&image.config))[..10]);
    assert_eq!(s.ok(&["get-names", &config_prefix]), "v1\n");
}

fn skopeo_available() -> bool {
    let found = Command::new("skopeo").arg("--version").output().is_ok();
    if !found {
        eprintln!("skopeo is not installed: skipping the skopeo interop test");
    }
    found
}

fn store_ref(s: &Scratch, name: &str) -> String {
    format!(
        "containers-storage:[{}@{}+{}]{name}",
        crate::DRIVER,
        s.graph().display(),
        s.run_root().display()
    )
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The parts of a store's records that must match between skopeo's import and ours.
fn comparable(s: &Scratch) -> (serde_json::Value, serde_json::Value) {
    let layers = without_created(s.run(&["layers", "-j"]).json());
    let mut images = s.run(&["images", "-j"]).json();
    for i in images.as_array_mut().unwrap() {
        let i = i.as_object_mut().unwrap();
        i.remove("names-history");
    }
    (layers, images)
}

#[test]
fn skopeo_and_storage_import_a_layout_alike_and_read_each_other() {
    if !skopeo_available() {
        return;
    }
    let theirs = Scratch::new();
    let (layout, image) = two_layer_layout(theirs.dir().join("in"));
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}", layout.arg("v1")),
        &store_ref(&theirs, "localhost/x:v1"),
    ]);
    let ours = Scratch::new();
    ours.ok(&["import-oci", "-n", "localhost/x:v1", &layout.arg("v1")]);
    // Same layer IDs and records, same image ID, digest, big data and metadata.
    assert_eq!(comparable(&ours), comparable(&theirs));

    // What skopeo stored: listed, verified, mounted and exported by storage.
    let id = hex(&sha256(&image.config)).to_string();
    assert_eq!(
        theirs.ok(&["verify", "localhost/x:v1"]),
        format!("image {id}: ok (2 layers, 4 data items)\n")
    );
    assert_eq!(first_line(&theirs.ok(&["images", "-q"])), id);
    let ctr = first_line(&theirs.ok(&["create-container", "localhost/x:v1"]));
    let mnt = theirs.ok(&["mount", &ctr]);
    let run = std::fs::read(Path::new(mnt.trim()).join("app/run.sh")).unwrap();
    assert_eq!(run, b"#!/bin/sh\necho hi\n");
    theirs.ok(&["unmount", &ctr]);
    let out = theirs.dir().join("out");
    theirs.ok(&[
        "export-oci",
        "localhost/x:v1",
        &format!("{}:v1", out.display()),
    ]);
    let fresh = Scratch::new();
    fresh.ok(&["import-oci", &format!("{}:v1", out.display())]);
    assert_eq!(first_line(&fresh.ok(&["images", "-q"])), id);
    assert_eq!(
        fresh
            .run(&["get-image-data", &id, &sha256(&image.config)])
            .stdout,
        image.config
    );

    // What storage stored: read back by skopeo with the same layer digests.
    let back = ours.dir().join("back");
    skopeo(&[
        "copy",
        "-q",
        &store_ref(&ours, "localhost/x:v1"),
        &format!("oci:{}:v1", back.display()),
    ]);
    let index = read_json(&back.join("index.json"));
    let manifest = read_json(
        &back
            .join("blobs/sha256")
            .join(hex(index["manifests"][0]["digest"].as_str().unwrap())),
    );
    let mut diff_ids = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = std::fs::read(
            back.join("blobs/sha256")
                .join(hex(layer["digest"].as_str().unwrap())),
        )
        .unwrap();
        let mut tar = Vec::new();
        if layer["mediaType"].as_str().unwrap().ends_with("gzip") {
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&blob[..]), &mut tar)
                .unwrap();
        } else {
            tar = blob;
        }
        diff_ids.push(sha256(&tar));
    }
    assert_eq!(diff_ids, image.diff_ids);
}

#[test]
fn an_image_without_a_manifest_is_exported_with_new_documents() {
    let s = Scratch::new();
    let tar = tar_of(&[("hello", b"world\n")]);
    let layer = s.import_layer(&[], &gzip(&tar));
    s.ok(&["create-image", "-n", "handmade", &layer]);
    let out = s.dir().join("out");
    let report = s
        .run(&[
            "export-oci",
            "-j",
            "handmade",
            &format!("{}:hm", out.display()),
        ])
        .json();
    assert_eq!(report["rewritten"], true, "{report}");
    let config = std::fs::read(
        out.join("blobs/sha256")
            .join(hex(report["config"].as_str().unwrap())),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar).as_str());
    let fresh = Scratch::new();
    let out = fresh.ok(&["import-oci", &format!("{}:hm", out.display())]);
    assert_eq!(out.lines().nth(1), Some("\thm"));
    let layers = fresh.run(&["layers", "-j"]).json();
    assert_eq!(layers[0]["diff-digest"], sha256(&tar).as_str());
    assert_eq!(layers[0]["compression"], 2, "recompressed as recorded");
    fresh.ok(&["verify", "hm"]);
}

#[test]
fn export_refuses_a_directory_that_is_not_a_layout() {
    let s = Scratch::new();
    let layer = s.import_layer(&[], &tar_of(&[("f", b"x")]));
    s.ok(&["create-image", "-n", "img", &layer]);
    let dir = s.dir().join("busy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"mine").unwrap();
    let o = s.run(&["export-oci", "img", &dir.display().to_string()]);
    assert_one_line_failure(
        "not a layout",
        &o,
        "is neither an OCI image layout nor empty",
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing added");
    let o = s.run(&[
        "export-oci",
        "nope",
        &s.dir().join("x").display().to_string(),
    ]);
    assert_one_line_failure("unknown image", &o, "image not known");
    assert!(!s.dir().join("x").exists());
}

/// A config as image builders write it: indented, keys in the builder's order (not
/// sorted), a trailing newline. Any re-serialisation would change its digest.
fn builder_style_config(diff_ids: &[String]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{
    "created": "2024-05-01T10:00:00.123456789Z",
    "architecture": "amd64",
    "os": "linux",
    "config": {{
        "Env": ["PATH=/usr/bin:/bin"],
        "Cmd": ["/bin/sh"]
    }},
    "rootfs": {{
        "type": "layers",
        "diff_ids": [{}]
    }},
    "history": [{{"created": "2024-05-01T10:00:00Z", "created_by": "identity test"}}]
}}
"#,
        ids.join(", ")
    )
    .into_bytes()
}

/// JSON bytes as text, for readable assertion failures.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// gzip of `data` by GNU gzip at its best compression: a stream our export (flate2 at the
/// default level) does not re-create, so its layer blob differs.
fn gnu_gzip_best(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// A layout holding one image with a builder-style config and an indented manifest: an
/// uncompressed layer and a gzip one compressed by `gz`. Returns the config and the
/// manifest digest.
fn builder_style_layout(dir: PathBuf, gz: fn(&[u8]) -> Vec<u8>) -> (Layout, Vec<u8>, String) {
    let layout = Layout::new(dir);
    let base = tar_of(&[("etc/", b""), ("etc/os-release", b"ID=identity\n")]);
    let top = tar_of(&[("srv/", b""), ("srv/data", &[7u8; 70_000][..])]);
    let top_gz = gz(&top);
    let config = builder_style_config(&[sha256(&base), sha256(&top)]);
    let manifest = format!(
        r#"{{
  "schemaVersion": 2,
  "mediaType": "{MANIFEST}",
  "config": {{
    "mediaType": "{CONFIG}",
    "digest": "{}",
    "size": {}
  }},
  "layers": [
    {{"mediaType": "{LAYER_TAR}", "digest": "{}", "size": {}}},
    {{"mediaType": "{LAYER_GZIP}", "digest": "{}", "size": {}}}
  ],
  "annotations": {{"org.example.built-by": "identity test"}}
}}"#,
        layout.put(&config),
        config.len(),
        layout.put(&base),
        base.len(),
        layout.put(&top_gz),
        top_gz.len(),
    )
    .into_bytes();
    let manifest_digest = layout.put(&manifest);
    layout.index(&[serde_json::json!({
        "mediaType": MANIFEST, "digest": manifest_digest, "size": manifest.len(),
        "annotations": {REF: "v1"},
    })]);
    (layout, config, manifest_digest)
}

/// The manifest a layout's index names for `reference`, its digest, and the config
/// bytes it names.
fn layout_image(dir: &Path, reference: &str) -> (String, Vec<u8>) {
    let index = read_json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"][REF] == reference)
        .unwrap_or_else(|| panic!("no {reference} in {index}"))
        .clone();
    let digest = entry["digest"].as_str().unwrap().to_string();
    let manifest = read_json(&dir.join("blobs/sha256").join(hex(&digest)));
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = std::fs::read(dir.join("blobs/sha256").join(hex(config_digest))).unwrap();
    assert_eq!(sha256(&config), config_digest);
    (digest, config)
}

/// Exports what `import-oci` stored from a builder-style layout and checks the image keeps
/// its identity: the config blob written byte for byte (so the same config digest, the
/// image ID), the manifest too when every layer blob comes out the same; importing the
/// export, with `storage` and with skopeo, gives the same image ID.
fn export_keeps_identity(gz: fn(&[u8]) -> Vec<u8>, blobs_come_out_the_same: bool) {
    let s = Scratch::new();
    let (layout, config, manifest_digest) = builder_style_layout(s.dir().join("in"), gz);
    let id = hex(&sha256(&config)).to_string();
    assert_eq!(first_line(&s.ok(&["import-oci", &layout.arg("v1")])), id);
    let out = s.dir().join("out");
    let report = s
        .run(&["export-oci", "-j", "v1", &format!("{}:v1", out.display())])
        .json();
    assert_eq!(report["config"], sha256(&config).as_str(), "{report}");
    assert_eq!(report["rewritten"], !blobs_come_out_the_same, "{report}");
    let (exported_manifest, exported_config) = layout_image(&out, "v1");
    assert_eq!(
        text(&exported_config),
        text(&config),
        "the stored config, byte for byte"
    );
    if blobs_come_out_the_same {
        assert_eq!(exported_manifest, manifest_digest, "the stored manifest");
        let original = std::fs::read(layout.blob_path(&manifest_digest)).unwrap();
        let written = std::fs::read(out.join("blobs/sha256").join(hex(&exported_manifest)));
        assert_eq!(text(&written.unwrap()), text(&original));
    } else {
        assert_ne!(
            exported_manifest, manifest_digest,
            "new layer blobs, new manifest"
        );
        let manifest = read_json(&out.join("blobs/sha256").join(hex(&exported_manifest)));
        assert_eq!(manifest["config"]["size"], config.len());
        assert_eq!(
            manifest["annotations"]["org.example.built-by"],
            "identity test"
        );
    }

    // Imported again by storage: the same image, its config bytes as they were.
    let fresh = Scratch::new();
    let imported = fresh.ok(&["import-oci", &format!("{}:v1", out.display())]);
    assert_eq!(first_line(&imported), id);
    assert_eq!(
        text(&fresh.run(&["get-image-data", &id, &sha256(&config)]).stdout),
        text(&config)
    );
    fresh.ok(&["verify", &id]);

    // Copied by skopeo (containers/image) into a store: the same image ID and config.
    if !skopeo_available() {
        return;
    }
    let theirs = Scratch::new();
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", out.display()),
        &store_ref(&theirs, "localhost/identity:v1"),
    ]);
    assert_eq!(theirs.ok(&["images", "-q"]).trim(), id);
    assert_eq!(
        text(
            &theirs
                .run(&["get-image-data", &id, &sha256(&config)])
                .stdout
        ),
        text(&config)
    );
    theirs.ok(&["verify", &id]);
}

#[test]
fn an_export_keeps_the_stored_config_and_manifest_bytes() {
    export_keeps_identity(gzip, true);
}

#[test]
fn an_export_with_recompressed_layers_keeps_the_config_bytes_and_the_image_id() {
    export_keeps_identity(gnu_gzip_best, false);
}

#[test]
fn a_layout_skopeo_wrote_keeps_its_image_id_through_import_and_export() {
    if !skopeo_available() {
        return;
    }
    // skopeo stores the builder-style image, then writes it out again as a layout whose
    // gzip layers Go compressed: the kind of layout users bring.
    let theirs = Scratch::new();
    let (layout, config, _) = builder_style_layout(theirs.dir().join("in"), gzip);
    let id = hex(&sha256(&config)).to_string();
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}", layout.arg("v1")),
        &store_ref(&theirs, "localhost/identity:v1"),
    ]);
    let from_skopeo = theirs.dir().join("from-skopeo");
    skopeo(&[
        "copy",
        "-q",
        &store_ref(&theirs, "localhost/identity:v1"),
        &format!("oci:{}:v1", from_skopeo.display()),
    ]);
    let (_, skopeo_config) = layout_image(&from_skopeo, "v1");
    assert_eq!(
        text(&skopeo_config),
        text(&config),
        "skopeo keeps the config bytes"
    );

    let ours = Scratch::new();
    ours.ok(&["import-oci", &format!("{}:v1", from_skopeo.display())]);
    let out = ours.dir().join("out");
    ours.ok(&["export-oci", "v1", &format!("{}:v1", out.display())]);
    let (_, exported_config) = layout_image(&out, "v1");
    assert_eq!(text(&exported_config), text(&config));

    let again = Scratch::new();
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", out.display()),
        &store_ref(&again, "localhost/identity:v1"),
    ]);
    assert_eq!(again.ok(&["images", "-q"]).trim(), id);
    let fresh = Scratch::new();
    assert_eq!(
        first_line(&fresh.ok(&["import-oci", &format!("{}:v1", out.display())])),
        id
    );
}
