//! Big data: named blobs stored next to a layer, image or container record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::images::find_image;
use super::layers::find_layer;
use super::{Kind, State, Store, StoreError};
use crate::images::ImageRecord;
use crate::records::{big_data_file_name, sha256_digest};
use crate::store_dir::StoreDir;

impl Store {
    /// Where the big data of an object lives: the directory of its kind's records in the
    /// store that holds it (RW stores, then RO), and its ID, whose folder there holds the
    /// items.
    pub(super) fn big_data_dir(
        &self,
        st: &State,
        kind: Kind,
        id: &str,
    ) -> Result<(&StoreDir, String), StoreError> {
        match kind {
            Kind::Layer => {
                let l = find_layer(st, id).ok_or(StoreError::LayerUnknown)?;
                Ok((self.layer_data_dir(st, &l.id), l.id))
            }
            Kind::Image => {
                let img = find_image(st, id).ok_or(StoreError::ImageUnknown)?;
                let in_graph_root = st
                    .graph_images
                    .as_ref()
                    .is_some_and(|set| set.has_id(&img.id));
                let ro = st.ro_images.iter().position(|s| s.has_id(&img.id));
                let dir = match ro.and_then(|i| self.ro_images_dir(i)) {
                    _ if st.images.has_id(&img.id) => &self.images_dir,
                    _ if in_graph_root => {
                        self.graph_images_dir.as_ref().unwrap_or(&self.images_dir)
                    }
                    Some(dir) => dir,
                    None => &self.images_dir,
                };
                Ok((dir, img.id))
            }
            Kind::Container => {
                let c = st.containers.get(id).ok_or(StoreError::ContainerUnknown)?;
                Ok((&self.containers_dir, c.id.clone()))
            }
        }
    }

    /// `<drv>-layers` of read-only store `i`, if it has one.
    pub(super) fn ro_layers_dir(&self, i: usize) -> Option<&Arc<StoreDir>> {
        self.read_only_stores.get(i)?.layers_dir.as_ref()
    }

    /// `<drv>-images` of read-only store `i`, if it has one.
    pub(super) fn ro_images_dir(&self, i: usize) -> Option<&Arc<StoreDir>> {
        self.read_only_stores.get(i)?.images_dir.as_ref()
    }

    /// Big-data keys of an object.
    pub fn big_data_names(&self, kind: Kind, id: &str) -> Result<Vec<String>, StoreError> {
        self.read(|st| match kind {
            Kind::Layer => Ok(find_layer(st, id)
                .ok_or(StoreError::LayerUnknown)?
                .big_data_names),
            Kind::Image => Ok(find_image(st, id)
                .ok_or(StoreError::ImageUnknown)?
                .big_data_names),
            Kind::Container => Ok(st
                .containers
                .get(id)
                .ok_or(StoreError::ContainerUnknown)?
                .big_data_names
                .clone()),
        })
    }

    /// One big-data item.
    pub fn big_data(&self, kind: Kind, id: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        self.read(|st| {
            let (parent, id) = self.big_data_dir(st, kind, id)?;
            match read_item(parent, &id, key) {
                Ok(Some(data)) => Ok(data),
                Ok(None) => Err(StoreError::BigDataUnknown {
                    kind: kind_name(kind),
                    key: key.to_string(),
                    path: item_path(parent, &id, key),
                    id,
                }),
                Err(e) => Err(StoreError::io("reading", item_path(parent, &id, key), e)),
            }
        })
    }

    /// Stores one big-data item.
    pub fn set_big_data(
        &self,
        kind: Kind,
        id: &str,
        key: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let digest = sha256_digest(data);
        let size = data.len() as i64;
        self.write(|ctx| {
            let (_, id) = self.big_data_dir(ctx.st, kind, id)?;
            // The directory of the kind's records in the writable store, if the object is there.
            let parent = match kind {
                Kind::Layer => ctx.st.layers.has_id(&id).then(|| {
                    let in_image_store = ctx.st.layers.get(&id).is_some_and(|l| l.in_image_store);
                    self.writable_layer_data_dir(in_image_store)
                }),
                Kind::Image => ctx.st.images.has_id(&id).then_some(&self.images_dir),
                Kind::Container => Some(&self.containers_dir),
            };
            let Some(parent) = parent else {
                return Err(StoreError::ReadOnly {
                    what: kind_name(kind),
                    id,
                });
            };
            write_item(parent, &id, key, data)?;
            match kind {
                Kind::Layer => {
                    if let Some(i) = ctx.st.layers.find(&id) {
                        add_key(&mut ctx.st.layers.records[i].big_data_names, key);
                    }
                    ctx.save_layers()
                }
                Kind::Image => {
                    if let Some(i) = ctx.st.images.find(&id) {
                        let image = &mut ctx.st.images.records[i];
                        let item = RecordedItems {
                            names: &mut image.big_data_names,
                            sizes: &mut image.big_data_sizes,
                            digests: &mut image.big_data_digests,
                        };
                        item.record(key, size, &digest);
                        if key.starts_with("manifest") && image.digest.is_empty() {
                            image.digest = digest.clone();
                        }
                        image.recompute_digests();
                    }
                    ctx.save_images()
                }
                Kind::Container => {
                    if let Some(i) = ctx.st.containers.find(&id) {
                        let c = &mut ctx.st.containers.records[i];
                        let item = RecordedItems {
                            names: &mut c.big_data_names,
                            sizes: &mut c.big_data_sizes,
                            digests: &mut c.big_data_digests,
                        };
                        item.record(key, size, &digest);
                    }
                    ctx.save_containers()
                }
            }
        })
    }

    /// What an image or container record says of an item: its size and digest (layer
    /// records keep neither).
    fn recorded_item(
        &self,
        kind: Kind,
        id: &str,
        key: &str,
    ) -> Result<(Option<i64>, Option<String>), StoreError> {
        let item = |sizes: &BTreeMap<String, i64>, digests: &BTreeMap<String, String>| {
            (sizes.get(key).copied(), digests.get(key).cloned())
        };
        self.read(|st| {
            let recorded = match kind {
                Kind::Image => {
                    find_image(st, id).map(|i| item(&i.big_data_sizes, &i.big_data_digests))
                }
                Kind::Container => st
                    .containers
                    .get(id)
                    .map(|c| item(&c.big_data_sizes, &c.big_data_digests)),
                Kind::Layer => None,
            };
            Ok(recorded.unwrap_or((None, None)))
        })
    }

    /// Size of one big-data item: the recorded one, else the stored item's; an item that
    /// is neither is [`StoreError::SizeUnknown`], as upstream says.
    pub fn big_data_size(&self, kind: Kind, id: &str, key: &str) -> Result<i64, StoreError> {
        match self.recorded_item(kind, id, key)?.0 {
            Some(size) => Ok(size),
            None => match self.big_data(kind, id, key) {
                Ok(data) => Ok(data.len() as i64),
                Err(StoreError::BigDataUnknown { .. }) => Err(StoreError::SizeUnknown),
                Err(e) => Err(e),
            },
        }
    }

    /// Digest of one big-data item: the recorded one, else the stored item's; an item that
    /// is neither is [`StoreError::DigestUnknown`], as upstream says.
    pub fn big_data_digest(&self, kind: Kind, id: &str, key: &str) -> Result<String, StoreError> {
        match self.recorded_item(kind, id, key)?.1 {
            Some(d) => Ok(d),
            None => match self.big_data(kind, id, key) {
                Ok(data) => Ok(sha256_digest(&data)),
                Err(StoreError::BigDataUnknown { .. }) => Err(StoreError::DigestUnknown),
                Err(e) => Err(e),
            },
        }
    }
}

/// Adds `key` to a record's big-data names unless it is there.
fn add_key(names: &mut Vec<String>, key: &str) {
    if !names.iter().any(|n| n == key) {
        names.push(key.to_string());
    }
}

/// The big-data bookkeeping of an image or container record.
struct RecordedItems<'a> {
    names: &'a mut Vec<String>,
    sizes: &'a mut BTreeMap<String, i64>,
    digests: &'a mut BTreeMap<String, String>,
}

impl RecordedItems<'_> {
    /// Records a stored item's key, size and digest.
    fn record(self, key: &str, size: i64, digest: &str) {
        add_key(self.names, key);
        self.sizes.insert(key.to_string(), size);
        self.digests.insert(key.to_string(), digest.to_string());
    }
}

/// Reads the big-data item `key` of the object `id` from `<parent>/<id>/`; `None` when the
/// object has no such item (or no folder).
pub(super) fn read_item(
    parent: &StoreDir,
    id: &str,
    key: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    let name = big_data_file_name(key);
    // A key whose file name would have a `/` (its base64 can) cannot have been stored, here
    // or by upstream, whose write of it fails the same way.
    if name.contains('/') {
        return Ok(None);
    }
    let Some(dir) = parent.open_existing_dir(id)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    Ok(dir.read_into(&name, &mut data)?.then_some(data))
}

/// The path of the big-data item `key` of the object `id` in `parent`, for messages.
pub(super) fn item_path(parent: &StoreDir, id: &str, key: &str) -> PathBuf {
    parent.path_of(id).join(big_data_file_name(key))
}

/// Writes the big-data item `key` of the object `id` into `<parent>/<id>/` (created, 0700),
/// atomically and flushed.
pub(super) fn write_item(
    parent: &StoreDir,
    id: &str,
    key: &str,
    data: &[u8],
) -> Result<(), StoreError> {
    let name = big_data_file_name(key);
    let dir = parent
        .create_dir(id)
        .map_err(|e| StoreError::io("creating directory", parent.path_of(id), e))?;
    dir.write_atomic(&name, data, true)
        .map_err(|e| StoreError::io("writing", dir.path_of(&name), e))
}

/// Copies a read-only image's big data into the writable image store.
pub(super) fn copy_image_big_data(image: &ImageRecord, store: &Store) -> Result<(), StoreError> {
    for ro in &store.read_only_stores {
        let src = ro
            .images_dir
            .as_ref()
            .and_then(|dir| dir.open_existing_dir(&image.id).ok().flatten());
        let Some(src) = src else {
            continue;
        };
        let mut data = Vec::new();
        for key in &image.big_data_names {
            // An item the read-only store lacks or cannot give is left out, as upstream's
            // copy does.
            if let Ok(true) = src.read_into(&big_data_file_name(key), &mut data) {
                write_item(&store.images_dir, &image.id, key, &data)?;
            }
        }
        break;
    }
    Ok(())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Layer => "layer",
        Kind::Image => "image",
        Kind::Container => "container",
    }
}

#[cfg(test)]
mod tests {
    use crate::records::sha256_digest;
    use crate::store::test_support::TestRoot;
    use crate::store::{ImageOptions, Kind, StoreError};

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
        // "00?" is `=MDA/` on disk: a name with a `/`, which neither we nor upstream store.
        assert!(store
            .set_big_data(Kind::Image, &img.id, "00?", b"x")
            .is_err());
        assert!(matches!(
            store.big_data(Kind::Image, &img.id, "00?"),
            Err(StoreError::BigDataUnknown { .. })
        ));
        let names = store.add_names(&img.id, &["b".to_string()]).expect("add");
        assert_eq!(names, vec!["b"]);
        store.add_names(&img.id, &["a".to_string()]).expect("add");
        // Upstream 1.60 (checked): names ["a", "b"], history ["b", "a"].
        assert_eq!(store.image("a").expect("img").names, vec!["a", "b"]);
        assert_eq!(store.image("a").expect("img").names_history, vec!["b", "a"]);
        store.set_names(&img.id, &["c".to_string()]).expect("set");
        assert_eq!(
            store.image("c").expect("img").names_history,
            vec!["c", "b", "a"]
        );
    }
}
