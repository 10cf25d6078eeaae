//! A crash at every step (issue #13, item 2): the write paths of the store call named crash
//! points between their durable effects (host/store/src/crash_point.rs), and the debug binary
//! SIGKILLs itself at the one `STORAGE_CRASH_AT` names. For each write command of
//! [`commands`], a run with `STORAGE_CRASH_LIST=1` lists the points it passes (so the count is
//! measured, not kept by hand); then, for each point in turn, a freshly prepared store runs
//! the command killed there, and:
//!
//! - the command died by SIGKILL (the point was reached);
//! - the next command (`layers`) succeeds, quietly;
//! - `check` finds nothing;
//! - every layer record has its directory in the driver's home and every directory there
//!   has a record;
//! - `layers.json`, `images.json`, `containers.json` and `mountpoints.json` parse.
//!
//! The cleanup that next command does (incomplete layers, dead imports, interrupted container
//! deletions) has crash points too: after each crash, a copy of the crashed store has its
//! cleanup killed at each of them in turn, and the same must hold after the command after.
//!
//! A point passed more than once by a command (two saves of `layers.json`) is killed at each
//! pass (`NAME#N`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::harness::{tar_of, Output, Scratch};

/// One write command: how to run it on a prepared store.
struct WriteCommand {
    label: &'static str,
    args: Vec<String>,
    stdin: Vec<u8>,
}

fn sample_tar() -> Vec<u8> {
    tar_of(&[("d/", b""), ("d/f", b"file"), ("g", b"g")])
}

/// A new store holding a copy of `template`'s graph and run roots (`cp -a`: owners, modes,
/// links and extended attributes kept), so each point starts from the same store without
/// running the preparation again.
fn copy_of(template: &Scratch) -> Scratch {
    let s = Scratch::new();
    for (from, to) in [
        (template.graph(), s.graph()),
        (template.run_root(), s.run_root()),
    ] {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cp -a {} {}",
            from.display(),
            to.display()
        );
    }
    s
}

/// A store with a parent and a child layer, a spare leaf layer, an image on the child, an
/// image alone on its own layer, a container of the first image and an empty layer.
fn prepare() -> Scratch {
    let s = Scratch::new();
    let base = s.import_layer(&["-n", "base"], &sample_tar());
    s.import_layer(&["-n", "top", &base], &tar_of(&[("t", b"top")]));
    s.import_layer(&["-n", "spare"], &tar_of(&[("s", b"spare")]));
    s.import_layer(&["-n", "solo"], &tar_of(&[("o", b"solo")]));
    s.ok(&["create-image", "-n", "img", "top"]);
    s.ok(&["create-image", "-n", "img-del", "solo"]);
    s.ok(&["create-container", "-n", "ctr", "img"]);
    // For `applydiff`: a layer with no archive yet (applied over an imported one, the new
    // tar-split describes only the new archive and `check` calls the old files a change).
    s.create_layer(&["-n", "blank"]);
    s
}

/// A one-image OCI layout of two uncompressed layers in `dir`, tagged `v1`; its argument.
fn oci_layout(dir: &Path) -> String {
    fn put(dir: &Path, data: &[u8]) -> String {
        let hex = format!("{:x}", Sha256::digest(data));
        std::fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
        format!("sha256:{hex}")
    }
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layers = [
        tar_of(&[("a/", b""), ("a/1", b"one")]),
        tar_of(&[("b", b"two")]),
    ];
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{:x}", Sha256::digest(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": put(dir, l),
                "size": l.len(),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(dir, &config),
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(dir, &manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("{}:v1", dir.display())
}

fn cmd(label: &'static str, args: &[&str]) -> WriteCommand {
    WriteCommand {
        label,
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: Vec::new(),
    }
}

/// The write commands, each on a store as [`prepare`] leaves it.
fn commands(layout: &str) -> Vec<WriteCommand> {
    let mapping = ["--uidmap", "0:100000:65536", "--gidmap", "0:200000:65536"];
    let mut mapped = vec!["create-container", "-n", "mapped"];
    mapped.extend(mapping);
    mapped.push("img");
    vec![
        cmd("create-layer", &["create-layer", "-n", "new", "top"]),
        WriteCommand {
            stdin: tar_of(&[("i/", b""), ("i/x", b"imported")]),
            ..cmd("import-layer", &["import-layer", "-n", "imported", "top"])
        },
        cmd("delete-layer", &["delete-layer", "spare"]),
        cmd("create-image", &["create-image", "-n", "img2", "spare"]),
        cmd("delete-image", &["delete-image", "img-del"]),
        cmd("create-container", &["create-container", "-n", "c2", "img"]),
        cmd("delete-container", &["delete-container", "ctr"]),
        cmd("add-names", &["add-names", "-n", "extra", "img"]),
        cmd("set-names", &["set-names", "-n", "renamed", "base"]),
        cmd("set-metadata", &["set-metadata", "-m", "{\"k\":1}", "ctr"]),
        cmd("create-container (mapped layer)", &mapped),
        cmd("import-oci", &["import-oci", layout]),
        WriteCommand {
            stdin: tar_of(&[("n", b"new in top")]),
            ..cmd("applydiff", &["applydiff", "blank"])
        },
        WriteCommand {
            stdin: b"{\"some\":\"data\"}".to_vec(),
            ..cmd("set-image-data", &["set-image-data", "img", "key"])
        },
        cmd("remove-names", &["remove-names", "-n", "img", "img"]),
        cmd("delete (no checks)", &["delete", "spare"]),
        cmd("mount", &["mount", "ctr"]),
    ]
}

fn run(s: &Scratch, c: &WriteCommand, env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
    let mut cmd = std::process::Command::new(crate::harness::STORAGE);
    cmd.args(s.globals())
        .args(&args)
        .env_remove("STORAGE_CRASH_AT")
        .env_remove("STORAGE_CRASH_LIST")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let input = c.stdin.clone();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // A command killed before it reads all its input closes the pipe: not an error.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    Output {
        code: out
            .status
            .code()
            .unwrap_or_else(|| -out.status.signal().unwrap_or(0)),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The points a command passes, in order, each with the number of its pass (`NAME#N` for the
/// second and later passes).
fn points_of(template: &Scratch, c: &WriteCommand) -> Vec<String> {
    let s = copy_of(template);
    let o = run(&s, c, &[("STORAGE_CRASH_LIST", "1")]);
    assert_eq!(o.code, 0, "{}: {o:?}", c.label);
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    o.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("storage-crash-point: "))
        .map(|name| {
            let n = seen.entry(name.to_string()).or_default();
            *n += 1;
            if *n == 1 {
                name.to_string()
            } else {
                format!("{name}#{n}")
            }
        })
        .collect()
}

/// The driver's home and the folder of it that holds one directory per layer.
fn layer_dirs_home(s: &Scratch) -> PathBuf {
    match crate::DRIVER {
        "vfs" => s.graph().join("vfs/dir"),
        "btrfs" => s.graph().join("btrfs/subvolumes"),
        other => s.graph().join(other),
    }
}

fn parse_json(path: &Path, problems: &mut Vec<String>) -> Option<serde_json::Value> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(format!("reading {}: {e}", path.display()));
            return None;
        }
    };
    if bytes.is_empty() {
        return None;
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{} is torn: {e}", path.display()));
            None
        }
    }
}

/// What is wrong with the store after a crash and the next command.
fn inspect(s: &Scratch) -> Vec<String> {
    let mut problems = Vec::new();
    let next = s.run(&["layers"]);
    if next.code != 0 || !next.stderr.is_empty() {
        problems.push(format!("the next command: {next:?}"));
    }
    let check = s.run(&["check"]);
    if check.code != 0 || !check.out().is_empty() || !check.stderr.is_empty() {
        problems.push(format!("check: {check:?}"));
    }
    let drv = crate::DRIVER;
    let layers = parse_json(
        &s.graph().join(format!("{drv}-layers/layers.json")),
        &mut problems,
    );
    for file in [
        format!("{drv}-images/images.json"),
        format!("{drv}-containers/containers.json"),
    ] {
        parse_json(&s.graph().join(file), &mut problems);
    }
    parse_json(
        &s.run_root().join(format!("{drv}-layers/mountpoints.json")),
        &mut problems,
    );
    let recorded: BTreeSet<String> = layers
        .as_ref()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["id"].as_str().map(String::from))
        .collect();
    let home = layer_dirs_home(s);
    let on_disk: BTreeSet<String> = std::fs::read_dir(&home)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !(drv == "overlay" && n == "l"))
                .collect()
        })
        .unwrap_or_default();
    for id in recorded.difference(&on_disk) {
        problems.push(format!("layer {id} has a record and no directory"));
    }
    for id in on_disk.difference(&recorded) {
        problems.push(format!(
            "directory {} has no record",
            home.join(id).display()
        ));
    }
    problems
}

#[test]
fn a_kill_at_every_crash_point_leaves_a_working_store() {
    let layout_dir = tempfile::tempdir().unwrap();
    let layout = oci_layout(layout_dir.path());
    let template = prepare();
    // The template is as sound as the stores made from it must end.
    assert_eq!(inspect(&template), Vec::<String>::new());
    let mut covered = 0;
    let mut cleanup_covered = 0;
    let mut problems = Vec::new();
    let mut distinct = BTreeSet::new();
    for c in commands(&layout) {
        let points = points_of(&template, &c);
        assert!(!points.is_empty(), "{}: passes no crash point", c.label);
        for point in &points {
            let s = copy_of(&template);
            let o = run(&s, &c, &[("STORAGE_CRASH_AT", point)]);
            if o.code != -9 {
                problems.push(format!("{} at {point}: not killed there ({o:?})", c.label));
                continue;
            }
            covered += 1;
            distinct.insert(point.split('#').next().unwrap_or(point).to_string());
            // The cleanup the next command does may be killed too: at each of its points,
            // on a copy of the crashed store, and then the command after must finish it.
            let cleanup = points_of(&s, &cmd("layers", &["layers"]));
            for again in &cleanup {
                let twice = copy_of(&s);
                let o = run(
                    &twice,
                    &cmd("layers", &["layers"]),
                    &[("STORAGE_CRASH_AT", again)],
                );
                if o.code != -9 {
                    problems.push(format!(
                        "{} at {point}, cleanup at {again}: not killed there ({o:?})",
                        c.label
                    ));
                    continue;
                }
                cleanup_covered += 1;
                distinct.insert(again.split('#').next().unwrap_or(again).to_string());
                for problem in inspect(&twice) {
                    problems.push(format!(
                        "{} at {point}, cleanup at {again}: {problem}",
                        c.label
                    ));
                }
            }
            for problem in inspect(&s) {
                problems.push(format!("{} at {point}: {problem}", c.label));
            }
        }
        eprintln!("{}: {} points", c.label, points.len());
    }
    eprintln!(
        "crash points on {}: {covered} covered, {cleanup_covered} more in the cleanup after \
         them ({} distinct names), {} problems",
        crate::DRIVER,
        distinct.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_inspection_sees_what_a_crash_could_leave() {
    // What the test above looks for, made by hand: each must be reported.
    let s = prepare();
    let victim = s.create_layer(&["-n", "victim"]);
    let home = layer_dirs_home(&s);
    std::fs::remove_dir_all(home.join(&victim)).unwrap();
    let stray = "f".repeat(64);
    std::fs::create_dir(home.join(&stray)).unwrap();
    let images = s
        .graph()
        .join(format!("{}-images/images.json", crate::DRIVER));
    let whole = std::fs::read(&images).unwrap();
    std::fs::write(&images, &whole[..whole.len() / 2]).unwrap();
    let problems = inspect(&s).join("\n");
    for needle in [
        format!("layer {victim} has a record and no directory"),
        format!("{stray} has no record"),
        "images.json is torn".to_string(),
        "check: ".to_string(),
    ] {
        assert!(problems.contains(&needle), "{needle:?} not in:\n{problems}");
    }
}
