//! Store maintenance: storage-layers, create-storage-layer, check, gc.
//!
//! Every kind of damage `check` knows is made by hand in a scratch store, then seen
//! reported (text, `-j`, exit status and the count line), repaired (`-r`, or `-f` where
//! containers must go) and `check` is clean afterwards.

use std::path::PathBuf;

use crate::harness::{id, layer_dir, tar_of, Scratch};

const CLEAN: &str =
    "{\"Layers\":{},\"ROLayers\":{},\"Images\":{},\"ROImages\":{},\"Containers\":{}}\n";

/// Problem lines of one object.
type Problems = (String, Vec<String>);

/// What `check` should report: problem lines by object, per section.
#[derive(Default)]
struct Expected {
    layers: Vec<Problems>,
    images: Vec<Problems>,
    containers: Vec<Problems>,
}

impl Expected {
    fn layer(mut self, id: &str, problems: &[String]) -> Self {
        self.layers.push((id.to_string(), problems.to_vec()));
        self
    }
    fn image(mut self, id: &str, problems: &[String]) -> Self {
        self.images.push((id.to_string(), problems.to_vec()));
        self
    }
    fn container(mut self, id: &str, problems: &[String]) -> Self {
        self.containers.push((id.to_string(), problems.to_vec()));
        self
    }

    fn sections(&self) -> [(&str, Vec<&Problems>); 3] {
        fn sorted(v: &[Problems]) -> Vec<&Problems> {
            let mut v: Vec<&Problems> = v.iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        [
            ("layer", sorted(&self.layers)),
            ("image", sorted(&self.images)),
            ("container", sorted(&self.containers)),
        ]
    }

    /// The text upstream prints.
    fn text(&self) -> String {
        let mut out = String::new();
        for (what, entries) in self.sections() {
            for (id, problems) in entries {
                out.push_str(&format!("{what} {id}:\n"));
                for p in problems {
                    out.push_str(&format!(" {p}\n"));
                }
            }
        }
        out
    }

    /// The `-j` report: every error an empty object.
    fn json(&self) -> String {
        let [(_, layers), (_, images), (_, containers)] = self.sections();
        let map = |entries: Vec<&Problems>| {
            let items: Vec<String> = entries
                .iter()
                .map(|(id, p)| format!("\"{id}\":[{}]", vec!["{}"; p.len()].join(",")))
                .collect();
            format!("{{{}}}", items.join(","))
        };
        format!(
            "{{\"Layers\":{},\"ROLayers\":{{}},\"Images\":{},\"ROImages\":{{}},\"Containers\":{}}}\n",
            map(layers),
            map(images),
            map(containers)
        )
    }

    /// The line on stderr when damage was found without repairing.
    fn counts(&self) -> String {
        format!(
            "{} layer errors, 0 read-only layer errors, {} image errors, 0 read-only image errors, {} container errors\n",
            self.layers.len(),
            self.images.len(),
            self.containers.len()
        )
    }
}

/// `check` (text, `-j`, and `extra` flags) reports exactly `e` and fails.
fn reported(s: &Scratch, extra: &[&str], e: &Expected) {
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    let o = s.fails(&args);
    assert_eq!(o.out(), e.text(), "{args:?}");
    assert_eq!(o.stderr, e.counts(), "{args:?}");
    args.push("-j");
    let o = s.fails(&args);
    assert_eq!(o.out(), e.json(), "{args:?}");
    assert_eq!(o.stderr, e.counts(), "{args:?}");
}

/// `check ARGS` repairs: prints what it found, succeeds, and leaves a clean store.
fn repaired(s: &Scratch, args: &[&str], e: &Expected) {
    let o = s.run(args);
    assert_eq!(o.code, 0, "{args:?}: {o:?}");
    assert_eq!(o.out(), e.text(), "{args:?}");
    assert_eq!(o.stderr, "", "{args:?}");
    assert_eq!(s.ok(&["check"]), "");
    assert_eq!(s.ok(&["check", "-j"]), CLEAN);
}

/// An imported layer and an image on it.
fn image_on_imported_layer(s: &Scratch, tag: &str) -> (String, String) {
    let tar = tar_of(&[("a.txt", b"hello"), ("d/", b""), ("d/b.txt", b"world")]);
    let layer = s.import_layer(&["--id", &id(&format!("{tag}l"))], &tar);
    let image = id(&format!("{tag}i"));
    s.ok(&["create-image", "--id", &image, &layer]);
    (layer, image)
}

fn file_of(s: &Scratch, layer: &str, name: &str) -> PathBuf {
    layer_dir(&s.graph(), crate::DRIVER, layer).join(name)
}

/// Rewrites one field of a layer's record in layers.json by hand.
fn edit_layer_record(s: &Scratch, layer: &str, key: &str, value: serde_json::Value) {
    let path = s
        .graph()
        .join(format!("{}-layers/layers.json", crate::DRIVER));
    let mut records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for r in records.as_array_mut().unwrap() {
        if r["id"] == layer {
            r[key] = value.clone();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
}

#[test]
fn storage_layers_lists_driver_layers() {
    let s = Scratch::new();
    assert_eq!(s.ok(&["storage-layers"]), "");
    let l = s.create_layer(&["--id", &id("rec")]);
    let d = id("driveronly");
    assert_eq!(s.ok(&["create-storage-layer", "-i", &d]), format!("{d}\n"));
    // A layer that has its storage already keeps it, as upstream's driver create does.
    assert_eq!(s.ok(&["create-storage-layer", "-i", &l]), format!("{l}\n"));
    let mut listed: Vec<String> = s
        .ok(&["storage-layers"])
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    let mut expected = vec![l.clone(), d.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    // A driver-only layer has no record.
    assert_eq!(s.ok(&["layers", "-q"]), format!("{l}\n"));
    let out = s.ok(&["create-storage-layer", "-j", &l]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_str().unwrap().len(), 64);
}

#[test]
fn check_reports_and_repairs_unaccounted_layers() {
    let s = Scratch::new();
    let img = id("img");
    let l = s.create_layer(&["--id", &id("used")]);
    s.ok(&["create-image", "--id", &img, &l]);
    assert_eq!(s.ok(&["check"]), "");
    assert_eq!(s.ok(&["check", "-j"]), CLEAN);

    let stray = id("stray");
    s.ok(&["create-storage-layer", "--id", &stray]);
    let e = Expected::default().layer(
        &stray,
        &[format!(
            "layer {stray}: layer in lower level storage driver not accounted for"
        )],
    );
    reported(&s, &[], &e);
    reported(&s, &["-q"], &e);
    repaired(&s, &["check", "-r"], &e);
    assert_eq!(s.ok(&["storage-layers"]), format!("{l}\n"));
    assert_eq!(s.ok(&["images", "-q"]), format!("{img}\n"));
}

#[test]
fn check_finds_a_changed_file_by_its_checksum() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "crc");
    let fine = s.create_layer(&["--id", &id("fine")]);
    assert_eq!(s.ok(&["check"]), "");
    // Same size, other bytes: only the CRC-64 of tar-split can tell.
    std::fs::write(file_of(&s, &layer, "a.txt"), b"HELLO").unwrap();
    let problem = vec![format!(
        "layer {layer}: file integrity checksum failed for \"a.txt\""
    )];
    let e = Expected::default()
        .layer(&layer, &problem)
        .image(&image, &problem);
    reported(&s, &[], &e);
    // Quick still re-creates the archive (upstream's CheckMost).
    reported(&s, &["-q"], &e);
    repaired(&s, &["check", "-r"], &e);
    assert_eq!(s.ok(&["layers", "-q"]), format!("{fine}\n"));
    assert_eq!(s.ok(&["images", "-q"]), "");
}

#[test]
fn a_damaged_image_in_use_by_a_container_needs_force() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "busy");
    let ctr = id("busyctr");
    s.ok(&["create-container", "--id", &ctr, &image]);
    let ctr_layer = s.ok(&["container", "-j", &ctr]);
    let ctr_layer: serde_json::Value = serde_json::from_str(&ctr_layer).unwrap();
    let ctr_layer = ctr_layer[0]["layer"].as_str().unwrap().to_string();
    std::fs::write(file_of(&s, &layer, "d/b.txt"), b"WORLD").unwrap();
    let problem = vec![format!(
        "layer {layer}: file integrity checksum failed for \"d/b.txt\""
    )];
    let e = Expected::default()
        .layer(&layer, &problem)
        .image(&image, &problem)
        .container(&ctr, &problem);
    reported(&s, &[], &e);
    // Without force the container stays, so its image and layer cannot go.
    let o = s.fails(&["check", "-r"]);
    assert_eq!(o.out(), e.text());
    let first =
        format!("deleting image {image}: image used by {ctr}: image is in use by a container");
    assert_eq!(
        o.stderr,
        format!(
            "{first}\ndeleting layer {layer}: used by layer {ctr_layer}: layer has children\n{first}\n"
        )
    );
    repaired(&s, &["check", "-f"], &e);
    assert_eq!(s.ok(&["layers", "-q"]), "");
}

#[test]
fn check_finds_a_record_whose_digest_or_size_does_not_match() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "dig");
    let wrong = format!("sha256:{}", "ab".repeat(32));
    edit_layer_record(&s, &layer, "diff-digest", serde_json::json!(wrong));
    let problem = vec![format!("layer {layer}: layer content incorrect digest")];
    let e = Expected::default()
        .layer(&layer, &problem)
        .image(&image, &problem);
    reported(&s, &[], &e);
    repaired(&s, &["check", "-r"], &e);

    let (layer, image) = image_on_imported_layer(&s, "size");
    let size = s.run(&["diff", "-u", &layer]).stdout.len();
    edit_layer_record(&s, &layer, "diff-size", serde_json::json!(999));
    let problem = vec![format!(
        "layer {layer}: read {size} bytes instead of 999 bytes: layer content incorrect size"
    )];
    let e = Expected::default()
        .layer(&layer, &problem)
        .image(&image, &problem);
    reported(&s, &["-q"], &e);
    repaired(&s, &["check", "-r", "-q"], &e);
}

#[test]
fn full_check_finds_content_the_archive_did_not_bring() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "mod");
    // Neither changes what tar-split re-creates: only the comparison of the mounted
    // layer with the archive's headers sees them.
    std::fs::write(file_of(&s, &layer, "d/extra"), b"x").unwrap();
    std::fs::set_permissions(
        file_of(&s, &layer, "a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let problems = vec![
        format!("layer {layer}: +/a.txt(mode:0644￫0600), layer content modified"),
        format!("layer {layer}: +/d/extra, layer content modified"),
        format!("layer {layer}: /a.txt(mode:0644￫0600), layer content modified"),
    ];
    let e = Expected::default()
        .layer(&layer, &problems)
        .image(&image, &problems);
    reported(&s, &[], &e);
    // Quick skips the comparison.
    assert_eq!(s.ok(&["check", "-q"]), "");
    repaired(&s, &["check", "-r"], &e);
    assert_eq!(s.ok(&["images", "-q"]), "");
}

#[test]
fn check_finds_missing_layer_data() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "gone");
    let (other, other_image) = image_on_imported_layer(&s, "kept");
    std::fs::remove_dir_all(layer_dir(&s.graph(), crate::DRIVER, &layer)).unwrap();
    let o = s.fails(&["check"]);
    let text = o.out();
    assert!(
        text.starts_with(&format!("layer {layer}:\n layer {layer}: ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("image {image}:\n layer {layer}: ")),
        "{text}"
    );
    assert!(!text.contains(&other), "{text}");
    assert_eq!(
        o.stderr,
        "1 layer errors, 0 read-only layer errors, 1 image errors, 0 read-only image errors, 0 container errors\n"
    );
    let o = s.run(&["check", "-r"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.out(), text);
    assert_eq!(s.ok(&["check"]), "");
    assert_eq!(s.ok(&["layers", "-q"]), format!("{other}\n"));
    assert_eq!(s.ok(&["images", "-q"]), format!("{other_image}\n"));
}

#[test]
fn check_finds_missing_and_resized_big_data() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "bd");
    let drv = crate::DRIVER;
    s.ok_with_input(&["set-layer-data", &layer, "notes"], b"layer data");
    s.ok_with_input(&["set-image-data", &image, "manifest"], b"{}");
    s.ok_with_input(&["set-image-data", &image, "config"], b"cfg");
    std::fs::remove_file(s.graph().join(format!("{drv}-layers/{layer}/notes"))).unwrap();
    std::fs::remove_file(s.graph().join(format!("{drv}-images/{image}/manifest"))).unwrap();
    std::fs::write(
        s.graph().join(format!("{drv}-images/{image}/config")),
        b"longer",
    )
    .unwrap();
    let layer_problem = format!("layer {layer}: data item \"notes\": layer data item is missing");
    let e = Expected::default()
        .layer(&layer, std::slice::from_ref(&layer_problem))
        .image(
            &image,
            &[
                format!("image {image}: data item \"manifest\": image data item is missing"),
                format!("image {image}: data item \"config\": image data item has incorrect size"),
                layer_problem,
            ],
        );
    reported(&s, &[], &e);
    reported(&s, &["-q"], &e);
    repaired(&s, &["check", "-r"], &e);
    assert_eq!(s.ok(&["layers", "-q"]), "");
}

#[test]
fn container_damage_needs_force() {
    let s = Scratch::new();
    let (_layer, image) = image_on_imported_layer(&s, "ctr");
    let ctr = id("ctr");
    s.ok(&["create-container", "--id", &ctr, &image]);
    s.ok_with_input(&["set-container-data", &ctr, "state"], b"running");
    std::fs::remove_file(
        s.graph()
            .join(format!("{}-containers/{ctr}/state", crate::DRIVER)),
    )
    .unwrap();
    let e = Expected::default().container(
        &ctr,
        &[format!(
            "container {ctr}: data item \"state\": container data item is missing"
        )],
    );
    reported(&s, &[], &e);
    // -r leaves containers alone, and says so.
    let o = s.fails(&["check", "-r"]);
    assert_eq!(o.out(), e.text());
    assert_eq!(
        o.stderr,
        "0 read-only layer errors, 0 read-only image errors, 1 container errors\n"
    );
    assert_eq!(s.ok(&["containers"]), format!("{ctr}\n\tdata: state\n"));
    repaired(&s, &["check", "-f"], &e);
    assert_eq!(s.ok(&["containers", "-j"]), "[]\n");
    assert_eq!(s.ok(&["images", "-q"]), format!("{image}\n"));
}

#[test]
fn check_finds_images_whose_layers_are_gone() {
    let s = Scratch::new();
    let (layer, image) = image_on_imported_layer(&s, "lost");
    // `delete` has no safety checks: the image keeps pointing at the layer.
    s.ok(&["delete", &layer]);
    let e = Expected::default().image(
        &image,
        &[format!(
            "image {image}: layer {layer}: image layer is missing"
        )],
    );
    reported(&s, &[], &e);
    repaired(&s, &["check", "-r"], &e);
    assert_eq!(s.ok(&["images", "-q"]), "");
}

#[test]
fn check_finds_containers_whose_image_is_gone() {
    let s = Scratch::new();
    let (_layer, image) = image_on_imported_layer(&s, "orph");
    let ctr = id("orphan");
    s.ok(&["create-container", "--id", &ctr, &image]);
    s.ok(&["delete", &image]);
    let e = Expected::default().container(&ctr, &[format!("image {image}: image missing")]);
    reported(&s, &[], &e);
    let o = s.fails(&["check", "-r", "-j"]);
    assert_eq!(o.out(), e.json());
    repaired(&s, &["check", "-f"], &e);
    assert_eq!(s.ok(&["containers", "-j"]), "[]\n");
}

#[test]
fn check_finds_layers_unused_past_the_age_limit() {
    let s = Scratch::new();
    let (layer, _image) = image_on_imported_layer(&s, "used");
    let loose = s.create_layer(&["--id", &id("loose")]);
    let child = s.create_layer(&["--id", &id("child"), &layer]);
    // Young enough under the default 24h.
    assert_eq!(s.ok(&["check"]), "");
    assert_eq!(s.ok(&["check", "-m", "1h"]), "");
    let e = Expected::default()
        .layer(
            &child,
            &[format!(
                "layer {child}: layer not referenced by any images or containers"
            )],
        )
        .layer(
            &loose,
            &[format!(
                "layer {loose}: layer not referenced by any images or containers"
            )],
        );
    reported(&s, &["-m", "0s"], &e);
    repaired(&s, &["check", "-r", "-m", "0s"], &e);
    assert_eq!(s.ok(&["layers", "-q"]), format!("{layer}\n"));
}

#[test]
fn check_finds_a_missing_parent() {
    let s = Scratch::new();
    let parent = s.create_layer(&["--id", &id("parent")]);
    let child = s.create_layer(&["--id", &id("orphanl"), &parent]);
    let img = id("pimg");
    s.ok(&["create-image", "--id", &img, &child]);
    edit_layer_record(&s, &child, "parent", serde_json::json!(id("nosuch")));
    let o = s.fails(&["check", "-q"]);
    assert!(
        o.out().contains(&format!(
            "layer {child}:\n layer {}: layer is missing\n",
            id("nosuch")
        )),
        "{}",
        o.out()
    );
    assert_eq!(s.run(&["check", "-r"]).code, 0);
    let o = s.run(&["check", "-m", "0s", "-r"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(s.ok(&["check"]), "");
}

#[test]
fn damage_in_a_read_only_store_is_reported_and_left_alone() {
    let src = Scratch::new();
    let (layer, image) = image_on_imported_layer(&src, "ro");
    src.ok(&["shutdown"]);
    std::fs::write(file_of(&src, &layer, "a.txt"), b"HELLO").unwrap();
    let records = std::fs::read(
        src.graph()
            .join(format!("{}-layers/layers.json", crate::DRIVER)),
    )
    .unwrap();
    let s = Scratch::new();
    let opt = format!("{}.imagestore={}", crate::DRIVER, src.graph().display());
    let run = |args: &[&str]| {
        let mut full = vec!["--storage-opt", opt.as_str()];
        full.extend_from_slice(args);
        s.run(&full)
    };
    let problem = format!("read-only layer {layer}: file integrity checksum failed for \"a.txt\"");
    let text =
        format!("read-only layer {layer}:\n {problem}\nread-only image {image}:\n {problem}\n");
    let o = run(&["check"]);
    assert_eq!((o.code, o.out()), (1, text.clone()));
    assert_eq!(
        o.stderr,
        "0 layer errors, 1 read-only layer errors, 0 image errors, 1 read-only image errors, 0 container errors\n"
    );
    let o = run(&["check", "-j"]);
    assert_eq!(
        o.out(),
        format!("{{\"Layers\":{{}},\"ROLayers\":{{\"{layer}\":[{{}}]}},\"Images\":{{}},\"ROImages\":{{\"{image}\":[{{}}]}},\"Containers\":{{}}}}\n")
    );
    // Nothing is repaired in a read-only store, and the command says why it fails.
    let o = run(&["check", "-r"]);
    assert_eq!((o.code, o.out()), (1, text.clone()));
    assert_eq!(
        o.stderr,
        "1 read-only layer errors, 1 read-only image errors, 0 container errors\n"
    );
    let o = run(&["check", "-f"]);
    assert_eq!((o.code, o.out()), (1, text));
    assert_eq!(
        o.stderr,
        "1 read-only layer errors, 1 read-only image errors\n"
    );
    assert_eq!(
        std::fs::read(
            src.graph()
                .join(format!("{}-layers/layers.json", crate::DRIVER))
        )
        .unwrap(),
        records
    );
    assert_eq!(
        std::fs::read(file_of(&src, &layer, "a.txt")).unwrap(),
        b"HELLO"
    );
}

#[test]
fn check_rejects_a_bad_duration() {
    let s = Scratch::new();
    let o = s.fails(&["check", "-m", "ten minutes"]);
    assert_eq!(o.stderr, "time: invalid duration \"ten minutes\"\n");
}

#[test]
fn gc_removes_driver_layers_without_records() {
    let s = Scratch::new();
    let l = s.create_layer(&[]);
    s.ok(&["create-storage-layer"]);
    assert_eq!(s.ok(&["storage-layers"]).lines().count(), 2);
    assert_eq!(s.ok(&["gc", "-j"]), "\"\"\n");
    assert_eq!(s.ok(&["storage-layers"]), format!("{l}\n"));
    assert_eq!(s.ok(&["gc"]), "");
}
