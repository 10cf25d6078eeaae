//! Interop with Debian's `skopeo`, which reads and writes the store through
//! containers/image: a store skopeo wrote is listed, mounted and diffed by `storage`, and an
//! image `storage` built is read back by skopeo with the same layer digest. Skipped (with a
//! note) when skopeo is not installed; `.ci/run` installs it.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::harness::{gzip, tar_names, tar_of, Scratch};

fn skopeo_available() -> bool {
    let found = Command::new("skopeo").arg("--version").output().is_ok();
    if !found {
        eprintln!("skopeo is not installed: skipping the skopeo interop test");
    }
    found
}

pub(crate) fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Writes `data` as a blob of the OCI layout at `dir`; returns its digest.
fn blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), data).unwrap();
    digest
}

/// The config and manifest of a one-layer image whose layer is `layer_gz` (the gzip of
/// `layer_tar`).
pub(crate) fn image_documents(layer_tar: &[u8], layer_gz: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(layer_gz),
            "size": layer_gz.len(),
        }],
    });
    (config, serde_json::to_vec(&manifest).unwrap())
}

/// An OCI image layout with one image, tagged `v1`.
fn oci_layout(dir: &Path, layer_tar: &[u8]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let layer_gz = gzip(layer_tar);
    blob(dir, &layer_gz);
    let (config, manifest) = image_documents(layer_tar, &layer_gz);
    blob(dir, &config);
    let manifest_digest = blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn store_ref(s: &Scratch, name: &str) -> String {
    format!(
        "containers-storage:[{}@{}+{}]{name}",
        crate::DRIVER,
        s.graph().display(),
        s.run_root().display()
    )
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_store_skopeo_wrote_is_listed_mounted_and_diffed() {
    if !skopeo_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("etc/", b""), ("etc/greeting", b"hello from skopeo\n")]);
    let oci = s.dir().join("oci");
    oci_layout(&oci, &layer);
    let src = format!("oci:{}:v1", oci.display());
    skopeo(&["copy", "-q", &src, &store_ref(&s, "localhost/interop:v1")]);

    let images = s.run(&["images", "-j"]).json();
    assert_eq!(images[0]["names"][0], "localhost/interop:v1", "{images}");
    let layers = s.run(&["layers", "-j"]).json();
    assert_eq!(layers[0]["diff-digest"], sha256(&layer), "{layers}");
    let layer_id = layers[0]["id"].as_str().unwrap().to_string();
    // What skopeo applied comes back through our diff, byte for byte.
    assert_eq!(s.run(&["diff", "-u", &layer_id]).stdout, layer);

    let ctr = s.ok(&["create-container", "localhost/interop:v1"]);
    let ctr = ctr.lines().next().unwrap();
    let mnt = s.ok(&["mount", ctr]);
    let greeting = std::fs::read(Path::new(mnt.trim()).join("etc/greeting")).unwrap();
    assert_eq!(greeting, b"hello from skopeo\n");
    s.ok(&["unmount", ctr]);
}

#[test]
fn an_image_storage_built_is_read_back_by_skopeo() {
    if !skopeo_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("bin/", b""), ("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let layer_gz = gzip(&layer);
    let layer_id = s.import_layer(&[], &layer_gz);
    let (config, manifest) = image_documents(&layer, &layer_gz);
    let img = s.ok(&["create-image", "-n", "localhost/ours:v1", &layer_id]);
    let img = img.lines().next().unwrap().to_string();
    let config_key = sha256(&config);
    s.ok_with_input(&["set-image-data", &img, &config_key], &config);
    s.ok_with_input(&["set-image-data", &img, "manifest"], &manifest);

    let out = s.dir().join("out");
    let dest = format!("oci:{}:v1", out.display());
    skopeo(&["copy", "-q", &store_ref(&s, "localhost/ours:v1"), &dest]);

    // The layer skopeo exported has the diff ID we recorded.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let read_blob = |digest: &str| {
        std::fs::read(
            out.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let exported: serde_json::Value = serde_json::from_slice(&read_blob(manifest_digest)).unwrap();
    let exported_layer = read_blob(exported["layers"][0]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(&exported_layer[..]),
        &mut tar,
    )
    .unwrap();
    assert_eq!(sha256(&tar), sha256(&layer));
    assert_eq!(tar_names(&tar), ["bin/", "bin/tool"]);
}
