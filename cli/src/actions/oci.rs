//! OCI layout commands: import-oci, export-oci, verify, prune.

use std::collections::BTreeMap;

use serde::Serialize;
use storage_store::oci::{
    self, ExportOptions, ImportOptions, LayoutRef, OciError, Platform, PruneOptions,
};

use super::{print_json, CliError, Ctx};
use crate::outln;

impl From<OciError> for CliError {
    fn from(e: OciError) -> Self {
        match e {
            OciError::Store(s) => CliError::Store(s),
            other => CliError::Oci(other),
        }
    }
}

/// What `import-oci -j` prints per image.
#[derive(Serialize)]
struct ImportedJson<'a> {
    id: &'a str,
    names: &'a [String],
    digest: &'a str,
    layers: &'a [String],
    #[serde(rename = "reused-layers")]
    reused_layers: usize,
}

/// `import-oci [-n NAME] [--all] [--platform OS/ARCH[/VARIANT]] DIR[:REF]`.
pub fn import_oci(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let layout = LayoutRef::parse(ctx.inv.first_arg());
    let platform = match ctx.inv.flags.value("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p)?),
        None => None,
    };
    let opts = ImportOptions {
        reference: layout.reference.clone(),
        names: ctx.inv.flags.list("name").to_vec(),
        all: ctx.inv.flags.bool("all"),
        platform,
    };
    let mut progress = crate::progress::for_stderr();
    let images = oci::import_layout(ctx.store, &layout.dir, &opts, progress.as_mut())?;
    if ctx.inv.json() {
        let list: Vec<ImportedJson<'_>> = images
            .iter()
            .map(|i| ImportedJson {
                id: &i.id,
                names: &i.names,
                digest: &i.manifest_digest,
                layers: &i.layers,
                reused_layers: i.reused_layers,
            })
            .collect();
        print_json(ctx.out, &list)?;
        return Ok(0);
    }
    for image in &images {
        outln!(ctx.out, "{}", image.id)?;
        for name in &image.names {
            outln!(ctx.out, "\t{name}")?;
        }
    }
    Ok(0)
}

/// `export-oci IMAGE DIR[:REF]`: prints the manifest digest.
pub fn export_oci(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let image = ctx.inv.first_arg().to_string();
    let layout = LayoutRef::parse(ctx.inv.args.get(1).map_or("", String::as_str));
    if layout.dir.as_os_str().is_empty() {
        return Err(CliError::Message(
            "export-oci: no layout directory given".into(),
        ));
    }
    let opts = ExportOptions {
        reference: layout.reference.clone(),
    };
    let mut progress = crate::progress::for_stderr();
    let report = oci::export_image(ctx.store, &image, &layout.dir, &opts, progress.as_mut())?;
    if ctx.inv.json() {
        #[derive(Serialize)]
        struct Json<'a> {
            manifest: &'a str,
            config: &'a str,
            layers: &'a [String],
            rewritten: bool,
        }
        print_json(
            ctx.out,
            &Json {
                manifest: &report.manifest_digest,
                config: &report.config_digest,
                layers: &report.layers,
                rewritten: report.rewritten,
            },
        )?;
        return Ok(0);
    }
    outln!(ctx.out, "{}", report.manifest_digest)?;
    Ok(0)
}

/// `verify IMAGE...`: `image ID: ok ...` per intact image, else `image ID:` and one
/// indented line per problem; exit 1 when anything is wrong or unknown.
pub fn verify(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut code = 0;
    let mut json: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in &ctx.inv.args {
        let report = match oci::verify_image(ctx.store, name) {
            Ok(r) => r,
            Err(e) => {
                writeln!(ctx.err, "{name}: {e}").map_err(|e| CliError::io("writing", e))?;
                code = 1;
                continue;
            }
        };
        if !report.problems.is_empty() {
            code = 1;
        }
        if ctx.inv.json() {
            json.insert(report.image.clone(), report.problems.clone());
            continue;
        }
        if report.problems.is_empty() {
            outln!(
                ctx.out,
                "image {}: ok ({} layers, {} data items)",
                report.image,
                report.layers_checked,
                report.items_checked
            )?;
        } else {
            outln!(ctx.out, "image {}:", report.image)?;
            for p in &report.problems {
                outln!(ctx.out, " {p}")?;
            }
        }
    }
    if ctx.inv.json() {
        print_json(ctx.out, &json)?;
    }
    Ok(code)
}

/// `prune [--dry-run] [--dangling]`: `image ID` and `layer ID` per removal.
pub fn prune(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let opts = PruneOptions {
        dry_run: ctx.inv.flags.bool("dry-run"),
        dangling: ctx.inv.flags.bool("dangling"),
    };
    let report = oci::prune(ctx.store, &opts)?;
    if ctx.inv.json() {
        #[derive(Serialize)]
        struct Json<'a> {
            images: &'a [String],
            layers: &'a [String],
        }
        print_json(
            ctx.out,
            &Json {
                images: &report.images,
                layers: &report.layers,
            },
        )?;
        return Ok(0);
    }
    for image in &report.images {
        outln!(ctx.out, "image {image}")?;
    }
    for layer in &report.layers {
        outln!(ctx.out, "layer {layer}")?;
    }
    Ok(0)
}
