//! `overlay.size` on xfs: a layer created with `--storage-opt overlay.size=1M` refuses to
//! hold more than 1 MiB (EDQUOT) while a layer created without it is unlimited, on a store
//! whose graph root is a loop-mounted xfs with `prjquota`. A kernel built without xfs quota
//! support refuses `prjquota`; the filesystem is then mounted without it and the test checks
//! upstream's behaviour there: `overlay.size` fails with one line (as Debian's Go
//! `containers-storage` does when installed) and leaves the store as it was, and layers
//! without it work.
//!
//! The filesystem is a sparse image `<tmp>/storage-xfsq-e2e-<pid>.img` mounted with
//! `mount -o loop` (autoclear) on the directory of the same name without `.img`; the image
//! is deleted once mounted. The guard unmounts on drop, also when the test fails, and the
//! directories of processes that no longer run are swept first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{first_line, Scratch, STORAGE};

/// Prefix of the mount points and images in the temporary directory.
const PREFIX: &str = "storage-xfsq-e2e-";

/// A loop-mounted xfs, unmounted and removed on drop.
struct LoopXfs {
    dir: PathBuf,
    /// Whether the kernel took `prjquota`.
    quota: bool,
}

impl LoopXfs {
    fn new() -> LoopXfs {
        sweep();
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        remove(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.with_extension("img");
        let mut fs = LoopXfs { dir, quota: false };
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(512 << 20))
            .unwrap();
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
        std::fs::remove_file(&image).unwrap();
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
    crate::harness::unmount_below(dir);
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
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .map(|rest| rest.trim_end_matches(".img"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove(&entry.path().with_extension(""));
        }
    }
}

/// Writes `len` bytes to `path` and syncs them.
fn write_bytes(path: &Path, len: usize) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0xa5_u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n;
    }
    file.sync_all()
}

/// The IDs `layers -q` lists.
fn layer_ids(s: &Scratch) -> Vec<String> {
    s.ok(&["layers", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn overlay_size_limits_a_layer_on_xfs() {
    let fs = LoopXfs::new();
    let s = Scratch::with_binary_in(&fs.dir, Path::new(STORAGE), "overlay");
    let sized = ["--storage-opt", "overlay.size=1M", "create-layer"];
    if !fs.quota {
        // Like upstream's CLI, an init failure is one line on standard output.
        let o = s.fails(&sized);
        let text = o.out();
        assert_eq!(text.lines().count(), 1, "{o:?}");
        assert!(
            text.starts_with("error initializing: storage options overlay.size and overlay.inodes not supported. Filesystem does not support Project Quota: "),
            "{text}"
        );
        // The store is as it was, and usable without the option.
        assert!(layer_ids(&s).is_empty());
        let plain = s.create_layer(&[]);
        assert_eq!(layer_ids(&s), vec![plain.clone()]);
        let mp = s.ok(&["mount", &plain]).trim_end().to_string();
        write_bytes(&Path::new(&mp).join("big"), 2 << 20).expect("no limit");
        s.ok(&["unmount", &plain]);
        // Like upstream, the node for quotactl was made in the home.
        assert!(s.graph().join("overlay/backingFsBlockDev").exists());
        if let Some(go_cli) = crate::harness::reference_binary() {
            let go = Scratch::with_binary_in(&fs.dir, &go_cli, "overlay");
            let g = go.run(&sized);
            assert_eq!(g.code, 1, "{g:?}");
            assert!(
                g.out().starts_with("error initializing: storage options overlay.size and overlay.inodes not supported. Filesystem does not support Project Quota: "),
                "{g:?}"
            );
        }
        return;
    }
    let limited = first_line(&s.ok(&sized));
    let mp = s.ok(&["mount", &limited]).trim_end().to_string();
    let err = write_bytes(&Path::new(&mp).join("big"), 2 << 20).expect_err("over quota");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EDQUOT), "{err}");
    let _ = std::fs::remove_file(Path::new(&mp).join("big"));
    write_bytes(&Path::new(&mp).join("small"), 256 << 10).expect("under quota");
    s.ok(&["unmount", &limited]);
    // The limit is on the layer's directory: its diff refuses the bytes too.
    let diff = s.graph().join("overlay").join(&limited).join("diff");
    let err = write_bytes(&diff.join("big"), 2 << 20).expect_err("over quota");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EDQUOT), "{err}");

    let free = s.create_layer(&[]);
    let mp = s.ok(&["mount", &free]).trim_end().to_string();
    write_bytes(&Path::new(&mp).join("big"), 2 << 20).expect("no limit");
    s.ok(&["unmount", &free]);
}
