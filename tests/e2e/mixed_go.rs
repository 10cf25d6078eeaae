//! Go and Rust on one store (issue #13, item 5): processes of `storage` and of upstream's
//! `containers-storage` 1.60 (the reference binary) run random mixed operations on one store
//! at once — create, import and delete layers, images and containers, add and set names,
//! mount and unmount. Every command either succeeds or fails with one line of a kind another
//! process can cause ([`ACCEPTABLE`]); nothing is lost or doubled (each worker keeps a ledger
//! of what it created and deleted, and the survivors are exactly what the ledgers say); no
//! name is on two records of a kind; the JSON files parse; and both binaries' `check` pass.
//!
//! The workload (a worker, its ledger and the final accounting) is shared with the soak test
//! (`soak.rs`), which adds random SIGKILLs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use crate::harness::{reference_binary, tar_of, Output, Scratch, STORAGE};

/// Processes of each binary.
const PER_BINARY: usize = 4;
/// Operations each process runs.
const OPERATIONS: usize = 50;
/// Names of each kind the workers fight over (add-names moves them, a create with one of
/// them may find it in use).
pub(crate) const SHARED_NAMES: usize = 3;

/// The failures another process can cause, by category: a failed command must print one
/// line containing one of these (upstream's error texts, which `storage` shares).
pub(crate) const ACCEPTABLE: &[(&str, &str)] = &[
    ("name in use", "that name is already in use"),
    ("in use", "layer has children"),
    ("in use", "layer is in use by an image"),
    ("in use", "layer is in use by a container"),
    ("in use", "image is in use by a container"),
    ("not known", "layer not known"),
    ("not known", "image not known"),
    ("not known", "container not known"),
    ("not known", "identifier is not a layer"),
    ("not known", "identifier is not an image"),
    ("not known", "identifier is not a container"),
];

/// A small deterministic PRNG (splitmix64): one per worker, seeded from the run's seed and
/// the worker's number, so a failing run can be told apart by its seeds.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `num`/`den`.
    pub(crate) fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
}

/// The seed of worker `n` of a run seeded with `base` (`STORAGE_TEST_SEED` when set).
pub(crate) fn worker_seed(base: u64, n: usize) -> u64 {
    Rng::new(base ^ (n as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)).next()
}

/// The run's base seed: `$STORAGE_TEST_SEED` (decimal or 0x-hex), else a fixed one.
pub(crate) fn base_seed() -> u64 {
    std::env::var("STORAGE_TEST_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(0x5EED_0013)
}

/// One binary the workers run.
#[derive(Clone, Debug)]
pub(crate) struct Tool {
    /// Its path.
    pub(crate) binary: PathBuf,
    /// `ours` or `go`, for the messages.
    pub(crate) label: &'static str,
}

/// What a run of a command gave: its output, or nothing when the worker killed it.
pub(crate) enum Ran {
    Done(Output),
    Killed,
}

/// How long one command may take before it counts as hung: `timeout` kills it, and the
/// worker reports a problem instead of stalling the test.
const HANG_LIMIT_SECS: &str = "300";

/// Runs `tool` on the store of `s`; with `kill_after`, SIGKILLs it that long after it
/// started unless it has finished by then.
pub(crate) fn run_tool(
    tool: &Tool,
    s: &Scratch,
    args: &[&str],
    stdin: &[u8],
    kill_after: Option<Duration>,
) -> Ran {
    // Under `timeout` only when no kill is planned: a kill must reach the binary itself.
    let mut cmd = if kill_after.is_none() {
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", HANG_LIMIT_SECS]).arg(&tool.binary);
        c
    } else {
        Command::new(&tool.binary)
    };
    cmd.args(s.globals())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting a binary");
    if let Some(mut input) = child.stdin.take() {
        // A command that does not read its input, or that was killed, closes the pipe.
        let _ = input.write_all(stdin);
    }
    let mut killed = false;
    if let Some(delay) = kill_after {
        std::thread::sleep(delay);
        if child.try_wait().expect("polling a child").is_none() {
            let _ = child.kill();
            killed = true;
        }
    }
    let out = child.wait_with_output().expect("waiting for a binary");
    if killed {
        return Ran::Killed;
    }
    Ran::Done(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The kinds of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Layer,
    Image,
    Container,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Layer => "layer",
            Kind::Image => "image",
            Kind::Container => "container",
        }
    }
}

/// What the workers know of the store, shared between them so that they pick each other's
/// records as targets (an entry may be stale: another worker may have deleted it since).
#[derive(Default)]
pub(crate) struct Known {
    /// Layers by ID, with the parent each was created on.
    layers: BTreeMap<String, Option<String>>,
    /// Images by ID, with their top layer.
    images: BTreeMap<String, String>,
    /// Containers by ID.
    containers: BTreeSet<String>,
    /// The own name each record was created with (none for a contested name).
    names: BTreeMap<String, String>,
}

impl Known {
    fn pick<'a>(rng: &mut Rng, ids: impl ExactSizeIterator<Item = &'a String>) -> Option<String> {
        let len = ids.len();
        if len == 0 {
            return None;
        }
        let n = rng.below(len);
        ids.into_iter().nth(n).cloned()
    }

    fn forget(&mut self, kind: Kind, id: &str) {
        match kind {
            Kind::Layer => {
                self.layers.remove(id);
            }
            Kind::Image => {
                self.images.remove(id);
            }
            Kind::Container => {
                self.containers.remove(id);
            }
        }
    }

    /// The layers a `delete-image` of `image` may remove: its top layer and that layer's
    /// ancestors.
    fn chain_of(&self, image: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut next = self.images.get(image).cloned();
        while let Some(layer) = next {
            next = self.layers.get(&layer).cloned().flatten();
            chain.push(layer);
        }
        chain
    }
}

/// What one worker did and saw.
#[derive(Default, Debug)]
pub(crate) struct Ledger {
    /// Records it created, with the own name each carries (empty for none).
    pub(crate) created: Vec<(Kind, String, String)>,
    /// Records a command of its deleted (layers removed by `delete-image` included).
    pub(crate) deleted: Vec<(Kind, String)>,
    /// Records a killed command may have deleted.
    pub(crate) maybe_deleted: Vec<(Kind, String)>,
    /// Creations killed before they said what they made, by kind (a container brings a
    /// layer too).
    pub(crate) maybe_created: BTreeMap<Kind, usize>,
    /// Containers it mounted and has not unmounted.
    pub(crate) mounted: Vec<String>,
    /// Commands run, commands that succeeded, commands killed.
    pub(crate) operations: usize,
    pub(crate) succeeded: usize,
    pub(crate) kills: usize,
    /// Acceptable failures by category.
    pub(crate) refused: BTreeMap<&'static str, usize>,
    /// Everything else: a failure of the test.
    pub(crate) problems: Vec<String>,
    /// Every command and what it gave, in order, for explaining a problem.
    pub(crate) trace: Vec<String>,
}

/// The outcome of one command, judged.
enum Verdict {
    Ok(Output),
    Refused,
    Killed,
    Problem,
}

/// The order in which commands started, across workers (for the traces).
static SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The start order of a trace line (`#N worker ...`).
fn sequence_of(trace: &str) -> usize {
    trace[1..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The problems, each with the commands of every worker that named the IDs it names.
pub(crate) fn explain(problems: &[String], ledgers: &[&Ledger]) -> String {
    let mut text = String::new();
    for p in problems {
        text.push_str(p);
        text.push('\n');
        let ids: Vec<&str> = p
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == 64)
            .collect();
        let mut lines: Vec<(usize, &String)> = ledgers
            .iter()
            .flat_map(|l| l.trace.iter())
            .filter(|t| ids.iter().any(|id| t.contains(id)))
            .map(|t| (sequence_of(t), t))
            .collect();
        lines.sort();
        // Commands killed after the record appeared: what they did is not in the trace.
        let since = lines.first().map(|(seq, _)| *seq).unwrap_or(0);
        let mut killed: Vec<(usize, &String)> = ledgers
            .iter()
            .flat_map(|l| l.trace.iter())
            .filter(|t| t.ends_with(": killed"))
            .map(|t| (sequence_of(t), t))
            .filter(|(seq, _)| *seq > since)
            .collect();
        killed.sort();
        for (_, t) in lines {
            text.push_str("    ");
            text.push_str(t);
            text.push('\n');
        }
        if !killed.is_empty() {
            text.push_str("  commands killed since:\n");
        }
        for (_, t) in killed {
            text.push_str("    ");
            text.push_str(t);
            text.push('\n');
        }
    }
    text
}

/// A worker: runs operations of one binary on one store.
pub(crate) struct Worker<'a> {
    pub(crate) number: usize,
    pub(crate) tool: Tool,
    pub(crate) store: &'a Scratch,
    pub(crate) known: &'a Mutex<Known>,
    pub(crate) rng: Rng,
    pub(crate) ledger: Ledger,
    /// Out of 100: how many commands get SIGKILLed after a random delay (the soak).
    pub(crate) kill_percent: usize,
    serial: usize,
}

impl<'a> Worker<'a> {
    /// A worker numbered `number` with its own seed.
    pub(crate) fn new(
        number: usize,
        tool: Tool,
        store: &'a Scratch,
        known: &'a Mutex<Known>,
        seed: u64,
        kill_percent: usize,
    ) -> Worker<'a> {
        Worker {
            number,
            tool,
            store,
            known,
            rng: Rng::new(seed),
            ledger: Ledger::default(),
            kill_percent,
            serial: 0,
        }
    }

    fn own_name(&mut self, kind: Kind) -> String {
        self.serial += 1;
        format!("w{}-{}-{}", self.number, kind.word(), self.serial)
    }

    fn shared_name(&mut self, kind: Kind) -> String {
        format!("shared-{}-{}", kind.word(), self.rng.below(SHARED_NAMES))
    }

    /// Runs one command and judges it.
    fn command(&mut self, args: &[&str], stdin: &[u8]) -> Verdict {
        self.ledger.operations += 1;
        let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kill_after = (self.kill_percent > 0 && self.rng.chance(self.kill_percent, 100))
            .then(|| Duration::from_micros(self.rng.next() % 40_000));
        let o = match run_tool(&self.tool, self.store, args, stdin, kill_after) {
            Ran::Killed => {
                self.ledger.kills += 1;
                self.ledger.trace.push(format!(
                    "#{seq} worker {} ({}) {args:?}: killed",
                    self.number, self.tool.label
                ));
                return Verdict::Killed;
            }
            Ran::Done(o) => o,
        };
        self.ledger.trace.push(format!(
            "#{seq} worker {} ({}) {args:?}: {} {:?} {:?}",
            self.number,
            self.tool.label,
            o.code,
            o.out(),
            o.stderr
        ));
        if o.code == 0 {
            self.ledger.succeeded += 1;
            return Verdict::Ok(o);
        }
        let line = o.stderr.trim_end();
        let category = (o.code == 1 && !line.is_empty() && !line.contains('\n'))
            .then(|| ACCEPTABLE.iter().find(|(_, text)| line.contains(text)))
            .flatten();
        match category {
            Some((category, _)) => {
                *self.ledger.refused.entry(category).or_insert(0) += 1;
                Verdict::Refused
            }
            None => {
                self.ledger.problems.push(format!(
                    "worker {} ({}): {args:?} exited {}: {:?}",
                    self.number, self.tool.label, o.code, o.stderr
                ));
                Verdict::Problem
            }
        }
    }

    /// The ID a create command printed first, or a problem.
    fn printed_id(&mut self, args: &[&str], o: &Output) -> Option<String> {
        let id = o
            .out()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(id)
        } else {
            self.ledger.problems.push(format!(
                "worker {} ({}): {args:?} printed no ID: {o:?}",
                self.number, self.tool.label
            ));
            None
        }
    }

    fn created(
        &mut self,
        kind: Kind,
        args: &[&str],
        verdict: Verdict,
        name: &str,
    ) -> Option<String> {
        match verdict {
            Verdict::Ok(o) => {
                let id = self.printed_id(args, &o)?;
                self.ledger
                    .created
                    .push((kind, id.clone(), name.to_string()));
                Some(id)
            }
            Verdict::Killed => {
                *self.ledger.maybe_created.entry(kind).or_insert(0) += 1;
                if kind == Kind::Container {
                    *self.ledger.maybe_created.entry(Kind::Layer).or_insert(0) += 1;
                }
                None
            }
            Verdict::Refused | Verdict::Problem => None,
        }
    }

    fn pick(&mut self, kind: Kind) -> Option<String> {
        let known = self.known.lock().unwrap();
        match kind {
            Kind::Layer => Known::pick(&mut self.rng, known.layers.keys()),
            Kind::Image => Known::pick(&mut self.rng, known.images.keys()),
            Kind::Container => Known::pick(&mut self.rng, known.containers.iter()),
        }
    }

    /// Runs one random operation.
    pub(crate) fn step(&mut self) {
        match self.rng.below(20) {
            0..=2 => self.import_layer(),
            3..=4 => self.create_layer(),
            5 => self.contested_layer(),
            6..=7 => self.delete(Kind::Layer),
            8..=9 => self.create_image(),
            10 => self.delete(Kind::Image),
            11..=12 => self.create_container(),
            13 => self.delete(Kind::Container),
            14 => self.add_name(),
            15 => self.set_names(),
            16..=17 => self.mount(),
            _ => self.unmount(),
        }
    }

    fn maybe_parent(&mut self) -> Option<String> {
        if self.rng.chance(1, 2) {
            self.pick(Kind::Layer)
        } else {
            None
        }
    }

    fn import_layer(&mut self) {
        let name = self.own_name(Kind::Layer);
        let parent = self.maybe_parent();
        let size = self.rng.below(16 << 10);
        let fill = self.rng.next() as u8;
        let data = vec![fill; size];
        let dir = format!("{name}/");
        let file = format!("{name}/data");
        let tar = tar_of(&[(&dir, b""), (&file, &data)]);
        let mut args = vec!["import-layer", "-n", &name];
        args.extend(parent.as_deref());
        let verdict = self.command(&args, &tar);
        if let Some(id) = self.created(Kind::Layer, &args, verdict, &name) {
            let mut known = self.known.lock().unwrap();
            known.layers.insert(id.clone(), parent);
            known.names.insert(id, name);
        }
    }

    fn create_layer(&mut self) {
        let name = self.own_name(Kind::Layer);
        let parent = self.maybe_parent();
        let mut args = vec!["create-layer", "-n", &name];
        args.extend(parent.as_deref());
        let verdict = self.command(&args, b"");
        if let Some(id) = self.created(Kind::Layer, &args, verdict, &name) {
            let mut known = self.known.lock().unwrap();
            known.layers.insert(id.clone(), parent);
            known.names.insert(id, name);
        }
    }

    /// A layer under a shared name: whoever comes first gets it, the others are told the
    /// name is in use.
    fn contested_layer(&mut self) {
        let name = self.shared_name(Kind::Layer);
        let args = ["create-layer", "-n", &name];
        let verdict = self.command(&args, b"");
        if let Some(id) = self.created(Kind::Layer, &args, verdict, "") {
            self.known.lock().unwrap().layers.insert(id, None);
        }
    }

    fn create_image(&mut self) {
        let Some(layer) = self.pick(Kind::Layer) else {
            return self.create_layer();
        };
        let name = self.own_name(Kind::Image);
        let args = ["create-image", "-n", &name, &layer];
        let verdict = self.command(&args, b"");
        if let Some(id) = self.created(Kind::Image, &args, verdict, &name) {
            let mut known = self.known.lock().unwrap();
            known.images.insert(id.clone(), layer);
            known.names.insert(id, name);
        }
    }

    fn create_container(&mut self) {
        let Some(image) = self.pick(Kind::Image) else {
            return self.create_image();
        };
        let name = self.own_name(Kind::Container);
        let args = ["create-container", "-n", &name, &image];
        let verdict = self.command(&args, b"");
        if let Some(id) = self.created(Kind::Container, &args, verdict, &name) {
            let mut known = self.known.lock().unwrap();
            known.containers.insert(id.clone());
            known.names.insert(id, name);
        }
    }

    fn delete(&mut self, kind: Kind) {
        let Some(id) = self.pick(kind) else {
            return self.create_layer();
        };
        let command = format!("delete-{}", kind.word());
        let args = [command.as_str(), &id];
        let chain = self.known.lock().unwrap().chain_of(&id);
        match self.command(&args, b"") {
            Verdict::Ok(o) => {
                self.ledger.deleted.push((kind, id.clone()));
                let mut known = self.known.lock().unwrap();
                known.forget(kind, &id);
                if kind == Kind::Image {
                    // `IMAGE: LAYER` on stderr for each layer the image took with it (both
                    // binaries print them there).
                    for line in o.stderr.lines() {
                        if let Some((_, layer)) = line.split_once(": ") {
                            self.ledger.deleted.push((Kind::Layer, layer.to_string()));
                            known.forget(Kind::Layer, layer);
                        }
                    }
                }
            }
            Verdict::Killed => {
                self.ledger.maybe_deleted.push((kind, id));
                if kind == Kind::Image {
                    for layer in chain {
                        self.ledger.maybe_deleted.push((Kind::Layer, layer));
                    }
                }
            }
            Verdict::Refused | Verdict::Problem => {}
        }
    }

    fn random_record(&mut self) -> Option<(Kind, String)> {
        let kind = [Kind::Layer, Kind::Image, Kind::Container][self.rng.below(3)];
        self.pick(kind).map(|id| (kind, id))
    }

    /// Adds a shared name, which moves it from whichever record of the kind had it.
    fn add_name(&mut self) {
        let Some((kind, id)) = self.random_record() else {
            return self.create_layer();
        };
        let name = self.shared_name(kind);
        self.command(&["add-names", "-n", &name, &id], b"");
    }

    /// Sets a record's names to its own name and a shared one.
    fn set_names(&mut self) {
        let Some((kind, id)) = self.random_record() else {
            return self.create_layer();
        };
        let shared = self.shared_name(kind);
        let own = self
            .known
            .lock()
            .unwrap()
            .names
            .get(&id)
            .cloned()
            .unwrap_or_default();
        let mut args = vec!["set-names"];
        if !own.is_empty() {
            args.extend(["-n", own.as_str()]);
        }
        args.extend(["-n", shared.as_str(), id.as_str()]);
        self.command(&args, b"");
    }

    fn mount(&mut self) {
        let Some(id) = self.pick(Kind::Container) else {
            return self.create_container();
        };
        if let Verdict::Ok(_) = self.command(&["mount", &id], b"") {
            self.ledger.mounted.push(id);
        }
    }

    fn unmount(&mut self) {
        if self.ledger.mounted.is_empty() {
            return self.mount();
        }
        let n = self.rng.below(self.ledger.mounted.len());
        let id = self.ledger.mounted.swap_remove(n);
        self.command(&["unmount", &id], b"");
    }

    /// Unmounts whatever it still has mounted.
    pub(crate) fn unmount_all(&mut self) {
        let kill_percent = std::mem::replace(&mut self.kill_percent, 0);
        while let Some(id) = self.ledger.mounted.pop() {
            self.command(&["unmount", &id], b"");
        }
        self.kill_percent = kill_percent;
    }
}

/// The records of a kind as `storage <kind>s -j` lists them.
pub(crate) fn listing(s: &Scratch, kind: Kind) -> Vec<serde_json::Value> {
    let out = s.ok(&[&format!("{}s", kind.word()), "-j"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array().cloned().unwrap_or_default()
}

fn id_of(r: &serde_json::Value) -> String {
    r["id"].as_str().unwrap().to_string()
}

/// Parses a JSON file of the store that exists; a missing one is fine (nothing written).
pub(crate) fn parses(path: &Path, problems: &mut Vec<String>) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        problems.push(format!("{} is not JSON: {e}", path.display()));
    }
}

/// The records' JSON files and the mount counts parse.
pub(crate) fn json_files_parse(s: &Scratch, problems: &mut Vec<String>) {
    let d = crate::DRIVER;
    for path in [
        s.graph().join(format!("{d}-layers/layers.json")),
        s.graph().join(format!("{d}-images/images.json")),
        s.graph().join(format!("{d}-containers/containers.json")),
        s.run_root().join(format!("{d}-layers/mountpoints.json")),
        s.run_root()
            .join(format!("{d}-containers/volatile-containers.json")),
    ] {
        parses(&path, problems);
    }
}

/// Compares the store with the workers' ledgers; returns the problems found. Exact when no
/// command was killed; with kills, a record a killed command may have made or removed may
/// be there or not, but nothing a finished command made and no finished command removed may
/// be missing, and nothing may be there that no command could have made.
///
/// Known gaps (below) go to `known` instead of the problems.
pub(crate) fn account(s: &Scratch, ledgers: &[&Ledger], known: &mut Vec<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut created: BTreeMap<String, (Kind, String)> = BTreeMap::new();
    let mut deleted: BTreeMap<String, Kind> = BTreeMap::new();
    let mut maybe_deleted: BTreeSet<String> = BTreeSet::new();
    let mut maybe_created: BTreeMap<Kind, usize> = BTreeMap::new();
    for ledger in ledgers {
        for (kind, id, name) in &ledger.created {
            if created.insert(id.clone(), (*kind, name.clone())).is_some() {
                problems.push(format!("{} {id} was created twice", kind.word()));
            }
        }
        for (kind, id) in &ledger.deleted {
            if deleted.insert(id.clone(), *kind).is_some() {
                problems.push(format!("{} {id} was deleted twice", kind.word()));
            }
        }
        maybe_deleted.extend(ledger.maybe_deleted.iter().map(|(_, id)| id.clone()));
        for (kind, n) in &ledger.maybe_created {
            *maybe_created.entry(*kind).or_insert(0) += n;
        }
    }
    for (id, kind) in &deleted {
        // Container layers are not in the ledgers; image deletions name only layers.
        if *kind != Kind::Layer && !created.contains_key(id) {
            problems.push(format!("{} {id} deleted but never created", kind.word()));
        }
    }

    let layers = listing(s, Kind::Layer);
    let layer_ids: BTreeSet<String> = layers.iter().map(id_of).collect();
    let containers = listing(s, Kind::Container);
    let container_layers: BTreeSet<String> = containers
        .iter()
        .map(|c| c["layer"].as_str().unwrap().to_string())
        .collect();
    for kind in [Kind::Layer, Kind::Image, Kind::Container] {
        let records = match kind {
            Kind::Layer => layers.clone(),
            Kind::Image => listing(s, kind),
            Kind::Container => containers.clone(),
        };
        let present: BTreeMap<String, &serde_json::Value> =
            records.iter().map(|r| (id_of(r), r)).collect();
        if present.len() != records.len() {
            problems.push(format!("a {} is listed twice", kind.word()));
        }
        // Everything made and not removed is there, with its own name.
        for (id, (k, name)) in created.iter().filter(|(_, (k, _))| *k == kind) {
            let gone = deleted.contains_key(id);
            let maybe_gone = maybe_deleted.contains(id);
            match present.get(id) {
                None if !gone && !maybe_gone => {
                    problems.push(format!("{} {id} ({name}) is lost", k.word()));
                }
                Some(_) if gone => {
                    problems.push(format!("{} {id} was deleted but is still there", k.word()));
                }
                Some(r) if !name.is_empty() => {
                    let names = r["names"].as_array().cloned().unwrap_or_default();
                    if !names.iter().any(|n| n.as_str() == Some(name)) {
                        problems.push(format!("{} {id} lost its name {name}: {r}", k.word()));
                    }
                }
                _ => {}
            }
        }
        // Nothing is there that no command made.
        let unexplained = present
            .keys()
            .filter(|id| !created.contains_key(*id))
            .filter(|id| !(kind == Kind::Layer && container_layers.contains(*id)))
            .count();
        let allowed = maybe_created.get(&kind).copied().unwrap_or(0);
        if unexplained > allowed {
            problems.push(format!(
                "{unexplained} {}s that no command made (at most {allowed} killed creations)",
                kind.word()
            ));
        }
        // No name on two records of a kind.
        let mut holders: BTreeMap<String, usize> = BTreeMap::new();
        for r in &records {
            for n in r["names"].as_array().cloned().unwrap_or_default() {
                *holders
                    .entry(n.as_str().unwrap_or_default().to_string())
                    .or_insert(0) += 1;
            }
        }
        for (name, count) in holders.into_iter().filter(|(_, c)| *c > 1) {
            problems.push(format!("{} name {name} is on {count} records", kind.word()));
        }
        // Every reference points at a record that exists.
        for r in &records {
            let parent = match kind {
                Kind::Layer => r["parent"].as_str(),
                Kind::Image | Kind::Container => r["layer"].as_str(),
            };
            if let Some(p) = parent {
                if !layer_ids.contains(p) {
                    let what = format!("{} {} points at missing layer {p}", kind.word(), id_of(r));
                    // A `delete-container` killed after its layer was marked for removal
                    // and before the container record went: the next command's crash
                    // cleanup removes the layer and nothing removes the container (the same
                    // window as upstream's, which deletes both at once). Known; reported.
                    if kind == Kind::Container && maybe_deleted.contains(&id_of(r)) {
                        known.push(what);
                    } else {
                        problems.push(what);
                    }
                }
            }
        }
    }
    json_files_parse(s, &mut problems);
    problems
}

/// `check` of a binary on the store: exit 0 and nothing reported.
pub(crate) fn check_passes(tool: &Tool, s: &Scratch, problems: &mut Vec<String>) {
    match run_tool(tool, s, &["check"], b"", None) {
        Ran::Done(o) if o.code == 0 && o.stdout.is_empty() && o.stderr.is_empty() => {}
        Ran::Done(o) => problems.push(format!("{} check: {o:?}", tool.label)),
        Ran::Killed => unreachable!("check is never killed"),
    }
}

/// Mount counts left above zero after every worker unmounted what it mounted.
fn mounts_left(s: &Scratch) -> Vec<String> {
    let path = s
        .run_root()
        .join(format!("{}-layers/mountpoints.json", crate::DRIVER));
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["count"].as_u64().unwrap_or(0) > 0)
        .map(|m| m.to_string())
        .collect()
}

/// Prints the figures of a run of workers.
pub(crate) fn figures(ledgers: &[&Ledger]) -> String {
    let sum = |f: &dyn Fn(&Ledger) -> usize| ledgers.iter().map(|l| f(l)).sum::<usize>();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for l in ledgers {
        for (k, v) in &l.refused {
            *refused.entry(k).or_insert(0) += v;
        }
    }
    format!(
        "{} operations: {} succeeded, refused {refused:?}, {} killed, {} problems",
        sum(&|l| l.operations),
        sum(&|l| l.succeeded),
        sum(&|l| l.kills),
        sum(&|l| l.problems.len()),
    )
}

#[test]
fn go_and_rust_processes_share_one_store() {
    let Some(go) = reference_binary() else {
        eprintln!("go_and_rust_processes_share_one_store: no reference binary; skipped");
        return;
    };
    let tools = [
        Tool {
            binary: PathBuf::from(STORAGE),
            label: "ours",
        },
        Tool {
            binary: go,
            label: "go",
        },
    ];
    let s = Scratch::new();
    s.ok(&["layers"]);
    let known = Mutex::new(Known::default());
    let base = base_seed();
    let start = Barrier::new(2 * PER_BINARY);
    let workers: Vec<Worker> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2 * PER_BINARY)
            .map(|n| {
                let tool = tools[n % 2].clone();
                let seed = worker_seed(base, n);
                eprintln!("worker {n} ({}): seed {seed:#018x}", tool.label);
                let (s, known, start) = (&s, &known, &start);
                scope.spawn(move || {
                    let mut w = Worker::new(n, tool, s, known, seed, 0);
                    start.wait();
                    for _ in 0..OPERATIONS {
                        w.step();
                    }
                    w.unmount_all();
                    w
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let ledgers: Vec<&Ledger> = workers.iter().map(|w| &w.ledger).collect();
    let mut problems: Vec<String> = ledgers.iter().flat_map(|l| l.problems.clone()).collect();
    let mut known = Vec::new();
    problems.extend(account(&s, &ledgers, &mut known));
    // Without kills there is no known gap.
    problems.extend(known);
    for m in mounts_left(&s) {
        problems.push(format!("still counted as mounted: {m}"));
    }
    for tool in &tools {
        check_passes(tool, &s, &mut problems);
    }
    let survivors = [Kind::Layer, Kind::Image, Kind::Container].map(|k| listing(&s, k).len());
    eprintln!(
        "mixed Go/Rust on {}: {}; {} problems after the run; survivors: {} layers, {} images, {} containers",
        crate::DRIVER,
        figures(&ledgers),
        problems.len(),
        survivors[0],
        survivors[1],
        survivors[2],
    );
    assert!(problems.is_empty(), "{}", explain(&problems, &ledgers));
}
