//! Names, metadata and existence: get/add/remove/set-names, metadata, set-metadata, exists.

use crate::harness::{id, Scratch};

#[test]
fn names_commands() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("named"), "-n", "first"]);
    assert_eq!(s.ok(&["get-names", &l]), "first\n");
    assert_eq!(
        s.ok(&["add-names", "-n", "second", "-n", "third", "first"]),
        ""
    );
    // Upstream 1.60 puts the added names first.
    assert_eq!(s.ok(&["get-names", &l]), "second\nthird\nfirst\n");
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["remove-names", "-j", "-n", "second", &l])).unwrap();
    assert_eq!(v, serde_json::json!(["third", "first"]));
    assert_eq!(s.ok(&["setnames", "-n", "only", &l]), "");
    assert_eq!(s.ok(&["getnames", "-j", &l]), "[\"only\"]\n");
    assert_eq!(s.fails(&["get-names", "nope"]).stderr, "layer not known\n");
}

/// Names and names-history of layers, images and containers after add/remove/set-names
/// equal the reference binary's (1.60 puts added names first; 1.43 appended them).
#[test]
fn name_operations_order_like_the_reference() {
    let Some(reference) = crate::harness::reference_binary() else {
        eprintln!("no reference containers-storage; skipped");
        return;
    };
    let script = |s: &Scratch| -> Vec<String> {
        let l = s.create_layer(&["--id", &id("order-layer"), "-n", "l1"]);
        s.ok(&["create-image", "--id", &id("order-image"), "-n", "i1", &l]);
        s.ok(&[
            "create-container",
            "--id",
            &id("order-ctr"),
            "-n",
            "ctr1",
            "i1",
        ]);
        let mut seen = Vec::new();
        // Names that no hexadecimal ID starts with: a name is also looked up as an ID prefix,
        // layers first (upstream's `updateNames`), so `c1` renamed, one run in 128, the
        // container's layer whose random ID began with it, in either implementation.
        for target in ["l1", "i1", "ctr1"] {
            let new = format!("{target}-new");
            let other = format!("{target}-other");
            s.ok(&["add-names", "-n", &new, "-n", &other, target]);
            seen.push(s.ok(&["get-names", &new]));
            s.ok(&["remove-names", "-n", &other, &new]);
            seen.push(s.ok(&["get-names", &new]));
            s.ok(&["set-names", "-n", &other, "-n", &new, &new]);
            seen.push(s.ok(&["get-names", &new]));
        }
        let image: serde_json::Value =
            serde_json::from_str(&s.ok(&["image", "-j", "i1-new"])).unwrap();
        seen.push(image["names-history"].to_string());
        seen
    };
    let ours = script(&Scratch::new());
    let theirs = script(&Scratch::with_binary(&reference, crate::DRIVER));
    assert_eq!(ours, theirs);
}

#[test]
fn adding_a_taken_name_moves_it() {
    let s = Scratch::new();
    let a = s.create_layer(&["-n", "shared"]);
    let b = s.create_layer(&[]);
    s.ok(&["add-names", "-n", "shared", &b]);
    assert_eq!(s.ok(&["get-names", &a]), "");
    assert_eq!(s.ok(&["get-names", &b]), "shared\n");
}

#[test]
fn metadata_commands() {
    let s = Scratch::new();
    let img = id("md");
    s.ok(&["create-image", "--id", &img, "-n", "mdimg", "-m", "line\n"]);
    assert_eq!(s.ok(&["metadata", "mdimg"]), "mdimg: line\n");
    assert_eq!(s.ok(&["metadata", "-q", "mdimg"]), "line\n");
    assert_eq!(s.ok(&["metadata", "-j", "mdimg"]), "{\"mdimg\":\"line\"}\n");
    let o = s.fails(&["metadata", "mdimg", "nope"]);
    assert_eq!(o.out(), "mdimg: line\nnope: \n");
    let o = s.fails(&["set-metadata", &img]);
    assert_eq!(o.stderr, "no new metadata provided\n");
    s.ok(&["set-metadata", "-m", "new value", &img]);
    assert_eq!(s.ok(&["metadata", "-q", &img]), "new value\n");
    let f = s.dir().join("m");
    std::fs::write(&f, "file value").unwrap();
    s.ok(&["set-metadata", "-f", &f.display().to_string(), &img]);
    assert_eq!(s.ok(&["metadata", "-q", &img]), "file value\n");
}

#[test]
fn exists_semantics() {
    let s = Scratch::new();
    let l = s.create_layer(&["-n", "lay"]);
    assert_eq!(s.ok(&["exists", "lay"]), "lay: true\n");
    assert_eq!(s.ok(&["exists", "-l", &l]), format!("{l}: true\n"));
    let o = s.fails(&["exists", "nope"]);
    assert_eq!(o.out(), "nope: false\n");
    // Spec quirk 3: the printed value ignores -i, the status does not.
    let o = s.fails(&["exists", "-i", "lay"]);
    assert_eq!(o.out(), "lay: true\n");
    let o = s.fails(&["exists", "-c", "lay"]);
    assert_eq!(o.out(), "lay: true\n");
    let o = s.fails(&["exists", "-j", "lay", "nope"]);
    assert_eq!(o.json(), serde_json::json!({"lay": true, "nope": false}));
    let o = s.fails(&["exists", "-q", "nope"]);
    assert_eq!(o.out(), "");
    assert_eq!(s.ok(&["exists", "-q", "lay"]), "");
}
