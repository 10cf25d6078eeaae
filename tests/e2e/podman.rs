//! Interop with Debian's `podman`, which shares the store through containers/storage: an image
//! podman imported is listed, used for a container, mounted and diffed by `storage`, and podman
//! sees that container; an image `storage` built is listed, inspected and mounted by podman, and
//! removed by `podman rmi` as `storage` then sees. A root filesystem (device nodes, a fifo,
//! hard links, a setuid file, busybox and its libraries) that `storage import-oci` stored runs
//! in a container under podman (with runc), and the image podman commits from it is mounted and
//! diffed by `storage`. Skipped (with a note) when podman, runc or busybox is not installed;
//! `.ci/run` installs them.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{first_line, gzip, tar_names, tar_of, Scratch};
use crate::skopeo::{image_documents, sha256};

fn podman_available() -> bool {
    let found = Command::new("podman").arg("--version").output().is_ok();
    if !found {
        eprintln!("podman is not installed: skipping the podman interop test");
    }
    found
}

/// Runs podman on the scratch store (its own state under the scratch directory too);
/// returns stdout.
fn podman(s: &Scratch, args: &[&str]) -> String {
    let tmp = s.dir().join("podman-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("podman")
        .arg("--root")
        .arg(s.graph())
        .arg("--runroot")
        .arg(s.run_root())
        .arg("--tmpdir")
        .arg(&tmp)
        .args([
            "--storage-driver",
            crate::DRIVER,
            "--cgroup-manager",
            "cgroupfs",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_image_podman_imported_is_used_by_storage() {
    if !podman_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("etc/", b""), ("etc/motd", b"hello from podman\n")]);
    let tar_path = s.dir().join("layer.tar");
    std::fs::write(&tar_path, &layer).unwrap();
    podman(
        &s,
        &[
            "import",
            "-q",
            &tar_path.display().to_string(),
            "localhost/podimg:v1",
        ],
    );

    let images = s.run(&["images", "-j"]).json();
    assert_eq!(images[0]["names"][0], "localhost/podimg:v1", "{images}");
    let layers = s.run(&["layers", "-j"]).json();
    let layer_id = layers[0]["id"].as_str().unwrap().to_string();
    // The layer podman applied re-creates, through our tar-split reading, the tar it recorded.
    let diff = s.run(&["diff", "-u", &layer_id]).stdout;
    assert_eq!(sha256(&diff), layers[0]["diff-digest"], "{layers}");

    let ctr = s.ok(&[
        "create-container",
        "-n",
        "fromstorage",
        "localhost/podimg:v1",
    ]);
    let ctr = ctr.lines().next().unwrap().to_string();
    let mnt = s.ok(&["mount", &ctr]);
    let motd = std::fs::read(Path::new(mnt.trim()).join("etc/motd")).unwrap();
    assert_eq!(motd, b"hello from podman\n");
    s.ok(&["unmount", &ctr]);

    // podman lists the container storage made as an external (non-podman) container.
    let listed = podman(
        &s,
        &[
            "ps",
            "-a",
            "--external",
            "--no-trunc",
            "--format",
            "{{.ID}}",
        ],
    );
    assert!(listed.lines().any(|l| l.trim() == ctr), "{listed}");
}

#[test]
fn an_image_storage_built_is_used_and_removed_by_podman() {
    if !podman_available() {
        return;
    }
    let s = Scratch::new();
    let layer = tar_of(&[("bin/", b""), ("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let layer_gz = gzip(&layer);
    let layer_id = s.import_layer(&[], &layer_gz);
    let (config, manifest) = image_documents(&layer, &layer_gz);
    let config_key = sha256(&config);
    let img = s.ok(&[
        "create-image",
        "--id",
        config_key.trim_start_matches("sha256:"),
        "-n",
        "localhost/ours:v1",
        &layer_id,
    ]);
    let img = img.lines().next().unwrap().to_string();
    s.ok_with_input(&["set-image-data", &img, &config_key], &config);
    s.ok_with_input(&["set-image-data", &img, "manifest"], &manifest);

    let listed = podman(
        &s,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    assert!(
        listed.contains(&format!("localhost/ours:v1 {}", &img[..12])),
        "{listed}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&podman(&s, &["image", "inspect", "localhost/ours:v1"])).unwrap();
    assert_eq!(
        inspect[0]["RootFS"]["Layers"][0],
        sha256(&layer),
        "{inspect}"
    );

    let mnt = podman(&s, &["image", "mount", "localhost/ours:v1"]);
    let tool = std::fs::read(Path::new(mnt.trim()).join("bin/tool")).unwrap();
    assert_eq!(tool, b"#!/bin/sh\necho hi\n");
    podman(&s, &["image", "unmount", "localhost/ours:v1"]);

    podman(&s, &["rmi", "localhost/ours:v1"]);
    assert_eq!(s.ok(&["images"]), "");
    assert_eq!(s.ok(&["layers"]), "");
}

/// `/etc/os-release` of the test root filesystem.
const OS_RELEASE: &[u8] = b"PRETTY_NAME=\"storage test rootfs (busybox)\"\nNAME=\"storage-test\"\n\
ID=storage-test\nVERSION_ID=1\n";

/// The device nodes debootstrap makes in a minbase root filesystem: name, type, major,
/// minor, mode.
const DEVICES: &[(&str, char, u32, u32, u32)] = &[
    ("console", 'c', 5, 1, 0o600),
    ("full", 'c', 1, 7, 0o666),
    ("null", 'c', 1, 3, 0o666),
    ("ptmx", 'c', 5, 2, 0o666),
    ("random", 'c', 1, 8, 0o666),
    ("tty", 'c', 5, 0, 0o666),
    ("urandom", 'c', 1, 9, 0o666),
    ("zero", 'c', 1, 5, 0o666),
    ("loop0", 'b', 7, 0, 0o660),
];

/// The busybox applets linked to `/bin/busybox` (hard links, as busybox installs itself).
const APPLETS: &[&str] = &["sh", "cat", "stat", "ls", "rm", "mkdir", "echo", "test"];

fn runc_available() -> bool {
    let found = Command::new("runc").arg("--version").output().is_ok();
    if !found {
        eprintln!("runc is not installed: skipping the podman run test (crun fails here)");
    }
    found
}

/// The host's busybox (Debian's `busybox` or `busybox-static`), when installed.
pub(crate) fn host_busybox() -> Option<PathBuf> {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "busybox is not installed (busybox or busybox-static): skipping the podman run test"
        );
    }
    found
}

/// The shared libraries `binary` loads, as `ldd` lists them (none for a static binary).
pub(crate) fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    if !out.status.success() {
        // "not a dynamic executable"
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn run_tool(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A debootstrap-style root filesystem in `root`: the directory tree, device nodes in
/// `/dev` (with debootstrap's symlinks), a fifo, busybox with its applets as hard links and
/// the libraries it needs, a setuid and a setgid file, a file owned by another user, and
/// `/etc/os-release`. Returns it as GNU tar writes it (`--numeric-owner`, as root).
fn busybox_rootfs(root: &Path, busybox: &Path) -> Vec<u8> {
    for dir in [
        "bin",
        "dev/pts",
        "dev/shm",
        "etc",
        "home/user",
        "lib64",
        "proc",
        "root",
        "run",
        "sbin",
        "srv",
        "sys",
        "tmp",
        "usr/bin",
        "usr/sbin",
        "var/lib",
        "var/tmp",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::fs::hard_link(root.join("bin/busybox"), root.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink("../../bin/busybox", root.join("usr/bin/env")).unwrap();
    for lib in shared_libraries(busybox) {
        let target = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        // The library's content under the name the loader asks for (ldd names links).
        std::fs::copy(&lib, &target).unwrap();
    }
    std::fs::write(root.join("etc/os-release"), OS_RELEASE).unwrap();
    std::fs::write(
        root.join("etc/motd"),
        b"removed by the committed container\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), b"root:x:0:\n").unwrap();
    std::fs::copy(busybox, root.join("usr/bin/setuid-tool")).unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/setuid-tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(root.join("usr/sbin/setgid-tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        root.join("usr/sbin/setgid-tool"),
        std::fs::Permissions::from_mode(0o2755),
    )
    .unwrap();
    std::fs::write(root.join("home/user/.profile"), b"PS1='$ '\n").unwrap();
    std::fs::set_permissions(
        root.join("home/user/.profile"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    nix::unistd::chown(
        &root.join("home/user"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    nix::unistd::chown(
        &root.join("home/user/.profile"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    run_tool(
        "mkfifo",
        &["-m", "644", &root.join("run/initctl").display().to_string()],
    );
    for (name, kind, major, minor, mode) in DEVICES {
        let path = root.join("dev").join(name).display().to_string();
        run_tool(
            "mknod",
            &[
                "-m",
                &format!("{mode:o}"),
                &path,
                &kind.to_string(),
                &major.to_string(),
                &minor.to_string(),
            ],
        );
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, root.join("dev").join(link)).unwrap();
    }
    let out = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(root)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    out.stdout
}

/// The OCI architecture of this host (the busybox copied into the image is the host's).
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes an OCI layout at `dir` holding one image, tagged `v1`, whose one gzip layer is
/// `tar`; returns its config (the image ID is the config's digest).
pub(crate) fn rootfs_layout(dir: &Path, tar: &[u8]) -> Vec<u8> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let digest = sha256(data);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data).unwrap();
        digest
    };
    let layer = gzip(tar);
    let config = serde_json::to_vec_pretty(&serde_json::json!({
        "created": "2024-06-01T12:00:00Z",
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        "history": [{"created": "2024-06-01T12:00:00Z", "created_by": "busybox rootfs"}],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": put(&layer),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    config
}

/// Runs podman with runc (crun refuses this machine's cgroup layout) on the scratch store.
fn podman_runc(s: &Scratch, args: &[&str]) -> String {
    let mut full = vec!["--runtime", "runc"];
    full.extend_from_slice(args);
    podman(s, &full)
}

/// `podman run` of `image` offline, without a network, with limits this machine allows.
fn podman_run(s: &Scratch, extra: &[&str], image: &str, command: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--net=none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(command);
    podman_runc(s, &args)
}

/// The top layer of image `name` in `storage`'s listing.
fn top_layer(s: &Scratch, name: &str) -> String {
    let images = s.run(&["images", "-j"]).json();
    images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == name))
        .unwrap_or_else(|| panic!("no image {name}: {images}"))["layer"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn podman_runs_a_rootfs_storage_imported_and_storage_reads_what_podman_committed() {
    if !podman_available() || !runc_available() {
        return;
    }
    let Some(busybox) = host_busybox() else {
        return;
    };
    let s = Scratch::new();
    let tar = busybox_rootfs(&s.dir().join("rootfs"), &busybox);
    let names = tar_names(&tar);
    for expected in [
        "./dev/null",
        "./run/initctl",
        "./bin/cat",
        "./usr/bin/setuid-tool",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let layout = s.dir().join("layout");
    let config = rootfs_layout(&layout, &tar);
    let id = sha256(&config).trim_start_matches("sha256:").to_string();
    let image = "localhost/busybox-rootfs:v1";

    // storage stores the layout as skopeo would, and the layer as it was, byte for byte.
    let out = s.ok(&[
        "import-oci",
        "-n",
        image,
        &format!("{}:v1", layout.display()),
    ]);
    assert_eq!(first_line(&out), id);
    let layer = top_layer(&s, image);
    assert_eq!(
        s.run(&["diff", "-u", &layer]).stdout,
        tar,
        "diff re-creates the tar"
    );
    s.ok(&["verify", image]);

    // What podman's container sees of it: the file, the setuid bit, the hard links, the fifo.
    let os_release = podman_run(&s, &["--rm"], image, &["cat", "/etc/os-release"]);
    assert_eq!(os_release.as_bytes(), OS_RELEASE);
    let stat = podman_run(
        &s,
        &["--rm"],
        image,
        &[
            "stat",
            "-c",
            "%a %h %F %u:%g %n",
            "/usr/bin/setuid-tool",
            "/usr/sbin/setgid-tool",
            "/bin/cat",
            "/run/initctl",
            "/home/user/.profile",
        ],
    );
    let links = APPLETS.len() + 1;
    assert_eq!(
        stat,
        format!(
            "4755 1 regular file 0:0 /usr/bin/setuid-tool\n\
             2755 1 regular file 0:0 /usr/sbin/setgid-tool\n\
             755 {links} regular file 0:0 /bin/cat\n\
             644 1 fifo 0:0 /run/initctl\n\
             644 1 regular file 1000:1000 /home/user/.profile\n"
        )
    );
    // The device nodes are in the image (podman mounts its own /dev over them at run time).
    let ctr = first_line(&s.ok(&["create-container", image]));
    let mnt = PathBuf::from(s.ok(&["mount", &ctr]).trim());
    for (name, kind, major, minor, mode) in DEVICES {
        let meta = std::fs::symlink_metadata(mnt.join("dev").join(name)).unwrap();
        let is_kind = if *kind == 'c' {
            meta.file_type().is_char_device()
        } else {
            meta.file_type().is_block_device()
        };
        assert!(is_kind, "/dev/{name} is a {kind} device: {meta:?}");
        let rdev = meta.rdev();
        assert_eq!(
            (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)),
            (u64::from(*major), u64::from(*minor)),
            "/dev/{name}"
        );
        assert_eq!(meta.mode() & 0o7777, *mode, "/dev/{name}");
    }
    s.ok(&["unmount", &ctr]);
    s.ok(&["delete-container", &ctr]);

    // The reverse: podman runs a container that changes the tree and commits it; storage
    // lists the new image, mounts it and diffs its new layer.
    podman_run(
        &s,
        &["--name", "committer"],
        image,
        &[
            "sh",
            "-c",
            "echo committed > /srv/new && rm /etc/motd && mkdir /var/lib/app",
        ],
    );
    let committed = "localhost/committed:v1";
    podman_runc(&s, &["commit", "-q", "committer", committed]);
    podman_runc(&s, &["rm", "committer"]);
    s.ok(&["verify", committed]);
    // Exported and imported elsewhere, podman's image keeps its ID (its config digest).
    let podman_id = podman(&s, &["image", "inspect", "--format", "{{.Id}}", committed]);
    let exported = s.dir().join("committed-layout");
    s.ok(&[
        "export-oci",
        committed,
        &format!("{}:v1", exported.display()),
    ]);
    let fresh = Scratch::new();
    let imported = fresh.ok(&["import-oci", &format!("{}:v1", exported.display())]);
    assert_eq!(first_line(&imported), podman_id.trim());
    let top = top_layer(&s, committed);
    let layers = s.run(&["layers", "-j"]).json();
    let record = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == top.as_str())
        .unwrap()
        .clone();
    assert_eq!(record["parent"], layer.as_str(), "{record}");
    let changes = s.ok(&["changes", &top]);
    for expected in [
        "Add \"/srv/new\"",
        "Delete \"/etc/motd\"",
        "Add \"/var/lib/app\"",
    ] {
        assert!(
            changes.lines().any(|l| l == expected),
            "{expected} in {changes}"
        );
    }
    let diff = s.run(&["diff", "-u", &top]).stdout;
    assert_eq!(
        sha256(&diff),
        record["diff-digest"],
        "podman's tar-split re-created"
    );
    let names = tar_names(&diff);
    for expected in ["srv/new", "etc/.wh.motd", "var/lib/app"] {
        assert!(
            names
                .iter()
                .any(|n| n.trim_start_matches("./").trim_end_matches('/') == expected),
            "{expected} in {names:?}"
        );
    }
    let ctr = first_line(&s.ok(&["create-container", committed]));
    let mnt = PathBuf::from(s.ok(&["mount", &ctr]).trim());
    assert_eq!(std::fs::read(mnt.join("srv/new")).unwrap(), b"committed\n");
    assert!(!mnt.join("etc/motd").exists());
    assert_eq!(
        std::fs::read(mnt.join("etc/os-release")).unwrap(),
        OS_RELEASE
    );
    s.ok(&["unmount", &ctr]);
    s.ok(&["delete-container", &ctr]);
}
