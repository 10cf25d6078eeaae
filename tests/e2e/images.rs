//! Image commands: create-image, images, images-by-digest, image, delete-image,
//! get-image-dir.

use crate::harness::{id, Scratch};

#[test]
fn create_and_list_images() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("layer")]);
    let img = id("img");
    let digest = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        s.ok(&[
            "create-image",
            "--id",
            &img,
            "-n",
            "img1",
            "--name",
            "img2",
            "-d",
            &digest,
            &l
        ]),
        format!("{img}\n\timg1\n\timg2\n")
    );
    assert_eq!(
        s.ok(&["images"]),
        format!("{img}\n\tname: img1\n\tname: img2\n\tdigest: {digest}\n")
    );
    assert_eq!(s.ok(&["images", "-q"]), format!("{img}\n"));
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["images", "-j"])).unwrap();
    assert_eq!(v[0]["id"], img);
    assert_eq!(v[0]["layer"], l);
    assert_eq!(v[0]["digest"], digest);
    let text = s.ok(&["image", "img1"]);
    assert!(
        text.starts_with(&format!(
            "ID: {img}\nName: img1\nName: img2\nTop Layer: {l}\nDigest: {digest}\n"
        )),
        "{text}"
    );
    assert!(text.lines().last().unwrap().starts_with("Size"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "-j", &img])).unwrap();
    assert_eq!(v[0]["names"], serde_json::json!(["img1", "img2"]));
}

#[test]
fn images_by_digest() {
    let s = Scratch::new();
    let digest = format!("sha256:{}", "cd".repeat(32));
    let img = id("bydigest");
    s.ok(&["create-image", "--id", &img, "--digest", &digest]);
    assert_eq!(
        s.ok(&["images-by-digest", "-q", &digest]),
        format!("{img}\n")
    );
    let other = format!("sha256:{}", "ef".repeat(32));
    assert_eq!(s.ok(&["images-by-digest", &other]), "");
    // Upstream 1.60 prints go-digest's error alone.
    let o = s.fails(&["images-by-digest", "not-a-digest"]);
    assert_eq!(o.stderr, "invalid checksum digest format\n", "{o:?}");
}

#[test]
fn layerless_image_and_metadata() {
    let s = Scratch::new();
    let img = id("nolayer");
    s.ok(&["create-image", "--id", &img, "-m", "some metadata"]);
    assert_eq!(s.ok(&["metadata", &img]), format!("{img}: some metadata\n"));
    let file = s.dir().join("md");
    std::fs::write(&file, "from a file\n").unwrap();
    let img2 = id("mdfile");
    s.ok(&[
        "create-image",
        "--id",
        &img2,
        "-f",
        &file.display().to_string(),
    ]);
    assert_eq!(s.ok(&["metadata", "-q", &img2]), "from a file\n");
}

#[test]
fn create_image_errors() {
    let s = Scratch::new();
    let o = s.fails(&["create-image", "no-such-layer"]);
    assert_eq!(o.stderr, "layer not known\n");
    let img = id("taken");
    s.ok(&["create-image", "--id", &img, "-n", "name"]);
    assert_eq!(
        s.fails(&["create-image", "--id", &img]).stderr,
        "that ID is already in use\n"
    );
    assert_eq!(
        s.fails(&["create-image", "-n", "name"]).stderr,
        format!(
            "image name \"name\" is already associated with image \"{img}\": that name is \
             already in use\n"
        )
    );
}

#[test]
fn delete_image_reports_layers_on_stderr_and_refuses_used_images() {
    let s = Scratch::new();
    let base = s.create_layer(&["--id", &id("base")]);
    let top = s.create_layer(&["--id", &id("top"), &base]);
    let img = id("delimg");
    s.ok(&["create-image", "--id", &img, "-n", "victim", &top]);
    let ctr = id("user");
    s.ok(&["create-container", "--id", &ctr, &img]);
    let o = s.fails(&["delete-image", "victim"]);
    assert_eq!(
        o.stderr,
        format!("victim: image used by {ctr}: image is in use by a container\n")
    );
    s.ok(&["delete-container", &ctr]);

    // -t computes without deleting.
    let o = s.run(&["delete-image", "-t", "victim"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(s.ok(&["images", "-q"]), format!("{img}\n"));

    let o = s.run(&["delete-image", "victim"]);
    assert_eq!((o.code, o.out().as_str()), (0, ""), "{o:?}");
    let mut reported: Vec<&str> = o.stderr.lines().collect();
    reported.sort_unstable();
    let mut expected = vec![format!("victim: {base}"), format!("victim: {top}")];
    expected.sort();
    assert_eq!(reported, expected);
    assert_eq!(s.ok(&["images", "-j"]), "null\n");
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
}

#[test]
fn delete_image_json() {
    let s = Scratch::new();
    let img = id("jimg");
    s.ok(&["create-image", "--id", &img]);
    let o = s.run(&["delete-image", "-j", &img, "missing"]);
    assert_eq!(o.code, 1);
    let v = o.json();
    // Upstream's omitempty: a layerless image deleted without error is `{}`.
    assert_eq!(v[&img], serde_json::json!({}));
    assert_eq!(
        v["missing"],
        serde_json::json!({"error": "identifier is not an image"})
    );
}

#[test]
fn image_dirs_use_the_argument_verbatim() {
    let s = Scratch::new();
    // Spec quirk 2: no lookup, unknown images succeed and get a directory.
    let out = s.ok(&["get-image-dir", "whatever"]);
    let expected = s
        .graph()
        .join(format!("{}-images/whatever/userdata", crate::DRIVER));
    assert_eq!(out, format!("{}\n", expected.display()));
    assert!(expected.is_dir());
    let out = s.ok(&["get-image-run-dir", "whatever"]);
    let expected = s
        .run_root()
        .join(format!("{}-images/whatever/userdata", crate::DRIVER));
    assert_eq!(out, format!("{}\n", expected.display()));
    assert!(expected.is_dir());
}
