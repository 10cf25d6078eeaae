//! `dedup`: identical files of the store's images share extents afterwards, on a graph root
//! that is a loop-mounted btrfs (reflinks); on tmpfs (no reflinks) it reports 0 bytes and
//! succeeds, as upstream.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{id, tar_of, Scratch};

/// Prefix of the backing files, followed by the test process's ID: a leftover of a killed
/// run is recognised by it.
const IMAGE_PREFIX: &str = "storage-dedup-e2e-";

/// A filesystem mounted on a scratch store's graph root, detached on drop (also when the
/// test fails). A loop mount's backing file is deleted once mounted (`mount -o loop` sets
/// autoclear), so the detach frees the loop device and the space.
struct MountedGraph {
    mountpoint: PathBuf,
}

impl Drop for MountedGraph {
    fn drop(&mut self) {
        // Lazily, with whatever the store mounted below it (overlay's home bind mount).
        crate::harness::unmount_below(&self.mountpoint);
    }
}

/// Detaches the loop mounts a killed run of these tests left: backing file ours, its
/// process gone.
fn remove_stale_loops() {
    let Ok(out) = Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
    else {
        return;
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(dev), Some(back)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(pid) = Path::new(back)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(IMAGE_PREFIX))
            .and_then(|n| n.strip_suffix(".img"))
        else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        for m in info.lines() {
            let parts: Vec<&str> = m.split(' ').collect();
            let source = parts
                .iter()
                .position(|p| *p == "-")
                .and_then(|i| parts.get(i + 2));
            if source == Some(&dev) {
                if let Some(point) = parts.get(4) {
                    let _ = nix::mount::umount2(*point, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
        let _ = Command::new("losetup").args(["-d", dev]).status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fresh btrfs (sparse image, loop mount) as the store's graph root.
fn btrfs_graph(s: &Scratch) -> MountedGraph {
    remove_stale_loops();
    let image = s
        .dir()
        .join(format!("{IMAGE_PREFIX}{}.img", std::process::id()));
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(512 << 20).unwrap();
    drop(file);
    let graph = s.graph();
    std::fs::create_dir_all(&graph).unwrap();
    let guard = MountedGraph {
        mountpoint: graph.clone(),
    };
    run("mkfs.btrfs", &["-q", "-f", image.to_str().unwrap()]);
    let mounted = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&graph)
        .output();
    let _ = std::fs::remove_file(&image);
    let mounted = mounted.expect("running mount");
    assert!(
        mounted.status.success(),
        "mount -o loop: {}",
        String::from_utf8_lossy(&mounted.stderr)
    );
    guard
}

/// A tmpfs as the store's graph root.
fn tmpfs_graph(s: &Scratch) -> MountedGraph {
    let graph = s.graph();
    std::fs::create_dir_all(&graph).unwrap();
    let guard = MountedGraph {
        mountpoint: graph.clone(),
    };
    run("mount", &["-t", "tmpfs", "tmpfs", graph.to_str().unwrap()]);
    guard
}

/// Bytes that do not compress or repeat, the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Where a file of a layer is on disk for this suite's driver.
fn layer_file(s: &Scratch, layer: &str, name: &str) -> PathBuf {
    crate::harness::layer_dir(&s.graph(), crate::DRIVER, layer).join(name)
}

/// The physical extents of a file (`filefrag -v`), and whether all are marked shared.
fn extents(path: &Path) -> (Vec<String>, bool) {
    let o = Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .expect("running filefrag");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter(|l| l.contains(".."))
        .collect();
    let physical = rows
        .iter()
        .filter_map(|l| l.split(':').nth(2))
        .map(|p| p.trim().to_string())
        .collect();
    let shared = !rows.is_empty() && rows.iter().all(|l| l.contains("shared"));
    (physical, shared)
}

const BIG: usize = (1 << 20) + (64 << 10) + 3;
const MID: usize = 200_003;

/// Two images whose layers hold the same two big files (and one file of their own).
fn two_images(s: &Scratch) -> (String, String, Vec<u8>) {
    let big = noise(1, BIG);
    let mid = noise(2, MID);
    let tar_a = tar_of(&[
        ("big", &big),
        ("d/", b""),
        ("d/mid", &mid),
        ("own", &noise(3, 5000)),
    ]);
    let tar_b = tar_of(&[
        ("big", &big),
        ("e/", b""),
        ("e/mid", &mid),
        ("own", &noise(4, 7000)),
    ]);
    let a = s.import_layer(&["--id", &id("dedupa")], &tar_a);
    let b = s.import_layer(&["--id", &id("dedupb")], &tar_b);
    s.ok(&["create-image", "--id", &id("imga"), &a]);
    s.ok(&["create-image", "--id", &id("imgb"), &b]);
    (a, b, tar_b)
}

#[test]
fn dedup_shares_identical_files_of_images_on_btrfs() {
    let s = Scratch::new();
    let _fs = btrfs_graph(&s);
    let (a, b, tar_b) = two_images(&s);
    // A layer no image uses is not looked at.
    let loose = s.import_layer(&["--id", &id("loose")], &tar_of(&[("big", &noise(1, BIG))]));
    let expected = (BIG + MID) as u64;
    assert_ne!(
        extents(&layer_file(&s, &a, "big")).0,
        extents(&layer_file(&s, &b, "big")).0
    );

    assert_eq!(s.ok(&["dedup"]), format!("Deduplicated {expected} bytes\n"));
    for (x, y) in [("big", "big"), ("d/mid", "e/mid")] {
        let (ea, shared_a) = extents(&layer_file(&s, &a, x));
        let (eb, shared_b) = extents(&layer_file(&s, &b, y));
        assert_eq!(ea, eb, "{x} and {y} share their extents");
        assert!(shared_a && shared_b, "{x}, {y} marked shared");
    }
    assert!(
        !extents(&layer_file(&s, &loose, "big")).1,
        "loose layer untouched"
    );
    assert!(
        !extents(&layer_file(&s, &b, "own")).1,
        "unique file untouched"
    );
    // Contents unchanged: the layer re-creates its archive byte for byte, and check agrees.
    assert_eq!(
        s.run(&["diff", "-u", &b]).stdout,
        tar_b,
        "diff of the deduplicated layer"
    );
    assert_eq!(s.ok(&["check"]), "");

    // Already shared extents count again (upstream's result includes earlier runs).
    for method in ["crc", "size", "sha256"] {
        assert_eq!(
            s.ok(&["dedup", "-j", "--hash-method", method]),
            format!("{{\"Deduped\":{expected}}}\n"),
            "{method}"
        );
    }
}

#[test]
fn dedup_on_a_filesystem_without_reflinks_reports_nothing_shared() {
    if crate::DRIVER == "btrfs" {
        // The btrfs driver refuses a graph root that is not on btrfs, so it never runs
        // on a filesystem without reflinks.
        eprintln!("dedup on tmpfs: the btrfs driver needs btrfs; skipped");
        return;
    }
    let s = Scratch::new();
    let _fs = tmpfs_graph(&s);
    let (a, b, _) = two_images(&s);
    assert_eq!(s.ok(&["dedup"]), "Deduplicated 0 bytes\n");
    assert_eq!(
        s.ok(&["dedup", "--json", "--hash-method", "sha256"]),
        "{\"Deduped\":0}\n"
    );
    assert_eq!(
        std::fs::read(layer_file(&s, &a, "big")).unwrap(),
        std::fs::read(layer_file(&s, &b, "big")).unwrap()
    );
}

#[test]
fn dedup_of_an_empty_store_and_a_bad_hash_method() {
    let s = Scratch::new();
    assert_eq!(s.ok(&["dedup"]), "Deduplicated 0 bytes\n");
    let o = s.fails(&["dedup", "--hash-method", "md5"]);
    assert_eq!(o.stderr, "invalid hash method: md5\n");
    assert_eq!(o.out(), "");
}
