//! `copy`: host and layer paths, owners, and confinement to the target layer.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::{tar_of, Scratch};

fn sorted_changes(s: &Scratch, layer: &str) -> Vec<String> {
    let mut lines: Vec<String> = s
        .ok(&["changes", layer])
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
fn copy_a_host_directory_into_a_layer() {
    let s = Scratch::new();
    let src = s.dir().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file"), b"content").unwrap();
    std::os::unix::fs::symlink("sub/file", src.join("link")).unwrap();
    let l = s.create_layer(&[]);
    assert_eq!(
        s.ok(&["copy", &src.display().to_string(), &format!("{l}:/dst")]),
        ""
    );
    assert_eq!(
        sorted_changes(&s, &l),
        [
            "Add \"/dst\"",
            "Add \"/dst/link\"",
            "Add \"/dst/sub\"",
            "Add \"/dst/sub/file\""
        ]
    );
    // The layer was unmounted again.
    assert_eq!(s.ok(&["mounted", &l]), "");
    let mp = s.ok(&["mount", &l]).trim_end().to_string();
    assert_eq!(
        std::fs::read(Path::new(&mp).join("dst/sub/file")).unwrap(),
        b"content"
    );
    assert_eq!(
        std::fs::read_link(Path::new(&mp).join("dst/link")).unwrap(),
        Path::new("sub/file")
    );
    s.ok(&["unmount", &l]);
}

#[test]
fn copy_a_file_between_layers_with_chown() {
    let s = Scratch::new();
    let a = s.import_layer(&[], &tar_of(&[("etc/", b""), ("etc/conf", b"x=1")]));
    let b = s.create_layer(&[]);
    s.ok(&[
        "copy",
        "--chown",
        "123:456",
        &format!("{a}:/etc/conf"),
        &format!("{b}:/copied"),
    ]);
    assert_eq!(sorted_changes(&s, &b), ["Add \"/copied\""]);
    let mp = s.ok(&["mount", &b]).trim_end().to_string();
    let meta = std::fs::metadata(Path::new(&mp).join("copied")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (123, 456));
    assert_eq!(
        std::fs::read(Path::new(&mp).join("copied")).unwrap(),
        b"x=1"
    );
    s.ok(&["unmount", &b]);
    // Into an existing directory keeps the name.
    s.ok(&["copy", &format!("{a}:/etc/conf"), &format!("{b}:/")]);
    assert!(sorted_changes(&s, &b).contains(&"Add \"/conf\"".to_string()));
}

#[test]
fn copy_stays_inside_the_target_layer() {
    let s = Scratch::new();
    let outside = s.dir().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let l = s.create_layer(&[]);
    let mp = s.ok(&["mount", &l]).trim_end().to_string();
    std::os::unix::fs::symlink(&outside, Path::new(&mp).join("escape")).unwrap();
    s.ok(&["unmount", &l]);
    let src = s.dir().join("payload");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let o = s.fails(&[
        "copy",
        &src.display().to_string(),
        &format!("{l}:/escape/in"),
    ]);
    assert!(o.stderr.starts_with("error copying "), "{o:?}");
    assert!(!outside.join("in").exists());
    // `..` cannot climb out either: it stops at the layer's root.
    s.ok(&[
        "copy",
        &src.display().to_string(),
        &format!("{l}:/../../up"),
    ]);
    assert!(sorted_changes(&s, &l).contains(&"Add \"/up\"".to_string()));
}

#[test]
fn copy_errors() {
    let s = Scratch::new();
    let l = s.create_layer(&[]);
    let o = s.fails(&["copy", "nope:/x", &format!("{l}:/y")]);
    assert_eq!(o.stderr, "error finding layer \"nope\": layer not known\n");
    let o = s.fails(&["copy", "-o", "bad", "/etc/hostname", &format!("{l}:/y")]);
    assert_eq!(
        o.stderr,
        "bad UID: strconv.ParseUint: parsing \"bad\": invalid syntax\n"
    );
    // A missing source is named by its path on the host and its `stat`, as upstream does.
    let src = s.create_layer(&[]);
    let o = s.fails(&["copy", &format!("{src}:/gone"), &format!("{l}:/y")]);
    let (from, to) = (
        s.graph().join("overlay").join(&src).join("merged/gone"),
        s.graph().join("overlay").join(&l).join("merged/y"),
    );
    if crate::DRIVER == "overlay" {
        assert_eq!(
            o.stderr,
            format!(
                "error copying {from:?} to {to:?}: stat {}: no such file or directory\n",
                from.display()
            )
        );
    } else {
        assert!(
            o.stderr.ends_with("/gone: no such file or directory\n"),
            "{o:?}"
        );
    }
    assert_eq!(s.ok(&["mounted", &l]), "");
}
