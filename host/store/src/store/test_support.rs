//! Fixtures of the store's unit tests: a graph driver that keeps layers as plain
//! directories (a test double: no mounts, copies of parents), and a store in a temp dir.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::StoreOptions;
use crate::store::{LayerOptions, Store};
use storage_driver::idmap::IdMappings;
use storage_driver::{
    ApplyDiffOpts, Change, ChangeKind, CreateOpts, DriverError, DriverInit, DriverRegistry,
    DriverResult, FileGetter, GraphDriver, MountOpts,
};

/// IDs with this prefix fail to be created, after leaving some data behind (rollback tests).
const DOOMED: &str = "doomed";
/// Layers with IDs with this prefix cannot be unmounted (a busy mount).
pub(super) const STUCK: &str = "stuck";

pub(super) struct DirDriver {
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

pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
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
    fn put(&self, id: &str) -> DriverResult<()> {
        if id.starts_with(STUCK) {
            return Err(DriverError::io(
                "unmount",
                std::io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
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
        _parent_maps: &IdMappings,
        out: &mut dyn Write,
    ) -> DriverResult<()> {
        let mut builder = tar::Builder::new(out);
        builder
            .append_dir_all(".", self.dir(id))
            .map_err(io_err("tar"))?;
        builder.finish().map_err(io_err("tar"))
    }
    fn changes(
        &self,
        id: &str,
        _maps: &IdMappings,
        parent: Option<&str>,
        _parent_maps: &IdMappings,
    ) -> DriverResult<Vec<Change>> {
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
                    path: path.clone().into_bytes(),
                    kind: ChangeKind::Add,
                }),
                Some(d) if d != data => changes.push(Change {
                    path: path.clone().into_bytes(),
                    kind: ChangeKind::Modify,
                }),
                _ => {}
            }
        }
        for path in old.keys().filter(|p| !new.contains_key(*p)) {
            changes.push(Change {
                path: path.clone().into_bytes(),
                kind: ChangeKind::Delete,
            });
        }
        Ok(changes)
    }
    fn diff_size(
        &self,
        id: &str,
        maps: &IdMappings,
        parent: Option<&str>,
        parent_maps: &IdMappings,
    ) -> DriverResult<u64> {
        let mut new = BTreeMap::new();
        files_of(&self.dir(id), "", &mut new);
        let changes = self.changes(id, maps, parent, parent_maps)?;
        Ok(changes
            .iter()
            .filter_map(|c| new.get(String::from_utf8_lossy(&c.path).as_ref()))
            .map(|d| d.len() as u64)
            .sum())
    }
    fn diff_getter(&self, id: &str) -> DriverResult<Box<dyn FileGetter + '_>> {
        Ok(Box::new(DirFiles { root: self.dir(id) }))
    }
}

pub(super) struct DirFiles {
    root: PathBuf,
}

impl FileGetter for DirFiles {
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        use std::os::unix::ffi::OsStrExt;
        let rel = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
        let file = std::fs::File::open(self.root.join(rel.strip_prefix("/").unwrap_or(rel)))
            .map_err(io_err("open"))?;
        Ok(Box::new(file))
    }
}

pub(super) fn test_driver(init: &DriverInit) -> DriverResult<Box<dyn GraphDriver>> {
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

pub(super) struct TestRoot {
    pub(super) dir: tempfile::TempDir,
    pub(super) opts: StoreOptions,
}

impl TestRoot {
    pub(super) fn new() -> TestRoot {
        Self::with(false)
    }
    pub(super) fn with(transient: bool) -> TestRoot {
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
    pub(super) fn open(&self) -> Store {
        Store::open(&self.opts, &registry()).expect("open store")
    }
    pub(super) fn graph(&self, rel: &str) -> PathBuf {
        self.dir.path().join("graph").join(rel)
    }
    pub(super) fn run(&self, rel: &str) -> PathBuf {
        self.dir.path().join("run").join(rel)
    }
}

pub(super) fn registry() -> DriverRegistry {
    let mut r = DriverRegistry::new();
    r.register("testfs", test_driver);
    r
}

pub(super) fn named(names: &[&str]) -> LayerOptions {
    LayerOptions {
        names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub(super) fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
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
