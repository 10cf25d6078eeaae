//! `copy [-o UID[:GID]] [LAYER:]PATH... [LAYER:]PATH`: copies files or directories into a
//! layer (or the host), possibly from another layer, as upstream's `CopyWithTar`.
//!
//! Layers are mounted for the copy and unmounted after. Owners are carried through the
//! layers' ID mappings (source host → container → target host); `--chown` sets the
//! container owner instead, mapped to the host by the target's mapping. Paths inside a layer are resolved one component at a time without following
//! symlinks, so a layer's own links cannot send the copy outside its mount; the archive
//! reader and writer of the host then work beneath the directories opened that way.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use storage_driver::confined;
use storage_driver::idmap::IdMappings;
use storage_driver::syscalls::{LinuxSyscalls, Syscalls};
use storage_driver::ApplyDiffOpts;
use storage_store::store::MountOptions;

use super::{CliError, Ctx};
use crate::tarowner::OwnerRewriter;

/// One side of a copy: a layer path or a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The layer, when the argument was `LAYER:PATH`.
    pub layer: Option<String>,
    /// The path (inside the layer, or on the host).
    pub path: String,
}

/// Splits `LAYER:PATH` at the first colon, as upstream does; no colon is a host path.
pub fn parse_location(spec: &str) -> Location {
    match spec.split_once(':') {
        Some((layer, path)) => Location {
            layer: Some(layer.to_string()),
            path: path.to_string(),
        },
        None => Location {
            layer: None,
            path: spec.to_string(),
        },
    }
}

/// Parses `--chown UID[:GID]` (GID defaults to UID), with upstream's messages
/// (`bad UID: strconv.ParseUint: parsing "x": invalid syntax`).
pub fn parse_chown(spec: &str) -> Result<(u32, u32), CliError> {
    let (uid, gid) = spec.split_once(':').unwrap_or((spec, spec));
    let num = |s: &str, what: &str| {
        go_parse_u32(s).map_err(|reason| {
            CliError::Message(format!(
                "bad {what}: strconv.ParseUint: parsing {}: {reason}",
                storage_store::gostr::quote(s)
            ))
        })
    };
    Ok((num(uid, "UID")?, num(gid, "GID")?))
}

/// Go's `strconv.ParseUint(s, 10, 32)`: decimal digits only; the reason in Go's words.
fn go_parse_u32(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    s.parse::<u32>().map_err(|_| "value out of range")
}

/// A resolved side of the copy: where it is and how its owners map.
struct Side {
    /// The directory paths are resolved beneath (a mount point, or `/` for the host).
    root: PathBuf,
    /// Whether paths may follow symlinks (host paths do; layer paths do not).
    follow: bool,
    /// The layer's ID mappings (identity for the host).
    mappings: IdMappings,
}

/// Mounts the layers named by the arguments and unmounts them when dropped.
struct Mounts<'a> {
    store: &'a storage_store::store::Store,
    mounted: Vec<String>,
}

impl Mounts<'_> {
    fn side(&mut self, loc: &Location) -> Result<Side, CliError> {
        let Some(name) = &loc.layer else {
            return Ok(Side {
                root: PathBuf::from("/"),
                follow: true,
                mappings: IdMappings::default(),
            });
        };
        let layer = self.store.layer(name).map_err(|e| {
            CliError::context(
                format!("error finding layer {}", storage_store::gostr::quote(name)),
                e,
            )
        })?;
        let opts = MountOptions {
            mount_label: layer.mount_label.clone(),
            ..Default::default()
        };
        let root = self.store.mount(&layer.id, &opts).map_err(|e| {
            CliError::context(
                format!(
                    "error mounting layer {}",
                    storage_store::gostr::quote(&layer.id)
                ),
                e,
            )
        })?;
        self.mounted.push(layer.id.clone());
        Ok(Side {
            root,
            follow: false,
            mappings: IdMappings {
                uids: layer.uid_map,
                gids: layer.gid_map,
            },
        })
    }
}

impl Drop for Mounts<'_> {
    fn drop(&mut self) {
        for id in self.mounted.iter().rev() {
            // A drop has no caller to tell (the copy's own result is what is reported); an
            // unmount failure leaves a mount count behind, which `shutdown -f` clears.
            if let Err(e) = self.store.unmount(id, false) {
                log::warn!("unmounting layer {id} after the copy: {e}");
            }
        }
    }
}

/// `copy`.
pub fn copy(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let chown = match ctx.inv.flags.value("chown").filter(|c| !c.is_empty()) {
        Some(spec) => Some(parse_chown(spec)?),
        None => None,
    };
    let Some((target_spec, sources)) = ctx.inv.args.split_last() else {
        return Ok(1);
    };
    let mut mounts = Mounts {
        store: ctx.store,
        mounted: Vec::new(),
    };
    let target_loc = parse_location(target_spec);
    let target = mounts.side(&target_loc)?;
    for source_spec in sources {
        let source_loc = parse_location(source_spec);
        let source = mounts.side(&source_loc)?;
        // Upstream names each side by its path on the host (the mount point joined with the
        // path in the layer) and a missing source by its `stat`.
        let (shown_source, shown_target) =
            (shown(&source, &source_loc), shown(&target, &target_loc));
        copy_one(&source, &source_loc.path, &target, &target_loc.path, chown).map_err(|e| {
            let context = format!(
                "error copying {} to {}",
                storage_store::gostr::quote(&shown_source),
                storage_store::gostr::quote(&shown_target)
            );
            match e {
                CopyFailure::SourceStat(e) => {
                    CliError::io(format!("{context}: stat {shown_source}"), e)
                }
                CopyFailure::Other(e) => CliError::io(context, e),
            }
        })?;
    }
    Ok(0)
}

/// The relative components of `path` after lexical cleaning (`..` cannot climb above the
/// root, as in a chroot).
fn components(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn io_err(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// Opens the directory `parts` below `side.root`, creating missing ones when asked. In a
/// layer every component is opened with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`.
fn open_dir(side: &Side, parts: &[String], create: bool) -> std::io::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    if side.follow {
        let path = beneath(&side.root, parts);
        if create {
            std::fs::create_dir_all(&path)?;
        }
        return rustix::fs::open(&path, flags, Mode::empty()).map_err(io_err);
    }
    let mut dir = rustix::fs::open(&side.root, flags, Mode::empty()).map_err(io_err)?;
    let open = |dir: &OwnedFd, part: &str| {
        confined::openat_beneath(dir, part.as_bytes(), flags, 0, confined::Symlinks::Refused)
    };
    for part in parts {
        let next = match open(&dir, part) {
            Err(rustix::io::Errno::NOENT) if create => {
                rustix::fs::mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o755))
                    .map_err(io_err)?;
                open(&dir, part)
            }
            other => other,
        };
        dir = next.map_err(io_err)?;
    }
    Ok(dir)
}

/// A path naming an open directory, for APIs that take paths.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// How a side of the copy reads in messages: a host path as given, a path in a layer as
/// the mount point joined with it (Go's `filepath.Join`, which cleans it).
fn shown(side: &Side, loc: &Location) -> String {
    if loc.layer.is_none() {
        return loc.path.clone();
    }
    beneath(&side.root, &components(&loc.path))
        .display()
        .to_string()
}

/// `root` joined with each of `parts`.
fn beneath(root: &Path, parts: &[String]) -> PathBuf {
    parts.iter().fold(root.to_path_buf(), |p, c| p.join(c))
}

/// Why one copy failed: the source cannot be looked up (upstream's `stat` of it fails), or
/// anything else.
enum CopyFailure {
    SourceStat(std::io::Error),
    Other(std::io::Error),
}

impl From<std::io::Error> for CopyFailure {
    fn from(e: std::io::Error) -> Self {
        CopyFailure::Other(e)
    }
}

fn copy_one(
    source: &Side,
    source_path: &str,
    target: &Side,
    target_path: &str,
    chown: Option<(u32, u32)>,
) -> Result<(), CopyFailure> {
    let parts = components(source_path);
    let source_dir = open_dir(source, &parts, false);
    match source_dir {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CopyFailure::SourceStat(e)),
        Ok(dir) => {
            let target_dir = open_dir(target, &components(target_path), true)?;
            Ok(copy_tree(
                &dir,
                &source.mappings,
                &target_dir,
                &target.mappings,
                chown,
            )?)
        }
        Err(e) if e.raw_os_error() == Some(libc_enotdir()) => {
            let (name, parent) = parts
                .split_last()
                .ok_or_else(|| std::io::Error::other("nothing to copy"))?;
            let source_parent = open_dir(source, parent, false).map_err(CopyFailure::SourceStat)?;
            let target_parts = components(target_path);
            let into_dir =
                target_path.ends_with('/') || open_dir(target, &target_parts, false).is_ok();
            let (dir_parts, target_name) = if into_dir {
                (target_parts.as_slice(), name.as_str())
            } else {
                match target_parts.split_last() {
                    Some((last, rest)) => (rest, last.as_str()),
                    None => (target_parts.as_slice(), name.as_str()),
                }
            };
            let target_parent = open_dir(target, dir_parts, true)?;
            Ok(copy_file(
                &source_parent,
                name,
                &source.mappings,
                &target_parent,
                target_name,
                &target.mappings,
                chown,
            )?)
        }
        Err(e) => Err(e.into()),
    }
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

/// Copies a directory's content by streaming the host's tar writer into its tar reader.
fn copy_tree(
    source: &OwnedFd,
    source_mappings: &IdMappings,
    target: &OwnedFd,
    target_mappings: &IdMappings,
    chown: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let diff_opts = confined::diff_options(source_mappings);
    // --chown names container IDs, mapped to the host by the target's mapping like every
    // other owner (Go's 1.43 gives 100005:200007 for `--chown 5:7` into a layer mapped
    // 0:100000 / 0:200000).
    let apply_opts = confined::apply_options(
        &ApplyDiffOpts {
            id_mappings: target_mappings.clone(),
            ..Default::default()
        },
        storage_archive::WhiteoutFormat::Aufs,
        false,
    );
    let (source_path, target_path) = (fd_path(source), fd_path(target));
    let (reader, mut writer) = std::io::pipe()?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let result = confined::write_tar(&source_path, &mut writer, &diff_opts);
            drop(writer);
            result
        });
        let mut input: Box<dyn Read> = match chown {
            Some((uid, gid)) => {
                Box::new(OwnerRewriter::new(reader, uid, gid).ok_or_else(|| {
                    std::io::Error::other("--chown IDs above 2097151 are not supported")
                })?)
            }
            None => Box::new(reader),
        };
        let applied = confined::apply_tar(&target_path, &mut input, &apply_opts);
        // Closing our end makes a still-writing producer fail instead of blocking.
        drop(input);
        let produced = producer
            .join()
            .map_err(|_| std::io::Error::other("archive writer panicked"))?;
        produced.map_err(std::io::Error::other)?;
        applied.map_err(std::io::Error::other)?;
        Ok(())
    })
}

/// Copies one non-directory entry (regular file or symlink) into `target_dir`; the owner
/// changes go through the toolkit's [`Syscalls`], as every privileged call does.
fn copy_file(
    source_dir: &OwnedFd,
    name: &str,
    source_mappings: &IdMappings,
    target_dir: &OwnedFd,
    target_name: &str,
    target_mappings: &IdMappings,
    chown: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let stat = rustix::fs::statat(source_dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err)?;
    let (uid, gid) = match chown {
        Some((uid, gid)) => target_mappings.to_host(uid, gid).unwrap_or((uid, gid)),
        None => source_mappings
            .to_container(stat.st_uid, stat.st_gid)
            .and_then(|(u, g)| target_mappings.to_host(u, g))
            .unwrap_or((stat.st_uid, stat.st_gid)),
    };
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {
            let src = rustix::fs::openat(
                source_dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err)?;
            let dst = rustix::fs::openat(
                target_dir,
                target_name,
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                mode,
            )
            .map_err(io_err)?;
            let mut src = std::fs::File::from(src);
            let mut dst = std::fs::File::from(dst);
            std::io::copy(&mut src, &mut dst)?;
            LinuxSyscalls.fchown(dst.as_fd(), Some(uid), Some(gid))?;
            // After chown, which clears set-id bits.
            rustix::fs::fchmod(dst.as_fd(), mode).map_err(io_err)?;
            let times = rustix::fs::Timestamps {
                last_access: stat_time(stat.st_atime, stat.st_atime_nsec),
                last_modification: stat_time(stat.st_mtime, stat.st_mtime_nsec),
            };
            rustix::fs::futimens(dst.as_fd(), &times).map_err(io_err)?;
        }
        FileType::Symlink => {
            let link = rustix::fs::readlinkat(source_dir, name, Vec::new()).map_err(io_err)?;
            match rustix::fs::unlinkat(target_dir, target_name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(io_err(e)),
            }
            rustix::fs::symlinkat(link.as_c_str(), target_dir, target_name).map_err(io_err)?;
            LinuxSyscalls.chown_at(
                target_dir.as_fd(),
                Path::new(target_name),
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        other => {
            return Err(std::io::Error::other(format!(
                "copying a {other:?} is not supported"
            )))
        }
    }
    Ok(())
}

fn stat_time(secs: i64, nanos: u64) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: secs,
        // Below one billion, so it fits whatever integer the platform uses.
        tv_nsec: nanos.try_into().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_at_the_first_colon() {
        assert_eq!(
            parse_location("layer:/a:b"),
            Location {
                layer: Some("layer".into()),
                path: "/a:b".into()
            }
        );
        assert_eq!(
            parse_location("/host/path"),
            Location {
                layer: None,
                path: "/host/path".into()
            }
        );
    }

    #[test]
    fn chown_specs() {
        assert_eq!(parse_chown("5").ok(), Some((5, 5)));
        assert_eq!(parse_chown("5:6").ok(), Some((5, 6)));
        assert_eq!(
            parse_chown("x:6").err().map(|e| e.to_string()),
            Some("bad UID: strconv.ParseUint: parsing \"x\": invalid syntax".to_string())
        );
        assert_eq!(
            parse_chown("5:4294967296").err().map(|e| e.to_string()),
            Some(
                "bad GID: strconv.ParseUint: parsing \"4294967296\": value out of range"
                    .to_string()
            )
        );
        assert!(parse_chown("+5").is_err());
    }

    #[test]
    fn components_cannot_climb_above_the_root() {
        assert_eq!(components("/../../etc/./x/"), ["etc", "x"]);
        assert_eq!(components("a/../b"), ["b"]);
        assert!(components("/").is_empty());
    }

    #[test]
    fn layer_paths_do_not_follow_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
        let side = Side {
            root: dir.path().to_path_buf(),
            follow: false,
            mappings: IdMappings::default(),
        };
        assert!(open_dir(&side, &["link".to_string(), "x".to_string()], true).is_err());
        assert!(!outside.path().join("x").exists());
        assert!(open_dir(&side, &["made".to_string(), "deep".to_string()], true).is_ok());
        assert!(dir.path().join("made/deep").is_dir());
    }
}
