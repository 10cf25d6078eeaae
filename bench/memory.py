#!/usr/bin/env python3
"""Peak memory of importing layers of many tiny files, `storage` beside the Go reference.

An import's memory must be bounded by design, not by the layer's size (issue #11): this
script imports tars of --sizes entries (default 200k and 1M one-byte files, 1000 to a
directory) with `storage` and with the Go reference containers-storage, on overlay and on
vfs, each into a fresh store, and prints the peak resident set size of each import
(GNU time's "Maximum resident set size") and its wall time. Each tool first imports a
one-file tar, so that compiling a component (cached after its first use) is not measured.

Everything happens on a tmpfs the script mounts and unmounts (inputs, graph and run roots).
The Go side is the reference binary found as bench.py finds it (--reference PATH, else
$STORAGE_REFERENCE, else upstream's 1.60 build).

Run as root:
  python3 bench/memory.py [--sizes 200000,1000000] [--drivers overlay,vfs]
      [--storage PATH] [--reference PATH] [--storage-opt OPT ...] [--json FILE]
"""

import argparse
import json
import os
import sys
import tarfile
import tempfile

from bench import Tool, print_reference, reference_binary, release_work, run, timed

HERE = os.path.dirname(os.path.abspath(__file__))
PER_DIR = 1000


def make_tar(path, entries):
    """A tar of `entries` one-byte files, PER_DIR to a directory, each directory's entry
    before its files (as a layer built from a tree lists them)."""
    data = b"x"
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w",
                                               format=tarfile.GNU_FORMAT) as tar:
        for i in range(entries):
            d = f"d{i // PER_DIR:05d}"
            if i % PER_DIR == 0:
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
                tar.addfile(info)
            info = tarfile.TarInfo(f"{d}/f{i:07d}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, _OneByte(data))


class _OneByte:
    """The content of one file, read once."""

    def __init__(self, data):
        self.data = data

    def read(self, n=-1):
        out, self.data = self.data, b""
        return out


def warm_up(tool, work):
    """One import of a one-file tar, untimed: a component is compiled on first use and cached
    (/var/cache/storage/components for root), and compiling is not what is measured."""
    path = os.path.join(work, "warm-up.tar")
    make_tar(path, 1)
    import_once(tool, path)
    os.unlink(path)


def import_once(tool, path):
    tool.fresh()
    try:
        seconds, rss, _ = timed(tool.cmd("import-layer", "-f", path))
    finally:
        tool.cleanup()
    return seconds, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200000,1000000",
                    help="entry counts of the tars, comma-separated")
    ap.add_argument("--drivers", default="overlay,vfs")
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference",
                    help="the Go containers-storage to compare with (default: upstream 1.60)")
    ap.add_argument("--storage-opt", action="append", default=[],
                    help="an option for storage only (e.g. overlay.archive=native)")
    ap.add_argument("--no-reference", action="store_true", help="measure storage only")
    ap.add_argument("--tmpfs-size", default="16G")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts a tmpfs and overlay layers")
    if not os.access(args.storage, os.X_OK):
        sys.exit(f"missing binary: {args.storage}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    drivers = [d for d in args.drivers.split(",") if d]
    go = None if args.no_reference else reference_binary(args.reference)
    print(f"storage: {os.path.abspath(args.storage)}")
    if go:
        print_reference(go)

    work = tempfile.mkdtemp(prefix="storage-memory-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    tools = []
    try:
        rows = []
        for entries in sizes:
            path = os.path.join(work, f"tiny-{entries}.tar")
            make_tar(path, entries)
            print(f"input {entries} entries: {os.path.getsize(path) / 1e6:.0f} MB", flush=True)
            for driver in drivers:
                ours = Tool(f"storage-{driver}", os.path.abspath(args.storage), work,
                            driver, args.storage_opt)
                tools.append(ours)
                warm_up(ours, work)
                row = [entries, driver, import_once(ours, path)]
                if go:
                    theirs = Tool(f"go-{driver}", go, work, driver)
                    tools.append(theirs)
                    warm_up(theirs, work)
                    row.append(import_once(theirs, path))
                rows.append(row)
                print(f"  {driver}: done", flush=True)
            os.unlink(path)

        print()
        print(f"{'entries':>9} {'driver':8} {'storage MiB':>12} {'storage s':>10}"
              + (f" {'go MiB':>8} {'go s':>8}" if go else ""))
        for entries, driver, (st, srss), *theirs in rows:
            line = f"{entries:9} {driver:8} {srss:12.1f} {st:10.2f}"
            if theirs:
                gt, grss = theirs[0]
                line += f" {grss:8.1f} {gt:8.2f}"
            print(line)
        if args.json:
            with open(args.json, "w") as out:
                json.dump([{"entries": e, "driver": d, "storage_s": s[0], "storage_mib": s[1],
                            "go_s": th[0][0] if th else None, "go_mib": th[0][1] if th else None}
                           for e, d, s, *th in rows], out, indent=1)
    finally:
        release_work(tools, work)


if __name__ == "__main__":
    main()
