//! Running the real `storage` binary against a scratch store.
//!
//! A [`Scratch`] owns a temporary directory holding a graph root and a run root. Mounts
//! made by the tests are real, so dropping it runs `storage shutdown -f` and then detaches
//! anything still mounted below the directory (deepest first) before the directory is
//! removed, even when the test failed. The btrfs suite's stores live on a loop-mounted
//! btrfs ([`loop_btrfs`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "loop_btrfs.rs"]
pub mod loop_btrfs;

/// The binary under test.
pub const STORAGE: &str = env!("CARGO_BIN_EXE_storage");

/// The Go `containers-storage` that differential tests compare with (the workspace's one
/// finder, shared with the unit tests).
pub use storage_test_support::reference_binary;

/// What one run of a command gave.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, raw.
    pub stdout: Vec<u8>,
    /// Standard error, as text.
    pub stderr: String,
}

impl Output {
    /// Standard output as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.out()))
    }
}

/// A graph root and run root in a temporary directory, with the driver to use.
pub struct Scratch {
    dir: tempfile::TempDir,
    driver: String,
    binary: PathBuf,
}

impl Scratch {
    /// A scratch store for the `storage` binary with the driver of this test target
    /// (`crate::DRIVER`: overlay for `e2e`, vfs for `e2e-vfs`).
    pub fn new() -> Scratch {
        Scratch::with_binary(Path::new(STORAGE), crate::DRIVER)
    }

    /// A scratch store for another binary (the Go CLI) and driver.
    pub fn with_binary(binary: &Path, driver: &str) -> Scratch {
        // A btrfs store needs a btrfs filesystem: the suite's shared loop-mounted one.
        let parent = if driver == "btrfs" {
            loop_btrfs::shared_mount()
        } else {
            std::env::temp_dir()
        };
        Scratch::with_binary_in(&parent, binary, driver)
    }

    /// A scratch store in a new temporary directory beneath `parent`.
    pub fn with_binary_in(parent: &Path, binary: &Path, driver: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("storage-e2e-")
            .tempdir_in(parent)
            .expect("creating a temporary directory");
        Scratch {
            dir,
            driver: driver.to_string(),
            binary: binary.to_path_buf(),
        }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The graph root.
    pub fn graph(&self) -> PathBuf {
        self.dir.path().join("graph")
    }

    /// The run root.
    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The global flags selecting this store.
    pub fn globals(&self) -> Vec<String> {
        vec![
            "--graph".into(),
            self.graph().display().to_string(),
            "--run".into(),
            self.run_root().display().to_string(),
            "--storage-driver".into(),
            self.driver.clone(),
        ]
    }

    /// Runs `storage <globals> args...` with `stdin` as standard input.
    pub fn run_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.globals())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_command(cmd, stdin)
    }

    /// Runs `storage <globals> args...` with empty standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, b"")
    }

    /// Runs a command that must succeed quietly; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_success(args, &o);
        o.out()
    }

    /// Like [`Scratch::ok`] with standard input.
    pub fn ok_with_input(&self, args: &[&str], stdin: &[u8]) -> String {
        let o = self.run_with_input(args, stdin);
        assert_success(args, &o);
        o.out()
    }

    /// Runs a command that must fail with status 1; returns what it gave.
    pub fn fails(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert_eq!(o.code, 1, "{args:?} should fail with 1: {o:?}");
        o
    }

    /// Creates a layer and returns its ID.
    pub fn create_layer(&self, args: &[&str]) -> String {
        let mut full = vec!["create-layer"];
        full.extend_from_slice(args);
        first_line(&self.ok(&full))
    }

    /// Imports a layer from `tar` bytes and returns its ID.
    pub fn import_layer(&self, args: &[&str], tar: &[u8]) -> String {
        let mut full = vec!["import-layer"];
        full.extend_from_slice(args);
        first_line(&self.ok_with_input(&full, tar))
    }
}

/// Runs `args` with the binary and no store flags.
pub fn run_bare(args: &[&str]) -> Output {
    let mut cmd = Command::new(STORAGE);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_command(cmd, b"")
}

/// Runs `args` with the binary, no store flags, and extra environment variables.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary_env(Path::new(STORAGE), args, env)
}

/// Runs `args` with `binary` (ours or the Go reference), no store flags, and extra
/// environment variables.
pub fn run_binary_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_command(cmd, b"")
}

/// How long one command may run before the harness calls it hung, kills it and fails the
/// test: a guard so a deadlock fails one test instead of stalling the whole run (no command
/// of the suite comes near it).
const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

fn run_command(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd.spawn().expect("starting the binary");
    let pid = rustix::process::Pid::from_child(&child);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = finished.recv_timeout(HANG_LIMIT).is_err();
        if hung {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        hung
    });
    if let Some(mut input) = child.stdin.take() {
        // A command that does not read its input closes the pipe early: not an error.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("waiting for the binary");
    let _ = done.send(());
    let hung = watchdog.join().expect("the watchdog thread");
    assert!(
        !hung,
        "the command hung (killed after {HANG_LIMIT:?}): {cmd:?}"
    );
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts exit status 0 and an empty standard error.
pub fn assert_success(args: &[&str], o: &Output) {
    assert_eq!(o.code, 0, "{args:?} failed: {o:?}");
    assert_eq!(o.stderr, "", "{args:?} wrote to stderr");
}

/// The first line of `text`.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new(&self.binary)
            .args(self.globals())
            .args(["shutdown", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_below(self.dir.path());
    }
}

/// Detaches every mount at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A log line of a non-terminal stderr without its logrus time, `time="<RFC 3339>" `: what
/// follows it (`level=... msg=...`), or `None` when the line does not start with a time in
/// Go's `time.RFC3339` form (`2006-01-02T15:04:05Z` or with an offset, `+01:00`).
pub fn log_body(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("time=\"")?;
    let (time, body) = rest.split_once("\" ")?;
    let (stamp, zone) = time.split_at(time.len().min(19));
    let digits_at = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let stamp_ok = stamp.len() == 19
        && digits_at
            .iter()
            .all(|&i| stamp.as_bytes()[i].is_ascii_digit())
        && stamp.as_bytes()[10] == b'T';
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':');
    (stamp_ok && zone_ok).then_some(body)
}

/// Whether `path` is a mount point now (`/proc/self/mountinfo`).
pub fn is_mountpoint(path: impl AsRef<Path>) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|p| Path::new(&unescape_mountinfo(p)) == path.as_ref())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds an uncompressed tar from (path, contents) pairs; a path ending in `/` is a
/// directory.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
        }
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, path, *data)
            .expect("building a tar");
    }
    builder.into_inner().expect("finishing a tar")
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("compressing");
    enc.finish().expect("compressing")
}

/// The entry names of an uncompressed tar.
pub fn tar_names(data: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(data);
    archive
        .entries()
        .expect("reading a tar")
        .map(|e| {
            e.expect("reading a tar entry")
                .path()
                .expect("entry path")
                .display()
                .to_string()
        })
        .collect()
}

/// A fixed 64-hex ID built from a short tag, so outputs can be compared.
pub fn id(tag: &str) -> String {
    let hex: String = tag.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{:0<64}", hex)
}

/// Whether a test that checks overlay's own layout or mounts applies to this suite's
/// driver; on another driver it says it is skipped (the `e2e-vfs` target runs the same
/// modules on vfs).
pub fn overlay_only(test: &str) -> bool {
    let applies = crate::DRIVER == "overlay";
    if !applies {
        eprintln!(
            "{test}: checks overlay's layout or mounts; skipped on {}",
            crate::DRIVER
        );
    }
    applies
}

/// Where the files of a layer are on disk for a driver: overlay's `diff` directory, vfs's
/// copy, btrfs's subvolume.
pub fn layer_dir(graph: &Path, driver: &str, layer: &str) -> PathBuf {
    match driver {
        "overlay" => graph.join("overlay").join(layer).join("diff"),
        "vfs" => graph.join("vfs/dir").join(layer),
        "btrfs" => graph.join("btrfs/subvolumes").join(layer),
        other => panic!("no layout known for {other}"),
    }
}
