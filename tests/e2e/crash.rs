//! Crash cleanup (upstream's `layers.go`, incomplete layers): an `import-layer` killed
//! half-way leaves a layer record marked
//! incomplete, and the next command that reads or writes the store deletes it with its driver
//! data and tar-split, so the store keeps working. Also: a killed `applydiff`, a hand-marked
//! record, stale temp dirs, and torn or empty record files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{id, tar_of, Scratch, STORAGE};

/// How long the test waits for the importer to reach a state before giving up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A child process that is killed and reaped when dropped, so a failing test leaves no
/// importer holding the store's locks.
pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The overlay layer store's record file.
pub(crate) fn layers_json(s: &Scratch) -> PathBuf {
    s.graph()
        .join(format!("{}-layers", crate::DRIVER))
        .join("layers.json")
}

fn tar_split(s: &Scratch, layer: &str) -> PathBuf {
    s.graph()
        .join(format!("{}-layers", crate::DRIVER))
        .join(format!("{layer}.tar-split.gz"))
}

/// A layer's directory in the driver's home (overlay's `<id>`, btrfs's subvolume).
pub(crate) fn driver_dir(s: &Scratch, layer: &str) -> PathBuf {
    match crate::DRIVER {
        "btrfs" => s.graph().join("btrfs/subvolumes").join(layer),
        _ => s.graph().join("overlay").join(layer),
    }
}

/// Where a layer's files are (overlay: the `diff/` of its directory).
pub(crate) fn content(s: &Scratch, layer: &str) -> PathBuf {
    crate::harness::layer_dir(&s.graph(), crate::DRIVER, layer)
}

/// Whether the tests that look into the driver's home while killing commands apply: they
/// know overlay's and btrfs's layouts (vfs keeps its layers inside a component's home).
fn applies(test: &str) -> bool {
    crate::DRIVER == "btrfs" || crate::harness::overlay_only(test)
}

/// The IDs of the records in layers.json that carry `flags.incomplete`, or `None` when the
/// file is missing or caught half-written.
pub(crate) fn incomplete_ids(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some(
        v.as_array()?
            .iter()
            .filter(|l| l["flags"]["incomplete"] == serde_json::Value::Bool(true))
            .filter_map(|l| l["id"].as_str().map(String::from))
            .collect(),
    )
}

/// Polls `f` until it gives something or the patience runs out.
pub(crate) fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Mount points at or below `dir`, except the overlay home's private bind mount of
/// itself, which the driver keeps on purpose (as upstream's overlay driver).
fn mounts_below(dir: &Path, home: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir) && Path::new(p) != home)
        .map(String::from)
        .collect()
}

/// A tar whose single file is large enough that the importer is still reading it when
/// the test stops feeding the pipe.
pub(crate) fn large_tar() -> Vec<u8> {
    let payload: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    tar_of(&[("big/", b""), ("big/file", &payload)])
}

/// Starts `storage COMMAND -f FIFO ARGS...`, feeds it half of a large archive, waits until the
/// file it is writing (`big/file` of `layer`) is on disk, and SIGKILLs it.
fn kill_midway(s: &Scratch, command: &str, args: &[&str], layer: &str) {
    let fifo = s.dir().join("feed");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let child = Command::new(STORAGE)
        .args(s.globals())
        // Flags stop at the first positional argument, as upstream's mflag: -f goes first.
        .args([command, "-f"])
        .arg(&fifo)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);

    // The feeder writes the first part of the archive and then holds the pipe open
    // without writing more, so the command blocks mid-archive until it is killed.
    let tar = large_tar();
    let (fed_tx, fed_rx) = mpsc::channel::<()>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let feeder_fifo = fifo.clone();
    let feeder = std::thread::spawn(move || {
        let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&feeder_fifo) else {
            return;
        };
        if pipe.write_all(&tar[..tar.len() / 2]).is_ok() {
            let _ = fed_tx.send(());
        }
        // Held open until the command is dead (or the test gave up).
        let _ = stop_rx.recv_timeout(PATIENCE);
    });

    fed_rx
        .recv_timeout(PATIENCE)
        .expect("the command never read the first half of the archive");
    wait_for("the partly written file", || {
        content(s, layer).join("big/file").exists().then_some(())
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.0.wait().unwrap();
    let _ = stop_tx.send(());
    feeder.join().unwrap();
    std::fs::remove_file(&fifo).unwrap();
}

/// Where an import that is filling `layer` keeps its marker and its tar-split until the
/// commit (no record names the layer before it).
pub(crate) fn staged(s: &Scratch, layer: &str, suffix: &str) -> PathBuf {
    s.graph()
        .join(format!("{}-layers", crate::DRIVER))
        .join("staging")
        .join(format!("{layer}{suffix}"))
}

/// Kills `import-layer --id LAYER` midway: the driver has the layer, no record names it,
/// and its staging marker says an import was filling it.
fn kill_import_midway(s: &Scratch, layer: &str) {
    kill_midway(s, "import-layer", &["--id", layer], layer);
    let on_disk = std::fs::read_to_string(layers_json(s)).unwrap_or_default();
    assert!(!on_disk.contains(layer), "{on_disk}");
    assert!(driver_dir(s, layer).exists());
    assert!(staged(s, layer, ".lock").exists());
}

/// The killed layer left no record, driver data, tar-split or mount behind.
fn assert_cleaned_up(s: &Scratch, layer: &str) {
    let on_disk = std::fs::read_to_string(layers_json(s)).unwrap();
    assert!(!on_disk.contains(layer), "{on_disk}");
    assert!(!driver_dir(s, layer).exists());
    assert!(!tar_split(s, layer).exists());
    assert!(!staged(s, layer, ".lock").exists());
    assert!(!staged(s, layer, ".tar-split.gz").exists());
    let home = s.graph().join(crate::DRIVER);
    assert_eq!(mounts_below(s.dir(), &home), Vec::<String>::new());
    if crate::DRIVER != "overlay" {
        return;
    }
    // The short link the driver made for the layer went with it.
    for link in std::fs::read_dir(home.join("l")).unwrap() {
        let target = std::fs::read_link(link.unwrap().path()).unwrap();
        assert!(!target.starts_with(format!("../{layer}")), "{target:?}");
    }
}

#[test]
fn killed_import_is_cleaned_up_by_the_next_listing() {
    if !applies("killed_import_is_cleaned_up_by_the_next_listing") {
        return;
    }
    let s = Scratch::new();
    let kept = s.import_layer(
        &["--id", &id("kept"), "-n", "kept"],
        &tar_of(&[("k", b"k")]),
    );
    let doomed = id("doomed");
    kill_import_midway(&s, &doomed);

    // The next reader cleans up: exit 0, only the complete layer listed.
    let listed = s.run(&["layers"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.out(), format!("{kept}\n\tname: kept\n"));
    assert_cleaned_up(&s, &doomed);
    assert!(content(&s, &kept).join("k").exists());
    assert!(tar_split(&s, &kept).exists());

    // The store keeps working: writes, and a new import (even under the same ID).
    let made = s.create_layer(&["-n", "after-crash"]);
    let again = s.import_layer(&["--id", &doomed], &tar_of(&[("again", b"ok")]));
    assert_eq!(again, doomed);
    assert_eq!(
        std::fs::read(content(&s, &doomed).join("again")).unwrap(),
        b"ok"
    );
    assert_eq!(
        s.ok(&["layers", "-q"]),
        format!("{kept}\n{made}\n{doomed}\n")
    );
    assert_eq!(s.ok(&["check", "-q"]), "");
}

#[test]
fn killed_import_is_cleaned_up_by_the_next_write() {
    if !applies("killed_import_is_cleaned_up_by_the_next_write") {
        return;
    }
    let s = Scratch::new();
    let doomed = id("doomed");
    kill_import_midway(&s, &doomed);

    // A write command first: it cleans up too, and may even reuse the ID.
    let made = s.create_layer(&["--id", &doomed, "-n", "reborn"]);
    assert_eq!(made, doomed);
    let on_disk = std::fs::read_to_string(layers_json(&s)).unwrap();
    assert!(!on_disk.contains("incomplete"), "{on_disk}");
    assert!(!content(&s, &doomed).join("big").exists());
    assert!(!tar_split(&s, &doomed).exists());
    assert_eq!(s.ok(&["layers"]), format!("{doomed}\n\tname: reborn\n"));
    s.ok(&["delete-layer", "reborn"]);
    assert_cleaned_up(&s, &doomed);
    s.import_layer(&[], &tar_of(&[("f", b"fine")]));
    assert_eq!(s.ok(&["check", "-q"]), "");
}

#[test]
fn hand_marked_incomplete_layer_is_deleted_by_the_next_listing() {
    if !applies("hand_marked_incomplete_layer_is_deleted_by_the_next_listing") {
        return;
    }
    let s = Scratch::new();
    let l = s.import_layer(&["--id", &id("marked")], &tar_of(&[("f", b"data")]));
    assert!(tar_split(&s, &l).exists());
    let path = layers_json(&s);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v[0]["flags"] = serde_json::json!({ "incomplete": true });
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();

    let o = s.run(&["layers"]);
    assert_eq!((o.code, o.out().as_str()), (0, ""), "{o:?}");
    assert_eq!(s.ok(&["layers", "-j"]), "null\n");
    assert_cleaned_up(&s, &l);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{v}"
    );
    // And the store still takes new layers.
    s.import_layer(&["--id", &l], &tar_of(&[("f", b"data")]));
    assert_eq!(s.ok(&["layers", "-q"]), format!("{l}\n"));
}

#[test]
fn stale_temp_dir_is_removed_by_the_next_write() {
    let s = Scratch::new();
    s.create_layer(&[]);
    // What a process killed while staging would leave (host/store/src/store/staged.rs).
    let tmp = s
        .graph()
        .join(format!("{}-layers", crate::DRIVER))
        .join("tmp");
    std::fs::create_dir_all(tmp.join("staged/deep")).unwrap();
    std::fs::write(tmp.join("staged/deep/file"), b"partial").unwrap();
    s.create_layer(&[]);
    assert!(!tmp.exists());
    assert_eq!(s.ok(&["layers", "-q"]).lines().count(), 2);
}

#[test]
fn killed_applydiff_leaves_the_layer_and_a_working_store() {
    if !applies("killed_applydiff_leaves_the_layer_and_a_working_store") {
        return;
    }
    let s = Scratch::new();
    let l = s.import_layer(
        &["--id", &id("target"), "-n", "target"],
        &tar_of(&[("a", b"a")]),
    );
    let record_before = s.ok(&["layer", "-j", &l]);
    let tar_split_before = std::fs::read(tar_split(&s, &l)).unwrap();
    kill_midway(&s, "applydiff", &[&l], &l);

    // An applydiff does not make its layer incomplete: the layer stays, with its record
    // and tar-split as they were; only the half-written content remains in it.
    assert_eq!(incomplete_ids(&layers_json(&s)), Some(vec![]));
    assert_eq!(s.ok(&["layers"]), format!("{l}\n\tname: target\n"));
    assert_eq!(s.ok(&["layer", "-j", &l]), record_before);
    assert_eq!(std::fs::read(tar_split(&s, &l)).unwrap(), tar_split_before);
    assert_eq!(std::fs::read(content(&s, &l).join("a")).unwrap(), b"a");
    let home = s.graph().join(crate::DRIVER);
    assert_eq!(mounts_below(s.dir(), &home), Vec::<String>::new());
    // The store takes writes; the layer can be written again and deleted.
    s.ok_with_input(&["applydiff", &l], &tar_of(&[("b", b"b")]));
    assert_eq!(std::fs::read(content(&s, &l).join("b")).unwrap(), b"b");
    s.ok(&["delete-layer", &l]);
    assert_cleaned_up(&s, &l);
}

#[test]
fn torn_layers_json_is_an_error_not_a_panic() {
    let s = Scratch::new();
    s.create_layer(&[]);
    let path = layers_json(&s);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    for args in [&["layers"][..], &["create-layer"][..], &["check", "-q"][..]] {
        let o = s.run(args);
        assert_eq!(o.code, 1, "{args:?}: {o:?}");
        assert!(!o.stderr.contains("panicked"), "{args:?}: {o:?}");
        let said = format!("{}{}", o.out(), o.stderr);
        assert!(said.contains("layers.json"), "{args:?}: {said}");
    }
}

#[test]
fn empty_layers_json_means_no_layers() {
    // Upstream reads a zero-length record file as an empty list.
    let s = Scratch::new();
    s.create_layer(&[]);
    std::fs::write(layers_json(&s), b"").unwrap();
    assert_eq!(s.ok(&["layers"]), "");
    s.create_layer(&["-n", "after"]);
    assert_eq!(s.ok(&["layers", "-q"]).lines().count(), 1);
}
