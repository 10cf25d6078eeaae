//! The options callers give when creating layers, images and containers and when mounting.

use storage_driver::idmap::IdMappings;

/// How to create a layer.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new layer.
    pub names: Vec<String>,
    /// SELinux mount label.
    pub mount_label: String,
    /// Create an image-style (read-only) layer (`create-layer -r`).
    pub read_only: bool,
    /// ID mappings of the layer.
    pub id_mappings: IdMappings,
    /// Keep the record in the volatile file.
    pub volatile: bool,
}

/// How to create an image.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new image.
    pub names: Vec<String>,
    /// Free-form metadata.
    pub metadata: String,
    /// The image's primary digest.
    pub digest: Option<String>,
}

/// How to create a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new container.
    pub names: Vec<String>,
    /// Free-form metadata.
    pub metadata: String,
    /// Keep the container and its layer in the volatile files.
    pub volatile: bool,
    /// ID mappings of the container.
    pub id_mappings: IdMappings,
    /// SELinux mount label.
    pub mount_label: String,
}

/// How to mount a layer.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// SELinux mount label.
    pub mount_label: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Driver mount options.
    pub options: Vec<String>,
}
