//! Checking and performing the mounts a driver component asks for. A component never
//! mounts: its `get` answers with mount requests, and the host performs only what passes
//! here — a known filesystem type, sources that are real directories inside the driver's
//! home (no symlink anywhere on the way), and options from a fixed list, with every path
//! option rewritten by the host from the checked sources. [`LayerMounts`] performs them
//! (through the driver's [`Syscalls`]) and undoes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use storage_driver::cleanup::log_failure;
use storage_driver::confined::{openat_beneath, Symlinks};
use storage_driver::syscalls::{MountFlags, Syscalls, UnmountFlags};
use storage_driver::{DriverError, DriverResult};

use super::bindings::driver::exports::storage::plugin::driver::MountRequest;
use super::host_fs::check_path;

/// A mount that passed the checks, with absolute paths, ready for the host to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedMount {
    /// `overlay` or `bind`.
    pub fstype: String,
    /// The source directories, absolute, inside the home.
    pub sources: Vec<PathBuf>,
    /// The options, path options rewritten to absolute paths of `sources`.
    pub options: Vec<String>,
}

/// Why a mount request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused mount request ({fstype}): {reason}")]
pub struct MountRefused {
    /// The requested type.
    pub fstype: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Flags any mount may carry.
const FLAGS: &[&str] = &[
    "ro", "rw", "nodev", "nosuid", "noexec", "noatime", "relatime",
];
/// Overlay flags and `key=value` options that name no path.
const OVERLAY_FLAGS: &[&str] = &["userxattr", "volatile"];
const OVERLAY_VALUES: &[&str] = &["redirect_dir", "metacopy", "index", "xino", "nfs_export"];
/// Overlay options whose values are directories: `:`-separated for `lowerdir`.
const OVERLAY_PATHS: &[&str] = &["lowerdir", "upperdir", "workdir"];

/// Checks `requests` of the driver whose home is `home`.
pub fn check_mount_requests(
    home: &Path,
    requests: &[MountRequest],
) -> Result<Vec<CheckedMount>, MountRefused> {
    requests.iter().map(|r| check_one(home, r)).collect()
}

fn check_one(home: &Path, request: &MountRequest) -> Result<CheckedMount, MountRefused> {
    let refuse = |reason: String| MountRefused {
        fstype: request.fstype.clone(),
        reason,
    };
    let mut sources = Vec::new();
    for source in &request.sources {
        sources.push(check_source(home, source).map_err(refuse)?);
    }
    let resolve = |relative: &str| -> Result<String, MountRefused> {
        let index = request
            .sources
            .iter()
            .position(|s| s.as_slice() == relative.as_bytes())
            .ok_or_else(|| refuse(format!("option names {relative:?}, which is not a source")))?;
        Ok(sources[index].display().to_string())
    };
    let mut options = Vec::new();
    match request.fstype.as_str() {
        "bind" => {
            if sources.len() != 1 {
                return Err(refuse("a bind mount has exactly one source".into()));
            }
            for option in &request.options {
                if !FLAGS.contains(&option.as_str()) {
                    return Err(refuse(format!("option {option:?} is not allowed")));
                }
                options.push(option.clone());
            }
        }
        "overlay" => {
            for option in &request.options {
                let checked = match option.split_once('=') {
                    None if FLAGS.contains(&option.as_str())
                        || OVERLAY_FLAGS.contains(&option.as_str()) =>
                    {
                        option.clone()
                    }
                    Some((key, value)) if OVERLAY_VALUES.contains(&key) => {
                        if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                            return Err(refuse(format!("option {option:?} is not allowed")));
                        }
                        option.clone()
                    }
                    Some((key, value)) if OVERLAY_PATHS.contains(&key) => {
                        let parts: Vec<&str> = if key == "lowerdir" {
                            value.split(':').collect()
                        } else {
                            vec![value]
                        };
                        let absolute = parts
                            .into_iter()
                            .map(resolve)
                            .collect::<Result<Vec<_>, _>>()?;
                        format!("{key}={}", absolute.join(":"))
                    }
                    _ => return Err(refuse(format!("option {option:?} is not allowed"))),
                };
                options.push(checked);
            }
        }
        other => return Err(refuse(format!("filesystem type {other:?} is not allowed"))),
    }
    Ok(CheckedMount {
        fstype: request.fstype.clone(),
        sources,
        options,
    })
}

/// A source must be a clean relative path to a directory beneath `home`, reached without
/// following any symlink (a symlink could be swapped to point anywhere before the mount).
fn check_source(home: &Path, source: &[u8]) -> Result<PathBuf, String> {
    let shown = String::from_utf8_lossy(source).into_owned();
    if source.is_empty() {
        return Err("the home itself is not a source".into());
    }
    check_path(source).map_err(|e| e.message)?;
    // Mount options are `,` and `:` separated: a name with either would change their meaning.
    if source.iter().any(|b| matches!(b, b',' | b':' | b'=')) {
        return Err(format!("source {shown:?} contains a separator"));
    }
    let name = std::str::from_utf8(source).map_err(|_| format!("source {shown:?} is not UTF-8"))?;
    let home_fd = rustix::fs::open(
        home,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        format!(
            "open home {}: {}",
            home.display(),
            storage_archive::error::os_error_text(&e.into())
        )
    })?;
    openat_beneath(
        &home_fd,
        source,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        0,
        Symlinks::Refused,
    )
    .map_err(|e| {
        format!(
            "source {shown:?} is not a directory inside the home: {}",
            storage_archive::error::os_error_text(&e.into())
        )
    })?;
    Ok(home.join(name))
}

/// The mounts the host performs for a component driver's layers: those of layer `id` go to
/// `<root>/<id>/<n>`, the last (the layer's mount point) to `<root>/<id>/merged`.
#[derive(Debug)]
pub struct LayerMounts {
    root: PathBuf,
    sys: Arc<dyn Syscalls>,
}

impl LayerMounts {
    /// Mounts under `root`, made with `sys`.
    pub fn new(root: PathBuf, sys: Arc<dyn Syscalls>) -> Self {
        LayerMounts { root, sys }
    }

    /// The system calls the mounts are made with.
    pub fn syscalls(&self) -> &dyn Syscalls {
        self.sys.as_ref()
    }

    /// Where the mounts of layer `id` go.
    fn dir(&self, id: &str) -> DriverResult<PathBuf> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(DriverError::InvalidLayerId(id.to_string()));
        }
        Ok(self.root.join(id))
    }

    /// A directory of this process's own for mounts of layer `id` that nobody else counts
    /// (the host's naive diff reads a layer there, whatever the store has mounted):
    /// `<root>/.private-<pid>-<n>-<id>`.
    pub fn private_dir(&self, id: &str) -> DriverResult<PathBuf> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // `dir` checks that the ID is one name.
        self.dir(id)?;
        Ok(self
            .root
            .join(format!(".private-{}-{n}-{id}", std::process::id())))
    }

    /// Undoes the private mount directories ([`LayerMounts::private_dir`]) of processes that
    /// are gone (killed during a naive diff, say): their mounts would otherwise stay until
    /// the run root goes. A directory of a live process, or one that cannot be undone, stays
    /// (the failure is logged).
    pub fn reclaim_private_dirs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return; // no mounts made yet
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(".private-"))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new("/proc").join(pid.to_string()).exists() {
                continue;
            }
            let dir = entry.path();
            log_failure(
                format_args!("undoing the private mounts in {}", dir.display()),
                self.undo_in(&dir),
            );
        }
    }

    /// Performs checked mounts in order; on a failure undoes what was done. Returns the
    /// layer's mount point (where the last one went).
    pub fn perform(&self, id: &str, mounts: &[CheckedMount]) -> DriverResult<PathBuf> {
        self.perform_in(&self.dir(id)?, mounts)
    }

    /// [`LayerMounts::perform`] with the mounts in `dir` (`dir/<n>`, the last on `dir/merged`).
    pub fn perform_in(&self, dir: &Path, mounts: &[CheckedMount]) -> DriverResult<PathBuf> {
        let mut done: Vec<PathBuf> = Vec::new();
        let result = (|| {
            for (index, mount) in mounts.iter().enumerate() {
                let target = if index + 1 == mounts.len() {
                    dir.join("merged")
                } else {
                    dir.join(index.to_string())
                };
                std::fs::create_dir_all(&target)
                    .map_err(|e| DriverError::io(format!("create {}", target.display()), e))?;
                perform_mount(self.syscalls(), mount, &target)?;
                done.push(target);
            }
            Ok(dir.join("merged"))
        })();
        if result.is_err() {
            // Rolling back: the mount's error is the one to report. A mount that cannot be
            // undone is logged, and then the directory stays: removing it would go through
            // that mount, into the layer it shows.
            let mut all_undone = true;
            for target in done.iter().rev() {
                all_undone &= log_failure(
                    format_args!("undoing the mount on {}", target.display()),
                    self.sys.unmount(target, UnmountFlags::DETACH),
                )
                .is_some();
            }
            if all_undone {
                let targets: Vec<PathBuf> = (0..mounts.len())
                    .map(|index| match index + 1 == mounts.len() {
                        true => dir.join("merged"),
                        false => dir.join(index.to_string()),
                    })
                    .collect();
                log_failure(
                    format_args!("removing {}", dir.display()),
                    remove_mount_dirs(dir, &targets),
                );
            }
        }
        result
    }

    /// Unmounts whatever [`LayerMounts::perform`] left for `id`, the mount point first, then
    /// the numbered mounts from the last (found on disk: `put` may run in another process
    /// than `get`).
    pub fn undo(&self, id: &str) -> DriverResult<()> {
        self.undo_in(&self.dir(id)?)
    }

    /// [`LayerMounts::undo`] of the mounts in `dir`. Every mount stacked on a target goes (a
    /// mount left by a process that died, or by a tool that does not unmount, below ours),
    /// and the directories are removed one by one, never recursively: what is still mounted
    /// makes the removal fail instead of reaching into the layer it shows.
    pub fn undo_in(&self, dir: &Path) -> DriverResult<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut numbered: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.parse::<usize>().ok().map(|n| (n, e.path()))
            })
            .collect();
        numbered.sort();
        let mut targets = vec![dir.join("merged")];
        targets.extend(numbered.into_iter().rev().map(|(_, p)| p));
        for target in &targets {
            self.unmount_all(target)?;
        }
        remove_mount_dirs(dir, &targets)
            .map_err(|e| DriverError::io(format!("remove {}", dir.display()), e))
    }

    /// Unmounts `target` until nothing is mounted there (bounded: a target that stays
    /// mounted after that many is an error).
    fn unmount_all(&self, target: &Path) -> DriverResult<()> {
        const MOST_STACKED: usize = 64;
        for _ in 0..MOST_STACKED {
            match self.sys.unmount(target, UnmountFlags::empty()) {
                Ok(()) => {}
                // Not mounted (EINVAL) or gone (ENOENT): nothing (more) to undo.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
                    return Ok(())
                }
                Err(e) => return Err(DriverError::io(format!("unmount {}", target.display()), e)),
            }
        }
        Err(DriverError::io(
            format!("unmount {}", target.display()),
            std::io::Error::other(format!("still mounted after {MOST_STACKED} unmounts")),
        ))
    }
}

/// Removes the (unmounted, empty) mount targets and then `dir`, each with `rmdir`; a missing
/// one is no error.
fn remove_mount_dirs(dir: &Path, targets: &[PathBuf]) -> std::io::Result<()> {
    let gone_is_fine = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    for target in targets {
        gone_is_fine(std::fs::remove_dir(target))?;
    }
    gone_is_fine(std::fs::remove_dir(dir))
}

/// The kernel flags of a checked mount's flag options, and its other options as data.
fn mount_flags(options: &[String]) -> (MountFlags, Vec<String>) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => {}
            "nodev" => flags |= MountFlags::NODEV,
            "nosuid" => flags |= MountFlags::NOSUID,
            "noexec" => flags |= MountFlags::NOEXEC,
            "noatime" => flags |= MountFlags::NOATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            other => data.push(other.to_string()),
        }
    }
    (flags, data)
}

/// Performs one checked mount at `target`: a bind mount (then a remount for its flags, as
/// the kernel ignores them on the bind itself), or a filesystem with its option string.
fn perform_mount(sys: &dyn Syscalls, mount: &CheckedMount, target: &Path) -> DriverResult<()> {
    let (flags, data) = mount_flags(&mount.options);
    let fail = |e: std::io::Error| {
        DriverError::io(format!("mount {} on {}", mount.fstype, target.display()), e)
    };
    match mount.fstype.as_str() {
        "bind" => {
            let source = mount
                .sources
                .first()
                .ok_or_else(|| DriverError::not_supported("bind mount without a source"))?;
            sys.bind_mount(source, target).map_err(fail)?;
            if !flags.is_empty() {
                sys.remount(target, flags | MountFlags::BIND, "")
                    .map_err(|e| {
                        // The remount's error is the one to report; a bind that stays is
                        // logged, and the caller's rollback leaves its directory alone.
                        log_failure(
                            format_args!("undoing the bind mount on {}", target.display()),
                            sys.unmount(target, UnmountFlags::DETACH),
                        );
                        fail(e)
                    })?;
            }
            Ok(())
        }
        fstype => {
            let data = data.join(",");
            if data.contains('\0') {
                return Err(DriverError::BadOption("mount data with a NUL byte".into()));
            }
            sys.mount(
                fstype,
                target,
                fstype,
                flags,
                Some(std::ffi::OsStr::new(&data)),
            )
            .map_err(fail)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(fstype: &str, sources: &[&str], options: &[&str]) -> MountRequest {
        MountRequest {
            fstype: fstype.into(),
            sources: sources.iter().map(|s| s.as_bytes().to_vec()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn home() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["l/a", "l/b", "u/diff", "u/work"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink("/etc", tmp.path().join("l/evil")).unwrap();
        std::os::unix::fs::symlink("a", tmp.path().join("l/inner")).unwrap();
        tmp
    }

    #[test]
    fn an_overlay_inside_the_home_is_rewritten_to_absolute_paths() {
        let tmp = home();
        let h = tmp.path();
        let checked = check_mount_requests(
            h,
            &[request(
                "overlay",
                &["l/a", "l/b", "u/diff", "u/work"],
                &[
                    "lowerdir=l/a:l/b",
                    "upperdir=u/diff",
                    "workdir=u/work",
                    "userxattr",
                    "index=off",
                ],
            )],
        )
        .unwrap();
        assert_eq!(checked.len(), 1);
        let lower = format!(
            "lowerdir={}:{}",
            h.join("l/a").display(),
            h.join("l/b").display()
        );
        assert_eq!(checked[0].options[0], lower);
        assert_eq!(
            checked[0].options[1],
            format!("upperdir={}", h.join("u/diff").display())
        );
        assert_eq!(checked[0].options[3], "userxattr");
        assert_eq!(checked[0].sources[2], h.join("u/diff"));
    }

    #[test]
    fn sources_outside_the_home_or_through_symlinks_are_refused() {
        let tmp = home();
        let h = tmp.path();
        for source in [
            "../x", "/etc", "l/evil", "l/inner", "l/../l/a", "missing", "", "l/a,ro",
        ] {
            let err = check_mount_requests(h, &[request("bind", &[source], &[])]).unwrap_err();
            assert_eq!(err.fstype, "bind", "{source}");
        }
    }

    #[test]
    fn options_and_types_outside_the_lists_are_refused() {
        let tmp = home();
        let h = tmp.path();
        let refused = [
            request("overlay", &["l/a"], &["lowerdir=/etc"]),
            request("overlay", &["l/a"], &["lowerdir=l/a:l/b"]),
            request("overlay", &["l/a"], &["redirect_dir=../x"]),
            request("overlay", &["l/a"], &["context=system_u"]),
            request("bind", &["l/a"], &["rbind"]),
            request("bind", &["l/a", "l/b"], &[]),
            request("nfs", &["l/a"], &[]),
        ];
        for r in refused {
            assert!(
                check_mount_requests(h, std::slice::from_ref(&r)).is_err(),
                "{r:?}"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod without_root {
    use super::*;
    use storage_driver::syscalls::{Call, RecordingSyscalls};

    fn checked(fstype: &str, sources: &[&str], options: &[&str]) -> CheckedMount {
        CheckedMount {
            fstype: fstype.into(),
            sources: sources.iter().map(PathBuf::from).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A read-only bind mount, then the layer's overlay: the bind's flags by a remount (the
    /// kernel ignores them on the bind itself), the overlay's as its option string; `put`
    /// unmounts the mount point first, then the numbered mounts.
    #[test]
    fn mounts_are_performed_in_order_and_undone_in_reverse() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        let mounts = LayerMounts::new(tmp.path().join("vfs-mounts"), sys.clone());
        let dir = tmp.path().join("vfs-mounts/L1");
        let lowerdir = "lowerdir=/h/l/a:/h/l/b";
        let merged = mounts
            .perform(
                "L1",
                &[
                    checked("bind", &["/h/l/a"], &["ro", "nodev"]),
                    checked(
                        "overlay",
                        &["/h/l/a", "/h/l/b"],
                        &[lowerdir, "userxattr", "nosuid"],
                    ),
                ],
            )
            .unwrap();
        assert_eq!(merged, dir.join("merged"));
        assert_eq!(
            sys.take_calls(),
            vec![
                Call::BindMount {
                    source: "/h/l/a".into(),
                    target: dir.join("0")
                },
                Call::Remount {
                    target: dir.join("0"),
                    flags: MountFlags::RDONLY | MountFlags::NODEV | MountFlags::BIND,
                    data: String::new()
                },
                Call::Mount {
                    source: "overlay".into(),
                    target: dir.join("merged"),
                    fstype: "overlay".into(),
                    flags: MountFlags::NOSUID,
                    data: Some(format!("{lowerdir},userxattr").into())
                },
            ]
        );
        mounts.undo("L1").unwrap();
        // Each target is unmounted until the kernel says nothing is mounted there (EINVAL).
        let unmount = |target: PathBuf| Call::Unmount {
            target,
            flags: UnmountFlags::empty(),
        };
        assert_eq!(
            sys.take_calls(),
            vec![
                unmount(dir.join("merged")),
                unmount(dir.join("merged")),
                unmount(dir.join("0")),
                unmount(dir.join("0")),
            ]
        );
        assert!(sys.mounted().is_empty());
        assert!(!dir.exists());
        // Nothing left: undoing again is no error.
        mounts.undo("L1").unwrap();
    }

    /// A mount stacked below ours on the mount point (left by a process that died, or by a
    /// tool that does not unmount) goes too; a mount that cannot be undone keeps its
    /// directories: nothing is removed through it.
    #[test]
    fn undo_removes_stacked_mounts_and_never_removes_through_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        let bind = [checked("bind", &["/h/l/a"], &[])];
        mounts.perform("L1", &bind).unwrap();
        mounts.perform("L1", &bind).unwrap();
        assert_eq!(sys.mounted().len(), 2);
        mounts.undo("L1").unwrap();
        assert!(sys.mounted().is_empty());
        assert!(!tmp.path().join("m/L1").exists());

        let merged = mounts.perform("L2", &bind).unwrap();
        // What the mount would show, were it real: it must survive a failed undo.
        std::fs::write(merged.join("layer-file"), b"data").unwrap();
        sys.fail_when(|c| matches!(c, Call::Unmount { .. }), libc::EBUSY);
        let err = mounts.undo("L2").unwrap_err();
        assert!(err.to_string().starts_with("unmount "), "{err}");
        assert_eq!(std::fs::read(merged.join("layer-file")).unwrap(), b"data");
    }

    #[test]
    fn private_mount_directories_are_apart_from_the_layers_mount_point() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        let a = mounts.private_dir("L1").unwrap();
        let b = mounts.private_dir("L1").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(tmp.path().join("m").as_path()));
        assert_ne!(a, tmp.path().join("m/L1"));
        assert!(mounts.private_dir("../x").is_err());
        let merged = mounts
            .perform_in(&a, &[checked("bind", &["/h/l/a"], &[])])
            .unwrap();
        assert_eq!(merged, a.join("merged"));
        mounts.undo_in(&a).unwrap();
        assert!(!a.exists());
        assert!(sys.mounted().is_empty());
    }

    /// The private directory of a process that died is undone by the next start; a live
    /// process's is left alone.
    #[test]
    fn private_directories_of_dead_processes_are_reclaimed() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        let bind = [checked("bind", &["/h/l/a"], &[])];
        let live = mounts.private_dir("L1").unwrap();
        mounts.perform_in(&live, &bind).unwrap();
        // Above the kernel's largest PID (4194304): no such process.
        let dead = tmp.path().join("m/.private-4294967295-0-L2");
        mounts.perform_in(&dead, &bind).unwrap();
        let layer = mounts.perform("L3", &bind).unwrap();
        assert_eq!(sys.mounted().len(), 3);

        mounts.reclaim_private_dirs();
        assert!(!dead.exists());
        assert!(live.join("merged").exists());
        assert!(layer.exists(), "a layer's mount point is not private");
        assert_eq!(sys.mounted().len(), 2);
    }

    #[test]
    fn a_failed_mount_undoes_the_ones_before_it() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        sys.fail_when(|c| matches!(c, Call::Mount { .. }), libc::EINVAL);
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        let err = mounts
            .perform(
                "L1",
                &[
                    checked("bind", &["/h/l/a"], &[]),
                    checked("overlay", &["/h/l/a"], &["lowerdir=/h/l/a"]),
                ],
            )
            .unwrap_err();
        assert!(err.to_string().starts_with("mount overlay on "), "{err}");
        let calls = sys.calls();
        assert_eq!(
            calls.last(),
            Some(&Call::Unmount {
                target: tmp.path().join("m/L1/0"),
                flags: UnmountFlags::DETACH
            })
        );
        assert!(sys.mounted().is_empty());
        assert!(!tmp.path().join("m/L1").exists());
    }

    /// When the rollback cannot undo a mount, the layer's mount directory stays: a recursive
    /// removal would go through the mount into what it shows (here, the bind's source).
    #[test]
    fn a_mount_the_rollback_cannot_undo_keeps_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        std::fs::create_dir(&source).unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        sys.fail_when(|c| matches!(c, Call::Mount { .. }), libc::EINVAL);
        sys.fail_when(|c| matches!(c, Call::Unmount { .. }), libc::EBUSY);
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        let shown = source.to_str().unwrap();
        let err = mounts
            .perform(
                "L1",
                &[
                    checked("bind", &[shown], &[]),
                    checked("overlay", &[shown], &[&format!("lowerdir={shown}")]),
                ],
            )
            .unwrap_err();
        assert!(err.to_string().starts_with("mount overlay on "), "{err}");
        assert_eq!(
            sys.calls().last(),
            Some(&Call::Unmount {
                target: tmp.path().join("m/L1/0"),
                flags: UnmountFlags::DETACH
            }),
            "the undo was tried"
        );
        assert!(
            tmp.path().join("m/L1/0").is_dir(),
            "the mount point stays while something may be mounted on it"
        );
    }

    #[test]
    fn a_layer_id_that_is_not_one_name_is_refused_before_any_call() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::new());
        let mounts = LayerMounts::new(tmp.path().join("m"), sys.clone());
        for id in ["", "..", "a/b"] {
            assert!(mounts
                .perform(id, &[checked("bind", &["/x"], &[])])
                .is_err());
            assert!(mounts.undo(id).is_err());
        }
        assert!(sys.calls().is_empty());
    }
}
