//! Chains of layers as deep as upstream mounts them: 500 lowers under a container's layer,
//! more than a page of `lowerdir=` in any spelling of the short links (the new mount API
//! takes one `lowerdir+` per layer), and one more refused at mount, as upstream does.

use std::path::Path;

use crate::harness::{first_line, tar_of, Scratch};

/// Upstream overlay's `maxDepth`: the most lowers a mounted layer may have.
const MAX_DEPTH: usize = 500;

#[test]
fn a_container_on_a_chain_of_500_layers_mounts_and_one_more_is_refused() {
    if !crate::harness::overlay_only("a_container_on_a_chain_of_500_layers_mounts") {
        return;
    }
    // Scratch's Drop unmounts what is left and removes the store, also on failure.
    let s = Scratch::new();
    let bottom = s.import_layer(&["-n", "bottom"], &tar_of(&[("bottom.txt", b"b")]));
    let mut top = bottom.clone();
    // Layers 2..=499 empty, the 500th with a file of its own.
    for _ in 2..MAX_DEPTH {
        top = s.create_layer(&[&top]);
    }
    top = first_line(&s.ok_with_input(
        &["import-layer", "-n", "top", &top],
        &tar_of(&[("top.txt", b"t")]),
    ));
    assert_eq!(s.ok(&["layers", "-q"]).lines().count(), MAX_DEPTH);
    s.ok(&["create-image", "-n", "deep", &top]);

    // The container's layer has the 500 layers of the chain as lowers.
    s.ok(&["create-container", "-n", "c", "deep"]);
    let mp = s.ok(&["mount", "c"]).trim_end().to_string();
    assert!(
        crate::harness::is_mountpoint(&mp),
        "{mp} is not a mount point"
    );
    let merged = Path::new(&mp);
    assert_eq!(std::fs::read(merged.join("bottom.txt")).unwrap(), b"b");
    assert_eq!(std::fs::read(merged.join("top.txt")).unwrap(), b"t");
    std::fs::write(merged.join("new.txt"), b"n").unwrap();
    assert_eq!(s.ok(&["unmount", "c"]), "c mountpoint unmounted\n");
    assert!(!crate::harness::is_mountpoint(&mp));
    // The top image layer mounted alone (its diff on top of 499 lowers).
    let mp = s.ok(&["mount", "top"]).trim_end().to_string();
    assert!(Path::new(&mp).join("bottom.txt").exists());
    s.ok(&["unmount", "top"]);

    // One layer more: created (upstream creates it), and a container on it is created
    // but cannot mount its 501 lowers.
    let deeper = s.create_layer(&[&top]);
    s.ok(&["create-image", "-n", "deeper", &deeper]);
    s.ok(&["create-container", "-n", "c2", "deeper"]);
    let o = s.fails(&["mount", "c2"]);
    assert!(
        o.stderr.contains("max depth exceeded"),
        "unexpected error: {o:?}"
    );
    assert_eq!(s.ok(&["mounted", "c2"]), "");
    // Nothing is left mounted by the refused mount; the first container still mounts.
    let mp = s.ok(&["mount", "c"]).trim_end().to_string();
    assert_eq!(std::fs::read(Path::new(&mp).join("new.txt")).unwrap(), b"n");
    s.ok(&["unmount", "c"]);
}
