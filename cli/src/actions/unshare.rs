//! User namespaces as upstream's `pkg/unshare` makes them (`MaybeReexecUsingUserNamespace`):
//! our own UID and GID map to 0, then the user's ranges from /etc/subuid and /etc/subgid
//! follow consecutively from 1. Root writes the child's `/proc/PID/uid_map` and `gid_map`
//! itself; any other user has `newuidmap` and `newgidmap` (setuid helpers of the `uidmap`
//! package, which check the ranges) write them, and falls back to mapping only its own IDs
//! when a helper fails, as upstream does.
//!
//! Two users of it: the global `--unshare`/`-U` (on by default for a rootless user, as
//! upstream's) re-executes the whole command in a new user and mount namespace
//! ([`reexec_in_user_namespace`]); `unshare [CMD...]` runs a command (default `$SHELL`, else
//! `/bin/sh`) in one ([`unshare_command`]). Either child finds `_CONTAINERS_USERNS_CONFIGURED`,
//! `_CONTAINERS_ROOTLESS_UID` and `_CONTAINERS_ROOTLESS_GID` in its environment: the store
//! options then stay those of the user who started it (`storage_store::config`), and a
//! `storage` run inside does not make another namespace.
//!
//! The child unshares and waits; the parent, which holds the privilege in the outer
//! namespace, writes the child's ID maps and lets it exec.

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{Gid, Uid, User};
use storage_driver::idmap::IdMap;
use storage_driver::syscalls::{fork_unshared, CloneFlags, UnsharedChild};
use storage_store::config::{ROOTLESS_GID_ENV, ROOTLESS_UID_ENV, USERNS_CONFIGURED_ENV};

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

/// The arguments of `newuidmap PID` / `newgidmap PID`: the map's triples, flattened.
pub fn helper_args(pid: i32, maps: &[IdMap]) -> Vec<String> {
    std::iter::once(pid.to_string())
        .chain(maps.iter().flat_map(|m| {
            [
                m.container_id.to_string(),
                m.host_id.to_string(),
                m.size.to_string(),
            ]
        }))
        .collect()
}

/// Whether this process already runs in the user namespace a `storage` made (or another
/// containers tool did): then it makes no other.
pub fn in_configured_user_namespace() -> bool {
    std::env::var_os(USERNS_CONFIGURED_ENV).is_some_and(|v| !v.is_empty())
}

/// Whether `--unshare` is on when not given: for a rootless user, as upstream's default
/// (`unshare.IsRootless()`), which includes a process already in such a namespace.
pub fn unshare_by_default() -> bool {
    !Uid::current().is_root() || in_configured_user_namespace()
}

/// Who makes the namespace and the maps it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    /// Our real UID (0 inside).
    pub uid: u32,
    /// Our real GID (0 inside).
    pub gid: u32,
    /// The UID map: ours, then the subordinate UIDs.
    pub uid_map: Vec<IdMap>,
    /// The GID map: ours, then the subordinate GIDs.
    pub gid_map: Vec<IdMap>,
    /// Whether the maps go through `newuidmap`/`newgidmap` (not root).
    pub use_helpers: bool,
    /// What upstream warns about (no ranges), said under `--debug`.
    pub warnings: Vec<String>,
}

impl NamespacePlan {
    /// The plan for user `uid`/`gid` named `user`, with the ranges of `user` in the two
    /// files (upstream looks both up by the user's name).
    pub fn new(uid: u32, gid: u32, user: &str, subuid: &Path, subgid: &Path) -> Self {
        let mut warnings = Vec::new();
        let subuids = idmaps::subordinate_ranges(user, subuid, "uid").unwrap_or_else(|_| {
            warnings.push(format!(
                "Found no UID ranges set aside for user {user:?} in {}.",
                subuid.display()
            ));
            Vec::new()
        });
        let subgids = idmaps::subordinate_ranges(user, subgid, "gid").unwrap_or_else(|_| {
            warnings.push(format!(
                "Found no GID ranges set aside for user {user:?} in {}.",
                subgid.display()
            ));
            Vec::new()
        });
        NamespacePlan {
            uid,
            gid,
            uid_map: namespace_map(uid, &subuids),
            gid_map: namespace_map(gid, &subgids),
            use_helpers: uid != 0,
            warnings,
        }
    }

    /// The plan for this process's user.
    pub fn for_process() -> Self {
        let uid = Uid::current();
        let gid = Gid::current();
        let user = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        NamespacePlan::new(
            uid.as_raw(),
            gid.as_raw(),
            &user,
            Path::new("/etc/subuid"),
            Path::new("/etc/subgid"),
        )
    }

    /// The markers the child finds in its environment.
    fn markers(&self) -> [String; 3] {
        [
            format!("{USERNS_CONFIGURED_ENV}=done"),
            format!("{ROOTLESS_UID_ENV}={}", self.uid),
            format!("{ROOTLESS_GID_ENV}={}", self.gid),
        ]
    }

    /// Writes the ID maps of `pid` (which has unshared its user namespace).
    fn write_maps(&self, pid: i32) -> Result<(), CliError> {
        // GIDs first, as upstream: a direct gid_map needs setgroups denied, which the
        // helper path must not have done before it runs.
        if !self.use_helpers || !run_helper("newgidmap", &helper_args(pid, &self.gid_map))? {
            if self.use_helpers {
                // Only our own group can be mapped without the helper, and only with
                // setgroups(2) refused in the namespace.
                write_proc(pid, "setgroups", "deny")?;
            }
            let map = if self.use_helpers {
                namespace_map(self.gid, &[])
            } else {
                self.gid_map.clone()
            };
            write_proc(pid, "gid_map", &map_file_text(&map))?;
        }
        if !self.use_helpers || !run_helper("newuidmap", &helper_args(pid, &self.uid_map))? {
            let map = if self.use_helpers {
                namespace_map(self.uid, &[])
            } else {
                self.uid_map.clone()
            };
            write_proc(pid, "uid_map", &map_file_text(&map))?;
        }
        Ok(())
    }
}

/// Writes `/proc/PID/<file>`.
fn write_proc(pid: i32, file: &str, text: &str) -> Result<(), CliError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).map_err(|e| CliError::io(format!("writing {text:?} to {path}"), e))
}

/// `program` found in `PATH` (upstream's `exec.LookPath`).
fn look_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs `newuidmap`/`newgidmap` with `args`: whether it set the map. Missing is an error
/// (as upstream's); failing is a warning, and the caller maps only our own ID.
fn run_helper(program: &str, args: &[String]) -> Result<bool, CliError> {
    let path = look_path(program).ok_or_else(|| {
        CliError::Message(format!(
            "finding {program}: exec: {program:?}: executable file not found in $PATH"
        ))
    })?;
    let output = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| CliError::io(format!("running {}", path.display()), e))?;
    if output.status.success() {
        return Ok(true);
    }
    log::warn!(
        "running {program}: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    log::warn!("Falling back to single mapping");
    Ok(false)
}

/// `argv` and the environment as C strings, with the namespace markers of `plan` replacing
/// any inherited ones.
fn exec_strings(
    argv: &[String],
    plan: &NamespacePlan,
) -> Result<(Vec<CString>, Vec<CString>), CliError> {
    let c_string = |s: Vec<u8>| CString::new(s).map_err(|e| CliError::Message(e.to_string()));
    let argv = argv
        .iter()
        .map(|a| c_string(a.clone().into_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let markers = [USERNS_CONFIGURED_ENV, ROOTLESS_UID_ENV, ROOTLESS_GID_ENV];
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !markers.iter().any(|m| k == m))
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for marker in plan.markers() {
        env.push(c_string(marker.into_bytes())?);
    }
    Ok((argv, env))
}

/// Runs `argv` in a new user and mount namespace mapped by `plan`; its wait status.
fn run_unshared(argv: &[String], plan: &NamespacePlan) -> Result<WaitStatus, CliError> {
    for warning in &plan.warnings {
        log::warn!("{warning}");
    }
    let (argv, env) = exec_strings(argv, plan)?;
    let child = fork_unshared(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS,
        &argv,
        &env,
    )
    .map_err(|e| CliError::io("fork", e))?;
    wait_mapped(child, plan)
}

/// In the parent: write the child's ID maps, let it go, wait for it.
fn wait_mapped(mut child: UnsharedChild, plan: &NamespacePlan) -> Result<WaitStatus, CliError> {
    let pid = child.pid;
    let unshared = child.wait_unshared();
    let mapped = if unshared {
        plan.write_maps(pid.as_raw())
    } else {
        Err(CliError::Message(
            "error creating a user namespace".to_string(),
        ))
    };
    child.release(mapped.is_ok());
    let status = waitpid(pid, None)
        .map_err(|e| CliError::io("waiting for the command", std::io::Error::from(e)))?;
    mapped.map(|()| status)
}

/// The global `--unshare`: runs this very command line again (`args`, without the program
/// name) in a new user namespace and returns its exit status (128 + the signal that
/// killed it, as upstream's `ExecRunnable`).
pub fn reexec_in_user_namespace(args: &[String], err: &mut dyn Write) -> i32 {
    let argv: Vec<String> = std::iter::once("/proc/self/exe".to_string())
        .chain(args.iter().cloned())
        .collect();
    match run_unshared(&argv, &NamespacePlan::for_process()) {
        Ok(WaitStatus::Exited(_, code)) => code,
        Ok(WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
        Ok(other) => {
            let _ = writeln!(
                err,
                "unexpected status of the re-executed command: {other:?}"
            );
            1
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            1
        }
    }
}

/// `unshare`.
pub fn unshare_command(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    let mut argv: Vec<String> = ctx.inv.args.clone();
    if argv.is_empty() {
        argv.push(
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".to_string()),
        );
    }
    let _ = ctx.out.flush();
    // How the command ended: its exit code, or the signal that killed it.
    let ended: Result<i32, String> = if in_configured_user_namespace() {
        // Already inside (a rootless user's `storage` re-executed itself there): the command
        // runs here, as upstream's does.
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .map_err(|e| CliError::io(format!("running {}", argv[0]), e))?;
        match status.code() {
            Some(code) => Ok(code),
            None => Err(status.to_string()),
        }
    } else {
        match run_unshared(&argv, &NamespacePlan::for_process())? {
            WaitStatus::Exited(_, code) => Ok(code),
            WaitStatus::Signaled(_, signal, _) => Err(format!("signal: {signal}")),
            other => Err(format!("{other:?}")),
        }
    };
    match ended {
        Ok(0) => Ok(0),
        Ok(code) => {
            let _ = writeln!(ctx.err, "exit status {code}");
            Ok(1)
        }
        Err(how) => {
            let _ = writeln!(ctx.err, "{how}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        assert_eq!(
            helper_args(42, &maps),
            ["42", "0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"]
        );
    }

    #[test]
    fn a_plan_takes_both_ranges_by_the_users_name_and_warns_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let subuid = dir.path().join("subuid");
        let subgid = dir.path().join("subgid");
        std::fs::write(&subuid, "alice:300000:65536\nalice:100000:65536\nbob:1:2\n").unwrap();
        std::fs::write(&subgid, "alice:200000:1000\n").unwrap();
        let plan = NamespacePlan::new(1000, 1001, "alice", &subuid, &subgid);
        assert!(plan.use_helpers);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(
            map_file_text(&plan.uid_map),
            "0 1000 1\n1 100000 65536\n65537 300000 65536\n"
        );
        assert_eq!(map_file_text(&plan.gid_map), "0 1001 1\n1 200000 1000\n");
        assert_eq!(
            plan.markers(),
            [
                "_CONTAINERS_USERNS_CONFIGURED=done",
                "_CONTAINERS_ROOTLESS_UID=1000",
                "_CONTAINERS_ROOTLESS_GID=1001"
            ]
        );

        // No ranges: a single mapping, and upstream's two warnings.
        let plan = NamespacePlan::new(0, 0, "root", &subuid, &subgid);
        assert!(!plan.use_helpers);
        assert_eq!(map_file_text(&plan.uid_map), "0 0 1\n");
        assert_eq!(map_file_text(&plan.gid_map), "0 0 1\n");
        assert_eq!(
            plan.warnings,
            [
                format!(
                    "Found no UID ranges set aside for user \"root\" in {}.",
                    subuid.display()
                ),
                format!(
                    "Found no GID ranges set aside for user \"root\" in {}.",
                    subgid.display()
                ),
            ]
        );
    }
}
