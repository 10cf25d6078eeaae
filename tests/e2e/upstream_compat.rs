//! Behaviours that upstream's own bats suite (`tests/upstream/run.sh`) checks, pinned here
//! through the binary so that a regression shows in `cargo test` too: what `shutdown`
//! leaves mounted, upstream's messages for missing big data and for layers in use,
//! `create-storage-layer` on a driver-only parent, volatile containers mounted twice, ID
//! mappings that keep hard links, image mounts and sizes, `merged/` after unmount,
//! renamed read-only images and the graph root's images in a split store.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::{first_line, overlay_only, Output, Scratch};

/// Mount points at or below `dir` (from /proc/self/mountinfo, escapes undone).
fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " ").replace("\\134", "\\"))
        .filter(|p| *p == dir || p.starts_with(&format!("{dir}/")))
        .collect()
}

/// The one line a failed command printed.
fn one_line_error(o: &Output) -> &str {
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.ends_with('\n') && o.stderr.lines().count() == 1,
        "{o:?}"
    );
    o.stderr.trim_end()
}

#[test]
fn shutdown_leaves_nothing_mounted_below_the_graph_root() {
    let s = Scratch::new();
    let layer = s.create_layer(&[]);
    s.ok(&["mount", &layer]);
    s.ok(&["unmount", &layer]);
    s.ok(&["layers"]);
    if crate::DRIVER != "vfs" {
        // overlay and btrfs make their home a private bind mount of itself.
        let home = s.graph().join(crate::DRIVER);
        assert!(
            mounts_below(&s.graph()).contains(&home.display().to_string()),
            "{:?}",
            mounts_below(&s.graph())
        );
    }
    s.ok(&["wipe"]);
    s.ok(&["shutdown"]);
    // As upstream 1.60's Cleanup: the suite's teardown removes the graph root next.
    assert_eq!(mounts_below(&s.graph()), Vec::<String>::new());
    std::fs::remove_dir_all(s.graph()).expect("the graph root can be removed");
}

#[test]
fn missing_big_data_says_what_upstream_says() {
    let s = Scratch::new();
    let layer = s.create_layer(&[]);
    let image = first_line(&s.ok(&["create-image", &layer]));
    let container = first_line(&s.ok(&["create-container", &image]));
    let container = container.split('\t').next().unwrap().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["get-image-data", &image, "nosuch"],
            format!(
                "locating item named \"nosuch\" for image with ID \"{image}\" (consider removing \
                 the image to resolve the issue): file does not exist"
            ),
        ),
        (
            vec!["get-image-data", "nosuchimage", "x"],
            "locating image with ID \"nosuchimage\": image not known".to_string(),
        ),
        (
            vec!["list-image-data", "nosuchimage"],
            "locating image with ID \"nosuchimage\": image not known".to_string(),
        ),
        (
            vec!["create-container", "nosuchimage"],
            "locating image with ID \"nosuchimage\": image not known".to_string(),
        ),
        (
            vec!["get-image-data-size", &image, "nosuch"],
            "size is not known".to_string(),
        ),
        (
            vec!["get-image-data-digest", &image, "nosuch"],
            "could not compute digest of item".to_string(),
        ),
        (
            vec!["get-layer-data", &layer, "nosuch"],
            format!(
                "locating item named \"nosuch\" for layer with ID \"{layer}\": file does not exist"
            ),
        ),
        (
            vec!["get-container-data", &container, "nosuch"],
            format!(
                "open {}: no such file or directory",
                s.graph()
                    .join(format!("{}-containers", crate::DRIVER))
                    .join(&container)
                    .join("nosuch")
                    .display()
            ),
        ),
        (
            vec!["get-container-data-size", &container, "nosuch"],
            "size is not known".to_string(),
        ),
        (
            vec!["get-container-data-digest", &container, "nosuch"],
            "could not compute digest of item".to_string(),
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(one_line_error(&s.run(&args)), expected, "{args:?}");
    }
}

#[test]
fn layers_in_use_are_named_in_the_refusal() {
    let s = Scratch::new();
    let layer = s.create_layer(&[]);
    let image = first_line(&s.ok(&["create-image", &layer]));
    assert_eq!(
        one_line_error(&s.run(&["delete-layer", &layer])),
        format!("{layer}: layer {layer} used by image {image}: layer is in use by an image")
    );
    let container = first_line(&s.ok(&["create-container", &image]));
    let container = container.split('\t').next().unwrap().to_string();
    let info = s.ok(&["container", &container]);
    let clayer = info
        .lines()
        .find_map(|l| l.strip_prefix("Layer: "))
        .unwrap()
        .to_string();
    assert_eq!(
        one_line_error(&s.run(&["delete-layer", &clayer])),
        format!(
            "{clayer}: layer {clayer} used by container {container}: layer is in use by a container"
        )
    );
}

#[test]
fn storage_layers_can_be_children_of_storage_layers() {
    let s = Scratch::new();
    let parent = first_line(&s.ok(&["create-storage-layer"]));
    // The parent is only the driver's: it is handed over as given, as upstream does.
    let child = first_line(&s.ok(&["create-storage-layer", &parent]));
    let listed = s.ok(&["storage-layers"]);
    assert!(
        listed.contains(&parent) && listed.contains(&child),
        "{listed}"
    );
    let o = s.run(&["check", "-r"]);
    let said = format!("{}{}", o.out(), o.stderr);
    for id in [&parent, &child] {
        assert!(
            said.contains(&format!(
                "layer {id}: layer in lower level storage driver not accounted for"
            )),
            "{o:?}"
        );
    }
    assert_eq!(s.ok(&["storage-layers"]), "");
    assert_eq!(s.fails(&["create-storage-layer", "nosuch"]).stdout, b"");
}

#[test]
fn volatile_containers_mount_again() {
    let s = Scratch::new();
    let container = first_line(&s.ok(&["create-container", "--volatile", ""]));
    let container = container.split('\t').next().unwrap().to_string();
    let path = first_line(&s.ok(&["mount", &container]));
    std::fs::write(Path::new(&path).join("newfile"), "test").unwrap();
    s.ok(&["unmount", &container]);
    // overlay: the kernel's volatile marker is left in the work dir and must go first.
    let path = first_line(&s.ok(&["mount", &container]));
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("newfile")).unwrap(),
        "test"
    );
    s.ok(&["unmount", &container]);
}

/// `--uidmap`/`--gidmap` arguments mapping container 0..6 to `host`.
fn mapping(host: u32) -> [String; 4] {
    [
        "--uidmap".into(),
        format!("0:{host}:6"),
        "--gidmap".into(),
        format!("0:{host}:6"),
    ]
}

#[test]
fn remapped_layers_keep_hard_links() {
    let s = Scratch::new();
    let lower = s.create_layer(&["--hostuidmap", "--hostgidmap"]);
    let m = first_line(&s.ok(&["mount", &lower]));
    let m = Path::new(&m);
    std::fs::write(m.join("origin-file"), "x").unwrap();
    std::fs::hard_link(m.join("origin-file"), m.join("ln-file")).unwrap();
    std::fs::write(m.join("owned"), "y").unwrap();
    std::os::unix::fs::chown(m.join("owned"), Some(3), Some(4)).unwrap();
    s.ok(&["unmount", &lower]);
    let args = mapping(200_000);
    let mut create: Vec<&str> = args.iter().map(String::as_str).collect();
    create.push(&lower);
    let upper = s.create_layer(&create);
    let m = first_line(&s.ok(&["mount", &upper]));
    let m = Path::new(&m);
    let meta = |name: &str| std::fs::symlink_metadata(m.join(name)).unwrap();
    // Re-owned for the new mapping, hard links kept (upstream relinks what overlay's
    // copy-up splits).
    assert_eq!(meta("origin-file").ino(), meta("ln-file").ino());
    assert_eq!(meta("origin-file").uid(), 200_000);
    assert_eq!(
        (meta("owned").uid(), meta("owned").gid()),
        (200_003, 200_004)
    );
    s.ok(&["unmount", &upper]);
}

#[test]
fn remapped_layers_show_only_later_changes() {
    let s = Scratch::new();
    let args = mapping(300_000);
    let mut create: Vec<&str> = args.iter().map(String::as_str).collect();
    let lower = s.create_layer(&create);
    let m = first_line(&s.ok(&["mount", &lower]));
    for i in 1..=3u32 {
        let f = Path::new(&m).join(format!("file{i}"));
        std::fs::write(&f, "x").unwrap();
        std::os::unix::fs::chown(&f, Some(300_000 + i), Some(300_000 + i)).unwrap();
    }
    s.ok(&["unmount", &lower]);
    let args = mapping(400_000);
    create = args.iter().map(String::as_str).collect();
    create.push(&lower);
    let upper = s.create_layer(&create);
    let m = first_line(&s.ok(&["mount", &upper]));
    std::os::unix::fs::chown(Path::new(&m).join("file2"), Some(400_000), Some(400_000)).unwrap();
    // Re-owning the copy is no change; the chown to container root after it is.
    assert_eq!(s.ok(&["changes", &upper]), "Modify \"/file2\"\n");
    s.ok(&["unmount", &upper]);
}

#[test]
fn images_mount_owned_for_the_host_and_have_a_size() {
    let s = Scratch::new();
    let args = mapping(500_000);
    let create: Vec<&str> = args.iter().map(String::as_str).collect();
    let top = s.create_layer(&create);
    let m = first_line(&s.ok(&["mount", &top]));
    std::fs::write(Path::new(&m).join("file1"), vec![7u8; 1000]).unwrap();
    std::os::unix::fs::chown(Path::new(&m).join("file1"), Some(500_000), Some(500_000)).unwrap();
    s.ok(&["unmount", &top]);
    let created = first_line(&s.ok(&["create-image", "-n", "mapped", &top]));
    let image = created.split('\t').next().unwrap().to_string();
    // The content has no recorded size (it was written through a mount): the driver
    // measures it, as upstream's ImageSize does.
    let info = s.ok(&["image", &image]);
    assert!(info.contains("\nSize: 1000\n"), "{info}");
    let m = first_line(&s.ok(&["mount", "-r", "mapped"]));
    let meta = std::fs::metadata(Path::new(&m).join("file1")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    // An image unmounts silently (upstream's UnmountImage).
    assert_eq!(s.ok(&["unmount", "mapped"]), "");
    let mapped_tops = s
        .ok(&["image", &image])
        .lines()
        .filter(|l| l.starts_with("Top Layer: "))
        .count();
    assert_eq!(mapped_tops, 2, "the host-owned copy is a mapped top layer");
}

#[test]
fn merged_survives_unmount_and_comes_back_when_removed() {
    if !overlay_only("merged_survives_unmount_and_comes_back_when_removed") {
        return;
    }
    let s = Scratch::new();
    let layer = s.create_layer(&[]);
    let merged = first_line(&s.ok(&["mount", &layer]));
    s.ok(&["unmount", &layer]);
    assert!(Path::new(&merged).is_dir(), "merged/ stays (upstream 1.60)");
    std::fs::remove_dir(&merged).unwrap();
    for link in std::fs::read_dir(s.graph().join("overlay/l")).unwrap() {
        std::fs::remove_file(link.unwrap().path()).unwrap();
    }
    let again = first_line(&s.ok(&["mount", &layer]));
    assert_eq!(again, merged);
    s.ok(&["unmount", &layer]);
}

#[test]
fn a_removed_name_of_a_read_only_image_no_longer_finds_it() {
    let ro = Scratch::new();
    let layer = ro.create_layer(&[]);
    let created = first_line(&ro.ok(&["create-image", "-n", "foo", "-n", "gone", &layer]));
    let image = created.split('\t').next().unwrap().to_string();
    ro.ok(&["shutdown"]);
    let s = Scratch::new();
    let opt = format!("{}.imagestore={}", crate::DRIVER, ro.graph().display());
    let with_ro = |args: &[&str]| {
        let mut full = vec!["--storage-opt", opt.as_str()];
        full.extend_from_slice(args);
        s.run(&full)
    };
    assert_eq!(with_ro(&["exists", "-i", "gone"]).code, 0);
    assert_eq!(with_ro(&["remove-names", "-n", "gone", &image]).code, 0);
    // The writable copy has the names now; the read-only store still lists `gone`.
    assert_eq!(with_ro(&["exists", "-i", "gone"]).code, 1);
    assert_eq!(with_ro(&["exists", "-i", "foo"]).code, 0);
    assert_eq!(with_ro(&["exists", "-i", &image]).code, 0);
    with_ro(&["shutdown"]);
}

#[test]
fn split_stores_see_and_delete_the_graph_roots_images() {
    let s = Scratch::new();
    let created = first_line(&s.ok(&["create-image", "-n", "wonderful"]));
    let image = created.split('\t').next().unwrap().to_string();
    let data = s.dir().join("random1");
    std::fs::write(&data, "data").unwrap();
    s.ok(&[
        "set-image-data",
        "-f",
        &data.display().to_string(),
        &image,
        "random1",
    ]);
    s.ok(&["shutdown"]);
    let image_store = s.dir().join("imagestore");
    let split = image_store.display().to_string();
    let info = s.ok(&["--image-store", &split, "image", &image]);
    assert!(info.contains(&format!("ID: {image}")), "{info}");
    assert!(info.contains("Name: wonderful") && info.contains("Data: random1"));
    assert!(!info.contains("Read Only"), "{info}");
    assert_eq!(
        s.ok(&["--image-store", &split, "get-image-data", &image, "random1"]),
        "data"
    );
    s.ok(&["--image-store", &split, "delete-image", &image]);
    s.ok(&["--image-store", &split, "shutdown"]);
    assert_eq!(s.run(&["exists", "-i", &image]).code, 1);
    assert!(!s
        .graph()
        .join(format!("{}-images", crate::DRIVER))
        .join(&image)
        .exists());
}
