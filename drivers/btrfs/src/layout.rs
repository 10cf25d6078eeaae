//! Where layers are: `<home>/subvolumes/<id>` in the driver's home, in the split image
//! store's home (`<image store>/btrfs`, image layers only) and, read-only, in the homes of
//! additional image stores (`<store>/btrfs`, as upstream's `store.go` lays them out). Lookups go
//! through here, so nothing is ever written to a read-only store.

use std::path::{Path, PathBuf};

/// Where layers live in a home.
pub const SUBVOLUMES_DIR: &str = "subvolumes";

/// A layer ID usable as one file name.
pub fn is_plain_name(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains('/') && !id.contains('\0')
}

/// The homes of the driver.
#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
    image_home: Option<PathBuf>,
    read_only_homes: Vec<PathBuf>,
}

impl Layout {
    /// The driver's home, the split image store's home and the read-only stores' homes.
    pub fn new(home: PathBuf, image_home: Option<PathBuf>, read_only_homes: Vec<PathBuf>) -> Self {
        Layout {
            home,
            image_home,
            read_only_homes,
        }
    }

    /// The driver's own home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The split image store's home, if any.
    pub fn image_home(&self) -> Option<&Path> {
        self.image_home.as_deref()
    }

    /// Where a new layer is made: image layers go to the split image store when there is one.
    pub fn subvolumes_for(&self, image_layer: bool) -> PathBuf {
        match (&self.image_home, image_layer) {
            (Some(image_home), true) => image_home.join(SUBVOLUMES_DIR),
            _ => self.home.join(SUBVOLUMES_DIR),
        }
    }

    fn writable_homes(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.home.as_path()).chain(self.image_home.as_deref())
    }

    fn all_homes(&self) -> impl Iterator<Item = &Path> {
        self.writable_homes()
            .chain(self.read_only_homes.iter().map(PathBuf::as_path))
    }

    /// The path of layer `id` in a writable home if anything is there (a layer, or the
    /// debris of an interrupted create).
    pub fn writable_dir(&self, id: &str) -> Option<PathBuf> {
        if !is_plain_name(id) {
            return None;
        }
        self.writable_homes()
            .map(|h| h.join(SUBVOLUMES_DIR).join(id))
            .find(|d| std::fs::symlink_metadata(d).is_ok())
    }

    /// The subvolume of layer `id`: in a writable home, else in the first read-only store
    /// that has it.
    pub fn find_dir(&self, id: &str) -> Option<PathBuf> {
        if !is_plain_name(id) {
            return None;
        }
        self.all_homes()
            .map(|h| h.join(SUBVOLUMES_DIR).join(id))
            .find(|d| std::fs::metadata(d).is_ok_and(|m| m.is_dir()))
    }

    /// Whether `dir` is in a read-only store.
    pub fn is_read_only(&self, dir: &Path) -> bool {
        !self.writable_homes().any(|h| dir.starts_with(h))
    }

    /// The layers of the writable homes, sorted.
    pub fn layer_ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for home in self.writable_homes() {
            let dir = home.join(SUBVOLUMES_DIR);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Some(name) = entry.file_name().to_str() {
                        ids.push(name.to_string());
                    }
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_go_home_then_image_store_then_read_only_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let (home, images, ro) = (
            tmp.path().join("h"),
            tmp.path().join("i"),
            tmp.path().join("r"),
        );
        for (root, id) in [(&home, "a"), (&images, "b"), (&ro, "c"), (&ro, "a")] {
            std::fs::create_dir_all(root.join(SUBVOLUMES_DIR).join(id)).unwrap();
        }
        let l = Layout::new(home.clone(), Some(images.clone()), vec![ro.clone()]);
        assert_eq!(l.find_dir("a"), Some(home.join("subvolumes/a")));
        assert_eq!(l.find_dir("b"), Some(images.join("subvolumes/b")));
        assert_eq!(l.find_dir("c"), Some(ro.join("subvolumes/c")));
        assert_eq!(l.find_dir("../h"), None);
        assert_eq!(l.writable_dir("c"), None, "never a read-only store's");
        assert!(l.is_read_only(&ro.join("subvolumes/c")));
        assert!(!l.is_read_only(&images.join("subvolumes/b")));
        assert_eq!(l.layer_ids().unwrap(), vec!["a", "b"]);
        assert_eq!(l.subvolumes_for(true), images.join("subvolumes"));
        assert_eq!(l.subvolumes_for(false), home.join("subvolumes"));
    }
}
