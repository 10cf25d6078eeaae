//! The documents of an OCI image layout and the decisions made on them alone: which
//! images of an index to take, which platform fits, what a media type means. Parsers take
//! bytes and do no I/O; reading blobs is `blob`'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{OciError, Result};
use crate::compress::Compression;

/// `oci-layout`'s content as this side writes it.
pub const LAYOUT_FILE_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation naming an image of a layout (what `DIR:REF` refers to).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// An OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed OCI layer.
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip-compressed OCI layer.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd-compressed OCI layer.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// A Docker schema 2 manifest.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What a manifest-level media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker schema 2).
    Image,
    /// An index of manifests (OCI index or Docker manifest list).
    Index,
}

/// What a descriptor in an index points at.
pub fn manifest_kind(media_type: &str) -> Result<ManifestKind> {
    match media_type {
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => Ok(ManifestKind::Image),
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => Ok(ManifestKind::Index),
        other => Err(OciError::UnknownMediaType {
            what: "manifest",
            media_type: other.to_string(),
        }),
    }
}

/// Checks that a config media type is an image config.
pub fn check_config_media_type(media_type: &str) -> Result<()> {
    match media_type {
        MEDIA_OCI_CONFIG | MEDIA_DOCKER_CONFIG => Ok(()),
        other => Err(OciError::UnknownMediaType {
            what: "config",
            media_type: other.to_string(),
        }),
    }
}

/// The compression a layer media type announces.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    let base = media_type.replace(".nondistributable.", ".");
    match base.as_str() {
        MEDIA_OCI_LAYER => Ok(Compression::None),
        MEDIA_OCI_LAYER_GZIP
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        MEDIA_OCI_LAYER_ZSTD => Ok(Compression::Zstd),
        _ => Err(OciError::UnknownMediaType {
            what: "layer",
            media_type: media_type.to_string(),
        }),
    }
}

/// The OCI layer media type for a compression this side writes.
pub fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => MEDIA_OCI_LAYER_GZIP,
        Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
        _ => MEDIA_OCI_LAYER,
    }
}

/// A content descriptor: what a blob is, its digest and size, and where it fits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The blob's media type.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// `algorithm:hex`.
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// The platform of the image it points at (entries of a multi-platform index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (`org.opencontainers.image.ref.name` names the image).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this side does not interpret (`urls`, `artifactType`, ...), kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// The reference annotation, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
            .filter(|r| !r.is_empty())
    }
}

/// A platform: OS, architecture and variant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// OS features (Windows).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// Parses `os/arch[/variant]` (the form of `--platform`).
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(OciError::InvalidPlatform(text.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts
                .get(2)
                .map(|v| v.to_ascii_lowercase())
                .unwrap_or_default(),
            ..Default::default()
        })
    }

    /// The platform this program runs on, in OCI's (Go's) spelling.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        let variant = match architecture {
            "arm" => "v7",
            _ => "",
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
            ..Default::default()
        }
    }

    /// Whether an image built for `self` runs where `wanted` is asked for: same OS and
    /// architecture, and the same variant when `wanted` names one (`arm64` without a
    /// variant is `arm64/v8`).
    pub fn matches(&self, wanted: &Platform) -> bool {
        let normal = |p: &Platform| -> String {
            match (p.architecture.as_str(), p.variant.as_str()) {
                ("arm64", "") => "v8".to_string(),
                _ => p.variant.clone(),
            }
        };
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_empty() || normal(self) == normal(wanted))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// `index.json`, or a nested image index / manifest list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's own media type (optional in OCI).
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this side does not interpret, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An image manifest (OCI, or Docker schema 2, which has the same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI, required by Docker).
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this side does not interpret, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The parts of an image config this side reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ImageConfig {
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One uncompressed digest per layer, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

fn parse_json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Json {
        what: what.to_string(),
        source,
    })
}

/// Parses `oci-layout`: it must be an object with `imageLayoutVersion` 1.x.
pub fn parse_layout_file(bytes: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct LayoutFile {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let file: LayoutFile = parse_json("oci-layout", bytes)?;
    if file.version.split('.').next() != Some("1") {
        return Err(OciError::NotALayout(format!(
            "unsupported image layout version {:?}",
            file.version
        )));
    }
    Ok(())
}

/// Parses `index.json` (or a nested index): schema version 2, descriptors with digests.
pub fn parse_index(what: &str, bytes: &[u8]) -> Result<Index> {
    let index: Index = parse_json(what, bytes)?;
    if index.schema_version != 2 {
        return Err(OciError::NotALayout(format!(
            "{what}: unsupported schema version {}",
            index.schema_version
        )));
    }
    for d in &index.manifests {
        check_digest(&d.digest)?;
    }
    Ok(index)
}

/// Parses an image manifest: schema version 2, known config media type, digests valid.
pub fn parse_manifest(what: &str, bytes: &[u8]) -> Result<Manifest> {
    let manifest: Manifest = parse_json(what, bytes)?;
    if manifest.schema_version != 2 {
        return Err(OciError::Inconsistent(format!(
            "{what}: unsupported schema version {}",
            manifest.schema_version
        )));
    }
    if !manifest.media_type.is_empty()
        && manifest_kind(&manifest.media_type)? != ManifestKind::Image
    {
        return Err(OciError::UnknownMediaType {
            what: "manifest",
            media_type: manifest.media_type.clone(),
        });
    }
    check_config_media_type(&manifest.config.media_type)?;
    check_digest(&manifest.config.digest)?;
    for layer in &manifest.layers {
        check_digest(&layer.digest)?;
        layer_compression(&layer.media_type)?;
    }
    Ok(manifest)
}

/// Parses an image config.
pub fn parse_config(what: &str, bytes: &[u8]) -> Result<ImageConfig> {
    // Go's encoding/json fills a struct from a JSON object only; serde's derive also takes an
    // array of the fields in order. The config and its `rootfs` must be objects, as for Go
    // (skopeo, podman) and for export-oci, which edits them as objects.
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "rootfs")]
        _rootfs: BTreeMap<String, serde::de::IgnoredAny>,
    }
    let _: BTreeMap<String, serde::de::IgnoredAny> = parse_json(what, bytes)?;
    let _: Shape = parse_json(what, bytes)?;
    let config: ImageConfig = parse_json(what, bytes)?;
    for d in &config.rootfs.diff_ids {
        check_digest(d)?;
    }
    Ok(config)
}

/// Checks that `digest` is `sha256:<64 lower hex>` or `sha512:<128 lower hex>`, so it
/// can name a file under `blobs/` and nothing else; returns (algorithm, hex).
pub fn check_digest(digest: &str) -> Result<(&str, &str)> {
    let bad = || OciError::InvalidDigest(digest.to_string());
    let (alg, hex) = digest.split_once(':').ok_or_else(bad)?;
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    Ok((alg, hex))
}

/// `DIR[:REF]`: a layout directory and, optionally, the image's reference in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The reference (`org.opencontainers.image.ref.name`), if given.
    pub reference: Option<String>,
}

impl LayoutRef {
    /// Splits at the first `:`, as containers/image's `oci:` transport does (a directory
    /// name cannot hold a colon there either); an empty reference is none.
    pub fn parse(text: &str) -> LayoutRef {
        match text.split_once(':') {
            Some((dir, reference)) => LayoutRef {
                dir: PathBuf::from(dir),
                reference: (!reference.is_empty()).then(|| reference.to_string()),
            },
            None => LayoutRef {
                dir: PathBuf::from(text),
                reference: None,
            },
        }
    }
}

/// The entries of `index.json` to import: those named `reference`; without one, every
/// entry with `all`, else the only entry (or the only one fitting `platform` when the
/// entries carry platforms).
pub fn choose_entries<'a>(
    index: &'a Index,
    reference: Option<&str>,
    all: bool,
    platform: &Platform,
) -> Result<Vec<&'a Descriptor>> {
    let entries: Vec<&Descriptor> = match reference {
        Some(r) => {
            let named: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(r))
                .collect();
            if named.is_empty() {
                return Err(OciError::Selection(format!(
                    "no image named {r:?} in the layout (refs: {})",
                    refs_list(index)
                )));
            }
            named
        }
        None => index.manifests.iter().collect(),
    };
    if entries.is_empty() {
        return Err(OciError::Selection(
            "index.json lists no images".to_string(),
        ));
    }
    if all || entries.len() == 1 {
        return Ok(entries);
    }
    if entries.iter().all(|d| d.platform.is_some()) {
        return Ok(vec![choose_platform(&entries, platform)?]);
    }
    Err(OciError::Selection(format!(
        "the layout holds {} images (refs: {}): name one as DIR:REF, or use --all",
        entries.len(),
        refs_list(index)
    )))
}

/// The entry of a multi-platform index that fits `platform` (the first that does).
pub fn choose_platform<'a>(
    entries: &[&'a Descriptor],
    platform: &Platform,
) -> Result<&'a Descriptor> {
    entries
        .iter()
        .copied()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
        .ok_or_else(|| {
            let offered: Vec<String> = entries
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            OciError::Selection(format!(
                "no image for platform {platform} in the index (it has {})",
                offered.join(", ")
            ))
        })
}

fn refs_list(index: &Index) -> String {
    let refs: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(Descriptor::ref_name)
        .collect();
    if refs.is_empty() {
        "none".to_string()
    } else {
        refs.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn entry(digest: &str, reference: Option<&str>, platform: Option<&str>) -> Descriptor {
        let mut d = Descriptor {
            media_type: MEDIA_OCI_MANIFEST.to_string(),
            digest: digest.to_string(),
            size: 10,
            platform: platform.map(|p| Platform::parse(p).expect("platform")),
            ..Default::default()
        };
        if let Some(r) = reference {
            d.annotations
                .insert(REF_NAME_ANNOTATION.to_string(), r.to_string());
        }
        d
    }

    fn index(entries: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            manifests: entries,
            ..Default::default()
        }
    }

    /// Found by fuzz/oci_json: an array with the config's fields in order parsed as a
    /// config, was imported, and export-oci panicked editing it as an object.
    #[test]
    fn a_config_is_an_object() {
        let good = format!(
            r#"{{"architecture":"amd64","rootfs":{{"type":"layers","diff_ids":["{D1}"]}}}}"#
        );
        assert_eq!(
            parse_config("config", good.as_bytes())
                .expect("config")
                .rootfs
                .diff_ids,
            [D1]
        );
        for bad in [
            format!(r#"["amd64","linux","",null,{{"type":"layers","diff_ids":["{D1}"]}}]"#),
            format!(r#"{{"rootfs":["layers",["{D1}"]]}}"#),
            r#"{"rootfs":null}"#.to_string(),
            "[]".to_string(),
        ] {
            let err = parse_config("config", bad.as_bytes()).expect_err(&bad);
            assert!(matches!(err, OciError::Json { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn layout_file_and_index_parse() {
        parse_layout_file(br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
        assert!(parse_layout_file(br#"{"imageLayoutVersion":"2.0.0"}"#).is_err());
        assert!(parse_layout_file(b"{").is_err());
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D1}","size":7,"annotations":{{"{REF_NAME_ANNOTATION}":"v1"}},"urls":["x"]}}]}}"#
        );
        let idx = parse_index("index.json", text.as_bytes()).expect("index");
        assert_eq!(idx.manifests[0].ref_name(), Some("v1"));
        assert_eq!(idx.manifests[0].size, 7);
        // Unknown fields survive a round trip.
        let again = serde_json::to_string(&idx).expect("json");
        assert!(again.contains(r#""urls":["x"]"#), "{again}");
        let broken = parse_index(
            "index.json",
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:../../etc","size":1}]}"#,
        );
        assert!(
            matches!(broken, Err(OciError::InvalidDigest(_))),
            "{broken:?}"
        );
        assert!(parse_index("index.json", b"[1,2]").is_err());
        assert!(parse_index("index.json", br#"{"schemaVersion":1,"manifests":[]}"#).is_err());
    }

    #[test]
    fn manifest_media_types_are_checked() {
        let manifest = |layer_type: &str, config_type: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}","config":{{"mediaType":"{config_type}","digest":"{D1}","size":2}},"layers":[{{"mediaType":"{layer_type}","digest":"{D2}","size":3}}]}}"#
            )
        };
        let ok = parse_manifest(
            "m",
            manifest(MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_CONFIG).as_bytes(),
        )
        .expect("manifest");
        assert_eq!(ok.layers[0].digest, D2);
        let e = parse_manifest(
            "m",
            manifest("application/x-foo", MEDIA_OCI_CONFIG).as_bytes(),
        )
        .expect_err("layer type");
        assert_eq!(
            e.to_string(),
            r#"unsupported layer media type "application/x-foo""#
        );
        let e = parse_manifest(
            "m",
            manifest(MEDIA_OCI_LAYER, "application/vnd.example.artifact").as_bytes(),
        )
        .expect_err("config type");
        assert!(e.to_string().contains("config media type"), "{e}");
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
                .expect("zstd"),
            Compression::Zstd
        );
        assert_eq!(
            layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip").expect("gz"),
            Compression::Gzip
        );
    }

    #[test]
    fn digests_must_name_a_blob_file() {
        assert!(check_digest(D1).is_ok());
        for bad in [
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256/1111",
            "sha256:../../../../../../../../../../../../../../../../../etc/passwd",
            &D1.to_uppercase(),
        ] {
            assert!(check_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64").expect("parse");
        assert_eq!(p.to_string(), "linux/arm64");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        let v8 = Platform::parse("linux/arm64/v8").expect("v8");
        assert!(p.matches(&v8), "arm64 means arm64/v8");
        assert!(v8.matches(&p));
        let arm7 = Platform::parse("linux/arm/v7").expect("v7");
        let arm6 = Platform::parse("linux/arm/v6").expect("v6");
        assert!(!arm6.matches(&arm7));
        assert!(arm6.matches(&Platform::parse("linux/arm").expect("arm")));
        assert!(!p.matches(&Platform::parse("windows/arm64").expect("win")));
        let host = Platform::host();
        assert!(host.matches(&host));
        assert_eq!(host.os, "linux");
    }

    #[test]
    fn entries_by_reference_platform_or_all() {
        let amd = Platform::parse("linux/amd64").expect("amd64");
        let idx = index(vec![entry(D1, Some("a"), None), entry(D2, Some("b"), None)]);
        assert_eq!(
            choose_entries(&idx, Some("b"), false, &amd).expect("b")[0].digest,
            D2
        );
        let e = choose_entries(&idx, None, false, &amd).expect_err("two");
        assert_eq!(
            e.to_string(),
            "the layout holds 2 images (refs: a, b): name one as DIR:REF, or use --all"
        );
        assert_eq!(
            choose_entries(&idx, None, true, &amd).expect("all").len(),
            2
        );
        let e = choose_entries(&idx, Some("c"), false, &amd).expect_err("c");
        assert!(e.to_string().contains("no image named \"c\""), "{e}");
        let multi = index(vec![
            entry(D1, None, Some("linux/arm64")),
            entry(D2, None, Some("linux/amd64")),
        ]);
        assert_eq!(
            choose_entries(&multi, None, false, &amd).expect("amd")[0].digest,
            D2
        );
        let s390 = Platform::parse("linux/s390x").expect("s390x");
        let e = choose_entries(&multi, None, false, &s390).expect_err("none");
        assert_eq!(
            e.to_string(),
            "no image for platform linux/s390x in the index (it has linux/arm64, linux/amd64)"
        );
        assert!(choose_entries(&index(vec![]), None, false, &amd).is_err());
    }

    #[test]
    fn layout_refs_split_at_the_first_colon() {
        assert_eq!(
            LayoutRef::parse("/tmp/x:v1"),
            LayoutRef {
                dir: "/tmp/x".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(LayoutRef::parse("dir").reference, None);
        assert_eq!(LayoutRef::parse("dir:").reference, None);
        assert_eq!(
            LayoutRef::parse("d:example.com/a:tag").reference.as_deref(),
            Some("example.com/a:tag")
        );
    }
}
