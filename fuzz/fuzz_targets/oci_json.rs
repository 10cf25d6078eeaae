//! The documents of an OCI image layout (`storage_store::oci::layout`): `oci-layout`,
//! `index.json` and nested indexes, image manifests, image configs, and the choices made on
//! them alone (entries by reference and platform), on arbitrary bytes.
//!
//! Checked: no panic; a parsed index or manifest serialises and parses back to itself (what
//! export-oci writes from them); every digest a parse accepted is one `check_digest` accepts
//! (it names a file under `blobs/` and nothing else); a parsed config is a JSON object (what
//! export-oci edits in place); the entries chosen are entries of the index.
//!
//! Input: the document; its first line, when it is short, doubles as a reference and a
//! platform for the choices (`REF PLATFORM`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_store::oci::layout::{
    check_digest, choose_entries, layer_compression, manifest_kind, parse_config, parse_index,
    parse_layout_file, parse_manifest, LayoutRef,
};
use storage_store::oci::Platform;

fn choices(index: &storage_store::oci::layout::Index, words: &[&str]) {
    let reference = words.first().copied().filter(|r| !r.is_empty());
    let platform = words
        .get(1)
        .and_then(|p| Platform::parse(p).ok())
        .unwrap_or_else(Platform::host);
    for all in [false, true] {
        if let Ok(chosen) = choose_entries(index, reference, all, &platform) {
            assert!(!chosen.is_empty(), "an empty choice");
            for d in chosen {
                assert!(
                    index.manifests.iter().any(|m| std::ptr::eq(m, d)),
                    "a chosen entry is not in the index"
                );
                if let Some(r) = reference {
                    assert_eq!(d.ref_name(), Some(r), "chose an entry of another name");
                }
            }
        }
    }
}

/// A document as a JSON value with every non-integer number blurred. serde_json (without its
/// `float_roundtrip` feature) may read a long decimal one ulp off, so a float in a field
/// kept as is (`extra`) can change in its last digit when export-oci writes an index back;
/// everything else must survive exactly.
fn blurred(document: &impl serde::Serialize) -> serde_json::Value {
    fn blur(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => *v = serde_json::Value::Null,
            serde_json::Value::Array(items) => items.iter_mut().for_each(blur),
            serde_json::Value::Object(map) => map.values_mut().for_each(blur),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(document).expect("a document serialises");
    blur(&mut value);
    value
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_layout_file(data);

    if let Ok(index) = parse_index("fuzz", data) {
        for d in &index.manifests {
            assert!(check_digest(&d.digest).is_ok());
            let _ = manifest_kind(&d.media_type);
        }
        let bytes = serde_json::to_vec(&index).expect("an index serialises");
        let again = parse_index("again", &bytes).expect("a serialised index parses");
        assert_eq!(
            blurred(&index),
            blurred(&again),
            "an index changes through serialisation"
        );
        let text = String::from_utf8_lossy(data);
        let first = text.lines().next().unwrap_or_default();
        if first.len() < 200 {
            let words: Vec<&str> = first.split(' ').collect();
            choices(&index, &words);
        }
    }

    if let Ok(manifest) = parse_manifest("fuzz", data) {
        assert!(check_digest(&manifest.config.digest).is_ok());
        for layer in &manifest.layers {
            assert!(check_digest(&layer.digest).is_ok());
            assert!(layer_compression(&layer.media_type).is_ok());
        }
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let again = parse_manifest("again", &bytes).expect("a serialised manifest parses");
        assert_eq!(
            blurred(&manifest),
            blurred(&again),
            "a manifest changes through serialisation"
        );
    }

    if let Ok(config) = parse_config("fuzz", data) {
        for d in &config.rootfs.diff_ids {
            assert!(check_digest(d).is_ok());
        }
        // export-oci reads a stored config back as a JSON value and edits it as an object.
        // (Invalid UTF-8 in a string of a field the parser skips is accepted here and refused
        // there, with an error: not checked.)
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
            assert!(
                value.is_object(),
                "a config that is not a JSON object was accepted (export-oci indexes it as one)"
            );
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if text.len() < 300 {
            let _ = check_digest(text);
            let _ = layer_compression(text);
            if let Ok(p) = Platform::parse(text) {
                assert_eq!(Platform::parse(&p.to_string()).ok(), Some(p));
            }
            let r = LayoutRef::parse(text);
            if let Some(reference) = &r.reference {
                assert!(!reference.is_empty());
            }
        }
    }
});
