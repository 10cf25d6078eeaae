//! Several `storage` processes writing one store at once: the locks must serialise them so
//! that no record is lost, no name ends up on two records of a kind, and the JSON files stay
//! whole; first commands racing on a fresh store; readers arriving during a slow import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Barrier;

use crate::harness::{first_line, tar_of, Output, Scratch};

const WORKERS: usize = 8;

/// What one worker made.
#[derive(Debug)]
struct Made {
    layer: String,
    image: String,
    container: String,
    /// How the contested `create-layer -n contested` ended.
    contested: Output,
}

/// One worker's job, every step through the binary.
fn work(s: &Scratch, n: usize) -> Made {
    let tar = tar_of(&[("w/", b""), (&format!("w/{n}"), n.to_string().as_bytes())]);
    let layer = s.import_layer(&["-n", &format!("layer-{n}")], &tar);
    let image = first_line(&s.ok(&["create-image", "-n", &format!("image-{n}"), &layer]));
    let container = first_line(&s.ok(&["create-container", "-n", &format!("ctr-{n}"), &image]));
    // Adding a name another image holds moves it: whoever comes last keeps it.
    s.ok(&["add-names", "-n", "shared", &image]);
    let contested = s.run(&["create-layer", "-n", "contested"]);
    Made {
        layer,
        image,
        container,
        contested,
    }
}

fn records(s: &Scratch, command: &str) -> Vec<serde_json::Value> {
    let out = s.ok(&[command, "-j"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array().cloned().unwrap_or_default()
}

fn ids(records: &[serde_json::Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every name of a kind, with how many records carry it.
fn name_counts(records: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        for n in r["names"].as_array().cloned().unwrap_or_default() {
            *counts.entry(n.as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn parses(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
}

#[test]
fn eight_writers_at_once_lose_nothing() {
    let s = Scratch::new();
    // The store exists before the race, as it would for Podman's many callers.
    s.ok(&["layers"]);
    let start = Barrier::new(WORKERS);
    let made: Vec<Made> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|n| {
                let (s, start) = (&s, &start);
                scope.spawn(move || {
                    start.wait();
                    work(s, n)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let layers = records(&s, "layers");
    let images = records(&s, "images");
    let containers = records(&s, "containers");
    let layer_ids = ids(&layers);
    let image_ids = ids(&images);
    let container_ids = ids(&containers);

    // Everything each worker made is there, under its own name.
    for (n, m) in made.iter().enumerate() {
        assert!(layer_ids.contains(&m.layer), "layer of worker {n} lost");
        assert!(image_ids.contains(&m.image), "image of worker {n} lost");
        assert!(
            container_ids.contains(&m.container),
            "container of worker {n} lost"
        );
        assert_eq!(s.ok(&["get-names", &m.layer]), format!("layer-{n}\n"));
        let names = s.ok(&["get-names", &m.image]);
        assert!(
            names.lines().any(|name| name == format!("image-{n}")),
            "{names}"
        );
        assert_eq!(s.ok(&["get-names", &m.container]), format!("ctr-{n}\n"));
    }
    // 8 imported layers, 8 container layers, 1 contested layer.
    assert_eq!(layers.len(), 2 * WORKERS + 1);
    assert_eq!(images.len(), WORKERS);
    assert_eq!(containers.len(), WORKERS);

    // Names are unique per kind: exactly one image holds "shared", one layer "contested".
    for (kind, recs) in [
        ("layer", &layers),
        ("image", &images),
        ("container", &containers),
    ] {
        for (name, count) in name_counts(recs) {
            assert_eq!(count, 1, "{kind} name {name:?} is on {count} records");
        }
    }
    assert_eq!(name_counts(&images).get("shared"), Some(&1));
    let won: Vec<&Made> = made.iter().filter(|m| m.contested.code == 0).collect();
    assert_eq!(won.len(), 1, "{made:#?}");
    for m in made.iter().filter(|m| m.contested.code != 0) {
        assert_eq!(m.contested.stderr, "that name is already in use\n");
    }
    assert_eq!(name_counts(&layers).get("contested"), Some(&1));

    // Consistency: every container's layer and image exist, every image's top layer
    // exists, every layer's parent exists.
    for c in &containers {
        assert!(layer_ids.contains(c["layer"].as_str().unwrap()), "{c}");
        assert!(image_ids.contains(c["image"].as_str().unwrap()), "{c}");
    }
    for i in &images {
        assert!(layer_ids.contains(i["layer"].as_str().unwrap()), "{i}");
    }
    for l in &layers {
        if let Some(p) = l["parent"].as_str() {
            assert!(layer_ids.contains(p), "{l}");
        }
        assert!(l["flags"]["incomplete"].is_null(), "{l}");
    }
    assert_eq!(s.ok(&["check", "-q"]), "");

    // The files on disk are whole JSON documents.
    let graph = s.graph();
    parses(&graph.join(format!("{}-layers/layers.json", crate::DRIVER)));
    parses(&graph.join(format!("{}-images/images.json", crate::DRIVER)));
    parses(&graph.join(format!("{}-containers/containers.json", crate::DRIVER)));
}

/// How many mounts sit exactly on `path`.
fn mounts_on(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|p| Path::new(p) == path)
        .count()
}

/// Detaches everything mounted below a scratch dir before the scratch goes, in passes: a
/// probe mount that a racing init hid under its bind of the home (see the ignored test
/// below) is reachable only once the binds above it are gone.
struct DetachAll<'a>(&'a Path);

impl Drop for DetachAll<'_> {
    fn drop(&mut self) {
        for _ in 0..5 {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let any = info
                .lines()
                .filter_map(|line| line.split(' ').nth(4))
                .any(|p| Path::new(p).starts_with(self.0));
            if !any {
                return;
            }
            crate::harness::unmount_below(self.0);
        }
    }
}

#[test]
fn eight_first_commands_on_a_fresh_store_all_work() {
    let s = Scratch::new();
    let _detach = DetachAll(s.dir());
    // No command has run yet: every process initialises the store and driver at once.
    let outputs = race_first_commands(&s);
    for (n, o) in outputs.iter().enumerate() {
        assert_eq!((o.code, o.stderr.as_str()), (0, ""), "worker {n}: {o:?}");
    }
    let layers = records(&s, "layers");
    assert_eq!(layers.len(), WORKERS);
    assert!(name_counts(&layers).values().all(|&c| c == 1));
}

/// Probe files and scratch dirs of driver inits left in the driver's home.
fn init_leftovers(s: &Scratch) -> Vec<String> {
    std::fs::read_dir(s.graph().join(crate::DRIVER))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("probe") || n.starts_with("compat"))
        .collect()
}

/// Eight first commands on a fresh store, at once; what they gave.
fn race_first_commands(s: &Scratch) -> Vec<Output> {
    let start = Barrier::new(WORKERS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|n| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    s.run(&["create-layer", "-n", &format!("fresh-{n}")])
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

#[test]
fn racing_first_inits_mount_the_home_once_and_clean_up() {
    // btrfs makes its home a private bind mount as overlay does.
    if crate::DRIVER != "btrfs"
        && !crate::harness::overlay_only("racing_first_inits_mount_the_home_once_and_clean_up")
    {
        return;
    }
    // The race is lost only now and then (seen in about one round of 50): run many rounds.
    for _ in 0..40 {
        let s = Scratch::new();
        let _detach = DetachAll(s.dir());
        for o in race_first_commands(&s) {
            assert_eq!(o.code, 0, "{o:?}");
        }
        assert_eq!(mounts_on(&s.graph().join(crate::DRIVER)), 1);
        assert_eq!(init_leftovers(&s), Vec::<String>::new());
    }
}

#[test]
fn readers_and_writers_finish_while_an_import_is_held() {
    if crate::DRIVER != "btrfs"
        && !crate::harness::overlay_only("readers_and_writers_during_an_import_never_delete_it")
    {
        return;
    }
    use crate::crash::{content, large_tar, wait_for, Reaped, PATIENCE};
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let s = Scratch::new();
    s.ok(&["layers"]);
    let fifo = s.dir().join("feed");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let slow = crate::harness::id("slow");
    let mut importer = Reaped(
        Command::new(crate::harness::STORAGE)
            .args(s.globals())
            .args(["import-layer", "--id", &slow, "-f"])
            .arg(&fifo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Half the archive now, the rest when the test says so.
    let tar = large_tar();
    let expected_size = 8u64 << 20;
    let (fed_tx, fed_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let feeder_fifo = fifo.clone();
    let feeder = std::thread::spawn(move || {
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&feeder_fifo)
            .unwrap();
        let half = tar.len() / 2;
        pipe.write_all(&tar[..half]).unwrap();
        let _ = fed_tx.send(());
        go_rx.recv_timeout(PATIENCE).unwrap();
        pipe.write_all(&tar[half..]).unwrap();
    });
    wait_for("the layer being filled", || {
        crate::crash::staged(&s, &slow, ".lock")
            .exists()
            .then_some(())
    });
    fed_rx.recv_timeout(PATIENCE).unwrap();

    // Other processes arrive while the importer is held mid-archive, and finish before it
    // gets the rest: no lock of the store is held while a layer is filled.
    let spawn = |args: &[&str]| {
        Reaped(
            Command::new(crate::harness::STORAGE)
                .args(s.globals())
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let side_tar = s.dir().join("side.tar");
    std::fs::write(&side_tar, tar_of(&[("side", b"side\n")])).unwrap();
    let side_tar = side_tar.display().to_string();
    let mut others: Vec<Reaped> = (0..4).map(|_| spawn(&["layers", "-j"])).collect();
    others.push(spawn(&["create-layer", "-n", "side"]));
    others.push(spawn(&["import-layer", "-n", "second", "-f", &side_tar]));
    others.push(spawn(&["check", "-q"]));
    let mut outputs = Vec::new();
    for mut o in others {
        let status = wait_for("a command run during the import", || {
            o.0.try_wait().unwrap()
        });
        let mut out = String::new();
        std::io::Read::read_to_string(&mut o.0.stdout.take().unwrap(), &mut out).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut o.0.stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{out}{err}");
        outputs.push(out);
    }
    assert!(
        crate::crash::staged(&s, &slow, ".lock").exists(),
        "the import is still held"
    );
    for out in outputs {
        if out.starts_with('[') || out == "null\n" {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            for l in v.as_array().cloned().unwrap_or_default() {
                // A listing shows the layer whole or not at all.
                assert!(l["flags"]["incomplete"].is_null(), "{l}");
                assert_ne!(l["id"].as_str(), Some(slow.as_str()), "{l}");
            }
        }
    }
    go_tx.send(()).unwrap();
    feeder.join().unwrap();

    let status = importer.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut importer.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "the import failed: {err}");
    assert_eq!(
        std::fs::metadata(content(&s, &slow).join("big/file"))
            .unwrap()
            .len(),
        expected_size
    );
    let listed = s.ok(&["layers", "-q"]);
    assert!(listed.lines().any(|l| l == slow), "{listed}");
    assert_eq!(s.ok(&["get-names", "side"]), "side\n");
    assert_eq!(s.ok(&["get-names", "second"]), "second\n");
    assert_eq!(s.ok(&["check", "-q"]), "");
}

#[test]
fn racing_mounts_and_unmounts_keep_the_count() {
    if !crate::harness::overlay_only("racing_mounts_and_unmounts_keep_the_count") {
        return;
    }
    let s = Scratch::new();
    let l = s.import_layer(&[], &tar_of(&[("hello", b"hi")]));
    let img = first_line(&s.ok(&["create-image", &l]));
    let ctr = first_line(&s.ok(&["create-container", "-n", "racer", &img]));
    // The workers all mount, wait for the main thread to look, then all unmount.
    let mounted = Barrier::new(WORKERS + 1);
    let looked = Barrier::new(WORKERS + 1);
    let (points, unmounts): (Vec<String>, Vec<Output>) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (s, mounted, looked) = (&s, &mounted, &looked);
                scope.spawn(move || {
                    let o = s.run(&["mount", "racer"]);
                    mounted.wait();
                    looked.wait();
                    (o, s.run(&["unmount", "racer"]))
                })
            })
            .collect();
        mounted.wait();
        // Nothing here may panic before the workers are released, or they wait forever.
        let mp = first_line(&s.run(&["mount", "racer"]).out());
        let unmount = s.run(&["unmount", "racer"]);
        let overlay_mounts = mounts_on(Path::new(&mp));
        let content = std::fs::read(Path::new(&mp).join("hello")).ok();
        let info = std::fs::read(
            s.run_root()
                .join(format!("{}-layers/mountpoints.json", crate::DRIVER)),
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        looked.wait();
        assert_eq!(unmount.code, 0, "{unmount:?}");
        // One overlay mount, counted 8 times.
        assert_eq!(overlay_mounts, 1);
        assert_eq!(content.as_deref(), Some(&b"hi"[..]));
        let info = info.unwrap();
        assert_eq!(info[0]["count"], WORKERS, "{info}");
        workers
            .into_iter()
            .map(|w| {
                let (m, u) = w.join().unwrap();
                assert_eq!((m.code, m.stderr.as_str()), (0, ""), "{m:?}");
                (first_line(&m.out()), u)
            })
            .unzip()
    });
    // Every mount gave the same point; exactly the last unmount reported it.
    assert!(points.iter().all(|p| *p == points[0]), "{points:?}");
    for u in &unmounts {
        assert_eq!((u.code, u.stderr.as_str()), (0, ""), "{u:?}");
    }
    let reported: Vec<&Output> = unmounts.iter().filter(|u| !u.stdout.is_empty()).collect();
    assert_eq!(reported.len(), 1, "{unmounts:?}");
    assert_eq!(reported[0].out(), "racer mountpoint unmounted\n");
    assert_eq!(mounts_on(Path::new(&points[0])), 0);
    assert_eq!(s.ok(&["mounted", &ctr]), "");
}
