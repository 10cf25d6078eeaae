#!/usr/bin/env python3
"""Benchmark of `storage` beside GNU tar and the Go reference containers-storage, in one run.

Everything happens on a tmpfs (graph roots, run roots and the input archives), because
this machine's disk timings are noise: what is measured is each tool's own cost.

Inputs, made by the script:
  rootfs.tar      a root-filesystem-sized tar (hundreds of MB, thousands of files),
                  taken from this machine's /usr and /etc
  rootfs.tar.gz   the same, gzip-compressed
  small.tar       tens of thousands of small files

Measured, median of --runs runs, each on a fresh store:
  import-layer    `storage import-layer` vs `containers-storage import-layer` vs `tar -x`
  diff            `diff` of the imported layer (tar-split reassembly) vs Go vs `tar -c`
  create-container  create-container from an image on the imported layer
  command         latency of one `layers` command on a small store

The Go side is the reference binary: --reference PATH (alias --go), else $STORAGE_REFERENCE,
else upstream's 1.60 build in /work/shared/reference or <repo>/../shared/reference, else
Debian's /usr/bin/containers-storage (1.43, 1.2-2.4x slower than 1.60: a ratio against it
flatters us). The binary and its version are printed first.

Prints seconds, peak RSS and the ratios storage/go and storage/tar.
Run as root (overlay mounts, tmpfs):
  python3 bench/bench.py [--runs 3] [--storage PATH] [--reference PATH] [--quick]
--quick makes small inputs (/etc only, 2000 small files) and runs once: a smoke test of the
script, not a measurement.
"""

import argparse
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
    # 1.60 prints its version on stderr.
    res = subprocess.run([binary, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
    """One store-managing CLI with a scratch store of its own."""

    def __init__(self, name, binary, root):
        self.name, self.binary, self.root = name, binary, root
        self.count = 0

    def fresh(self):
        self.count += 1
        base = os.path.join(self.root, f"{self.name}-{self.count}")
        self.graph, self.run_root = os.path.join(base, "g"), os.path.join(base, "r")
        return self

    def cmd(self, *args):
        return [self.binary, "--graph", self.graph, "--run", self.run_root,
                "--storage-driver", "overlay", *args]

    def cleanup(self):
        """Unmounts everything of the current store and removes it, to free the tmpfs."""
        subprocess.run(self.cmd("shutdown", "-f"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = os.path.dirname(self.graph)
        # The driver home stays a private bind mount after shutdown (upstream does the same).
        subprocess.run(["umount", "-R", os.path.join(self.graph, "overlay")],
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


def bench_create_container(tool, path, runs):
    layer = imported_layer(tool, path)
    image = run(tool.cmd("create-image", layer)).stdout.decode().split()[0]

    def once():
        t, rss, _ = timed(tool.cmd("create-container", image))
        return t, rss
    result = median_of(runs, once)
    tool.cleanup()
    return result


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference",
                    help="the Go containers-storage to compare with (default: upstream 1.60)")
    ap.add_argument("--tmpfs-size", default="8G")
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

    work = tempfile.mkdtemp(prefix="storage-bench-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    ours = Tool("storage", os.path.abspath(args.storage), work)
    go = Tool("go", args.go, work)
    try:
        inputs = make_inputs(work, args.quick)
        for name, path in inputs.items():
            print(f"input {name}: {os.path.getsize(path) / 1e6:.0f} MB")
        rows = []
        for name in ("rootfs.tar", "rootfs.tar.gz", "small.tar"):
            path = inputs[name]
            s = bench_import(ours, path, args.runs)
            g = bench_import(go, path, args.runs)
            t = bench_tar_extract(work, path, args.runs)
            rows.append((f"import-layer {name}", s, g, t))
        for name in ("rootfs.tar", "small.tar"):
            path = inputs[name]
            s = bench_diff(ours, path, args.runs, work)
            g = bench_diff(go, path, args.runs, work)
            t = bench_tar_create(work, path, args.runs)
            rows.append((f"diff {name}", s, g, t))
        s = bench_create_container(ours, inputs["rootfs.tar"], args.runs)
        g = bench_create_container(go, inputs["rootfs.tar"], args.runs)
        rows.append(("create-container", s, g, None))
        s = bench_command(ours, args.runs)
        g = bench_command(go, args.runs)
        rows.append(("one command (layers)", s, g, None))

        print()
        print(f"{'operation':28} {'storage s':>10} {'go s':>10} {'tar s':>10} "
              f"{'storage/go':>11} {'storage/tar':>12} {'storage MiB':>12} {'go MiB':>8}")
        for name, (st, srss), (gt, grss), tar in rows:
            tar_s = f"{tar[0]:10.3f}" if tar else f"{'-':>10}"
            tar_r = f"{st / tar[0]:12.2f}" if tar else f"{'-':>12}"
            print(f"{name:28} {st:10.3f} {gt:10.3f} {tar_s} {st / gt:11.2f} {tar_r} "
                  f"{srss:12.1f} {grss:8.1f}")
    finally:
        release_work((ours, go), work)


if __name__ == "__main__":
    main()
