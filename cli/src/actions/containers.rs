//! Container commands: containers, container, container-parent-owners, create-container.

use storage_store::containers::ContainerRecord;
use storage_store::images::ImageRecord;
use storage_store::store::{ContainerOptions, StoreError};

use super::layers::ParentOwners;
use super::{go_slice, metadata_param, print_created, print_json, CliError, Ctx};
use crate::idmaps;
use crate::outln;

/// The text `containers` prints.
pub fn listing(containers: &[ContainerRecord]) -> String {
    let mut out = String::new();
    for c in containers {
        out.push_str(&format!("{}\n", c.id));
        for name in &c.names {
            out.push_str(&format!("\tname: {name}\n"));
        }
        for key in &c.big_data_names {
            out.push_str(&format!("\tdata: {key}\n"));
        }
    }
    out
}

/// `containers [-j]`: JSON is `[]` when empty (upstream's slice is never nil here).
pub fn containers(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let containers = ctx.store.containers()?;
    if ctx.inv.json() {
        print_json(ctx.out, &containers)?;
    } else {
        ctx.out
            .write_all(listing(&containers).as_bytes())
            .map_err(|e| CliError::io("writing output", e))?;
    }
    Ok(0)
}

/// The text `container` prints for one container.
pub fn describe_container(
    c: &ContainerRecord,
    images: &[ImageRecord],
    size: Result<i64, StoreError>,
) -> String {
    let mut lines = vec![format!("ID: {}", c.id)];
    lines.extend(c.names.iter().map(|n| format!("Name: {n}")));
    lines.push(format!("Image: {}", c.image));
    if let Some(image) = images.iter().find(|i| i.id == c.image) {
        lines.extend(image.names.iter().map(|n| format!("Image name: {n}")));
    }
    match size {
        Ok(n) => lines.push(format!("Size: {n}")),
        Err(e) => lines.push(format!("Size unknown: {e}")),
    }
    lines.push(format!("Layer: {}", c.layer));
    lines.extend(c.big_data_names.iter().map(|k| format!("Data: {k}")));
    lines.join("\n")
}

/// `container ID...`.
pub fn container(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let images = ctx.store.images()?;
    let matched: Vec<ContainerRecord> =
        super::lookup_all(ctx.err, &ctx.inv.args, |arg| ctx.store.container(arg))?;
    if ctx.inv.json() {
        print_json(ctx.out, &matched)?;
    } else {
        for c in &matched {
            let size = container_size(ctx, c);
            outln!(ctx.out, "{}", describe_container(c, &images, size))?;
        }
    }
    Ok(i32::from(matched.len() != ctx.inv.args.len()))
}

/// Upstream's `ContainerSize`: the container layer's diff size plus its big data.
fn container_size(ctx: &Ctx<'_>, c: &ContainerRecord) -> Result<i64, StoreError> {
    let diff = ctx.store.diff_size(&c.layer, None)?;
    let data: i64 = c.big_data_sizes.values().sum();
    Ok(i64::try_from(diff).unwrap_or(i64::MAX).saturating_add(data))
}

/// `container-parent-owners ID...`: always prints both lines.
pub fn container_parent_owners(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let matched: Vec<ContainerRecord> =
        super::lookup_all(ctx.err, &ctx.inv.args, |arg| ctx.store.container(arg))?;
    for c in &matched {
        let (uids, gids) = ctx.store.container_parent_owners(&c.id).map_err(|e| {
            // The store's message names the layer operation; say which command failed.
            match e {
                StoreError::LayerNotMounted => {
                    CliError::Message("ContainerParentOwner: layer is not mounted".to_string())
                }
                other => CliError::context("ContainerParentOwner", other),
            }
        })?;
        if ctx.inv.json() {
            print_json(ctx.out, &ParentOwners::new(&c.id, &uids, &gids))?;
        } else {
            outln!(ctx.out, "ID: {}", c.id)?;
            outln!(ctx.out, "UIDs: {}", go_slice(&uids))?;
            outln!(ctx.out, "GIDs: {}", go_slice(&gids))?;
        }
    }
    Ok(i32::from(matched.len() != ctx.inv.args.len()))
}

/// `create-container IMAGE`.
pub fn create_container(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let flags = &ctx.inv.flags;
    let opts = ContainerOptions {
        id: flags
            .value("id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        names: flags.list("name").to_vec(),
        metadata: metadata_param(ctx.inv)?,
        volatile: flags.bool("volatile"),
        id_mappings: idmaps::from_flags(flags)?,
        mount_label: String::new(),
    };
    let image = ctx.inv.args.first().cloned().unwrap_or_default();
    let container = ctx.store.create_container(&image, &opts)?;
    // Upstream prints names as "\t%s" without a newline; a newline per name keeps the
    // output line-oriented, like create-layer and create-image.
    print_created(ctx, &container.id, &container.names, &container)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_description() {
        let c = ContainerRecord {
            id: "C".into(),
            names: vec!["ctr".into()],
            image: "I".into(),
            layer: "L".into(),
            big_data_names: vec!["k".into()],
            ..Default::default()
        };
        assert_eq!(
            listing(std::slice::from_ref(&c)),
            "C\n\tname: ctr\n\tdata: k\n"
        );
        let images = vec![ImageRecord {
            id: "I".into(),
            names: vec!["img".into()],
            ..Default::default()
        }];
        assert_eq!(
            describe_container(&c, &images, Ok(5)),
            "ID: C\nName: ctr\nImage: I\nImage name: img\nSize: 5\nLayer: L\nData: k"
        );
    }
}
