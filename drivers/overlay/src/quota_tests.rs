//! Project quotas against the real kernel, on a loop-mounted xfs (they run as root and need
//! `mkfs.xfs`). The filesystem is mounted with `prjquota`; a kernel built without xfs quota
//! support refuses that option, and then the filesystem is mounted without it and the tests
//! check what must happen there instead (upstream's error, and project IDs still set).
//!
//! A filesystem is a sparse image `<tmp>/storage-xfsq-<pid>-<tag>.img`, formatted and
//! mounted (`mount -o loop`, autoclear) on the directory of the same name without `.img`;
//! the image is deleted once mounted, so unmounting frees everything. The guard unmounts on
//! drop, also when a test fails, and a sweep removes what killed runs left.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use storage_driver::{CreateOpts, DriverError, DriverInit, GraphDriver, MountOpts};

use super::*;
use crate::OverlayDriver;
use storage_driver::syscalls::LinuxSyscalls;

/// Prefix of the mount points and images in the temporary directory.
const PREFIX: &str = "storage-xfsq-";

/// A loop-mounted xfs, unmounted and removed on drop.
struct LoopXfs {
    dir: PathBuf,
    /// Whether the kernel took `prjquota`.
    quota: bool,
}

impl LoopXfs {
    fn new(tag: &str) -> LoopXfs {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{tag}", std::process::id()));
        remove(&dir);
        std::fs::create_dir_all(&dir).expect("creating the xfs mount point");
        let image = dir.with_extension("img");
        let mut fs = LoopXfs { dir, quota: false };
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(512 << 20))
            .expect("creating the xfs image");
        let mkfs = Command::new("mkfs.xfs")
            .arg("-q")
            .arg(&image)
            .output()
            .expect("running mkfs.xfs (is xfsprogs installed?)");
        assert!(mkfs.status.success(), "mkfs.xfs: {mkfs:?}");
        let mount = |options: &str| {
            Command::new("mount")
                .args(["-t", "xfs", "-o", options])
                .arg(&image)
                .arg(&fs.dir)
                .output()
                .expect("running mount")
        };
        fs.quota = mount("loop,prjquota").status.success();
        if !fs.quota {
            let plain = mount("loop");
            assert!(plain.status.success(), "mount -o loop: {plain:?}");
            eprintln!("this kernel refuses xfs prjquota: checking the no-quota behaviour");
        }
        std::fs::remove_file(&image).expect("removing the mounted image");
        fs
    }
}

impl Drop for LoopXfs {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Unmounts everything at and below `dir`, then removes it and its image.
fn remove(dir: &Path) {
    for _ in 0..3 {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(dir))
            .collect();
        if points.is_empty() {
            break;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in points {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(dir.with_extension("img"));
}

/// Removes the filesystems of test processes that no longer run.
fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            remove(&entry.path().with_extension(""));
        }
    }
}

fn init(fs: &LoopXfs, options: &[&str]) -> DriverResult<OverlayDriver> {
    let mut all = vec!["overlay.skip_mount_home=true"];
    all.extend_from_slice(options);
    OverlayDriver::new(&DriverInit {
        home: fs.dir.join("graph/overlay"),
        graph_root: fs.dir.join("graph"),
        run_root: fs.dir.join("run"),
        options: all.iter().map(|s| s.to_string()).collect(),
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    })
}

fn size_opt(size: &str) -> CreateOpts {
    CreateOpts {
        storage_opt: BTreeMap::from([("size".to_string(), size.to_string())]),
        ..CreateOpts::default()
    }
}

/// Writes `len` bytes to `path` and syncs them (xfs may delay block allocation).
fn write_bytes(path: &Path, len: usize) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0x5a_u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n;
    }
    file.sync_all()
}

fn is_edquot(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EDQUOT)
}

#[test]
fn xfs_project_quota_limits_layers() {
    let fs = LoopXfs::new("drv");
    let home = fs.dir.join("graph/overlay");
    if !fs.quota {
        no_quota_behaviour(&fs, &home);
        return;
    }
    let d = init(&fs, &[]).expect("init on xfs with prjquota");
    let control = d.project_quota().expect("quotas enabled");
    // The device node quotactl is given: the home's filesystem.
    let node = std::fs::metadata(home.join(BACKING_FS_BLOCK_DEV)).expect("node");
    assert!(node.file_type().is_block_device());
    assert_eq!(node.rdev(), std::fs::metadata(&home).expect("home").dev());
    assert_eq!(control.backing_dev(), home.join(BACKING_FS_BLOCK_DEV));

    d.create_read_write("limited", None, &size_opt("1M"))
        .expect("create with size");
    d.create_read_write("free", None, &CreateOpts::default())
        .expect("create without size");
    d.create("image", None, &CreateOpts::default())
        .expect("image layer");
    let limited = home.join("limited");
    let id = project_id(&LinuxSyscalls, &limited).expect("projid");
    let free_id = project_id(&LinuxSyscalls, &home.join("free")).expect("projid");
    assert!(id > project_id(&LinuxSyscalls, &home).expect("home projid"));
    assert!(free_id > id, "IDs are handed out upward");
    assert!(inherits_project(&LinuxSyscalls, &limited).expect("flags"));
    assert_eq!(
        project_id(&LinuxSyscalls, &limited.join("diff")).expect("diff"),
        id
    );
    assert_eq!(
        project_id(&LinuxSyscalls, &limited.join("work")).expect("work"),
        id
    );
    assert_eq!(
        project_id(&LinuxSyscalls, &home.join("image")).expect("image"),
        0
    );
    let q = control.get_quota(&limited).expect("quota");
    assert_eq!(q.blk_hardlimit, 2048, "1 MiB in 512-byte blocks");
    assert_eq!(
        control
            .get_quota(&home.join("free"))
            .expect("q")
            .blk_hardlimit,
        0
    );

    // Written in the diff directory directly and through the overlay mount.
    let err = write_bytes(&limited.join("diff/big"), 2 << 20).expect_err("over quota");
    assert!(is_edquot(&err), "{err}");
    std::fs::remove_file(limited.join("diff/big")).expect("rm");
    let merged = d.get("limited", &MountOpts::default()).expect("mount");
    let err = write_bytes(&merged.join("big"), 2 << 20).expect_err("over quota");
    assert!(is_edquot(&err), "{err}");
    d.put("limited").expect("unmount");
    let merged = d.get("free", &MountOpts::default()).expect("mount");
    write_bytes(&merged.join("big"), 2 << 20).expect("no limit");
    d.put("free").expect("unmount");

    // A new driver finds the IDs in use and goes above them.
    drop(d);
    // The layer's own directories (itself, diff, work, merged, empty) count too.
    let d = init(&fs, &["overlay.inodes=10"]).expect("init again");
    d.create_read_write("next", None, &CreateOpts::default())
        .expect("default inodes");
    let next = home.join("next");
    assert!(project_id(&LinuxSyscalls, &next).expect("projid") > free_id);
    let q = d
        .project_quota()
        .expect("quota")
        .get_quota(&next)
        .expect("q");
    assert_eq!(q.ino_hardlimit, 10);
    let refused = (0..20)
        .map(|i| std::fs::write(next.join(format!("diff/f{i}")), b""))
        .find_map(Result::err)
        .expect("the inode limit is reached");
    assert_eq!(refused.raw_os_error(), Some(libc::EDQUOT), "{refused}");
    d.remove("next").expect("remove");
    assert!(d.project_quota().expect("quota").get_quota(&next).is_err());
    copy_up_needs_one_project_for_diff_and_work(&d, &home);
}

/// On xfs without project quota (or a kernel without xfs quota support): upstream's
/// errors, nothing created, and project IDs still readable and settable.
fn no_quota_behaviour(fs: &LoopXfs, home: &Path) {
    let err = init(fs, &["overlay.size=1M"]).expect_err("no project quota");
    let text = err.to_string();
    assert!(
        text.starts_with("storage options overlay.size and overlay.inodes not supported. Filesystem does not support Project Quota: failed to set quota limit for projid"),
        "{text}"
    );
    let d = init(fs, &[]).expect("init without size");
    assert!(d.project_quota().is_none());
    // Made before the probe, like upstream: the probe reached the filesystem through it.
    let node = std::fs::metadata(home.join(BACKING_FS_BLOCK_DEV)).expect("node");
    assert!(node.file_type().is_block_device());
    assert_eq!(node.rdev(), std::fs::metadata(home).expect("home").dev());
    match QuotaControl::new(storage_driver::syscalls::real(), home) {
        Err(DriverError::Io { source, .. }) => {
            // The device was found and named an xfs whose quota operations are missing.
            assert_eq!(source.raw_os_error(), Some(libc::ENOSYS), "{source}");
        }
        other => panic!("expected a quotactl error: {other:?}"),
    }
    let err = d
        .create_read_write("a", None, &size_opt("1M"))
        .expect_err("per-layer size");
    assert_eq!(
        err.to_string(),
        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
    );
    assert!(!d.exists("a"));
    // The project ID ioctls work on xfs whatever the quota state.
    d.create_read_write("b", None, &CreateOpts::default())
        .expect("create");
    let dir = home.join("scratch-projid");
    std::fs::create_dir(&dir).expect("mkdir");
    set_project_id(&LinuxSyscalls, &dir, 4242).expect("set projid");
    assert_eq!(project_id(&LinuxSyscalls, &dir).expect("projid"), 4242);
    assert!(inherits_project(&LinuxSyscalls, &dir).expect("flags"));
    std::fs::create_dir(dir.join("sub")).expect("mkdir sub");
    assert_eq!(
        project_id(&LinuxSyscalls, &dir.join("sub")).expect("inherited"),
        4242
    );
    let merged = d.get("b", &MountOpts::default()).expect("overlay over xfs");
    write_bytes(&merged.join("big"), 2 << 20).expect("no limit");
    d.put("b").expect("unmount");
    copy_up_needs_one_project_for_diff_and_work(&d, home);
}

/// Why the project is set on the layer directory (inherited by `diff/` and `work/`) rather
/// than on `diff/` alone: overlay copies a lower file up by creating it in `work/` and
/// renaming it into `diff/`, and xfs refuses a rename into a `PROJINHERIT` directory of
/// another project (EXDEV).
fn copy_up_needs_one_project_for_diff_and_work(d: &OverlayDriver, home: &Path) {
    d.create("base", None, &CreateOpts::default())
        .expect("base");
    std::fs::write(home.join("base/diff/file"), b"lower").expect("lower file");
    for (id, dirs) in [("both", &["diff", "work"][..]), ("diffonly", &["diff"][..])] {
        d.create_read_write(id, Some("base"), &CreateOpts::default())
            .expect("child");
        for sub in dirs {
            set_project_id(&LinuxSyscalls, &home.join(id).join(sub), 777).expect("projid");
        }
        let merged = d.get(id, &MountOpts::default()).expect("mount");
        let copy_up = std::fs::OpenOptions::new()
            .append(true)
            .open(merged.join("file"))
            .and_then(|mut f| f.write_all(b" changed"));
        d.put(id).expect("unmount");
        match id {
            "both" => {
                copy_up.expect("copy-up within one project");
                assert_eq!(
                    project_id(&LinuxSyscalls, &home.join("both/diff/file")).expect("projid"),
                    777
                );
            }
            _ => assert_eq!(
                copy_up.expect_err("copy-up across projects").raw_os_error(),
                Some(libc::EXDEV)
            ),
        }
    }
}
