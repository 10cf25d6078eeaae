//! Mount commands: mount, mounted, unmount, shutdown; real overlay mounts.

use std::path::Path;

use crate::harness::{id, tar_of, Scratch};

#[test]
fn mount_mounted_unmount() {
    if !crate::harness::overlay_only("mount_mounted_unmount") {
        return;
    }
    let s = Scratch::new();
    let l = s.import_layer(
        &["--id", &id("m"), "-n", "ml"],
        &tar_of(&[("hello.txt", b"hi")]),
    );
    let out = s.ok(&["mount", "ml"]);
    let mp = out.trim_end_matches('\n').to_string();
    assert_eq!(out, format!("{mp}\n"));
    assert!(
        crate::harness::is_mountpoint(&mp),
        "{mp} is not a mount point"
    );
    assert_eq!(
        std::fs::read(Path::new(&mp).join("hello.txt")).unwrap(),
        b"hi"
    );
    assert_eq!(s.ok(&["mounted", &l]), format!("{l} mounted\n"));
    assert!(s.ok(&["layers", "-t"]).contains(&format!("mount: {mp}\n")));

    // A second mount only counts; the first unmount keeps it mounted.
    assert_eq!(s.ok(&["mount", &l]), format!("{mp}\n"));
    assert_eq!(s.ok(&["unmount", &l]), "");
    assert!(crate::harness::is_mountpoint(&mp));
    assert_eq!(s.ok(&["umount", "ml"]), "ml mountpoint unmounted\n");
    assert!(!crate::harness::is_mountpoint(&mp));
    assert_eq!(s.ok(&["mounted", &l]), "");
}

#[test]
fn mount_errors_and_json() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("mj")]);
    let o = s.fails(&["mount", "nope"]);
    assert_eq!(o.out(), "\n");
    assert_eq!(o.stderr, "layer not known while mounting nope\n");
    let o = s.run(&["mount", "-j", &l]);
    assert_eq!(o.code, 0, "{o:?}");
    let v = o.json();
    assert_eq!(v[0]["id"], l);
    assert_eq!(v[0]["error"], "");
    assert!(!v[0]["mountpoint"].as_str().unwrap().is_empty());
    // -o is accepted and ignored, as upstream; --option is not a flag.
    assert_eq!(
        s.ok(&["mount", "-o", "ro", &l]),
        format!("{}\n", v[0]["mountpoint"].as_str().unwrap())
    );
    assert_eq!(s.run(&["mount", "--option", "ro", &l]).code, 125);
    let o = s.fails(&["unmount", "nope"]);
    assert!(o.stderr.ends_with(" while unmounting nope\n"), "{o:?}");
}

#[test]
fn shutdown_refuses_while_mounted_unless_forced() {
    let s = Scratch::new();
    let l = s.create_layer(&[]);
    let mp = s.ok(&["mount", &l]);
    let o = s.fails(&["shutdown"]);
    assert_eq!(
        o.stderr,
        "shutdown: a layer is mounted: layer is in use by a container\n"
    );
    assert_eq!(s.ok(&["shutdown", "-f", "-j"]), "\"\"\n");
    assert!(!crate::harness::is_mountpoint(mp.trim_end()));
    assert_eq!(s.ok(&["shutdown"]), "");
}

#[test]
fn writes_through_a_container_mount_show_in_changes() {
    let s = Scratch::new();
    let base = s.import_layer(&[], &tar_of(&[("etc/", b""), ("etc/os", b"base")]));
    let img = id("wimg");
    s.ok(&["create-image", "--id", &img, &base]);
    let ctr = s.ok(&["create-container", &img]).trim().to_string();
    let mp = s.ok(&["mount", &ctr]).trim_end().to_string();
    std::fs::write(Path::new(&mp).join("new-file"), b"new").unwrap();
    std::fs::remove_file(Path::new(&mp).join("etc/os")).unwrap();
    assert_eq!(
        s.ok(&["unmount", &ctr]),
        format!("{ctr} mountpoint unmounted\n")
    );
    let layer = serde_json::from_str::<serde_json::Value>(&s.ok(&["container", "-j", &ctr]))
        .unwrap()[0]["layer"]
        .as_str()
        .unwrap()
        .to_string();
    let changes = s.ok(&["changes", &layer]);
    let mut lines: Vec<&str> = changes.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["Add \"/new-file\"", "Delete \"/etc/os\"", "Modify \"/etc\""]
    );
}

#[test]
fn mount_image_read_only() {
    if !crate::harness::overlay_only("mount_image_read_only") {
        return;
    }
    let s = Scratch::new();
    let l = s.import_layer(&[], &tar_of(&[("f", b"x")]));
    let img = id("roimg");
    s.ok(&["create-image", "--id", &img, &l]);
    let mp = s.ok(&["mount", "-r", &img]).trim_end().to_string();
    assert_eq!(std::fs::read(Path::new(&mp).join("f")).unwrap(), b"x");
    assert!(std::fs::write(Path::new(&mp).join("g"), b"y").is_err());
    s.ok(&["unmount", &img]);
}

#[test]
fn layer_parent_owners_needs_a_mount() {
    let s = Scratch::new();
    let p = s.import_layer(&[], &tar_of(&[("f", b"x")]));
    let c = s.create_layer(&["--uidmap", "0:1000:10", "--gidmap", "0:1000:10", &p]);
    let o = s.fails(&["layer-parent-owners", &c]);
    assert_eq!(o.stderr, "LayerParentOwner: layer is not mounted\n");
    s.ok(&["mount", &c]);
    let text = s.ok(&["layer-parent-owners", &c]);
    assert!(text.starts_with(&format!("ID: {c}\n")), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["layer-parent-owners", "-j", &c])).unwrap();
    assert_eq!(v["ID"], c);
    assert!(v["UIDs"].is_array() && v["GIDs"].is_array(), "{v}");
    s.ok(&["unmount", &c]);
}
