//! Store maintenance: storage-layers, create-storage-layer, check, gc.

use crate::harness::{id, Scratch};

const CLEAN: &str =
    "{\"Layers\":{},\"ROLayers\":{},\"Images\":{},\"ROImages\":{},\"Containers\":{}}\n";

#[test]
fn storage_layers_lists_driver_layers() {
    let s = Scratch::new();
    assert_eq!(s.ok(&["storage-layers"]), "");
    let l = s.create_layer(&["--id", &id("rec")]);
    let d = id("driveronly");
    assert_eq!(s.ok(&["create-storage-layer", "-i", &d]), format!("{d}\n"));
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
    let o = s.fails(&["check", "-q"]);
    assert_eq!(
        o.out(),
        format!("layer {stray}:\n layer in lower level storage driver not accounted for\n")
    );
    assert_eq!(
        o.stderr,
        "1 layer errors, 0 read-only layer errors, 0 image errors, 0 read-only image errors, 0 container errors\n"
    );
    let o = s.fails(&["check", "-j"]);
    assert_eq!(
        o.out(),
        format!("{{\"Layers\":{{\"{stray}\":[{{}}]}},\"ROLayers\":{{}},\"Images\":{{}},\"ROImages\":{{}},\"Containers\":{{}}}}\n")
    );
    // Repair still prints what it found, and succeeds.
    let o = s.run(&["check", "-r"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.out().starts_with(&format!("layer {stray}:\n")));
    assert_eq!(s.ok(&["check"]), "");
    assert_eq!(s.ok(&["storage-layers"]), format!("{l}\n"));
    assert_eq!(s.ok(&["images", "-q"]), format!("{img}\n"));
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
