//! Store-wide commands: status, version, config, shutdown, wipe, check, gc, dedup.

use std::collections::BTreeMap;

use serde::Serialize;
use storage_driver::dedup::{DedupResult, HashMethod};
use storage_store::config;
use storage_store::store::{CheckOptions, CheckReport};

use super::{print_json, CliError, Ctx};
use crate::outln;

/// The version `version` reports: the upstream release whose behaviour this CLI matches.
pub const VERSION: &str = "1.60.0-dev";

/// Formats a list as Go's `%s` of a `[]string`: `[a b]`.
fn go_string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Prints `pairs` as JSON on stdout, or as `K: V` lines on stderr, as upstream's `status`/`version`
/// do.
fn print_pairs(ctx: &mut Ctx<'_>, pairs: &[(String, String)]) -> Result<(), CliError> {
    if ctx.inv.json() {
        let arrays: Vec<[&str; 2]> = pairs
            .iter()
            .map(|(k, v)| [k.as_str(), v.as_str()])
            .collect();
        return print_json(ctx.out, &arrays);
    }
    for (k, v) in pairs {
        outln!(ctx.err, "{k}: {v}")?;
    }
    Ok(())
}

/// `status [-j]`.
pub fn status(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let store = ctx.store;
    let mut pairs = vec![
        ("Root".to_string(), store.graph_root().display().to_string()),
        (
            "Run Root".to_string(),
            store.run_root().display().to_string(),
        ),
        ("Driver Name".to_string(), store.driver_name().to_string()),
        (
            "Driver Options".to_string(),
            go_string_slice(&store.options().driver_options),
        ),
    ];
    pairs.extend(store.status()?);
    print_pairs(ctx, &pairs)?;
    Ok(0)
}

/// `version [-j]`.
pub fn version(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    print_pairs(ctx, &[("Version".to_string(), VERSION.to_string())])?;
    Ok(0)
}

/// `config [FILE]`: as upstream's JSON of `StoreOptions`, the options of `FILE`; without it,
/// the options every command runs with: the configuration's (upstream prints those whatever
/// the flags say), or, when the command line changes them (`--graph`, `--run`,
/// `--storage-driver`, `--storage-opt`, which skip the configuration file, `--image-store`,
/// `--transient-store`), the ones the command line resolves to, with the driver the store
/// started, so that `config` names the roots and driver the same flags give any command.
pub fn config(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let options = match ctx.inv.args.first() {
        Some(path) => {
            config::load_file(std::path::Path::new(path), &config::ProcessEnvironment)
                .map_err(|e| CliError::context("reload", e))?
                .options
        }
        None if crate::options::changes_options(&ctx.inv.flags) => {
            let mut options = ctx.store.options().clone();
            options.driver_name = ctx.store.driver_name().to_string();
            options
        }
        None => {
            config::load_default_options()
                .map_err(|e| CliError::context("default", e))?
                .options
        }
    };
    print_json(ctx.out, &options.to_go_json())?;
    Ok(0)
}

/// `shutdown [-f] [-j]`.
pub fn shutdown(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    ctx.store.shutdown(ctx.inv.flags.bool("force"))?;
    if ctx.inv.json() {
        print_json(ctx.out, "")?;
    }
    Ok(0)
}

/// `wipe`.
pub fn wipe(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    ctx.store.wipe()?;
    Ok(0)
}

/// Upstream's `check` and `gc` end with a forced shutdown (unmounting everything); a
/// failure there is reported on stderr without changing the outcome.
fn shutdown_after(ctx: &mut Ctx<'_>) {
    if let Err(e) = ctx.store.shutdown(true) {
        // Saying so is all there is to do; a stderr that cannot take it leaves nothing else.
        let _ = writeln!(ctx.err, "shutdown: {e}");
    }
}

/// `check [-q] [-r] [-f] [-m DURATION] [-j]`.
pub fn check(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let result = check_inner(ctx);
    shutdown_after(ctx);
    result
}

fn check_inner(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let flags = &ctx.inv.flags;
    let force = flags.bool("force");
    let repair = flags.bool("repair") || force;
    let max = flags.value("max").unwrap_or("24h");
    // Empty: upstream's default age (24h).
    let max_age = if max.is_empty() {
        None
    } else {
        let seconds = parse_go_duration(max).ok_or_else(|| {
            CliError::Message(format!(
                "time: invalid duration {}",
                storage_store::gostr::quote(max)
            ))
        })?;
        Some(std::time::Duration::from_secs_f64(seconds.max(0.0)))
    };
    let opts = CheckOptions {
        quick: flags.bool("quick"),
        max_unreferenced_age: max_age,
    };
    let report = ctx.store.check(&opts)?;
    if ctx.inv.json() {
        print_json(ctx.out, &CheckJson::from(&report))?;
    } else {
        let text = check_text(&report);
        ctx.out
            .write_all(text.as_bytes())
            .map_err(|e| CliError::io("writing output", e))?;
    }
    let count = |m: &BTreeMap<String, Vec<String>>| m.len();
    if !repair {
        if !report.is_clean() {
            return Err(CliError::Message(format!(
                "{} layer errors, {} read-only layer errors, {} image errors, {} read-only image errors, {} container errors",
                count(&report.layers),
                count(&report.ro_layers),
                count(&report.images),
                count(&report.ro_images),
                count(&report.containers)
            )));
        }
        return Ok(0);
    }
    let failures = ctx.store.repair(&report, force)?;
    if let Some(first) = failures.first() {
        // Upstream prints every failure (as JSON errors with -j), then the first again as
        // the command's error.
        if ctx.inv.json() {
            let errors: Vec<GoError> = failures.iter().map(|_| GoError {}).collect();
            print_json(ctx.out, &errors)?;
        } else {
            for f in &failures {
                outln!(ctx.err, "{f}")?;
            }
        }
        return Err(CliError::Message(first.clone()));
    }
    let remaining_ro = !report.ro_layers.is_empty() || !report.ro_images.is_empty();
    if force && remaining_ro {
        return Err(CliError::Message(format!(
            "{} read-only layer errors, {} read-only image errors",
            count(&report.ro_layers),
            count(&report.ro_images)
        )));
    }
    if !force && (remaining_ro || !report.containers.is_empty()) {
        return Err(CliError::Message(format!(
            "{} read-only layer errors, {} read-only image errors, {} container errors",
            count(&report.ro_layers),
            count(&report.ro_images),
            count(&report.containers)
        )));
    }
    Ok(0)
}

/// The text `check` prints: a header per damaged object, then one indented line per
/// problem (objects sorted by ID, where upstream follows Go map order).
pub fn check_text(report: &CheckReport) -> String {
    let mut out = String::new();
    let sections: [(&str, &BTreeMap<String, Vec<String>>); 5] = [
        ("layer", &report.layers),
        ("read-only layer", &report.ro_layers),
        ("image", &report.images),
        ("read-only image", &report.ro_images),
        ("container", &report.containers),
    ];
    for (what, map) in sections {
        for (id, problems) in map {
            if !problems.is_empty() {
                out.push_str(&format!("{what} {id}:\n"));
            }
            for p in problems {
                out.push_str(&format!(" {p}\n"));
            }
        }
    }
    out
}

/// An error as Go's encoding/json writes it: an empty object (a Go `error` has no exported fields).
#[derive(Serialize)]
struct GoError {}

/// `check -j`: upstream's `CheckReport` with its `error` values.
#[derive(Serialize)]
struct CheckJson {
    #[serde(rename = "Layers")]
    layers: BTreeMap<String, Vec<GoError>>,
    #[serde(rename = "ROLayers")]
    ro_layers: BTreeMap<String, Vec<GoError>>,
    #[serde(rename = "Images")]
    images: BTreeMap<String, Vec<GoError>>,
    #[serde(rename = "ROImages")]
    ro_images: BTreeMap<String, Vec<GoError>>,
    #[serde(rename = "Containers")]
    containers: BTreeMap<String, Vec<GoError>>,
}

impl From<&CheckReport> for CheckJson {
    fn from(r: &CheckReport) -> Self {
        let convert = |m: &BTreeMap<String, Vec<String>>| {
            m.iter()
                .map(|(id, problems)| (id.clone(), problems.iter().map(|_| GoError {}).collect()))
                .collect()
        };
        CheckJson {
            layers: convert(&r.layers),
            ro_layers: convert(&r.ro_layers),
            images: convert(&r.images),
            ro_images: convert(&r.ro_images),
            containers: convert(&r.containers),
        }
    }
}

/// `gc [-j]`: then a forced shutdown, as upstream.
pub fn gc(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let result = ctx.store.gc();
    shutdown_after(ctx);
    result?;
    if ctx.inv.json() {
        print_json(ctx.out, "")?;
    }
    Ok(0)
}

/// `dedup [--hash-method crc|size|sha256] [-j]`: `Deduplicated N bytes`, or upstream's
/// `DedupResult` as JSON.
pub fn dedup(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let name = ctx.inv.flags.value("hash-method").unwrap_or("crc");
    let method = HashMethod::parse(name)
        .ok_or_else(|| CliError::Message(format!("invalid hash method: {name}")))?;
    let result = match ctx.store.dedup(method) {
        Ok(r) => r,
        // Upstream prints the error value as JSON: Go marshals it as `{}`.
        Err(_) if ctx.inv.json() => {
            print_json(ctx.out, &GoError {})?;
            return Ok(1);
        }
        Err(e) => return Err(CliError::context("dedup", e)),
    };
    if ctx.inv.json() {
        print_json(ctx.out, &DedupJson::from(result))?;
    } else {
        outln!(ctx.out, "Deduplicated {} bytes", result.deduped)?;
    }
    Ok(0)
}

/// `dedup -j`: upstream's `DedupResult`.
#[derive(Serialize)]
struct DedupJson {
    #[serde(rename = "Deduped")]
    deduped: u64,
}

impl From<DedupResult> for DedupJson {
    fn from(r: DedupResult) -> Self {
        DedupJson { deduped: r.deduped }
    }
}

/// Parses a Go `time.Duration` string (`24h`, `1h30m`, `90s`, `1.5h`); seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h"), Some(86400.0));
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("1.5s"), Some(1.5));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn check_text_and_json() {
        let mut report = CheckReport::default();
        report
            .layers
            .insert("L".into(), vec!["layer is missing".into(), "x".into()]);
        report
            .containers
            .insert("C".into(), vec!["image missing".into()]);
        assert_eq!(
            check_text(&report),
            "layer L:\n layer is missing\n x\ncontainer C:\n image missing\n"
        );
        assert_eq!(
            storage_store::gojson::to_string(&CheckJson::from(&report)),
            r#"{"Layers":{"L":[{},{}]},"ROLayers":{},"Images":{},"ROImages":{},"Containers":{"C":[{}]}}"#
        );
        assert_eq!(check_text(&CheckReport::default()), "");
    }

    #[test]
    fn go_string_slices() {
        assert_eq!(go_string_slice(&[]), "[]");
        assert_eq!(
            go_string_slice(&["a=1".to_string(), "b=2".to_string()]),
            "[a=1 b=2]"
        );
    }
}
