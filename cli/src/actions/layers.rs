//! Layer commands: layers, storage-layers, layer, layer-parent-owners, create-layer,
//! create-storage-layer, import-layer.

use serde::Serialize;
use std::borrow::Borrow;
use storage_store::containers::ContainerRecord;
use storage_store::images::ImageRecord;
use storage_store::layers::LayerRecord;
use storage_store::records::{FastHash, FastMap};
use storage_store::store::{Kind, LayerOptions};

use super::{go_slice, open_input, print_created, print_json, CliError, Ctx};
use crate::idmaps;
use crate::outln;
use crate::tree::{self, TreeNode};

/// `layers [-t] [-q] [-j]`.
pub fn layers(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let json = ctx.inv.json();
    let tree = ctx.inv.flags.bool("tree");
    let quick = ctx.inv.flags.bool("quick") && !tree;
    // The records are borrowed under one read, not copied; the output is made there and
    // written after the locks are released. Only the plain and tree listings name images
    // and containers: `-j` and `-q` never read their files.
    let text = if json {
        ctx.store.with_records(&[Kind::Layer], |view| {
            storage_store::gojson::nil_slice_to_string(&view.layers()) + "\n"
        })?
    } else if quick {
        ctx.store.with_records(&[Kind::Layer], |view| {
            listing::<_, ImageRecord>(&view.layers(), &[], &[], true)
        })?
    } else {
        let all = [Kind::Layer, Kind::Image, Kind::Container];
        match ctx.store.with_records(&all, |view| {
            render(&view.layers(), &view.images(), view.containers(), tree)
        }) {
            Ok(text) => text,
            // Upstream ignores failures to list images and containers here.
            Err(_) => {
                let images = ctx.store.images().unwrap_or_default();
                let images: Vec<&ImageRecord> = images.iter().collect();
                let containers = ctx.store.containers().unwrap_or_default();
                ctx.store.with_records(&[Kind::Layer], |view| {
                    render(&view.layers(), &images, &containers, tree)
                })?
            }
        }
    };
    ctx.out
        .write_all(text.as_bytes())
        .map_err(|e| CliError::io("writing output", e))?;
    Ok(0)
}

/// The plain or tree listing of `layers`.
fn render(
    layers: &[&LayerRecord],
    images: &[&ImageRecord],
    containers: &[ContainerRecord],
    tree: bool,
) -> String {
    if tree {
        tree::render(&tree_nodes(layers, images, containers))
    } else {
        listing(layers, images, containers, false)
    }
}

/// Images by each layer they have on top (the top layer and its mapped copies).
fn images_by_top_layer<I: Borrow<ImageRecord>>(images: &[I]) -> FastMap<&str, Vec<&ImageRecord>> {
    let mut map: FastMap<&str, Vec<&ImageRecord>> =
        FastMap::with_capacity_and_hasher(images.len(), FastHash);
    for image in images {
        let image = image.borrow();
        for layer in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
            map.entry(layer.as_str()).or_default().push(image);
        }
    }
    map
}

/// The container whose layer each layer is (the last one wins, as in upstream's map).
fn containers_by_layer(containers: &[ContainerRecord]) -> FastMap<&str, &ContainerRecord> {
    containers.iter().map(|c| (c.layer.as_str(), c)).collect()
}

/// The plain `layers` listing.
pub fn listing<L: Borrow<LayerRecord>, I: Borrow<ImageRecord>>(
    layers: &[L],
    images: &[I],
    containers: &[ContainerRecord],
    quick: bool,
) -> String {
    let image_map = images_by_top_layer(images);
    let container_map = containers_by_layer(containers);
    // Pieces pushed one by one: a `format!` per line was a tenth of a listing's time.
    let mut out = String::new();
    let mut line = |parts: &[&str]| {
        for part in parts {
            out.push_str(part);
        }
        out.push('\n');
    };
    for layer in layers {
        let layer = layer.borrow();
        line(&[&layer.id]);
        if quick {
            continue;
        }
        for name in &layer.names {
            line(&["\tname: ", name]);
        }
        for image in image_map.get(layer.id.as_str()).into_iter().flatten() {
            line(&["\timage: ", &image.id]);
            for name in &image.names {
                line(&["\t\tname: ", name]);
            }
        }
        if let Some(container) = container_map.get(layer.id.as_str()) {
            line(&["\tcontainer: ", &container.id]);
            for name in &container.names {
                line(&["\t\tname: ", name]);
            }
        }
    }
    out
}

/// The nodes of `layers --tree`, notes in upstream's order.
pub fn tree_nodes<L: Borrow<LayerRecord>, I: Borrow<ImageRecord>>(
    layers: &[L],
    images: &[I],
    containers: &[ContainerRecord],
) -> Vec<TreeNode> {
    let image_map = images_by_top_layer(images);
    let container_map = containers_by_layer(containers);
    layers
        .iter()
        .map(|layer| {
            let layer = layer.borrow();
            let mut notes: Vec<String> = layer.names.iter().map(|n| format!("name: {n}")).collect();
            if !layer.mount_point.is_empty() {
                notes.push(format!("mount: {}", layer.mount_point));
            }
            for image in image_map.get(layer.id.as_str()).into_iter().flatten() {
                notes.push(format!("image: {}", image.id));
                notes.extend(image.names.iter().map(|n| format!("image name: {n}")));
            }
            if let Some(container) = container_map.get(layer.id.as_str()) {
                notes.push(format!("container: {}", container.id));
                notes.extend(
                    container
                        .names
                        .iter()
                        .map(|n| format!("container name: {n}")),
                );
            }
            TreeNode {
                parent: if layer.parent.is_empty() {
                    "(base)".to_string()
                } else {
                    layer.parent.clone()
                },
                child: layer.id.clone(),
                notes,
            }
        })
        .collect()
}

/// `storage-layers [-j]`: the layers the driver has, records or not.
pub fn storage_layers(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let layers = ctx.store.storage_layers()?;
    if ctx.inv.json() {
        print_json(ctx.out, &layers)?;
    } else {
        for id in &layers {
            outln!(ctx.out, "{id}")?;
        }
    }
    Ok(0)
}

/// `layer ID...`: exit 1 when any argument matches nothing, without a message.
pub fn layer(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let matched: Vec<LayerRecord> =
        super::lookup_all(ctx.err, &ctx.inv.args, |arg| ctx.store.layer(arg))?;
    if ctx.inv.json() {
        print_json(ctx.out, &matched)?;
    } else {
        for layer in &matched {
            outln!(ctx.out, "{}", describe_layer(layer))?;
        }
    }
    Ok(i32::from(matched.len() != ctx.inv.args.len()))
}

/// The text `layer` prints for one layer (without the final newline).
pub fn describe_layer(layer: &LayerRecord) -> String {
    let mut lines = vec![format!("ID: {}", layer.id)];
    for m in &layer.uid_map {
        lines.push(format!(
            "UID mapping: (container={}, host={}, size={})",
            m.container_id, m.host_id, m.size
        ));
    }
    for m in &layer.gid_map {
        lines.push(format!(
            "GID mapping: (container={}, host={}, size={})",
            m.container_id, m.host_id, m.size
        ));
    }
    if !layer.parent.is_empty() {
        lines.push(format!("Parent: {}", layer.parent));
    }
    for name in &layer.names {
        lines.push(format!("Name: {name}"));
    }
    if layer.read_only {
        lines.push("Read Only: true".to_string());
    }
    lines.join("\n")
}

/// The JSON object of `layer-parent-owners -j` and `container-parent-owners -j`.
#[derive(Serialize)]
pub struct ParentOwners<'a> {
    /// The layer or container ID.
    #[serde(rename = "ID")]
    pub id: &'a str,
    /// Unmapped parent UIDs (`null` when none, as Go's nil slice).
    #[serde(rename = "UIDs")]
    pub uids: Option<&'a [u32]>,
    /// Unmapped parent GIDs (`null` when none).
    #[serde(rename = "GIDs")]
    pub gids: Option<&'a [u32]>,
}

impl<'a> ParentOwners<'a> {
    /// The object for `id`, empty lists encoded as `null`.
    pub fn new(id: &'a str, uids: &'a [u32], gids: &'a [u32]) -> Self {
        ParentOwners {
            id,
            uids: (!uids.is_empty()).then_some(uids),
            gids: (!gids.is_empty()).then_some(gids),
        }
    }
}

/// `layer-parent-owners ID...`.
pub fn layer_parent_owners(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let matched: Vec<LayerRecord> =
        super::lookup_all(ctx.err, &ctx.inv.args, |arg| ctx.store.layer(arg))?;
    for layer in &matched {
        let (uids, gids) = ctx.store.layer_parent_owners(&layer.id)?;
        if ctx.inv.json() {
            print_json(ctx.out, &ParentOwners::new(&layer.id, &uids, &gids))?;
        } else {
            outln!(ctx.out, "ID: {}", layer.id)?;
            if !uids.is_empty() {
                outln!(ctx.out, "UIDs: {}", go_slice(&uids))?;
            }
            if !gids.is_empty() {
                outln!(ctx.out, "GIDs: {}", go_slice(&gids))?;
            }
        }
    }
    Ok(i32::from(matched.len() != ctx.inv.args.len()))
}

/// The options of create-layer and import-layer.
fn layer_options(ctx: &Ctx<'_>) -> Result<LayerOptions, CliError> {
    let flags = &ctx.inv.flags;
    Ok(LayerOptions {
        id: flags
            .value("id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        names: flags.list("name").to_vec(),
        mount_label: flags.value_or_empty("label").to_string(),
        read_only: flags.bool("readonly"),
        id_mappings: idmaps::from_flags(flags)?,
        volatile: false,
    })
}

/// The parent argument: absent or empty means no parent.
fn parent_arg(ctx: &Ctx<'_>) -> Option<String> {
    ctx.inv.args.first().filter(|p| !p.is_empty()).cloned()
}

/// `create-layer [PARENT]`.
pub fn create_layer(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let opts = layer_options(ctx)?;
    let parent = parent_arg(ctx);
    let layer = ctx.store.create_layer(parent.as_deref(), &opts)?;
    print_created(ctx, &layer.id, &layer.names, &layer)?;
    Ok(0)
}

/// `create-storage-layer [PARENT]`: a layer in the driver only, with no record (`check`
/// reports it as unaccounted). Prints the ID (`-j`: as a JSON string).
pub fn create_storage_layer(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let opts = layer_options(ctx)?;
    let parent = parent_arg(ctx);
    let id = ctx.store.create_storage_layer(parent.as_deref(), &opts)?;
    if ctx.inv.json() {
        print_json(ctx.out, &id)?;
    } else {
        outln!(ctx.out, "{id}")?;
    }
    Ok(0)
}

/// `import-layer [PARENT] [-f FILE]`.
pub fn import_layer(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut input = open_input(ctx.inv.flags.value("file").filter(|f| !f.is_empty()))?;
    let opts = layer_options(ctx)?;
    let parent = parent_arg(ctx);
    let layer = ctx
        .store
        .import_layer(parent.as_deref(), &opts, &mut input)?;
    print_created(ctx, &layer.id, &layer.names, &layer)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_driver::idmap::IdMap;

    fn layer(id: &str, parent: &str, names: &[&str]) -> LayerRecord {
        LayerRecord {
            id: id.into(),
            parent: parent.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn listing_shows_names_images_and_containers() {
        let layers = vec![layer("L1", "", &["base"]), layer("L2", "L1", &[])];
        let images = vec![ImageRecord {
            id: "I1".into(),
            top_layer: "L1".into(),
            names: vec!["img".into()],
            ..Default::default()
        }];
        let containers = vec![ContainerRecord {
            id: "C1".into(),
            layer: "L2".into(),
            names: vec!["ctr".into()],
            ..Default::default()
        }];
        assert_eq!(
            listing(&layers, &images, &containers, false),
            "L1\n\tname: base\n\timage: I1\n\t\tname: img\nL2\n\tcontainer: C1\n\t\tname: ctr\n"
        );
        assert_eq!(listing(&layers, &images, &containers, true), "L1\nL2\n");
    }

    #[test]
    fn tree_notes_in_upstream_order() {
        let mut l1 = layer("L1", "", &["base"]);
        l1.mount_point = "/m".into();
        let images = vec![ImageRecord {
            id: "I1".into(),
            top_layer: "L1".into(),
            names: vec!["img".into()],
            ..Default::default()
        }];
        let nodes = tree_nodes(&[l1], &images, &[]);
        assert_eq!(nodes[0].parent, "(base)");
        assert_eq!(
            nodes[0].notes,
            ["name: base", "mount: /m", "image: I1", "image name: img"]
        );
    }

    #[test]
    fn describe_layer_lines() {
        let mut l = layer("L2", "L1", &["n1", "n2"]);
        l.uid_map = vec![IdMap {
            container_id: 0,
            host_id: 1000,
            size: 10,
        }];
        l.read_only = true;
        assert_eq!(
            describe_layer(&l),
            "ID: L2\nUID mapping: (container=0, host=1000, size=10)\nParent: L1\nName: n1\nName: n2\nRead Only: true"
        );
    }

    #[test]
    fn parent_owners_json_keys() {
        let json = storage_store::gojson::to_string(&ParentOwners::new("x", &[0, 1], &[]));
        // An empty list is Go's nil slice.
        assert_eq!(json, r#"{"ID":"x","UIDs":[0,1],"GIDs":null}"#);
    }
}
