//! Commands about any kind of object: exists, metadata, set-metadata, get-names,
//! add-names, remove-names, set-names.

use std::collections::BTreeMap;
use storage_store::store::{Kind, Store, StoreError};

use super::{metadata_param, print_json, CliError, Ctx};
use crate::outln;

/// The arguments without repeats, in first-seen order (upstream keys a map by them).
fn unique_args(args: &[String]) -> Vec<&str> {
    let mut seen = std::collections::BTreeSet::new();
    args.iter()
        .map(String::as_str)
        .filter(|a| seen.insert(*a))
        .collect()
}

/// `exists [-q] [-l|-i|-c] [-j] NAME...`.
///
/// Spec quirk 3 kept: the printed value is whether the name exists as anything; only the
/// exit status honours `-l/-i/-c`.
pub fn exists(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let flags = &ctx.inv.flags;
    let wanted: Vec<Kind> = [
        (flags.bool("layer"), Kind::Layer),
        (flags.bool("image"), Kind::Image),
        (flags.bool("container"), Kind::Container),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.then_some(kind))
    .collect();
    let mut any_missing = false;
    let mut results: Vec<(&str, bool)> = Vec::new();
    for arg in unique_args(&ctx.inv.args) {
        let kinds = ctx.store.kinds_of(arg)?;
        let exists = !kinds.is_empty();
        let satisfied = exists && wanted.iter().all(|k| kinds.contains(k));
        any_missing |= !satisfied;
        results.push((arg, exists));
    }
    if ctx.inv.json() {
        let map: BTreeMap<&str, bool> = results.iter().copied().collect();
        print_json(ctx.out, &map)?;
    } else if !flags.bool("quiet") {
        for (arg, exists) in &results {
            outln!(ctx.out, "{arg}: {exists}")?;
        }
    }
    Ok(i32::from(any_missing))
}

/// `metadata [-q] [-j] NAME...`: a missing name still prints `NAME: ` and makes the
/// status 1, as upstream.
pub fn metadata(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut found: BTreeMap<&str, String> = BTreeMap::new();
    let mut missing_any = false;
    for arg in &ctx.inv.args {
        match ctx.store.metadata(arg) {
            Ok(md) => {
                let trimmed = md.strip_suffix('\n').unwrap_or(&md).to_string();
                found.insert(arg.as_str(), trimmed);
            }
            Err(_) => missing_any = true,
        }
    }
    if ctx.inv.json() {
        print_json(ctx.out, &found)?;
    } else {
        let quiet = ctx.inv.flags.bool("quiet");
        for arg in &ctx.inv.args {
            let md = found.get(arg.as_str()).map(String::as_str).unwrap_or("");
            if quiet {
                outln!(ctx.out, "{md}")?;
            } else {
                outln!(ctx.out, "{arg}: {md}")?;
            }
        }
    }
    Ok(i32::from(missing_any))
}

/// `set-metadata -m TEXT | -f FILE NAME`.
pub fn set_metadata(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let flags = &ctx.inv.flags;
    if flags.value_or_empty("metadata").is_empty()
        && flags.value_or_empty("metadata-file").is_empty()
    {
        return Err(CliError::Message("no new metadata provided".to_string()));
    }
    let md = metadata_param(ctx.inv)?;
    ctx.store.set_metadata(ctx.inv.first_arg(), &md)?;
    Ok(0)
}

/// `get-names NAME`.
pub fn get_names(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let names = ctx.store.names(ctx.inv.first_arg())?;
    if ctx.inv.json() {
        print_json(ctx.out, &names)?;
    } else {
        for name in &names {
            outln!(ctx.out, "{name}")?;
        }
    }
    Ok(0)
}

/// A store call that changes the names of an object and returns the new names.
type NamesChange = fn(&Store, &str, &[String]) -> Result<Vec<String>, StoreError>;

fn change_names(ctx: &mut Ctx<'_>, op: NamesChange) -> Result<i32, CliError> {
    let names = op(ctx.store, ctx.inv.first_arg(), ctx.inv.flags.list("name"))?;
    if ctx.inv.json() {
        print_json(ctx.out, &names)?;
    }
    Ok(0)
}

/// `add-names -n NAME... ID`.
pub fn add_names(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    change_names(ctx, |s, id, names| s.add_names(id, names))
}

/// `remove-names -n NAME... ID`.
pub fn remove_names(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    change_names(ctx, |s, id, names| s.remove_names(id, names))
}

/// `set-names -n NAME... ID`.
pub fn set_names(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    change_names(ctx, |s, id, names| s.set_names(id, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_args_keep_first_order() {
        let args: Vec<String> = ["b", "a", "b", "c", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unique_args(&args), ["b", "a", "c"]);
    }
}
