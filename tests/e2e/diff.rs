//! Layer content: import-layer, changes, diffsize, diff, applydiff.

use crate::harness::{gzip, id, tar_names, tar_of, Scratch};

#[test]
fn import_layer_and_changes() {
    let s = Scratch::new();
    let tar = tar_of(&[("dir/", b""), ("dir/a", b"aaaa"), ("b", b"bb")]);
    let l = s.import_layer(&["--id", &id("imp"), "-n", "imported"], &tar);
    let changes = s.ok(&["changes", "imported"]);
    let mut lines: Vec<&str> = changes.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["Add \"/b\"", "Add \"/dir\"", "Add \"/dir/a\""]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["changes", "-j", &l])).unwrap();
    assert!(v.as_array().unwrap().iter().all(|c| c["Kind"] == 1));
    let size: u64 = s.ok(&["diffsize", &l]).trim().parse().unwrap();
    assert!(size >= 6, "{size}");
    assert_eq!(
        s.ok(&["diff-size", &l]).trim().parse::<u64>().unwrap(),
        size
    );
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &l])).unwrap();
    assert_eq!(v[0]["diff-size"], tar.len() as u64);
}

#[test]
fn changes_quote_paths_like_go() {
    let s = Scratch::new();
    let tar = tar_of(&[("we\"ird\tname", b"x")]);
    let l = s.import_layer(&[], &tar);
    assert_eq!(s.ok(&["changes", &l]), "Add \"/we\\\"ird\\tname\"\n");
}

#[test]
fn diff_recreates_the_imported_archive() {
    let s = Scratch::new();
    let tar = tar_of(&[("x/", b""), ("x/y", b"payload")]);
    let l = s.import_layer(
        &["-f", &{
            let p = s.dir().join("layer.tar");
            std::fs::write(&p, &tar).unwrap();
            p.display().to_string()
        }],
        &[],
    );
    let o = s.run(&["diff", &l]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout, tar,
        "diff of an unmodified layer is the imported tar"
    );
    let o = s.run(&["diff", "-u", &l]);
    assert_eq!(tar_names(&o.stdout), ["x/", "x/y"]);
    let o = s.run(&["diff", "-c", &l]);
    assert_eq!(&o.stdout[..2], &[0x1f, 0x8b]);
    let out = s.dir().join("out.tar");
    assert_eq!(
        s.ok(&["diff", "-u", "-f", &out.display().to_string(), &l]),
        ""
    );
    assert_eq!(std::fs::read(&out).unwrap(), tar);
    for flag in ["-b", "--bzip2", "--bz2", "-x", "--xz"] {
        let o = s.fails(&["diff", flag, &l]);
        assert!(
            o.stderr.contains("unsupported compression format"),
            "{flag}: {o:?}"
        );
    }
}

#[test]
fn gzip_import_diffs_as_gzip_by_default() {
    let s = Scratch::new();
    let tar = tar_of(&[("z", b"zzz")]);
    let l = s.import_layer(&[], &gzip(&tar));
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &l])).unwrap();
    assert_eq!(v[0]["compression"], 2);
    let o = s.run(&["diff", &l]);
    assert_eq!(&o.stdout[..2], &[0x1f, 0x8b]);
    assert_eq!(s.run(&["diff", "-u", &l]).stdout, tar);
}

#[test]
fn applydiff_into_a_new_layer() {
    let s = Scratch::new();
    let l = s.create_layer(&["-n", "target"]);
    s.ok_with_input(&["applydiff", "target"], &tar_of(&[("applied", b"yes")]));
    assert_eq!(s.ok(&["changes", &l]), "Add \"/applied\"\n");
    let f = s.dir().join("d.tar");
    std::fs::write(&f, tar_of(&[("second", b"2")])).unwrap();
    s.ok(&["apply-diff", "-f", &f.display().to_string(), &l]);
    assert!(s.ok(&["changes", &l]).contains("Add \"/second\"\n"));
}

#[test]
fn junk_input_fails_and_leaves_no_layer() {
    let s = Scratch::new();
    let o = s.run_with_input(
        &["import-layer"],
        b"this is not a tar archive at all, not even close............",
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(!o.stderr.is_empty());
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
    let l = s.create_layer(&[]);
    let o = s.run_with_input(&["applydiff", &l], &[0xffu8; 700]);
    assert_eq!(o.code, 1, "{o:?}");
}

#[test]
fn changes_against_another_layer() {
    let s = Scratch::new();
    let a = s.import_layer(&[], &tar_of(&[("one", b"1")]));
    let b = s.import_layer(&[a.as_str()], &tar_of(&[("two", b"2")]));
    assert_eq!(s.ok(&["changes", &b]), "Add \"/two\"\n");
    assert_eq!(s.ok(&["changes", &b, &a]), "Add \"/two\"\n");
}

/// `changes` lists in upstream's order, not sorted by path: a layer against its parent in
/// walk order (a directory right before what is in it, so `/a/b` before `/a-z` and `/a.txt`),
/// against another layer a directory, then its added and changed entries, then its deleted
/// ones; as upstream 1.60 prints them (its naive comparison, every comparison on vfs, visits
/// the entries of a directory in Go's map order: there only one entry per directory is
/// compared).
#[test]
fn changes_are_in_upstreams_order() {
    let base_tar = tar_of(&[
        ("a/", b""),
        ("a/b", b"1"),
        ("a.txt", b"2"),
        ("a-z", b"3"),
        ("z/", b""),
        ("z/y", b"4"),
    ]);
    let top_tar = tar_of(&[
        ("a/", b""),
        ("a/.wh.b", b""),
        ("a.txt", b"22"),
        ("a0", b"5"),
    ]);
    let run = |s: &Scratch| {
        s.import_layer(&["-n", "base"], &base_tar);
        s.import_layer(&["-n", "top", "base"], &top_tar);
        s.create_layer(&["-n", "empty"]);
        s.import_layer(&["-n", "one"], &tar_of(&[("d/", b""), ("d/x", b"1")]));
        [
            s.ok(&["changes", "base"]),
            s.ok(&["changes", "top"]),
            s.ok(&["changes", "one", "empty"]),
            s.ok(&["changes", "empty", "one"]),
        ]
    };
    let ours = run(&Scratch::new());
    assert_eq!(
        ours[1],
        "Modify \"/a\"\nDelete \"/a/b\"\nModify \"/a.txt\"\nAdd \"/a0\"\n"
    );
    assert_eq!(ours[3], "Delete \"/d\"\n");
    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let theirs = run(&Scratch::with_binary(&reference, crate::DRIVER));
    if crate::DRIVER == "overlay" {
        assert_eq!(ours, theirs);
    } else {
        // Upstream's other drivers compare naively, in Go's map order.
        assert_eq!(ours[2..], theirs[2..]);
    }
}

#[test]
fn applydiff_using_staging_dir_applies_the_directory() {
    let s = Scratch::new();
    let l = s.create_layer(&["-n", "staged"]);
    let src = s.dir().join("staging-src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), b"hello from staging").unwrap();
    std::os::unix::fs::symlink("etc/motd", src.join("motd")).unwrap();
    assert_eq!(
        s.ok(&[
            "applydiff-using-staging-dir",
            "staged",
            &src.display().to_string()
        ]),
        ""
    );
    let mut names = tar_names(&s.run(&["diff", "-u", &l]).stdout);
    names.sort();
    assert_eq!(names, ["etc/", "etc/motd", "motd"]);
    let mnt = s.ok(&["mount", &l]);
    let content = std::fs::read(std::path::Path::new(mnt.trim()).join("etc/motd")).unwrap();
    assert_eq!(content, b"hello from staging");
    s.ok(&["unmount", &l]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["layer", "-j", &l])).unwrap();
    assert!(v[0]["diff-digest"].as_str().unwrap().starts_with("sha256:"));

    let o = s.fails(&["applydiff-using-staging-dir", "staged", "/nonexistent-dir"]);
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
}
