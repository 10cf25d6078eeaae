//! Deletion commands: delete, delete-layer, delete-image, delete-container.
//!
//! Each argument is tried in turn; failures are reported as `ARG: error` on stderr (or in
//! the JSON map) and make the exit status 1. Upstream iterates a Go map, so its order is
//! random; arguments are reported here in command-line order, and JSON keys sorted as Go
//! sorts map keys.

use serde::Serialize;
use std::collections::BTreeMap;
use storage_store::store::StoreError;

use super::{print_json, CliError, Ctx};
use crate::outln;

fn delete_each(
    ctx: &mut Ctx<'_>,
    op: impl Fn(&Ctx<'_>, &str) -> Result<(), StoreError>,
) -> Result<i32, CliError> {
    let mut results: Vec<(String, String)> = Vec::new();
    for arg in &ctx.inv.args {
        let err = op(ctx, arg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        results.push((arg.clone(), err));
    }
    if ctx.inv.json() {
        let map: BTreeMap<&str, &str> = results
            .iter()
            .map(|(a, e)| (a.as_str(), e.as_str()))
            .collect();
        print_json(ctx.out, &map)?;
    } else {
        for (arg, err) in results.iter().filter(|(_, e)| !e.is_empty()) {
            outln!(ctx.err, "{arg}: {err}")?;
        }
    }
    Ok(i32::from(results.iter().any(|(_, e)| !e.is_empty())))
}

/// `delete NAME...`: any kind, no safety checks.
pub fn delete(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    delete_each(ctx, |ctx, arg| ctx.store.delete(arg))
}

/// `delete-layer NAME...`, with the checks for children, images and containers.
///
/// Fix of an upstream quirk: upstream compares the *argument* with the parents of
/// other layers, so a layer named by name skips the check and its children are orphaned.
/// The name is resolved to the layer's ID first, so the checks always apply.
pub fn delete_layer(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    delete_each(ctx, |ctx, arg| {
        let id = match ctx.store.layer(arg) {
            Ok(layer) => layer.id,
            // As upstream's `DeleteLayer` says it.
            Err(StoreError::LayerUnknown) => return Err(StoreError::NotALayer),
            Err(e) => return Err(e),
        };
        ctx.store.delete_layer(&id)
    })
}

/// `delete-container NAME...`.
pub fn delete_container(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    delete_each(ctx, |ctx, arg| ctx.store.delete_container(arg))
}

/// One entry of `delete-image -j`: both keys are left out when empty, as upstream's
/// `omitempty` tags do (a layerless image deleted without error is `{}`).
#[derive(Serialize)]
struct DeletedImage {
    #[serde(rename = "deleted-layers", skip_serializing_if = "Vec::is_empty")]
    deleted_layers: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

/// `delete-image [-t] NAME...`: deleted layers reported on stderr, as upstream.
pub fn delete_image(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let commit = !ctx.inv.flags.bool("test");
    let mut results: Vec<(String, DeletedImage)> = Vec::new();
    for arg in &ctx.inv.args {
        let entry = match ctx.store.delete_image(arg, commit) {
            Ok(report) => DeletedImage {
                deleted_layers: report.deleted_layers,
                error: String::new(),
            },
            Err(e) => DeletedImage {
                deleted_layers: Vec::new(),
                error: e.to_string(),
            },
        };
        results.push((arg.clone(), entry));
    }
    if ctx.inv.json() {
        let map: BTreeMap<&str, &DeletedImage> =
            results.iter().map(|(a, d)| (a.as_str(), d)).collect();
        print_json(ctx.out, &map)?;
    } else {
        for (arg, entry) in &results {
            if !entry.error.is_empty() {
                outln!(ctx.err, "{arg}: {}", entry.error)?;
            } else {
                for layer in &entry.deleted_layers {
                    outln!(ctx.err, "{arg}: {layer}")?;
                }
            }
        }
    }
    Ok(i32::from(results.iter().any(|(_, d)| !d.error.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_image_json_omits_empty_keys() {
        let ok = DeletedImage {
            deleted_layers: vec!["L".into()],
            error: String::new(),
        };
        let layerless = DeletedImage {
            deleted_layers: Vec::new(),
            error: String::new(),
        };
        let failed = DeletedImage {
            deleted_layers: Vec::new(),
            error: "image not known".into(),
        };
        let mut map = BTreeMap::new();
        map.insert("c", &failed);
        map.insert("a", &ok);
        map.insert("b", &layerless);
        assert_eq!(
            storage_store::gojson::to_string(&map),
            r#"{"a":{"deleted-layers":["L"]},"b":{},"c":{"error":"image not known"}}"#
        );
    }
}
