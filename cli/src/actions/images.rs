//! Image commands: images, images-by-digest, image, create-image.

use storage_store::images::ImageRecord;
use storage_store::store::{ImageOptions, StoreError};

use super::{metadata_param, print_created, print_json, print_json_nil_slice, CliError, Ctx};
use crate::outln;

/// The digests an image lists: its `digests` when the store computed them, else `digest`.
fn digests(image: &ImageRecord) -> Vec<&str> {
    if !image.digests.is_empty() {
        image.digests.iter().map(String::as_str).collect()
    } else if !image.digest.is_empty() {
        vec![image.digest.as_str()]
    } else {
        Vec::new()
    }
}

/// The text `images` prints for a list of images.
pub fn listing(images: &[ImageRecord], quiet: bool) -> String {
    let mut out = String::new();
    for image in images {
        out.push_str(&format!("{}\n", image.id));
        if quiet {
            continue;
        }
        for name in &image.names {
            out.push_str(&format!("\tname: {name}\n"));
        }
        for digest in digests(image) {
            out.push_str(&format!("\tdigest: {digest}\n"));
        }
        for key in &image.big_data_names {
            out.push_str(&format!("\tdata: {key}\n"));
        }
    }
    out
}

fn print_listing(ctx: &mut Ctx<'_>, images: &[ImageRecord]) -> Result<(), CliError> {
    if ctx.inv.json() {
        return print_json_nil_slice(ctx.out, images);
    }
    let text = listing(images, ctx.inv.flags.bool("quiet"));
    ctx.out
        .write_all(text.as_bytes())
        .map_err(|e| CliError::io("writing output", e))
}

/// `images [-q] [-j]`.
pub fn images(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let images = ctx.store.images()?;
    print_listing(ctx, &images)?;
    Ok(0)
}

/// `images-by-digest DIGEST`.
pub fn images_by_digest(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut found = Vec::new();
    for arg in &ctx.inv.args {
        // Upstream 1.60 prints go-digest's error alone.
        storage_store::digest::validate(arg).map_err(|e| CliError::Message(e.to_string()))?;
        found.extend(ctx.store.images_by_digest(arg)?);
    }
    if ctx.inv.json() {
        // Upstream starts from an empty, non-nil slice here.
        print_json(ctx.out, &found)?;
    } else {
        print_listing(ctx, &found)?;
    }
    Ok(0)
}

/// The text `image` prints for one image (size line given by the caller).
pub fn describe_image(image: &ImageRecord, size: Result<i64, StoreError>) -> String {
    let mut lines = vec![format!("ID: {}", image.id)];
    lines.extend(image.names.iter().map(|n| format!("Name: {n}")));
    lines.push(format!("Top Layer: {}", image.top_layer));
    lines.extend(
        image
            .mapped_top_layers
            .iter()
            .map(|l| format!("Top Layer: {l}")),
    );
    lines.extend(digests(image).into_iter().map(|d| format!("Digest: {d}")));
    lines.extend(image.big_data_names.iter().map(|k| format!("Data: {k}")));
    match size {
        Ok(n) => lines.push(format!("Size: {n}")),
        Err(e) => lines.push(format!("Size unknown: {e}")),
    }
    if image.read_only {
        lines.push("Read Only: true".to_string());
    }
    lines.join("\n")
}

/// `image ID...`.
pub fn image(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let matched: Vec<ImageRecord> =
        super::lookup_all(ctx.err, &ctx.inv.args, |arg| ctx.store.image(arg))?;
    if ctx.inv.json() {
        print_json(ctx.out, &matched)?;
    } else {
        for image in &matched {
            let size = image_size(ctx, image);
            outln!(ctx.out, "{}", describe_image(image, size))?;
        }
    }
    Ok(i32::from(matched.len() != ctx.inv.args.len()))
}

/// The size upstream's `ImageSize` reports (see [`storage_store::store::Store::image_size`]).
fn image_size(ctx: &Ctx<'_>, image: &ImageRecord) -> Result<i64, StoreError> {
    ctx.store.image_size(&image.id)
}

/// `create-image [TOPLAYER]`.
pub fn create_image(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let flags = &ctx.inv.flags;
    let opts = ImageOptions {
        id: flags
            .value("id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        names: flags.list("name").to_vec(),
        metadata: metadata_param(ctx.inv)?,
        digest: flags
            .value("digest")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let top = ctx.inv.args.first().filter(|a| !a.is_empty()).cloned();
    let image = ctx.store.create_image(top.as_deref(), &opts)?;
    print_created(ctx, &image.id, &image.names, &image)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_description() {
        let image = ImageRecord {
            id: "I".into(),
            names: vec!["n".into()],
            digest: "sha256:d".into(),
            top_layer: "L".into(),
            big_data_names: vec!["manifest".into()],
            ..Default::default()
        };
        assert_eq!(
            listing(std::slice::from_ref(&image), false),
            "I\n\tname: n\n\tdigest: sha256:d\n\tdata: manifest\n"
        );
        assert_eq!(listing(std::slice::from_ref(&image), true), "I\n");
        assert_eq!(
            describe_image(&image, Ok(12)),
            "ID: I\nName: n\nTop Layer: L\nDigest: sha256:d\nData: manifest\nSize: 12"
        );
        assert_eq!(
            describe_image(&image, Err(StoreError::SizeUnknown))
                .lines()
                .last(),
            Some("Size unknown: size is not known")
        );
    }
}
