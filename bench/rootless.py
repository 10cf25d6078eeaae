#!/usr/bin/env python3
"""Latency of one warm `--driver vfs layers` for a rootless user beside root's, in one run.

A rootless `storage` command runs in the user's store (~/.local/share/containers/storage) and,
by default, re-executes itself in a user namespace mapped by newuidmap/newgidmap; the vfs
driver component is loaded from the user's cache ($XDG_CACHE_HOME/storage/components), so a
warm command should cost what root's does plus that re-execution (issue #12). Measured with
hyperfine, after untimed warm-up commands that compile and cache the component:

  root                    storage --driver vfs layers (scratch graph and run roots)
  rootless                `STORAGE_DRIVER=vfs storage layers` as a throwaway user, in the
                          user's default store
  rootless --unshare=false  the same without the user namespace
  1.60 root / rootless    the reference containers-storage (upstream 1.60) the same ways
  launcher                runuser ... /bin/true: what starting a command costs (every command
                          above is started through runuser, root's too)

The user is created with `useradd` and subordinate ranges in /etc/subuid and /etc/subgid, and
removed with its home and its ranges at the end, also when the script fails.

Run as root: python3 bench/rootless.py [--runs 50] [--storage PATH] [--reference PATH]
"""

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import HERE, print_reference, reference_binary, run  # noqa: E402

USER = "storage-bench-rootless"


def add_user():
    """The throwaway user, with one subordinate range of 65536 IDs past every existing one."""
    subprocess.run(["userdel", "-r", USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(["useradd", "-m", "-s", "/bin/sh", USER])
    start = 200000
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    start = max(start, int(parts[1]) + int(parts[2]))
    for path in ("/etc/subuid", "/etc/subgid"):
        drop_ranges(path)
        with open(path, "a") as f:
            f.write(f"{USER}:{start}:65536\n")
    return pwd.getpwnam(USER)


def drop_ranges(path):
    with open(path) as f:
        lines = [line for line in f if not line.startswith(f"{USER}:")]
    with open(path, "w") as f:
        f.writelines(lines)


def remove_user(uid):
    subprocess.run(["pkill", "-KILL", "-U", str(uid)], stderr=subprocess.DEVNULL)
    # Mounts the user's commands left in the user's home (none expected: vfs mounts nothing).
    with open("/proc/self/mountinfo") as f:
        home = pwd.getpwnam(USER).pw_dir
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(home + "/")]
    for m in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
    subprocess.run(["userdel", "-r", USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for path in ("/etc/subuid", "/etc/subgid"):
        drop_ranges(path)
    shutil.rmtree(f"/tmp/storage-run-{uid}", ignore_errors=True)
    shutil.rmtree(f"/tmp/containers-user-{uid}", ignore_errors=True)


def as_root(cmd):
    """`cmd` through runuser as root, so that root's figures carry the same launcher cost."""
    return ["runuser", "-u", "root", "--", *cmd]


def as_user(cmd):
    """`cmd` run as the user, through runuser (no login session: no XDG_RUNTIME_DIR), on vfs
    through STORAGE_DRIVER (upstream refuses a driver flag without graph and run roots)."""
    return ["runuser", "-u", USER, "--", "env", "-u", "XDG_RUNTIME_DIR", "STORAGE_DRIVER=vfs",
            *cmd]


def hyperfine(commands, runs, json_path):
    """Median and minimum seconds of each named command."""
    args = ["hyperfine", "-N", "--runs", str(runs), "--warmup", "3", "--export-json", json_path]
    for name, cmd in commands:
        args += ["-n", name, " ".join(cmd)]
    run(args, stdout=subprocess.DEVNULL)
    with open(json_path) as f:
        results = json.load(f)["results"]
    return {r["command"]: (r["median"], r["min"]) for r in results}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates a throwaway user")
    for tool in ("useradd", "runuser", "newuidmap", "newgidmap", "hyperfine"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool} (packages passwd, util-linux, uidmap, hyperfine)")
    storage = os.path.abspath(args.storage)
    go = reference_binary(args.reference)
    print_reference(go)
    # The binaries must be readable by the user wherever the checkout is.
    work = tempfile.mkdtemp(prefix="storage-bench-rootless-")
    os.chmod(work, 0o755)
    bins = {}
    for name, path in (("storage", storage), ("go", go)):
        bins[name] = os.path.join(work, name)
        shutil.copy(path, bins[name])
        os.chmod(bins[name], 0o755)
    user = add_user()
    try:
        root_store = ["--graph", os.path.join(work, "g"), "--run", os.path.join(work, "r")]
        commands = [
            ("root", as_root([bins["storage"], *root_store, "--storage-driver", "vfs", "layers"])),
            ("rootless", as_user([bins["storage"], "layers"])),
            ("rootless --unshare=false", as_user([bins["storage"], "--unshare=false", "layers"])),
            ("1.60 root", as_root([bins["go"], "--graph", os.path.join(work, "gg"), "--run",
                                   os.path.join(work, "gr"), "--storage-driver", "vfs", "layers"])),
            ("1.60 rootless", as_user([bins["go"], "layers"])),
            ("launcher (root)", as_root(["/bin/true"])),
            ("launcher (user)", as_user(["/bin/true"])),
        ]
        for _, cmd in commands:
            # Untimed: creates the stores, compiles and caches the vfs component.
            run(cmd)
        times = hyperfine(commands, args.runs, os.path.join(work, "hyperfine.json"))
        print(f"\n{'`--driver vfs layers`':26} {'median ms':>10} {'min ms':>8}")
        for name, _ in commands:
            median, low = times[name]
            print(f"{name:26} {median * 1e3:10.2f} {low * 1e3:8.2f}")
        cache = os.path.join(user.pw_dir, ".cache", "storage", "components")
        cached = os.listdir(cache) if os.path.isdir(cache) else []
        print(f"\nthe user's component cache {cache}: {len(cached)} artifact(s)")
        def net(name, launcher):
            return times[name][0] - times[launcher][0]
        root = net("root", "launcher (root)")
        print(f"less the launcher: root {root * 1e3:.2f} ms, rootless "
              f"{net('rootless', 'launcher (user)') * 1e3:.2f} ms, without the namespace "
              f"{net('rootless --unshare=false', 'launcher (user)') * 1e3:.2f} ms; 1.60 root "
              f"{net('1.60 root', 'launcher (root)') * 1e3:.2f} ms, rootless "
              f"{net('1.60 rootless', 'launcher (user)') * 1e3:.2f} ms")
    finally:
        remove_user(user.pw_uid)
        for m in ("g", "gg"):
            subprocess.run([bins["storage"], "--graph", os.path.join(work, m), "--run",
                            os.path.join(work, m.replace("g", "r", 1)), "--storage-driver", "vfs",
                            "shutdown"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
