//! What layer, image and container stores share: records with an ID and unique names,
//! kept in one or two JSON files (stable and volatile), looked up by ID, name or ID prefix.

use std::collections::{HashMap, HashSet};
use std::ops::DerefMut;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::store_dir::DirFile;

/// Which file of its store a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The persistent file (`layers.json`, `images.json`, `containers.json`).
    Stable,
    /// The volatile file, written without fsync (`volatile-*.json`).
    Volatile,
    /// The split image store's file (`<imagestore>/<drv>-layers/layers.json`).
    ImageStore,
}

/// A record kept in a store's JSON file.
pub trait Record: Serialize + DeserializeOwned + Clone {
    /// The record's ID.
    fn id(&self) -> &str;
    /// The record's names.
    fn names(&self) -> &[String];
    /// The record's names, to change.
    fn names_mut(&mut self) -> &mut Vec<String>;
    /// Which file the record lives in.
    fn location(&self) -> Location;
    /// Marks which file the record lives in.
    fn set_location(&mut self, location: Location);
    /// Digests the record can also be found by, as a `sha256:` prefix (an image's
    /// manifest digests, a layer's diff and blob digests); the ID itself counts as
    /// `sha256:<ID>` when it is a digest's hex.
    fn digests(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The error of a new record asking for `name`, which the record `holder` (an ID) has:
    /// upstream's bare `ErrDuplicateName` unless its kind words it.
    fn name_in_use(_name: &str, _holder: &str) -> StoreError {
        StoreError::DuplicateName
    }
}

/// What looking a name up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The index of the one record it names.
    Found(usize),
    /// A prefix of several records' IDs or digests: their IDs.
    Ambiguous(Vec<String>),
    /// Nothing.
    Missing,
}

/// A prefix that named several records in one lookup: the prefix and their IDs.
pub type Ambiguity = (String, Vec<String>);

/// The records of one store, in creation order (the order of the file), with an index of
/// their IDs and names.
///
/// Reads go through the slice it dereferences to; the index is built on the first lookup
/// after a load and kept while records are only appended. Anything that may change a
/// record in place (`&mut` access, `records[i] = ...`) drops the index, so it can never
/// answer for a record that changed: a command that edits then looks up pays one rebuild,
/// never a scan per lookup.
///
/// The JSON of the records last saved is kept likewise, for the first records that have
/// not changed since: a command that saves twice (a new layer's record goes to disk before
/// the driver runs, then complete) serializes the records before it once.
#[derive(Debug)]
pub struct Records<T> {
    items: Vec<T>,
    index: OnceLock<Index>,
    saved: SavedJson,
}

/// The JSON of the first `ends.len()` records as the start of a JSON list, `[` and the
/// records separated by commas: record `i` is `json[ends[i - 1] + 1..ends[i]]` (from 1 for
/// the first). Closed with `]`, it is the file of a set whose records all live in one
/// file, written without a copy.
#[derive(Debug, Default)]
struct SavedJson {
    json: Vec<u8>,
    ends: Vec<usize>,
}

impl SavedJson {
    /// Forgets the JSON of record `pos` and of every record after it.
    fn truncate(&mut self, pos: usize) {
        if pos < self.ends.len() {
            let end = match pos {
                0 => 1,
                _ => self.ends[pos - 1],
            };
            self.json.truncate(end);
            self.ends.truncate(pos);
        }
    }

    fn get(&self, pos: usize) -> &[u8] {
        let start = match pos {
            0 => 1,
            _ => self.ends[pos - 1] + 1,
        };
        &self.json[start..self.ends[pos]]
    }
}

/// A hasher for the maps of IDs and names: a multiply and a rotation per eight bytes (the
/// rustc compiler's FxHash), several times faster than the standard SipHash on the short
/// keys of a store's records. The keys come from the store's own files, whose writers
/// could do worse than make lookups slow.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHash;

/// The state of [`FastHash`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // The tail's length in its top byte (which the tail never fills), so that a
            // tail does not hash as itself followed by zero bytes.
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            w[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// A map keyed by IDs or names, with [`FastHash`].
pub type FastMap<K, V> = HashMap<K, V, FastHash>;

/// A set of IDs or names, with [`FastHash`].
pub type FastSet<K> = HashSet<K, FastHash>;

/// Where each ID and name is: the first record carrying it, as a scan in file order finds
/// it (hand-edited files may repeat an ID; read-only stores may repeat a name).
///
/// Each is a sorted list of (hash of the key, position): one allocation per list, no copy
/// of any key (copies were most of building an index of 20k records, and freeing them as
/// much again). A lookup checks the records at the positions whose hash matches.
#[derive(Debug, Default)]
struct Index {
    ids: Vec<(u64, usize)>,
    names: Vec<(u64, usize)>,
    /// Positions sorted by ID, for prefix lookups; built on the first prefix lookup.
    by_id: OnceLock<Vec<usize>>,
}

fn key_hash(key: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&FastHash, key)
}

/// Inserts `entry` into the sorted `list`.
fn insert_sorted(list: &mut Vec<(u64, usize)>, entry: (u64, usize)) {
    let at = list.partition_point(|e| *e < entry);
    list.insert(at, entry);
}

/// The first position (in file order) among `list`'s entries for `key` whose record
/// `matches`.
fn first_match(list: &[(u64, usize)], key: &str, matches: impl Fn(usize) -> bool) -> Option<usize> {
    let hash = key_hash(key);
    let start = list.partition_point(|e| e.0 < hash);
    list[start..]
        .iter()
        .take_while(|e| e.0 == hash)
        .map(|e| e.1)
        .find(|&pos| matches(pos))
}

impl Index {
    /// The index of `items`.
    fn build<T: Record>(items: &[T]) -> Index {
        let mut ids = Vec::with_capacity(items.len());
        let mut names = Vec::with_capacity(items.len());
        for (pos, record) in items.iter().enumerate() {
            ids.push((key_hash(record.id()), pos));
            names.extend(record.names().iter().map(|n| (key_hash(n), pos)));
        }
        ids.sort_unstable();
        names.sort_unstable();
        Index {
            ids,
            names,
            by_id: OnceLock::new(),
        }
    }

    fn add<T: Record>(&mut self, pos: usize, record: &T) {
        insert_sorted(&mut self.ids, (key_hash(record.id()), pos));
        for name in record.names() {
            insert_sorted(&mut self.names, (key_hash(name), pos));
        }
        self.by_id = OnceLock::new();
    }
}

impl<T> Records<T> {
    /// Appends a record; the index, if built, follows.
    pub fn push(&mut self, record: T)
    where
        T: Record,
    {
        let pos = self.items.len();
        if let Some(index) = self.index.get_mut() {
            index.add(pos, &record);
        }
        self.items.push(record);
    }

    /// Removes and returns the record at `pos` (later records move up).
    pub fn remove(&mut self, pos: usize) -> T {
        self.index = OnceLock::new();
        self.saved.truncate(pos);
        self.items.remove(pos)
    }

    /// Puts `record` in place of the record at `pos`; the records before it keep their
    /// saved JSON.
    pub fn replace(&mut self, pos: usize, record: T) {
        self.index = OnceLock::new();
        self.saved.truncate(pos);
        self.items[pos] = record;
    }

    /// The records as a vector.
    pub fn into_vec(self) -> Vec<T> {
        self.items
    }
}

impl<T: Record> Records<T> {
    /// Serializes the records whose JSON is not kept yet.
    fn serialize_rest(&mut self) {
        if self.saved.json.is_empty() {
            self.saved.json.push(b'[');
        }
        for record in &self.items[self.saved.ends.len()..] {
            if !self.saved.ends.is_empty() {
                self.saved.json.push(b',');
            }
            crate::gojson::append(&mut self.saved.json, record);
            self.saved.ends.push(self.saved.json.len());
        }
    }

    /// Runs `f` on the JSON list of the records `keep` selects, as Go writes a slice of
    /// them: the saved JSON itself when it selects every record.
    fn with_json_list<R>(&mut self, keep: impl Fn(&T) -> bool, f: impl FnOnce(&[u8]) -> R) -> R {
        self.serialize_rest();
        if self.items.iter().all(&keep) {
            self.saved.json.push(b']');
            let result = f(&self.saved.json);
            self.saved.json.pop();
            return result;
        }
        let mut out = Vec::with_capacity(self.saved.json.len() + 2);
        out.push(b'[');
        let mut count = 0;
        for (pos, record) in self.items.iter().enumerate() {
            if keep(record) {
                if count > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(self.saved.get(pos));
                count += 1;
            }
        }
        out.push(b']');
        f(&out)
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::build(&self.items))
    }

    /// The position of the first record with exactly this ID.
    pub fn position_of_id(&self, id: &str) -> Option<usize> {
        first_match(&self.index().ids, id, |pos| self.items[pos].id() == id)
    }

    /// The position of the first record carrying this name.
    pub fn position_of_name(&self, name: &str) -> Option<usize> {
        first_match(&self.index().names, name, |pos| {
            self.items[pos].names().iter().any(|n| n == name)
        })
    }

    /// The positions of the records whose ID starts with `prefix`, in file order.
    pub fn positions_with_id_prefix(&self, prefix: &str) -> Vec<usize> {
        let by_id = self.index().by_id.get_or_init(|| {
            let mut order: Vec<usize> = (0..self.items.len()).collect();
            order.sort_by(|&a, &b| self.items[a].id().cmp(self.items[b].id()));
            order
        });
        let start = by_id.partition_point(|&p| self.items[p].id() < prefix);
        let mut found: Vec<usize> = by_id[start..]
            .iter()
            .copied()
            .take_while(|&p| self.items[p].id().starts_with(prefix))
            .collect();
        found.sort_unstable();
        found
    }
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records {
            items: Vec::new(),
            index: OnceLock::new(),
            saved: SavedJson::default(),
        }
    }
}

impl<T: Clone> Clone for Records<T> {
    fn clone(&self) -> Self {
        self.items.clone().into()
    }
}

impl<T> From<Vec<T>> for Records<T> {
    fn from(items: Vec<T>) -> Self {
        Records {
            items,
            index: OnceLock::new(),
            saved: SavedJson::default(),
        }
    }
}

impl<T> std::ops::Deref for Records<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> std::ops::DerefMut for Records<T> {
    /// Mutable access may change an ID or a name, or anything saved: the index and the
    /// saved JSON are dropped.
    fn deref_mut(&mut self) -> &mut [T] {
        self.index = OnceLock::new();
        self.saved = SavedJson::default();
        &mut self.items
    }
}

impl<T> IntoIterator for Records<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Records<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Records<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.deref_mut().iter_mut()
    }
}

/// The records of one store and the files they come from.
#[derive(Debug)]
pub struct RecordSet<T> {
    /// The records, in creation order.
    pub records: Records<T>,
    files: Vec<(DirFile, Location)>,
    mtimes: Vec<Option<SystemTime>>,
    loaded: bool,
    /// The last ambiguous prefix [`RecordSet::find`] met, so that the operation's "not
    /// known" error can name the candidates: `find` answers `Option` to its many
    /// callers, and an ambiguous prefix is what makes it answer `None` for a name that
    /// does name something.
    ambiguity: std::sync::Mutex<Option<Ambiguity>>,
}

/// The records of `file`, read into `data` (whose memory is reused: a command that reads
/// several files touches new pages for the largest only).
fn read_records<T: Record>(file: &DirFile, data: &mut Vec<u8>) -> Result<Vec<T>> {
    let found = file
        .dir()
        .read_into(file.name(), data)
        .map_err(|e| StoreError::io("reading", file.path(), e))?;
    let data = &data[..];
    if !found || data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    // One check of the whole file's UTF-8 instead of one per string; a file that is not
    // UTF-8 gets serde_json's own error.
    let parsed = match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(data),
    };
    let records: Option<Vec<T>> = parsed.map_err(|source| StoreError::Json {
        path: file.path(),
        source,
    })?;
    Ok(records.unwrap_or_default())
}

impl<T: Record> RecordSet<T> {
    /// A set backed by `stable` and, if given, `volatile` (written without fsync).
    pub fn new(stable: DirFile, volatile: Option<DirFile>) -> Self {
        let mut files = vec![(stable, Location::Stable)];
        if let Some(volatile) = volatile {
            files.push((volatile, Location::Volatile));
        }
        RecordSet {
            records: Records::default(),
            mtimes: vec![None; files.len()],
            files,
            loaded: false,
            ambiguity: std::sync::Mutex::new(None),
        }
    }

    /// A set backed by no file: it has no records and saves nothing.
    pub fn empty() -> Self {
        RecordSet {
            records: Records::default(),
            mtimes: Vec::new(),
            files: Vec::new(),
            loaded: false,
            ambiguity: std::sync::Mutex::new(None),
        }
    }

    /// Adds the split image store's file (read after the others).
    pub fn with_image_store(mut self, file: DirFile) -> Self {
        self.files.push((file, Location::ImageStore));
        self.mtimes.push(None);
        self
    }

    fn current_mtimes(&self) -> Vec<Option<SystemTime>> {
        self.files
            .iter()
            .map(|(f, _)| f.dir().modified(f.name()))
            .collect()
    }

    /// Whether the files changed since our last load or save (or were never loaded).
    pub fn needs_reload(&self) -> bool {
        !self.loaded || self.mtimes != self.current_mtimes()
    }

    /// Forgets the loaded state, so the next look reloads.
    pub fn invalidate(&mut self) {
        self.loaded = false;
    }

    /// Reads the records from disk.
    pub fn load(&mut self) -> Result<()> {
        self.load_with(&mut Vec::new())
    }

    /// [`RecordSet::load`], reading the files into `scratch` (see `read_records`).
    pub fn load_with(&mut self, scratch: &mut Vec<u8>) -> Result<()> {
        let mut records: Vec<T> = Vec::new();
        for (file, location) in &self.files {
            let mut more: Vec<T> = read_records(file, scratch)?;
            for r in &mut more {
                r.set_location(*location);
            }
            if records.is_empty() {
                records = more;
            } else {
                records.extend(more);
            }
        }
        self.records = records.into();
        self.mtimes = self.current_mtimes();
        self.loaded = true;
        Ok(())
    }

    /// Writes the records; a file is written when it has records or already exists, so an
    /// untouched store has no files (upstream's `store.go`).
    pub fn save(&mut self) -> Result<()> {
        for (file, location) in &self.files {
            let here = |r: &T| r.location() == *location;
            if !self.records.iter().any(here) && !file.dir().exists(file.name()) {
                continue;
            }
            self.records
                .with_json_list(here, |data| {
                    let durable = *location != Location::Volatile;
                    file.dir().write_atomic(file.name(), data, durable)
                })
                .map_err(|e| StoreError::io("writing", file.path(), e))?;
        }
        self.mtimes = self.current_mtimes();
        self.loaded = true;
        Ok(())
    }

    /// Index of the record with this ID, else this name, else the one ID starting with it
    /// (or, for `sha256:<hex prefix>`, the one record whose ID or digests start so). An
    /// ambiguous prefix is `None`, remembered for [`RecordSet::take_ambiguity`].
    pub fn find(&self, name: &str) -> Option<usize> {
        match self.lookup(name) {
            Lookup::Found(i) => Some(i),
            Lookup::Ambiguous(ids) => {
                if let Ok(mut slot) = self.ambiguity.lock() {
                    *slot = Some((name.to_string(), ids));
                }
                None
            }
            Lookup::Missing => None,
        }
    }

    /// What `name` names: an ID, else a name, else a unique ID prefix, else a unique
    /// `sha256:` prefix of an ID or digest.
    pub fn lookup(&self, name: &str) -> Lookup {
        if name.is_empty() {
            return Lookup::Missing;
        }
        if let Some(i) = self.records.position_of_id(name) {
            return Lookup::Found(i);
        }
        if let Some(i) = self.records.position_of_name(name) {
            return Lookup::Found(i);
        }
        let mut matches = self.records.positions_with_id_prefix(name);
        if matches.is_empty() {
            if let Some(hex) = name.strip_prefix("sha256:").filter(|h| !h.is_empty()) {
                matches = self
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.id().starts_with(hex) || r.digests().iter().any(|d| d.starts_with(name))
                    })
                    .map(|(i, _)| i)
                    .collect();
            }
        }
        match matches.as_slice() {
            [] => Lookup::Missing,
            [i] => Lookup::Found(*i),
            many => Lookup::Ambiguous(
                many.iter()
                    .map(|&i| self.records[i].id().to_string())
                    .collect(),
            ),
        }
    }

    /// The ambiguous prefix met since the last call, if any.
    pub fn take_ambiguity(&self) -> Option<Ambiguity> {
        self.ambiguity.lock().ok().and_then(|mut slot| slot.take())
    }

    /// The record with this ID, name or ID prefix.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.find(name).map(|i| &self.records[i])
    }

    /// Whether a record has exactly this ID.
    pub fn has_id(&self, id: &str) -> bool {
        self.records.position_of_id(id).is_some()
    }

    /// Whether a record carries this name.
    pub fn has_name(&self, name: &str) -> bool {
        self.records.position_of_name(name).is_some()
    }

    /// Removes `names` from every record except the one at `keep` (names move, they are
    /// never shared).
    pub fn take_names_from_others(&mut self, keep: usize, names: &[String]) {
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        for (i, r) in self.records.iter_mut().enumerate() {
            if i != keep {
                r.names_mut().retain(|n| !names.contains(n.as_str()));
            }
        }
    }

    /// Takes every name that two records carry away from the earlier one (the later one
    /// won it, as upstream resolves duplicates on load); true when something changed. A
    /// record may repeat a name of its own: that is left alone.
    pub fn resolve_duplicate_names(&mut self) -> bool {
        // One pass from the newest record back, remembering the names later records keep.
        // Nothing is touched (the index stays) unless a name is repeated.
        let mut later: FastSet<&str> = FastSet::default();
        let mut losers: Vec<usize> = Vec::new();
        for (i, r) in self.records.iter().enumerate().rev() {
            if r.names().iter().any(|n| later.contains(n.as_str())) {
                losers.push(i);
            }
            later.extend(r.names().iter().map(String::as_str));
        }
        if losers.is_empty() {
            return false;
        }
        // A name stays with the newest record carrying it.
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (i, r) in self.records.iter().enumerate() {
            for n in r.names() {
                owner.insert(n.clone(), i);
            }
        }
        for i in losers {
            self.records.deref_mut()[i]
                .names_mut()
                .retain(|n| owner.get(n) == Some(&i));
        }
        true
    }

    /// Removes the record with exactly this ID.
    pub fn remove_id(&mut self, id: &str) -> Option<T> {
        let i = self.records.position_of_id(id)?;
        Some(self.records.remove(i))
    }
}

/// The record `name` resolves to in the first of `sets` that knows it: lookups try the
/// writable store before the read-only ones.
pub fn find_in_sets<'a, T: Record + 'a>(
    sets: impl IntoIterator<Item = &'a RecordSet<T>>,
    name: &str,
) -> Option<&'a T> {
    sets.into_iter().find_map(|s| s.get(name))
}

/// Every record of `sets`, in order.
pub fn all_in_sets<'a, T: Record + 'a>(sets: impl IntoIterator<Item = &'a RecordSet<T>>) -> Vec<T> {
    sets.into_iter()
        .flat_map(|s| s.records.iter().cloned())
        .collect()
}

/// The ID and names of a new record: the ID asked for (a random one when none or empty
/// was asked) and the names without repeats. Refused when the writable set or a
/// read-only one has the ID, or when the writable set has one of the names (a read-only
/// store's names may be shadowed).
pub fn new_identity<T: Record>(
    asked_id: Option<&str>,
    names: &[String],
    writable: &RecordSet<T>,
    read_only: &[RecordSet<T>],
) -> Result<(String, Vec<String>)> {
    let id = id_or_random(asked_id);
    if writable.has_id(&id) || read_only.iter().any(|s| s.has_id(&id)) {
        return Err(StoreError::DuplicateId);
    }
    let names = dedup(names);
    for name in &names {
        if let Some(i) = writable.records.position_of_name(name) {
            return Err(T::name_in_use(name, writable.records[i].id()));
        }
    }
    Ok((id, names))
}

/// Removes duplicates, keeping the first of each.
pub fn dedup(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// The ID asked for, or a random one when none or an empty one was asked.
pub fn id_or_random(asked: Option<&str>) -> String {
    match asked {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => random_id(),
    }
}

/// A new random 64-hex-digit ID.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The file name of a big-data item: the key when it is only `[a-z0-9.]`, else `=` and
/// the key in standard base64 (upstream's `store.go`).
pub fn big_data_file_name(key: &str) -> String {
    use base64::Engine;
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.');
    if plain && key != "." && key != ".." {
        key.to_string()
    } else {
        format!(
            "={}",
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        )
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_at(path: &std::path::Path) -> DirFile {
        DirFile::create_at(path).expect("open the directory")
    }
    use crate::layers::LayerRecord;

    fn layer(id: &str, names: &[&str]) -> LayerRecord {
        LayerRecord {
            id: id.to_string(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lookup_by_id_name_and_unambiguous_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("l.json")), None);
        set.records = Records::from(vec![layer("abc1", &["one"]), layer("abd2", &["abc1x"])]);
        assert_eq!(set.find("abc1"), Some(0));
        assert_eq!(set.find("abc1x"), Some(1), "names before prefixes");
        assert_eq!(set.find("abd"), Some(1));
        assert_eq!(set.find("ab"), None, "ambiguous prefix");
        assert_eq!(set.find("one"), Some(0));
        assert_eq!(set.find(""), None);
        set.take_names_from_others(1, &["one".to_string()]);
        assert!(set.records[0].names.is_empty());
        set.records = Records::from(vec![
            layer("a", &["x", "y"]),
            layer("b", &["x"]),
            layer("c", &["y", "z"]),
        ]);
        assert!(set.resolve_duplicate_names());
        assert!(set.records[0].names.is_empty());
        assert_eq!(set.records[1].names, vec!["x"]);
        assert!(!set.resolve_duplicate_names());
    }

    #[test]
    fn the_index_follows_pushes_removals_and_renames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("l.json")), None);
        set.records = Records::from(vec![layer("abc1", &["one"]), layer("abd2", &["two"])]);
        assert_eq!(set.find("two"), Some(1), "index built");
        // Appended records are found through the index that was already built.
        set.records.push(layer("abc3", &["three"]));
        assert_eq!(set.find("abc3"), Some(2));
        assert_eq!(set.find("three"), Some(2));
        assert!(set.has_id("abc3") && set.has_name("three"));
        assert_eq!(
            set.lookup("abc"),
            Lookup::Ambiguous(vec!["abc1".to_string(), "abc3".to_string()]),
            "a prefix sees the new record, candidates in file order"
        );
        // A removal moves later records up: every lookup follows.
        assert_eq!(
            set.remove_id("abc1").map(|l| l.id),
            Some("abc1".to_string())
        );
        assert_eq!(set.find("abc1"), None);
        assert!(!set.has_name("one"));
        assert_eq!(set.find("two"), Some(0));
        assert_eq!(set.find("abc"), Some(1), "no longer ambiguous");
        assert_eq!(set.remove_id("abc1"), None);
        // A rename in place (names move with add-names/set-names).
        set.records[0].names = vec!["renamed".to_string()];
        assert!(!set.has_name("two"));
        assert_eq!(set.find("renamed"), Some(0));
        set.take_names_from_others(1, &["renamed".to_string()]);
        set.records[1].names.push("renamed".to_string());
        assert_eq!(set.find("renamed"), Some(1));
        // A record replaced in place under another ID.
        set.records[1] = layer("fff9", &[]);
        assert_eq!(set.find("abc3"), None);
        assert_eq!(set.find("fff"), Some(1));
        assert_eq!(set.find("renamed"), None);
    }

    #[test]
    fn repeated_ids_and_names_resolve_to_the_first_record_as_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("l.json")), None);
        // A hand-edited file (or a read-only store) may repeat an ID or a name.
        set.records = Records::from(vec![
            layer("dup", &["a"]),
            layer("x1", &["a", "b"]),
            layer("dup", &["b"]),
        ]);
        assert_eq!(set.find("dup"), Some(0));
        assert_eq!(set.find("a"), Some(0));
        assert_eq!(set.find("b"), Some(1));
        set.records.push(layer("x2", &["a"]));
        assert_eq!(
            set.find("a"),
            Some(0),
            "a later record does not take a name"
        );
        assert_eq!(
            set.lookup("x"),
            Lookup::Ambiguous(vec!["x1".to_string(), "x2".to_string()])
        );
        // Prefixes that sort before, between and after every ID.
        assert_eq!(set.lookup("0"), Lookup::Missing);
        assert_eq!(set.lookup("e"), Lookup::Missing);
        assert_eq!(set.lookup("z"), Lookup::Missing);
        assert_eq!(
            set.find("du"),
            None,
            "two records with one ID are two candidates"
        );
    }

    #[test]
    fn duplicate_names_go_to_the_newest_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("l.json")), None);
        set.records = Records::from(vec![
            layer("a", &["x", "keep-a", "y"]),
            layer("b", &["x", "x", "z"]),
            layer("c", &["y"]),
            layer("d", &["z", "w"]),
        ]);
        assert!(set.resolve_duplicate_names());
        let names: Vec<Vec<String>> = set.records.iter().map(|l| l.names.clone()).collect();
        assert_eq!(
            names,
            vec![
                vec!["keep-a".to_string()],
                vec!["x".to_string(), "x".to_string()],
                vec!["y".to_string()],
                vec!["z".to_string(), "w".to_string()],
            ],
            "a record's own repeat stays, as upstream's"
        );
        assert_eq!(set.find("x"), Some(1));
        assert_eq!(set.find("z"), Some(3));
        assert!(!set.resolve_duplicate_names(), "nothing left to resolve");
    }

    #[test]
    fn ambiguous_prefixes_are_remembered_with_their_candidates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("l.json")), None);
        let mut digested = layer("ffff", &[]);
        digested.uncompressed_digest = "sha256:abcd".to_string();
        set.records = Records::from(vec![layer("abc1", &[]), layer("abc2", &[]), digested]);
        assert_eq!(
            set.lookup("abc"),
            Lookup::Ambiguous(vec!["abc1".to_string(), "abc2".to_string()])
        );
        assert_eq!(set.find("abc"), None);
        assert_eq!(
            set.take_ambiguity(),
            Some((
                "abc".to_string(),
                vec!["abc1".to_string(), "abc2".to_string()]
            ))
        );
        assert_eq!(set.take_ambiguity(), None, "taken once");
        assert_eq!(set.find("sha256:abcd"), Some(2), "a digest prefix");
        assert_eq!(set.find("sha256:ab"), None, "ID abc1, abc2 and a digest");
        assert_eq!(set.take_ambiguity().map(|(_, ids)| ids.len()), Some(3));
        assert_eq!(set.find("sha256:ff"), Some(2), "an ID's hex as a digest");
        assert_eq!(set.lookup("sha256:"), Lookup::Missing);
    }

    #[test]
    fn lookups_prefer_the_first_set_and_new_identities_are_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rw: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("rw.json")), None);
        let mut ro: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&dir.path().join("ro.json")), None);
        rw.records = Records::from(vec![layer("aaa", &["shared"])]);
        ro.records = Records::from(vec![layer("bbb", &["shared", "ro-only"])]);
        let sets = || [&rw, &ro];
        assert_eq!(
            find_in_sets(sets(), "shared").map(|l| l.id.as_str()),
            Some("aaa")
        );
        assert_eq!(
            find_in_sets(sets(), "ro-only").map(|l| l.id.as_str()),
            Some("bbb")
        );
        assert!(find_in_sets(sets(), "nope").is_none());

        let ro_sets = std::slice::from_ref(&ro);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (id, got) = new_identity(Some("ccc"), &names(&["x", "y", "x"]), &rw, ro_sets)
            .expect("new identity");
        assert_eq!((id.as_str(), got), ("ccc", names(&["x", "y"])));
        let (random, _) = new_identity(Some(""), &[], &rw, ro_sets).expect("random");
        assert_eq!(random.len(), 64);
        for taken in ["aaa", "bbb"] {
            assert!(matches!(
                new_identity(Some(taken), &[], &rw, ro_sets),
                Err(StoreError::DuplicateId)
            ));
        }
        assert!(matches!(
            new_identity(None, &names(&["shared"]), &rw, ro_sets),
            Err(StoreError::DuplicateName)
        ));
        // A read-only store's name may be taken by a new writable record.
        assert!(new_identity(None, &names(&["ro-only"]), &rw, ro_sets).is_ok());
    }

    #[test]
    fn stable_and_volatile_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stable = dir.path().join("layers.json");
        let volatile = dir.path().join("volatile-layers.json");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&stable), Some(file_at(&volatile)));
        set.save().expect("save");
        assert!(
            !stable.exists() && !volatile.exists(),
            "empty store writes nothing"
        );
        set.records.push(layer("a", &[]));
        let mut v = layer("b", &[]);
        v.volatile = true;
        set.records.push(v);
        set.save().expect("save");
        assert_eq!(
            std::fs::read_to_string(&stable).expect("read"),
            r#"[{"id":"a","created":""}]"#
        );
        assert_eq!(
            std::fs::read_to_string(&volatile).expect("read"),
            r#"[{"id":"b","created":""}]"#
        );
        let mut again: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&stable), Some(file_at(&volatile)));
        assert!(again.needs_reload());
        again.load().expect("load");
        assert!(!again.needs_reload());
        assert_eq!(again.records.len(), 2);
        assert!(again.records[1].volatile && !again.records[0].volatile);
    }

    #[test]
    fn saves_reuse_the_json_of_unchanged_records_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stable = dir.path().join("layers.json");
        let volatile = dir.path().join("volatile-layers.json");
        let mut set: RecordSet<LayerRecord> =
            RecordSet::new(file_at(&stable), Some(file_at(&volatile)));
        // After every change, each file holds what serializing its records afresh gives.
        let check = |set: &mut RecordSet<LayerRecord>, what: &str| {
            set.save().expect("save");
            for (path, is_volatile) in [(&stable, false), (&volatile, true)] {
                let subset: Vec<&LayerRecord> = set
                    .records
                    .iter()
                    .filter(|r| r.volatile == is_volatile)
                    .collect();
                let text = std::fs::read(path).expect("read");
                assert_eq!(text, crate::gojson::to_vec(&subset), "{what}: {path:?}");
            }
        };
        for (id, names) in [("a", &["x"][..]), ("b", &[]), ("c", &["y", "z"])] {
            set.records.push(layer(id, names));
        }
        let mut v = layer("v", &[]);
        v.volatile = true;
        set.records.push(v);
        check(&mut set, "first save");
        set.records.push(layer("d", &["<&>"]));
        check(&mut set, "appended");
        let mut b = layer("b", &["renamed"]);
        b.metadata = "changed".to_string();
        set.records.replace(1, b);
        check(&mut set, "replaced");
        set.records.remove(0);
        check(&mut set, "removed");
        set.records[2].names.push("through DerefMut".to_string());
        check(&mut set, "changed in place");
        check(&mut set, "unchanged");
        assert_eq!(set.find("renamed"), Some(0));
        // Every record in one file: the saved JSON is the file.
        let v = set.find("v").expect("v");
        set.records.remove(v);
        check(&mut set, "stable only");
        set.records.push(layer("e", &[]));
        check(&mut set, "stable only, appended");
        set.records.replace(0, layer("b", &["again"]));
        check(&mut set, "stable only, replaced");
        while !set.records.is_empty() {
            set.records.remove(0);
            check(&mut set, "emptied");
        }
        assert_eq!(std::fs::read(&stable).expect("read"), b"[]");
    }

    #[test]
    fn a_lookup_checks_every_record_whose_hash_matches() {
        // Two keys of one hash (as a collision would make them): the first record that
        // really carries the key wins, in file order.
        let h = key_hash("k");
        let list = vec![(h - 1, 5), (h, 1), (h, 3), (h, 4), (h + 1, 0)];
        assert_eq!(first_match(&list, "k", |pos| pos >= 3), Some(3));
        assert_eq!(first_match(&list, "k", |pos| pos == 1), Some(1));
        assert_eq!(first_match(&list, "k", |pos| pos == 0), None, "other hash");
        assert_eq!(first_match(&[], "k", |_| true), None);
    }

    #[test]
    fn the_fast_hash_tells_keys_apart() {
        use std::hash::BuildHasher;
        let keys = ["", "a", "a\0", "ab", "abcdefgh", "abcdefgh\0", "abcdefghi"];
        let hashes: HashSet<u64> = keys.iter().map(|k| FastHash.hash_one(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        let ids: Vec<String> = (0..10_000).map(|_| random_id()).collect();
        let map: FastMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        assert!(ids
            .iter()
            .enumerate()
            .all(|(i, id)| map.get(id.as_str()) == Some(&i)));
    }

    #[test]
    fn big_data_names() {
        assert_eq!(big_data_file_name("manifest"), "manifest");
        assert_eq!(big_data_file_name("a.b1"), "a.b1");
        assert_eq!(big_data_file_name("Manifest"), "=TWFuaWZlc3Q=");
        assert_eq!(big_data_file_name("sha256:ab"), "=c2hhMjU2OmFi");
    }
}
