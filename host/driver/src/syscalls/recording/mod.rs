//! [`RecordingSyscalls`]: the test double of [`Syscalls`](crate::syscalls::Syscalls). It
//! makes no privileged call: it records every call with its arguments ([`Call`]) and answers
//! as configured, so tests run without root.
//!
//! Its answers follow what the kernel would say, kept in a small model, so the code under
//! test takes the same branches it would take for real:
//! - a mount table: `mount`, `bind_mount`, `mount_in_dir` and `move_mount` add a mount at
//!   their target, `unmount` removes the last one there (`EINVAL` when there is none, as the
//!   kernel), `set_propagation` of a path that is not a mount point is `EINVAL`;
//!   [`Syscalls::is_mount_point`] and [`Syscalls::mountinfo`] answer from it (after the lines
//!   given with [`RecordingSyscalls::add_mountinfo`]);
//! - xattrs set with `lset_xattr`, `fset_xattr` or [`RecordingSyscalls::put_xattr`] are what
//!   `lget_xattr` reads and `lremove_xattr` removes (`ENODATA` when there is none); project IDs and flags set with `fs_set_xattr` or
//!   [`RecordingSyscalls::put_fs_xattr`] are what `fs_get_xattr` reads; project limits set
//!   with `Q_XSETQLIM` are what `Q_XGETQUOTA` reads;
//! - `mknod_at` leaves an empty regular file where the node would be, and btrfs subvolume
//!   creation and snapshots an empty directory (with a subvolume ID from 256 on), so code
//!   that goes on to rename, fill or remove them works; destroying a subvolume removes its
//!   directory;
//! - btrfs quotas are off until `btrfs_quota_enable`;
//! - the process is root (`euid` 0) unless [`RecordingSyscalls::set_euid`] says otherwise.
//!
//! Anything else is recorded and succeeds, unless [`RecordingSyscalls::fail_when`] says that
//! a call fails with an errno (it is recorded all the same: it was made).
//!
//! Paths named through a descriptor are recorded as the path the descriptor has
//! (`/proc/self/fd/N`), joined with the name given; so are paths that start with
//! `/proc/self/fd/N/` (how a confined tree names an entry for the `l*xattr` calls).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustix::fs::{Mode, OFlags};

use super::call::Call;
use super::xfs::{FsDiskQuota, FsXattr};

/// Says which calls fail.
type Matcher = Box<dyn Fn(&Call) -> bool + Send + Sync>;

/// A mount of the model's table.
#[derive(Debug, Clone)]
struct Mounted {
    target: PathBuf,
    fstype: String,
    source: String,
}

/// What `fsopen` and `fsmount` descriptors stand for.
#[derive(Debug, Clone)]
struct Context {
    fstype: String,
    source: String,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    failures: Vec<(Matcher, i32)>,
    mounts: Vec<Mounted>,
    mountinfo: String,
    contexts: HashMap<RawFd, Context>,
    xattrs: BTreeMap<(PathBuf, String), Vec<u8>>,
    fs_xattrs: BTreeMap<PathBuf, FsXattr>,
    project_limits: BTreeMap<u32, FsDiskQuota>,
    subvolumes: BTreeMap<PathBuf, u64>,
    btrfs_quota: bool,
    euid: u32,
    user_namespace: bool,
}

/// The recording test double of [`Syscalls`](crate::syscalls::Syscalls) (see the module doc).
#[derive(Default)]
pub struct RecordingSyscalls {
    state: Mutex<State>,
}

impl fmt::Debug for RecordingSyscalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingSyscalls")
            .field("calls", &self.lock().calls.len())
            .finish()
    }
}

/// The path a descriptor has; `None` for `AT_FDCWD`.
fn fd_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    if fd.as_raw_fd() == rustix::fs::CWD.as_raw_fd() {
        return None;
    }
    Some(
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| PathBuf::from(format!("<fd {}>", fd.as_raw_fd()))),
    )
}

/// `path` beneath the directory `dir` names.
fn at_path(dir: BorrowedFd<'_>, path: &Path) -> PathBuf {
    match fd_path(dir) {
        Some(base) if !path.is_absolute() => base.join(path),
        _ => shown(path),
    }
}

/// `path` with a leading `/proc/self/fd/N` (how a confined tree names an entry for the
/// `l*xattr` calls) replaced by the path descriptor N has.
fn shown(path: &Path) -> PathBuf {
    let mut parts = path.components();
    let prefix: Vec<_> = parts.by_ref().take(4).collect();
    let fd = match prefix.as_slice() {
        [std::path::Component::RootDir, p, s, f]
            if p.as_os_str() == "proc" && s.as_os_str() == "self" && f.as_os_str() == "fd" =>
        {
            parts.next()
        }
        _ => None,
    };
    let target = fd.and_then(|n| std::fs::read_link(Path::new("/proc/self/fd").join(n)).ok());
    match target {
        Some(target) => target.join(parts.as_path()),
        None => path.to_path_buf(),
    }
}

/// The path a descriptor has, for calls made on it.
fn path_of(fd: BorrowedFd<'_>) -> PathBuf {
    fd_path(fd).unwrap_or_else(|| PathBuf::from("."))
}

/// A descriptor standing for a filesystem context or a detached mount: `/dev/null`, which
/// every process may open.
fn placeholder_fd() -> io::Result<OwnedFd> {
    rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
}

impl RecordingSyscalls {
    /// A double with no mounts, no xattrs and nothing failing.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every call that `matches` fail with `errno` (later rules are tried first).
    pub fn fail_when(&self, matches: impl Fn(&Call) -> bool + Send + Sync + 'static, errno: i32) {
        self.lock().failures.insert(0, (Box::new(matches), errno));
    }

    /// Lines `mountinfo` gives before the model's own mounts (for example the mount a home
    /// is on, with its options).
    pub fn add_mountinfo(&self, lines: &str) {
        let mut state = self.lock();
        state.mountinfo.push_str(lines);
        if !state.mountinfo.ends_with('\n') {
            state.mountinfo.push('\n');
        }
    }

    /// Gives `path` the xattr `name` (what `lget_xattr` then reads).
    pub fn put_xattr(&self, path: &Path, name: &str, value: &[u8]) {
        self.lock()
            .xattrs
            .insert((path.to_path_buf(), name.to_string()), value.to_vec());
    }

    /// Gives the directory `dir` these `FS_IOC_FSGETXATTR` attributes.
    pub fn put_fs_xattr(&self, dir: &Path, attr: FsXattr) {
        self.lock().fs_xattrs.insert(dir.to_path_buf(), attr);
    }

    /// Makes [`Syscalls::euid`](crate::syscalls::Syscalls::euid) answer `euid` (0, root, until then: the double stands in for
    /// a process that may make every call it records).
    pub fn set_euid(&self, euid: u32) {
        self.lock().euid = euid;
    }

    /// Makes [`Syscalls::in_user_namespace`](crate::syscalls::Syscalls::in_user_namespace)
    /// answer `inside` (`false` until then: the initial namespace).
    pub fn set_user_namespace(&self, inside: bool) {
        self.lock().user_namespace = inside;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every call so far, in order, forgetting them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The targets mounted in the model, oldest first.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.lock()
            .mounts
            .iter()
            .map(|m| m.target.clone())
            .collect()
    }

    /// Records `call` and says whether it fails.
    fn record(&self, call: Call) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.lock();
        let failure = state
            .failures
            .iter()
            .find(|(matches, _)| matches(&call))
            .map(|(_, errno)| *errno);
        state.calls.push(call);
        match failure {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(state),
        }
    }

    /// Records and models a set xattr.
    fn set_xattr(&self, path: PathBuf, name: &str, value: &[u8]) -> io::Result<()> {
        let mut state = self.record(Call::SetXattr {
            path: path.clone(),
            name: name.to_string(),
            value: value.to_vec(),
        })?;
        state
            .xattrs
            .insert((path, name.to_string()), value.to_vec());
        Ok(())
    }

    /// Records `call`, which changes nothing in the model.
    fn plain(&self, call: Call) -> io::Result<()> {
        self.record(call).map(drop)
    }
}

impl State {
    fn mount(&mut self, target: &Path, fstype: &str, source: &str) {
        self.mounts.push(Mounted {
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            source: source.to_string(),
        });
    }

    fn is_mounted(&self, target: &Path) -> bool {
        self.mounts.iter().any(|m| m.target == target)
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

mod answers;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod without_root {
    use super::*;
    use crate::syscalls::{
        FileType, MountAttrFlags, MountPropagationFlags, Syscalls, UnmountFlags,
    };
    use std::ffi::OsStr;
    use std::os::fd::AsFd;

    #[test]
    fn the_mount_table_answers_as_the_kernel_would() {
        let sys = RecordingSyscalls::new();
        let home = Path::new("/srv/h");
        assert!(!sys.is_mount_point(home).unwrap());
        let err = sys
            .set_propagation(home, MountPropagationFlags::PRIVATE)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "not a mount point");
        sys.bind_mount(home, home).unwrap();
        sys.set_propagation(home, MountPropagationFlags::PRIVATE)
            .unwrap();
        assert!(sys.is_mount_point(home).unwrap());
        assert!(super::super::mountinfo_has(&sys.mountinfo().unwrap(), home));
        sys.unmount(home, UnmountFlags::DETACH).unwrap();
        let err = sys.unmount(home, UnmountFlags::DETACH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "nothing left there");
        assert_eq!(
            sys.take_calls(),
            vec![
                Call::SetPropagation {
                    target: home.into(),
                    propagation: MountPropagationFlags::PRIVATE
                },
                Call::BindMount {
                    source: home.into(),
                    target: home.into()
                },
                Call::SetPropagation {
                    target: home.into(),
                    propagation: MountPropagationFlags::PRIVATE
                },
                Call::Unmount {
                    target: home.into(),
                    flags: UnmountFlags::DETACH
                },
                Call::Unmount {
                    target: home.into(),
                    flags: UnmountFlags::DETACH
                },
            ]
        );
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn a_new_api_mount_lands_at_its_target() {
        let sys = RecordingSyscalls::new();
        let fs = sys.fsopen("overlay").unwrap();
        sys.fsconfig_set_string(fs.as_fd(), "source", OsStr::new("overlay"))
            .unwrap();
        sys.fsconfig_create(fs.as_fd()).unwrap();
        let mnt = sys.fsmount(fs.as_fd(), MountAttrFlags::empty()).unwrap();
        sys.move_mount(mnt.as_fd(), Path::new("/m")).unwrap();
        assert_eq!(sys.mounted(), vec![PathBuf::from("/m")]);
        assert!(sys
            .mountinfo()
            .unwrap()
            .contains(" /m rw - overlay overlay rw"));
    }

    #[test]
    fn failures_are_recorded_and_answered() {
        let sys = RecordingSyscalls::new();
        sys.fail_when(|c| matches!(c, Call::Syncfs { .. }), libc::EIO);
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(dir.path()).unwrap();
        let err = sys.syncfs(file.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        sys.chmod(Path::new("x"), 0o755).unwrap();
        assert_eq!(
            sys.calls()[0],
            Call::Syncfs {
                path: std::fs::canonicalize(dir.path()).unwrap()
            }
        );
    }

    #[test]
    fn nodes_subvolumes_and_xattrs_are_modelled() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let sys = RecordingSyscalls::new();
        let dir = std::fs::File::open(&root).unwrap();
        sys.mknod_at(
            dir.as_fd(),
            Path::new("dev"),
            FileType::BlockDevice,
            0o600,
            7,
        )
        .unwrap();
        assert!(root.join("dev").is_file(), "a stand-in for the node");
        sys.btrfs_subvol_create(dir.as_fd(), OsStr::new("sub"))
            .unwrap();
        let sub = std::fs::File::open(root.join("sub")).unwrap();
        assert_eq!(sys.btrfs_subvolume_id(sub.as_fd()).unwrap(), 256);
        assert!(sys.btrfs_subvolume_id(dir.as_fd()).is_err());
        sys.btrfs_subvol_destroy(dir.as_fd(), OsStr::new("sub"))
            .unwrap();
        assert!(!root.join("sub").exists());
        let file = root.join("dev");
        assert_eq!(sys.lget_xattr(&file, "security.capability").unwrap(), None);
        sys.lset_xattr(&file, "security.capability", b"cap")
            .unwrap();
        assert_eq!(
            sys.lget_xattr(&file, "security.capability").unwrap(),
            Some(b"cap".to_vec())
        );
        assert_eq!(
            sys.calls()[0],
            Call::Mknod {
                path: root.join("dev"),
                kind: FileType::BlockDevice,
                mode: 0o600,
                dev: 7
            }
        );
    }
}
