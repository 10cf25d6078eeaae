//! The path-level wrappers drivers call: applying a tar to a directory, writing a tree's
//! or a diff's tar, changes and sizes, each over [`ConfinedDir`]s of the paths given.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use storage_archive::fs::Timestamp;
use storage_archive::{
    ApplyOptions, ArchiveError, DiffOptions, IdMapping, IdRange, OverlayOptions, ParsedEntries,
    ParsedTar,
};

use super::errors::io_error;
use super::ConfinedDir;
use crate::idmap::IdMappings;
use crate::{Change, ChangeKind};

/// Converts the host's ID mappings into the archive crate's.
pub fn id_mapping(mappings: &IdMappings) -> IdMapping {
    let ranges = |maps: &[crate::idmap::IdMap]| {
        maps.iter()
            .map(|m| IdRange {
                container_id: m.container_id,
                host_id: m.host_id,
                size: m.size,
            })
            .collect()
    };
    IdMapping {
        uids: ranges(&mappings.uids),
        gids: ranges(&mappings.gids),
    }
}

/// Apply options from a driver's `ApplyDiffOpts` and the whiteout format it wants
/// (`rootless_overlay`: mark opaque dirs with `user.overlay.opaque`).
pub fn apply_options(
    opts: &crate::ApplyDiffOpts,
    whiteout_format: storage_archive::WhiteoutFormat,
    rootless_overlay: bool,
) -> ApplyOptions {
    ApplyOptions {
        whiteout_format,
        rootless_overlay,
        id_mapping: id_mapping(&opts.id_mappings),
        force_mask: opts.force_mask,
        ignore_chown_errors: opts.ignore_chown_errors,
        skip_device_nodes: crate::idmap::running_in_user_namespace(),
    }
}

/// Diff options for `mappings` the way Go fills tar headers on this host: whiteouts stamped
/// with the current time, owner and group names looked up in `/etc/passwd` and `/etc/group`.
pub fn diff_options(mappings: &IdMappings) -> DiffOptions {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DiffOptions {
        id_mapping: id_mapping(mappings),
        now: Timestamp {
            secs: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: now.subsec_nanos(),
        },
        user_names: id_names(Path::new("/etc/passwd")),
        group_names: id_names(Path::new("/etc/group")),
    }
}

/// `name:x:id:...` lines of a passwd/group file as id → name; empty if unreadable.
fn id_names(path: &Path) -> std::collections::BTreeMap<u32, Vec<u8>> {
    let Ok(text) = std::fs::read(path) else {
        return Default::default();
    };
    let mut names = std::collections::BTreeMap::new();
    for line in text.split(|b| *b == b'\n') {
        let mut fields = line.split(|b| *b == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let id = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok());
        if let (Some(id), false) = (id, name.is_empty()) {
            // The first entry for an ID wins, as getpwuid returns it.
            names.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    names
}

pub(super) type ReadDir<'a> = ConfinedDir<dyn Read + 'a, dyn Write + 'a>;

fn open_dir<'a>(path: &Path) -> Result<ReadDir<'a>, ArchiveError> {
    ConfinedDir::open(path).map_err(|e| ArchiveError::Fs {
        op: "open",
        path: path.as_os_str().as_bytes().to_vec(),
        source: io_error(e, "open"),
    })
}

/// The archive crate's changes as the driver interface's (paths absolute).
pub fn to_host_changes(changes: Vec<storage_archive::Change>) -> Vec<Change> {
    changes
        .into_iter()
        .map(|c| Change {
            path: [&b"/"[..], &c.path].concat(),
            kind: match c.kind {
                storage_archive::ChangeKind::Add => ChangeKind::Add,
                storage_archive::ChangeKind::Modify => ChangeKind::Modify,
                storage_archive::ChangeKind::Delete => ChangeKind::Delete,
            },
        })
        .collect()
}

/// Applies an uncompressed layer tar to the directory `dir`; returns the sum of entry sizes.
pub fn apply_tar(
    dir: &Path,
    input: &mut dyn Read,
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::apply_layer(&mut fs, input, opts)
}

/// [`apply_tar`] of a tar whose headers were parsed already: the entries are read from it.
pub fn apply_parsed_tar(
    dir: &Path,
    input: &mut (dyn ParsedTar + Send),
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    let mut fs = ConfinedDir::<dyn ParsedTar + Send, dyn Write>::open(dir).map_err(|e| {
        ArchiveError::Fs {
            op: "open",
            path: dir.as_os_str().as_bytes().to_vec(),
            source: io_error(e, "open"),
        }
    })?;
    storage_archive::apply_entries(&mut fs, &mut ParsedEntries::new(input), opts)
}

/// Writes a tar of the whole tree at `dir` (a layer without parent).
pub fn write_tar(dir: &Path, out: &mut dyn Write, opts: &DiffOptions) -> Result<(), ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::write_tree_tar(&mut fs, out, opts)
}

/// Writes the naive diff of `layer` against `parent` (whole tree when `None`).
pub fn write_naive_diff(
    layer: &Path,
    parent: Option<ParentTree<'_>>,
    out: &mut dyn Write,
    opts: &DiffOptions,
) -> Result<(), ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    storage_archive::write_diff_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &parent_mapping,
        out,
        opts,
    )
}

/// The tree a naive comparison is taken against, and the ID mappings its layer is stored
/// with (each side's owners are read with its own).
#[derive(Debug, Clone, Copy)]
pub struct ParentTree<'a> {
    /// Where the parent's tree is.
    pub path: &'a Path,
    /// The parent layer's ID mappings.
    pub mappings: &'a IdMappings,
}

/// Writes the overlay-native diff of the upper dir `upper`; `lowers` topmost first.
pub fn write_overlay_diff(
    upper: &Path,
    lowers: &[PathBuf],
    out: &mut dyn Write,
    opts: &DiffOptions,
    overlay: &OverlayOptions,
) -> Result<(), ArchiveError> {
    let mut upper_fs = open_dir(upper)?;
    let mut lower_fs = lowers
        .iter()
        .map(|p| open_dir(p))
        .collect::<Result<Vec<_>, _>>()?;
    storage_archive::write_overlay_diff(&mut upper_fs, &mut lower_fs, out, opts, overlay)
}

/// Naive changes of `layer` against `parent` (every path is an Add when `None`), in walk order.
pub fn changes_naive(
    layer: &Path,
    mapping: &IdMappings,
    parent: Option<ParentTree<'_>>,
) -> Result<Vec<Change>, ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    let changes = storage_archive::changes_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &id_mapping(mapping),
        &parent_mapping,
    )?;
    Ok(to_host_changes(changes))
}

/// Changes recorded in an overlay upper dir; `lowers` topmost first.
pub fn changes_overlay(
    upper: &Path,
    lowers: &[PathBuf],
    overlay: &OverlayOptions,
) -> Result<Vec<Change>, ArchiveError> {
    let mut upper_fs = open_dir(upper)?;
    let mut lower_fs = lowers
        .iter()
        .map(|p| open_dir(p))
        .collect::<Result<Vec<_>, _>>()?;
    let changes = storage_archive::changes_overlay(&mut upper_fs, &mut lower_fs, overlay)?;
    Ok(to_host_changes(changes))
}

/// Naive diff size of `layer` against `parent`.
pub fn diff_size_naive(
    layer: &Path,
    mapping: &IdMappings,
    parent: Option<ParentTree<'_>>,
) -> Result<u64, ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    storage_archive::diff_size_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &id_mapping(mapping),
        &parent_mapping,
    )
}

/// Size of the tree at `dir` (overlay diff size: st_size of non-dirs, each inode once).
pub fn tree_size(dir: &Path) -> Result<u64, ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::tree_size(&mut fs)
}
