//! What the workspace's tests share: the Go reference `containers-storage` that differential
//! tests compare with (unit tests of the store and the overlay driver, the end-to-end suites).
//! A dev-dependency only; nothing of the product links it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Go `containers-storage` of the differential tests: `$STORAGE_REFERENCE` if set (it
/// must exist), else upstream's 1.60 build in `/work/shared/reference`, else the one beside
/// the repository (`<repo>/../shared/reference`), else Debian's `/usr/bin/containers-storage`
/// (1.43). `None` when none exists (the caller skips, saying so). Says on stderr, once per
/// test thread, which binary and version it used.
pub fn reference_binary() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let path = find()?;
        let version = version(&path);
        Some((path, version))
    });
    match found {
        Some((path, version)) => {
            // Once per test (each runs on its own thread), not on every call.
            thread_local!(static SAID: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
            if !SAID.with(|said| said.replace(true)) {
                eprintln!("reference binary: {} ({version})", path.display());
            }
            Some(path.clone())
        }
        None => {
            eprintln!("no reference containers-storage binary found");
            None
        }
    }
}

fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STORAGE_REFERENCE").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "STORAGE_REFERENCE={} does not exist",
            p.display()
        );
        return Some(p);
    }
    // This crate is `<repo>/host/test-support`.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        PathBuf::from("/work/shared/reference/containers-storage"),
        repo.join("../shared/reference/containers-storage"),
        PathBuf::from("/usr/bin/containers-storage"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// What `BINARY version` says; Debian's 1.43 build says nothing, its package does. Asked of a
/// scratch vfs store: with no roots the binary opens (and, on overlay, mounts the home of)
/// the system's store, `/var/lib/containers/storage`, which then outlives the tests.
fn version(path: &Path) -> String {
    let Ok(scratch) = tempfile::Builder::new()
        .prefix("storage-reference-version-")
        .tempdir()
    else {
        return "version unknown".to_string();
    };
    let said = Command::new(path)
        .arg("--graph")
        .arg(scratch.path().join("graph"))
        .arg("--run")
        .arg(scratch.path().join("run"))
        .args(["--storage-driver", "vfs", "version"])
        .output()
        .map(|o| {
            // 1.60 prints its version on stderr.
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text
        })
        .unwrap_or_default();
    if let Some(v) = said.lines().find_map(|l| l.strip_prefix("Version:")) {
        return format!("version {}", v.trim());
    }
    if path == Path::new("/usr/bin/containers-storage") {
        if let Ok(o) = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", "containers-storage"])
            .output()
        {
            if o.status.success() {
                return format!("Debian package {}", String::from_utf8_lossy(&o.stdout));
            }
        }
    }
    "version unknown".to_string()
}
