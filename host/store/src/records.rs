//! What layer, image and container stores share: records with an ID and unique names,
//! kept in one or two JSON files (stable and volatile), looked up by ID, name or ID prefix.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StoreError};

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

/// The records of one store and the files they come from.
#[derive(Debug)]
pub struct RecordSet<T> {
    /// The records, in creation order.
    pub records: Vec<T>,
    files: Vec<(PathBuf, Location)>,
    mtimes: Vec<Option<SystemTime>>,
    loaded: bool,
    /// The last ambiguous prefix [`RecordSet::find`] met, so that the operation's "not
    /// known" error can name the candidates: `find` answers `Option` to its many
    /// callers, and an ambiguous prefix is what makes it answer `None` for a name that
    /// does name something.
    ambiguity: std::sync::Mutex<Option<Ambiguity>>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_records<T: Record>(path: &Path) -> Result<Vec<T>> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("reading", path, e)),
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let records: Option<Vec<T>> =
        serde_json::from_slice(&data).map_err(|source| StoreError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(records.unwrap_or_default())
}

impl<T: Record> RecordSet<T> {
    /// A set backed by `stable` and, if given, `volatile` (written without fsync).
    pub fn new(stable: PathBuf, volatile: Option<PathBuf>) -> Self {
        let mut files = vec![(stable, Location::Stable)];
        if let Some(volatile) = volatile {
            files.push((volatile, Location::Volatile));
        }
        RecordSet {
            records: Vec::new(),
            mtimes: vec![None; files.len()],
            files,
            loaded: false,
            ambiguity: std::sync::Mutex::new(None),
        }
    }

    /// Adds the split image store's file (read after the others).
    pub fn with_image_store(mut self, path: PathBuf) -> Self {
        self.files.push((path, Location::ImageStore));
        self.mtimes.push(None);
        self
    }

    fn current_mtimes(&self) -> Vec<Option<SystemTime>> {
        self.files.iter().map(|(p, _)| mtime(p)).collect()
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
        let mut records: Vec<T> = Vec::new();
        for (path, location) in &self.files {
            let mut more: Vec<T> = read_records(path)?;
            for r in &mut more {
                r.set_location(*location);
            }
            records.extend(more);
        }
        self.records = records;
        self.mtimes = self.current_mtimes();
        self.loaded = true;
        Ok(())
    }

    /// Writes the records; a file is written when it has records or already exists, so an
    /// untouched store has no files (spec §2.1).
    pub fn save(&mut self) -> Result<()> {
        for (path, location) in &self.files {
            let subset: Vec<&T> = self
                .records
                .iter()
                .filter(|r| r.location() == *location)
                .collect();
            if subset.is_empty() && !path.exists() {
                continue;
            }
            let data = crate::gojson::to_vec(&subset);
            crate::atomic::write_file(path, &data, *location != Location::Volatile)
                .map_err(|e| StoreError::io("writing", path.as_path(), e))?;
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
        if let Some(i) = self.records.iter().position(|r| r.id() == name) {
            return Lookup::Found(i);
        }
        if let Some(i) = self
            .records
            .iter()
            .position(|r| r.names().iter().any(|n| n == name))
        {
            return Lookup::Found(i);
        }
        let mut matches: Vec<usize> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.id().starts_with(name))
            .map(|(i, _)| i)
            .collect();
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
        self.records.iter().any(|r| r.id() == id)
    }

    /// Whether a record carries this name.
    pub fn has_name(&self, name: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.names().iter().any(|n| n == name))
    }

    /// Removes `names` from every record except the one at `keep` (names move, they are
    /// never shared).
    pub fn take_names_from_others(&mut self, keep: usize, names: &[String]) {
        for (i, r) in self.records.iter_mut().enumerate() {
            if i != keep {
                r.names_mut().retain(|n| !names.contains(n));
            }
        }
    }

    /// Takes every name that two records carry away from the earlier one (the later one
    /// won it, as upstream resolves duplicates on load); true when something changed.
    pub fn resolve_duplicate_names(&mut self) -> bool {
        let mut changed = false;
        for i in (0..self.records.len()).rev() {
            let names = self.records[i].names().to_vec();
            for earlier in &mut self.records[..i] {
                let before = earlier.names().len();
                earlier.names_mut().retain(|n| !names.contains(n));
                changed |= earlier.names().len() != before;
            }
        }
        changed
    }

    /// Removes the record with exactly this ID.
    pub fn remove_id(&mut self, id: &str) -> Option<T> {
        let i = self.records.iter().position(|r| r.id() == id)?;
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
    if names.iter().any(|n| writable.has_name(n)) {
        return Err(StoreError::DuplicateName);
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
/// the key in standard base64 (spec §2.1).
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
        let mut set: RecordSet<LayerRecord> = RecordSet::new(dir.path().join("l.json"), None);
        set.records = vec![layer("abc1", &["one"]), layer("abd2", &["abc1x"])];
        assert_eq!(set.find("abc1"), Some(0));
        assert_eq!(set.find("abc1x"), Some(1), "names before prefixes");
        assert_eq!(set.find("abd"), Some(1));
        assert_eq!(set.find("ab"), None, "ambiguous prefix");
        assert_eq!(set.find("one"), Some(0));
        assert_eq!(set.find(""), None);
        set.take_names_from_others(1, &["one".to_string()]);
        assert!(set.records[0].names.is_empty());
        set.records = vec![
            layer("a", &["x", "y"]),
            layer("b", &["x"]),
            layer("c", &["y", "z"]),
        ];
        assert!(set.resolve_duplicate_names());
        assert!(set.records[0].names.is_empty());
        assert_eq!(set.records[1].names, vec!["x"]);
        assert!(!set.resolve_duplicate_names());
    }

    #[test]
    fn ambiguous_prefixes_are_remembered_with_their_candidates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: RecordSet<LayerRecord> = RecordSet::new(dir.path().join("l.json"), None);
        let mut digested = layer("ffff", &[]);
        digested.uncompressed_digest = "sha256:abcd".to_string();
        set.records = vec![layer("abc1", &[]), layer("abc2", &[]), digested];
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
        let mut rw: RecordSet<LayerRecord> = RecordSet::new(dir.path().join("rw.json"), None);
        let mut ro: RecordSet<LayerRecord> = RecordSet::new(dir.path().join("ro.json"), None);
        rw.records = vec![layer("aaa", &["shared"])];
        ro.records = vec![layer("bbb", &["shared", "ro-only"])];
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
            RecordSet::new(stable.clone(), Some(volatile.clone()));
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
        let mut again: RecordSet<LayerRecord> = RecordSet::new(stable, Some(volatile));
        assert!(again.needs_reload());
        again.load().expect("load");
        assert!(!again.needs_reload());
        assert_eq!(again.records.len(), 2);
        assert!(again.records[1].volatile && !again.records[0].volatile);
    }

    #[test]
    fn big_data_names() {
        assert_eq!(big_data_file_name("manifest"), "manifest");
        assert_eq!(big_data_file_name("a.b1"), "a.b1");
        assert_eq!(big_data_file_name("Manifest"), "=TWFuaWZlc3Q=");
        assert_eq!(big_data_file_name("sha256:ab"), "=c2hhMjU2OmFi");
    }
}
