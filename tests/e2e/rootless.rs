//! Rootless use, as Podman users run it: a throwaway user with subordinate IDs in /etc/subuid
//! and /etc/subgid runs `storage --unshare import-layer`, `layers` and `mount` on overlay and
//! vfs with the default (rootless) paths. The store must land in the user's
//! `~/.local/share/containers/storage` (the run root where upstream 1.60 puts it: the same
//! `config` as the reference binary run by that user), the layer's owners must go through the
//! user's subordinate ranges (`newuidmap`/`newgidmap`), device nodes are skipped in the user
//! namespace as upstream does, and the compiled components are cached where that user owns
//! them. The user, its home, its lines in /etc/subuid and /etc/subgid and its run directory
//! are removed again by a guard, also when a test fails; the mounts, made in the commands'
//! own mount namespaces, end with them, which the tests check.
//!
//! With rootless podman the user shares one store and run root: podman lists and runs
//! (`podman run --rm --net=none`) a busybox image `storage --unshare import-oci` stored, and
//! `storage` lists, diffs (byte for byte as podman saves the layer) and mounts a container of
//! an image podman committed. The guard also kills what podman left running (its pause
//! process) and removes /run/user/UID. Outside a user namespace (`--unshare=false`) overlay
//! is refused on the home's private mount as upstream's, without caching a kernel answer.
//!
//! Skipped (with a note) when `useradd`, `runuser` or `newuidmap`/`newgidmap` (Debian's
//! `uidmap`) is missing; the podman tests also when podman, runc (or crun) or busybox (or
//! busybox-static) is.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::harness::{reference_binary, unmount_below, Output, STORAGE};

/// Serialises the edits of /etc/passwd, /etc/subuid and /etc/subgid between the tests.
static USER_FILES: Mutex<()> = Mutex::new(());

/// The size of the subordinate ranges the tests give.
const RANGE: u32 = 65536;

/// Whether every tool the tests need is installed; says which is not.
fn tools_available() -> bool {
    for tool in ["useradd", "userdel", "runuser", "newuidmap", "newgidmap"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file());
        if !found {
            eprintln!("{tool} is not installed: skipping the rootless test (uidmap and passwd)");
            return false;
        }
    }
    true
}

/// A user made for one test, with subordinate IDs; removed with everything it owns on drop.
struct ThrowawayUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    /// The first host ID of the user's (first) subordinate range, for UIDs and GIDs.
    sub_start: u32,
    /// Whether [`ThrowawayUser::runtime_dir`] made /run/user (no login manager made it).
    made_run_user: bool,
}

/// The first subordinate range of `name` in `text` (an /etc/subuid), if any.
fn first_range(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then_some(())?;
            f.next()?.parse::<u32>().ok()
        })
        .min()
}

/// The first ID after every range of `text`, at least 200000.
fn free_start(text: &str) -> u32 {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(f.get(1)?.parse::<u32>().ok()? + f.get(2)?.parse::<u32>().ok()?)
        })
        .max()
        .unwrap_or(0)
        .max(200_000)
}

impl ThrowawayUser {
    /// A user with subordinate UIDs and GIDs.
    fn create(tag: &str) -> ThrowawayUser {
        ThrowawayUser::make(tag, true)
    }

    /// A user with (`ranges`) or without subordinate IDs.
    fn make(tag: &str, ranges: bool) -> ThrowawayUser {
        let _files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("strl{tag}{}", std::process::id());
        // A user left by a killed run of the same process ID would fail useradd.
        let _ = Command::new("userdel").args(["-r", &name]).output();
        let o = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &name])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // From here on the guard removes the user, whatever fails next.
        let mut user = ThrowawayUser {
            uid: 0,
            gid: 0,
            home: PathBuf::new(),
            sub_start: 0,
            made_run_user: false,
            name,
        };
        let id = |flag: &str| -> u32 {
            let o = Command::new("id")
                .args([flag, &user.name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        user.uid = id("-u");
        user.gid = id("-g");
        user.home = PathBuf::from(format!("/home/{}", user.name));
        assert!(user.home.is_dir(), "useradd -m made no {:?}", user.home);
        if !ranges {
            // useradd may have given some (login.defs): take them away again.
            for file in ["/etc/subuid", "/etc/subgid"] {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                let prefix = format!("{}:", user.name);
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(file, kept).unwrap();
            }
            return user;
        }
        // useradd gives ranges itself where login.defs says so; else one is added here, after
        // every range in use.
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if first_range(&text, &user.name).is_none() {
                let start = free_start(&text);
                let mut text = text;
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("{}:{start}:{RANGE}\n", user.name));
                std::fs::write(file, text).unwrap();
            }
        }
        let uids = std::fs::read_to_string("/etc/subuid").unwrap();
        let gids = std::fs::read_to_string("/etc/subgid").unwrap();
        user.sub_start = first_range(&uids, &user.name).unwrap();
        // The test reads GIDs through the same start; make sure that holds.
        assert_eq!(
            first_range(&gids, &user.name),
            Some(user.sub_start),
            "subgid start differs from subuid start: {uids}\n{gids}"
        );
        user
    }

    /// The user's default graph root.
    fn graph_root(&self) -> PathBuf {
        self.home.join(".local/share/containers/storage")
    }

    /// The user's `XDG_RUNTIME_DIR`, /run/user/UID, made as a login manager makes it (owned by
    /// the user, 0700): podman and storage both keep their run roots below it, so they share
    /// one, as in a user's login session. The guard removes it.
    fn runtime_dir(&mut self) -> PathBuf {
        let run_user = Path::new("/run/user");
        if !run_user.exists() {
            std::fs::create_dir(run_user).unwrap();
            self.made_run_user = true;
        }
        let dir = run_user.join(self.uid.to_string());
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// Runs `program args...` as the user in a clean login-like environment plus `env`.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(program).args(args).current_dir(&self.home);
        let o = cmd.output().unwrap();
        Output {
            code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs `storage args...` as the user; it must succeed. Its standard output.
    fn storage(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let o = self.run(STORAGE, args, env);
        assert_eq!(o.code, 0, "storage {args:?} as {}: {o:?}", self.name);
        o.out()
    }

    /// Writes `data` to a file in the user's home, owned by the user.
    fn give_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, data).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).unwrap();
        path
    }

    /// Mount points in this (the host's) mount namespace below the user's home.
    fn host_mounts(&self) -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(&self.home))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        if !self.home.as_os_str().is_empty() {
            // Nothing should be mounted there in this namespace; if it is, detach it before
            // the home goes.
            unmount_below(&self.home);
        }
        if self.uid != 0 {
            // Whatever the user's commands left running (rootless podman's pause process)
            // would keep userdel from removing the user.
            kill_processes_of(self.uid);
        }
        let _files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let o = Command::new("userdel").args(["-r", &self.name]).output();
        if let Ok(o) = &o {
            if !o.status.success() {
                eprintln!(
                    "userdel {}: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        if !self.home.as_os_str().is_empty() && self.home.exists() {
            let _ = std::fs::remove_dir_all(&self.home);
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(file) {
                let prefix = format!("{}:", self.name);
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect();
                if kept != text {
                    let _ = std::fs::write(file, kept);
                }
            }
        }
        if self.uid != 0 {
            for dir in [
                format!("/tmp/storage-run-{}", self.uid),
                format!("/tmp/podman-run-{}", self.uid),
                format!("/tmp/containers-user-{}", self.uid),
                format!("/run/user/{}", self.uid),
            ] {
                let dir = Path::new(&dir);
                // Only what the user made (a logged-in user's /run/user is systemd's).
                if std::fs::symlink_metadata(dir).is_ok_and(|m| m.uid() == self.uid) {
                    unmount_below(dir);
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        if self.made_run_user {
            // Only when empty: another test's user may have its directory there now.
            let _ = std::fs::remove_dir("/run/user");
        }
    }
}

/// Kills, by process ID, every process whose real UID is `uid` (a throwaway user's only).
fn kill_processes_of(uid: u32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|id| id.parse::<u32>().ok());
        if real_uid == Some(uid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    // Reaped by init; give it the moment userdel would otherwise refuse in.
    for _ in 0..50 {
        let alive = std::fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                std::fs::metadata(e.path()).is_ok_and(|m| m.uid() == uid)
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
        });
        if !alive {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A layer with a file of root's, a file of container UID/GID 1, a directory and a character
/// device (which cannot be made in a user namespace).
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, id: u64, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(id);
        h.set_gid(id);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, 0, b"");
    add(
        "etc/motd",
        tar::EntryType::Regular,
        0o644,
        0,
        b"hello rootless\n",
    );
    add("etc/owned", tar::EntryType::Regular, 0o600, 1, b"by one\n");
    add("dev/", tar::EntryType::Directory, 0o755, 0, b"");
    add("dev/null", tar::EntryType::Char, 0o666, 0, b"");
    b.into_inner().unwrap()
}

/// `storage config` by the user with our binary and with the reference binary: the roots and
/// driver must be the same (upstream's rootless defaults).
fn same_config_as_reference(user: &ThrowawayUser, env: &[(&str, &str)]) -> serde_json::Value {
    let ours: serde_json::Value = serde_json::from_str(&user.storage(&["config"], env)).unwrap();
    assert_eq!(
        ours["root"],
        user.graph_root().display().to_string(),
        "{ours}"
    );
    let run_root = ours["runroot"].as_str().unwrap().to_string();
    assert!(
        run_root == format!("/tmp/storage-run-{}/containers", user.uid)
            || run_root == format!("/run/user/{}/containers", user.uid),
        "{ours}"
    );
    if let Some(reference) = reference_binary() {
        let o = user.run(&reference.display().to_string(), &["config"], env);
        if o.code == 0 {
            let theirs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            for key in ["root", "runroot", "driver"] {
                assert_eq!(
                    ours[key], theirs[key],
                    "{key}: ours {ours}, reference {theirs}"
                );
            }
        } else {
            // Debian's 1.43 predates some of this; say so rather than compare.
            eprintln!(
                "the reference binary's config failed as {}: {o:?}",
                user.name
            );
        }
    }
    ours
}

/// The checks both drivers share, on the layer `id` in `layer_dir` (its tree on the host).
fn check_layer_tree(user: &ThrowawayUser, layer_dir: &Path) {
    let motd = layer_dir.join("etc/motd");
    assert_eq!(std::fs::read(&motd).unwrap(), b"hello rootless\n");
    // Root in the namespace is the user; container ID 1 is the first subordinate ID.
    let meta = std::fs::metadata(&motd).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
    let owned = std::fs::metadata(layer_dir.join("etc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid()),
        (user.sub_start, user.sub_start),
        "owners go through the subordinate ranges"
    );
    // The kernel refuses device nodes in a user namespace: skipped, as upstream does.
    assert!(layer_dir.join("dev").is_dir());
    assert!(!layer_dir.join("dev/null").exists());
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

#[test]
fn rootless_overlay_store_lands_in_the_users_home() {
    if !tools_available() {
        return;
    }
    let user = ThrowawayUser::create("o");
    let env = [("STORAGE_DRIVER", "overlay")];
    let config = same_config_as_reference(&user, &env);
    assert_eq!(config["driver"], "overlay", "{config}");

    let tar = user.give_file("layer.tar", &layer_tar());
    let id = user
        .storage(
            &[
                "--unshare",
                "import-layer",
                "-f",
                &tar.display().to_string(),
            ],
            &env,
        )
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(
        user.storage(&["--unshare", "layers", "-q"], &env).trim(),
        id
    );
    // Without the flag too: a rootless user's default, as upstream's.
    assert_eq!(user.storage(&["layers", "-q"], &env).trim(), id);

    let graph = user.graph_root();
    let layers = std::fs::read_to_string(graph.join("overlay-layers/layers.json")).unwrap();
    assert!(layers.contains(&id), "{layers}");
    assert_eq!(
        std::fs::metadata(&graph).unwrap().uid(),
        user.uid,
        "the store is the user's"
    );
    check_layer_tree(&user, &graph.join("overlay").join(&id).join("diff"));

    // The archive component was compiled once and cached where the user alone writes.
    let cache = user.home.join(".cache/storage/components");
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(meta.uid(), user.uid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert!(!artifacts.is_empty(), "no artifact in {cache:?}");
    // A second import loads it from there: nothing to say about caching under --debug.
    let o = user.run(
        STORAGE,
        &["--debug", "import-layer", "-f", &tar.display().to_string()],
        &env,
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        !o.stderr.contains("caching the compiled component"),
        "{}",
        o.stderr
    );

    // Mounted in a user namespace by the kernel's overlay: the merged tree is there for the
    // commands of that namespace, and nothing is left mounted on the host.
    let script = format!(
        "set -e; m=$({STORAGE} mount {id}); cat \"$m/etc/motd\"; grep -c \" $m \" /proc/self/mountinfo; {STORAGE} unmount {id}"
    );
    let out = user.storage(&["unshare", "sh", "-c", &script], &env);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["hello rootless", "1"], "{out}");
    // A mount by a command of its own ends with its namespace; unmounting it later works.
    let mountpoint = user.storage(&["--unshare", "mount", &id], &env);
    assert!(
        Path::new(mountpoint.trim()).starts_with(&graph),
        "{mountpoint}"
    );
    user.storage(&["--unshare", "unmount", &id], &env);
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

#[test]
fn rootless_vfs_store_lands_in_the_users_home() {
    if !tools_available() {
        return;
    }
    let user = ThrowawayUser::create("v");
    let env = [("STORAGE_DRIVER", "vfs")];
    let config = same_config_as_reference(&user, &env);
    assert_eq!(config["driver"], "vfs", "{config}");

    let tar = user.give_file("layer.tar", &layer_tar());
    // `--driver` bypasses the configuration: the roots are still the user's defaults.
    let id = user
        .storage(
            &[
                "--unshare",
                "--driver",
                "vfs",
                "import-layer",
                "-f",
                &tar.display().to_string(),
            ],
            &[],
        )
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(
        user.storage(&["--unshare", "layers", "-q"], &env).trim(),
        id
    );
    assert_eq!(
        user.storage(&["--unshare=false", "--driver", "vfs", "layers", "-q"], &[])
            .trim(),
        id,
        "outside a user namespace too"
    );

    let graph = user.graph_root();
    let layers = std::fs::read_to_string(graph.join("vfs-layers/layers.json")).unwrap();
    assert!(layers.contains(&id), "{layers}");
    let tree = graph.join("vfs/dir").join(&id);
    check_layer_tree(&user, &tree);
    let mountpoint = user.storage(&["--unshare", "mount", &id], &env);
    assert_eq!(Path::new(mountpoint.trim()), tree);
    user.storage(&["--unshare", "unmount", &id], &env);

    // The vfs driver component is cached with the archive component, in the user's own
    // cache (shared by the user's stores), not in the store.
    assert!(!graph.join("vfs-components").exists());
    let cache = user.home.join(".cache/storage/components");
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o022),
        (user.uid, 0)
    );
    assert!(std::fs::read_dir(&cache).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.starts_with("builtin_vfs-") && name.ends_with(".cwasm")
    }));
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

#[test]
fn rootless_without_subordinate_ids_maps_the_user_alone_and_honours_ignore_chown_errors() {
    if !tools_available() {
        return;
    }
    let user = ThrowawayUser::make("n", false);
    let env = [("STORAGE_DRIVER", "overlay")];
    // Only the user's own IDs, as upstream maps them then.
    let maps = user.storage(
        &["unshare", "cat", "/proc/self/uid_map", "/proc/self/gid_map"],
        &env,
    );
    let fields: Vec<&str> = maps.split_whitespace().collect();
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    assert_eq!(fields, ["0", &uid, "1", "0", &gid, "1"], "{maps}");

    // A file of container UID 1 has no owner to go to: the import fails...
    let tar = user.give_file("layer.tar", &layer_tar());
    let tar = tar.display().to_string();
    let o = user.run(STORAGE, &["--unshare", "import-layer", "-f", &tar], &env);
    assert_ne!(o.code, 0, "{o:?}");
    // ... unless the user's storage.conf says to ignore chown errors, which a rootless user
    // keeps (the file is the user's, in ~/.config).
    let conf_dir = user.home.join(".config/containers");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("storage.conf"),
        "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nignore_chown_errors = \"true\"\n",
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_str(&user.storage(&["config"], &env)).unwrap();
    assert_eq!(
        config["driver-options"],
        serde_json::json!(["overlay.ignore_chown_errors=true"]),
        "{config}"
    );
    let id = user
        .storage(&["--unshare", "import-layer", "-f", &tar], &env)
        .trim()
        .to_string();
    let diff = user.graph_root().join("overlay").join(&id).join("diff");
    let owned = std::fs::metadata(diff.join("etc/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (user.uid, user.gid));
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

/// Runs the user's rootless podman with `env`; its standard output. `runuser` opens no login
/// session and there may be no systemd at all (PID 1 is not systemd on the test machine):
/// podman's defaults for a user, the systemd cgroup manager and journald events, need a
/// systemd user session, so cgroups go through cgroupfs and events to a file.
fn podman_in(user: &ThrowawayUser, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut full = vec!["--cgroup-manager=cgroupfs", "--events-backend=file"];
    full.extend_from_slice(args);
    let o = user.run("podman", &full, env);
    assert_eq!(o.code, 0, "podman {args:?} as {}: {o:?}", user.name);
    o.out()
}

/// Runs the user's rootless podman; its standard output.
fn podman(user: &ThrowawayUser, args: &[&str]) -> String {
    podman_in(user, &[], args)
}

/// Whether podman is installed; says so when not.
fn podman_installed() -> bool {
    let found = Command::new("podman").arg("--version").output().is_ok();
    if !found {
        eprintln!("podman is not installed: skipping the rootless podman interop test");
    }
    found
}

#[test]
fn rootless_podman_and_storage_share_the_users_store() {
    if !tools_available() {
        return;
    }
    if !podman_installed() {
        return;
    }
    let user = ThrowawayUser::create("p");
    let tar = user.give_file("layer.tar", &layer_tar());
    // An image the user's podman made is the user's storage's too.
    podman(
        &user,
        &[
            "import",
            "-q",
            &tar.display().to_string(),
            "localhost/rl:v1",
        ],
    );
    let images = user.storage(&["--unshare", "images"], &[]);
    assert!(images.contains("name: localhost/rl:v1"), "{images}");
    let image: serde_json::Value =
        serde_json::from_str(&user.storage(&["image", "-j", "localhost/rl:v1"], &[])).unwrap();
    let top = image[0]["layer"].as_str().unwrap().to_string();
    let script = format!("set -e; m=$({STORAGE} mount {top}); cat \"$m/etc/motd\"; {STORAGE} unmount {top} >/dev/null");
    assert_eq!(
        user.storage(&["unshare", "sh", "-c", &script], &[]),
        "hello rootless\n"
    );

    // And the reverse: the image as an OCI layout, gone from the store, imported again by
    // `storage import-oci` under another name, is listed by podman.
    let layout = user.home.join("layout");
    podman(
        &user,
        &[
            "save",
            "--format",
            "oci-dir",
            "-o",
            &layout.display().to_string(),
            "localhost/rl:v1",
        ],
    );
    podman(&user, &["rmi", "localhost/rl:v1"]);
    user.storage(
        &[
            "--unshare",
            "import-oci",
            "-n",
            "localhost/back:v2",
            &layout.display().to_string(),
        ],
        &[],
    );
    let listed = podman(&user, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(listed.lines().any(|l| l == "localhost/back:v2"), "{listed}");
    // podman reads the layer storage wrote: the file is in podman's mount of it.
    let out = podman(
        &user,
        &["unshare", "sh", "-c", "m=$(podman image mount localhost/back:v2) && cat \"$m/etc/motd\" && podman image unmount localhost/back:v2 >/dev/null"],
    );
    assert_eq!(out, "hello rootless\n");
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

/// The OCI runtime rootless `podman run` is given: runc where installed (what the test
/// machine has; podman.rs found crun failing there with root's cgroups), else crun. `None`,
/// with a note, when there is neither.
fn oci_runtime() -> Option<&'static str> {
    let installed = |name: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(name).is_file())
    };
    let found = ["runc", "crun"].into_iter().find(|r| installed(r));
    if found.is_none() {
        eprintln!("neither runc nor crun is installed: skipping the rootless podman run test");
    }
    found
}

/// A root filesystem that runs: `busybox` (a static one alone; a dynamic one with the
/// libraries `ldd` names, under the paths the loader asks for), `/etc/motd`, `/etc/passwd`,
/// and a home directory and file of container UID/GID 1000. Built in memory, so the owners
/// are the archive's, whoever runs the test.
fn busybox_rootfs_tar(busybox: &Path) -> Vec<u8> {
    let libraries = crate::podman::shared_libraries(busybox);
    eprintln!(
        "busybox {}: {}",
        busybox.display(),
        if libraries.is_empty() {
            "static".to_string()
        } else {
            format!("dynamic, with {libraries:?}")
        }
    );
    let mut dirs = std::collections::BTreeSet::new();
    for dir in ["bin", "dev", "etc", "home", "proc", "srv", "sys", "tmp"] {
        dirs.insert(PathBuf::from(dir));
    }
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = vec![(
        PathBuf::from("bin/busybox"),
        std::fs::read(busybox).unwrap(),
        0o755,
    )];
    for lib in libraries {
        let path = lib.strip_prefix("/").unwrap().to_path_buf();
        dirs.extend(
            path.ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_path_buf),
        );
        files.push((path, std::fs::read(&lib).unwrap(), 0o755));
    }
    files.push((PathBuf::from("etc/motd"), b"from storage\n".to_vec(), 0o644));
    files.push((
        PathBuf::from("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n".to_vec(),
        0o644,
    ));
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, id: u64, size: usize| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(id);
        h.set_gid(id);
        h.set_mtime(1_700_000_000);
        h.set_size(size as u64);
        h
    };
    for dir in &dirs {
        let mode = if dir == Path::new("tmp") {
            0o1777
        } else {
            0o755
        };
        let mut h = header(tar::EntryType::Directory, mode, 0, 0);
        b.append_data(&mut h, dir, &b""[..]).unwrap();
    }
    let mut h = header(tar::EntryType::Directory, 0o750, 1000, 0);
    b.append_data(&mut h, "home/user", &b""[..]).unwrap();
    let profile = b"PS1='$ '\n";
    let mut h = header(tar::EntryType::Regular, 0o644, 1000, profile.len());
    b.append_data(&mut h, "home/user/.profile", &profile[..])
        .unwrap();
    for (path, data, mode) in &files {
        let mut h = header(tar::EntryType::Regular, *mode, 0, data.len());
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Gives `path` and everything below it to the user.
fn chown_tree(user: &ThrowawayUser, path: &Path) {
    let o = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "chown: {o:?}");
}

/// The JSON document `digest` names in the OCI layout `dir`, and its raw bytes.
fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

/// The last layer (uncompressed) and the config of the one image of the OCI layout `dir`
/// (as `podman save --format oci-dir` writes it).
fn top_layer_of_layout(dir: &Path) -> (Vec<u8>, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&layout_blob(
        dir,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&layout_blob(
        dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let top = manifest["layers"].as_array().unwrap().last().unwrap();
    let blob = layout_blob(dir, top["digest"].as_str().unwrap());
    let media_type = top["mediaType"].as_str().unwrap();
    let layer = if media_type.ends_with("gzip") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut out).unwrap();
        out
    } else {
        assert!(media_type.ends_with(".tar"), "{media_type}");
        blob
    };
    (layer, config)
}

#[test]
fn rootless_podman_runs_what_storage_imported_and_storage_uses_what_podman_made() {
    if !tools_available() || !podman_installed() {
        return;
    }
    let Some(runtime) = oci_runtime() else {
        return;
    };
    let Some(busybox) = crate::podman::host_busybox() else {
        return;
    };
    let mut user = ThrowawayUser::create("r");
    let run_dir = user.runtime_dir().display().to_string();
    let env = [("XDG_RUNTIME_DIR", run_dir.as_str())];

    // One store and one run root for both, from the same rootless defaults.
    let config: serde_json::Value = serde_json::from_str(&user.storage(&["config"], &env)).unwrap();
    let podman_store = podman_in(
        &user,
        &env,
        &[
            "info",
            "--format",
            "{{.Store.GraphRoot}} {{.Store.RunRoot}} {{.Store.GraphDriverName}}",
        ],
    );
    assert_eq!(
        podman_store.trim(),
        format!(
            "{} {run_dir}/containers overlay",
            user.graph_root().display()
        )
    );
    assert_eq!(
        (config["root"].as_str(), config["runroot"].as_str()),
        (
            Some(user.graph_root().display().to_string().as_str()),
            Some(format!("{run_dir}/containers").as_str())
        ),
        "{config}"
    );

    // storage imports a runnable image as the user...
    let tar = busybox_rootfs_tar(&busybox);
    let layout = user.home.join("busybox-layout");
    let config_blob = crate::podman::rootfs_layout(&layout, &tar);
    chown_tree(&user, &layout);
    let id = crate::skopeo::sha256(&config_blob)
        .trim_start_matches("sha256:")
        .to_string();
    let image = "localhost/rootless-busybox:v1";
    let out = user.storage(
        &[
            "--unshare",
            "import-oci",
            "-n",
            image,
            &format!("{}:v1", layout.display()),
        ],
        &env,
    );
    assert_eq!(crate::harness::first_line(&out), id);

    // ... which the user's podman lists, under the same ID, and runs.
    let listed = podman_in(
        &user,
        &env,
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ],
    );
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with(&format!(" {image}")) && l.contains(&id)),
        "{listed}"
    );
    let run = |args: &[&str]| {
        let mut full = vec!["--runtime", runtime, "run", "--net=none"];
        full.extend_from_slice(args);
        podman_in(&user, &env, &full)
    };
    assert_eq!(run(&["--rm", image, "/bin/busybox", "echo", "ok"]), "ok\n");
    // storage put container ID 1000 where podman's namespace maps it from: the container
    // sees its owner as the archive had it, the host the subordinate ID.
    assert_eq!(
        run(&[
            "--rm",
            image,
            "/bin/busybox",
            "stat",
            "-c",
            "%u:%g %a %n",
            "/home/user",
            "/home/user/.profile",
            "/tmp",
        ]),
        "1000:1000 750 /home/user\n1000:1000 644 /home/user/.profile\n0:0 1777 /tmp\n"
    );
    let image_record: serde_json::Value =
        serde_json::from_str(&user.storage(&["image", "-j", image], &env)).unwrap();
    let base = image_record[0]["layer"].as_str().unwrap().to_string();
    let profile = user
        .graph_root()
        .join("overlay")
        .join(&base)
        .join("diff/home/user/.profile");
    let meta = std::fs::metadata(&profile).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (user.sub_start + 999, user.sub_start + 999),
        "container ID 1000 is the 1000th subordinate ID"
    );

    // The reverse: the user's podman runs a container that changes the tree and commits it.
    run(&[
        "--name",
        "maker",
        image,
        "/bin/busybox",
        "sh",
        "-c",
        "echo made by podman > /srv/new && /bin/busybox rm /etc/motd",
    ]);
    let made = "localhost/podman-made:v1";
    podman_in(&user, &env, &["commit", "-q", "maker", made]);
    podman_in(&user, &env, &["rm", "maker"]);
    let images = user.storage(&["images"], &env);
    assert!(images.contains(&format!("name: {made}")), "{images}");
    let made_record: serde_json::Value =
        serde_json::from_str(&user.storage(&["image", "-j", made], &env)).unwrap();
    let top = made_record[0]["layer"].as_str().unwrap().to_string();
    let top_record: serde_json::Value =
        serde_json::from_str(&user.storage(&["layer", "-j", &top], &env)).unwrap();
    assert_eq!(
        top_record[0]["parent"], base,
        "podman's layer is on the one storage imported: {top_record}"
    );
    // storage's diff of podman's layer is the layer podman itself exports, byte for byte,
    // and has the digest podman's config records.
    let saved = user.home.join("saved");
    podman_in(
        &user,
        &env,
        &[
            "save",
            "--format",
            "oci-dir",
            "-o",
            &saved.display().to_string(),
            made,
        ],
    );
    let (podman_layer, podman_config) = top_layer_of_layout(&saved);
    let diff = user.run(STORAGE, &["--unshare", "diff", "-u", &top], &env);
    assert_eq!(diff.code, 0, "{diff:?}");
    assert!(
        diff.stdout == podman_layer,
        "storage diff differs from podman's layer"
    );
    let diff_ids = podman_config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(
        diff_ids.last().unwrap(),
        &crate::skopeo::sha256(&diff.stdout),
        "{podman_config}"
    );
    let names = crate::harness::tar_names(&diff.stdout);
    for name in ["srv/new", "etc/.wh.motd"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    // A container storage makes from podman's image mounts with podman's changes, and
    // podman sees it.
    user.storage(&["create-container", "-n", "from-podman", made], &env);
    let script = format!(
        "set -e; m=$({STORAGE} mount from-podman); cat \"$m/srv/new\"; test ! -e \"$m/etc/motd\" && echo motd gone; {STORAGE} unmount from-podman >/dev/null"
    );
    assert_eq!(
        user.storage(&["unshare", "sh", "-c", &script], &env),
        "made by podman\nmotd gone\n"
    );
    let external = podman_in(
        &user,
        &env,
        &["ps", "--all", "--external", "--format", "{{.Names}}"],
    );
    assert!(external.lines().any(|l| l == "from-podman"), "{external}");
    user.storage(&["delete-container", "from-podman"], &env);
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

/// `o`'s standard output and error together (upstream prints its errors on standard output).
fn said(o: &Output) -> String {
    format!("{}{}", o.out(), o.stderr)
}

#[test]
fn rootless_overlay_outside_a_user_namespace_fails_on_the_private_mount_and_caches_nothing() {
    if !tools_available() {
        return;
    }
    let user = ThrowawayUser::create("u");
    let env = [("STORAGE_DRIVER", "overlay")];
    // `--unshare=false` after the command name (where upstream honours it: before the name,
    // upstream's command flag set resets it to the default, and the command re-executes in a
    // user namespace after all). Outside a user namespace an ordinary user may not mount:
    // upstream's overlay driver neither probes the kernel nor records an answer for a
    // non-zero effective UID, and its home's private mount (made whoever runs it) fails
    // with EPERM. Ours must do the same on a fresh store: a test mount refused for want of
    // privilege, recorded in the run root as "overlay is not supported", would make every
    // later command of the user's, in a user namespace, fail on the same store.
    let ours = user.run(STORAGE, &["layers", "--unshare=false"], &env);
    assert_ne!(ours.code, 0, "{ours:?}");
    let text = said(&ours);
    assert!(
        text.contains("a private mount") && text.contains("operation not permitted"),
        "{ours:?}"
    );
    assert_eq!(text.lines().count(), 1, "one line: {ours:?}");
    // The user's run root (no XDG_RUNTIME_DIR, no /run/user/UID: upstream's fallback),
    // checked against `config` at the end: `config` starts the driver, so not before.
    let run_root = format!("/tmp/storage-run-{}/containers", user.uid);
    let run_home = Path::new(&run_root).join("overlay");
    let cached: Vec<String> = std::fs::read_dir(&run_home)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !cached
            .iter()
            .any(|name| name.ends_with("-false") || name.ends_with("-true")),
        "feature answers cached by an unprivileged command: {cached:?}"
    );
    if let Some(reference) = reference_binary() {
        // In a store of its own: on a fresh home upstream falls back to fuse-overlayfs when
        // it is in PATH and records that in the home for good, which would change what the
        // rest of this test runs on. It refuses as well (the private mount, or without
        // fuse-overlayfs a test mount), with EPERM.
        let graph = user.home.join("reference/graph").display().to_string();
        let run = user.home.join("reference/run").display().to_string();
        let theirs = user.run(
            &reference.display().to_string(),
            &[
                "--graph",
                &graph,
                "--run",
                &run,
                "--storage-driver",
                "overlay",
                "layers",
                "--unshare=false",
            ],
            &[],
        );
        assert_ne!(theirs.code, 0, "{theirs:?}");
        assert!(
            said(&theirs).contains("operation not permitted"),
            "{theirs:?}"
        );
    }
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());

    // The same store then works in a user namespace, with the kernel's overlay.
    let tar = user.give_file("layer.tar", &layer_tar());
    let id = user
        .storage(
            &[
                "--unshare",
                "import-layer",
                "-f",
                &tar.display().to_string(),
            ],
            &env,
        )
        .trim()
        .to_string();
    assert_eq!(
        user.storage(&["--unshare", "layers", "-q"], &env).trim(),
        id
    );
    assert!(run_home.join("overlay-true").exists());
    let config: serde_json::Value = serde_json::from_str(&user.storage(&["config"], &env)).unwrap();
    assert_eq!(config["runroot"], run_root, "{config}");
    let home = user.graph_root().join("overlay");
    assert_eq!(
        std::fs::read_to_string(home.join(".has-mount-program")).unwrap(),
        "false"
    );
    // Refused again with the store made, and the layer still listed after.
    let again = user.run(STORAGE, &["layers", "--unshare=false"], &env);
    assert_ne!(again.code, 0, "{again:?}");
    assert!(said(&again).contains("a private mount"), "{again:?}");
    assert_eq!(
        user.storage(&["--unshare", "layers", "-q"], &env).trim(),
        id
    );
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

/// A tar of `entries` (path, data; a path ending in `/` is a directory), owned by root.
fn simple_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        let dir = path.ends_with('/');
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn rootless_overlay_keeps_opaque_directories_in_user_xattrs() {
    if !tools_available() {
        return;
    }
    // Root of the user namespace cannot set `trusted.overlay.opaque` (the host's root
    // could): an opaque directory, common in real layers (`rm -rf d && mkdir d` in a build),
    // is marked `user.overlay.opaque` and mounted with `userxattr`, as upstream does
    // rootless.
    let user = ThrowawayUser::create("q");
    let env = [("STORAGE_DRIVER", "overlay")];
    let base = user.give_file(
        "base.tar",
        &simple_tar(&[("d/", b""), ("d/old", b"lower\n")]),
    );
    let top = user.give_file(
        "top.tar",
        &simple_tar(&[("d/", b""), ("d/.wh..wh..opq", b""), ("d/new", b"upper\n")]),
    );
    let base_id = user.storage(&["import-layer", "-f", &base.display().to_string()], &env);
    let base_id = base_id.trim();
    let top_id = user.storage(
        &["import-layer", "-f", &top.display().to_string(), base_id],
        &env,
    );
    let top_id = top_id.trim();
    // The merged view hides the lower layer's files under the opaque directory.
    let script = format!(
        "set -e; m=$({STORAGE} mount {top_id}); ls \"$m/d\"; {STORAGE} unmount {top_id} >/dev/null"
    );
    let listed = user.storage(&["unshare", "sh", "-c", &script], &env);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["new"], "{listed}");
    // The layer's archive gives the opaque marker back.
    let o = user.run(STORAGE, &["diff", top_id], &env);
    assert_eq!(o.code, 0, "{o:?}");
    let mut archive = tar::Archive::new(o.stdout.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "d/.wh..wh..opq"), "{names:?}");
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

#[test]
fn rootless_overlay_mounts_through_the_configured_mount_program() {
    if !tools_available() {
        return;
    }
    let Some(program) = ["/usr/bin/fuse-overlayfs", "/bin/fuse-overlayfs"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("rootless mount_program: no fuse-overlayfs (package fuse-overlayfs); skipped");
        return;
    };
    // A rootless user opens /dev/fuse only where it is 0666, as udev's default rule makes it
    // (`KERNEL=="fuse", MODE="0666"`); a machine without udev leaves the kernel's 0600.
    let fuse_mode = std::fs::metadata("/dev/fuse")
        .map(|m| m.permissions().mode() & 0o777)
        .ok();
    if fuse_mode.is_none_or(|m| m & 0o006 != 0o006) {
        eprintln!(
            "rootless mount_program: /dev/fuse is not usable by others (mode {fuse_mode:?}); skipped"
        );
        return;
    }
    // `mount_program` in the user's own storage.conf: every overlay mount is made by
    // fuse-overlayfs in the user namespace, as upstream does for rootless users without
    // kernel overlay.
    let user = ThrowawayUser::create("f");
    let conf_dir = user.home.join(".config/containers");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmount_program = \"{program}\"\n"
        ),
    )
    .unwrap();
    let env: [(&str, &str); 0] = [];
    let base = user.give_file(
        "base.tar",
        &simple_tar(&[
            ("d/", b""),
            ("d/old", b"lower\n"),
            ("e/", b""),
            ("e/kept", b"kept\n"),
        ]),
    );
    let top = user.give_file(
        "top.tar",
        &simple_tar(&[("d/", b""), ("d/.wh..wh..opq", b""), ("d/new", b"upper\n")]),
    );
    let base_id = user.storage(&["import-layer", "-f", &base.display().to_string()], &env);
    let base_id = base_id.trim();
    let top_id = user.storage(
        &["import-layer", "-f", &top.display().to_string(), base_id],
        &env,
    );
    let top_id = top_id.trim();
    let script = format!(
        "set -e; m=$({STORAGE} mount {top_id}); grep \" $m \" /proc/self/mountinfo | grep -c fuse; \
         ls \"$m/d\"; cat \"$m/e/kept\"; {STORAGE} unmount {top_id} >/dev/null"
    );
    let out = user.storage(&["unshare", "sh", "-c", &script], &env);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "new", "kept"],
        "a fuse-overlayfs mount showing the upper layer over the lower: {out}"
    );
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}

#[test]
fn rootless_btrfs_store_imports_snapshots_and_deletes() {
    if !tools_available() {
        return;
    }
    // A btrfs the administrator mounted, with a directory the user owns named as graph root
    // in the user's storage.conf: subvolumes are made and snapshotted with the user's own
    // rights in the namespace, and deleted without `user_subvol_rm_allowed`.
    let fs = crate::harness::loop_btrfs::LoopBtrfs::new("rootless");
    let user = ThrowawayUser::create("b");
    let graph = fs.mnt().join("store");
    std::fs::create_dir(&graph).unwrap();
    std::os::unix::fs::chown(&graph, Some(user.uid), Some(user.gid)).unwrap();
    let conf_dir = user.home.join(".config/containers");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"btrfs\"\ngraphroot = \"{}\"\n",
            graph.display()
        ),
    )
    .unwrap();
    let env: [(&str, &str); 0] = [];
    let tar = user.give_file("layer.tar", &layer_tar());
    let base = user.storage(&["import-layer", "-f", &tar.display().to_string()], &env);
    let base = base.trim();
    let child = user.storage(&["create-layer", base], &env);
    let child = child.trim();
    let subvolumes = graph.join("btrfs/subvolumes");
    check_layer_tree(&user, &subvolumes.join(base));
    // The child is a snapshot of its parent: the parent's files are there.
    assert!(subvolumes.join(child).join("etc/motd").is_file());
    user.storage(&["delete-layer", child], &env);
    user.storage(&["delete-layer", base], &env);
    let left: Vec<_> = std::fs::read_dir(&subvolumes).unwrap().collect();
    assert!(left.is_empty(), "subvolumes left: {left:?}");
    assert!(user.host_mounts().is_empty(), "{:?}", user.host_mounts());
}
