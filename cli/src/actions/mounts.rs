//! Mount commands: mount, unmount, mounted.

use serde::Serialize;
use storage_store::store::MountOptions;

use super::{print_json, CliError, Ctx};
use crate::outln;

/// One entry of `mount -j`.
#[derive(Serialize)]
struct MountResult {
    id: String,
    mountpoint: String,
    error: String,
}

/// One entry of `unmount -j` and `mounted -j`.
#[derive(Serialize)]
struct MountError {
    id: String,
    error: String,
}

/// `mount [-r] [-l LABEL] [-o OPTS] NAME...`.
///
/// `-o` is accepted and ignored, as upstream does. `-r` mounts an image
/// read-only with no other option, as upstream 1.60's `MountImage` call does (1.43 added
/// `noexec,nosuid`, which vfs and btrfs refuse).
pub fn mount(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let read_only = ctx.inv.flags.bool("read-only");
    let label = ctx.inv.flags.value_or_empty("label").to_string();
    let mut results = Vec::new();
    for arg in &ctx.inv.args {
        let result = if read_only {
            let opts = MountOptions {
                mount_label: label.clone(),
                read_only: true,
                options: Vec::new(),
            };
            ctx.store.mount_image(arg, &opts)
        } else {
            let opts = MountOptions {
                mount_label: label.clone(),
                ..Default::default()
            };
            ctx.store.mount(arg, &opts)
        };
        results.push(match result {
            Ok(path) => MountResult {
                id: arg.clone(),
                mountpoint: path.display().to_string(),
                error: String::new(),
            },
            Err(e) => MountResult {
                id: arg.clone(),
                mountpoint: String::new(),
                error: e.to_string(),
            },
        });
    }
    if ctx.inv.json() {
        print_json(ctx.out, &results)?;
    } else {
        for r in &results {
            if !r.error.is_empty() {
                outln!(ctx.err, "{} while mounting {}", r.error, r.id)?;
            }
            outln!(ctx.out, "{}", r.mountpoint)?;
        }
    }
    Ok(i32::from(results.iter().any(|r| !r.error.is_empty())))
}

/// `unmount [-f] NAME...`: `ARG mountpoint unmounted` once the mount count reaches zero.
pub fn unmount(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let force = ctx.inv.flags.bool("force");
    let mut results = Vec::new();
    for arg in &ctx.inv.args {
        // As upstream: a layer or container first; failing that an image, which says
        // nothing when unmounted and, when it fails too, the first error.
        let error = match ctx.store.unmount(arg, force) {
            Ok(unmounted) => {
                if unmounted {
                    outln!(ctx.out, "{arg} mountpoint unmounted")?;
                }
                String::new()
            }
            Err(e) => match ctx.store.unmount_image(arg, force) {
                Ok(_) => String::new(),
                Err(_) => e.to_string(),
            },
        };
        results.push(MountError {
            id: arg.clone(),
            error,
        });
    }
    report_errors(ctx, &results, "while unmounting")
}

/// `mounted NAME...`: `ARG mounted` when the mount count is above zero; 0 either way.
pub fn mounted(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut results = Vec::new();
    for arg in &ctx.inv.args {
        let error = match ctx.store.mount_count(arg) {
            Ok(count) => {
                if count > 0 {
                    outln!(ctx.out, "{arg} mounted")?;
                }
                String::new()
            }
            Err(e) => e.to_string(),
        };
        results.push(MountError {
            id: arg.clone(),
            error,
        });
    }
    report_errors(ctx, &results, "checking if")
}

fn report_errors(ctx: &mut Ctx<'_>, results: &[MountError], what: &str) -> Result<i32, CliError> {
    if ctx.inv.json() {
        print_json(ctx.out, results)?;
    } else {
        for r in results.iter().filter(|r| !r.error.is_empty()) {
            if what == "checking if" {
                outln!(ctx.err, "{} checking if {} is mounted", r.error, r.id)?;
            } else {
                outln!(ctx.err, "{} {what} {}", r.error, r.id)?;
            }
        }
    }
    Ok(i32::from(results.iter().any(|r| !r.error.is_empty())))
}
