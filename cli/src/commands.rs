//! The command table: every command of upstream's `containers-storage` with its aliases,
//! argument counts, flags, usage line and action (spec §1.3).

use crate::actions::{self, Action};
use crate::flags::{
    flag as f, FlagKind, FlagSpec, FILE, FORCE, ID, ID_MAP_FLAGS, JSON, LABEL, METADATA,
    METADATA_FILE, NAME, QUIET,
};

/// One command.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Its names; the first is the one listed in usage, the others are aliases.
    pub names: &'static [&'static str],
    /// What follows the command name in its usage line.
    pub options_help: &'static str,
    /// One line describing it.
    pub usage: &'static str,
    /// Fewest positional arguments.
    pub min_args: usize,
    /// Most positional arguments; `None` is unlimited (upstream's `maxArgs: 0`).
    pub max_args: Option<usize>,
    /// Its own flags (the global flags come on top).
    pub flags: &'static [FlagSpec],
    /// What it does.
    pub action: Action,
}

impl CommandSpec {
    /// The command's listed name.
    pub fn name(&self) -> &'static str {
        self.names[0]
    }
}

const fn cmd(
    names: &'static [&'static str],
    options_help: &'static str,
    usage: &'static str,
    min_args: usize,
    max_args: Option<usize>,
    flags: &'static [FlagSpec],
    action: Action,
) -> CommandSpec {
    CommandSpec {
        names,
        options_help,
        usage,
        min_args,
        max_args,
        flags,
        action,
    }
}

const LAYERS_FLAGS: &[FlagSpec] = &[
    f(&["tree"], Some('t'), FlagKind::Bool, "Use a tree"),
    f(&["quick"], Some('q'), FlagKind::Bool, "Just the IDs"),
    JSON,
];
const READONLY: FlagSpec = f(
    &["readonly"],
    Some('r'),
    FlagKind::Bool,
    "Mark as read-only",
);
const CREATE_LAYER_FLAGS: &[FlagSpec] = &[
    LABEL,
    NAME,
    ID,
    READONLY,
    JSON,
    ID_MAP_FLAGS[0],
    ID_MAP_FLAGS[1],
    ID_MAP_FLAGS[2],
    ID_MAP_FLAGS[3],
    ID_MAP_FLAGS[4],
    ID_MAP_FLAGS[5],
];
const CREATE_STORAGE_LAYER_FLAGS: &[FlagSpec] = &[
    LABEL,
    ID,
    READONLY,
    JSON,
    ID_MAP_FLAGS[0],
    ID_MAP_FLAGS[1],
    ID_MAP_FLAGS[2],
    ID_MAP_FLAGS[3],
    ID_MAP_FLAGS[4],
    ID_MAP_FLAGS[5],
];
const IMPORT_LAYER_FLAGS: &[FlagSpec] = &[
    LABEL,
    NAME,
    ID,
    READONLY,
    JSON,
    f(
        &["file"],
        Some('f'),
        FlagKind::Value,
        "Read from file instead of stdin",
    ),
    ID_MAP_FLAGS[0],
    ID_MAP_FLAGS[1],
    ID_MAP_FLAGS[2],
    ID_MAP_FLAGS[3],
    ID_MAP_FLAGS[4],
    ID_MAP_FLAGS[5],
];
const CREATE_IMAGE_FLAGS: &[FlagSpec] = &[
    NAME,
    ID,
    f(&["digest"], Some('d'), FlagKind::Value, "Image Digest"),
    METADATA,
    METADATA_FILE,
    JSON,
];
const CREATE_CONTAINER_FLAGS: &[FlagSpec] = &[
    NAME,
    ID,
    METADATA,
    METADATA_FILE,
    JSON,
    f(
        &["volatile"],
        None,
        FlagKind::Bool,
        "Create a volatile container",
    ),
    ID_MAP_FLAGS[0],
    ID_MAP_FLAGS[1],
    ID_MAP_FLAGS[2],
    ID_MAP_FLAGS[3],
    ID_MAP_FLAGS[4],
    ID_MAP_FLAGS[5],
];
const JSON_ONLY: &[FlagSpec] = &[JSON];
const JSON_QUIET: &[FlagSpec] = &[JSON, QUIET];
const FILE_ONLY: &[FlagSpec] = &[FILE];
const EXISTS_FLAGS: &[FlagSpec] = &[
    QUIET,
    f(
        &["layer"],
        Some('l'),
        FlagKind::Bool,
        "Only succeed if the match is a layer",
    ),
    f(
        &["image"],
        Some('i'),
        FlagKind::Bool,
        "Only succeed if the match is an image",
    ),
    f(
        &["container"],
        Some('c'),
        FlagKind::Bool,
        "Only succeed if the match is a container",
    ),
    JSON,
];
const DELETE_IMAGE_FLAGS: &[FlagSpec] = &[
    f(&["test"], Some('t'), FlagKind::Bool, "Only test removal"),
    JSON,
];
const SET_METADATA_FLAGS: &[FlagSpec] = &[METADATA, METADATA_FILE];
const NAMES_FLAGS: &[FlagSpec] = &[NAME, JSON];
const MOUNT_FLAGS: &[FlagSpec] = &[
    f(&["opt"], Some('o'), FlagKind::Value, "Mount Options"),
    LABEL,
    f(
        &["read-only", "ro"],
        Some('r'),
        FlagKind::Bool,
        "Mount image readonly",
    ),
    JSON,
];
const FORCE_JSON: &[FlagSpec] = &[FORCE, JSON];
const DIFF_FLAGS: &[FlagSpec] = &[
    f(
        &["file"],
        Some('f'),
        FlagKind::Value,
        "Write to file instead of stdout",
    ),
    f(
        &["uncompressed"],
        Some('u'),
        FlagKind::Bool,
        "Use no compression",
    ),
    f(&["gzip"], Some('c'), FlagKind::Bool, "Compress using gzip"),
    f(
        &["bzip2", "bz2"],
        Some('b'),
        FlagKind::Bool,
        "Compress using bzip2 (not currently supported)",
    ),
    f(
        &["xz"],
        Some('x'),
        FlagKind::Bool,
        "Compress using xz (not currently supported)",
    ),
];
const APPLYDIFF_FLAGS: &[FlagSpec] = &[f(
    &["file"],
    Some('f'),
    FlagKind::Value,
    "Read from file instead of stdin",
)];
const COPY_FLAGS: &[FlagSpec] = &[
    f(
        &["chown"],
        Some('o'),
        FlagKind::Value,
        "Set owner on new copies",
    ),
    JSON,
];
const CHECK_FLAGS: &[FlagSpec] = &[
    JSON,
    f(
        &["max"],
        Some('m'),
        FlagKind::Value,
        "Maximum allowed age for unreferenced layers",
    ),
    f(
        &["repair"],
        Some('r'),
        FlagKind::Bool,
        "Remove damaged images and layers",
    ),
    f(
        &["force"],
        Some('f'),
        FlagKind::Bool,
        "Remove damaged containers",
    ),
    f(
        &["quick"],
        Some('q'),
        FlagKind::Bool,
        "Perform only quicker checks",
    ),
];
const DEDUP_FLAGS: &[FlagSpec] = &[
    JSON,
    f(
        &["hash-method"],
        None,
        FlagKind::Value,
        "Specify the hash function to use to detect identical files",
    ),
];

const IMPORT_OCI_FLAGS: &[FlagSpec] = &[
    NAME,
    f(
        &["all"],
        None,
        FlagKind::Bool,
        "Import every image the layout's index lists",
    ),
    f(
        &["platform"],
        None,
        FlagKind::Value,
        "Platform to pick from a multi-platform index (os/arch[/variant])",
    ),
    JSON,
];
const PRUNE_FLAGS: &[FlagSpec] = &[
    f(
        &["dry-run"],
        None,
        FlagKind::Bool,
        "Only print what would be removed",
    ),
    f(
        &["dangling"],
        None,
        FlagKind::Bool,
        "Also remove images without names",
    ),
    JSON,
];

/// Every command, in the order upstream's usage lists them.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        &["check"],
        "[options [...]]",
        "Check storage consistency",
        0,
        None,
        CHECK_FLAGS,
        actions::misc::check,
    ),
    cmd(
        &["config"],
        "[configurationFile]",
        "Print storage library configuration as JSON",
        0,
        Some(1),
        &[],
        actions::misc::config,
    ),
    cmd(
        &["container"],
        "[options [...]] containerNameOrID [...]",
        "Examine a container",
        1,
        None,
        JSON_ONLY,
        actions::containers::container,
    ),
    cmd(
        &["list-container-data", "listcontainerdata"],
        "[options [...]] containerNameOrID",
        "List data items that are attached to an container",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_container_data,
    ),
    cmd(
        &["get-container-data", "getcontainerdata"],
        "[options [...]] containerNameOrID dataName",
        "Get data that is attached to an container",
        2,
        None,
        FILE_ONLY,
        actions::data::get_container_data,
    ),
    cmd(
        &["get-container-data-size", "getcontainerdatasize"],
        "[options [...]] containerNameOrID dataName",
        "Get size of data that is attached to an container",
        2,
        None,
        &[],
        actions::data::get_container_data_size,
    ),
    cmd(
        &["get-container-data-digest", "getcontainerdatadigest"],
        "[options [...]] containerNameOrID dataName",
        "Get digest of data that is attached to an container",
        2,
        None,
        &[],
        actions::data::get_container_data_digest,
    ),
    cmd(
        &["set-container-data", "setcontainerdata"],
        "[options [...]] containerNameOrID dataName",
        "Set data that is attached to an container",
        2,
        None,
        FILE_ONLY,
        actions::data::set_container_data,
    ),
    cmd(
        &["get-container-dir", "getcontainerdir"],
        "[options [...]] containerNameOrID",
        "Find the container's associated data directory",
        1,
        None,
        &[],
        actions::data::get_container_dir,
    ),
    cmd(
        &["get-container-run-dir", "getcontainerrundir"],
        "[options [...]] containerNameOrID",
        "Find the container's associated runtime directory",
        1,
        None,
        &[],
        actions::data::get_container_run_dir,
    ),
    cmd(
        &["container-parent-owners"],
        "[options [...]] containerNameOrID [...]",
        "Compute the set of unmapped parent UIDs and GIDs of the container",
        1,
        None,
        JSON_ONLY,
        actions::containers::container_parent_owners,
    ),
    cmd(
        &["containers"],
        "[options [...]]",
        "List containers",
        0,
        None,
        JSON_ONLY,
        actions::containers::containers,
    ),
    cmd(
        &["copy"],
        "[options [...]] [sourceLayerNameOrID:]/path [...] [destinationLayerNameOrID:]/path",
        "Copy files or directories into a layer, possibly from another layer",
        2,
        None,
        COPY_FLAGS,
        actions::copy::copy,
    ),
    cmd(
        &["create-layer", "createlayer"],
        "[options [...]] [parentLayerNameOrID]",
        "Create a new layer",
        0,
        Some(1),
        CREATE_LAYER_FLAGS,
        actions::layers::create_layer,
    ),
    cmd(
        &["create-storage-layer"],
        "[options [...]] [parentLayerNameOrID]",
        "Create a new layer only in the storage driver",
        0,
        Some(1),
        CREATE_STORAGE_LAYER_FLAGS,
        actions::layers::create_storage_layer,
    ),
    cmd(
        &["import-layer", "importlayer"],
        "[options [...]] [parentLayerNameOrID]",
        "Import a new layer",
        0,
        Some(1),
        IMPORT_LAYER_FLAGS,
        actions::layers::import_layer,
    ),
    cmd(
        &["create-image", "createimage"],
        "[options [...]] topLayerNameOrID",
        "Create a new image using layers",
        0,
        Some(1),
        CREATE_IMAGE_FLAGS,
        actions::images::create_image,
    ),
    cmd(
        &["import-oci"],
        "[options [...]] layoutDirectory[:reference]",
        "Import an image from an OCI image layout",
        1,
        Some(1),
        IMPORT_OCI_FLAGS,
        actions::oci::import_oci,
    ),
    cmd(
        &["export-oci"],
        "[options [...]] imageNameOrID layoutDirectory[:reference]",
        "Export an image to an OCI image layout",
        2,
        Some(2),
        JSON_ONLY,
        actions::oci::export_oci,
    ),
    cmd(
        &["verify"],
        "[options [...]] imageNameOrID [...]",
        "Verify that an image's layers and data are present and intact",
        1,
        None,
        JSON_ONLY,
        actions::oci::verify,
    ),
    cmd(
        &["prune"],
        "[options [...]]",
        "Remove layers no image or container uses",
        0,
        None,
        PRUNE_FLAGS,
        actions::oci::prune,
    ),
    cmd(
        &["create-container", "createcontainer"],
        "[options [...]] parentImageNameOrID",
        "Create a new container from an image",
        1,
        Some(1),
        CREATE_CONTAINER_FLAGS,
        actions::containers::create_container,
    ),
    cmd(
        &["dedup"],
        "[options [...]]",
        "Dedup all images",
        0,
        None,
        DEDUP_FLAGS,
        actions::misc::dedup,
    ),
    cmd(
        &["delete"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Delete a layer or image or container, with no safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete,
    ),
    cmd(
        &["delete-layer", "deletelayer"],
        "[LayerNameOrID [...]]",
        "Delete a layer, with safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete_layer,
    ),
    cmd(
        &["delete-image", "deleteimage"],
        "[ImageNameOrID [...]]",
        "Delete an image, with safety checks",
        1,
        None,
        DELETE_IMAGE_FLAGS,
        actions::delete::delete_image,
    ),
    cmd(
        &["delete-container", "deletecontainer"],
        "[ContainerNameOrID [...]]",
        "Delete a container, with safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete_container,
    ),
    cmd(
        &["changes"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        JSON_ONLY,
        actions::diff::changes,
    ),
    cmd(
        &["diffsize", "diff-size"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        &[],
        actions::diff::diff_size,
    ),
    cmd(
        &["diff"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        DIFF_FLAGS,
        actions::diff::diff,
    ),
    cmd(
        &["applydiff", "apply-diff"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Apply a diff to a layer",
        1,
        Some(1),
        APPLYDIFF_FLAGS,
        actions::diff::apply_diff,
    ),
    cmd(
        &["applydiff-using-staging-dir"],
        "layerNameOrID directory",
        "Apply a diff to a layer using a staging directory",
        2,
        Some(2),
        &[],
        actions::diff::apply_diff_using_staging_dir,
    ),
    cmd(
        &["exists"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Check if a layer or image or container exists",
        1,
        None,
        EXISTS_FLAGS,
        actions::names::exists,
    ),
    cmd(
        &["gc"],
        "[options [...]]",
        "Perform garbage collection",
        0,
        None,
        JSON_ONLY,
        actions::misc::gc,
    ),
    cmd(
        &["image"],
        "[options [...]] imageNameOrID [...]",
        "Examine an image",
        1,
        None,
        JSON_ONLY,
        actions::images::image,
    ),
    cmd(
        &["list-image-data", "listimagedata"],
        "[options [...]] imageNameOrID",
        "List data items that are attached to an image",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_image_data,
    ),
    cmd(
        &["get-image-data", "getimagedata"],
        "[options [...]] imageNameOrID dataName",
        "Get data that is attached to an image",
        2,
        None,
        FILE_ONLY,
        actions::data::get_image_data,
    ),
    cmd(
        &["get-image-data-size", "getimagedatasize"],
        "[options [...]] imageNameOrID dataName",
        "Get size of data that is attached to an image",
        2,
        None,
        &[],
        actions::data::get_image_data_size,
    ),
    cmd(
        &["get-image-data-digest", "getimagedatadigest"],
        "[options [...]] imageNameOrID dataName",
        "Get digest of data that is attached to an image",
        2,
        None,
        &[],
        actions::data::get_image_data_digest,
    ),
    cmd(
        &["set-image-data", "setimagedata"],
        "[options [...]] imageNameOrID dataName",
        "Set data that is attached to an image",
        2,
        None,
        FILE_ONLY,
        actions::data::set_image_data,
    ),
    cmd(
        &["get-image-dir", "getimagedir"],
        "[options [...]] imageNameOrID",
        "Find the image's associated data directory",
        1,
        None,
        &[],
        actions::data::get_image_dir,
    ),
    cmd(
        &["get-image-run-dir", "getimagerundir"],
        "[options [...]] imageNameOrID",
        "Find the image's associated runtime directory",
        1,
        None,
        &[],
        actions::data::get_image_run_dir,
    ),
    cmd(
        &["images"],
        "[options [...]]",
        "List images",
        0,
        None,
        JSON_QUIET,
        actions::images::images,
    ),
    cmd(
        &["images-by-digest"],
        "[options [...]] DIGEST",
        "List images by digest",
        1,
        Some(1),
        JSON_QUIET,
        actions::images::images_by_digest,
    ),
    cmd(
        &["layer"],
        "[options [...]] layerNameOrID [...]",
        "Examine a layer",
        1,
        None,
        JSON_ONLY,
        actions::layers::layer,
    ),
    cmd(
        &["layer-parent-owners"],
        "[options [...]] layerNameOrID [...]",
        "Compute the set of unmapped parent UIDs and GIDs of the layer",
        1,
        None,
        JSON_ONLY,
        actions::layers::layer_parent_owners,
    ),
    cmd(
        &["list-layer-data", "listlayerdata"],
        "[options [...]] layerNameOrID",
        "List data items that are attached to a layer",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_layer_data,
    ),
    cmd(
        &["get-layer-data", "getlayerdata"],
        "[options [...]] layerID dataName",
        "Get data that is attached to a layer",
        2,
        None,
        FILE_ONLY,
        actions::data::get_layer_data,
    ),
    cmd(
        &["set-layer-data", "setlayerdata"],
        "[options [...]] layerID dataName",
        "Set data that is attached to a layer",
        2,
        None,
        FILE_ONLY,
        actions::data::set_layer_data,
    ),
    cmd(
        &["layers"],
        "[options [...]]",
        "List layers",
        0,
        None,
        LAYERS_FLAGS,
        actions::layers::layers,
    ),
    cmd(
        &["storage-layers"],
        "[options [...]]",
        "List storage layers",
        0,
        None,
        JSON_ONLY,
        actions::layers::storage_layers,
    ),
    cmd(
        &["metadata"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Retrieve layer, image, or container metadata",
        1,
        None,
        JSON_QUIET,
        actions::names::metadata,
    ),
    cmd(
        &["set-metadata", "setmetadata"],
        "[options [...]] layerOrImageOrContainerNameOrID",
        "Set layer, image, or container metadata",
        1,
        Some(1),
        SET_METADATA_FLAGS,
        actions::names::set_metadata,
    ),
    cmd(
        &["mount"],
        "[options [...]] LayerOrContainerNameOrID",
        "Mount a layer or container",
        1,
        None,
        MOUNT_FLAGS,
        actions::mounts::mount,
    ),
    cmd(
        &["unmount", "umount"],
        "LayerOrContainerNameOrID",
        "Unmount an image, layer or container",
        1,
        None,
        FORCE_JSON,
        actions::mounts::unmount,
    ),
    cmd(
        &["mounted"],
        "LayerOrContainerNameOrID",
        "Check if a file system is mounted",
        1,
        None,
        JSON_ONLY,
        actions::mounts::mounted,
    ),
    cmd(
        &["get-names", "getnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Get layer, image, or container name or names",
        1,
        Some(1),
        JSON_ONLY,
        actions::names::get_names,
    ),
    cmd(
        &["add-names", "addnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Add layer, image, or container name or names",
        1,
        Some(1),
        NAMES_FLAGS,
        actions::names::add_names,
    ),
    cmd(
        &["remove-names", "removenames"],
        "[options [...]] imageOrContainerNameOrID",
        "Remove layer, image, or container name or names",
        1,
        Some(1),
        NAMES_FLAGS,
        actions::names::remove_names,
    ),
    cmd(
        &["set-names", "setnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Set layer, image, or container name or names",
        1,
        Some(1),
        NAMES_FLAGS,
        actions::names::set_names,
    ),
    cmd(
        &["shutdown"],
        "[options [...]]",
        "Shut down layer storage",
        0,
        None,
        FORCE_JSON,
        actions::misc::shutdown,
    ),
    cmd(
        &["status"],
        "[options [...]]",
        "Check on graph driver status",
        0,
        None,
        JSON_ONLY,
        actions::misc::status,
    ),
    cmd(
        &["unshare"],
        "[options [...]] [command [...]]",
        "Run a command in a user namespace",
        0,
        None,
        &[],
        actions::unshare::unshare_command,
    ),
    cmd(
        &["version"],
        "[options [...]]",
        "Return containers-storage version information",
        0,
        None,
        JSON_ONLY,
        actions::misc::version,
    ),
    cmd(
        &["wipe"],
        "[options [...]]",
        "Wipe all layers, images, and containers",
        0,
        None,
        JSON_ONLY,
        actions::misc::wipe,
    ),
];

/// The command called `name` (its listed name or an alias).
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = BTreeSet::new();
        for c in COMMANDS {
            for n in c.names {
                assert!(seen.insert(*n), "duplicate command name {n}");
            }
        }
    }

    #[test]
    fn flag_spellings_are_unique_per_command_including_globals() {
        for c in COMMANDS {
            let mut seen = BTreeSet::new();
            for fl in c.flags.iter().chain(crate::flags::GLOBAL_FLAGS) {
                for l in fl.long {
                    assert!(seen.insert(format!("--{l}")), "{}: --{l}", c.name());
                }
                if let Some(s) = fl.short {
                    assert!(seen.insert(format!("-{s}")), "{}: -{s}", c.name());
                }
            }
        }
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(find("umount").map(|c| c.name()), Some("unmount"));
        assert_eq!(find("createlayer").map(|c| c.name()), Some("create-layer"));
        assert_eq!(find("diff-size").map(|c| c.name()), Some("diffsize"));
        assert!(find("bogus").is_none());
    }
}
