//! Big data: list/get/set-{layer,image,container}-data, sizes and digests.

use sha2::{Digest, Sha256};

use crate::harness::{id, Scratch};

#[test]
fn image_data_round_trip_with_size_and_digest() {
    let s = Scratch::new();
    let img = id("dataimg");
    s.ok(&["create-image", "--id", &img]);
    let payload = b"{\"schemaVersion\":2}\n\x00binary\xff";
    s.ok_with_input(&["set-image-data", &img, "manifest"], payload);
    s.ok_with_input(&["set-image-data", &img, "config"], b"cfg");
    assert_eq!(s.ok(&["list-image-data", &img]), "manifest\nconfig\n");
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["list-image-data", "-j", &img])).unwrap();
    assert_eq!(v, serde_json::json!(["manifest", "config"]));
    let o = s.run(&["get-image-data", &img, "manifest"]);
    assert_eq!((o.code, o.stdout.as_slice()), (0, payload.as_slice()));
    assert_eq!(
        s.ok(&["get-image-data-size", &img, "manifest"]),
        format!("{}\n", payload.len())
    );
    let digest = format!("sha256:{:x}", Sha256::digest(payload));
    assert_eq!(
        s.ok(&["get-image-data-digest", &img, "manifest"]),
        format!("{digest}\n")
    );
    assert!(s
        .ok(&["images"])
        .contains("\tdata: manifest\n\tdata: config\n"));
    let o = s.fails(&["get-image-data", &img, "missing"]);
    assert!(!o.stderr.is_empty());
}

#[test]
fn layer_data_through_files() {
    let s = Scratch::new();
    let l = s.create_layer(&["-n", "withdata"]);
    let input = s.dir().join("in");
    let output = s.dir().join("out");
    std::fs::write(&input, b"layer data").unwrap();
    s.ok(&[
        "set-layer-data",
        "-f",
        &input.display().to_string(),
        "withdata",
        "key",
    ]);
    assert_eq!(s.ok(&["list-layer-data", &l]), "key\n");
    assert_eq!(
        s.ok(&[
            "get-layer-data",
            "-f",
            &output.display().to_string(),
            &l,
            "key"
        ]),
        ""
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"layer data");
}

#[test]
fn container_data() {
    let s = Scratch::new();
    let img = id("ci");
    s.ok(&["create-image", "--id", &img]);
    let ctr = s.ok(&["create-container", &img]);
    let ctr = ctr.trim();
    s.ok_with_input(&["set-container-data", ctr, "state"], b"running");
    assert_eq!(s.ok(&["list-container-data", ctr]), "state\n");
    assert_eq!(s.ok(&["get-container-data", ctr, "state"]), "running");
    assert_eq!(s.ok(&["get-container-data-size", ctr, "state"]), "7\n");
    let digest = format!("sha256:{:x}", Sha256::digest(b"running"));
    assert_eq!(
        s.ok(&["get-container-data-digest", ctr, "state"]),
        format!("{digest}\n")
    );
    assert!(s.ok(&["containers"]).contains("\tdata: state\n"));
    assert!(s
        .fails(&["list-container-data", "nope"])
        .stderr
        .contains("container not known"));
}
