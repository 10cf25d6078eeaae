//! Layer commands: create-layer, layers (text, -q, -j, -t), layer, delete-layer.

use crate::harness::{id, Scratch};

#[test]
fn empty_store_lists_nothing_and_json_null() {
    let s = Scratch::new();
    assert_eq!(s.ok(&["layers"]), "");
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
    assert_eq!(s.ok(&["images", "-j"]), "null\n");
    assert_eq!(s.ok(&["containers", "-j"]), "[]\n");
}

#[test]
fn create_layer_prints_id_and_names() {
    let s = Scratch::new();
    let l = id("base");
    assert_eq!(
        s.ok(&["create-layer", "--id", &l, "-n", "base", "-n", "alias"]),
        format!("{l}\n\tbase\n\talias\n")
    );
    assert_eq!(
        s.ok(&["layers"]),
        format!("{l}\n\tname: base\n\tname: alias\n")
    );
    assert_eq!(s.ok(&["layers", "-q"]), format!("{l}\n"));
    let v = serde_json::from_str::<serde_json::Value>(&s.ok(&["layers", "-j"])).unwrap();
    assert_eq!(v[0]["id"], l);
    assert_eq!(v[0]["names"], serde_json::json!(["base", "alias"]));
}

#[test]
fn create_layer_json_and_generated_id() {
    let s = Scratch::new();
    let out = s.ok(&["create-layer", "-j"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let generated = v["id"].as_str().unwrap();
    assert_eq!(generated.len(), 64);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(out.ends_with("}\n"));
}

#[test]
fn layer_shows_parent_names_and_mappings() {
    let s = Scratch::new();
    let p = s.create_layer(&["--id", &id("p"), "-n", "parent"]);
    let c = s.create_layer(&[
        "--id",
        &id("c"),
        "-n",
        "child",
        "--uidmap",
        "0:1000:10:10:5000:5",
        "--gidmap",
        "0:2000:15",
        &p,
    ]);
    assert_eq!(
        s.ok(&["layer", &c]),
        format!(
            "ID: {c}\nUID mapping: (container=0, host=1000, size=10)\nUID mapping: (container=10, host=5000, size=5)\nGID mapping: (container=0, host=2000, size=15)\nParent: {p}\nName: child\n"
        )
    );
    // By name, and several at once, in argument order.
    assert_eq!(
        s.ok(&["layer", "parent"]),
        format!("ID: {p}\nName: parent\n")
    );
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["layer", "-j", "child", "parent"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["parent"], p);
    // An unknown name: exit 1, nothing printed for it, no message.
    let o = s.run(&["layer", "nope"]);
    assert_eq!((o.code, o.out().as_str(), o.stderr.as_str()), (1, "", ""));
    assert_eq!(s.run(&["layer", "-j", "nope"]).out(), "[]\n");
}

#[test]
fn empty_parent_argument_means_no_parent() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("np"), ""]);
    assert_eq!(s.ok(&["layer", &l]), format!("ID: {l}\n"));
}

#[test]
fn create_layer_errors() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("dup"), "-n", "taken"]);
    let o = s.fails(&["create-layer", "--id", &l]);
    assert_eq!(o.stderr, "that ID is already in use\n");
    let o = s.fails(&["create-layer", "-n", "taken"]);
    assert_eq!(o.stderr, "that name is already in use\n");
    let o = s.fails(&["create-layer", "no-such-parent"]);
    assert_eq!(o.stderr, "layer not known\n");
    let o = s.fails(&["create-layer", "--hostuidmap", "--uidmap", "0:1:1"]);
    assert_eq!(o.stderr, "host uid map specified along with UID mapping\n");
    // Failed creations leave nothing behind.
    assert_eq!(s.ok(&["layers", "-q"]), format!("{l}\n"));
}

#[test]
fn layers_tree() {
    let s = Scratch::new();
    let a = s.create_layer(&["--id", &id("a"), "-n", "lay1"]);
    let b = s.create_layer(&["--id", &id("b"), &a]);
    let c = s.create_layer(&["--id", &id("c"), "-n", "second", &a]);
    let img = id("img");
    s.ok(&["create-image", "--id", &img, "-n", "img1", &c]);
    let d = s.create_layer(&["--id", &id("d"), &c]);
    let expected = format!(
        "(base)\n└─{a}\n  name: lay1\n  ├─{b}\n  └─{c}\n    name: second\n    image: {img}\n    image name: img1\n    └─{d}\n"
    );
    assert_eq!(s.ok(&["layers", "-t"]), expected);
    assert_eq!(s.ok(&["layers", "--tree"]), expected);
}

#[test]
fn layers_listing_shows_images_and_containers() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("top")]);
    let img = id("image");
    s.ok(&["create-image", "--id", &img, "-n", "myimage", &l]);
    let ctr = id("ctr");
    s.ok(&["create-container", "--id", &ctr, "-n", "myctr", &img]);
    let text = s.ok(&["layers"]);
    assert!(
        text.starts_with(&format!("{l}\n\timage: {img}\n\t\tname: myimage\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\tcontainer: {ctr}\n\t\tname: myctr\n")),
        "{text}"
    );
}

#[test]
fn delete_layer_checks_children_even_by_name() {
    let s = Scratch::new();
    let p = s.create_layer(&["--id", &id("parent"), "-n", "parentname"]);
    let c = s.create_layer(&["--id", &id("child"), &p]);
    // Spec quirk 1, fixed: by name the child check still applies.
    let o = s.fails(&["delete-layer", "parentname"]);
    assert_eq!(
        o.stderr,
        format!("parentname: used by layer {c}: layer has children\n")
    );
    let o = s.fails(&["delete-layer", &p]);
    assert!(o.stderr.contains("layer has children"), "{o:?}");
    s.ok(&["delete-layer", &c]);
    s.ok(&["delete-layer", "parentname"]);
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
}

#[test]
fn delete_layer_json_reports_each_argument() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("x")]);
    let o = s.run(&["delete-layer", "-j", &l, "nope"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.json(),
        serde_json::json!({ l.clone(): "", "nope": "identifier is not a layer" })
    );
}

#[test]
fn delete_layer_refuses_image_and_container_layers() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("il")]);
    let img = id("im");
    s.ok(&["create-image", "--id", &img, &l]);
    let o = s.fails(&["delete-layer", &l]);
    assert!(o.stderr.starts_with(&format!("{l}: ")), "{o:?}");
    // delete has no safety checks.
    s.ok(&["delete", &img]);
    s.ok(&["delete", &l]);
    assert_eq!(s.ok(&["layers", "-q"]), "");
}

#[test]
fn wipe_removes_everything() {
    let s = Scratch::new();
    let l = s.create_layer(&[]);
    let img = s.ok(&["create-image", &l]);
    let img = img.trim();
    s.ok(&["create-container", img]);
    s.ok(&["wipe"]);
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
    assert_eq!(s.ok(&["images", "-j"]), "null\n");
    assert_eq!(s.ok(&["containers", "-j"]), "[]\n");
}

#[test]
fn tree_shows_orphans_under_their_missing_parent() {
    let s = Scratch::new();
    let p = s.create_layer(&["--id", &id("gone")]);
    let c = s.create_layer(&["--id", &id("orphan"), "-n", "o", &p]);
    // delete has no safety checks: the child is orphaned.
    s.ok(&["delete", &p]);
    assert_eq!(s.ok(&["layers", "-t"]), format!("{p}\n└─{c}\n  name: o\n"));
}
