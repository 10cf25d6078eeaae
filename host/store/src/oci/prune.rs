//! Pruning: removing the layers that no image or container reaches and, when asked, the
//! images without names ("dangling") that no container uses. Layers of read-only stores
//! are never touched. Each removal goes through the store's checked deletions, so
//! something another process started using meanwhile is left alone.

use std::collections::{BTreeMap, BTreeSet};

use super::Result;
use crate::layers::LayerRecord;
use crate::store::{Store, StoreError};

/// What to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Only report what would be removed.
    pub dry_run: bool,
    /// Also remove images without names that no container uses.
    pub dangling: bool,
}

/// What was (or, in a dry run, would be) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Images removed.
    pub images: Vec<String>,
    /// Layers removed, children before parents.
    pub layers: Vec<String>,
}

/// Removes what nothing references (see the module doc).
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport> {
    let images = store.images()?;
    let containers = store.containers()?;
    let layers = store.layers()?;
    let used_images: BTreeSet<&str> = containers.iter().map(|c| c.image.as_str()).collect();
    let doomed_images: Vec<String> = images
        .iter()
        .filter(|i| {
            opts.dangling
                && i.names.is_empty()
                && !i.read_only
                && !used_images.contains(i.id.as_str())
        })
        .map(|i| i.id.clone())
        .collect();
    let by_id: BTreeMap<&str, &LayerRecord> = layers.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let roots = images
        .iter()
        .filter(|i| !doomed_images.contains(&i.id))
        .flat_map(|i| std::iter::once(&i.top_layer).chain(&i.mapped_top_layers))
        .chain(containers.iter().map(|c| &c.layer));
    for root in roots {
        let mut next = root.as_str();
        while !next.is_empty() && reached.insert(next) {
            next = by_id.get(next).map_or("", |l| l.parent.as_str());
        }
    }
    let unreached: Vec<&LayerRecord> = layers
        .iter()
        .filter(|l| !l.read_only && !reached.contains(l.id.as_str()))
        .collect();
    let report = PruneReport {
        images: doomed_images,
        layers: children_first(&unreached),
    };
    if opts.dry_run {
        return Ok(report);
    }
    for image in &report.images {
        store.delete_image(image, true)?;
    }
    for layer in &report.layers {
        match store.delete_layer(layer) {
            // Deleting an image removed the layers only it used.
            Ok(()) | Err(StoreError::LayerUnknown | StoreError::NotALayer) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// The IDs of `layers`, every layer after its children among them.
fn children_first(layers: &[&LayerRecord]) -> Vec<String> {
    let mut left: Vec<&LayerRecord> = layers.to_vec();
    let mut order = Vec::new();
    while !left.is_empty() {
        let (leaves, rest): (Vec<&LayerRecord>, Vec<&LayerRecord>) = left
            .iter()
            .copied()
            .partition(|l| !left.iter().any(|c| c.parent == l.id));
        if leaves.is_empty() {
            // A loop of parents (a damaged store): take the rest as they come.
            order.extend(rest.iter().map(|l| l.id.clone()));
            break;
        }
        order.extend(leaves.iter().map(|l| l.id.clone()));
        left = rest;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_come_before_parents() {
        let layer = |id: &str, parent: &str| LayerRecord {
            id: id.to_string(),
            parent: parent.to_string(),
            ..Default::default()
        };
        let (a, b, c, d) = (
            layer("a", ""),
            layer("b", "a"),
            layer("c", "b"),
            layer("d", "a"),
        );
        let order = children_first(&[&a, &b, &c, &d]);
        let pos = |id: &str| order.iter().position(|x| x == id).expect("listed");
        assert!(pos("c") < pos("b") && pos("b") < pos("a") && pos("d") < pos("a"));
        assert_eq!(order.len(), 4);
    }
}
