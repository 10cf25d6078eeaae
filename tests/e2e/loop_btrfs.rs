//! Loop-mounted btrfs filesystems for the btrfs suite (`e2e-btrfs`): the scratch stores of a
//! test process live on one shared filesystem made on first use, and a test that changes the
//! filesystem itself (quotas) makes its own.
//!
//! A filesystem is a sparse image `<tmp>/storage-btrfs-<pid>-<tag>.img`, formatted with
//! `mkfs.btrfs` and mounted with `mount -o loop` on the directory of the same name without
//! `.img` (short: hostile-archive tests build tar names out of scratch paths); the image file
//! is deleted right after mounting, and `mount -o loop` sets the loop device's autoclear flag,
//! so unmounting is all it takes to free the loop device and the space. Unmounting happens
//! when a [`LoopBtrfs`] is dropped (also when its test panics), at process exit for the shared
//! one, and, for what a killed run left behind, in a sweep of the directories of dead
//! processes before the first filesystem is made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Once, OnceLock};

/// Prefix of the directories in the temporary directory.
const PREFIX: &str = "storage-btrfs-";

/// Size of each sparse image (only what is written takes space).
const IMAGE_SIZE: u64 = 4 << 30;

/// A loop-mounted btrfs, unmounted (and its directory removed) on drop.
pub struct LoopBtrfs {
    dir: PathBuf,
}

impl LoopBtrfs {
    /// Makes and mounts a new filesystem; `tag` names it among this process's.
    pub fn new(tag: &str) -> LoopBtrfs {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{tag}", std::process::id()));
        // A same-named leftover of this process (a test run twice) is replaced.
        super::unmount_below(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the btrfs mount point");
        let image = dir.with_extension("img");
        let fs = LoopBtrfs { dir };
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(IMAGE_SIZE))
            .expect("creating the btrfs image");
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        run(Command::new("mount")
            .args(["-t", "btrfs", "-o", "loop"])
            .arg(&image)
            .arg(fs.mnt()));
        std::fs::remove_file(&image).expect("removing the mounted image");
        fs
    }

    /// Where the filesystem is mounted.
    pub fn mnt(&self) -> PathBuf {
        self.dir.clone()
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Unmounts `dir` with everything below it, and removes it and its image if left.
fn remove(dir: &Path) {
    super::unmount_below(dir);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(dir.with_extension("img"));
}

/// Runs a setup command that must succeed.
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is btrfs-progs installed?)"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
}

/// The shared filesystem of this process (made on first use, unmounted at exit).
static SHARED: OnceLock<LoopBtrfs> = OnceLock::new();

/// The mount point of the shared filesystem, where the scratch stores of the btrfs suite
/// are made.
pub fn shared_mount() -> PathBuf {
    SHARED
        .get_or_init(|| {
            let fs = LoopBtrfs::new("s");
            #[allow(
                unsafe_code,
                reason = "test harness: statics are never dropped, and atexit is the one hook left at the end of the test process"
            )]
            // SAFETY: atexit only stores the pointer of a plain `extern "C"` function with no
            // arguments; that function only reads a static that is set before it can run.
            unsafe {
                nix::libc::atexit(unmount_shared)
            };
            fs
        })
        .mnt()
}

/// At exit: statics are never dropped, so the shared filesystem is unmounted here.
extern "C" fn unmount_shared() {
    if let Some(fs) = SHARED.get() {
        remove(&fs.dir);
    }
}

/// Unmounts and removes the directories of processes that no longer run.
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
