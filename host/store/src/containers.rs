//! Container records (`containers.json`, `volatile-containers.json`) and the container store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use storage_driver::idmap::IdMap;

/// One container record, with upstream's JSON keys in upstream's order (upstream's
/// `containers.go`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Container ID.
    pub id: String,
    /// Names (unique among containers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Image ID (may be empty).
    #[serde(default, rename = "image")]
    pub image: String,
    /// The container's read-write layer.
    #[serde(default, rename = "layer")]
    pub layer: String,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Keys of the container's big data.
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub big_data_names: Vec<String>,
    /// Sizes of the big data items.
    #[serde(
        default,
        rename = "big-data-sizes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub big_data_sizes: BTreeMap<String, i64>,
    /// Digests of the big data items.
    #[serde(
        default,
        rename = "big-data-digests",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub big_data_digests: BTreeMap<String, String>,
    /// Creation time, RFC 3339 with nanoseconds as Go writes it.
    #[serde(default)]
    pub created: String,
    /// UID mapping.
    #[serde(default, rename = "uidmap", skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMap>,
    /// GID mapping.
    #[serde(default, rename = "gidmap", skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMap>,
    /// Flags: always `MountLabel` and `ProcessLabel`; `Volatile: true` when volatile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, serde_json::Value>,
    /// The record lives in a volatile file (not serialized).
    #[serde(skip)]
    pub volatile: bool,
}

impl crate::records::Record for ContainerRecord {
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
        if self.volatile {
            crate::records::Location::Volatile
        } else {
            crate::records::Location::Stable
        }
    }
    fn set_location(&mut self, location: crate::records::Location) {
        self.volatile = location == crate::records::Location::Volatile;
    }
    fn name_in_use(name: &str, holder: &str) -> crate::error::StoreError {
        crate::error::StoreError::ContainerNameInUse {
            name: name.to_string(),
            container: holder.to_string(),
        }
    }
}

/// The container records of one store: `containers.json` plus `volatile-containers.json`.
pub type ContainerStore = crate::records::RecordSet<ContainerRecord>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_json_matches_upstream_sample() {
        let mut rec = ContainerRecord {
            id: "b11d".into(),
            names: vec!["ctr1".into()],
            image: "fabd".into(),
            layer: "3e80".into(),
            metadata: "cmeta".into(),
            big_data_names: vec!["somedata".into()],
            created: "2026-11-23T00:11:25Z".into(),
            ..Default::default()
        };
        rec.big_data_sizes.insert("somedata".into(), 5);
        rec.big_data_digests
            .insert("somedata".into(), "sha256:0e6e".into());
        rec.flags.insert("MountLabel".into(), "".into());
        rec.flags.insert("ProcessLabel".into(), "".into());
        assert_eq!(
            crate::gojson::to_string(&rec),
            r#"{"id":"b11d","names":["ctr1"],"image":"fabd","layer":"3e80","metadata":"cmeta","big-data-names":["somedata"],"big-data-sizes":{"somedata":5},"big-data-digests":{"somedata":"sha256:0e6e"},"created":"2026-11-23T00:11:25Z","flags":{"MountLabel":"","ProcessLabel":""}}"#
        );
    }
}
