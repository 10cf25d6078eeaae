//! Big-data and directory commands: list/get/set-{layer,image,container}-data,
//! get-{image,container}-data-{size,digest}, get-{image,container}-[run-]dir.

use std::io::Write;
use storage_store::store::{Kind, StoreError};

use super::{create_output, print_json, read_input, CliError, Ctx};
use crate::outln;

/// Resolves the first argument to the ID of an object of `kind`. An unknown image is
/// reported as upstream's `Store.Image` reports it, which these commands print.
fn resolve(ctx: &Ctx<'_>, kind: Kind) -> Result<String, CliError> {
    let arg = ctx.inv.first_arg();
    Ok(match kind {
        Kind::Layer => ctx.store.layer(arg)?.id,
        Kind::Image => match ctx.store.image(arg) {
            Ok(image) => image.id,
            Err(StoreError::ImageUnknown) => {
                return Err(StoreError::ImageNotLocated {
                    image: arg.to_string(),
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        },
        Kind::Container => ctx.store.container(arg)?.id,
    })
}

fn key_arg(ctx: &Ctx<'_>) -> String {
    ctx.inv.args.get(1).cloned().unwrap_or_default()
}

fn list_data(ctx: &mut Ctx<'_>, kind: Kind) -> Result<i32, CliError> {
    let id = resolve(ctx, kind)?;
    let keys = ctx.store.big_data_names(kind, &id)?;
    if ctx.inv.json() {
        print_json(ctx.out, &keys)?;
    } else {
        for key in &keys {
            outln!(ctx.out, "{key}")?;
        }
    }
    Ok(0)
}

fn get_data(ctx: &mut Ctx<'_>, kind: Kind) -> Result<i32, CliError> {
    let id = resolve(ctx, kind)?;
    // As upstream: the output file is made before the item is looked up.
    let file = match ctx.inv.flags.value("file").filter(|f| !f.is_empty()) {
        Some(path) => Some((path, create_output(path)?)),
        None => None,
    };
    let data = ctx.store.big_data(kind, &id, &key_arg(ctx))?;
    match file {
        Some((path, mut file)) => file
            .write_all(&data)
            .map_err(|e| CliError::io(format!("write {path}"), e))?,
        None => ctx
            .out
            .write_all(&data)
            .map_err(|e| CliError::io("writing output", e))?,
    }
    Ok(0)
}

fn set_data(ctx: &mut Ctx<'_>, kind: Kind) -> Result<i32, CliError> {
    let id = resolve(ctx, kind)?;
    let data = read_input(ctx.inv.flags.value("file").filter(|f| !f.is_empty()))?;
    ctx.store.set_big_data(kind, &id, &key_arg(ctx), &data)?;
    Ok(0)
}

fn data_size(ctx: &mut Ctx<'_>, kind: Kind) -> Result<i32, CliError> {
    let id = resolve(ctx, kind)?;
    let size = ctx.store.big_data_size(kind, &id, &key_arg(ctx))?;
    outln!(ctx.out, "{size}")?;
    Ok(0)
}

fn data_digest(ctx: &mut Ctx<'_>, kind: Kind) -> Result<i32, CliError> {
    let id = resolve(ctx, kind)?;
    let digest = ctx.store.big_data_digest(kind, &id, &key_arg(ctx))?;
    storage_store::digest::validate(&digest).map_err(|e| CliError::Message(e.to_string()))?;
    outln!(ctx.out, "{digest}")?;
    Ok(0)
}

/// `list-layer-data ID`.
pub fn list_layer_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    list_data(ctx, Kind::Layer)
}
/// `list-image-data ID`.
pub fn list_image_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    list_data(ctx, Kind::Image)
}
/// `list-container-data ID`.
pub fn list_container_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    list_data(ctx, Kind::Container)
}
/// `get-layer-data ID KEY`.
pub fn get_layer_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    get_data(ctx, Kind::Layer)
}
/// `get-image-data ID KEY`.
pub fn get_image_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    get_data(ctx, Kind::Image)
}
/// `get-container-data ID KEY`.
pub fn get_container_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    get_data(ctx, Kind::Container)
}
/// `set-layer-data ID KEY`.
pub fn set_layer_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    set_data(ctx, Kind::Layer)
}
/// `set-image-data ID KEY`.
pub fn set_image_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    set_data(ctx, Kind::Image)
}
/// `set-container-data ID KEY`.
pub fn set_container_data(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    set_data(ctx, Kind::Container)
}
/// `get-image-data-size ID KEY`.
pub fn get_image_data_size(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    data_size(ctx, Kind::Image)
}
/// `get-container-data-size ID KEY`.
pub fn get_container_data_size(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    data_size(ctx, Kind::Container)
}
/// `get-image-data-digest ID KEY`.
pub fn get_image_data_digest(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    data_digest(ctx, Kind::Image)
}
/// `get-container-data-digest ID KEY`.
pub fn get_container_data_digest(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    data_digest(ctx, Kind::Container)
}

fn print_dir(ctx: &mut Ctx<'_>, dir: std::path::PathBuf) -> Result<i32, CliError> {
    outln!(ctx.out, "{}", dir.display())?;
    Ok(0)
}

/// `get-image-dir ARG` (ARG used verbatim, as upstream: no lookup).
pub fn get_image_dir(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let dir = ctx.store.image_dir(ctx.inv.first_arg())?;
    print_dir(ctx, dir)
}
/// `get-image-run-dir ARG` (ARG used verbatim, as upstream: no lookup).
pub fn get_image_run_dir(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let dir = ctx.store.image_run_dir(ctx.inv.first_arg())?;
    print_dir(ctx, dir)
}
/// `get-container-dir ID`.
pub fn get_container_dir(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let dir = ctx.store.container_dir(ctx.inv.first_arg())?;
    print_dir(ctx, dir)
}
/// `get-container-run-dir ID`.
pub fn get_container_run_dir(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let dir = ctx.store.container_run_dir(ctx.inv.first_arg())?;
    print_dir(ctx, dir)
}
