//! Power loss (issue #13, item 3) and EIO (item 4's fault that needs a test filesystem).
//!
//! # The disk that forgets
//!
//! The store lives on ext4 on a loop device whose backing file is served by [`Disk`], a FUSE
//! filesystem of one file held in memory that journals every request the loop device sends
//! it: each write (with its bytes) and each flush (`FSYNC`, which is what a cache flush of the
//! loop device becomes). A disk with a volatile write cache keeps, at a power cut, everything
//! written before its last completed flush, and of the writes after it any subset: so the
//! disk as it was after request `k` is the mkfs'd image, plus every write before the last
//! flush among the first `k` requests, plus a chosen subset of the writes between that flush
//! and `k` (none, all, or a random half). The trials rebuild that image for many `k` after
//! one run of the workload, mount it (ext4 replays its journal as after a reboot), and open
//! the store there with an empty run root (a tmpfs is gone after a power cut).
//!
//! Why a block device and not a FUSE filesystem holding the store's files directly: the store
//! makes layer data durable with `syncfs(2)`, and syncfs never reaches a FUSE daemon (Linux
//! sends `FUSE_SYNCFS` only for virtiofs; for a `/dev/fuse` mount without writeback cache it
//! has nothing to do), so such a filesystem could not tell what was flushed. Beneath ext4,
//! syncfs is the real one: ext4 writes back the data, commits its journal and flushes the
//! device, which arrives here as `FSYNC`. It also lets overlay run on it (an upper directory
//! cannot be on FUSE, but this one is on ext4), so both suites run it: `e2e` on overlay and
//! `e2e-vfs` on vfs.
//!
//! # What must hold after every cut
//!
//! - the store opens (`layers` succeeds, quietly);
//! - `check` is clean, or `check -r` repairs it and `check` is then clean;
//! - every layer the store lists is one the workload made, and `diff -u` of it gives the
//!   bytes it gave right after it was made (for an imported layer, the imported tar itself,
//!   uncompressed): a layer recorded complete has all its data;
//! - what a command that had returned before the last flush made is there, and what it
//!   deleted is gone (the store syncs its records before it returns), unless a later command
//!   that had started by the cut removes it.
//!
//! # EIO
//!
//! [`an_io_error_names_eio_and_rolls_back`]: while the disk fails every data write (every
//! write outside ext4's journal and the block group descriptors, so ext4 stays healthy and
//! only the files' data is lost), `import-layer` (alone, on a parent) and `create-layer` must
//! each fail with one line naming "input/output error" (the write-back error surfaces at the
//! store's first fsync: a failed flush) and leave the store as it was with a clean `check`.
//! Once the disk works again, the next command's syncfs reports the write-back error no
//! flush had reported yet: a `create-layer` or an import then fails the same way and records
//! no layer (a layer is never complete after a failed flush); the one after works.
//!
//! `STORAGE_POWERCUT_TRIALS` sets the number of cuts (default 12; CI runs more);
//! `STORAGE_TEST_SEED` the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, LockOwner, MountOption, OpenFlags,
    ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyWrite, Request, WriteFlags,
};

use crate::harness::{first_line, tar_of, Output, Scratch};
use crate::mixed_go::{base_seed, Rng};

/// The size of the disk.
const DISK_BYTES: u64 = 64 << 20;
/// The one file's inode; the root is 1.
const DISK_INO: u64 = 2;
/// The file's name in the FUSE mount.
const DISK_NAME: &str = "disk";

/// One request of the loop device, in the order they arrived.
enum Event {
    /// Bytes written at an offset (a fallocate that zeroes is one too).
    Write { offset: u64, data: Vec<u8> },
    /// A flush: everything written before it is durable.
    Flush,
}

/// What the disk holds and what it was asked.
struct Journal {
    /// The disk as the loop device sees it.
    current: Vec<u8>,
    /// Every write and flush since the start.
    events: Vec<Event>,
    /// When set, writes that do not lie wholly in one of these byte ranges fail with EIO
    /// (and are not applied).
    fail_outside: Option<Vec<Range<u64>>>,
    /// How many writes failed.
    failed_writes: usize,
}

/// The FUSE filesystem: a root directory holding [`DISK_NAME`].
struct Disk(Arc<Mutex<Journal>>);

impl Disk {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

const TTL: Duration = Duration::from_secs(3600);

fn attr(ino: u64) -> FileAttr {
    let file = ino == DISK_INO;
    FileAttr {
        ino: INodeNo(ino),
        size: if file { DISK_BYTES } else { 0 },
        blocks: if file { DISK_BYTES / 512 } else { 0 },
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: if file {
            FileType::RegularFile
        } else {
            FileType::Directory
        },
        perm: if file { 0o600 } else { 0o700 },
        nlink: if file { 1 } else { 2 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

/// The byte range `[offset, offset + len)` when it lies within the disk.
fn span(offset: u64, len: usize) -> Option<Range<usize>> {
    let end = offset.checked_add(len as u64)?;
    (end <= DISK_BYTES).then_some(offset as usize..end as usize)
}

impl Filesystem for Disk {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if u64::from(parent) == 1 && name == DISK_NAME {
            reply.entry(&TTL, &attr(DISK_INO), fuser::Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match u64::from(ino) {
            1 | DISK_INO => reply.attr(&TTL, &attr(ino.into())),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The disk's size and times do not change.
        reply.attr(&TTL, &attr(ino.into()));
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let end = offset.saturating_add(u64::from(size)).min(DISK_BYTES);
        let start = offset.min(end);
        reply.data(&self.journal().current[start as usize..end as usize]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(range) = span(offset, data.len()) else {
            return reply.error(Errno::EIO);
        };
        let mut j = self.journal();
        if let Some(kept) = &j.fail_outside {
            let end = offset + data.len() as u64;
            if !kept.iter().any(|r| r.start <= offset && end <= r.end) {
                j.failed_writes += 1;
                return reply.error(Errno::EIO);
            }
        }
        j.current[range].copy_from_slice(data);
        j.events.push(Event::Write {
            offset,
            data: data.to_vec(),
        });
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2): not a cache flush.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.journal().events.push(Event::Flush);
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Discards and write-zeroes of the loop device: punching a hole or zeroing a range
        // is a write of zeroes; plain allocation changes nothing on a disk.
        if mode & (nix::libc::FALLOC_FL_PUNCH_HOLE | nix::libc::FALLOC_FL_ZERO_RANGE) == 0 {
            return reply.ok();
        }
        let Some(range) = usize::try_from(length)
            .ok()
            .and_then(|len| span(offset, len))
        else {
            return reply.error(Errno::EINVAL);
        };
        let mut j = self.journal();
        if j.fail_outside.is_some() {
            j.failed_writes += 1;
            return reply.error(Errno::EIO);
        }
        j.current[range.clone()].fill(0);
        j.events.push(Event::Write {
            offset,
            data: vec![0; range.len()],
        });
        reply.ok();
    }
}

/// Runs a command that must succeed; returns its standard output.
fn sh(program: &str, args: &[&str]) -> String {
    let o = Command::new(program).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// [`Disk`] mounted in a temporary directory for the guard's lifetime.
struct FuseDisk {
    journal: Arc<Mutex<Journal>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl FuseDisk {
    fn start(dir: &Path, image: Vec<u8>) -> FuseDisk {
        let mountpoint = dir.join("fuse");
        std::fs::create_dir_all(&mountpoint).unwrap();
        let journal = Arc::new(Mutex::new(Journal {
            current: image,
            events: Vec::new(),
            fail_outside: None,
            failed_writes: 0,
        }));
        let mut config = fuser::Config::default();
        config
            .mount_options
            .push(MountOption::FSName("storage-powercut".into()));
        let session = fuser::spawn_mount(Disk(journal.clone()), &mountpoint, &config)
            .expect("mounting the FUSE disk");
        FuseDisk {
            journal,
            session: Some(session),
            mountpoint,
        }
    }

    fn file(&self) -> PathBuf {
        self.mountpoint.join(DISK_NAME)
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many requests the disk has journalled.
    fn events(&self) -> usize {
        self.journal().events.len()
    }
}

impl Drop for FuseDisk {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if session.umount_and_join().is_err() {
                let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// A loop device on a file, detached when dropped.
struct LoopDevice(String);

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let dev = sh("losetup", &["-f", "--show", file.to_str().unwrap()]);
        LoopDevice(dev.trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A mount, undone when dropped (lazily if it is busy).
struct Mounted(PathBuf);

impl Mounted {
    fn new(options: &[&str], source: &Path, target: &Path) -> Mounted {
        std::fs::create_dir_all(target).unwrap();
        let mut args = options.to_vec();
        args.push(source.to_str().unwrap());
        args.push(target.to_str().unwrap());
        sh("mount", &args);
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if nix::mount::umount2(&self.0, nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A fresh ext4 image of [`DISK_BYTES`], written out in full (no lazy initialisation that
/// would write behind the workload's back).
fn mkfs(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("base.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(DISK_BYTES)
        .unwrap();
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
            path.to_str().unwrap(),
        ],
    );
    let image = std::fs::read(&path).unwrap();
    (path, image)
}

/// The disk the store's graph root is on for a workload: ext4 on a loop device on
/// [`Disk`]. Field order is drop order: the store is shut down and ext4 unmounted before the
/// loop device is detached and the FUSE filesystem unmounted.
struct Rig {
    store: Option<Scratch>,
    mounted: Option<Mounted>,
    _loop_device: LoopDevice,
    disk: FuseDisk,
    base_path: PathBuf,
    base: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("storage-powercut-")
            .tempdir()
            .unwrap();
        let (base_path, base) = mkfs(dir.path());
        let disk = FuseDisk::start(dir.path(), base.clone());
        let loop_device = LoopDevice::attach(&disk.file());
        let store = Scratch::new();
        let mounted = Mounted::new(&[], Path::new(&loop_device.0), &store.graph());
        Rig {
            store: Some(store),
            mounted: Some(mounted),
            _loop_device: loop_device,
            disk,
            base_path,
            base,
            _dir: dir,
        }
    }

    fn store(&self) -> &Scratch {
        self.store.as_ref().unwrap()
    }

    /// Unmounts ext4 (its last writes reach the journal) and drops the store.
    fn finish(&mut self) {
        self.store().run(&["shutdown", "-f"]);
        self.mounted.take();
        self.store.take();
    }
}

/// Which records a command makes or removes, by kind (`layers`, `images`, `containers`) and
/// name.
#[derive(Clone, Debug)]
enum Effect {
    Made(&'static str, String),
    Gone(&'static str, String),
}

/// One command of the workload, with the disk's request count when it started and ended.
struct Step {
    args: Vec<String>,
    effects: Vec<Effect>,
    start: usize,
    end: usize,
}

/// The content of a layer made of files in a directory, archived by GNU tar.
fn gnu_tar_layer(rng: &mut Rng, dir: &Path, files: usize, big: usize) -> Vec<u8> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
    for i in 0..files {
        let len = rng.below(48 << 10);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(dir.join(format!("usr/lib/f{i}")), data).unwrap();
    }
    let data: Vec<u8> = (0..big)
        .map(|i| (i % 251) as u8 ^ rng.next() as u8)
        .collect();
    std::fs::write(dir.join("usr/big"), data).unwrap();
    std::os::unix::fs::symlink("lib/f0", dir.join("usr/link")).unwrap();
    let o = Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
        .args(["--mtime=@1700000000", "-C"])
        .arg(dir)
        .args(["-cf", "-", "usr"])
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {o:?}");
    o.stdout
}

/// A gzipped layer made by Python's tarfile (a directory, a file, a hard link to it and a
/// symlink), written to `path`.
fn python_tar_gz(path: &Path, round: usize) -> PathBuf {
    let script = r#"
import io, sys, tarfile
path, round = sys.argv[1], sys.argv[2]
with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
    def add(name, kind, data=b"", target=""):
        info = tarfile.TarInfo(name)
        info.type, info.mtime, info.mode = kind, 1700000000, 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.size, info.linkname = len(data), target
        t.addfile(info, io.BytesIO(data) if data else None)
    add("opt/", tarfile.DIRTYPE)
    add("opt/top", tarfile.REGTYPE, ("top %s\n" % round).encode() * 1000)
    add("opt/top-hardlink", tarfile.LNKTYPE, target="opt/top")
    add("opt/top-symlink", tarfile.SYMTYPE, target="top")
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(round.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "python3 tarfile: {o:?}");
    path.to_path_buf()
}

/// What the workload left to check against: its steps, and each layer's `diff` right after
/// it was made, by name.
struct Workload {
    steps: Vec<Step>,
    /// By layer ID: the name the workload gave it and its `diff -u`.
    diffs: BTreeMap<String, (String, Vec<u8>)>,
}

/// Imports, creates and deletes on the rig's store, `rounds` times; every command must work.
fn run_workload(rig: &Rig, rng: &mut Rng, rounds: usize) -> Workload {
    let s = rig.store();
    let work = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    let mut diffs = BTreeMap::new();
    // Layer IDs to names: `delete-image` names the layers it removed with it by ID.
    let mut layer_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut run = |args: Vec<String>, stdin: Vec<u8>, mut effects: Vec<Effect>| {
        let start = rig.disk.events();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = s.run_with_input(&argv, &stdin);
        let end = rig.disk.events();
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
        if args[0] == "delete-image" {
            // `IMAGE: LAYER-ID` for each layer that went with the image, as upstream says.
            for line in o.stderr.lines() {
                let id = line.rsplit(": ").next().unwrap_or_default();
                let names = layer_names
                    .get(id)
                    .unwrap_or_else(|| panic!("{args:?} removed an unknown layer: {line}"));
                for name in names {
                    effects.push(Effect::Gone("layers", name.clone()));
                }
            }
        } else {
            assert_eq!(o.stderr, "", "{args:?} wrote to stderr");
        }
        if args[0] == "add-names" {
            let target = args.last().unwrap();
            let names = layer_names
                .values_mut()
                .find(|names| names.contains(target))
                .unwrap();
            for e in &effects {
                if let Effect::Made(_, alias) = e {
                    names.push(alias.clone());
                }
            }
        }
        let makes_a_layer = ["import-layer", "create-layer"].contains(&args[0].as_str());
        for e in effects.iter().filter(|_| makes_a_layer) {
            if let Effect::Made("layers", name) = e {
                let id = first_line(&o.out());
                layer_names.insert(id.clone(), vec![name.clone()]);
                let o = s.run(&["diff", "-u", name]);
                assert_eq!(o.code, 0, "diff {name}: {o:?}");
                let imported = match args.iter().position(|a| a == "-f") {
                    Some(i) => {
                        let gz = std::fs::read(&args[i + 1]).unwrap();
                        let mut tar = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::GzDecoder::new(&gz[..]),
                            &mut tar,
                        )
                        .unwrap();
                        tar
                    }
                    None => stdin.clone(),
                };
                if !imported.is_empty() {
                    assert!(o.stdout == imported, "diff {name} is not the imported tar");
                }
                diffs.insert(id, (name.clone(), o.stdout));
            }
        }
        if args[0] == "create-container" {
            // The container's own layer: listed with the others, unnamed.
            let name = &args[2];
            let v: serde_json::Value =
                serde_json::from_str(&s.ok(&["container", "-j", name])).unwrap();
            let id = v[0]["layer"].as_str().unwrap().to_string();
            let o = s.run(&["diff", "-u", &id]);
            assert_eq!(o.code, 0, "diff of {name}'s layer: {o:?}");
            diffs.insert(id, (format!("{name}'s layer"), o.stdout));
        }
        steps.push(Step {
            args,
            effects,
            start,
            end,
        });
    };
    let v = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let made = |kind: &'static str, name: &str| Effect::Made(kind, name.to_string());
    let gone = |kind: &'static str, name: &str| Effect::Gone(kind, name.to_string());
    for r in 0..rounds {
        let (base, child, copy, top) = (
            format!("base{r}"),
            format!("child{r}"),
            format!("copy{r}"),
            format!("top{r}"),
        );
        let (img, img_top, ctr, ctr_top) = (
            format!("img{r}"),
            format!("imgtop{r}"),
            format!("ctr{r}"),
            format!("ctrtop{r}"),
        );
        let files = 4 + rng.below(12);
        let big = (256 << 10) + rng.below(1 << 20);
        let tar = gnu_tar_layer(rng, &work.path().join(&base), files, big);
        run(
            v(&["import-layer", "-n", &base]),
            tar,
            vec![made("layers", &base)],
        );
        let (spare, alias) = (format!("spare{r}"), format!("alias{r}"));
        run(
            v(&["create-layer", "-n", &spare, &base]),
            vec![],
            vec![made("layers", &spare)],
        );
        run(
            v(&["add-names", "-n", &alias, &base]),
            vec![],
            vec![made("layers", &alias)],
        );
        run(
            v(&["create-image", "-n", &img, &base]),
            vec![],
            vec![made("images", &img)],
        );
        run(
            v(&["create-container", "-n", &ctr, &img]),
            vec![],
            vec![made("containers", &ctr)],
        );
        let payload: Vec<u8> = (0..rng.below(200 << 10))
            .map(|_| rng.next() as u8)
            .collect();
        let tar = tar_of(&[
            ("etc/", b""),
            ("etc/hostname", format!("round {r}\n").as_bytes()),
            ("usr/", b""),
            ("usr/lib/", b""),
            ("usr/lib/f1", &payload),
        ]);
        run(
            v(&["import-layer", "-n", &child, &base]),
            tar,
            vec![made("layers", &child)],
        );
        run(
            v(&["create-layer", "-n", &copy, &child]),
            vec![],
            vec![made("layers", &copy)],
        );
        let gz = python_tar_gz(&work.path().join(format!("{top}.tar.gz")), r);
        run(
            v(&[
                "import-layer",
                "-n",
                &top,
                "-f",
                gz.to_str().unwrap(),
                &copy,
            ]),
            vec![],
            vec![made("layers", &top)],
        );
        run(
            v(&["create-image", "-n", &img_top, &top]),
            vec![],
            vec![made("images", &img_top)],
        );
        run(
            v(&["create-container", "-n", &ctr_top, &img_top]),
            vec![],
            vec![made("containers", &ctr_top)],
        );
        run(
            v(&["delete-container", &ctr]),
            vec![],
            vec![gone("containers", &ctr)],
        );
        run(
            v(&["delete-container", &ctr_top]),
            vec![],
            vec![gone("containers", &ctr_top)],
        );
        run(
            v(&["delete-layer", &spare]),
            vec![],
            vec![gone("layers", &spare)],
        );
        // Takes top, copy and child with it (no other image uses them).
        run(
            v(&["delete-image", &img_top]),
            vec![],
            vec![gone("images", &img_top)],
        );
        if r > 0 {
            // Takes the previous round's base (and its alias) with it.
            let old = format!("img{}", r - 1);
            run(
                v(&["delete-image", &old]),
                vec![],
                vec![gone("images", &old)],
            );
        }
    }
    Workload { steps, diffs }
}

/// How many of the writes after the last flush a cut keeps.
#[derive(Clone, Copy, Debug)]
enum Keep {
    None,
    All,
    Half,
}

/// The names of every record of `kind` in the store.
fn names(s: &Scratch, kind: &str, problems: &mut Vec<String>) -> BTreeSet<String> {
    let o = s.run(&[kind, "-j"]);
    if o.code != 0 {
        problems.push(format!("{kind} -j: {o:?}"));
        return BTreeSet::new();
    }
    o.json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

/// What is wrong with the store on the disk as a cut after request `cut` left it; `durable`
/// is the number of requests up to and including the last flush before the cut. Returns the
/// problems and whether `check -r` had to repair.
fn inspect(s: &Scratch, w: &Workload, cut: usize, durable: usize) -> Found {
    let mut problems = Vec::new();
    let next = s.run(&["layers"]);
    if next.code != 0 || !next.stderr.is_empty() {
        problems.push(format!("the first command: {next:?}"));
        return Found {
            problems,
            ..Found::default()
        };
    }
    let mut repaired = false;
    let check = s.run(&["check"]);
    if check.code != 0 || !check.out().is_empty() || !check.stderr.is_empty() {
        let repair = s.run(&["check", "-r"]);
        let again = s.run(&["check"]);
        if again.code != 0 || !again.out().is_empty() || !again.stderr.is_empty() {
            problems.push(format!(
                "check: {check:?}; check -r: {repair:?}; check again: {again:?}"
            ));
        }
        repaired = true;
    }
    let mut present = BTreeMap::new();
    for kind in ["layers", "images", "containers"] {
        present.insert(kind, names(s, kind, &mut problems));
    }
    let listed = s.run(&["layers", "-q"]);
    let mut layers_compared = 0;
    let mut effects_checked = 0;
    for id in listed.out().lines() {
        let Some((name, expected)) = w.diffs.get(id) else {
            problems.push(format!("layer {id} was never made"));
            continue;
        };
        layers_compared += 1;
        let o = s.run(&["diff", "-u", id]);
        if o.code != 0 {
            problems.push(format!("diff {name} ({id}): {o:?}"));
        } else if &o.stdout != expected {
            problems.push(format!(
                "layer {name} is listed and its diff differs ({} bytes, made with {})",
                o.stdout.len(),
                expected.len()
            ));
        }
    }
    for (i, step) in w.steps.iter().enumerate() {
        if step.end > durable {
            continue;
        }
        for effect in &step.effects {
            effects_checked += 1;
            match effect {
                Effect::Made(kind, name) => {
                    let removed_later = w.steps[i + 1..].iter().any(|later| {
                        later.start < cut
                            && later
                                .effects
                                .iter()
                                .any(|e| matches!(e, Effect::Gone(k, n) if k == kind && n == name))
                    });
                    if !removed_later && !present[kind].contains(name) {
                        problems.push(format!(
                            "{kind} {name}: made by {:?}, which returned before the last \
                             flush, and lost",
                            step.args
                        ));
                    }
                }
                Effect::Gone(kind, name) => {
                    if present[kind].contains(name) {
                        problems.push(format!(
                            "{kind} {name}: deleted by {:?}, which returned before the last \
                             flush, and back",
                            step.args
                        ));
                    }
                }
            }
        }
    }
    Found {
        problems,
        repaired,
        layers_compared,
        effects_checked,
    }
}

/// What [`inspect`] found, and how much it looked at.
#[derive(Default)]
struct Found {
    problems: Vec<String>,
    /// Whether `check -r` had to repair.
    repaired: bool,
    /// Listed layers whose `diff -u` was compared.
    layers_compared: usize,
    /// Effects of commands that returned before the last flush, checked.
    effects_checked: usize,
}

fn trials() -> usize {
    std::env::var("STORAGE_POWERCUT_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Whether the machine can serve a FUSE filesystem; says so when it cannot.
fn fuse_available(test: &str) -> bool {
    let there = Path::new("/dev/fuse").exists();
    if !there {
        eprintln!("{test}: SKIPPED: /dev/fuse is absent, so the test disk cannot be served");
    }
    there
}

#[test]
fn power_cuts_leave_a_store_that_opens_checks_and_keeps_its_data() {
    if !fuse_available("power_cuts") {
        return;
    }
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let mut rig = Rig::new();
    let workload = run_workload(&rig, &mut rng, 2);
    rig.finish();
    let events = std::mem::take(&mut rig.disk.journal().events);
    let total = events.len();
    let flushes = events.iter().filter(|e| matches!(e, Event::Flush)).count();
    eprintln!(
        "power cuts: the workload ran {} commands; the disk saw {total} requests ({flushes} \
         flushes); seed {seed:#018x}",
        workload.steps.len()
    );
    // The cuts, in order: one at random in each of `n` equal stretches of the requests, so
    // they spread over the whole run.
    let n = trials();
    let mut cuts: Vec<(usize, Keep)> = (0..n)
        .map(|i| {
            let from = total * i / n;
            let to = (total * (i + 1) / n).max(from + 1);
            let keep = [Keep::None, Keep::All, Keep::Half][i % 3];
            ((from + rng.below(to - from)).min(total), keep)
        })
        .collect();
    cuts.sort_by_key(|c| c.0);
    // The disk at the last flush, advanced from cut to cut.
    let mut durable_image = rig.base.clone();
    let mut applied = 0;
    let apply = |image: &mut Vec<u8>, event: &Event| {
        if let Event::Write { offset, data } = event {
            let at = *offset as usize;
            image[at..at + data.len()].copy_from_slice(data);
        }
    };
    let survivor = rig.base_path.with_file_name("survivor.img");
    let mut problems: Vec<String> = Vec::new();
    let (mut repaired, mut compared, mut effects) = (0, 0, 0);
    let mut flush_points = BTreeSet::new();
    let inside = cuts
        .iter()
        .filter(|&&(cut, _)| workload.steps.iter().any(|s| s.start < cut && cut < s.end))
        .count();
    for (trial, &(cut, keep)) in cuts.iter().enumerate() {
        let durable = events[..cut]
            .iter()
            .rposition(|e| matches!(e, Event::Flush))
            .map_or(0, |p| p + 1);
        for e in &events[applied..durable] {
            apply(&mut durable_image, e);
        }
        applied = durable;
        flush_points.insert(durable);
        let mut image = durable_image.clone();
        let mut kept = 0;
        for e in &events[durable..cut] {
            let take = match keep {
                Keep::None => false,
                Keep::All => true,
                Keep::Half => rng.chance(1, 2),
            };
            if take {
                apply(&mut image, e);
                kept += 1;
            }
        }
        std::fs::write(&survivor, &image).unwrap();
        drop(image);
        let s = Scratch::new();
        let found = {
            let _mounted = Mounted::new(&["-o", "loop"], &survivor, &s.graph());
            let found = inspect(&s, &workload, cut, durable);
            s.run(&["shutdown", "-f"]);
            found
        };
        let fixed = found.repaired;
        repaired += usize::from(fixed);
        compared += found.layers_compared;
        effects += found.effects_checked;
        let found = found.problems;
        eprintln!(
            "cut {trial}: after request {cut} of {total}, {} unflushed writes, {kept} kept \
             ({keep:?}): {}{}",
            cut - durable,
            if found.is_empty() { "fine" } else { "PROBLEMS" },
            if fixed { " (check -r repaired)" } else { "" },
        );
        problems.extend(
            found
                .into_iter()
                .map(|p| format!("cut {trial} at {cut}: {p}")),
        );
    }
    eprintln!(
        "power-cut trials: {} ({inside} in the middle of a command, after {} different \
         flushes; {compared} layers' data and {effects} effects of finished commands \
         checked), repaired by check -r: {repaired}, problems: {}",
        cuts.len(),
        flush_points.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The byte ranges of ext4's journal (inode 8) and of the superblock and group descriptors
/// at the start of the disk, read with debugfs from the fresh image.
fn metadata_ranges(image: &Path) -> Vec<Range<u64>> {
    let stat = sh("debugfs", &["-R", "stat <8>", image.to_str().unwrap()]);
    // The extents line: `(0-1023):1234-2257, (1024-...):...`.
    let extents = stat
        .lines()
        .skip_while(|l| !l.starts_with("EXTENTS:"))
        .nth(1)
        .unwrap_or_default();
    let mut ranges: Vec<Range<u64>> = extents
        .split(", ")
        .filter_map(|e| {
            let physical = e.split("):").nth(1)?;
            let (a, b) = physical.split_once('-').unwrap_or((physical, physical));
            let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            Some(a * 4096..(b + 1) * 4096)
        })
        .collect();
    assert!(!ranges.is_empty(), "no journal extents in: {stat}");
    // Block 0 (superblock) and the group descriptors after it.
    ranges.push(0..2 * 4096);
    ranges
}

/// The records as listed and the files of the store, for "as it was".
fn snapshot(s: &Scratch) -> (Vec<String>, BTreeSet<String>) {
    let records = ["layers", "images", "containers"]
        .iter()
        .map(|c| s.ok(&[c, "-j"]))
        .collect();
    let mut files = BTreeSet::new();
    fn walk(root: &Path, dir: &Path, files: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if name.ends_with("lock") || name == "lost+found" {
                continue;
            }
            let size = std::fs::symlink_metadata(&path).unwrap();
            files.insert(format!(
                "{name} {}",
                if size.is_file() { size.len() } else { 0 }
            ));
            if size.is_dir() {
                walk(root, &path, files);
            }
        }
    }
    walk(&s.graph(), &s.graph(), &mut files);
    (records, files)
}

#[test]
fn an_io_error_names_eio_and_rolls_back() {
    if !fuse_available("an_io_error") {
        return;
    }
    let mut rng = Rng::new(base_seed());
    let mut rig = Rig::new();
    let s = rig.store();
    let base = s.import_layer(&["-n", "base"], &tar_of(&[("etc/", b""), ("etc/a", b"a")]));
    first_line(&s.ok(&["create-image", "-n", "img", &base]));
    let before = snapshot(s);
    let work = tempfile::tempdir().unwrap();
    let tar = gnu_tar_layer(&mut rng, work.path(), 8, 2 << 20);
    let ranges = metadata_ranges(&rig.base_path);
    let cases: [(&str, Vec<&str>); 3] = [
        ("import-layer", vec!["import-layer", "-n", "new"]),
        ("import-layer on a parent", vec!["import-layer", &base]),
        ("create-layer on a parent", vec!["create-layer", "base"]),
    ];
    let fails_naming_eio = |what: &str, o: &Output| {
        assert_eq!(o.code, 1, "{what}: {o:?}");
        let line = o.stderr.trim_end();
        assert!(
            !line.is_empty() && !line.contains('\n'),
            "{what}: not one line: {o:?}"
        );
        assert!(
            line.contains("input/output error"),
            "{what}: the cause is not named: {line}"
        );
        eprintln!("{what}: {line}");
        let after = snapshot(s);
        assert_eq!(before, after, "{what} left the store changed");
        assert_eq!(s.ok(&["check"]), "");
    };
    // After the failures, the disk works again, but the filesystem remembers that data was
    // lost, and no syncfs has said so yet (the failures surfaced at an fsync first): the next
    // flush of the whole filesystem, the one before a layer is recorded complete, reports it
    // (errseq of the superblock, Linux >= 5.8). The store cannot tell whose data it was, so
    // the layer must not be recorded: a failed flush is a failed command. Once with a
    // `create-layer` next (whose flush power cuts showed missing), once with an import.
    let small = tar_of(&[("fits", b"yes")]);
    let next_commands: [(&str, Vec<&str>, &[u8]); 2] = [
        (
            "the next create-layer",
            vec!["create-layer", "-n", "fits", "base"],
            b"",
        ),
        (
            "the next import",
            vec!["import-layer", "-n", "fits too"],
            &small,
        ),
    ];
    for (next, next_args, next_input) in &next_commands {
        for (what, args) in &cases {
            rig.disk.journal().fail_outside = Some(ranges.clone());
            let o = s.run_with_input(args, &tar);
            let failed_writes = {
                let mut j = rig.disk.journal();
                j.fail_outside = None;
                std::mem::take(&mut j.failed_writes)
            };
            eprintln!("{what}: {failed_writes} writes failed with EIO");
            assert!(
                failed_writes > 0,
                "{what}: no write reached the disk: {o:?}"
            );
            fails_naming_eio(what, &o);
        }
        let o = s.run_with_input(next_args, next_input);
        assert!(
            o.stderr.contains("flushing the filesystem"),
            "{next}: the write-back error was not reported by the flush: {o:?}"
        );
        fails_naming_eio(&format!("{next} (syncfs reports the lost write-back)"), &o);
    }
    // Reported once: the store makes and takes layers again.
    s.create_layer(&["-n", "fits", "base"]);
    s.import_layer(&["-n", "fits too"], &small);
    assert_eq!(s.ok(&["check"]), "");
    rig.finish();
}
