//! Faults with the true cause (issue #13, item 4): a full disk (ENOSPC), too many open files
//! (EMFILE) and a read-only filesystem (EROFS) each make a command fail with one line that
//! names the cause, and leave the store as it was: the same records, the same files in the
//! driver's home and in the layer store (tar-splits), and a clean `check`.
//!
//! EIO is in `power_loss.rs`: it needs a disk that fails writes on demand, which that
//! module's test disk (a loop device over a FUSE file of the test's) is.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{first_line, tar_of, unmount_below, Output, Scratch, STORAGE};

/// A tmpfs of `size` mounted on the store's graph root for the test's lifetime. Dropping it
/// makes it writable again, shuts the store down and detaches everything below the graph
/// root, even when the test failed.
struct TmpfsGraph<'a> {
    store: &'a Scratch,
}

impl<'a> TmpfsGraph<'a> {
    fn mount(store: &'a Scratch, size: &str) -> TmpfsGraph<'a> {
        let graph = store.graph();
        std::fs::create_dir_all(&graph).unwrap();
        let guard = TmpfsGraph { store };
        sh(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &graph,
        );
        guard
    }

    /// Remounts the tmpfs read-only or writable.
    fn read_only(&self, ro: bool) {
        let flags = if ro { "remount,ro" } else { "remount,rw" };
        sh("mount", &["-o", flags], &self.store.graph());
    }
}

impl Drop for TmpfsGraph<'_> {
    fn drop(&mut self) {
        let graph = self.store.graph();
        let _ = Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&graph)
            .stderr(Stdio::null())
            .status();
        let _ = Command::new(STORAGE)
            .args(self.store.globals())
            .args(["shutdown", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_below(&graph);
    }
}

fn sh(program: &str, args: &[&str], path: &Path) {
    let o = Command::new(program).args(args).arg(path).output().unwrap();
    assert!(o.status.success(), "{program} {args:?}: {o:?}");
}

/// What must not change when a command fails: the records as listed, the names of every
/// file below the driver's home and the layer store (with their sizes), and the mount
/// counts.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    records: Vec<String>,
    files: BTreeMap<String, u64>,
}

fn snapshot(s: &Scratch) -> Snapshot {
    let records = ["layers", "images", "containers"]
        .iter()
        .map(|c| s.ok(&[c, "-j"]))
        .collect();
    let mut files = BTreeMap::new();
    let d = crate::DRIVER;
    for top in [
        d.to_string(),
        format!("{d}-layers"),
        format!("{d}-images"),
        format!("{d}-containers"),
    ] {
        walk(&s.graph(), &s.graph().join(top), &mut files);
    }
    Snapshot { records, files }
}

/// What differs between two snapshots, one line a difference.
fn differences(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if before.records != after.records {
        out.push(format!(
            "records {:?} became {:?}",
            before.records, after.records
        ));
    }
    for (name, size) in &after.files {
        match before.files.get(name) {
            None => out.push(format!("{name} left behind")),
            Some(was) if was != size => out.push(format!("{name} is {size} bytes, was {was}")),
            Some(_) => {}
        }
    }
    for name in before
        .files
        .keys()
        .filter(|n| !after.files.contains_key(*n))
    {
        out.push(format!("{name} is gone"));
    }
    out
}

/// Every entry below `dir` but lock files (a lock's content is its last writer's token,
/// which a failed write may leave changed), with the size of regular files.
fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let e = e.unwrap();
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        if name.ends_with(".lock") || name.ends_with("/lock") {
            continue;
        }
        files.insert(name, if meta.is_file() { meta.len() } else { 0 });
        if meta.is_dir() {
            walk(root, &path, files);
        }
    }
}

/// A small store: a layer, an image on it, a container of the image.
fn populate(s: &Scratch) {
    let l = s.import_layer(
        &["-n", "base"],
        &tar_of(&[("etc/", b""), ("etc/hostname", b"base\n")]),
    );
    let image = first_line(&s.ok(&["create-image", "-n", "img", &l]));
    s.ok(&["create-container", "-n", "ctr", &image]);
}

/// The command failed with exit 1 and one line that names `cause`, and not a consequence
/// of it. The line is on stderr, or on stdout for a store that could not be opened
/// (`error initializing: ...`, as upstream's CLI prints it).
fn one_line_naming(what: &str, o: &Output, cause: &str) {
    assert_eq!(o.code, 1, "{what}: {o:?}");
    let said = if o.stderr.is_empty() {
        o.out()
    } else {
        o.stderr.clone()
    };
    let line = said.trim_end();
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "{what}: not one line: {o:?}"
    );
    assert!(
        line.contains(cause),
        "{what}: the cause is not named: {line}"
    );
    for consequence in ["unexpected EOF", "broken pipe", "panicked"] {
        assert!(!line.contains(consequence), "{what}: {line}");
    }
    eprintln!("{what}: {line}");
}

/// `size` bytes of a regular file that neither compress to nothing nor are holes.
fn big_tar(size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 ^ 0x5a).collect();
    tar_of(&[
        ("big/", b""),
        ("big/a", &data[..size / 2]),
        ("big/b", &data[size / 2..]),
    ])
}

fn check_clean(s: &Scratch) {
    assert_eq!(s.ok(&["check"]), "");
}

/// An OCI image layout at `dir` with one image, `v1`, whose one layer is `gz` (the gzip of
/// `tar`).
fn oci_layout(dir: &Path, gz: &[u8], tar: &[u8]) {
    use sha2::{Digest, Sha256};
    let digest = |b: &[u8]| format!("{:x}", Sha256::digest(b));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = digest(b);
        std::fs::write(blobs.join(&d), b).unwrap();
        format!("sha256:{d}")
    };
    let layer = put(gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", digest(tar))]},
        "config": {},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer,
            "size": gz.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn a_full_disk_names_enospc_and_rolls_back() {
    let s = Scratch::new();
    let _tmpfs = TmpfsGraph::mount(&s, "24m");
    populate(&s);
    // A layer that fits once (14 MiB of 24): a driver that copies a parent's files (vfs)
    // cannot make a child of it.
    s.import_layer(&["-n", "big"], &big_tar(14 << 20));
    s.ok(&["create-image", "-n", "bigimg", "big"]);
    let before = snapshot(&s);
    let tar = big_tar(40 << 20);
    let gz = crate::harness::gzip(&tar);
    let file = s.dir().join("big.tar.gz");
    std::fs::write(&file, &gz).unwrap();
    let file = file.to_str().unwrap();
    let mut cases: Vec<(&str, Vec<&str>, &[u8])> = vec![
        ("import-layer (tar on stdin)", vec!["import-layer"], &tar),
        (
            "import-layer (gzip on stdin)",
            vec!["import-layer", "-n", "x"],
            &gz,
        ),
        (
            "import-layer -f (gzip, on a parent)",
            vec!["import-layer", "-f", file, "base"],
            b"",
        ),
    ];
    let layout = s.dir().join("layout");
    oci_layout(&layout, &gz, &tar);
    let layout = format!("{}:v1", layout.display());
    cases.push(("import-oci", vec!["import-oci", &layout], b""));
    if crate::DRIVER == "vfs" {
        cases.push(("create-layer (copying)", vec!["create-layer", "big"], b""));
        cases.push((
            "create-container (copying)",
            vec!["create-container", "bigimg"],
            b"",
        ));
    }
    for (what, args, input) in &cases {
        let o = s.run_with_input(args, input);
        one_line_naming(what, &o, "no space left on device");
        let changed = differences(&before, &snapshot(&s));
        assert!(
            changed.is_empty(),
            "{what} left the store changed: {changed:#?}"
        );
    }
    check_clean(&s);
    // The store still takes a layer that fits.
    s.import_layer(&[], &tar_of(&[("fits", b"yes")]));
    check_clean(&s);
}

/// What the vfs component's instantiation says when wasmtime cannot make the memfd of its
/// memory image: wasmtime 48 keeps the `memfd` crate's message and not the errno under it, so
/// at the lowest limits the line does not say "too many open files" (reported; not ours).
const WASMTIME_MEMFD: &str = "cannot create a memfd";

/// Runs a command with the open-files limit set to `limit` (`prlimit`, util-linux).
fn with_nofile(s: &Scratch, limit: u64, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(STORAGE)
        .args(s.globals())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn too_many_open_files_names_emfile_and_rolls_back() {
    let s = Scratch::new();
    populate(&s);
    // Directories come first, explicitly: `check` (ours as upstream's) reports a directory
    // that only a file's path implies as modified content.
    let paths: Vec<String> = (0..64)
        .flat_map(|i| [format!("d{i}/"), format!("d{i}/f")])
        .collect();
    let entries: Vec<(&str, &[u8])> = paths
        .iter()
        .map(|p| (p.as_str(), if p.ends_with('/') { &b""[..] } else { b"x" }))
        .collect();
    let tar = tar_of(&entries);
    // Every limit from one too low to run at all up to one that is enough: each command
    // either works or fails with one line naming the cause and leaves the store as it was.
    let mut failed = 0;
    let mut changed = Vec::new();
    let mut memfd = 0;
    let mut worked_at = None;
    for limit in 4..256u64 {
        let before = snapshot(&s);
        let o = with_nofile(&s, limit, &["import-layer", "-n", "limited"], &tar);
        if o.code == 0 {
            worked_at = Some(limit);
            break;
        }
        let what = format!("import-layer, nofile {limit}");
        let said = format!("{}{}", o.out(), o.stderr);
        if said.contains(WASMTIME_MEMFD) {
            // Known gap: wasmtime reports its failed memfd_create without the errno.
            eprintln!(
                "{what}: {} (the cause is lost inside wasmtime)",
                said.trim_end()
            );
            assert_eq!(said.lines().count(), 1, "{o:?}");
            memfd += 1;
        } else {
            one_line_naming(&what, &o, "too many open files");
        }
        for d in differences(&before, &snapshot(&s)) {
            changed.push(format!("nofile {limit}: {d}"));
        }
        failed += 1;
    }
    let worked_at = worked_at.expect("an import with 255 open files allowed");
    eprintln!(
        "import-layer failed at {failed} limits ({} without naming EMFILE: wasmtime's memfd; \
         {} left the store changed) and worked from nofile {worked_at}",
        memfd,
        changed.len()
    );
    assert!(failed > 0);
    assert!(changed.is_empty(), "{changed:#?}");
    check_clean(&s);
    assert_eq!(s.ok(&["get-names", "limited"]), "limited\n");
}

/// A read-only bind mount of a directory over itself for the test's lifetime.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn mount(dir: &Path) -> ReadOnlyBind {
        let guard = ReadOnlyBind(dir.to_path_buf());
        sh("mount", &["--bind", dir.to_str().unwrap()], dir);
        sh("mount", &["-o", "remount,bind,ro"], dir);
        guard
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Write commands on a store that cannot be written: each fails with one line naming
/// EROFS, and the store is as it was once it is writable again.
fn refused_writes(s: &Scratch, make_read_only: &dyn Fn(bool), commands: &[&[&str]]) {
    populate(s);
    let before = snapshot(s);
    make_read_only(true);
    let tar = tar_of(&[("new", b"new")]);
    let outputs: Vec<(String, Output)> = commands
        .iter()
        .map(|args| (args.join(" "), s.run_with_input(args, &tar)))
        .collect();
    make_read_only(false);
    for (what, o) in &outputs {
        one_line_naming(what, o, "read-only file system");
    }
    let changed = differences(&before, &snapshot(s));
    assert!(
        changed.is_empty(),
        "a refused write left the store changed: {changed:#?}"
    );
    check_clean(s);
    s.ok(&["add-names", "-n", "more", "base"]);
}

#[test]
fn a_read_only_filesystem_names_erofs_and_leaves_the_store() {
    let s = Scratch::new();
    let fs = TmpfsGraph::mount(&s, "64m");
    refused_writes(
        &s,
        &|ro| fs.read_only(ro),
        &[
            &["import-layer"],
            &["create-layer", "base"],
            &["create-image", "-n", "img2", "base"],
            &["create-container", "img"],
            &["add-names", "-n", "more", "base"],
            &["delete-container", "ctr"],
            &["mount", "ctr"],
        ],
    );
}

#[test]
fn a_read_only_driver_home_names_erofs_and_rolls_back() {
    // The records can be written, the driver's home cannot: what was recorded or staged
    // before the driver failed must be rolled back. (overlay writes its home when it starts,
    // so there every command stops there.)
    let s = Scratch::new();
    let home = s.graph().join(crate::DRIVER);
    let bind: std::cell::RefCell<Option<ReadOnlyBind>> = std::cell::RefCell::new(None);
    refused_writes(
        &s,
        &|ro| {
            if ro {
                *bind.borrow_mut() = Some(ReadOnlyBind::mount(&home));
            } else {
                bind.borrow_mut().take();
            }
        },
        &[
            &["import-layer"],
            &["import-layer", "-n", "child", "base"],
            &["create-layer", "base"],
            &["create-container", "img"],
        ],
    );
}

/// A `delete-container` whose layer cannot be removed (read-only driver home) fails with
/// the cause, and the container never outlives its layer: either nothing changed (overlay
/// fails when it starts, as it writes its home, before anything is marked) or the layer was
/// marked for removal (`remove_layer` marks it incomplete before the driver removes it, as
/// upstream's `deleteInternal`), and then the next command finishes the delete, the
/// container's record and directories with the layer. Upstream leaves such a container
/// pointing at a layer that is gone, and its `check` does not see it.
#[test]
fn a_failed_container_delete_leaves_the_container_whole_or_finishes_it() {
    let s = Scratch::new();
    populate(&s);
    let layer = serde_json::from_str::<serde_json::Value>(&s.ok(&["container", "-j", "ctr"]))
        .unwrap()[0]["layer"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&s);
    let home = s.graph().join(crate::DRIVER);
    let bind = ReadOnlyBind::mount(&home);
    let o = s.run(&["delete-container", "ctr"]);
    drop(bind);
    one_line_naming("delete-container", &o, "read-only file system");
    let containers = s.ok(&["containers", "-j"]);
    if !containers.contains("\"ctr\"") {
        let layers = s.ok(&["layers", "-q"]);
        assert!(
            !layers.contains(&layer),
            "the container's layer outlived it: {layers}"
        );
        assert!(!s
            .graph()
            .join(format!("{}-containers", crate::DRIVER))
            .join("ctr")
            .exists());
    } else {
        let changed = differences(&before, &snapshot(&s));
        assert!(changed.is_empty(), "{changed:#?}");
        s.ok(&["delete-container", "ctr"]);
    }
    check_clean(&s);
}
