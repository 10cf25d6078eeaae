#!/usr/bin/env python3
"""create-container and delete-container on vfs: `storage` beside the reference, in one run.

With --rows: every row of the issue's table on the vfs component beside the native overlay
driver with the native archive (`overlay.archive=native`), both `storage`: import of each
input, `diff`, create+delete container, mount+unmount and one `layers`.

A vfs container layer is a full copy of its image's top layer, and deleting the container
removes that copy: both halves are timed, on images whose layer is bench.py's root-filesystem
tar or its many-small-files tar, on a tmpfs. Inputs, the reference binary and the helpers are
bench.py's.

  python3 bench/vfs_bench.py [--runs 5] [--storage PATH] [--reference PATH] [--quick]
          [--driver vfs] [--rows]
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (HERE, Tool, bench_command, bench_diff,  # noqa: E402
                   imported_layer, make_inputs, print_reference, reference_binary,
                   release_work, run, timed)


class DriverTool(Tool):
    """A bench.py tool on the driver named by `driver`."""

    def __init__(self, name, binary, root, driver, options=()):
        super().__init__(name, binary, root)
        self.driver, self.options = driver, list(options)

    def cmd(self, *args):
        cmd = super().cmd(*args)
        at = cmd.index("--storage-driver")
        cmd[at + 1] = self.driver
        for option in reversed(self.options):
            cmd[at + 2:at + 2] = ["--storage-opt", option]
        return cmd


def bench_create_delete(tool, path, runs):
    """Median seconds of create-container and of delete-container on an image of `path`."""
    layer = imported_layer(tool, path)
    image = run(tool.cmd("create-image", layer)).stdout.decode().split()[0]
    # An untimed first container: the component is compiled and cached, the page cache warm.
    first = run(tool.cmd("create-container", image)).stdout.decode().split()[0]
    run(tool.cmd("delete-container", first))
    creates, deletes = [], []
    for _ in range(runs):
        t, _, res = timed(tool.cmd("create-container", image))
        creates.append(t)
        container = res.stdout.decode().split()[0]
        t, _, _ = timed(tool.cmd("delete-container", container))
        deletes.append(t)
    tool.cleanup()
    return statistics.median(creates), statistics.median(deletes)


def bench_import_warm(tool, path, runs):
    """Median seconds of import-layer into a fresh store whose components are already
    compiled (one `layers` first: the vfs component is compiled once per store)."""
    def once():
        tool.fresh()
        run(tool.cmd("layers"))
        t, _, _ = timed(tool.cmd("import-layer", "-f", path))
        tool.cleanup()
        return t
    return statistics.median(once() for _ in range(runs))


def bench_mount(tool, runs):
    """Median seconds of one mount+unmount of a container on an empty image layer."""
    tool.fresh()
    layer = run(tool.cmd("create-layer")).stdout.decode().split()[0]
    image = run(tool.cmd("create-image", layer)).stdout.decode().split()[0]
    container = run(tool.cmd("create-container", image)).stdout.decode().split()[0]
    times = []
    for _ in range(runs + 1):
        t1, _, _ = timed(tool.cmd("mount", container))
        t2, _, _ = timed(tool.cmd("unmount", container))
        times.append(t1 + t2)
    tool.cleanup()
    return statistics.median(times[1:])


def bench_rows(args, work, inputs):
    """The issue's rows: vfs (component) beside overlay with the native archive."""
    binary = os.path.abspath(args.storage)
    vfs = DriverTool("vfs", binary, work, "vfs")
    native = DriverTool("native", binary, work, "overlay", ["overlay.archive=native"])
    table = []
    try:
        for name in ("rootfs.tar", "rootfs.tar.gz", "small.tar"):
            table.append((f"import {name}", *(bench_import_warm(t, inputs[name], args.runs)
                                              for t in (vfs, native))))
        for name in ("rootfs.tar", "small.tar"):
            table.append((f"diff {name}", *(bench_diff(t, inputs[name], args.runs, work)[0]
                                            for t in (vfs, native))))
        for name in ("rootfs.tar", "small.tar"):
            table.append((f"create+delete {name}",
                          *(sum(bench_create_delete(t, inputs[name], args.runs))
                            for t in (vfs, native))))
        table.append(("mount+unmount", *(bench_mount(t, args.runs) for t in (vfs, native))))
        table.append(("one layers", *(bench_command(t, args.runs)[0] for t in (vfs, native))))
    finally:
        release_work((vfs, native), work)
    print(f"\nvfs component vs overlay with the native archive, median of {args.runs}; "
          f"load average now {os.getloadavg()}")
    print(f"{'row':28} {'vfs s':>10} {'native s':>10} {'vfs/native':>11}")
    for name, v, n in table:
        print(f"{name:28} {v:10.4f} {n:10.4f} {v / n:11.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference")
    ap.add_argument("--driver", default="vfs")
    ap.add_argument("--tmpfs-size", default="10G")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", action="store_true",
                    help="every row, vfs beside overlay with the native archive")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts a tmpfs")
    go_binary = reference_binary(args.reference)
    print_reference(go_binary)
    print(f"load average: {os.getloadavg()}")
    work = tempfile.mkdtemp(prefix="storage-vfs-bench-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    if args.rows:
        try:
            bench_rows(args, work, make_inputs(work, args.quick))
        finally:
            if os.path.ismount(work):
                run(["umount", "-R", work])
                os.rmdir(work)
        return
    ours = DriverTool("storage", os.path.abspath(args.storage), work, args.driver)
    go = DriverTool("go", go_binary, work, args.driver)
    try:
        inputs = make_inputs(work, args.quick)
        rows = []
        for name in ("rootfs.tar", "small.tar"):
            path = inputs[name]
            print(f"input {name}: {os.path.getsize(path) / 1e6:.0f} MB", flush=True)
            s = bench_create_delete(ours, path, args.runs)
            g = bench_create_delete(go, path, args.runs)
            rows.append((name, s, g))
        print(f"\n{args.driver}, median of {args.runs}; load average now {os.getloadavg()}")
        print(f"{'image layer':14} {'op':8} {'storage s':>10} {'go s':>10} {'storage/go':>11}")
        for name, (sc, sd), (gc, gd) in rows:
            for op, s, g in (("create", sc, gc), ("delete", sd, gd), ("both", sc + sd, gc + gd)):
                print(f"{name:14} {op:8} {s:10.3f} {g:10.3f} {s / g:11.2f}")
    finally:
        release_work((ours, go), work)


if __name__ == "__main__":
    main()
