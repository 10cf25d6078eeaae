//! Interop with Debian's `podman`, which shares the store through containers/storage: an image
//! podman imported is listed, used for a container, mounted and diffed by `storage`, and podman
//! sees that container; an image `storage` built is listed, inspected and mounted by podman, and
//! removed by `podman rmi` as `storage` then sees. Skipped (with a note) when podman is not
//! installed; `.ci/run` installs it.

use std::path::Path;
use std::process::Command;

use crate::harness::{gzip, tar_of, Scratch};
use crate::skopeo::{image_documents, sha256};

fn podman_available() -> bool {
    let found = Command::new("podman").arg("--version").output().is_ok();
    if !found {
        eprintln!("podman is not installed: skipping the podman interop test");
    }
    found
}

/// Runs podman on the scratch store (its own state under the scratch directory too);
/// returns stdout.
fn podman(s: &Scratch, args: &[&str]) -> String {
    let tmp = s.dir().join("podman-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("podman")
        .arg("--root")
        .arg(s.graph())
        .arg("--runroot")
        .arg(s.run_root())
        .arg("--tmpdir")
        .arg(&tmp)
        .args([
            "--storage-driver",
            crate::DRIVER,
            "--cgroup-manager",
            "cgroupfs",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_image_podman_imported_is_used_by_storage() {
    if !podman_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("etc/", b""), ("etc/motd", b"hello from podman\n")]);
    let tar_path = s.dir().join("layer.tar");
    std::fs::write(&tar_path, &layer).unwrap();
    podman(
        &s,
        &[
            "import",
            "-q",
            &tar_path.display().to_string(),
            "localhost/podimg:v1",
        ],
    );

    let images = s.run(&["images", "-j"]).json();
    assert_eq!(images[0]["names"][0], "localhost/podimg:v1", "{images}");
    let layers = s.run(&["layers", "-j"]).json();
    let layer_id = layers[0]["id"].as_str().unwrap().to_string();
    // The layer podman applied re-creates, through our tar-split reading, the tar it recorded.
    let diff = s.run(&["diff", "-u", &layer_id]).stdout;
    assert_eq!(sha256(&diff), layers[0]["diff-digest"], "{layers}");

    let ctr = s.ok(&[
        "create-container",
        "-n",
        "fromstorage",
        "localhost/podimg:v1",
    ]);
    let ctr = ctr.lines().next().unwrap().to_string();
    let mnt = s.ok(&["mount", &ctr]);
    let motd = std::fs::read(Path::new(mnt.trim()).join("etc/motd")).unwrap();
    assert_eq!(motd, b"hello from podman\n");
    s.ok(&["unmount", &ctr]);

    // podman lists the container storage made as an external (non-podman) container.
    let listed = podman(
        &s,
        &[
            "ps",
            "-a",
            "--external",
            "--no-trunc",
            "--format",
            "{{.ID}}",
        ],
    );
    assert!(listed.lines().any(|l| l.trim() == ctr), "{listed}");
}

#[test]
fn an_image_storage_built_is_used_and_removed_by_podman() {
    if !podman_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("bin/", b""), ("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let layer_gz = gzip(&layer);
    let layer_id = s.import_layer(&[], &layer_gz);
    let (config, manifest) = image_documents(&layer, &layer_gz);
    let config_key = sha256(&config);
    let img = s.ok(&[
        "create-image",
        "--id",
        config_key.trim_start_matches("sha256:"),
        "-n",
        "localhost/ours:v1",
        &layer_id,
    ]);
    let img = img.lines().next().unwrap().to_string();
    s.ok_with_input(&["set-image-data", &img, &config_key], &config);
    s.ok_with_input(&["set-image-data", &img, "manifest"], &manifest);

    let listed = podman(
        &s,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    assert!(
        listed.contains(&format!("localhost/ours:v1 {}", &img[..12])),
        "{listed}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&podman(&s, &["image", "inspect", "localhost/ours:v1"])).unwrap();
    assert_eq!(
        inspect[0]["RootFS"]["Layers"][0],
        sha256(&layer),
        "{inspect}"
    );

    let mnt = podman(&s, &["image", "mount", "localhost/ours:v1"]);
    let tool = std::fs::read(Path::new(mnt.trim()).join("bin/tool")).unwrap();
    assert_eq!(tool, b"#!/bin/sh\necho hi\n");
    podman(&s, &["image", "unmount", "localhost/ours:v1"]);

    podman(&s, &["rmi", "localhost/ours:v1"]);
    assert_eq!(s.ok(&["images"]), "");
    assert_eq!(s.ok(&["layers"]), "");
}
