#!/usr/bin/env bash
# Re-creates the checked-in seed corpora of the fuzz targets (fuzz/seeds/<target>/) from real
# tools: GNU tar, bsdtar, busybox tar and Python's tarfile for tars (PAX, GNU long names, the
# three sparse formats), the reference containers-storage for tar-split files, skopeo and
# podman for OCI layout documents, the repository's storage.toml and Debian's storage.conf
# for configurations, the command table's examples for argument lines. Run as root from
# anywhere; the seeds are small on purpose (libFuzzer's -max_len follows the largest).
#
# Each target reads a few leading bytes of settings before its document (see the target's
# doc comment), so each seed is the document with those bytes in front. The three tar
# targets read the same shape and share seeds/tar/ (run.sh gives it to each of them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
cleanup() {
    # The reference binary may leave its store mounted.
    umount -R "$work/store/graph" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for t in tar apply_memfs tarsplit_reader oci_json config cli_args host_calls; do
    rm -rf "${here:?}/$t"
    mkdir -p "$here/$t"
done

# --- a small tree with every kind of entry ---------------------------------------------
tree="$work/tree"
mkdir -p "$tree/dir/sub" "$tree/long-$(printf 'n%.0s' {1..60})/deeper-$(printf 'm%.0s' {1..50})"
printf 'hello\n' >"$tree/dir/file"
: >"$tree/dir/empty"
ln -s file "$tree/dir/link"
ln -s ../../etc/passwd "$tree/dir/uplink"
ln "$tree/dir/file" "$tree/dir/hard"
mkfifo "$tree/dir/fifo"
printf 'x' >"$tree/long-$(printf 'n%.0s' {1..60})/deeper-$(printf 'm%.0s' {1..50})/f"
printf 'caf\xc3\xa9\n' >"$tree/dir/caf$(printf '\xc3\xa9')"
mkdir -p "$tree/wh"
: >"$tree/wh/.wh.gone"
: >"$tree/wh/.wh..wh..opq"
chown -h 1000:1000 "$tree/dir/file" "$tree/dir/link"
chmod 4755 "$tree/dir/file"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"v1")' "$tree/dir/file" 2>/dev/null || true
touch -h -d @1700000000 "$tree"/dir/* "$tree/dir"
# A file with holes: data at 0 and at 16 KiB, 24 KiB long.
sparse="$work/sparse"
mkdir -p "$sparse"
printf 'head' >"$sparse/holes"
printf 'tail' | dd of="$sparse/holes" bs=1 seek=16384 conv=notrunc status=none
truncate -s 24576 "$sparse/holes"

tars="$work/tars"
mkdir -p "$tars"
(cd "$tree" && tar --format=gnu -cf "$tars/gnu.tar" .)
(cd "$tree" && tar --format=ustar -cf "$tars/ustar.tar" dir wh 2>/dev/null) || true
(cd "$tree" && tar --format=posix --pax-option=delete=atime,delete=ctime -cf "$tars/posix.tar" .)
(cd "$tree" && tar --format=posix --xattrs -cf "$tars/posix-xattrs.tar" dir)
(cd "$tree" && tar --format=v7 -cf "$tars/v7.tar" dir/file dir/hard)
(cd "$sparse" && tar --format=gnu --sparse -cf "$tars/sparse-oldgnu.tar" holes)
for v in 0.0 0.1 1.0; do
    (cd "$sparse" && tar --format=posix --sparse --sparse-version=$v -cf "$tars/sparse-pax-$v.tar" holes)
done
(cd "$tree" && bsdtar --format=pax -cf "$tars/bsdtar-pax.tar" .)
(cd "$tree" && bsdtar --format=gnutar -cf "$tars/bsdtar-gnu.tar" dir)
(cd "$sparse" && bsdtar --format=pax -cf "$tars/bsdtar-sparse.tar" holes)
(cd "$tree" && busybox tar -cf "$tars/busybox.tar" dir wh)
python3 - "$tree" "$tars" <<'EOF'
import io, sys, tarfile
tree, out = sys.argv[1], sys.argv[2]
for name, fmt in [("py-gnu", tarfile.GNU_FORMAT), ("py-pax", tarfile.PAX_FORMAT), ("py-ustar", tarfile.USTAR_FORMAT)]:
    try:
        with tarfile.open(f"{out}/{name}.tar", "w", format=fmt) as t:
            t.add(f"{tree}/dir", arcname="dir")
            t.add(f"{tree}/wh", arcname="wh")
    except ValueError:
        pass
# PAX records that matter: a long path, a linkpath, xattrs, a global header, odd times.
with tarfile.open(f"{out}/py-pax-records.tar", "w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "global"}) as t:
    i = tarfile.TarInfo("p/" + "x" * 150)
    i.size = 3
    i.pax_headers = {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00",
                     "mtime": "1700000000.123456789", "uname": "ü"}
    t.addfile(i, io.BytesIO(b"abc"))
    i = tarfile.TarInfo("p/sym")
    i.type = tarfile.SYMTYPE
    i.linkname = "../" * 40 + "target"
    t.addfile(i)
    i = tarfile.TarInfo("p/dev")
    i.type = tarfile.CHRTYPE
    i.devmajor, i.devminor = 1, 3
    t.addfile(i)
    i = tarfile.TarInfo("p/.wh.deleted")
    t.addfile(i, io.BytesIO(b""))
EOF
# Hostile shapes the parser and apply must refuse cleanly.
python3 - "$tars" <<'EOF'
import io, sys, tarfile
out = sys.argv[1]
def make(name, entries):
    with tarfile.open(f"{out}/{name}.tar", "w", format=tarfile.GNU_FORMAT) as t:
        for e in entries:
            i = tarfile.TarInfo(e[0])
            i.type = e[1]
            if len(e) > 2:
                i.linkname = e[2]
            data = e[3] if len(e) > 3 else b""
            i.size = len(data)
            t.addfile(i, io.BytesIO(data))
make("hostile-escape", [("../evil", tarfile.REGTYPE, "", b"x"), ("/abs", tarfile.REGTYPE, "", b"y"),
                        ("l", tarfile.SYMTYPE, "/etc"), ("l/passwd", tarfile.REGTYPE, "", b"z"),
                        ("h", tarfile.LNKTYPE, "../../etc/shadow")])
make("hostile-replace", [("d", tarfile.DIRTYPE), ("d/f", tarfile.REGTYPE, "", b"1"),
                         ("d", tarfile.SYMTYPE, "/"), ("d/f", tarfile.REGTYPE, "", b"2"),
                         (".wh.d", tarfile.REGTYPE), ("./", tarfile.DIRTYPE)])
EOF
# Tools pad archives to 10 KiB records with zeros: cut each after its two end blocks, so
# that the seeds (and libFuzzer's -max_len, which follows them) stay small.
python3 - "$tars" <<'EOF'
import os, sys, tarfile
for name in os.listdir(sys.argv[1]):
    path = os.path.join(sys.argv[1], name)
    try:
        with tarfile.open(path) as t:
            t.getmembers()
            end = t.offset  # where the end-of-archive blocks start
    except Exception:
        continue
    data = open(path, "rb").read()
    open(path, "wb").write(data[:min(len(data), end + 1024)])
EOF
# Truncated and trailing-data variants of one archive.
head -c 1000 "$tars/posix.tar" >"$tars/truncated.tar"
{ cat "$tars/busybox.tar"; printf 'trailing data after the end'; } >"$tars/trailing.tar"

for f in "$tars"/*.tar; do
    size=$(stat -c %s "$f")
    if [ "$size" -gt 65536 ]; then
        echo "skipping $f ($size bytes)" >&2
        continue
    fi
    # The tar targets (tar_parser, apply_memfs, tarsplit_roundtrip) all read two bytes of
    # settings first, and share these.
    { printf '\x00\x58'; cat "$f"; } >"$here/tar/$(basename "$f" .tar)"
done
# apply options: overlay whiteouts, an ID mapping and a forced mode on one archive each.
{ printf '\x01\x00'; cat "$tars/py-pax-records.tar"; } >"$here/apply_memfs/py-pax-records-overlay"
{ printf '\x0c\x11'; cat "$tars/posix.tar"; } >"$here/apply_memfs/posix-mapped-forced"

# --- tar-split files, written by the reference containers-storage ----------------------
reference="${STORAGE_REFERENCE:-}"
for candidate in "$reference" /work/shared/reference/containers-storage "$repo/../shared/reference/containers-storage" /usr/bin/containers-storage; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        reference="$candidate"
        break
    fi
done
echo "tar-split seeds from $reference" >&2
store="$work/store"
# (Go cannot import old-GNU sparse entries: "unhandled tar header type 83".)
for base in gnu posix sparse-pax-0.1 bsdtar-pax py-gnu trailing; do
    "$reference" --graph "$store/graph" --run "$store/run" --storage-driver vfs \
        import-layer <"$tars/$base.tar" >/dev/null
done
i=0
for ts in "$store"/graph/vfs-layers/*.tar-split.gz; do
    i=$((i + 1))
    { printf '\x00'; cat "$ts"; } >"$here/tarsplit_reader/upstream-$i.gz"
    { printf '\x01'; gzip -dc "$ts"; } >"$here/tarsplit_reader/upstream-$i.json"
done
"$reference" --graph "$store/graph" --run "$store/run" --storage-driver vfs shutdown >/dev/null 2>&1 || true
printf '\x00{"type":2,"payload":"AAAA"}\n{"type":1,"name":"f","size":3,"payload":"AAAAAAAAAAA="}\n{"type":1,"name_raw":"ZgA=","size":-1}\n{"type":9}\n' \
    >"$here/tarsplit_reader/handmade-corrupt"

# --- OCI layout documents: skopeo's and podman's ---------------------------------------
oci="$work/oci"
mkdir -p "$oci/root"
cp -a "$tree/dir" "$oci/root/"
tar -C "$oci/root" -cf "$oci/rootfs.tar" .
export CONTAINERS_STORAGE_CONF="$work/podman-storage.conf"
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/podman/graph"
runroot = "$work/podman/run"
EOF
podman import --quiet "$oci/rootfs.tar" localhost/fuzz-seed:latest >/dev/null
skopeo copy --quiet "containers-storage:localhost/fuzz-seed:latest" "oci:$oci/layout:v1"
skopeo copy --quiet --format v2s2 "containers-storage:localhost/fuzz-seed:latest" "dir:$oci/docker"
podman rmi --quiet localhost/fuzz-seed:latest >/dev/null 2>&1 || true
podman --storage-driver vfs system reset --force >/dev/null 2>&1 || true
unset CONTAINERS_STORAGE_CONF
cp "$oci/layout/oci-layout" "$here/oci_json/oci-layout"
cp "$oci/layout/index.json" "$here/oci_json/index.json"
n=0
for blob in "$oci"/layout/blobs/sha256/*; do
    if [ "$(stat -c %s "$blob")" -lt 8192 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$blob" 2>/dev/null; then
        n=$((n + 1))
        cp "$blob" "$here/oci_json/oci-blob-$n.json"
    fi
done
cp "$oci/docker/manifest.json" "$here/oci_json/docker-manifest.json"
for blob in "$oci"/docker/*; do
    case "$blob" in *manifest.json | *version) continue ;; esac
    if [ "$(stat -c %s "$blob")" -lt 8192 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$blob" 2>/dev/null; then
        cp "$blob" "$here/oci_json/docker-config.json"
    fi
done
# A multi-platform index (as docker.io serves them), first line doubling as REF PLATFORM.
cat >"$here/oci_json/multi-platform-index.json" <<'EOF'
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":528,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"v1"}},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":528,"platform":{"architecture":"arm64","os":"linux","variant":"v8"},"annotations":{"org.opencontainers.image.ref.name":"v1"}},
{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"sha512:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":1,"urls":["https://example.com"]}]}
EOF
printf 'v1 linux/arm64/v8\n' >"$here/oci_json/ref-platform"
# Regression: an array with a config's fields in order was taken for a config.
printf '["amd64","linux","",null,{"type":"layers","diff_ids":[]}]' >"$here/oci_json/array-config"

# --- configurations ----------------------------------------------------------------------
cp "$repo/storage.toml" "$here/config/storage.toml"
for f in /usr/share/containers/storage.conf /etc/containers/storage.conf; do
    [ -f "$f" ] && cp "$f" "$here/config/$(echo "$f" | tr / _)"
done
{ cat "$repo/storage.toml"; printf '\0overlay2\0overlay.mountopt=nodev,,overlay.archive=native'; } >"$here/config/with-env"
cat >"$here/config/plugins-and-options" <<'EOF'
[storage]
driver = "btrfs"
graphroot = "/var/lib/x"
runroot = "/run/x"
imagestore = "/var/lib/images"
transient_store = true
[storage.options]
additionalimagestores = ["/a", "/b"]
pull_options = {enable_partial_images = "true", use_hard_links = "false"}
remap-uids = "0:1668442479:65536"
remap-user = "containers"
[storage.options.overlay]
mountopt = "nodev,metacopy=on"
size = "10G"
archive_memory_limit = "1.5GiB"
archive_deadline_ms = 1000
[storage.options.btrfs]
min_space = "1g"
[plugins.example]
component = "/usr/lib/storage/example.wasm"
memory_limit = "256m"
EOF

# --- argument lines: the command table's examples, and flag shapes mflag cares about -----
grep -o 'ex(\s*"storage [^"]*"' "$repo/cli/src/commands.rs" | sed 's/^ex(\s*"storage //; s/"$//' |
    while IFS= read -r line; do
        n=$((${n:-0} + 1))
        printf '%s' "$line" | tr ' ' '\n' >"$here/cli_args/example-$(printf '%s' "$line" | md5sum | cut -c1-8)"
    done
printf -- '--graph\n/tmp/g\n--run=/tmp/r\n-s\nvfs\n--storage-opt\nvfs.imagestore=/x\ncreate-layer\n-n\nname\n--uidmap\n0:100000:65536\nparent' >"$here/cli_args/global-and-command"
printf -- '-tj\nlayers' >"$here/cli_args/short-cluster"
printf -- '--debug=false\nimages\n-j=true' >"$here/cli_args/bool-values"
printf -- 'layers\n--\n-x' >"$here/cli_args/double-dash"
printf -- '-help' >"$here/cli_args/help"

# --- host call scripts (see fuzz/guest/src/lib.rs: op byte = what | handle << 5) --------
python3 - "$here/host_calls" <<'EOF'
import sys
out = sys.argv[1]
# path selectors: 0..0xBF index the guest's table; 0xC0.. name the outside directory.
P = {"": 0, "a": 1, "a/b": 2, "f": 4, "sub": 6, "link-out": 8, "link-out/secret": 9,
     "link-abs/secret": 12, "secret-link": 15, "..": 16, "../canary/secret": 18, "/": 20,
     "a/..": 24, "fifo": 28, "dev": 29, "hl": 30}
def p(name): return bytes([P[name]])
scripts = {
    # mkdir a, write f from the stream, read it back, list, chmod, set times.
    "basic": bytes([6]) + p("a") + b"\x02" + bytes([31]) + p("a/b") + b"\x04" + b"abcd"
             + bytes([3]) + p("f") + b"\x00\x04" + bytes([1]) + p("") + bytes([13]) + p("a") + b"\x03"
             + bytes([16]) + p("a") + b"\x05\x00\x05\x00",
    # every read through a planted link, and out by name.
    "escape-reads": b"".join(bytes([3]) + p(x) + b"\x00\x05" for x in
                             ["link-out/secret", "link-abs/secret", "secret-link", "../canary/secret"])
                    + bytes([3, 0xC0, 0x00, 0x05]) + bytes([2]) + p("secret-link"),
    # writes that try to leave: mkdir, create, symlink then write through it, rename out.
    "escape-writes": bytes([6]) + p("..") + b"\x02" + bytes([21, 0xC1, 0x01, 0x03]) + b"xyz"
                     + bytes([8]) + p("..") + p("hl") + bytes([21]) + p("hl") + b"\x01\x01z"
                     + bytes([19]) + p("sub") + p("../canary/secret") + bytes([18]) + p("link-out/secret"),
    # a fifo and a device node, then reads of both.
    "special-files": bytes([11]) + p("fifo") + b"\x01" + bytes([10]) + p("dev") + b"\x03\x01\xf0\x00\x00\x00\x01\xf0\x00\x00\x00\x05"
                     + bytes([3]) + p("dev") + b"\x00\x04",
    # open-dir, copy-tree between handles, sparse file, metadata.
    "handles": bytes([20]) + p("sub") + bytes([22 | 0x20]) + p("") + b"\x00" + p("a")
               + bytes([25]) + p("f") + b"\x01\x05\x02\x01\x01\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
               + bytes([23]) + p("sub") + b"\x01\x00\x00\x02\x08\x08\x00\x00\x00\x00",
    # regressions: a fifo read (blocked the host), owner -1 (a debug assertion in rustix).
    "fifo-read": bytes([11]) + p("fifo") + b"\x01" + bytes([3]) + p("fifo") + b"\x00\x04",
    "chown-minus-one": bytes([12]) + p("f") + b"\x0b\x0b" + bytes([23]) + p("sub") + b"\x00\x00\x0b\x0b\x00\x00\x00\x00",
    # output fast paths (run by diff) and a huge stream read.
    "outputs": bytes([28]) + p("f") + b"\x04" + bytes([29]) + p("f") + b"\x01\x0b" + bytes([30, 3]) + b"abc"
               + bytes([26, 0x0b]),
}
for name, data in scripts.items():
    open(f"{out}/{name}", "wb").write(data)
EOF
du -sh "$here"
