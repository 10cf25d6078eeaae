#!/usr/bin/env python3
"""How `storage` and the Go reference containers-storage scale with the size of a store.

A store of N images, N containers and 2N layers (each image's top layer, in chains of five,
and each container's own layer) is written directly in upstream's on-disk format: the
`layers.json`, `images.json` and `containers.json` records, each image layer's tar-split
(an empty archive's, taken from a real import), each image's big data (a manifest and a
config), and the overlay driver's layout (`<id>/diff`, `work`, `merged`, `link`, `lower`,
the `l/` short links). Writing it is seconds; making it through the CLI would be 3N process
starts. Both binaries open it (same format), and `--check` runs `check` on the smallest
store with both first, to show the store is valid.

Everything happens on a tmpfs (graph roots, run roots), because this machine's disk timings
are noise: what is measured is each tool's own cost. Each tool gets a fresh copy of the
store for each size.

Measured, median of --reps repetitions (five times as many below N=1000), at each size:
  layers            one `layers` listing (output to /dev/null)
  create-layer      one new layer without a parent
  create-container  one container from an image, named by its image name
  mount+unmount     `mount` then `unmount` of a container (by name)

Prints, per operation, each tool's seconds at every size, the growth from the smallest to
the largest size (goal: at most 2x for storage), and storage/1.60 at every size (goal:
under 1). The reference binary is chosen as bench.py chooses it.

Run as root (overlay mounts, tmpfs):
  python3 bench/scale.py [--sizes 100,10000] [--reps 5] [--storage PATH] [--reference PATH] [--check]
                         [--json FILE]
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import binary_version, reference_binary, run

HERE = os.path.dirname(os.path.abspath(__file__))
CHAIN = 5
SHORT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class Gen:
    """Makes IDs, short links and timestamps from one seed, so both tools get the same store."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.clock = 1_780_000_000 * 10**9

    def id(self):
        return "%064x" % self.rng.getrandbits(256)

    def short(self):
        return "".join(self.rng.choice(SHORT_ALPHABET) for _ in range(26))

    def created(self):
        """An RFC 3339 time with nanoseconds, as Go writes it (trailing zeros dropped)."""
        self.clock += self.rng.randrange(1_000_000, 50_000_000)
        secs, nanos = divmod(self.clock, 10**9)
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        frac = f"{nanos:09d}".rstrip("0")
        return f"{base}.{frac}Z" if frac else f"{base}Z"


def big_data_file_name(key):
    """The file name of an image's big-data item (upstream's makeBigDataBaseName)."""
    plain = key and all(c.islower() or c.isdigit() or c == "." for c in key)
    if plain and key not in (".", ".."):
        return key
    return "=" + base64.b64encode(key.encode()).decode()


def go_json(value):
    """Compact JSON as Go's encoding/json writes it (our records hold no characters Go
    escapes differently)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_file(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def empty_layer_tar_split(storage, work):
    """The tar-split of an empty archive (1024 zero bytes), from a real import: every image
    layer of the generated store is that layer, so `check` can re-create each one."""
    scratch = tempfile.mkdtemp(dir=work)
    tar = os.path.join(scratch, "empty.tar")
    with open(tar, "wb") as f:
        f.write(b"\0" * 1024)
    cmd = [storage, "--graph", os.path.join(scratch, "g"), "--run", os.path.join(scratch, "r"),
           "--storage-driver", "overlay"]
    layer = run(cmd + ["import-layer", "-f", tar]).stdout.decode().split()[0]
    with open(os.path.join(scratch, "g", "overlay-layers", f"{layer}.tar-split.gz"), "rb") as f:
        data = f.read()
    subprocess.run(cmd + ["shutdown", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["umount", "-R", os.path.join(scratch, "g", "overlay")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(scratch)
    return data, "sha256:" + hashlib.sha256(b"\0" * 1024).hexdigest()


def make_store(graph, n, tar_split, empty_digest, seed=1):
    """Writes a store of n images, n containers and 2n layers under `graph`."""
    g = Gen(seed)
    overlay = os.path.join(graph, "overlay")
    links = os.path.join(overlay, "l")
    layers_dir = os.path.join(graph, "overlay-layers")
    images_dir = os.path.join(graph, "overlay-images")
    containers_dir = os.path.join(graph, "overlay-containers")
    for d in (links, layers_dir, images_dir, containers_dir):
        os.makedirs(d, mode=0o700)
    os.chmod(links, 0o755)

    lowers = {}  # layer ID -> its `lower` chain (short links, topmost first)
    shorts = {}

    def driver_layer(layer_id, parent):
        home = os.path.join(overlay, layer_id)
        os.mkdir(home, 0o700)
        os.mkdir(os.path.join(home, "diff"), 0o555)
        os.mkdir(os.path.join(home, "work"), 0o700)
        os.mkdir(os.path.join(home, "merged"), 0o700)
        short = g.short()
        shorts[layer_id] = short
        write_file(os.path.join(home, "link"), short.encode(), 0o644)
        os.symlink(f"../{layer_id}/diff", os.path.join(links, short))
        if parent:
            chain = [f"l/{shorts[parent]}"] + lowers[parent]
            lowers[layer_id] = chain
            write_file(os.path.join(home, "lower"), ":".join(chain).encode(), 0o644)
        else:
            lowers[layer_id] = []
            os.mkdir(os.path.join(home, "empty"), 0o700)

    layers, images, containers = [], [], []
    image_layers = []
    for i in range(n):
        layer_id = g.id()
        parent = image_layers[-1] if i % CHAIN else ""
        rec = {"id": layer_id}
        if parent:
            rec["parent"] = parent
        rec.update({"created": g.created(), "compressed-diff-digest": empty_digest,
                    "compressed-size": 1024, "diff-digest": empty_digest, "diff-size": 1024})
        layers.append(rec)
        image_layers.append(layer_id)
        driver_layer(layer_id, parent)
        write_file(os.path.join(layers_dir, f"{layer_id}.tar-split.gz"), tar_split)

        image_id = g.id()
        config = go_json({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": [empty_digest]}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = go_json({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                       "digest": config_digest, "size": len(config)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                        "digest": empty_digest, "size": 1024}]}).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        items = {f"manifest-{manifest_digest}": manifest, "manifest": manifest,
                 config_digest: config}
        image_home = os.path.join(images_dir, image_id)
        os.mkdir(image_home, 0o700)
        for key, data in items.items():
            write_file(os.path.join(image_home, big_data_file_name(key)), data)
        name = f"localhost/img{i}:latest"
        images.append({
            "id": image_id, "digest": manifest_digest, "names": [name], "names-history": [name],
            "layer": layer_id, "big-data-names": list(items),
            "big-data-sizes": {k: len(v) for k, v in sorted(items.items())},
            "big-data-digests": {k: "sha256:" + hashlib.sha256(v).hexdigest()
                                 for k, v in sorted(items.items())},
            "created": g.created()})

    for i in range(n):
        layer_id = g.id()
        parent = image_layers[i]
        layers.append({"id": layer_id, "parent": parent, "created": g.created()})
        driver_layer(layer_id, parent)
        container_id = g.id()
        metadata = go_json({"image-name": f"localhost/img{i}:latest",
                            "image-id": images[i]["id"], "name": f"ctr{i}",
                            "created-at": 1780000000 + i})
        containers.append({"id": container_id, "names": [f"ctr{i}"], "image": images[i]["id"],
                           "layer": layer_id, "metadata": metadata, "created": g.created(),
                           "flags": {"MountLabel": "", "ProcessLabel": ""}})

    write_file(os.path.join(layers_dir, "layers.json"), go_json(layers).encode())
    write_file(os.path.join(images_dir, "images.json"), go_json(images).encode())
    write_file(os.path.join(containers_dir, "containers.json"), go_json(containers).encode())


class Tool:
    """One store-managing CLI and its copy of a generated store."""

    def __init__(self, name, binary, root):
        self.name, self.binary, self.root = name, binary, root
        self.graph = self.run_root = None

    def cmd(self, *args):
        return [self.binary, "--graph", self.graph, "--run", self.run_root,
                "--storage-driver", "overlay", *args]

    def use(self, master, n):
        base = os.path.join(self.root, f"{self.name}-{n}")
        self.graph, self.run_root = os.path.join(base, "g"), os.path.join(base, "r")
        os.makedirs(base)
        run(["cp", "-a", master, self.graph])
        os.makedirs(self.run_root)

    def cleanup(self):
        """Unmounts everything of the current store and removes it, to free the tmpfs."""
        if not self.graph:
            return
        subprocess.run(self.cmd("shutdown", "-f"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        # The driver home stays a private bind mount after shutdown (upstream does the same).
        subprocess.run(["umount", "-R", os.path.join(self.graph, "overlay")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(os.path.dirname(self.graph), ignore_errors=True)
        self.graph = self.run_root = None


def timed_run(cmd):
    start = time.perf_counter()
    run(cmd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(tool, n, reps):
    """Seconds (median of reps) of each operation on the tool's store of size n. A small
    store's commands take milliseconds, where a busy machine's noise is largest: it gets
    five times the repetitions."""
    if n < 1000:
        reps *= 5
    # One command first, so that both tools start from a store they have opened once
    # (the driver's first start probes the kernel and writes its marker files).
    run(tool.cmd("layers"), stdout=subprocess.DEVNULL)
    picks = [(k * 7919) % n for k in range(reps)]
    results = {}
    results["layers"] = statistics.median(timed_run(tool.cmd("layers")) for _ in range(reps))
    results["create-layer"] = statistics.median(
        timed_run(tool.cmd("create-layer")) for _ in range(reps))
    results["create-container"] = statistics.median(
        timed_run(tool.cmd("create-container", f"localhost/img{k}:latest")) for k in picks)
    mount_times = []
    for k in picks:
        start = time.perf_counter()
        run(tool.cmd("mount", f"ctr{k}"), stdout=subprocess.DEVNULL)
        run(tool.cmd("unmount", f"ctr{k}"), stdout=subprocess.DEVNULL)
        mount_times.append(time.perf_counter() - start)
    results["mount+unmount"] = statistics.median(mount_times)
    return results


OPERATIONS = ["layers", "create-layer", "create-container", "mount+unmount"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,10000",
                    help="comma-separated N: N images, N containers, 2N layers")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--storage", default=os.path.join(HERE, "..", "target", "release", "storage"))
    ap.add_argument("--reference", "--go", dest="reference",
                    help="the Go containers-storage to compare with (default: upstream 1.60)")
    ap.add_argument("--tmpfs-size", default="8G")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--check", action="store_true",
                    help="run `check` on the smallest store with both binaries first")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark mounts a tmpfs and overlay layers")
    if not os.access(args.storage, os.X_OK):
        sys.exit(f"missing binary: {args.storage}")
    storage = os.path.abspath(args.storage)
    go_binary = reference_binary(args.reference)
    print(f"storage: {storage}, version {binary_version(storage)}")
    print(f"reference (go): {go_binary}, version {binary_version(go_binary)}")

    work = tempfile.mkdtemp(prefix="storage-scale-")
    run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", work])
    tools = [Tool("storage", storage, work), Tool("go", go_binary, work)]
    table = {}  # (tool name, n) -> {operation: seconds}
    try:
        tar_split, empty_digest = empty_layer_tar_split(storage, work)
        for n in sizes:
            master = os.path.join(work, f"master-{n}")
            start = time.perf_counter()
            make_store(master, n, tar_split, empty_digest)
            print(f"store N={n}: {n} images, {n} containers, {2 * n} layers "
                  f"(written in {time.perf_counter() - start:.1f} s)", flush=True)
            for tool in tools:
                tool.use(master, n)
                try:
                    if args.check and n == min(sizes):
                        run(tool.cmd("check"), stdout=subprocess.DEVNULL)
                        print(f"  {tool.name}: check passes", flush=True)
                    table[(tool.name, n)] = measure(tool, n, args.reps)
                finally:
                    tool.cleanup()
            shutil.rmtree(master)

        small, large = min(sizes), max(sizes)
        print()
        head = f"{'operation':18}"
        for tool in ("storage", "go"):
            for n in sizes:
                head += f" {tool + ' ' + str(n):>14}"
            head += f" {tool + ' x':>10}"
        for n in sizes:
            head += f" {'s/go ' + str(n):>11}"
        print(head + "   (seconds; x = cost at the largest size / at the smallest)")
        for op in OPERATIONS:
            line = f"{op:18}"
            for tool in ("storage", "go"):
                for n in sizes:
                    line += f" {table[(tool, n)][op]:14.4f}"
                line += f" {table[(tool, large)][op] / table[(tool, small)][op]:10.2f}"
            for n in sizes:
                line += f" {table[('storage', n)][op] / table[('go', n)][op]:11.2f}"
            print(line)
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"sizes": sizes,
                           **{tool: {op: {str(n): table[(tool, n)][op] for n in sizes}
                                     for op in OPERATIONS}
                              for tool in ("storage", "go")}}, out, indent=1)
    finally:
        for tool in tools:
            tool.cleanup()
        subprocess.run(["umount", "-R", work])
        os.rmdir(work)


if __name__ == "__main__":
    main()
