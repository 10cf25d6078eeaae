//! The overlay driver's archive work runs in the archive component by default; a component
//! stopped by its limits must fail the command with one line and leave the store as it was
//! (the layer rolled back), and `overlay.archive=native` must give the same layers.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::harness::{tar_of, Output, Scratch, STORAGE};

/// Runs `storage <globals> --storage-opt <opt>... args` with `stdin`.
fn run_with_opts(s: &Scratch, opts: &[&str], args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(STORAGE);
    cmd.args(s.globals());
    for opt in opts {
        cmd.args(["--storage-opt", opt]);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the binary");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("waiting for the binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What must not change when an import fails: the layer records and the driver's layers.
fn state(s: &Scratch) -> (String, BTreeSet<String>) {
    let layers = s.ok(&["layers", "-j"]);
    let dirs = std::fs::read_dir(s.graph().join("overlay"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (layers, dirs)
}

/// A tar of `files` small files.
fn many_files(files: usize) -> Vec<u8> {
    let names: Vec<String> = (0..files).map(|i| format!("d{}/f{i}", i % 50)).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    tar_of(&entries)
}

/// Imports `tar` with `opts`, expects a failure mentioning `why`, and checks the store is
/// as it was and still consistent.
fn assert_stopped_cleanly(opts: &[&str], tar: &[u8], why: &str) {
    let s = Scratch::new();
    let base = s.import_layer(&["-n", "base"], &tar_of(&[("kept", b"kept")]));
    let before = state(&s);
    let o = run_with_opts(&s, opts, &["import-layer", "-n", "victim"], tar);
    assert_ne!(o.code, 0, "accepted: {o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "not one line: {:?}", o.stderr);
    assert!(o.stderr.contains("builtin:archive"), "{:?}", o.stderr);
    assert!(o.stderr.contains(why), "{:?}", o.stderr);
    assert_eq!(state(&s), before, "store changed");
    s.ok(&["check"]);
    // The store still works, through the component.
    let child = s.import_layer(&["-n", "child", base.as_str()], &many_files(10));
    assert_eq!(s.ok(&["changes", &child]).lines().count(), 20);
}

#[test]
fn a_memory_limit_that_stops_the_component_rolls_the_layer_back() {
    assert_stopped_cleanly(
        &["overlay.archive_memory_limit=64k"],
        &many_files(10),
        "exceeded its memory limit",
    );
}

#[test]
fn a_deadline_that_stops_the_component_rolls_the_layer_back() {
    assert_stopped_cleanly(
        &["overlay.archive_deadline_ms=1"],
        &many_files(20_000),
        "ran past its deadline",
    );
}

#[test]
fn native_and_component_archives_give_the_same_layer() {
    let tar = many_files(300);
    let mut digests = Vec::new();
    for runtime in ["component", "native"] {
        let s = Scratch::new();
        let opt = format!("overlay.archive={runtime}");
        let o = run_with_opts(&s, &[&opt], &["import-layer", "-n", "l"], &tar);
        assert_eq!(o.code, 0, "{runtime}: {o:?}");
        let diff = run_with_opts(&s, &[&opt], &["diff", "l"], b"");
        assert_eq!(diff.code, 0, "{runtime}: {diff:?}");
        let changes = run_with_opts(&s, &[&opt], &["changes", "l"], b"");
        assert_eq!(changes.code, 0, "{runtime}: {changes:?}");
        let layer = s.ok(&["layers", "-j"]);
        let record: serde_json::Value = serde_json::from_str(&layer).expect("layers json");
        digests.push((
            record[0]["diff-digest"].clone(),
            record[0]["diff-size"].clone(),
            diff.stdout.len(),
            changes.out(),
        ));
    }
    assert_eq!(digests[0], digests[1]);
}
