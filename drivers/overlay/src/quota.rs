//! xfs project quotas for container layers (upstream's `drivers/quota/projectquota.go`).
//!
//! On a home on xfs mounted with project quota (`prjquota`/`pquota`), every read-write layer
//! directory gets a project ID of its own, with `FS_XFLAG_PROJINHERIT` so that what is
//! created below it (`diff/`, `work/`) is charged to that project, and the project gets the
//! layer's limits through `quotactl(Q_XSETQLIM, PRJQUOTA)`: `size` as the block hard (and
//! soft) limit in 512-byte blocks, `inodes` as the inode hard (and soft) limit; 0 tracks
//! usage without a limit.
//!
//! Like upstream: project IDs start after the home's own project ID (an administrator can
//! give the home one with `xfs_quota ... project -s` to reserve a range), or, when the home
//! has none, at a number derived from the home's inode; at init the layer directories are
//! scanned so new IDs go above every ID in use. `quotactl` needs a block device naming the
//! filesystem, so a node `backingFsBlockDev` with the home's device number is made in the
//! home. Whether quotas work is found out by setting an empty limit on the first ID (and,
//! since xfs accepts that when only user or group quotas are on, by the mount's options).
//! The ioctls, `quotactl` and `mknod` go through the driver's [`Syscalls`].

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use storage_driver::syscalls::unescape_mountinfo;
pub use storage_driver::syscalls::xfs::{FsDiskQuota, FsXattr, FS_XFLAG_PROJINHERIT};
use storage_driver::syscalls::xfs::{
    FS_DQUOT_VERSION, FS_DQ_BHARD, FS_DQ_BSOFT, FS_DQ_IHARD, FS_DQ_ISOFT, FS_PROJ_QUOTA,
};
use storage_driver::syscalls::{FileType, ProjectQuotaCmd, Syscalls};
use storage_driver::{DriverError, DriverResult};

use crate::options::parse_size;

/// Name of the block device node made in the home for `quotactl` (upstream's
/// `BackingFsBlockDeviceLink`).
pub const BACKING_FS_BLOCK_DEV: &str = "backingFsBlockDev";

/// How many project IDs upstream sets apart for a home without a project ID of its own.
const PROJECT_IDS_PER_HOME: u64 = 10_000;

/// The limits of one layer; 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Bytes (rounded down to 512-byte blocks).
    pub size: u64,
    /// Inodes.
    pub inodes: u64,
}

impl Quota {
    /// The `fs_disk_quota` setting these limits on project `id`, as upstream fills it.
    pub fn disk_quota(&self, id: u32) -> FsDiskQuota {
        let mut d = FsDiskQuota {
            version: FS_DQUOT_VERSION,
            flags: FS_PROJ_QUOTA,
            id,
            ..FsDiskQuota::default()
        };
        if self.size > 0 {
            d.fieldmask |= FS_DQ_BHARD | FS_DQ_BSOFT;
            d.blk_hardlimit = self.size / 512;
            d.blk_softlimit = d.blk_hardlimit;
        }
        if self.inodes > 0 {
            d.fieldmask |= FS_DQ_IHARD | FS_DQ_ISOFT;
            d.ino_hardlimit = self.inodes;
            d.ino_softlimit = d.ino_hardlimit;
        }
        d
    }

    /// The limits of a layer: its `size`/`inodes` storage options (keys case-insensitive,
    /// like upstream's `parseStorageOpt`), each falling back to the driver's default.
    pub fn for_layer(
        storage_opt: &BTreeMap<String, String>,
        defaults: Quota,
    ) -> DriverResult<Quota> {
        let mut quota = defaults;
        for (key, value) in storage_opt {
            let value = value.trim();
            match key.to_ascii_lowercase().as_str() {
                "size" => quota.size = parse_size(value)?,
                "inodes" => {
                    quota.inodes = value.parse().map_err(|_| {
                        DriverError::BadOption(format!("overlay: invalid inodes value {value:?}"))
                    })?;
                }
                other => {
                    return Err(DriverError::BadOption(format!("unknown option {other}")));
                }
            }
        }
        Ok(quota)
    }
}

/// The first project ID upstream uses for a home without one: a block of
/// [`PROJECT_IDS_PER_HOME`] IDs chosen by the home's inode number.
pub fn unique_project_id(inode: u64) -> u32 {
    let span = u64::from(u32::MAX) - PROJECT_IDS_PER_HOME;
    let id = PROJECT_IDS_PER_HOME + inode.wrapping_mul(PROJECT_IDS_PER_HOME) % span;
    // Below u32::MAX by construction.
    u32::try_from(id).unwrap_or(u32::MAX)
}

/// The project IDs handed out: which directory has which, and the next free one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProjectIds {
    next: u32,
    by_dir: BTreeMap<PathBuf, u32>,
}

impl ProjectIds {
    /// IDs starting after `min` (the ID the home has or was given).
    pub fn starting_after(min: u32) -> Self {
        ProjectIds {
            next: min.saturating_add(1),
            by_dir: BTreeMap::new(),
        }
    }

    /// Records that `dir` has project `id` (found at init); new IDs go above it.
    pub fn record(&mut self, dir: PathBuf, id: u32) {
        if id > 0 {
            self.by_dir.insert(dir, id);
        }
        if self.next <= id {
            self.next = id.saturating_add(1);
        }
    }

    /// The ID of `dir`, if it has one.
    pub fn of(&self, dir: &Path) -> Option<u32> {
        self.by_dir.get(dir).copied()
    }

    /// The next free ID, which `commit` then gives to a directory.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// Gives `dir` the next free ID.
    pub fn commit(&mut self, dir: PathBuf) -> u32 {
        let id = self.next;
        self.by_dir.insert(dir, id);
        self.next = id.saturating_add(1);
        id
    }

    /// Forgets `dir` (removed); its ID is not reused, like upstream.
    pub fn forget(&mut self, dir: &Path) {
        self.by_dir.remove(dir);
    }
}

/// Project quota control of one driver home (upstream's `quota.Control`).
#[derive(Debug)]
pub struct QuotaControl {
    sys: Arc<dyn Syscalls>,
    home: PathBuf,
    backing_dev: PathBuf,
    ids: Mutex<ProjectIds>,
}

impl QuotaControl {
    /// Sets up project quotas for `home`, or says why they cannot work there (not xfs,
    /// no project quota accounting or enforcement, not root).
    pub fn new(sys: Arc<dyn Syscalls>, home: &Path) -> DriverResult<Self> {
        let mut min = project_id(sys.as_ref(), home)?;
        if min == 0 {
            let meta = std::fs::metadata(home)
                .map_err(|e| DriverError::io(format!("stat of {}", home.display()), e))?;
            min = unique_project_id(meta.ino());
        }
        let backing_dev = make_backing_dev(sys.as_ref(), home)?;
        let control = QuotaControl {
            sys,
            home: home.to_path_buf(),
            backing_dev,
            ids: Mutex::new(ProjectIds::starting_after(min)),
        };
        control.set_limits(min, Quota::default())?;
        // An empty limit is also accepted when only user or group quotas are on: make
        // sure projects are accounted, or every sized layer would fail later.
        let info = control.sys.mountinfo().unwrap_or_default();
        if project_quota_mounted(&info, home) == Some(false) {
            return Err(DriverError::Quota(format!(
                "project quota is not enabled on the filesystem of {} (mount option prjquota)",
                home.display()
            )));
        }
        strip_project_inherit(control.sys.as_ref(), home)?;
        control.scan()?;
        Ok(control)
    }

    /// The block device node given to `quotactl`.
    pub fn backing_dev(&self) -> &Path {
        &self.backing_dev
    }

    /// Records the project IDs of the home's directories (upstream's `findNextProjectID`).
    fn scan(&self) -> DriverResult<()> {
        let entries = std::fs::read_dir(&self.home)
            .map_err(|e| DriverError::io(format!("reading {}", self.home.display()), e))?;
        let mut ids = self.lock();
        for entry in entries {
            let entry = entry
                .map_err(|e| DriverError::io(format!("reading {}", self.home.display()), e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            ids.record(dir.clone(), project_id(self.sys.as_ref(), &dir)?);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProjectIds> {
        self.ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives the empty directory `dir` a project ID of its own (unless it has one already)
    /// and sets the project's limits; returns the ID.
    pub fn set_quota(&self, dir: &Path, quota: Quota) -> DriverResult<u32> {
        let id = {
            let mut ids = self.lock();
            // An ID recorded for a directory that was since removed and made again (by
            // another process) is not on the new directory: give it a new one.
            let recorded = ids.of(dir).filter(|id| {
                project_id(self.sys.as_ref(), dir).is_ok_and(|on_disk| on_disk == *id)
            });
            match recorded {
                Some(id) => id,
                None => {
                    // Only what is created after the ID is set inherits it.
                    let mut entries = std::fs::read_dir(dir)
                        .map_err(|e| DriverError::io(format!("reading {}", dir.display()), e))?;
                    if entries.next().is_some() {
                        return Err(DriverError::Quota(format!(
                            "can only set project ID on empty directories, {} is not empty",
                            dir.display()
                        )));
                    }
                    set_project_id(self.sys.as_ref(), dir, ids.next())?;
                    ids.commit(dir.to_path_buf())
                }
            }
        };
        self.set_limits(id, quota)?;
        Ok(id)
    }

    /// Forgets the project ID of a removed directory.
    pub fn clear_quota(&self, dir: &Path) {
        self.lock().forget(dir);
    }

    /// The limits and usage the kernel has for the project of `dir`.
    pub fn get_quota(&self, dir: &Path) -> DriverResult<FsDiskQuota> {
        let id = self.lock().of(dir).ok_or_else(|| {
            DriverError::Quota(format!("quota not found for path : {}", dir.display()))
        })?;
        let mut d = FsDiskQuota::default();
        let cmd = ProjectQuotaCmd::GetQuota;
        self.sys
            .project_quotactl(cmd, &self.backing_dev, id, &mut d)
            .map_err(|e| {
                DriverError::io(
                    format!(
                        "failed to get quota limit for projid {id} on {}",
                        self.backing_dev.display()
                    ),
                    e,
                )
            })?;
        Ok(d)
    }

    /// Sets the limits of project `id`, remaking the device node if it went missing.
    fn set_limits(&self, id: u32, quota: Quota) -> DriverResult<()> {
        let mut d = quota.disk_quota(id);
        let cmd = ProjectQuotaCmd::SetLimits;
        let mut result = self
            .sys
            .project_quotactl(cmd, &self.backing_dev, id, &mut d);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
            make_backing_dev(self.sys.as_ref(), &self.home)?;
            result = self
                .sys
                .project_quotactl(cmd, &self.backing_dev, id, &mut d);
        }
        result.map_err(|e| {
            DriverError::io(
                format!(
                    "failed to set quota limit for projid {id} on {}",
                    self.backing_dev.display()
                ),
                e,
            )
        })
    }
}

/// Whether the mount holding `path` (its last mount on the longest mount point that
/// contains it) has xfs project quota accounting, from the text of
/// `/proc/self/mountinfo`; `None` when no mount holds it.
pub fn project_quota_mounted(mountinfo: &str, path: &Path) -> Option<bool> {
    let mut best: Option<(usize, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| unescape_mountinfo(p)) else {
            continue;
        };
        if !path.starts_with(Path::new(std::ffi::OsStr::from_bytes(&point))) {
            continue;
        }
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let fstype = fields.get(sep + 1).copied().unwrap_or_default();
        let super_opts = fields.get(sep + 3).copied().unwrap_or_default();
        let project = fstype == "xfs"
            && super_opts
                .split(',')
                .any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce"));
        if best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), project));
        }
    }
    best.map(|(_, project)| project)
}

/// Opens a directory for the `FS_IOC_FS*XATTR` ioctls.
fn open_dir(dir: &Path) -> DriverResult<std::fs::File> {
    std::fs::File::open(dir).map_err(|e| DriverError::io(format!("opening {}", dir.display()), e))
}

/// Reads the extended attributes of the open directory `file` (`FS_IOC_FSGETXATTR`).
fn get_xattr(sys: &dyn Syscalls, file: &std::fs::File, dir: &Path) -> DriverResult<FsXattr> {
    sys.fs_get_xattr(file.as_fd())
        .map_err(|e| DriverError::io(format!("failed to get projid for {}", dir.display()), e))
}

/// Writes the extended attributes of the open directory `file` (`FS_IOC_FSSETXATTR`).
fn set_xattr(
    sys: &dyn Syscalls,
    file: &std::fs::File,
    dir: &Path,
    attr: FsXattr,
) -> DriverResult<()> {
    sys.fs_set_xattr(file.as_fd(), &attr)
        .map_err(|e| DriverError::io(format!("failed to set projid for {}", dir.display()), e))
}

/// The project ID of `dir`.
pub fn project_id(sys: &dyn Syscalls, dir: &Path) -> DriverResult<u32> {
    Ok(get_xattr(sys, &open_dir(dir)?, dir)?.projid)
}

/// Whether `dir` passes its project ID on to what is created in it.
pub fn inherits_project(sys: &dyn Syscalls, dir: &Path) -> DriverResult<bool> {
    Ok(get_xattr(sys, &open_dir(dir)?, dir)?.xflags & FS_XFLAG_PROJINHERIT != 0)
}

/// Gives `dir` project `id`, inherited by what is created in it.
pub fn set_project_id(sys: &dyn Syscalls, dir: &Path, id: u32) -> DriverResult<()> {
    let file = open_dir(dir)?;
    let mut attr = get_xattr(sys, &file, dir)?;
    attr.projid = id;
    attr.xflags |= FS_XFLAG_PROJINHERIT;
    set_xattr(sys, &file, dir, attr)
}

/// Clears `FS_XFLAG_PROJINHERIT` on the home, so that layer directories do not all get the
/// home's ID.
fn strip_project_inherit(sys: &dyn Syscalls, dir: &Path) -> DriverResult<()> {
    let file = open_dir(dir)?;
    let mut attr = get_xattr(sys, &file, dir)?;
    if attr.xflags & FS_XFLAG_PROJINHERIT != 0 {
        attr.xflags &= !FS_XFLAG_PROJINHERIT;
        set_xattr(sys, &file, dir, attr)?;
    }
    Ok(())
}

/// Makes `<home>/backingFsBlockDev`, a block device node with the device number of the
/// home's filesystem (through a temporary name, so a concurrent init never sees none).
fn make_backing_dev(sys: &dyn Syscalls, home: &Path) -> DriverResult<PathBuf> {
    let meta = std::fs::metadata(home)
        .map_err(|e| DriverError::io(format!("stat of {}", home.display()), e))?;
    let node = home.join(BACKING_FS_BLOCK_DEV);
    let tmp = home.join(format!("{BACKING_FS_BLOCK_DEV}.tmp"));
    let mknod = || {
        sys.mknod_at(
            rustix::fs::CWD,
            &tmp,
            FileType::BlockDevice,
            0o600,
            meta.dev(),
        )
    };
    let made = match mknod() {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // A node left by an earlier init; if it cannot go, the second mknod fails
            // with EEXIST and that is reported.
            let _ = std::fs::remove_file(&tmp);
            mknod()
        }
        other => other,
    };
    made.map_err(|e| DriverError::io(format!("failed to mknod {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &node).map_err(|e| {
        DriverError::io(
            format!("failed to rename {} to {}", tmp.display(), node.display()),
            e,
        )
    })?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_filled_like_upstream() {
        let d = Quota {
            size: (1 << 20) + 100,
            inodes: 0,
        }
        .disk_quota(7);
        assert_eq!((d.version, d.flags, d.id), (1, 2, 7));
        assert_eq!(d.fieldmask, FS_DQ_BHARD | FS_DQ_BSOFT);
        assert_eq!((d.blk_hardlimit, d.blk_softlimit), (2048, 2048));
        assert_eq!(d.ino_hardlimit, 0);
        let d = Quota {
            size: 0,
            inodes: 50,
        }
        .disk_quota(8);
        assert_eq!(d.fieldmask, FS_DQ_IHARD | FS_DQ_ISOFT);
        assert_eq!((d.ino_hardlimit, d.ino_softlimit), (50, 50));
        assert_eq!(Quota::default().disk_quota(9).fieldmask, 0);
    }

    #[test]
    fn layer_options_override_defaults() {
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let defaults = Quota {
            size: 10 << 20,
            inodes: 100,
        };
        assert_eq!(Quota::for_layer(&opts(&[]), defaults).unwrap(), defaults);
        assert_eq!(
            Quota::for_layer(&opts(&[("size", "1M")]), defaults).unwrap(),
            Quota {
                size: 1 << 20,
                inodes: 100
            }
        );
        assert_eq!(
            Quota::for_layer(&opts(&[("INODES", "5"), ("size", "0")]), defaults).unwrap(),
            Quota { size: 0, inodes: 5 }
        );
        let bad = Quota::for_layer(&opts(&[("color", "red")]), defaults).unwrap_err();
        assert_eq!(bad.to_string(), "unknown option color");
        assert!(Quota::for_layer(&opts(&[("size", "lots")]), defaults).is_err());
        assert!(Quota::for_layer(&opts(&[("inodes", "-1")]), defaults).is_err());
    }

    #[test]
    fn project_quota_is_read_from_the_holding_mount() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 7:0 / /srv/xfs rw,relatime shared:2 - xfs /dev/loop0 rw,attr2,inode64,usrquota
41 22 7:1 / /srv/my\\040store rw,relatime shared:3 - xfs /dev/loop1 rw,attr2,prjquota
42 41 7:1 /overlay /srv/my\\040store/overlay rw shared:3 - xfs /dev/loop1 rw,attr2,prjquota
43 22 7:2 / /srv/noenf rw - xfs /dev/loop2 rw,pqnoenforce
";
        let at = |p: &str| project_quota_mounted(info, Path::new(p));
        assert_eq!(at("/srv/xfs/graph/overlay"), Some(false), "user quota only");
        assert_eq!(at("/srv/my store/overlay"), Some(true));
        assert_eq!(at("/srv/my store"), Some(true));
        assert_eq!(at("/srv/noenf/o"), Some(true));
        assert_eq!(at("/var/lib"), Some(false), "ext4");
        assert_eq!(project_quota_mounted("", Path::new("/x")), None);
    }

    #[test]
    fn ids_start_after_the_home_and_skip_used_ones() {
        let mut ids = ProjectIds::starting_after(100);
        assert_eq!(ids.next(), 101);
        ids.record(PathBuf::from("/h/a"), 0);
        ids.record(PathBuf::from("/h/b"), 150);
        ids.record(PathBuf::from("/h/c"), 120);
        assert_eq!(ids.next(), 151);
        assert_eq!(ids.of(Path::new("/h/b")), Some(150));
        assert_eq!(ids.of(Path::new("/h/a")), None);
        assert_eq!(ids.commit(PathBuf::from("/h/d")), 151);
        assert_eq!(ids.next(), 152);
        ids.forget(Path::new("/h/d"));
        assert_eq!(ids.of(Path::new("/h/d")), None);
        assert_eq!(
            ids.next(),
            152,
            "a removed layer's ID is not handed out again"
        );
    }

    #[test]
    fn unique_ids_are_in_the_upper_range() {
        assert_eq!(unique_project_id(0), 10_000);
        assert_eq!(unique_project_id(1), 20_000);
        let big = unique_project_id(u64::MAX);
        assert!(big >= 10_000);
        // Go's uint64 arithmetic wraps: (2^64-1)*10000 mod 2^64, then mod (2^32-1-10000).
        let span = u64::from(u32::MAX) - 10_000;
        assert_eq!(
            u64::from(big),
            10_000 + u64::MAX.wrapping_mul(10_000) % span
        );
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod xfs_tests;

#[cfg(test)]
#[path = "quota_double_tests.rs"]
mod without_root;
