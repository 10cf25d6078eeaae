#!/usr/bin/env python3
"""Benchmark of the archive component against the native build of the same crate, in one run.

For the same root-filesystem tar (and a many-small-files tar), on a tmpfs:
  import-layer with `overlay.archive=component` (the default: storage-archive as a sandboxed
  WebAssembly component), with `overlay.archive=native` (the same crate built into the binary),
  and GNU `tar -x`; printed as seconds and the ratios component/native and native/tar.
  `diff` of the imported layer through both as well.
Then the latency of one `layers` command: `storage --storage-driver vfs` (the vfs component,
loaded from the precompiled cache) against the Go reference `containers-storage` with vfs
(skipped when this binary has no vfs driver), and both with overlay. The reference is
--reference PATH (alias --go), else $STORAGE_REFERENCE, else upstream's 1.60 build
(/work/shared/reference or <repo>/../shared/reference), else Debian's 1.43; its path and
version are printed first.

The component cache lives in /var/cache/storage/components (root only); the first run of this
script fills it, and a warm-up import before measuring keeps compiling out of the figures.
Run as root: python3 bench/archive_bench.py [--runs 5] [--storage PATH] [--reference PATH]
[--quick] (--quick: small inputs and one run, a smoke test of the script).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (HERE, Tool, make_inputs, median_of, print_reference,  # noqa: E402
                   reference_binary, release_work, run, timed)


def bench_import(tool, path, runs):
    def once():
        tool.fresh()
        t, rss, _ = timed(tool.cmd("import-layer", "-f", path))
        tool.cleanup()
        return t, rss
    return median_of(runs, once)


def bench_diff(tool, path, runs, work):
    tool.fresh()
    layer = run(tool.cmd("import-layer", "-f", path)).stdout.decode().split()[0]
    # Without its tar-split the layer's diff is written by the driver (through the archive
    # logic), not reassembled from the recorded tar stream.
    for f in os.listdir(os.path.join(tool.graph, "overlay-layers")):
        if f.startswith(layer) and "tar-split" in f:
            os.unlink(os.path.join(tool.graph, "overlay-layers", f))
    target = os.path.join(work, f"{tool.name}-diff.tar")

    def once():
        with open(target, "wb") as out:
            t, rss, _ = timed(tool.cmd("diff", "-u", layer), stdout=out)
        os.unlink(target)
        return t, rss
    diff = median_of(runs, once)
    changes = median_of(runs, lambda: timed(tool.cmd("changes", layer))[:2])
    tool.cleanup()
    return diff, changes


def bench_tar(work, path, runs):
    def once():
        d = tempfile.mkdtemp(dir=work)
        t, rss, _ = timed(["tar", "-C", d, "-xf", path])
        shutil.rmtree(d)
        return t, rss
    return median_of(runs, once)


def has_driver(binary, driver, work):
    d = tempfile.mkdtemp(dir=work)
    res = subprocess.run([binary, "--graph", os.path.join(d, "g"), "--run", os.path.join(d, "r"),
                          "--storage-driver", driver, "layers"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["umount", "-R", os.path.join(d, "g", driver)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(d, ignore_errors=True)
    return res.returncode == 0


def bench_layers(tool, runs, reps=30):
    tool.fresh()
    parent = ""
    for _ in range(3):
        args = ["create-layer"] + ([parent] if parent else [])
        parent = run(tool.cmd(*args)).stdout.decode().split()[0]
    run(tool.cmd("layers"))

    def once():
        start = time.perf_counter()
        for _ in range(reps):
            run(tool.cmd("layers"))
        return (time.perf_counter() - start) / reps, 0.0
    result = median_of(runs, once)
    tool.cleanup()
    return result[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
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
    storage = os.path.abspath(args.storage)
    if not os.access(storage, os.X_OK):
        sys.exit(f"missing binary: {storage}")
    go_binary = reference_binary(args.reference)
    print_reference(go_binary)

    work = tempfile.mkdtemp(prefix="storage-archive-bench-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    component = Tool("component", storage, work, options=["overlay.archive=component"])
    native = Tool("native", storage, work, options=["overlay.archive=native"])
    tools = [component, native]
    try:
        inputs = make_inputs(work, args.quick)
        del inputs["rootfs.tar.gz"]
        for name, path in inputs.items():
            entries = len(run(["tar", "-tf", path]).stdout.splitlines())
            print(f"input {name}: {os.path.getsize(path) / 1e6:.0f} MB, {entries} entries")
        # Warm-up: fills the component cache (a compile on the very first run).
        bench_import(component, inputs["small.tar"], 1)

        print(f"\n{'import-layer':16} {'component s':>12} {'native s':>9} {'tar -x s':>9} "
              f"{'comp/native':>12} {'native/tar':>11} {'comp/tar':>9} {'us/entry':>9}")
        for name, path in inputs.items():
            entries = len(run(["tar", "-tf", path]).stdout.splitlines())
            c = bench_import(component, path, args.runs)[0]
            n = bench_import(native, path, args.runs)[0]
            t = bench_tar(work, path, args.runs)[0]
            print(f"{name:16} {c:12.3f} {n:9.3f} {t:9.3f} {c / n:12.3f} {n / t:11.3f} "
                  f"{c / t:9.3f} {(c - n) / entries * 1e6:9.2f}")

        print(f"\n{'driver work':24} {'component s':>12} {'native s':>9} {'comp/native':>12}")
        for name, path in inputs.items():
            (cd, _), (cc, _) = bench_diff(component, path, args.runs, work)
            (nd, _), (nc, _) = bench_diff(native, path, args.runs, work)
            print(f"{'diff -u ' + name:24} {cd:12.3f} {nd:9.3f} {cd / nd:12.3f}")
            print(f"{'changes ' + name:24} {cc:12.3f} {nc:9.3f} {cc / nc:12.3f}")

        print(f"\n{'one `layers` command':24} {'storage ms':>11} {'go ms':>9} {'storage/go':>11}")
        for driver in ("vfs", "overlay"):
            if not has_driver(storage, driver, work):
                print(f"{driver:24} skipped: this storage binary has no {driver} driver")
                continue
            ours = Tool(f"storage-{driver}", storage, work, driver=driver)
            go = Tool(f"go-{driver}", go_binary, work, driver=driver)
            tools += [ours, go]
            s = bench_layers(ours, args.runs)
            g = bench_layers(go, args.runs)
            print(f"{driver:24} {s * 1e3:11.2f} {g * 1e3:9.2f} {s / g:11.2f}")
    finally:
        release_work(tools, work)


if __name__ == "__main__":
    main()
