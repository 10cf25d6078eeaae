//! Unit tests of the store's logic, against a graph driver that keeps layers as plain
//! directories (a test double: no mounts, copies of parents).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::*;
use crate::driver::{DriverResult, FileGetter};

/// IDs with this prefix fail to be created, after leaving some data behind (rollback tests).
const DOOMED: &str = "doomed";

struct DirDriver {
    home: PathBuf,
    name: String,
    /// Read-only graph roots (`<name>.imagestore=PATH`).
    image_stores: Vec<PathBuf>,
}

impl DirDriver {
    /// The layer's directory: ours, else the one in a read-only store that has it.
    fn dir(&self, id: &str) -> PathBuf {
        let own = self.home.join("dir").join(id);
        if own.exists() {
            return own;
        }
        self.image_stores
            .iter()
            .map(|root| root.join(&self.name).join("dir").join(id))
            .find(|d| d.exists())
            .unwrap_or(own)
    }
}

fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> DriverError + '_ {
    move |e| DriverError::io(context, e)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn files_of(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            out.insert(name.clone(), Vec::new());
            files_of(&entry.path(), &name, out);
        } else {
            out.insert(name, std::fs::read(entry.path()).unwrap_or_default());
        }
    }
}

impl GraphDriver for DirDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn home(&self) -> &Path {
        &self.home
    }
    fn create(&self, id: &str, parent: Option<&str>, _opts: &CreateOpts) -> DriverResult<()> {
        if id.starts_with(DOOMED) {
            std::fs::create_dir_all(self.dir(id)).map_err(io_err("mkdir"))?;
            return Err(DriverError::Unsupported("creating this layer (test)"));
        }
        if self.dir(id).exists() {
            return Err(DriverError::LayerExists(id.to_string()));
        }
        let target = self.home.join("dir").join(id);
        match parent {
            Some(p) => copy_tree(&self.dir(p), &target).map_err(io_err("copy")),
            None => std::fs::create_dir_all(&target).map_err(io_err("mkdir")),
        }
    }
    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.image_stores.clone()
    }
    fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()> {
        self.create(id, parent, opts)
    }
    fn remove(&self, id: &str) -> DriverResult<()> {
        match std::fs::remove_dir_all(self.dir(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DriverError::io("rm", e)),
            _ => Ok(()),
        }
    }
    fn get(&self, id: &str, _opts: &MountOpts) -> DriverResult<PathBuf> {
        if !self.dir(id).exists() {
            return Err(DriverError::LayerNotFound(id.to_string()));
        }
        Ok(self.dir(id))
    }
    fn put(&self, _id: &str) -> DriverResult<()> {
        Ok(())
    }
    fn exists(&self, id: &str) -> bool {
        self.dir(id).exists()
    }
    fn list_layers(&self) -> DriverResult<Vec<String>> {
        let entries = std::fs::read_dir(self.home.join("dir")).map_err(io_err("ls"))?;
        Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }
    fn status(&self) -> Vec<(String, String)> {
        vec![("Test".to_string(), "yes".to_string())]
    }
    fn metadata(&self, _id: &str) -> DriverResult<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
    fn cleanup(&self) -> DriverResult<()> {
        Ok(())
    }
    fn apply_diff(
        &self,
        id: &str,
        _parent: Option<&str>,
        diff: &mut dyn Read,
        _opts: &ApplyDiffOpts,
    ) -> DriverResult<u64> {
        let mut archive = tar::Archive::new(diff);
        let mut size = 0;
        for entry in archive.entries().map_err(io_err("tar"))? {
            let mut entry = entry.map_err(io_err("tar"))?;
            size += entry.header().size().unwrap_or(0);
            entry.unpack_in(self.dir(id)).map_err(io_err("unpack"))?;
        }
        Ok(size)
    }
    fn diff(
        &self,
        id: &str,
        _maps: &IdMappings,
        _parent: Option<&str>,
        out: &mut dyn Write,
    ) -> DriverResult<()> {
        let mut builder = tar::Builder::new(out);
        builder
            .append_dir_all(".", self.dir(id))
            .map_err(io_err("tar"))?;
        builder.finish().map_err(io_err("tar"))
    }
    fn changes(&self, id: &str, parent: Option<&str>) -> DriverResult<Vec<Change>> {
        let mut new = BTreeMap::new();
        files_of(&self.dir(id), "", &mut new);
        let mut old = BTreeMap::new();
        if let Some(p) = parent {
            files_of(&self.dir(p), "", &mut old);
        }
        let mut changes = Vec::new();
        for (path, data) in &new {
            match old.get(path) {
                None => changes.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Add,
                }),
                Some(d) if d != data => changes.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Modify,
                }),
                _ => {}
            }
        }
        for path in old.keys().filter(|p| !new.contains_key(*p)) {
            changes.push(Change {
                path: path.clone(),
                kind: ChangeKind::Delete,
            });
        }
        Ok(changes)
    }
    fn diff_size(&self, id: &str, parent: Option<&str>) -> DriverResult<u64> {
        let mut new = BTreeMap::new();
        files_of(&self.dir(id), "", &mut new);
        let changes = self.changes(id, parent)?;
        Ok(changes
            .iter()
            .filter_map(|c| new.get(&c.path))
            .map(|d| d.len() as u64)
            .sum())
    }
    fn diff_getter(&self, id: &str) -> DriverResult<Box<dyn FileGetter + '_>> {
        Ok(Box::new(DirFiles { root: self.dir(id) }))
    }
}

struct DirFiles {
    root: PathBuf,
}

impl FileGetter for DirFiles {
    fn get(&mut self, path: &str) -> DriverResult<Box<dyn Read + '_>> {
        let file = std::fs::File::open(self.root.join(path.trim_start_matches('/')))
            .map_err(io_err("open"))?;
        Ok(Box::new(file))
    }
}

use crate::driver::ChangeKind;

fn test_driver(init: &DriverInit) -> DriverResult<Box<dyn GraphDriver>> {
    std::fs::create_dir_all(init.home.join("dir")).map_err(io_err("mkdir"))?;
    // Named after its home (`<graphroot>/<name>`), so it can stand in for vfs.
    let name = init
        .home
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{name}.imagestore=");
    let image_stores = init
        .options
        .iter()
        .filter_map(|o| o.strip_prefix(&prefix))
        .map(PathBuf::from)
        .collect();
    Ok(Box::new(DirDriver {
        home: init.home.clone(),
        name,
        image_stores,
    }))
}

struct TestRoot {
    dir: tempfile::TempDir,
    opts: StoreOptions,
}

impl TestRoot {
    fn new() -> TestRoot {
        Self::with(false)
    }
    fn with(transient: bool) -> TestRoot {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StoreOptions {
            graph_root: dir.path().join("graph"),
            run_root: dir.path().join("run"),
            driver_name: "testfs".to_string(),
            transient_store: transient,
            ..Default::default()
        };
        TestRoot { dir, opts }
    }
    fn open(&self) -> Store {
        Store::open(&self.opts, &registry()).expect("open store")
    }
    fn graph(&self, rel: &str) -> PathBuf {
        self.dir.path().join("graph").join(rel)
    }
    fn run(&self, rel: &str) -> PathBuf {
        self.dir.path().join("run").join(rel)
    }
}

fn registry() -> DriverRegistry {
    let mut r = DriverRegistry::new();
    r.register("testfs", test_driver);
    r
}

fn named(names: &[&str]) -> LayerOptions {
    LayerOptions {
        names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *data)
            .expect("append");
    }
    builder.into_inner().expect("finish")
}

#[test]
fn open_creates_layout_and_unknown_driver_fails() {
    let root = TestRoot::new();
    let store = root.open();
    assert_eq!(store.driver_name(), "testfs");
    for dir in ["testfs-layers", "testfs-images", "testfs-containers"] {
        assert!(root.graph(dir).is_dir(), "{dir}");
    }
    assert!(root.graph("storage.lock").exists());
    assert!(root.run("testfs-layers/mountpoints.lock").exists());
    assert!(!root.graph("testfs-layers/layers.json").exists());
    assert!(store.layers().expect("layers").is_empty());
    let mut bad = root.opts.clone();
    bad.driver_name = "bogus".to_string();
    let err = Store::open(&bad, &registry()).err().expect("must fail");
    assert!(err.to_string().ends_with("driver not supported"), "{err}");
}

#[test]
fn layer_names_are_unique_and_move() {
    let root = TestRoot::new();
    let store = root.open();
    let a = store.create_layer(None, &named(&["a"])).expect("a");
    let b = store.create_layer(Some("a"), &named(&["b"])).expect("b");
    assert_eq!(b.parent, a.id);
    let err = store.create_layer(None, &named(&["a"])).expect_err("dup");
    assert_eq!(err.to_string(), "that name is already in use");
    let opts = LayerOptions {
        id: Some(a.id.clone()),
        ..Default::default()
    };
    let err = store.create_layer(None, &opts).expect_err("dup id");
    assert_eq!(err.to_string(), "that ID is already in use");
    let names = store.add_names(&b.id, &["a".to_string()]).expect("add");
    assert_eq!(names, vec!["b".to_string(), "a".to_string()]);
    assert!(
        store.layer(&a.id).expect("a").names.is_empty(),
        "name moved"
    );
    assert_eq!(store.layer("a").expect("by name").id, b.id);
    assert_eq!(store.layer(&b.id[..12]).expect("by prefix").id, b.id);
    assert_eq!(
        store.remove_names("b", &["a".to_string()]).expect("rm"),
        vec!["b"]
    );
    assert_eq!(
        store
            .set_names("b", &["x".to_string(), "x".to_string()])
            .expect("set"),
        vec!["x"]
    );
    let err = store.layer("nope").expect_err("unknown");
    assert_eq!(err.to_string(), "layer not known");
}

#[test]
fn ambiguous_prefix_is_not_found() {
    let root = TestRoot::new();
    let store = root.open();
    for id in ["abc1", "abc2"] {
        let opts = LayerOptions {
            id: Some(id.to_string()),
            ..Default::default()
        };
        store.create_layer(None, &opts).expect("create");
    }
    assert!(store.layer("abc").is_err());
    assert_eq!(store.layer("abc2").expect("exact").id, "abc2");
    assert_eq!(store.exists("abc1").expect("exists"), Some(Kind::Layer));
    assert_eq!(store.exists("zzz").expect("exists"), None);
}

#[test]
fn incomplete_layer_is_removed_on_next_open() {
    let root = TestRoot::new();
    let id = {
        let store = root.open();
        store.create_layer(None, &named(&["keep"])).expect("keep");
        store
            .create_layer(None, &named(&["crashed"]))
            .expect("crashed")
            .id
    };
    // Simulate a crash between the record's first save and its completion.
    let path = root.graph("testfs-layers/layers.json");
    let mut records: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    records[1]["flags"] = serde_json::json!({"incomplete": true});
    std::fs::write(&path, serde_json::to_vec(&records).expect("json")).expect("write");
    let store = root.open();
    let layers = store.layers().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].names, vec!["keep"]);
    assert!(
        !root.graph(&format!("testfs/dir/{id}")).exists(),
        "driver data removed"
    );
}

#[test]
fn failed_creation_rolls_back() {
    let root = TestRoot::new();
    let store = root.open();
    let opts = LayerOptions {
        id: Some("doomed".to_string()),
        read_only: true,
        ..Default::default()
    };
    assert!(store.create_layer(None, &opts).is_err());
    assert!(store.layers().expect("layers").is_empty());
    assert!(!root.graph("testfs/dir/doomed").exists());
    let text = std::fs::read_to_string(root.graph("testfs-layers/layers.json")).expect("read");
    assert_eq!(text, "[]");
}

#[test]
fn another_store_sees_writes() {
    let root = TestRoot::new();
    let a = root.open();
    let b = root.open();
    assert!(b.layers().expect("layers").is_empty());
    let before = std::fs::read(root.graph("testfs-layers/layers.lock")).expect("read");
    a.create_layer(None, &named(&["x"])).expect("create");
    let after = std::fs::read(root.graph("testfs-layers/layers.lock")).expect("read");
    assert_eq!(after.len(), 64);
    assert_ne!(before, after, "token changes on write");
    assert_eq!(b.layers().expect("layers").len(), 1);
    b.set_metadata("x", "meta").expect("set");
    assert_eq!(a.metadata("x").expect("meta"), "meta");
}

#[test]
fn concurrent_creators_lose_nothing() {
    let root = TestRoot::new();
    let opts = root.opts.clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let opts = opts.clone();
            std::thread::spawn(move || {
                let store = Store::open(&opts, &registry()).expect("open");
                for i in 0..5 {
                    store
                        .create_layer(None, &named(&[&format!("t{t}-{i}")]))
                        .expect("create");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    // One store shared by threads works as well.
    let shared = std::sync::Arc::new(root.open());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                for i in 0..5 {
                    store
                        .create_layer(None, &named(&[&format!("s{t}-{i}")]))
                        .expect("create");
                    store.layers().expect("list");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let store = root.open();
    assert_eq!(store.layers().expect("layers").len(), 60);
}

#[test]
fn delete_image_reclaims_unshared_layers() {
    let root = TestRoot::new();
    let store = root.open();
    let base = store.create_layer(None, &named(&["base"])).expect("base");
    let mid = store
        .create_layer(Some("base"), &named(&["mid"]))
        .expect("mid");
    let top = store
        .create_layer(Some("mid"), &named(&["top"]))
        .expect("top");
    let other = store
        .create_layer(Some("base"), &named(&[]))
        .expect("other");
    let img = store
        .create_image(Some("top"), &ImageOptions::default())
        .expect("img");
    let dry = store.delete_image(&img.id, false).expect("dry run");
    assert_eq!(dry.deleted_layers, vec![top.id.clone(), mid.id.clone()]);
    assert_eq!(
        store.layers().expect("layers").len(),
        4,
        "dry run deletes nothing"
    );
    let report = store.delete_image(&img.id, true).expect("delete");
    assert_eq!(report.deleted_layers, vec![top.id, mid.id]);
    let left: Vec<String> = store
        .layers()
        .expect("layers")
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, vec![base.id, other.id]);
    assert!(store.image(&img.id).is_err());
}

#[test]
fn delete_layer_by_name_checks_children_and_users() {
    let root = TestRoot::new();
    let store = root.open();
    store
        .create_layer(None, &named(&["parent"]))
        .expect("parent");
    let child = store
        .create_layer(Some("parent"), &named(&["child"]))
        .expect("child");
    let err = store.delete_layer("parent").expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!("used by layer {}: layer has children", child.id)
    );
    let img = store
        .create_image(Some("child"), &ImageOptions::default())
        .expect("img");
    let err = store.delete_layer("child").expect_err("refused");
    assert!(
        err.to_string().contains("layer is in use by an image"),
        "{err}"
    );
    let ctr = store
        .create_container(&img.id, &ContainerOptions::default())
        .expect("ctr");
    let err = store.delete_image(&img.id, true).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!("image used by {}: image is in use by a container", ctr.id)
    );
    let err = store.delete_container(&img.id).expect_err("refused");
    assert_eq!(err.to_string(), "identifier is not a container");
    store.delete_container(&ctr.id).expect("delete ctr");
    assert!(!root
        .graph(&format!("testfs-containers/{}", ctr.id))
        .exists());
    assert!(store.layer(&ctr.layer).is_err(), "container layer deleted");
    store.delete("child").expect("delete without checks");
}

#[test]
fn containers_get_layers_dirs_and_placement() {
    let root = TestRoot::new();
    let store = root.open();
    store.create_layer(None, &named(&["l"])).expect("l");
    let img = store
        .create_image(
            Some("l"),
            &ImageOptions {
                names: vec!["img".into()],
                ..Default::default()
            },
        )
        .expect("img");
    let c = store
        .create_container(
            "img",
            &ContainerOptions {
                names: vec!["c1".into()],
                ..Default::default()
            },
        )
        .expect("ctr");
    assert_eq!(c.image, img.id);
    assert_eq!(store.layer(&c.layer).expect("layer").parent, img.top_layer);
    assert!(store.container_dir("c1").expect("dir").is_dir());
    assert!(root
        .run(&format!("testfs-containers/{}/userdata", c.id))
        .is_dir());
    let json =
        std::fs::read_to_string(root.graph("testfs-containers/containers.json")).expect("read");
    assert!(
        json.contains(r#""flags":{"MountLabel":"","ProcessLabel":""}"#),
        "{json}"
    );
    let v = store
        .create_container(
            "img",
            &ContainerOptions {
                volatile: true,
                ..Default::default()
            },
        )
        .expect("volatile");
    let vjson = std::fs::read_to_string(root.graph("testfs-containers/volatile-containers.json"))
        .expect("read");
    assert!(vjson.contains(&v.id) && vjson.contains(r#""Volatile":true"#));
    let vlayers =
        std::fs::read_to_string(root.graph("testfs-layers/volatile-layers.json")).expect("read");
    assert!(vlayers.contains(&v.layer));
}

#[test]
fn transient_store_keeps_containers_in_run_root() {
    let root = TestRoot::with(true);
    let store = root.open();
    store.create_layer(None, &named(&["l"])).expect("l");
    store
        .create_image(Some("l"), &ImageOptions::default())
        .expect("img");
    let img = store.images().expect("images").remove(0);
    let c = store
        .create_container(&img.id, &ContainerOptions::default())
        .expect("ctr");
    assert!(root.run("testfs-containers/containers.lock").exists());
    let json = std::fs::read_to_string(root.run("testfs-containers/volatile-containers.json"))
        .expect("read");
    assert!(json.contains(&c.id));
    let layers =
        std::fs::read_to_string(root.run("testfs-layers/volatile-layers.json")).expect("read");
    assert!(layers.contains(&c.layer));
    assert!(!root.graph("testfs-containers/containers.json").exists());
    assert_eq!(store.containers().expect("list").len(), 1);
}

#[test]
fn mount_counting_and_shutdown() {
    let root = TestRoot::new();
    let store = root.open();
    let l = store.create_layer(None, &named(&["m"])).expect("l");
    let p1 = store.mount("m", &MountOptions::default()).expect("mount");
    let p2 = store.mount("m", &MountOptions::default()).expect("mount");
    assert_eq!(p1, p2);
    assert_eq!(store.mount_count("m").expect("count"), 2);
    let json = std::fs::read_to_string(root.run("testfs-layers/mountpoints.json")).expect("read");
    assert_eq!(
        json,
        format!(
            r#"[{{"id":"{}","path":"{}","count":2}}]"#,
            l.id,
            p1.display()
        )
    );
    assert!(!store.unmount("m", false).expect("unmount"));
    let err = store.shutdown(false).expect_err("mounted");
    assert_eq!(
        err.to_string(),
        "shutdown: a layer is mounted: layer is in use by a container"
    );
    assert_eq!(store.shutdown(true).expect("force"), vec![l.id.clone()]);
    assert_eq!(store.mount_count("m").expect("count"), 0);
    assert_eq!(
        std::fs::read_to_string(root.run("testfs-layers/mountpoints.json")).expect("read"),
        "[]"
    );
}

#[test]
fn import_records_digests_and_diff_reproduces_the_tar() {
    let root = TestRoot::new();
    let store = root.open();
    let tar = tar_with(&[("a.txt", b"hello"), ("b.txt", b"world!")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    let blob = gz.finish().expect("gzip");
    let layer = store
        .import_layer(None, &named(&["imp"]), &mut blob.as_slice())
        .expect("import");
    assert_eq!(layer.compression, 2);
    assert_eq!(layer.compressed_digest, sha256_digest(&blob));
    assert_eq!(layer.uncompressed_digest, sha256_digest(&tar));
    assert_eq!(layer.uncompressed_size, tar.len() as i64);
    assert!(layer.flags.is_empty());
    assert!(root
        .graph(&format!("testfs-layers/{}.tar-split.gz", layer.id))
        .exists());
    let mut out = Vec::new();
    store
        .diff("imp", None, DiffCompression::None, &mut out)
        .expect("diff");
    assert_eq!(out, tar, "tar-split reassembly is byte-exact");
    let err = store
        .diff("imp", None, DiffCompression::Xz, &mut Vec::new())
        .expect_err("xz");
    assert_eq!(err.to_string(), "unsupported compression format");
    let changes = store.changes("imp", None).expect("changes");
    assert_eq!(changes.len(), 2);
    assert_eq!(store.diff_size("imp", None).expect("size"), 11);
    let bad = store.import_layer(None, &named(&["bad"]), &mut &b"not a tar at all"[..]);
    assert!(bad.is_err());
    assert_eq!(
        store.layers().expect("layers").len(),
        1,
        "failed import rolled back"
    );
}

#[test]
fn big_data_of_images_and_digests() {
    let root = TestRoot::new();
    let store = root.open();
    let img = store
        .create_image(None, &ImageOptions::default())
        .expect("img");
    store
        .set_big_data(Kind::Image, &img.id, "manifest", b"{}")
        .expect("set");
    store
        .set_big_data(Kind::Image, &img.id, "Config", b"cfg")
        .expect("set");
    assert!(root
        .graph(&format!("testfs-images/{}/=Q29uZmln", img.id))
        .exists());
    assert_eq!(
        store.big_data(Kind::Image, &img.id, "Config").expect("get"),
        b"cfg"
    );
    assert_eq!(
        store
            .big_data_size(Kind::Image, &img.id, "manifest")
            .expect("size"),
        2
    );
    let digest = sha256_digest(b"{}");
    assert_eq!(
        store
            .big_data_digest(Kind::Image, &img.id, "manifest")
            .expect("digest"),
        digest
    );
    let found = store.images_by_digest(&digest).expect("by digest");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, digest);
    assert!(store.images_by_digest("bogus").is_err());
    assert_eq!(
        store.big_data_names(Kind::Image, &img.id).expect("names"),
        vec!["manifest", "Config"]
    );
    assert!(store.big_data(Kind::Image, &img.id, "missing").is_err());
    let names = store.add_names(&img.id, &["b".to_string()]).expect("add");
    assert_eq!(names, vec!["b"]);
    store.add_names(&img.id, &["a".to_string()]).expect("add");
    assert_eq!(store.image("a").expect("img").names_history, vec!["a", "b"]);
    store.set_names(&img.id, &["c".to_string()]).expect("set");
    assert_eq!(
        store.image("c").expect("img").names_history,
        vec!["c", "a", "b"]
    );
}

#[test]
fn hand_edited_json_is_reloaded() {
    let root = TestRoot::new();
    let store = root.open();
    store.create_layer(None, &named(&["x"])).expect("x");
    assert_eq!(store.layers().expect("layers").len(), 1);
    // An edit that does not touch the lock file is noticed through the file's mtime.
    let path = root.graph("testfs-layers/layers.json");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, "[]").expect("write");
    assert!(store.layers().expect("layers").is_empty());
}

#[test]
fn wipe_removes_everything() {
    let root = TestRoot::new();
    let store = root.open();
    store.create_layer(None, &named(&["l"])).expect("l");
    store
        .create_image(
            Some("l"),
            &ImageOptions {
                names: vec!["i".into()],
                ..Default::default()
            },
        )
        .expect("img");
    store
        .create_container("i", &ContainerOptions::default())
        .expect("ctr");
    store.wipe().expect("wipe");
    assert!(store.layers().expect("l").is_empty());
    assert!(store.images().expect("i").is_empty());
    assert!(store.containers().expect("c").is_empty());
}

/// Runs the Go reference CLI on `root` with the vfs driver; `None` when it is not installed.
fn go_cli(root: &TestRoot, args: &[&str]) -> Option<std::process::Output> {
    let out = std::process::Command::new("containers-storage")
        .arg("--graph")
        .arg(root.graph(""))
        .arg("--run")
        .arg(root.run(""))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .ok()?;
    Some(out)
}

#[test]
fn go_cli_interoperates_on_files_and_locks() {
    let root = TestRoot::new();
    let Some(created) = go_cli(&root, &["create-layer", "-n", "golayer"]) else {
        eprintln!("containers-storage not installed; skipped");
        return;
    };
    assert!(created.status.success(), "{created:?}");
    // Our test driver keeps layers as <home>/dir/<id>, the vfs layout.
    let mut registry = DriverRegistry::new();
    registry.register("vfs", test_driver);
    let mut opts = root.opts.clone();
    opts.driver_name = "vfs".to_string();
    let store = Store::open(&opts, &registry).expect("open");
    let go_layer = store.layer("golayer").expect("Go's layer is visible");
    let ours = store
        .create_layer(Some("golayer"), &named(&["ourlayer"]))
        .expect("create");
    assert_eq!(ours.parent, go_layer.id);
    let listed = go_cli(&root, &["layers"]).expect("go");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("name: ourlayer") && text.contains("name: golayer"),
        "{text}"
    );

    // While we hold layers.lock exclusively, the Go CLI waits.
    let lock = LockFile::open(&root.graph("vfs-layers/layers.lock"), false).expect("lock");
    let guard = lock.lock_exclusive().expect("exclusive");
    let started = std::time::Instant::now();
    let graph = root.graph("");
    let run = root.run("");
    let child = std::thread::spawn(move || {
        std::process::Command::new("containers-storage")
            .arg("--graph")
            .arg(graph)
            .arg("--run")
            .arg(run)
            .args(["--storage-driver", "vfs", "layers"])
            .output()
            .map(|o| (o.status.success(), std::time::Instant::now()))
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let released = std::time::Instant::now();
    drop(guard);
    let (ok, finished) = child.join().expect("join").expect("run");
    assert!(ok);
    assert!(finished >= released, "Go CLI did not wait for our lock");
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));

    // Images and containers cross over too.
    let img = go_cli(&root, &["create-image", "-n", "goimage", "golayer"]).expect("go");
    assert!(img.status.success(), "{img:?}");
    let ctr = store
        .create_container(
            "goimage",
            &ContainerOptions {
                names: vec!["ourctr".into()],
                ..Default::default()
            },
        )
        .expect("container from Go's image");
    let listed = go_cli(&root, &["containers"]).expect("go");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("name: ourctr"));
    let deleted = go_cli(&root, &["delete-container", "ourctr"]).expect("go");
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(store.container(&ctr.id).is_err());
    assert!(
        store.layer(&ctr.layer).is_err(),
        "Go removed the container's layer"
    );

    // Tar-split and digests cross over: Go re-creates the tar we imported, and we
    // re-create the one Go imported.
    let tar = tar_with(&[("f.txt", b"interop"), ("g.txt", b"")]);
    let imported = store
        .import_layer(None, &named(&["ourimport"]), &mut tar.as_slice())
        .expect("import");
    let go_diff = go_cli(&root, &["diff", "-u", "ourimport"]).expect("go");
    assert!(go_diff.status.success(), "{go_diff:?}");
    assert_eq!(go_diff.stdout, tar, "Go reassembles our tar-split");
    let tar_file = root.dir.path().join("go.tar");
    let go_tar = tar_with(&[("h.txt", b"from go")]);
    std::fs::write(&tar_file, &go_tar).expect("write");
    let tar_file = tar_file.display().to_string();
    let go_import =
        go_cli(&root, &["import-layer", "-n", "goimport", "-f", &tar_file]).expect("go");
    assert!(go_import.status.success(), "{go_import:?}");
    let go_layer = store.layer("goimport").expect("Go's import");
    assert_eq!(go_layer.uncompressed_digest, sha256_digest(&go_tar));
    let mut ours_diff = Vec::new();
    store
        .diff("goimport", None, DiffCompression::None, &mut ours_diff)
        .expect("diff");
    assert_eq!(ours_diff, go_tar, "we reassemble Go's tar-split");
    store.delete_layer(&imported.id).expect("delete");

    // Records Go wrote re-serialize byte for byte.
    let go_ctr = go_cli(
        &root,
        &["create-container", "-n", "goctr", "-m", "a<b>&c", "goimage"],
    )
    .expect("go");
    assert!(go_ctr.status.success(), "{go_ctr:?}");
    let named_img = go_cli(&root, &["add-names", "-n", "x&y", "goimage"]).expect("go");
    assert!(named_img.status.success(), "{named_img:?}");
    assert_eq!(
        store.image("x&y").expect("renamed").names_history,
        vec!["x&y", "goimage"]
    );
    for (file, kind) in [
        ("vfs-layers/layers.json", 0),
        ("vfs-images/images.json", 1),
        ("vfs-containers/containers.json", 2),
    ] {
        let bytes = std::fs::read(root.graph(file)).expect("read");
        let again = match kind {
            0 => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<LayerRecord>>(&bytes).expect("parse"),
            ),
            1 => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<ImageRecord>>(&bytes).expect("parse"),
            ),
            _ => crate::gojson::to_vec(
                &serde_json::from_slice::<Vec<ContainerRecord>>(&bytes).expect("parse"),
            ),
        };
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&bytes),
            "{file}"
        );
    }

    // Go deletes our layer; we notice through its lock token.
    let deleted = go_cli(&root, &["delete-layer", &ours.id]).expect("go");
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(store.layer("ourlayer").is_err());
}

#[test]
fn split_image_store_holds_images_and_read_only_layers() {
    let root = TestRoot::new();
    let mut opts = root.opts.clone();
    let is = root.dir.path().join("is");
    opts.image_store = Some(is.clone());
    let store = Store::open(&opts, &registry()).expect("open");
    let ro = store
        .create_layer(
            None,
            &LayerOptions {
                read_only: true,
                ..named(&["ro"])
            },
        )
        .expect("ro layer");
    let rw = store
        .create_layer(Some("ro"), &named(&["rw"]))
        .expect("rw layer");
    let img = store
        .create_image(Some("ro"), &ImageOptions::default())
        .expect("img");
    let is_layers = std::fs::read_to_string(is.join("testfs-layers/layers.json")).expect("read");
    assert!(is_layers.contains(&ro.id) && !is_layers.contains(&rw.id));
    let layers = std::fs::read_to_string(root.graph("testfs-layers/layers.json")).expect("read");
    let id_key = |id: &str| format!(r#""id":"{id}""#);
    assert!(layers.contains(&id_key(&rw.id)) && !layers.contains(&id_key(&ro.id)));
    assert!(
        std::fs::read_to_string(is.join("testfs-images/images.json"))
            .expect("read")
            .contains(&img.id)
    );
    store
        .set_big_data(Kind::Layer, &ro.id, "k", b"v")
        .expect("big data");
    assert!(is.join(format!("testfs-layers/{}/k", ro.id)).exists());
    let again = Store::open(&opts, &registry()).expect("reopen");
    assert_eq!(again.layers().expect("layers").len(), 2);
    assert_eq!(again.big_data(Kind::Layer, "ro", "k").expect("get"), b"v");
}

#[test]
fn read_only_image_stores_are_visible_and_copied_on_rename() {
    let ro_root = TestRoot::new();
    let (layer, image) = {
        let ro = ro_root.open();
        let layer = ro.create_layer(None, &named(&["base"])).expect("layer");
        let image = ro
            .create_image(
                Some("base"),
                &ImageOptions {
                    names: vec!["img".into()],
                    ..Default::default()
                },
            )
            .expect("image");
        ro.set_big_data(Kind::Image, &image.id, "manifest", b"{}")
            .expect("big data");
        (layer, image)
    };
    let ro_images_json = std::fs::read(ro_root.graph("testfs-images/images.json")).expect("read");
    let root = TestRoot::new();
    let mut opts = root.opts.clone();
    opts.driver_options = vec![format!("testfs.imagestore={}", ro_root.graph("").display())];
    let store = Store::open(&opts, &registry()).expect("open");
    let layers = store.layers().expect("layers");
    assert_eq!(layers.len(), 1);
    assert!(layers[0].read_only);
    assert!(store.image("img").expect("image").read_only);
    assert_eq!(
        store.big_data(Kind::Image, "img", "manifest").expect("get"),
        b"{}"
    );
    let err = store.delete_layer(&layer.id).expect_err("read-only");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    let c = store
        .create_container("img", &ContainerOptions::default())
        .expect("container");
    assert_eq!(store.layer(&c.layer).expect("layer").parent, layer.id);
    store
        .add_names("img", &["renamed".to_string()])
        .expect("add names");
    let copy = store.image("renamed").expect("copy");
    assert_eq!(copy.id, image.id);
    assert!(!copy.read_only);
    assert_eq!(
        store
            .big_data(Kind::Image, "renamed", "manifest")
            .expect("get"),
        b"{}"
    );
    let after = std::fs::read(ro_root.graph("testfs-images/images.json")).expect("read");
    assert_eq!(after, ro_images_json, "the read-only store is untouched");
}

#[test]
fn parent_owners_need_a_mount_and_report_unmapped_owners() {
    let root = TestRoot::new();
    let store = root.open();
    let map = vec![crate::idmap::IdMap {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    }];
    let opts = LayerOptions {
        id_mappings: IdMappings {
            uids: map.clone(),
            gids: map,
        },
        ..named(&["mapped"])
    };
    store.create_layer(None, &opts).expect("layer");
    let err = store
        .layer_parent_owners("mapped")
        .expect_err("not mounted");
    assert_eq!(err.to_string(), "LayerParentOwner: layer is not mounted");
    store
        .mount("mapped", &MountOptions::default())
        .expect("mount");
    let (uids, gids) = store.layer_parent_owners("mapped").expect("owners");
    // The temp dirs above the layer belong to root (we run as root in CI) or to the
    // user running the tests: either way an ID outside 100000..165536.
    assert_eq!(uids.len(), 1, "{uids:?}");
    assert_eq!(gids.len(), 1, "{gids:?}");
    store.create_layer(None, &named(&["plain"])).expect("plain");
    store
        .mount("plain", &MountOptions::default())
        .expect("mount");
    assert_eq!(
        store.layer_parent_owners("plain").expect("owners"),
        (vec![], vec![])
    );
}

const CHILD_ENV: &str = "STORAGE_STORE_TEST_CHILD";

/// Run as a child process by `concurrent_processes_lose_nothing`: creates five layers in
/// the store named by the environment.
#[test]
fn child_creates_layers() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(graph), Some(run), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad child spec {spec:?}");
    };
    let opts = StoreOptions {
        graph_root: graph.into(),
        run_root: run.into(),
        driver_name: "testfs".to_string(),
        ..Default::default()
    };
    let store = Store::open(&opts, &registry()).expect("open");
    for i in 0..5 {
        store
            .create_layer(None, &named(&[&format!("{tag}-{i}")]))
            .expect("create");
    }
}

#[test]
fn concurrent_processes_lose_nothing() {
    let root = TestRoot::new();
    let exe = std::env::current_exe().expect("exe");
    let children: Vec<_> = (0..4)
        .map(|p| {
            let spec = format!(
                "{}|{}|p{p}",
                root.opts.graph_root.display(),
                root.opts.run_root.display()
            );
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::tests::child_creates_layers",
                    "--nocapture",
                ])
                .env(CHILD_ENV, spec)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let store = root.open();
    let layers = store.layers().expect("layers");
    assert_eq!(layers.len(), 20);
    assert!(layers.iter().all(|l| l.flags.is_empty()));
}

#[test]
fn check_finds_tampering_and_repair_removes_it() {
    let root = TestRoot::new();
    let store = root.open();
    let tar = tar_with(&[("a.txt", b"hello")]);
    let layer = store
        .import_layer(None, &named(&["imp"]), &mut tar.as_slice())
        .expect("import");
    let img = store
        .create_image(Some("imp"), &ImageOptions::default())
        .expect("img");
    store.create_layer(None, &named(&["fine"])).expect("fine");
    let opts = CheckOptions::default();
    assert!(store.check(&opts).expect("check").is_clean());
    std::fs::write(
        root.graph(&format!("testfs/dir/{}/a.txt", layer.id)),
        b"HELLO",
    )
    .expect("tamper");
    let report = store.check(&opts).expect("check");
    let problems = &report.layers[&layer.id];
    assert!(
        problems[0].contains("file integrity checksum failed"),
        "{problems:?}"
    );
    assert_eq!(report.layers.len(), 1);
    assert!(store
        .check(&CheckOptions {
            quick: true,
            ..Default::default()
        })
        .expect("quick")
        .is_clean());
    store.repair(&report, false).expect("repair");
    assert!(store.layer("imp").is_err());
    assert!(store.image(&img.id).is_err());
    assert!(store.layer("fine").is_ok());
    assert!(store.check(&opts).expect("check").is_clean());
}

#[test]
fn check_reports_missing_data_and_unaccounted_layers_and_gc_removes_them() {
    let root = TestRoot::new();
    let store = root.open();
    let img = store
        .create_image(None, &ImageOptions::default())
        .expect("img");
    store
        .set_big_data(Kind::Image, &img.id, "manifest", b"{}")
        .expect("set");
    std::fs::remove_file(root.graph(&format!("testfs-images/{}/manifest", img.id))).expect("rm");
    let stray = store
        .create_storage_layer(None, &LayerOptions::default())
        .expect("driver-only layer");
    assert!(store.layers().expect("layers").is_empty());
    let report = store.check(&CheckOptions::default()).expect("check");
    assert_eq!(
        report.images[&img.id],
        vec![format!(
            "data item \"manifest\": {}",
            check::IMAGE_DATA_MISSING
        )]
    );
    assert_eq!(
        report.layers[&stray],
        vec![check::LAYER_UNACCOUNTED.to_string()]
    );
    std::fs::create_dir_all(root.graph("testfs-layers/deadbeef")).expect("stray dir");
    assert_eq!(store.gc().expect("gc"), vec![stray.clone()]);
    assert!(!root.graph(&format!("testfs/dir/{stray}")).exists());
    assert!(!root.graph("testfs-layers/deadbeef").exists());
    assert!(
        root.graph(&format!("testfs-images/{}", img.id)).exists(),
        "known image kept"
    );
}

#[test]
fn unreferenced_old_layers_are_reported() {
    let root = TestRoot::new();
    let store = root.open();
    let used = store.create_layer(None, &named(&["used"])).expect("used");
    store
        .create_image(Some("used"), &ImageOptions::default())
        .expect("img");
    let loose = store.create_layer(None, &named(&["loose"])).expect("loose");
    let opts = CheckOptions {
        quick: true,
        max_unreferenced_age: Some(std::time::Duration::ZERO),
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    let report = store.check(&opts).expect("check");
    assert_eq!(report.layers.keys().collect::<Vec<_>>(), vec![&loose.id]);
    assert!(!report.layers.contains_key(&used.id));
}
