#!/usr/bin/env python3
"""Benchmark of `storage` beside GNU tar and the Go reference containers-storage, in one run.

Everything happens on a tmpfs (graph roots, run roots and the input archives), because
this machine's disk timings are noise: what is measured is each tool's own cost.

Inputs, made by the script:
  rootfs.tar      a root-filesystem-sized tar (hundreds of MB, thousands of files),
                  taken from this machine's /usr and /etc
  rootfs.tar.gz   the same, gzip-compressed
  small.tar       tens of thousands of small files

Measured on each driver of --drivers (default overlay and vfs), median of --runs runs, each
on a fresh store; the rows of issue #11's table:
  import-layer    `storage import-layer` vs `containers-storage import-layer` vs `tar -x`
  diff            `diff` of the imported layer (tar-split reassembly) vs Go vs `tar -c`
  create+delete container   create-container then delete-container on an image of the rootfs
  mount+unmount   of a container on that image
  one `layers`    latency of one `layers` command on a small store
  `layers` during an import   one `layers` while another process imports the rootfs
With vfs, the same rows run once more on overlay with `overlay.archive=native` (the archive
crate built into the binary), the yardstick of the vfs component: column vfs/native.

The Go side is the reference binary: --reference PATH (alias --go), else $STORAGE_REFERENCE,
else upstream's 1.60 build in /work/shared/reference or <repo>/../shared/reference, else
Debian's /usr/bin/containers-storage (1.43, 1.2-2.4x slower than 1.60: a ratio against it
flatters us). The binary and its version are printed first.

Prints seconds, the ratios storage/1.60 and storage/tar per driver, vfs/native, and the
imports' peak RSS; --json FILE also writes the figures. Run as root (overlay mounts, tmpfs):
  python3 bench/bench.py [--runs 3] [--drivers overlay,vfs] [--storage PATH]
                         [--reference PATH] [--json FILE] [--quick]
--quick makes small inputs (/etc only, 2000 small files) and runs once: a smoke test of the
script, not a measurement.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOTFS_DIRS = ["usr/bin", "usr/sbin", "usr/share", "etc"]
SMALL_FILES = 30000
QUICK_ROOTFS_DIRS = ["etc"]
QUICK_SMALL_FILES = 2000

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_BINARY = "/usr/bin/containers-storage"


def reference_binary(explicit=None):
    """The Go containers-storage to compare with: `explicit` (the command line), else
    $STORAGE_REFERENCE, else upstream's 1.60 build in /work/shared/reference, else the one
    beside the repository (<repo>/../shared/reference), else Debian's."""
    candidates = [explicit, os.environ.get("STORAGE_REFERENCE")]
    if not any(candidates):
        candidates = ["/work/shared/reference/containers-storage",
                      os.path.join(HERE, "..", "..", "shared", "reference", "containers-storage"),
                      DEBIAN_BINARY]
    for c in candidates:
        if not c:
            continue
        found = shutil.which(c) if os.sep not in c else c
        if found and os.access(found, os.X_OK):
            return os.path.abspath(found)
        if c == explicit or c == os.environ.get("STORAGE_REFERENCE"):
            sys.exit(f"missing reference binary: {c}")
    sys.exit("no reference containers-storage found: pass --reference PATH")


def binary_version(binary):
    """What `BINARY version` says; Debian's 1.43 build says nothing, its package does."""
    # 1.60 prints its version on stderr. `version` opens a store like any command: a scratch
    # one, so the system's (/var/lib/containers/storage) is neither made nor mounted. The
    # driver is vfs, which leaves no mount behind.
    with tempfile.TemporaryDirectory(prefix="storage-bench-version-") as scratch:
        res = subprocess.run(
            [binary, "--graph", os.path.join(scratch, "graph"), "--run",
             os.path.join(scratch, "run"), "--storage-driver", "vfs", "version"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in res.stdout.decode(errors="replace").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    if os.path.realpath(binary) == DEBIAN_BINARY:
        pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "containers-storage"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if pkg.returncode == 0:
            return f"Debian package {pkg.stdout.decode().strip()}"
    return "unknown"


def print_reference(binary):
    print(f"reference (go): {binary}, version {binary_version(binary)}")


def run(cmd, **kw):
    """Runs a command, failing loudly with its stderr."""
    res = subprocess.run(cmd, stdout=kw.pop("stdout", subprocess.PIPE),
                         stderr=subprocess.PIPE, **kw)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.decode(errors='replace')}")
    return res


def timed(cmd, **kw):
    """Runs a command; returns (wall seconds, peak RSS in MiB, result).

    GNU time measures the peak RSS of that one command (getrusage of children would give the
    maximum over every child so far)."""
    with tempfile.NamedTemporaryFile(mode="r") as rss_file:
        start = time.perf_counter()
        res = run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd], **kw)
        elapsed = time.perf_counter() - start
        rss_kib = int(rss_file.read().strip().splitlines()[-1] or 0)
    return elapsed, rss_kib / 1024.0, res


class Tool:
    """One store-managing CLI with a scratch store of its own, on `driver` with `options`
    (`--storage-opt` values)."""

    def __init__(self, name, binary, root, driver="overlay", options=()):
        self.name, self.binary, self.root = name, binary, root
        self.driver, self.options = driver, list(options)
        self.count = 0

    def fresh(self):
        self.count += 1
        base = os.path.join(self.root, f"{self.name}-{self.count}")
        self.graph, self.run_root = os.path.join(base, "g"), os.path.join(base, "r")
        return self

    def cmd(self, *args):
        opts = []
        for o in self.options:
            opts += ["--storage-opt", o]
        return [self.binary, "--graph", self.graph, "--run", self.run_root,
                "--storage-driver", self.driver, *opts, *args]

    def cleanup(self):
        """Unmounts everything of the current store and removes it, to free the tmpfs."""
        subprocess.run(self.cmd("shutdown", "-f"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = os.path.dirname(self.graph)
        # The overlay home stays a private bind mount after shutdown (upstream does the same).
        subprocess.run(["umount", "-R", os.path.join(self.graph, self.driver)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


def release_work(tools, work):
    """Removes every store the tools made below `work` (each run's, unmounted first), then
    unmounts and removes the tmpfs `work` itself."""
    for tool in tools:
        for i in range(1, tool.count + 1):
            tool.graph = os.path.join(work, f"{tool.name}-{i}", "g")
            tool.run_root = os.path.join(work, f"{tool.name}-{i}", "r")
            if os.path.isdir(tool.graph):
                tool.cleanup()
    subprocess.run(["umount", "-R", work])
    os.rmdir(work)


def make_inputs(work, quick=False):
    rootfs = os.path.join(work, "rootfs.tar")
    dirs = QUICK_ROOTFS_DIRS if quick else ROOTFS_DIRS
    small_files = QUICK_SMALL_FILES if quick else SMALL_FILES
    subprocess.run(["tar", "-C", "/", "--ignore-failed-read", "--warning=none", "-cf", rootfs,
                    *dirs], stderr=subprocess.DEVNULL)
    gz = rootfs + ".gz"
    with open(gz, "wb") as out:
        run(["gzip", "-1", "-c", rootfs], stdout=out)
    src = os.path.join(work, "small-src")
    for i in range(small_files):
        d = os.path.join(src, f"d{i // 1000:03d}")
        if i % 1000 == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(os.urandom(64 + i % 512))
    small = os.path.join(work, "small.tar")
    run(["tar", "-C", src, "-cf", small, "."])
    shutil.rmtree(src)
    return {"rootfs.tar": rootfs, "rootfs.tar.gz": gz, "small.tar": small}


def median_of(runs, fn):
    times, rss = [], []
    for _ in range(runs):
        t, r = fn()
        times.append(t)
        rss.append(r)
    return statistics.median(times), max(rss)


def bench_import(tool, path, runs):
    def once():
        tool.fresh()
        t, rss, _ = timed(tool.cmd("import-layer", "-f", path))
        tool.cleanup()
        return t, rss
    return median_of(runs, once)


def bench_tar_extract(work, path, runs):
    def once():
        d = tempfile.mkdtemp(dir=work)
        t, rss, _ = timed(["tar", "-C", d, "-xf", path])
        shutil.rmtree(d)
        return t, rss
    return median_of(runs, once)


def imported_layer(tool, path):
    tool.fresh()
    out = run(tool.cmd("import-layer", "-f", path)).stdout.decode().split()
    return out[0]


def bench_diff(tool, path, runs, work):
    layer = imported_layer(tool, path)
    target = os.path.join(work, f"{tool.name}-diff.tar")

    def once():
        with open(target, "wb") as out:
            t, rss, _ = timed(tool.cmd("diff", "-u", layer), stdout=out)
        os.unlink(target)
        return t, rss
    result = median_of(runs, once)
    tool.cleanup()
    return result


def bench_tar_create(work, path, runs):
    d = tempfile.mkdtemp(dir=work)
    run(["tar", "-C", d, "-xf", path])

    def once():
        t, rss, _ = timed(["tar", "-C", d, "-cf", os.path.join(work, "gnu-c.tar"), "."])
        os.unlink(os.path.join(work, "gnu-c.tar"))
        return t, rss
    result = median_of(runs, once)
    shutil.rmtree(d)
    return result


def image_of(tool, path):
    """A fresh store holding one image whose only layer is the tar at `path`."""
    layer = imported_layer(tool, path)
    return run(tool.cmd("create-image", layer)).stdout.decode().split()[0]


def bench_create_delete(tool, path, runs):
    """`create-container` then `delete-container` on an image of `path`, timed together: a
    vfs container is a full copy of the image's layer and deleting it removes the copy."""
    image = image_of(tool, path)
    # Untimed: compiles and caches a component driver, warms the page cache.
    first = run(tool.cmd("create-container", image)).stdout.decode().split()[0]
    run(tool.cmd("delete-container", first))

    def once():
        t1, rss1, res = timed(tool.cmd("create-container", image))
        container = res.stdout.decode().split()[0]
        t2, rss2, _ = timed(tool.cmd("delete-container", container))
        return t1 + t2, max(rss1, rss2)
    result = median_of(runs, once)
    tool.cleanup()
    return result


def bench_mount(tool, path, runs):
    """`mount` then `unmount` of a container on an image of `path`, timed together."""
    image = image_of(tool, path)
    container = run(tool.cmd("create-container", image)).stdout.decode().split()[0]
    run(tool.cmd("mount", container))
    run(tool.cmd("unmount", container))

    def once():
        t1, rss1, _ = timed(tool.cmd("mount", container))
        t2, rss2, _ = timed(tool.cmd("unmount", container))
        return t1 + t2, max(rss1, rss2)
    result = median_of(runs, once)
    tool.cleanup()
    return result


def bench_layers_during_import(tool, path, runs):
    """Seconds one `layers` takes while an import of `path` runs in another process, and
    whether the import was still running when it answered (else the figure says nothing).
    The reader starts once the importer has begun writing the layer's files."""
    waits, overlapped = [], True
    for _ in range(runs):
        tool.fresh()
        run(tool.cmd("layers"))
        home = os.path.join(tool.graph, tool.driver)
        before = set(os.listdir(home)) if os.path.isdir(home) else set()
        importer = subprocess.Popen(tool.cmd("import-layer", "-f", path),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Both implementations create the layer's directory in the driver's home before
        # the first file (vfs: <home>/dir/<id>).
        def started():
            names = set(os.listdir(home)) if os.path.isdir(home) else set()
            if tool.driver == "vfs" and os.path.isdir(os.path.join(home, "dir")):
                return bool(os.listdir(os.path.join(home, "dir")))
            return bool(names - before - {"l", "dir"})
        while importer.poll() is None and not started():
            time.sleep(0.005)
        t, _, _ = timed(tool.cmd("layers"))
        overlapped = overlapped and importer.poll() is None
        waits.append(t)
        if importer.wait() != 0:
            sys.exit(f"import failed: {importer.stderr.read().decode(errors='replace')}")
        tool.cleanup()
    return statistics.median(waits), overlapped


def bench_command(tool, runs):
    tool.fresh()
    parent = ""
    for _ in range(3):
        args = ["create-layer"] + ([parent] if parent else [])
        parent = run(tool.cmd(*args)).stdout.decode().split()[0]
    reps = 20

    def once():
        start = time.perf_counter()
        for _ in range(reps):
            run(tool.cmd("layers"))
        return (time.perf_counter() - start) / reps, 0.0
    result = median_of(runs, once)
    tool.cleanup()
    return result


# The rows of the table: (label, kind, input).
ROWS = [
    ("import rootfs.tar", "import", "rootfs.tar"),
    ("import rootfs.tar.gz", "import", "rootfs.tar.gz"),
    ("import small files", "import", "small.tar"),
    ("diff rootfs.tar", "diff", "rootfs.tar"),
    ("diff small files", "diff", "small.tar"),
    ("create+delete container", "container", "rootfs.tar"),
    ("mount+unmount", "mount", "rootfs.tar"),
    ("one `layers`", "layers", None),
    ("`layers` during an import", "reader", "rootfs.tar"),
]


def measure(kind, tool, path, runs, work):
    """(seconds, peak MiB) of one row's work with `tool`."""
    if kind == "import":
        return bench_import(tool, path, runs)
    if kind == "diff":
        return bench_diff(tool, path, runs, work)
    if kind == "container":
        return bench_create_delete(tool, path, runs)
    if kind == "mount":
        return bench_mount(tool, path, runs)
    if kind == "layers":
        return bench_command(tool, runs)
    t, overlapped = bench_layers_during_import(tool, path, runs)
    if not overlapped:
        print(f"note: {tool.name}'s import ended before its reader answered")
    return t, 0.0


def measure_tar(kind, work, path, runs):
    if kind == "import":
        return bench_tar_extract(work, path, runs)
    if kind == "diff":
        return bench_tar_create(work, path, runs)
    return None


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference",
                    help="the Go containers-storage to compare with (default: upstream 1.60)")
    ap.add_argument("--drivers", default="overlay,vfs",
                    help="comma-separated drivers to measure (default overlay,vfs)")
    ap.add_argument("--tmpfs-size", default="8G")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--quick", action="store_true",
                    help="small inputs and one run: a smoke test, not a measurement")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts a tmpfs and overlay layers")
    if not os.access(args.storage, os.X_OK):
        sys.exit(f"missing binary: {args.storage}")
    args.go = reference_binary(args.reference)
    print_reference(args.go)
    drivers = [d for d in args.drivers.split(",") if d]

    work = tempfile.mkdtemp(prefix="storage-bench-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    storage = os.path.abspath(args.storage)
    tools = {}
    for d in drivers:
        tools[d] = (Tool(f"storage-{d}", storage, work, d), Tool(f"go-{d}", args.go, work, d))
    # The vfs component's yardstick: the same work done natively (overlay with the archive
    # crate built into the binary).
    native = Tool("native", storage, work, "overlay", ["overlay.archive=native"])
    all_tools = [t for pair in tools.values() for t in pair] + [native]
    figures = {"reference": args.go, "reference_version": binary_version(args.go),
               "storage": storage, "runs": args.runs, "rows": []}
    try:
        inputs = make_inputs(work, args.quick)
        for name, path in inputs.items():
            print(f"input {name}: {os.path.getsize(path) / 1e6:.0f} MB")
        for d in drivers:
            # Untimed: compiles and caches the components (archive, vfs driver).
            bench_import(tools[d][0], inputs["small.tar"], 1)
        for label, kind, input_name in ROWS:
            path = inputs.get(input_name)
            row = {"work": label, "tar": None, "native": None}
            tar = measure_tar(kind, work, path, args.runs)
            row["tar"] = tar[0] if tar else None
            for d in drivers:
                ours, go = tools[d]
                s = measure(kind, ours, path, args.runs, work)
                g = measure(kind, go, path, args.runs, work)
                row[d] = {"storage": s[0], "go": g[0], "storage_mib": s[1], "go_mib": g[1]}
            if "vfs" in drivers and kind != "container":
                row["native"] = measure(kind, native, path, args.runs, work)[0]
            figures["rows"].append(row)
            print(f"measured: {label}", flush=True)

        print()
        head = f"{'work':28}"
        for d in drivers:
            head += f" {d + ' s':>9} {'1.60 s':>8} {'/1.60':>6} {'/tar':>6}"
        head += f" {'tar s':>7} {'vfs/native':>11}"
        print(head)
        for row in figures["rows"]:
            line = f"{row['work']:28}"
            for d in drivers:
                f = row[d]
                line += (f" {f['storage']:9.3f} {f['go']:8.3f} {ratio(f['storage'], f['go']):>6}"
                         f" {ratio(f['storage'], row['tar']):>6}")
            line += f" {row['tar']:7.3f}" if row["tar"] else f" {'-':>7}"
            vfs = row.get("vfs")
            line += f" {ratio(vfs['storage'] if vfs else None, row['native']):>11}"
            print(line)
        print()
        print(f"{'peak RSS MiB':28}" + "".join(f" {d + ' storage':>16} {d + ' 1.60':>12}" for d in drivers))
        for row in figures["rows"]:
            if row["work"].startswith(("import", "diff")):
                print(f"{row['work']:28}" + "".join(
                    f" {row[d]['storage_mib']:16.1f} {row[d]['go_mib']:12.1f}" for d in drivers))
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=1)
    finally:
        release_work(all_tools, work)


if __name__ == "__main__":
    main()
