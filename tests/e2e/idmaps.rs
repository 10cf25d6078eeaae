//! ID mappings (`--uidmap`, `--gidmap`, ...): owners on disk are host IDs shifted by the
//! layer's mapping, owners in archives are container IDs; a container whose mapping differs
//! from its image's top layer gets a mapped copy of that layer, recorded in the image and
//! reused (upstream's `store.go`, `CreateContainer`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::{first_line, Scratch};

/// Maps container 0..65536 to host 100000.. (UIDs) and 200000.. (GIDs).
const MAPPED: [&str; 4] = ["--uidmap", "0:100000:65536", "--gidmap", "0:200000:65536"];

/// A tar of (path, contents, uid, gid); a path ending in `/` is a directory.
fn owned_tar(entries: &[(&str, &[u8], u64, u64)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, uid, gid) in entries {
        let mut header = tar::Header::new_gnu();
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
        }
        header.set_uid(*uid);
        header.set_gid(*gid);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, path, *data)
            .expect("building a tar");
    }
    builder.into_inner().expect("finishing a tar")
}

/// The sample layer: a directory and two files with different owners.
fn sample_tar() -> Vec<u8> {
    owned_tar(&[
        ("d/", b"", 0, 0),
        ("d/f", b"five", 5, 7),
        ("g", b"root", 0, 0),
    ])
}

/// (uid, gid) of `path`, not following a symlink.
fn owner(path: &Path) -> (u32, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

/// (path, uid, gid) of every entry of an uncompressed tar.
fn tar_owners(data: &[u8]) -> Vec<(String, u64, u64)> {
    let mut archive = tar::Archive::new(data);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect()
}

/// Mounts `name`, runs `f` on the mount point, unmounts.
fn with_mount<T>(s: &Scratch, name: &str, f: impl FnOnce(&Path) -> T) -> T {
    let mp = s.ok(&["mount", name]).trim_end().to_string();
    let result = f(Path::new(&mp));
    s.ok(&["unmount", name]);
    result
}

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

#[test]
fn import_shifts_owners_on_disk_and_keeps_archive_owners() {
    let s = Scratch::new();
    let tar = sample_tar();
    let out = s.ok_with_input(&args(&["import-layer", "-j"], &MAPPED), &tar);
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = record["id"].as_str().unwrap().to_string();
    // uidset/gidset are the archive's owners, in container IDs.
    assert_eq!(record["uidset"], serde_json::json!([0, 5]));
    assert_eq!(record["gidset"], serde_json::json!([0, 7]));
    assert_eq!(
        record["uidmap"],
        serde_json::json!([{"container_id":0,"host_id":100000,"size":65536}])
    );
    with_mount(&s, &id, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (100_005, 200_007));
        assert_eq!(owner(&mp.join("d")), (100_000, 200_000));
        assert_eq!(owner(&mp.join("g")), (100_000, 200_000));
    });
    // The archive comes back as it went in, with container owners.
    let o = s.run(&["diff", "-u", &id]);
    assert_eq!((o.code, o.stdout == tar), (0, true), "{}", o.stderr);
}

#[test]
fn applydiff_into_a_mapped_layer_shifts_owners() {
    let s = Scratch::new();
    let l = s.create_layer(&MAPPED);
    s.ok_with_input(&["applydiff", &l], &sample_tar());
    with_mount(&s, &l, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (100_005, 200_007));
    });
}

#[test]
fn diff_of_a_mapped_layer_gives_container_owners() {
    let s = Scratch::new();
    let l = s.create_layer(&MAPPED);
    with_mount(&s, &l, |mp| {
        std::fs::create_dir(mp.join("sub")).unwrap();
        std::os::unix::fs::lchown(mp.join("sub"), Some(100_000), Some(200_000)).unwrap();
        std::fs::write(mp.join("sub/x"), b"x").unwrap();
        std::os::unix::fs::lchown(mp.join("sub/x"), Some(100_003), Some(200_004)).unwrap();
    });
    let o = s.run(&["diff", "-u", &l]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let owners = tar_owners(&o.stdout);
    assert!(
        owners.contains(&("sub/x".to_string(), 3, 4)),
        "archive owners are container IDs: {owners:?}"
    );
    assert!(
        owners.contains(&("sub".to_string(), 0, 0)) || owners.contains(&("sub/".to_string(), 0, 0)),
        "{owners:?}"
    );
}

#[test]
fn child_with_another_mapping_is_reowned() {
    let s = Scratch::new();
    let parent = s.import_layer(&[], &sample_tar());
    let child = s.create_layer(&args(&MAPPED, &[&parent]));
    with_mount(&s, &child, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (100_005, 200_007));
        assert_eq!(owner(&mp.join("g")), (100_000, 200_000));
    });
    // The parent keeps its owners.
    with_mount(&s, &parent, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (5, 7));
    });
}

/// The `mapped-layers` of an image.
fn mapped_layers(s: &Scratch, image: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "-j", image])).unwrap();
    v[0]["mapped-layers"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The parent of a container's layer.
fn container_parent(s: &Scratch, container: &str) -> String {
    let c: serde_json::Value =
        serde_json::from_str(&s.ok(&["container", "-j", container])).unwrap();
    let layer = c[0]["layer"].as_str().unwrap().to_string();
    let l: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &layer])).unwrap();
    l[0]["parent"].as_str().unwrap_or_default().to_string()
}

#[test]
fn container_with_a_mapping_gets_a_mapped_top_layer_that_is_reused() {
    let s = Scratch::new();
    let tar = sample_tar();
    let top = s.import_layer(&[], &tar);
    let img = first_line(&s.ok(&["create-image", "-n", "img", &top]));
    assert!(mapped_layers(&s, &img).is_empty());

    let c1 = first_line(&s.ok(&args(&["create-container"], &args(&MAPPED, &[&img]))));
    let mapped = mapped_layers(&s, &img);
    assert_eq!(mapped.len(), 1, "one mapped copy");
    assert_ne!(mapped[0], top);
    assert_eq!(container_parent(&s, &c1), mapped[0]);
    // The copy has the container's mapping, the top layer's digests, and its files are
    // owned for that mapping.
    let m: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &mapped[0]])).unwrap();
    let t: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &top])).unwrap();
    assert_eq!(m[0]["uidmap"][0]["host_id"], 100_000);
    assert_eq!(m[0]["gidmap"][0]["host_id"], 200_000);
    assert_eq!(m[0]["diff-digest"], t[0]["diff-digest"]);
    assert_eq!(m[0]["uidset"], t[0]["uidset"]);
    with_mount(&s, &c1, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (100_005, 200_007));
        assert_eq!(owner(&mp.join("g")), (100_000, 200_000));
    });
    with_mount(&s, &top, |mp| assert_eq!(owner(&mp.join("d/f")), (5, 7)));
    // Its archive is the image layer's, container owners and all.
    let o = s.run(&["diff", "-u", &mapped[0]]);
    assert_eq!((o.code, o.stdout == tar), (0, true), "{}", o.stderr);

    // `image` shows both top layers; `layers` ties the copy to the image.
    let text = s.ok(&["image", &img]);
    assert!(text.contains(&format!("Top Layer: {top}\n")), "{text}");
    assert!(
        text.contains(&format!("Top Layer: {}\n", mapped[0])),
        "{text}"
    );
    let layers = s.ok(&["layers"]);
    assert!(
        layers.contains(&format!("{}\n\timage: {img}\n", mapped[0])),
        "{layers}"
    );

    // The same mapping again reuses the copy; another makes a second; none uses the top.
    let c2 = first_line(&s.ok(&args(&["create-container"], &args(&MAPPED, &[&img]))));
    assert_eq!(container_parent(&s, &c2), mapped[0]);
    assert_eq!(mapped_layers(&s, &img), mapped);
    let c3 = first_line(&s.ok(&[
        "create-container",
        "--uidmap",
        "0:300000:65536",
        "--gidmap",
        "0:300000:65536",
        &img,
    ]));
    let two = mapped_layers(&s, &img);
    assert_eq!(two.len(), 2);
    assert_eq!(container_parent(&s, &c3), two[1]);
    with_mount(&s, &c3, |mp| {
        assert_eq!(owner(&mp.join("d/f")), (300_005, 300_007));
    });
    let c4 = first_line(&s.ok(&["create-container", &img]));
    assert_eq!(container_parent(&s, &c4), top);

    // A mapped copy is the image's: it cannot be deleted alone, and goes with the image.
    for c in [&c1, &c2, &c3, &c4] {
        s.ok(&["delete-container", c]);
    }
    let o = s.fails(&["delete-layer", &two[0]]);
    assert!(o.stderr.contains("in use by an image"), "{o:?}");
    let o = s.run(&["delete-image", &img]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(s.ok(&["layers", "-q"]), "");
}

#[test]
fn parent_owners_of_mapped_layers_and_containers() {
    let s = Scratch::new();
    // Without a mapping nothing can be unmapped: no mount needed, nothing listed.
    let plain = s.create_layer(&[]);
    assert_eq!(
        s.ok(&["layer-parent-owners", &plain]),
        format!("ID: {plain}\n")
    );
    assert_eq!(
        s.ok(&["layer-parent-owners", "-j", &plain]),
        format!("{{\"ID\":\"{plain}\",\"UIDs\":null,\"GIDs\":null}}\n")
    );
    // The directories above a mapped layer's mount point are root's, which the mapping
    // does not cover.
    let mapped = s.create_layer(&MAPPED);
    let o = s.fails(&["layer-parent-owners", &mapped]);
    assert_eq!(o.stderr, "LayerParentOwner: layer is not mounted\n");
    s.ok(&["mount", &mapped]);
    assert_eq!(
        s.ok(&["layer-parent-owners", &mapped]),
        format!("ID: {mapped}\nUIDs: [0]\nGIDs: [0]\n")
    );
    assert_eq!(
        s.ok(&["layer-parent-owners", "-j", &mapped]),
        format!("{{\"ID\":\"{mapped}\",\"UIDs\":[0],\"GIDs\":[0]}}\n")
    );
    s.ok(&["unmount", &mapped]);

    let top = s.import_layer(&[], &sample_tar());
    let img = first_line(&s.ok(&["create-image", &top]));
    let ctr = first_line(&s.ok(&args(&["create-container"], &args(&MAPPED, &[&img]))));
    let o = s.fails(&["container-parent-owners", &ctr]);
    assert_eq!(o.stderr, "ContainerParentOwner: layer is not mounted\n");
    s.ok(&["mount", &ctr]);
    assert_eq!(
        s.ok(&["container-parent-owners", &ctr]),
        format!("ID: {ctr}\nUIDs: [0]\nGIDs: [0]\n")
    );
    s.ok(&["unmount", &ctr]);
}

/// What a store shows after the mapped-top-layer script: mapped copies per image after each
/// container, the owner of a file in the last container, and `container-parent-owners`.
fn mapped_script(s: &Scratch) -> (Vec<usize>, (u32, u32), String) {
    let top = s.import_layer(&[], &sample_tar());
    let img = first_line(&s.ok(&["create-image", &top]));
    let mut counts = Vec::new();
    let mut last = String::new();
    for mapping in [
        &MAPPED[..],
        &MAPPED[..],
        &["--uidmap", "0:300000:65536", "--gidmap", "0:300000:65536"][..],
    ] {
        last = first_line(&s.ok(&args(&["create-container"], &args(mapping, &[&img]))));
        counts.push(mapped_layers(s, &img).len());
    }
    let mp = s.ok(&["mount", &last]).trim_end().to_string();
    let owner = owner(&Path::new(&mp).join("d/f"));
    let parents = s
        .ok(&["container-parent-owners", "-j", &last])
        .replace(&last, "CTR");
    s.ok(&["unmount", &last]);
    (counts, owner, parents)
}

#[test]
fn go_agrees_on_mapped_top_layers() {
    // Go 1.43 on overlay shifts at mount time (idmapped mounts) where we copy; on vfs both copy.
    if crate::DRIVER != "vfs" {
        eprintln!("go_agrees_on_mapped_top_layers: needs the vfs suite; skipped");
        return;
    }
    let Some(go_cli) = crate::harness::reference_binary() else {
        return;
    };
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "vfs");
    let expected = (
        vec![1, 1, 2],
        (300_005, 300_007),
        "{\"ID\":\"CTR\",\"UIDs\":[0],\"GIDs\":[0]}\n".to_string(),
    );
    assert_eq!(mapped_script(&go), expected, "Go");
    assert_eq!(mapped_script(&ours), expected, "ours");
}

#[test]
fn copy_carries_owners_through_the_mappings() {
    let s = Scratch::new();
    let from = s.import_layer(
        &args(
            &["--uidmap", "0:100000:65536"],
            &["--gidmap", "0:100000:65536"],
        ),
        &sample_tar(),
    );
    let to = s.create_layer(&MAPPED);
    s.ok(&["copy", &format!("{from}:/d/f"), &format!("{to}:/f")]);
    with_mount(&s, &to, |mp| {
        // Container 5:7 in the source is container 5:7 in the target, shifted for it.
        assert_eq!(owner(&mp.join("f")), (100_005, 200_007));
    });
    let plain = s.create_layer(&[]);
    s.ok(&["copy", &format!("{from}:/d/f"), &format!("{plain}:/f")]);
    with_mount(&s, &plain, |mp| assert_eq!(owner(&mp.join("f")), (5, 7)));
    // --chown names container IDs, shifted by the target's mapping (as Go's 1.43 does).
    let host_file = s.dir().join("hostfile");
    std::fs::write(&host_file, b"h").unwrap();
    s.ok(&[
        "copy",
        "--chown",
        "5:7",
        &host_file.display().to_string(),
        &format!("{to}:/c"),
    ]);
    with_mount(&s, &to, |mp| {
        assert_eq!(owner(&mp.join("c")), (100_005, 200_007))
    });
}
