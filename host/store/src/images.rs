//! Image records (`images.json`) and the image store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One image record, with upstream's JSON keys in upstream's order (upstream's `images.go`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image ID.
    pub id: String,
    /// Primary digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Names (unique among images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Every name given through add/set-names, newest first.
    #[serde(
        default,
        rename = "names-history",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names_history: Vec<String>,
    /// Top layer ID.
    #[serde(default, rename = "layer", skip_serializing_if = "String::is_empty")]
    pub top_layer: String,
    /// Copies of the top layer with other ID mappings.
    #[serde(
        default,
        rename = "mapped-layers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mapped_top_layers: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Keys of the image's big data.
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
    /// Flags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, serde_json::Value>,
    /// `digest` plus the digests of every `manifest*` big-data item (computed; not serialized).
    #[serde(skip)]
    pub digests: Vec<String>,
    /// The image comes from a read-only store (not serialized).
    #[serde(skip)]
    pub read_only: bool,
}

impl crate::records::Record for ImageRecord {
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
        crate::records::Location::Stable
    }
    fn set_location(&mut self, _location: crate::records::Location) {}
    fn digests(&self) -> Vec<&str> {
        self.digests.iter().map(String::as_str).collect()
    }
    fn name_in_use(name: &str, holder: &str) -> crate::error::StoreError {
        crate::error::StoreError::ImageNameInUse {
            name: name.to_string(),
            image: holder.to_string(),
        }
    }
}

impl ImageRecord {
    /// Recomputes `digests`: `digest` plus the digests of every `manifest*` big-data item,
    /// without duplicates.
    pub fn recompute_digests(&mut self) {
        let mut digests: Vec<String> = Vec::new();
        if !self.digest.is_empty() {
            digests.push(self.digest.clone());
        }
        for key in &self.big_data_names {
            if key.starts_with("manifest") {
                if let Some(d) = self.big_data_digests.get(key) {
                    if !digests.contains(d) {
                        digests.push(d.clone());
                    }
                }
            }
        }
        self.digests = digests;
    }
}

/// The image records of one store: `images.json`.
pub type ImageStore = crate::records::RecordSet<ImageRecord>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_json_key_order_and_digests() {
        let mut rec = ImageRecord {
            id: "fabd".into(),
            digest: "sha256:aa".into(),
            names: vec!["img1".into()],
            names_history: vec!["img1".into()],
            top_layer: "c7c6".into(),
            big_data_names: vec!["manifest".into(), "manifest-x".into(), "cfg".into()],
            created: "2026-11-23T00:11:25Z".into(),
            ..Default::default()
        };
        rec.big_data_digests
            .insert("manifest".into(), "sha256:aa".into());
        rec.big_data_digests
            .insert("manifest-x".into(), "sha256:bb".into());
        rec.big_data_digests
            .insert("cfg".into(), "sha256:cc".into());
        rec.recompute_digests();
        assert_eq!(
            rec.digests,
            vec!["sha256:aa".to_string(), "sha256:bb".to_string()]
        );
        rec.big_data_digests.clear();
        rec.big_data_names.clear();
        assert_eq!(
            crate::gojson::to_string(&rec),
            r#"{"id":"fabd","digest":"sha256:aa","names":["img1"],"names-history":["img1"],"layer":"c7c6","created":"2026-11-23T00:11:25Z"}"#
        );
    }
}
