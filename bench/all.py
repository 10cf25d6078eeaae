#!/usr/bin/env python3
"""Issue #11's whole benchmark in one run: every goal with its measured figure.

Runs, one after the other on this machine and against the same reference binary:
  bench.py   imports, diffs, create+delete container, mount+unmount, `layers` idle and
             during an import; overlay and vfs; storage, upstream 1.60 and GNU tar
  memory.py  peak RSS of importing 200k and 1M tiny files, overlay and vfs
  scale.py   `layers`, `create-layer`, `create-container`, `mount` at N=100 and N=10000
then prints each script's own table and, last, one table of the issue's goals: the goal,
what this run measured and whether it is met.

Run as root, after `cargo build --release -p storage-cli`:
  python3 bench/all.py [--runs 3] [--storage PATH] [--reference PATH] [--quick]
--quick passes --quick (and small sizes) to each script: a smoke test, not a measurement.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import binary_version, reference_binary  # noqa: E402


def script(name, args, json_path):
    """Runs bench/`name` with `args`, its output passed through; returns its --json figures."""
    cmd = [sys.executable, os.path.join(HERE, name), *args, "--json", json_path]
    print(f"\n=== {' '.join(cmd[1:])}", flush=True)
    res = subprocess.run(cmd)
    if res.returncode != 0:
        sys.exit(f"{name} failed ({res.returncode})")
    with open(json_path) as f:
        return json.load(f)


def verdict(ok):
    return "met" if ok else "NOT met"


def goals(bench, memory, scale):
    """(goal, measured, met) for each of the issue's goals this run can judge."""
    out = []
    rows = {r["work"]: r for r in bench["rows"]}
    drivers = [d for d in ("overlay", "vfs") if d in bench["rows"][0]]
    # 1. Import faster than GNU tar.
    for d in drivers:
        for work in ("import rootfs.tar", "import small files"):
            r = rows[work]
            q = r[d]["storage"] / r["tar"]
            out.append((f"{d}: {work} <= 0.8x tar -x", f"{q:.2f}x", q <= 0.8))
    # 2. The vfs component as fast as native; containers on vfs at most half of 1.60's.
    if "vfs" in drivers:
        for r in bench["rows"]:
            if r["native"]:
                q = r["vfs"]["storage"] / r["native"]
                out.append((f"vfs: {r['work']} <= 1.1x native", f"{q:.2f}x", q <= 1.1))
        r = rows["create+delete container"]["vfs"]
        q = r["storage"] / r["go"]
        out.append(("vfs: create+delete container <= 0.5x 1.60", f"{q:.2f}x", q <= 0.5))
    if "overlay" in drivers:
        r = rows["import small files"]
        q = r["overlay"]["storage"] / r["native"] if r["native"] else None
        if q is not None:
            out.append(("archive component: small files <= 1.1x native", f"{q:.2f}x", q <= 1.1))
    # 3. Memory bounded: <= 48 MiB and flat from 200k to 1M entries.
    if memory:
        for d in sorted({m["driver"] for m in memory}):
            ms = sorted((m for m in memory if m["driver"] == d), key=lambda m: m["entries"])
            peak = max(m["storage_mib"] for m in ms)
            growth = ms[-1]["storage_mib"] - ms[0]["storage_mib"]
            sizes = "/".join(f"{m['storage_mib']:.1f}" for m in ms)
            out.append((f"{d}: import peak RSS <= 48 MiB ({'/'.join(str(m['entries']) for m in ms)})",
                        f"{sizes} MiB", peak <= 48))
            out.append((f"{d}: flat from {ms[0]['entries']} to {ms[-1]['entries']} entries",
                        f"+{growth:.1f} MiB", growth <= 4))
    # 4. Readers never wait for an import.
    for d in drivers:
        idle = rows["one `layers`"][d]["storage"]
        busy = rows["`layers` during an import"][d]["storage"]
        out.append((f"{d}: `layers` during an import ~ idle (<= 2x)",
                    f"{busy * 1e3:.1f} / {idle * 1e3:.1f} ms", busy <= 2 * idle))
    # 5. Scale: within 2x from the smallest store to the largest, ahead of 1.60 everywhere.
    if scale:
        small, large = str(min(scale["sizes"])), str(max(scale["sizes"]))
        for op, by_n in scale["storage"].items():
            g = by_n[large] / by_n[small]
            out.append((f"scale: {op} N={large} <= 2x N={small}", f"{g:.1f}x", g <= 2))
            ahead = all(by_n[n] < scale["go"][op][n] for n in by_n)
            worst = max(by_n[n] / scale["go"][op][n] for n in by_n)
            out.append((f"scale: {op} ahead of 1.60 at every N", f"<= {worst:.2f}x", ahead))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmarks mount tmpfs and overlay filesystems")
    storage = os.path.abspath(args.storage)
    go = reference_binary(args.reference)
    common = ["--storage", storage, "--reference", go]
    with tempfile.TemporaryDirectory(prefix="storage-bench-all-") as tmp:
        bench = script("bench.py", [*common, "--runs", str(args.runs)]
                       + (["--quick"] if args.quick else []), os.path.join(tmp, "bench.json"))
        memory = script("memory.py", [*common] + (["--sizes", "2000,10000"] if args.quick else []),
                        os.path.join(tmp, "memory.json"))
        scale = script("scale.py", [*common] + (["--sizes", "10,100", "--reps", "1"]
                                                if args.quick else []),
                       os.path.join(tmp, "scale.json"))
    load = os.getloadavg()
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
    print(f"\n=== issue #11 goals: storage at commit {commit or '?'} ({storage}) against "
          f"{binary_version(go)} ({go}); {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    table = goals(bench, memory, scale)
    width = max(len(g) for g, _, _ in table)
    for goal, measured, ok in table:
        print(f"{goal:{width}}  {measured:>20}  {verdict(ok)}")
    met = sum(1 for _, _, ok in table if ok)
    print(f"{met} of {len(table)} goals met")


if __name__ == "__main__":
    main()
