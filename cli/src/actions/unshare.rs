//! `unshare [CMD...]`: runs a command (default `$SHELL`, else `/bin/sh`) in a new user and
//! mount namespace, as upstream's `MaybeReexecUsingUserNamespace(evenForRoot)` sets it up:
//! our own UID and GID map to 0, then the user's ranges from /etc/subuid and /etc/subgid
//! follow consecutively from 1.
//!
//! The child unshares and waits; the parent, which holds the privilege in the outer
//! namespace, writes the child's ID maps and lets it exec the command.

use std::ffi::CString;
use std::path::Path;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{Gid, Group, Uid, User};
use storage_driver::idmap::IdMap;
use storage_driver::syscalls::{fork_unshared, CloneFlags, UnsharedChild};

use super::{CliError, Ctx};
use crate::idmaps;

/// The lines of a `/proc/PID/uid_map` (or `gid_map`): `container host size` per range.
pub fn map_file_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Our ID at 0, then the subordinate ranges from 1 on.
pub fn namespace_map(own_id: u32, subordinate: &[IdMap]) -> Vec<IdMap> {
    let mut maps = vec![IdMap {
        container_id: 0,
        host_id: own_id,
        size: 1,
    }];
    let mut next = 1u32;
    for r in subordinate {
        maps.push(IdMap {
            container_id: next,
            host_id: r.host_id,
            size: r.size,
        });
        next = next.saturating_add(r.size);
    }
    maps
}

/// `unshare`.
pub fn unshare_command(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let uid = Uid::current();
    let gid = Gid::current();
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let group = Group::from_gid(gid)
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| user.clone());
    // No ranges is not an error: upstream warns and maps only our own IDs.
    let subuids = idmaps::subordinate_ranges(&user, Path::new("/etc/subuid")).unwrap_or_default();
    let subgids = idmaps::subordinate_ranges(&group, Path::new("/etc/subgid")).unwrap_or_default();
    let uid_map = map_file_text(&namespace_map(uid.as_raw(), &subuids));
    let gid_map = map_file_text(&namespace_map(gid.as_raw(), &subgids));

    let mut argv: Vec<String> = ctx.inv.args.clone();
    if argv.is_empty() {
        argv.push(
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".to_string()),
        );
    }
    let argv: Vec<CString> = argv
        .into_iter()
        .map(|a| CString::new(a).map_err(|e| CliError::Message(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "_CONTAINERS_USERNS_CONFIGURED" && k != "_CONTAINERS_ROOTLESS_UID")
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    // The markers upstream's re-exec leaves for tools run inside.
    for marker in [
        "_CONTAINERS_USERNS_CONFIGURED=done".to_string(),
        format!("_CONTAINERS_ROOTLESS_UID={}", uid.as_raw()),
    ] {
        env.push(CString::new(marker).map_err(|e| CliError::Message(e.to_string()))?);
    }

    let _ = ctx.out.flush();
    let child = fork_unshared(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS,
        &argv,
        &env,
    )
    .map_err(|e| CliError::io("fork", e))?;
    parent(ctx, child, &uid_map, &gid_map)
}

fn errno(what: &'static str) -> impl Fn(nix::errno::Errno) -> CliError {
    move |e| CliError::io(what, std::io::Error::from(e))
}

/// In the parent: write the child's ID maps, let it go, wait for it.
fn parent(
    ctx: &mut Ctx<'_>,
    mut child: UnsharedChild,
    uid_map: &str,
    gid_map: &str,
) -> Result<i32, CliError> {
    let pid = child.pid;
    let unshared = child.wait_unshared();
    let mapped = unshared
        && std::fs::write(format!("/proc/{pid}/uid_map"), uid_map).is_ok()
        && std::fs::write(format!("/proc/{pid}/gid_map"), gid_map).is_ok();
    child.release(mapped);
    let status = waitpid(pid, None).map_err(errno("waiting for the command"))?;
    if !unshared {
        return Err(CliError::Message(
            "error creating a user namespace".to_string(),
        ));
    }
    if !mapped {
        return Err(CliError::Message(format!(
            "error writing the ID maps of process {pid}"
        )));
    }
    match status {
        WaitStatus::Exited(_, 0) => Ok(0),
        WaitStatus::Exited(_, code) => {
            let _ = writeln!(ctx.err, "exit status {code}");
            Ok(1)
        }
        WaitStatus::Signaled(_, signal, _) => {
            let _ = writeln!(ctx.err, "signal: {signal}");
            Ok(1)
        }
        _ => Ok(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_id_first_then_ranges_from_one() {
        let sub = [
            IdMap {
                container_id: 0,
                host_id: 100000,
                size: 65536,
            },
            IdMap {
                container_id: 65536,
                host_id: 300000,
                size: 10,
            },
        ];
        let maps = namespace_map(1000, &sub);
        assert_eq!(
            map_file_text(&maps),
            "0 1000 1\n1 100000 65536\n65537 300000 10\n"
        );
        assert_eq!(map_file_text(&namespace_map(0, &[])), "0 0 1\n");
    }
}
