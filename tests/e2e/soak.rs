//! Soak (issue #13, item 6): several `storage` processes run random operations on one store
//! for a bounded time (the mixed workload of [`crate::mixed_go`]: layers imported, created
//! and deleted, images, containers, names, mounts), and a random tenth of the commands are
//! SIGKILLed at a random moment. Afterwards the next command cleans up what the killed ones
//! left, and the store must hold: every command that finished succeeded or failed with one
//! of the expected lines, nothing a finished command made is lost, nothing is there that no
//! command could have made, no name is on two records of a kind, the JSON files parse, and
//! `check` passes (ours, and upstream 1.60's when the reference binary is there).
//!
//! A `delete-container` killed after it marked the container's layer for removal and before
//! it removed the container record is finished by the next command's crash cleanup (the
//! container goes with its layer); a container left pointing at no layer is a problem
//! (upstream 1.60 leaves one in that window).
//!
//! `STORAGE_SOAK_SECONDS` sets the duration (default 15 s, so that a plain `cargo test` stays
//! short); `STORAGE_TEST_SEED` the seeds. A long run:
//!
//! ```sh
//! STORAGE_SOAK_SECONDS=600 cargo test -p storage-cli --test e2e soak -- --nocapture
//! STORAGE_SOAK_SECONDS=600 cargo test -p storage-cli --test e2e-vfs soak -- --nocapture
//! ```

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::{reference_binary, Scratch, STORAGE};
use crate::mixed_go::{
    account, base_seed, check_passes, explain, figures, worker_seed, Known, Ledger, Tool, Worker,
};

/// Processes at once.
const WORKERS: usize = 4;
/// Out of 100, how many commands are killed.
const KILL_PERCENT: usize = 10;

fn duration() -> Duration {
    let seconds = std::env::var("STORAGE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(15);
    Duration::from_secs(seconds)
}

#[test]
fn soak_with_random_kills_ends_clean() {
    let ours = Tool {
        binary: PathBuf::from(STORAGE),
        label: "ours",
    };
    let s = Scratch::new();
    s.ok(&["layers"]);
    let known = Mutex::new(Known::default());
    let base = base_seed();
    let length = duration();
    let started = Instant::now();
    let workers: Vec<Worker> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|n| {
                let seed = worker_seed(base, n);
                eprintln!("soak worker {n}: seed {seed:#018x}");
                let (s, known, ours) = (&s, &known, ours.clone());
                scope.spawn(move || {
                    let mut w = Worker::new(n, ours, s, known, seed, KILL_PERCENT);
                    while started.elapsed() < length {
                        w.step();
                    }
                    w.unmount_all();
                    w
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran_for = started.elapsed();

    // The next command cleans up what the killed ones left (incomplete layers, staged
    // imports); then nothing may be missing, doubled or inconsistent.
    let cleanup = s.run(&["layers"]);
    let ledgers: Vec<&Ledger> = workers.iter().map(|w| &w.ledger).collect();
    let mut problems: Vec<String> = ledgers.iter().flat_map(|l| l.problems.clone()).collect();
    if cleanup.code != 0 || !cleanup.stderr.is_empty() {
        problems.push(format!("the first command after the run: {cleanup:?}"));
    }
    let mut gaps = Vec::new();
    problems.extend(account(&s, &ledgers, &mut gaps));
    let gap_count = gaps.len();
    problems.append(&mut gaps);
    check_passes(&ours, &s, &mut problems);
    if let Some(go) = reference_binary() {
        check_passes(
            &Tool {
                binary: go,
                label: "go",
            },
            &s,
            &mut problems,
        );
    }
    eprintln!(
        "soak on {} for {:.0?} ({WORKERS} processes, {KILL_PERCENT}% killed): {}; {} problems in all; \
         {} of them containers left pointing at no layer",
        crate::DRIVER,
        ran_for,
        figures(&ledgers),
        problems.len(),
        gap_count,
    );
    assert!(problems.is_empty(), "{}", explain(&problems, &ledgers));
}
