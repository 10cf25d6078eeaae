//! Operations on a name of any kind, resolved layer first, then image, then container:
//! which kinds it names, its names, its metadata, and `delete`.
//!
//! An unknown name is `layer not known` (upstream's lookups end with the layer store's
//! error; the Go CLI prints it for `get-names` and `delete`), except for `set_metadata`,
//! where upstream answers `identifier is not a layer, image, or container`.

use super::big_data::copy_image_big_data;
use super::images::find_image;
use super::layers::find_layer;
use super::{Kind, State, Store, StoreError};
use crate::containers::ContainerRecord;
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use crate::records::{dedup, Record, RecordSet};

/// An object a name resolves to.
enum Resolved {
    Layer(LayerRecord),
    Image(ImageRecord),
    Container(ContainerRecord),
}

impl Resolved {
    fn kind(&self) -> Kind {
        match self {
            Resolved::Layer(_) => Kind::Layer,
            Resolved::Image(_) => Kind::Image,
            Resolved::Container(_) => Kind::Container,
        }
    }

    fn metadata(self) -> String {
        match self {
            Resolved::Layer(l) => l.metadata,
            Resolved::Image(i) => i.metadata,
            Resolved::Container(c) => c.metadata,
        }
    }

    fn names(self) -> Vec<String> {
        match self {
            Resolved::Layer(l) => l.names,
            Resolved::Image(i) => i.names,
            Resolved::Container(c) => c.names,
        }
    }
}

/// Everything `name` resolves to, in lookup order: layer (writable store, then read-only
/// ones), image (likewise), container.
fn resolve_all(st: &State, name: &str) -> Vec<Resolved> {
    let layer = find_layer(st, name).map(Resolved::Layer);
    let image = find_image(st, name).map(Resolved::Image);
    let container = st.containers.get(name).cloned().map(Resolved::Container);
    [layer, image, container].into_iter().flatten().collect()
}

/// What `name` resolves to first; an unknown name is an unknown layer, as upstream.
fn resolve(st: &State, name: &str) -> Result<Resolved, StoreError> {
    resolve_all(st, name)
        .into_iter()
        .next()
        .ok_or(StoreError::LayerUnknown)
}

impl Store {
    /// Which kind `name` resolves to first (layer, image, container).
    pub fn exists(&self, name: &str) -> Result<Option<Kind>, StoreError> {
        Ok(self.kinds_of(name)?.first().copied())
    }

    /// Every kind `name` resolves to.
    pub fn kinds_of(&self, name: &str) -> Result<Vec<Kind>, StoreError> {
        self.read(|st| Ok(resolve_all(st, name).iter().map(Resolved::kind).collect()))
    }

    /// Deletes a layer, image or container without safety checks.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if ctx.st.layers.find(name).is_some() {
                return ctx.remove_layer(name);
            }
            if ctx.st.images.find(name).is_some() {
                return ctx.remove_image(name);
            }
            if ctx.st.containers.find(name).is_some() {
                return ctx.remove_container(name);
            }
            if let Some(l) = ctx.find_layer(name) {
                return Err(StoreError::ReadOnly {
                    what: "layer",
                    id: l.id,
                });
            }
            if let Some(i) = find_image(ctx.st, name) {
                return Err(StoreError::ReadOnly {
                    what: "image",
                    id: i.id,
                });
            }
            Err(StoreError::LayerUnknown)
        })
    }

    /// Metadata of a layer, image or container (in that lookup order).
    pub fn metadata(&self, name: &str) -> Result<String, StoreError> {
        self.read(|st| Ok(resolve(st, name)?.metadata()))
    }

    /// Sets the metadata of a layer, image or container.
    pub fn set_metadata(&self, name: &str, metadata: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if let Some(i) = ctx.st.layers.find(name) {
                ctx.st.layers.records[i].metadata = metadata.to_string();
                return ctx.save_layers();
            }
            if let Some(i) = ctx.st.images.find(name) {
                ctx.st.images.records[i].metadata = metadata.to_string();
                return ctx.save_images();
            }
            if let Some(i) = ctx.st.containers.find(name) {
                ctx.st.containers.records[i].metadata = metadata.to_string();
                return ctx.save_containers();
            }
            if find_layer(ctx.st, name).is_some() || find_image(ctx.st, name).is_some() {
                return Err(StoreError::ReadOnly {
                    what: "object",
                    id: name.to_string(),
                });
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Names of a layer, image or container.
    pub fn names(&self, name: &str) -> Result<Vec<String>, StoreError> {
        self.read(|st| Ok(resolve(st, name)?.names()))
    }

    /// Adds names; returns the resulting names.
    pub fn add_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Add)
    }

    /// Removes names; returns the resulting names.
    pub fn remove_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Remove)
    }

    /// Replaces names; returns the resulting names.
    pub fn set_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Set)
    }

    fn update_names(
        &self,
        name: &str,
        names: &[String],
        op: NameOp,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| {
            if let Some(i) = ctx.st.layers.find(name) {
                let result = apply_name_op(&mut ctx.st.layers, i, names, op);
                ctx.save_layers()?;
                return Ok(result);
            }
            if ctx.st.images.find(name).is_none() {
                // A read-only image is copied into the writable store first (upstream's `store.go`,
                // additional image stores).
                if let Some(ro) = ctx.st.ro_images.iter().find_map(|s| s.get(name).cloned()) {
                    copy_image_big_data(&ro, self)?;
                    let mut copy = ro;
                    copy.read_only = false;
                    ctx.st.images.records.push(copy);
                }
            }
            if let Some(i) = ctx.st.images.find(name) {
                let result = apply_name_op(&mut ctx.st.images, i, names, op);
                let image = &mut ctx.st.images.records[i];
                if op != NameOp::Remove {
                    // Each resulting name is prepended in turn, as upstream's
                    // `addNameToHistory` (1.60: adding `other` to `img` gives the names
                    // ["other","img"] and the history ["img","other"]).
                    let mut history: Vec<String> = result.iter().rev().cloned().collect();
                    history.extend(image.names_history.iter().cloned());
                    image.names_history = dedup(&history);
                }
                ctx.save_images()?;
                return Ok(result);
            }
            if let Some(i) = ctx.st.containers.find(name) {
                let result = apply_name_op(&mut ctx.st.containers, i, names, op);
                ctx.save_containers()?;
                return Ok(result);
            }
            if ctx.find_layer(name).is_some() {
                return Err(StoreError::ReadOnly {
                    what: "layer",
                    id: name.to_string(),
                });
            }
            Err(StoreError::LayerUnknown)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameOp {
    Add,
    Remove,
    Set,
}

/// Applies a names operation to record `i`, moving names away from other records.
fn apply_name_op<T: Record>(
    set: &mut RecordSet<T>,
    i: usize,
    names: &[String],
    op: NameOp,
) -> Vec<String> {
    let current = set.records[i].names().to_vec();
    let result = match op {
        // Upstream 1.60's `applyNameOperation`: the added names come first.
        NameOp::Add => {
            let mut all = names.to_vec();
            all.extend(current);
            dedup(&all)
        }
        NameOp::Remove => {
            let kept: Vec<String> = current.into_iter().filter(|n| !names.contains(n)).collect();
            dedup(&kept)
        }
        NameOp::Set => dedup(names),
    };
    set.take_names_from_others(i, &result);
    *set.records[i].names_mut() = result.clone();
    result
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{LayerOptions, StoreError};

    #[test]
    fn unknown_names_are_unknown_layers_like_upstream() {
        let root = TestRoot::new();
        let store = root.open();
        store.create_layer(None, &named(&["known"])).expect("layer");
        let nope = ["x".to_string()];
        let errors = [
            store.names("nope").expect_err("names"),
            store.add_names("nope", &nope).expect_err("add"),
            store.remove_names("nope", &nope).expect_err("remove"),
            store.set_names("nope", &nope).expect_err("set"),
            store.metadata("nope").expect_err("metadata"),
            store.delete("nope").expect_err("delete"),
        ];
        for e in errors {
            assert!(matches!(e, StoreError::LayerUnknown), "{e:?}");
            assert_eq!(e.to_string(), "layer not known");
        }
        // The Go CLI answers set-metadata differently.
        let e = store.set_metadata("nope", "md").expect_err("set-metadata");
        assert_eq!(
            e.to_string(),
            "identifier is not a layer, image, or container"
        );
        // Nothing was removed or renamed on the way.
        assert_eq!(store.layers().expect("layers").len(), 1);
        assert_eq!(store.names("known").expect("names"), vec!["known"]);
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
        assert_eq!(
            names,
            vec!["a".to_string(), "b".to_string()],
            "added first, as 1.60"
        );
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
}
