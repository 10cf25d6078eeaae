//! Layer records (`layers.json`, `volatile-layers.json`) and the layer store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store_dir::DirFile;
use storage_driver::idmap::IdMap;

/// One layer record, with upstream's JSON keys in upstream's order (upstream's `layers.go`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Layer ID.
    pub id: String,
    /// Names (unique among layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Parent layer ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// SELinux mount label.
    #[serde(
        default,
        rename = "mountlabel",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_label: String,
    /// Creation time, RFC 3339 with nanoseconds as Go writes it.
    #[serde(default)]
    pub created: String,
    /// Digest of the blob as given to apply-diff.
    #[serde(
        default,
        rename = "compressed-diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub compressed_digest: String,
    /// Its size.
    #[serde(default, rename = "compressed-size", skip_serializing_if = "is_zero")]
    pub compressed_size: i64,
    /// Digest of the uncompressed tar (DiffID).
    #[serde(
        default,
        rename = "diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub uncompressed_digest: String,
    /// TOC digest (partial pulls).
    #[serde(
        default,
        rename = "toc-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub toc_digest: String,
    /// Size of the uncompressed tar.
    #[serde(default, rename = "diff-size", skip_serializing_if = "is_zero")]
    pub uncompressed_size: i64,
    /// Compression of the applied blob: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd.
    #[serde(default, rename = "compression", skip_serializing_if = "is_zero_u8")]
    pub compression: u8,
    /// Distinct owner UIDs of the archive's entries.
    #[serde(default, rename = "uidset", skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<u32>,
    /// Distinct owner GIDs of the archive's entries.
    #[serde(default, rename = "gidset", skip_serializing_if = "Vec::is_empty")]
    pub gids: Vec<u32>,
    /// Flags, for example `{"incomplete": true}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, serde_json::Value>,
    /// UID mapping of the layer.
    #[serde(default, rename = "uidmap", skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMap>,
    /// GID mapping of the layer.
    #[serde(default, rename = "gidmap", skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMap>,
    /// Keys of the layer's big data.
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub big_data_names: Vec<String>,
    /// Where the layer is mounted (from `mountpoints.json`; not serialized).
    #[serde(skip)]
    pub mount_point: String,
    /// How many times it is mounted (from `mountpoints.json`; not serialized).
    #[serde(skip)]
    pub mount_count: u32,
    /// The layer comes from a read-only store (not serialized).
    #[serde(skip)]
    pub read_only: bool,
    /// The record lives in a volatile file (not serialized).
    #[serde(skip)]
    pub volatile: bool,
    /// The record lives in the split image store's file (not serialized).
    #[serde(skip)]
    pub in_image_store: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

impl crate::records::Record for LayerRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        &self.names
    }
    fn names_mut(&mut self) -> &mut Vec<String> {
        &mut self.names
    }
    fn location(&self) -> crate::records::Location {
        if self.in_image_store {
            crate::records::Location::ImageStore
        } else if self.volatile {
            crate::records::Location::Volatile
        } else {
            crate::records::Location::Stable
        }
    }
    fn set_location(&mut self, location: crate::records::Location) {
        self.volatile = location == crate::records::Location::Volatile;
        self.in_image_store = location == crate::records::Location::ImageStore;
    }
    fn digests(&self) -> Vec<&str> {
        [&self.uncompressed_digest, &self.compressed_digest]
            .into_iter()
            .filter(|d| !d.is_empty())
            .map(String::as_str)
            .collect()
    }
}

/// One entry of `mountpoints.json` (run root): where a layer is mounted and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPointRecord {
    /// Layer ID.
    pub id: String,
    /// Mount point.
    pub path: String,
    /// Mount count.
    pub count: u32,
}

/// Reads `mountpoints.json`; a missing file means nothing is mounted.
pub fn load_mount_points(file: &DirFile) -> crate::error::Result<Vec<MountPointRecord>> {
    let mut data = Vec::new();
    let found = file
        .dir()
        .read_into(file.name(), &mut data)
        .map_err(|e| crate::error::StoreError::io("reading", file.path(), e))?;
    if !found || data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice::<Option<Vec<MountPointRecord>>>(&data)
        .map(Option::unwrap_or_default)
        .map_err(|source| crate::error::StoreError::Json {
            path: file.path(),
            source,
        })
}

/// Writes `mountpoints.json` with the mounted layers of `layers` (count > 0 only).
pub fn save_mount_points(file: &DirFile, layers: &[LayerRecord]) -> crate::error::Result<()> {
    let entries: Vec<MountPointRecord> = layers
        .iter()
        .filter(|l| l.mount_count > 0)
        .map(|l| MountPointRecord {
            id: l.id.clone(),
            path: l.mount_point.clone(),
            count: l.mount_count,
        })
        .collect();
    file.dir()
        .write_atomic(file.name(), &crate::gojson::to_vec(&entries), true)
        .map_err(|e| crate::error::StoreError::io("writing", file.path(), e))
}

/// The layer records of one store: `layers.json` plus `volatile-layers.json`.
pub type LayerStore = crate::records::RecordSet<LayerRecord>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_layer_json_matches_upstream_sample() {
        let rec = LayerRecord {
            id: "c7c6".into(),
            names: vec!["imported".into()],
            parent: "17f4".into(),
            created: "2026-11-23T00:11:25.302344015Z".into(),
            compressed_digest: "sha256:9a93".into(),
            compressed_size: 114,
            uncompressed_digest: "sha256:6036".into(),
            uncompressed_size: 10240,
            compression: 2,
            uids: vec![0],
            gids: vec![0],
            ..Default::default()
        };
        assert_eq!(
            crate::gojson::to_string(&rec),
            r#"{"id":"c7c6","names":["imported"],"parent":"17f4","created":"2026-11-23T00:11:25.302344015Z","compressed-diff-digest":"sha256:9a93","compressed-size":114,"diff-digest":"sha256:6036","diff-size":10240,"compression":2,"uidset":[0],"gidset":[0]}"#
        );
    }

    #[test]
    fn mount_points_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mountpoints.json");
        let file = DirFile::create_at(&path).expect("open");
        assert!(load_mount_points(&file).expect("load").is_empty());
        let layers = vec![
            LayerRecord {
                id: "a".into(),
                mount_point: "/m/a".into(),
                mount_count: 2,
                ..Default::default()
            },
            LayerRecord {
                id: "b".into(),
                ..Default::default()
            },
        ];
        save_mount_points(&file, &layers).expect("save");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            r#"[{"id":"a","path":"/m/a","count":2}]"#
        );
        assert_eq!(load_mount_points(&file).expect("load")[0].count, 2);
    }
}
