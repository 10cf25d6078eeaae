//! The command table: every command of upstream's `containers-storage` with its aliases,
//! argument counts, flags, usage line and action (upstream's `cmd/containers-storage`).

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
    /// Most positional arguments; `None` is unlimited (upstream's `maxArgs: -1`; a command
    /// that sets none has 0 there, and takes no argument).
    pub max_args: Option<usize>,
    /// Its own flags (the global flags come on top).
    pub flags: &'static [FlagSpec],
    /// What it does.
    pub action: Action,
    /// What the man page says it does: paragraphs separated by blank lines.
    pub description: &'static str,
    /// Command lines the man page shows, with what each does.
    pub examples: &'static [Example],
}

/// An example of a command's use.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The command line, starting with the program name.
    pub command: &'static str,
    /// What it does, or "" when the command line says it all.
    pub text: &'static str,
}

const fn ex(command: &'static str, text: &'static str) -> Example {
    Example { command, text }
}

impl CommandSpec {
    /// The command's listed name.
    pub fn name(&self) -> &'static str {
        self.names[0]
    }

    /// The command with its man page description and examples.
    const fn doc(mut self, description: &'static str, examples: &'static [Example]) -> Self {
        self.description = description;
        self.examples = examples;
        self
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
        description: "",
        examples: &[],
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
    NAME.with_help("Layer name"),
    ID.with_help("Layer ID"),
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
    ID.with_help("Layer ID"),
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
    NAME.with_help("Layer name"),
    ID.with_help("Layer ID"),
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
    NAME.with_help("Image name"),
    ID.with_help("Image ID"),
    f(&["digest"], Some('d'), FlagKind::Value, "Image Digest"),
    METADATA,
    METADATA_FILE,
    JSON,
];
const CREATE_CONTAINER_FLAGS: &[FlagSpec] = &[
    NAME.with_help("Container name"),
    ID.with_help("Container ID"),
    METADATA,
    METADATA_FILE,
    JSON,
    f(&["volatile"], None, FlagKind::Bool, "Mark as volatile"),
    ID_MAP_FLAGS[0],
    ID_MAP_FLAGS[1],
    ID_MAP_FLAGS[2],
    ID_MAP_FLAGS[3],
    ID_MAP_FLAGS[4],
    ID_MAP_FLAGS[5],
];
const JSON_ONLY: &[FlagSpec] = &[JSON];
const JSON_QUIET: &[FlagSpec] = &[JSON, QUIET];
const WRITE_FILE: &[FlagSpec] = &[FILE.with_help("Write data to file")];
const READ_FILE: &[FlagSpec] = &[FILE.with_help("Read data from file")];
const EXISTS_FLAGS: &[FlagSpec] = &[
    QUIET.with_help("Don't print names"),
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
const ADD_NAMES_FLAGS: &[FlagSpec] = &[NAME.with_help("Name to add"), JSON];
const REMOVE_NAMES_FLAGS: &[FlagSpec] = &[NAME.with_help("Name to remove"), JSON];
const SET_NAMES_FLAGS: &[FlagSpec] = &[NAME.with_help("New name"), JSON];
const METADATA_FLAGS: &[FlagSpec] = &[JSON, QUIET.with_help("Omit names and IDs")];
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
const UNMOUNT_FLAGS: &[FlagSpec] = &[FORCE.with_help("Force the umount"), JSON];
const SHUTDOWN_FLAGS: &[FlagSpec] = &[FORCE.with_help("Unmount mounted layers first"), JSON];
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
    )
    .with_default("24h"),
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
        "Perform only quick checks",
    ),
];
const DEDUP_FLAGS: &[FlagSpec] = &[
    JSON,
    f(
        &["hash-method"],
        None,
        FlagKind::Value,
        "Specify the hash function to use to detect identical files",
    )
    .with_default("crc"),
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

/// Every command, in the order upstream's usage lists them; ours (the OCI layout commands,
/// `verify`, `prune`) after them.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        &["check"],
        "",
        "Check storage consistency",
        0,
        Some(0),
        CHECK_FLAGS,
        actions::misc::check,
    )
    .doc(
        "Checks the layers, images and containers of the store for damage and prints each \
         problem, one object at a time. The full check re-creates the archive of every \
         layer that was imported from one (each file against its tar-split CRC-64, the \
         whole against the recorded diff digest and size), mounts every layer and compares \
         it with the archives of its chain, checks the big-data items, and reports images \
         whose layers and containers whose images are gone, layers the driver holds that \
         no record names, and unreferenced layers older than --max.\n\n\
         Without --repair, any problem makes the exit status 1 and a count of the problems \
         goes to standard error. --repair removes damaged layers and images; --force also \
         removes damaged containers and implies --repair. --quick skips the content \
         checks.",
        &[
            ex("storage check", "Check the whole store."),
            ex("storage check -q -r", "Run the quick checks and remove what is damaged."),
        ],
    ),
    cmd(
        &["config"],
        "[configurationFile]",
        "Print storage library configuration as JSON",
        0,
        Some(1),
        &[],
        actions::misc::config,
    )
    .doc(
        "Prints the storage options as JSON: those of configurationFile when one is named, \
         otherwise those that the default configuration lookup finds (see CONFIGURATION in \
         storage(1)).",
        &[
            ex("storage config", "Show the options the store would be opened with."),
            ex("storage config /etc/containers/storage.conf", "Show the options that file gives."),
        ],
    ),
    cmd(
        &["container"],
        "[options [...]] containerNameOrID [...]",
        "Examine a container",
        1,
        None,
        JSON_ONLY,
        actions::containers::container,
    )
    .doc(
        "Prints what is recorded about each named container: its ID, its names, the image \
         it was created from and that image's names, its size, the ID of its layer and the \
         keys of its big-data items. The exit status is 1 if an argument names no \
         container.",
        &[
            ex("storage container ctr1", "Examine the container named ctr1."),
        ],
    ),
    cmd(
        &["list-container-data", "listcontainerdata"],
        "[options [...]] containerNameOrID",
        "List data items that are attached to an container",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_container_data,
    )
    .doc(
        "Lists the keys of the big-data items attached to a container, one per line.",
        &[
            ex("storage list-container-data ctr1", ""),
        ],
    ),
    cmd(
        &["get-container-data", "getcontainerdata"],
        "[options [...]] containerNameOrID dataName",
        "Get data that is attached to an container",
        2,
        Some(2),
        WRITE_FILE,
        actions::data::get_container_data,
    )
    .doc(
        "Writes the big-data item dataName of a container to standard output, or to the \
         file that --file names. The exit status is 1 if the container has no such item.",
        &[
            ex(
                "storage get-container-data -f config.json ctr1 config",
                "Save the item config of ctr1 in config.json.",
            ),
        ],
    ),
    cmd(
        &["get-container-data-size", "getcontainerdatasize"],
        "[options [...]] containerNameOrID dataName",
        "Get size of data that is attached to an container",
        2,
        Some(2),
        &[],
        actions::data::get_container_data_size,
    )
    .doc(
        "Prints the size in bytes of the big-data item dataName of a container.",
        &[
            ex("storage get-container-data-size ctr1 config", ""),
        ],
    ),
    cmd(
        &["get-container-data-digest", "getcontainerdatadigest"],
        "[options [...]] containerNameOrID dataName",
        "Get digest of data that is attached to an container",
        2,
        Some(2),
        &[],
        actions::data::get_container_data_digest,
    )
    .doc(
        "Prints the digest (sha256:...) of the big-data item dataName of a container.",
        &[
            ex("storage get-container-data-digest ctr1 config", ""),
        ],
    ),
    cmd(
        &["set-container-data", "setcontainerdata"],
        "[options [...]] containerNameOrID dataName",
        "Set data that is attached to an container",
        2,
        Some(2),
        READ_FILE,
        actions::data::set_container_data,
    )
    .doc(
        "Attaches a big-data item named dataName to a container, read from standard input \
         or from the file that --file names; an item of that name is replaced.",
        &[
            ex("storage set-container-data -f config.json ctr1 config", ""),
        ],
    ),
    cmd(
        &["get-container-dir", "getcontainerdir"],
        "[options [...]] containerNameOrID",
        "Find the container's associated data directory",
        1,
        Some(1),
        &[],
        actions::data::get_container_dir,
    )
    .doc(
        "Prints the directory where the container's own files are kept \
         (GRAPHROOT/DRIVER-containers/ID/userdata), creating it if needed.",
        &[
            ex("storage get-container-dir ctr1", ""),
        ],
    ),
    cmd(
        &["get-container-run-dir", "getcontainerrundir"],
        "[options [...]] containerNameOrID",
        "Find the container's associated runtime directory",
        1,
        Some(1),
        &[],
        actions::data::get_container_run_dir,
    )
    .doc(
        "Prints the container's directory under the run root \
         (RUNROOT/DRIVER-containers/ID/userdata), creating it if needed; with the run root \
         on a tmpfs its contents are gone after a reboot.",
        &[
            ex("storage get-container-run-dir ctr1", ""),
        ],
    ),
    cmd(
        &["container-parent-owners"],
        "[options [...]] containerNameOrID [...]",
        "Compute the set of unmapped parent UIDs and GIDs of the container",
        1,
        None,
        JSON_ONLY,
        actions::containers::container_parent_owners,
    )
    .doc(
        "Prints, for each container, the UIDs and GIDs that own files in the layers below \
         the container's own layer but are outside the container's ID mappings.",
        &[
            ex("storage container-parent-owners ctr1", ""),
        ],
    ),
    cmd(
        &["containers"],
        "[options [...]]",
        "List containers",
        0,
        Some(0),
        JSON_ONLY,
        actions::containers::containers,
    )
    .doc(
        "Lists every container: its ID, then a name: line for each of its names and a \
         data: line for each big-data key.",
        &[
            ex("storage containers", ""),
            ex("storage containers -j", "The container records as JSON."),
        ],
    ),
    cmd(
        &["copy"],
        "[options [...]] [sourceLayerNameOrID:]/path [...] targetLayerNameOrID:/path",
        "Copy files or directories into a layer, possibly from another layer",
        2,
        None,
        COPY_FLAGS,
        actions::copy::copy,
    )
    .doc(
        "Copies files or directories into a layer, from the host or from another layer. \
         Each argument is a path on the host or, written LAYER:/path, a path inside a \
         layer; the last one is the destination. The layers named are mounted for the copy \
         and unmounted after it, and paths inside a layer are resolved without following \
         its symbolic links out of it. Owners are carried through the layers' ID mappings; \
         --chown UID[:GID] gives the copies that owner instead (the GID defaults to the \
         UID), mapped by the destination layer's mappings.",
        &[
            ex(
                "storage copy ./etc/motd base:/etc/motd",
                "Copy a file from the host into the layer base.",
            ),
            ex(
                "storage copy --chown 0:0 base:/etc top:/etc",
                "Copy a directory from layer base into layer top, owned by root.",
            ),
        ],
    ),
    cmd(
        &["create-storage-layer"],
        "[options [...]] [parentLayerNameOrID]",
        "Create a new layer only in the storage driver",
        0,
        Some(1),
        CREATE_STORAGE_LAYER_FLAGS,
        actions::layers::create_storage_layer,
    )
    .doc(
        "Creates a layer in the storage driver only, without a record in the layer store, \
         and prints its ID. check reports such layers, and gc removes them.",
        &[
            ex("storage create-storage-layer", ""),
        ],
    ),
    cmd(
        &["create-layer", "createlayer"],
        "[options [...]] [parentLayerNameOrID]",
        "Create a new layer",
        0,
        Some(1),
        CREATE_LAYER_FLAGS,
        actions::layers::create_layer,
    )
    .doc(
        "Creates a layer whose contents are those of parentLayerNameOrID, or an empty \
         layer when no parent is given, and prints its ID followed by its names. The \
         layer's contents can then be changed through mount or applydiff. The ID-mapping \
         flags give the layer its own UID and GID mappings; files on disk are owned by the \
         mapped IDs.",
        &[
            ex("storage create-layer -n base", "Create an empty layer named base."),
            ex(
                "storage create-layer -n child --uidmap 0:100000:65536 --gidmap 0:100000:65536 base",
                "Create a child of base whose root is UID and GID 100000 on the host.",
            ),
        ],
    ),
    cmd(
        &["import-layer", "importlayer"],
        "[options [...]] [parentLayerNameOrID]",
        "Import a new layer",
        0,
        Some(1),
        IMPORT_LAYER_FLAGS,
        actions::layers::import_layer,
    )
    .doc(
        "Creates a layer (as create-layer does) and applies a layer archive to it, read \
         from standard input or from the file that --file names: a tar archive, plain or \
         compressed with gzip, zstd, bzip2 or xz. The archive's tar-split record is kept, \
         so that diff re-creates it byte for byte, with its diff digest and size. Archives \
         with paths that leave the layer, device nodes or overlay xattrs are refused. If \
         the import fails, the layer is removed.",
        &[
            ex("storage import-layer -n base < base.tar.gz", "Import a layer from an archive."),
            ex(
                "storage import-layer -f app.tar -n app base",
                "Import app.tar as a child of the layer base.",
            ),
        ],
    ),
    cmd(
        &["create-image", "createimage"],
        "[options [...]] topLayerNameOrID",
        "Create a new image using layers",
        0,
        Some(1),
        CREATE_IMAGE_FLAGS,
        actions::images::create_image,
    )
    .doc(
        "Creates an image whose top layer is topLayerNameOrID (an image may also have no \
         layer), and prints its ID followed by its names. --digest records the digest of \
         its manifest; --metadata and --metadata-file set its metadata.",
        &[
            ex(
                "storage create-image -n myimage base",
                "Create the image myimage on top of the layer base.",
            ),
        ],
    ),
    cmd(
        &["create-container", "createcontainer"],
        "[options [...]] parentImageNameOrID",
        "Create a new container from an image",
        1,
        Some(1),
        CREATE_CONTAINER_FLAGS,
        actions::containers::create_container,
    )
    .doc(
        "Creates a container from an image: a new read-write layer whose parent is the \
         image's top layer, and the container record. Prints the container's ID followed \
         by its names. When the container's ID mappings differ from those of the image's \
         top layer, the container gets a copy of that layer with its owners mapped, which \
         is kept with the image and used again.",
        &[
            ex(
                "storage create-container -n ctr1 myimage",
                "Create the container ctr1 from myimage.",
            ),
        ],
    ),
    cmd(
        &["dedup"],
        "",
        "Dedup all images",
        0,
        Some(0),
        DEDUP_FLAGS,
        actions::misc::dedup,
    )
    .doc(
        "Shares the storage of identical files among the layers of the images \
         (FIDEDUPERANGE), on file systems with reflinks (btrfs, xfs), and prints how many \
         bytes were deduplicated; elsewhere it reports 0 bytes. --hash-method chooses how \
         candidate files are compared: crc, size or sha256.",
        &[
            ex("storage dedup", ""),
        ],
    ),
    cmd(
        &["delete"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Delete a layer or image or container, with no safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete,
    )
    .doc(
        "Deletes each named layer, image or container without the safety checks of \
         delete-layer, delete-image and delete-container: it can leave records that name \
         what is gone. Errors are printed per argument; the exit status is 1 if any \
         argument failed.",
        &[
            ex("storage delete 3e80b1a5", ""),
        ],
    ),
    cmd(
        &["delete-layer", "deletelayer"],
        "[LayerNameOrID [...]]",
        "Delete a layer, with safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete_layer,
    )
    .doc(
        "Deletes each named layer, unless another layer is its child, an image uses it as \
         its top layer, or it is a container's layer. Unlike upstream, the checks are made \
         for a name too.",
        &[
            ex("storage delete-layer base", ""),
        ],
    ),
    cmd(
        &["delete-image", "deleteimage"],
        "[ImageNameOrID [...]]",
        "Delete an image, with safety checks",
        1,
        None,
        DELETE_IMAGE_FLAGS,
        actions::delete::delete_image,
    )
    .doc(
        "Deletes each named image unless a container uses it, then removes the image's \
         layers that nothing else uses, from the top layer down, and prints each removed \
         layer on standard error. --test only reports what would be deleted.",
        &[
            ex("storage delete-image myimage", ""),
            ex("storage delete-image -t myimage", "Show the layers a deletion would remove."),
        ],
    ),
    cmd(
        &["delete-container", "deletecontainer"],
        "[ContainerNameOrID [...]]",
        "Delete a container, with safety checks",
        1,
        None,
        JSON_ONLY,
        actions::delete::delete_container,
    )
    .doc(
        "Deletes each named container with its layer and its data directories.",
        &[
            ex("storage delete-container ctr1", ""),
        ],
    ),
    cmd(
        &["changes"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        JSON_ONLY,
        actions::diff::changes,
    )
    .doc(
        "Lists the paths that differ between a layer and referenceLayerNameOrID, by \
         default its parent: one line per path, Add, Modify or Delete followed by the \
         quoted path.",
        &[
            ex("storage changes ctr1-layer", "What the layer changed relative to its parent."),
        ],
    ),
    cmd(
        &["diffsize", "diff-size"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        &[],
        actions::diff::diff_size,
    )
    .doc(
        "Prints the size in bytes of the uncompressed archive that diff would write for \
         the layer (against referenceLayerNameOrID, by default its parent).",
        &[
            ex("storage diffsize base", ""),
        ],
    ),
    cmd(
        &["diff"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Compare two layers",
        1,
        Some(2),
        DIFF_FLAGS,
        actions::diff::diff,
    )
    .doc(
        "Writes the layer's changes relative to referenceLayerNameOrID (by default its \
         parent) as a tar archive, to standard output or to the file that --file names. \
         For an imported layer the archive is the one that was imported, re-created byte \
         for byte from its tar-split record, compressed as it was unless --uncompressed or \
         --gzip says otherwise. bzip2 and xz output are not supported.",
        &[
            ex(
                "storage diff base > base.tar",
                "Re-create the archive that base was imported from.",
            ),
            ex(
                "storage diff -u -f top.tar top",
                "Write the changes of top to top.tar, uncompressed.",
            ),
        ],
    ),
    cmd(
        &["applydiff", "apply-diff"],
        "[options [...]] layerNameOrID [referenceLayerNameOrID]",
        "Apply a diff to a layer",
        1,
        Some(1),
        APPLYDIFF_FLAGS,
        actions::diff::apply_diff,
    )
    .doc(
        "Applies a layer archive to an existing layer, read from standard input or from \
         the file that --file names (plain or compressed). The same checks as for \
         import-layer apply.",
        &[
            ex("storage applydiff -f changes.tar.gz top", ""),
        ],
    ),
    cmd(
        &["applydiff-using-staging-dir"],
        "layerNameOrID directory",
        "Apply a diff to a layer using a staging directory",
        2,
        Some(2),
        &[],
        actions::diff::apply_diff_using_staging_dir,
    )
    .doc(
        "Makes an archive of directory and applies it to the layer through a staging \
         directory: the content is prepared next to the layer and moved into place at the \
         end.",
        &[
            ex("storage applydiff-using-staging-dir top ./rootfs", ""),
        ],
    ),
    cmd(
        &["exists"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Check if a layer or image or container exists",
        1,
        None,
        EXISTS_FLAGS,
        actions::names::exists,
    )
    .doc(
        "Prints, for each argument, whether a layer, image or container has that name or \
         ID. The exit status is 0 only if all of them exist; with --layer, --image or \
         --container, only if they are of that kind. --quiet prints nothing.",
        &[
            ex("storage exists -q -i myimage", "Succeed if myimage is an image."),
        ],
    ),
    cmd(
        &["gc"],
        "",
        "Perform garbage collection",
        0,
        Some(0),
        JSON_ONLY,
        actions::misc::gc,
    )
    .doc(
        "Removes what earlier failed or interrupted commands may have left behind: driver \
         layers with no record in the layer store, and their tar-split and data files.",
        &[
            ex("storage gc", ""),
        ],
    ),
    cmd(
        &["image"],
        "[options [...]] imageNameOrID [...]",
        "Examine an image",
        1,
        None,
        JSON_ONLY,
        actions::images::image,
    )
    .doc(
        "Prints what is recorded about each named image: its ID, its names, its top layer \
         (and mapped copies of it), its digests, the keys of its big-data items, its size, \
         and whether it is read-only. The exit status is 1 if an argument names no image.",
        &[
            ex("storage image myimage", ""),
        ],
    ),
    cmd(
        &["list-image-data", "listimagedata"],
        "[options [...]] imageNameOrID",
        "List data items that are attached to an image",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_image_data,
    )
    .doc(
        "Lists the keys of the big-data items attached to an image, one per line.",
        &[
            ex("storage list-image-data myimage", ""),
        ],
    ),
    cmd(
        &["get-image-data", "getimagedata"],
        "[options [...]] imageNameOrID dataName",
        "Get data that is attached to an image",
        2,
        Some(2),
        WRITE_FILE,
        actions::data::get_image_data,
    )
    .doc(
        "Writes the big-data item dataName of an image to standard output, or to the file \
         that --file names. The exit status is 1 if the image has no such item.",
        &[
            ex("storage get-image-data myimage manifest", ""),
        ],
    ),
    cmd(
        &["get-image-data-size", "getimagedatasize"],
        "[options [...]] imageNameOrID dataName",
        "Get size of data that is attached to an image",
        2,
        Some(2),
        &[],
        actions::data::get_image_data_size,
    )
    .doc(
        "Prints the size in bytes of the big-data item dataName of an image.",
        &[
            ex("storage get-image-data-size myimage manifest", ""),
        ],
    ),
    cmd(
        &["get-image-data-digest", "getimagedatadigest"],
        "[options [...]] imageNameOrID dataName",
        "Get digest of data that is attached to an image",
        2,
        Some(2),
        &[],
        actions::data::get_image_data_digest,
    )
    .doc(
        "Prints the digest (sha256:...) of the big-data item dataName of an image.",
        &[
            ex("storage get-image-data-digest myimage manifest", ""),
        ],
    ),
    cmd(
        &["set-image-data", "setimagedata"],
        "[options [...]] imageNameOrID dataName",
        "Set data that is attached to an image (with sometimes wrong digest)",
        2,
        Some(2),
        READ_FILE,
        actions::data::set_image_data,
    )
    .doc(
        "Attaches a big-data item named dataName to an image, read from standard input or \
         from the file that --file names; an item of that name is replaced and the item's \
         digest recorded.",
        &[
            ex("storage set-image-data -f manifest.json myimage manifest", ""),
        ],
    ),
    cmd(
        &["get-image-dir", "getimagedir"],
        "[options [...]] imageNameOrID",
        "Find the image's associated data directory",
        1,
        Some(1),
        &[],
        actions::data::get_image_dir,
    )
    .doc(
        "Prints the directory where the image's own files are kept \
         (GRAPHROOT/DRIVER-images/ARGUMENT/userdata), creating it if needed. As upstream, \
         the argument is used as it is given, not resolved to the image's ID.",
        &[
            ex("storage get-image-dir f069a808ddbb", ""),
        ],
    ),
    cmd(
        &["get-image-run-dir", "getimagerundir"],
        "[options [...]] imageNameOrID",
        "Find the image's associated runtime directory",
        1,
        Some(1),
        &[],
        actions::data::get_image_run_dir,
    )
    .doc(
        "Prints the image's directory under the run root \
         (RUNROOT/DRIVER-images/ARGUMENT/userdata), creating it if needed. As upstream, \
         the argument is used as it is given.",
        &[
            ex("storage get-image-run-dir f069a808ddbb", ""),
        ],
    ),
    cmd(
        &["images"],
        "[options [...]]",
        "List images",
        0,
        Some(0),
        JSON_QUIET,
        actions::images::images,
    )
    .doc(
        "Lists every image: its ID, then a name: line for each of its names, a digest: \
         line for each digest and a data: line for each big-data key. --quiet prints only \
         the IDs.",
        &[
            ex("storage images -q", ""),
        ],
    ),
    cmd(
        &["images-by-digest"],
        "[options [...]] DIGEST",
        "List images by digest",
        1,
        Some(1),
        JSON_QUIET,
        actions::images::images_by_digest,
    )
    .doc(
        "Lists, as images does, the images that have DIGEST among their digests.",
        &[
            ex(
                "storage images-by-digest sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "",
            ),
        ],
    ),
    cmd(
        &["layer"],
        "[options [...]] layerNameOrID [...]",
        "Examine a layer",
        1,
        None,
        JSON_ONLY,
        actions::layers::layer,
    )
    .doc(
        "Prints what is recorded about each named layer: its ID, its UID and GID mappings, \
         its parent, its names, and whether it is read-only. The exit status is 1 if an \
         argument names no layer.",
        &[
            ex("storage layer base", ""),
        ],
    ),
    cmd(
        &["layer-parent-owners"],
        "[options [...]] layerNameOrID [...]",
        "Compute the set of unmapped parent UIDs and GIDs of the layer",
        1,
        None,
        JSON_ONLY,
        actions::layers::layer_parent_owners,
    )
    .doc(
        "Prints, for each layer, the UIDs and GIDs that own files in its parent layers but \
         are outside the layer's ID mappings. The layer must be mounted.",
        &[
            ex("storage layer-parent-owners top", ""),
        ],
    ),
    cmd(
        &["list-layer-data", "listlayerdata"],
        "[options [...]] layerNameOrID",
        "List data items that are attached to a layer",
        1,
        Some(1),
        JSON_ONLY,
        actions::data::list_layer_data,
    )
    .doc(
        "Lists the keys of the big-data items attached to a layer, one per line.",
        &[
            ex("storage list-layer-data base", ""),
        ],
    ),
    cmd(
        &["get-layer-data", "getlayerdata"],
        "[options [...]] layerID dataName",
        "Get data that is attached to a layer",
        2,
        Some(2),
        WRITE_FILE,
        actions::data::get_layer_data,
    )
    .doc(
        "Writes the big-data item dataName of a layer to standard output, or to the file \
         that --file names.",
        &[
            ex("storage get-layer-data -f config.json base configuration", ""),
        ],
    ),
    cmd(
        &["set-layer-data", "setlayerdata"],
        "[options [...]] layerID dataName",
        "Set data that is attached to a layer",
        2,
        Some(2),
        READ_FILE,
        actions::data::set_layer_data,
    )
    .doc(
        "Attaches a big-data item named dataName to a layer, read from standard input or \
         from the file that --file names; an item of that name is replaced.",
        &[
            ex("storage set-layer-data -f config.json base configuration", ""),
        ],
    ),
    cmd(
        &["layers"],
        "[options [...]]",
        "List layers",
        0,
        Some(0),
        LAYERS_FLAGS,
        actions::layers::layers,
    )
    .doc(
        "Lists every layer in the order they were created: its ID, then a name: line for \
         each of its names, an image: line for each image whose top layer it is (with the \
         image's names) and a container: line for the container whose layer it is (with \
         its names). --quick prints only the IDs, --tree draws the layers as a tree of \
         parents and children.",
        &[
            ex("storage layers -t", "Show the layers as a tree."),
        ],
    ),
    cmd(
        &["storage-layers"],
        "[options [...]]",
        "List storage layers",
        0,
        Some(0),
        JSON_ONLY,
        actions::layers::storage_layers,
    )
    .doc(
        "Lists the IDs of the layers that the storage driver holds, whether or not the \
         layer store has a record of them.",
        &[
            ex("storage storage-layers", ""),
        ],
    ),
    cmd(
        &["metadata"],
        "[LayerOrImageOrContainerNameOrID [...]]",
        "Retrieve layer, image, or container metadata",
        1,
        None,
        METADATA_FLAGS,
        actions::names::metadata,
    )
    .doc(
        "Prints the metadata of each named layer, image or container, after the argument \
         and a colon; --quiet prints the metadata alone. The exit status is 1 if an \
         argument names nothing.",
        &[
            ex("storage metadata -q myimage", ""),
        ],
    ),
    cmd(
        &["set-metadata", "setmetadata"],
        "[options [...]] layerOrImageOrContainerNameOrID",
        "Set layer, image, or container metadata",
        1,
        Some(1),
        SET_METADATA_FLAGS,
        actions::names::set_metadata,
    )
    .doc(
        "Replaces the metadata of a layer, image or container with the value of --metadata \
         or the contents of the file that --metadata-file names; one of them must be \
         given.",
        &[
            ex("storage set-metadata -m 'built by ci' myimage", ""),
        ],
    ),
    cmd(
        &["mount"],
        "[options [...]] LayerOrContainerNameOrID",
        "Mount a layer or container",
        1,
        None,
        MOUNT_FLAGS,
        actions::mounts::mount,
    )
    .doc(
        "Mounts each named layer or container's layer and prints its mount point, one line \
         per argument. Mounts are counted: each mount needs an unmount. --read-only mounts \
         an image read-only. A layer that cannot be mounted gives an empty line and an \
         error on standard error.",
        &[
            ex("storage mount ctr1", ""),
            ex("storage mount -r myimage", "Mount an image read-only."),
        ],
    ),
    cmd(
        &["unmount", "umount"],
        "LayerOrContainerNameOrID",
        "Unmount an image, layer or container",
        1,
        None,
        UNMOUNT_FLAGS,
        actions::mounts::unmount,
    )
    .doc(
        "Unmounts each named layer, container or mount point once, and prints a line when \
         the mount count reaches zero and the file system is gone. --force unmounts it \
         whatever the count.",
        &[
            ex("storage unmount ctr1", ""),
        ],
    ),
    cmd(
        &["mounted"],
        "LayerOrContainerNameOrID",
        "Check if a file system is mounted",
        1,
        None,
        JSON_ONLY,
        actions::mounts::mounted,
    )
    .doc(
        "Prints a line for each named layer or container that is mounted; the exit status \
         does not depend on it.",
        &[
            ex("storage mounted ctr1", ""),
        ],
    ),
    cmd(
        &["get-names", "getnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Get layer, image, or container name or names",
        1,
        Some(1),
        JSON_ONLY,
        actions::names::get_names,
    )
    .doc(
        "Prints the names of a layer, image or container, one per line.",
        &[
            ex("storage get-names myimage", ""),
        ],
    ),
    cmd(
        &["add-names", "addnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Add layer, image, or container name or names",
        1,
        None,
        ADD_NAMES_FLAGS,
        actions::names::add_names,
    )
    .doc(
        "Adds the names given with --name to a layer, image or container. A name that \
         another object of the same kind has is moved. Naming an image of a read-only \
         image store makes a writable copy of its record in this store.",
        &[
            ex("storage add-names -n myimage:latest -n myimage:v1 myimage", ""),
        ],
    ),
    cmd(
        &["remove-names", "removenames"],
        "[options [...]] imageOrContainerNameOrID",
        "Remove layer, image, or container name or names",
        1,
        None,
        REMOVE_NAMES_FLAGS,
        actions::names::remove_names,
    )
    .doc(
        "Removes the names given with --name from a layer, image or container.",
        &[
            ex("storage remove-names -n myimage:v1 myimage", ""),
        ],
    ),
    cmd(
        &["set-names", "setnames"],
        "[options [...]] imageOrContainerNameOrID",
        "Set layer, image, or container name or names",
        1,
        None,
        SET_NAMES_FLAGS,
        actions::names::set_names,
    )
    .doc(
        "Replaces the names of a layer, image or container with those given with --name. A \
         name that another object of the same kind has is moved.",
        &[
            ex("storage set-names -n only-name myimage", ""),
        ],
    ),
    cmd(
        &["shutdown"],
        "",
        "Shut down layer storage",
        0,
        Some(0),
        SHUTDOWN_FLAGS,
        actions::misc::shutdown,
    )
    .doc(
        "Shuts the storage driver down (on overlay and btrfs, the private bind mount of \
         the driver's home is removed). It fails while a layer is mounted, unless --force \
         unmounts every layer first.",
        &[
            ex("storage shutdown -f", ""),
        ],
    ),
    cmd(
        &["status"],
        "",
        "Check on graph driver status",
        0,
        Some(0),
        JSON_ONLY,
        actions::misc::status,
    )
    .doc(
        "Prints the graph root, the run root, the driver and its options, and the driver's \
         own status lines, on standard error (with --json, as JSON on standard output).",
        &[
            ex("storage status", ""),
        ],
    ),
    cmd(
        &["unshare"],
        "[command [...]]",
        "Run a command in a user namespace",
        0,
        None,
        &[],
        actions::unshare::unshare_command,
    )
    .doc(
        "Runs command (by default $SHELL) in a new user namespace in which the calling \
         user is root and the user's ranges from /etc/subuid and /etc/subgid are mapped.",
        &[
            ex("storage unshare id -u", ""),
        ],
    ),
    cmd(
        &["version"],
        "",
        "Return containers-storage version information",
        0,
        Some(0),
        JSON_ONLY,
        actions::misc::version,
    )
    .doc(
        "Prints the version information on standard error (with --json, as JSON on \
         standard output).",
        &[
            ex("storage version", ""),
        ],
    ),
    cmd(
        &["wipe"],
        "",
        "Wipe all layers, images, and containers",
        0,
        Some(0),
        JSON_ONLY,
        actions::misc::wipe,
    )
    .doc(
        "Deletes every container, image and layer of the store.",
        &[
            ex("storage wipe", ""),
        ],
    ),
    cmd(
        &["import-oci"],
        "[options [...]] layoutDirectory[:reference]",
        "Import an image from an OCI image layout",
        1,
        Some(1),
        IMPORT_OCI_FLAGS,
        actions::oci::import_oci,
    )
    .doc(
        "Imports an image from an OCI image layout (as written by skopeo, buildah or \
         umoci): layoutDirectory, and in it the image that reference names in the layout's \
         index, or its only image. Every blob's digest and size are checked while it is \
         read, layers the store already holds (same diff digest on the same parent) are \
         reused, and the image is stored as skopeo's containers-storage transport stores \
         it, with the same layer and image IDs and big-data keys. From a multi-platform \
         index the host's platform is taken unless --platform says otherwise; --all \
         imports every image the index lists, each named after its reference. A failed \
         import leaves nothing behind.",
        &[
            ex("storage import-oci ./layout:v1", "Import the image tagged v1 in ./layout."),
            ex(
                "storage import-oci -n web --platform linux/arm64 ./layout",
                "Import the arm64 image of a multi-platform layout as web.",
            ),
        ],
    ),
    cmd(
        &["export-oci"],
        "[options [...]] imageNameOrID layoutDirectory[:reference]",
        "Export an image to an OCI image layout",
        2,
        Some(2),
        JSON_ONLY,
        actions::oci::export_oci,
    )
    .doc(
        "Writes an image to an OCI image layout, creating layoutDirectory or adding to it, \
         and tags it with reference when one is given. Layers are re-created from their \
         tar-split records and compressed as they were recorded; the stored manifest and \
         configuration are kept when the blobs come out identical.",
        &[
            ex("storage export-oci myimage ./out:v1", "Export myimage to ./out, tagged v1."),
        ],
    ),
    cmd(
        &["verify"],
        "[options [...]] imageNameOrID [...]",
        "Verify that an image's layers and data are present and intact",
        1,
        None,
        JSON_ONLY,
        actions::oci::verify,
    )
    .doc(
        "Checks each image against what was recorded for it: every layer is re-created \
         from its tar-split record and compared with its diff digest and size, and every \
         big-data item with its digest. The exit status is 1 if any check fails.",
        &[
            ex("storage verify myimage", ""),
        ],
    ),
    cmd(
        &["prune"],
        "[options [...]]",
        "Remove layers no image or container uses",
        0,
        None,
        PRUNE_FLAGS,
        actions::oci::prune,
    )
    .doc(
        "Removes the layers that no image and no container reaches; with --dangling, \
         images that have no names are removed first. --dry-run prints what would be \
         removed and removes nothing.",
        &[
            ex(
                "storage prune --dry-run --dangling",
                "Show what a prune of unnamed images and unused layers would remove.",
            ),
        ],
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
