//! The host side of the WIT contract (`filesystem` directories, `entries`, streams) called
//! by a guest with arbitrary arguments: the test component in guest/ runs the input as a
//! script of host calls, through the host's real runtime (`ArchiveComponent`, wasmtime).
//!
//! Each run lends fresh directories in a scratch directory beside a canary directory: the
//! layer (`lent`, holding planted symlinks that lead out), and for the second pass a lower
//! layer (`parent`). `apply-diff` runs the script with the input stream, `overlay-diff` runs
//! it again with both directories (the lower as an owned handle) and an output stream.
//!
//! Checked: the host never panics; nothing outside the lent directories changes (the canary
//! tree and the scratch directory are compared, metadata and content, before and after);
//! nothing from outside reaches the guest (the canary's secret never shows up in what the
//! guest read or wrote); a call ends (libFuzzer's `-timeout` catches a host call that
//! blocks).
//!
//! Input: the script (see guest/src/lib.rs).

#![no_main]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use storage_archive::{ApplyOptions, DiffOptions, OverlayOptions};
use storage_component_host::{
    ArchiveComponent, ComponentError, PluginLimits, Runtime, RuntimeConfig,
};

static GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/storage_fuzz_guest.wasm"));

/// What the canary's secret file holds; it must never reach the guest.
const SECRET: &str = "CANARY-SECRET-5f1e0c";

/// Makes this process's view of every filesystem read-only but for a scratch tmpfs (returned)
/// and the directories libFuzzer writes (corpus, artifacts), in a mount namespace of its own:
/// the host code under test runs as root with paths a guest chose, and a confinement bug must
/// be found by the checks, not by losing the machine's files.
fn sandbox() -> &'static Path {
    static SCRATCH: OnceLock<std::path::PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        use nix::mount::{mount, MsFlags};
        let none: Option<&str> = None;
        // One mount point for every process: each mounts its own tmpfs on it, in its own
        // namespace.
        let scratch = std::env::temp_dir().join("storage-fuzz-host-calls");
        std::fs::create_dir_all(&scratch).expect("scratch mount point");
        // Paths libFuzzer writes to: corpus directories, the artifact prefix's directory, and
        // the directories its fork mode hands its children (`-features_dir=` and the like).
        let mut writable = Vec::new();
        for arg in std::env::args().skip(1) {
            let value = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with('-') => value.to_string(),
                None if !arg.starts_with('-') => arg.clone(),
                _ => continue,
            };
            let path = Path::new(&value);
            if path.is_dir() {
                writable.push(path.to_path_buf());
            } else if arg.starts_with("-artifact_prefix=")
                || arg.starts_with("-exact_artifact_path=")
            {
                if let Some(parent) = path.parent().filter(|p| p.is_dir()) {
                    writable.push(parent.to_path_buf());
                }
            }
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect(
            "host_calls needs a mount namespace of its own (run it as root): it makes the \
             filesystem read-only around the code under test",
        );
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
            .expect("make / private");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        for line in mountinfo.lines() {
            let Some(point) = line.split(' ').nth(4) else {
                continue;
            };
            // Octal escapes (`\040` for a space) as the kernel writes them.
            let point = point
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\");
            // Some (proc, sysfs submounts) refuse; the rest is what matters.
            let _ = mount(
                none,
                point.as_str(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                none,
            );
        }
        mount(
            Some("tmpfs"),
            &scratch,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0700"),
        )
        .expect("scratch tmpfs");
        for dir in writable {
            if dir.is_dir() {
                // A bind mount copies the read-only flag; the remount clears it.
                mount(Some(&dir), &dir, none, MsFlags::MS_BIND, none).expect("bind mount");
                mount(
                    none,
                    &dir,
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                    none,
                )
                .expect("writable bind mount");
            }
        }
        let probe = Path::new("/.storage-fuzz-probe");
        let written = std::fs::write(probe, b"x").is_ok();
        let _ = std::fs::remove_file(probe);
        assert!(
            !written,
            "the filesystem is still writable outside the scratch directory"
        );
        scratch
    })
}

fn component() -> &'static ArchiveComponent {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    static COMPONENT: OnceLock<ArchiveComponent> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let runtime = RUNTIME
            .get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("wasmtime runtime"));
        let loaded = runtime
            .load("fuzz-guest", GUEST)
            .expect("the fuzz guest loads");
        let limits = PluginLimits {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(20),
        };
        ArchiveComponent::new(runtime, loaded, limits).expect("the fuzz guest links")
    })
}

/// Everything observable about one path that a write through an escape could change.
#[derive(Debug, PartialEq, Eq)]
struct Print {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn print(path: &Path) -> Print {
    let meta = std::fs::symlink_metadata(path).expect("lstat in the scratch directory");
    let content = if meta.file_type().is_symlink() {
        std::fs::read_link(path)
            .expect("readlink")
            .into_os_string()
            .into_encoded_bytes()
    } else if meta.is_file() {
        std::fs::read(path).expect("read")
    } else {
        Vec::new()
    };
    Print {
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        content,
        xattrs: xattrs(path),
    }
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    // A list of names and a value are each at most 64 KiB (XATTR_LIST_MAX, XATTR_SIZE_MAX).
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    names.truncate(n);
    names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let mut value = vec![0u8; 64 * 1024];
            let m = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap_or(0);
            value.truncate(m);
            (name.to_vec(), value)
        })
        .collect()
}

/// Every path under `root` (itself included) but the lent directories, printed.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<String, Print> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        if skip.contains(&path.as_path()) {
            continue;
        }
        let p = print(&path);
        let is_dir = std::fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .expect("read_dir in the scratch directory")
                .map(|e| e.expect("dir entry").path())
                .collect();
            names.sort();
            todo.extend(names);
        }
        out.insert(path.display().to_string(), p);
    }
    out
}

/// The scratch directory: `lent/` and `parent/` (lent to the guest), `canary/` beside them.
fn scratch() -> tempfile::TempDir {
    let base = tempfile::Builder::new()
        .prefix("host-calls-")
        .tempdir_in(sandbox())
        .expect("scratch directory");
    let b = base.path();
    for d in ["lent/sub", "parent/sub", "canary/deep"] {
        std::fs::create_dir_all(b.join(d)).expect("mkdir");
    }
    std::fs::write(b.join("canary/secret"), SECRET).expect("write");
    std::fs::set_permissions(
        b.join("canary/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::write(b.join("canary/deep/file"), SECRET).expect("write");
    std::fs::write(b.join("lent/f"), b"inside").expect("write");
    std::fs::write(b.join("parent/f"), b"parent").expect("write");
    let links: [(&Path, &str); 5] = [
        (Path::new("../canary"), "lent/link-out"),
        (&b.join("canary"), "lent/link-abs"),
        (Path::new("/"), "lent/link-root"),
        (&b.join("canary/secret"), "lent/secret-link"),
        (Path::new("../canary"), "parent/link-out"),
    ];
    for (target, link) in links {
        std::os::unix::fs::symlink(target, b.join(link)).expect("symlink");
    }
    base
}

/// Output the host hands to `overlay-diff`, kept to look at afterwards.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self.0.lock().expect("not poisoned");
        if v.len() < 1 << 24 {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn check_secret(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the canary's secret reached the guest ({what})"
    );
}

fuzz_target!(|data: &[u8]| {
    let component = component();
    let base = scratch();
    let b = base.path();
    let (lent, parent, canary) = (b.join("lent"), b.join("parent"), b.join("canary"));
    let before = snapshot(b, &[&lent, &parent]);
    let canary_text = canary.as_os_str().as_encoded_bytes().to_vec();

    let mut stream = canary_text.clone();
    stream.push(b'\n');
    stream.extend_from_slice(data);
    let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(stream));
    match component.apply_diff(&lent, input, &ApplyOptions::default()) {
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            check_secret("apply-diff", message.as_bytes());
            if let ComponentError::Stopped { .. } = e {
                // A deadline or the memory limit: the guest's doing, not the host's.
            }
        }
    }
    assert_eq!(
        before,
        snapshot(b, &[&lent, &parent]),
        "apply-diff changed something outside"
    );

    let out = Shared::default();
    let options = DiffOptions {
        user_names: BTreeMap::from([(0, data.to_vec()), (1, canary_text)]),
        ..Default::default()
    };
    let result = component.overlay_diff(
        &lent,
        std::slice::from_ref(&parent),
        Box::new(out.clone()),
        &options,
        &OverlayOptions::default(),
    );
    if let Err(e) = result {
        check_secret("overlay-diff", e.to_string().as_bytes());
    }
    check_secret("overlay-diff output", &out.0.lock().expect("not poisoned"));
    assert_eq!(
        before,
        snapshot(b, &[&lent, &parent]),
        "overlay-diff changed something outside"
    );
    // Whatever modes the guest left, the scratch directory goes (root removes anyway).
    drop(base);
});
