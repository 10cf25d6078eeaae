#!/usr/bin/env bash
# Builds everything, then runs the main job of `storage` end to end on the default
# configuration (this repository's storage.toml, the same file that is compiled into the
# binary): import a gzip layer archive, list it, re-create the archive byte for byte from
# tar-split, build an image and a container on it, mount the container, and clean up.
# Needs root (overlay mounts). Leaves the store as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
storage="$PWD/target/release/storage"
export CONTAINERS_STORAGE_CONF="$PWD/storage.toml"

scratch=$(mktemp -d)
tag="demo-$$"
cleanup() {
    "$storage" unmount "$tag-ctr" >/dev/null 2>&1 || true
    "$storage" delete-container "$tag-ctr" >/dev/null 2>&1 || true
    "$storage" delete-image "$tag-img" >/dev/null 2>&1 || true
    "$storage" delete-layer "$tag-layer" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# A small root filesystem: directories, files, a symlink, a hardlink.
mkdir -p "$scratch/rootfs/etc" "$scratch/rootfs/usr/bin"
echo "demo" > "$scratch/rootfs/etc/hostname"
printf '#!/bin/sh\necho hello\n' > "$scratch/rootfs/usr/bin/hello"
chmod 755 "$scratch/rootfs/usr/bin/hello"
ln -s usr/bin "$scratch/rootfs/bin"
ln "$scratch/rootfs/etc/hostname" "$scratch/rootfs/etc/hostname.bak"
tar -C "$scratch/rootfs" -czf "$scratch/layer.tar.gz" .

echo "== storage config"; "$storage" config
echo "== import-layer"; "$storage" import-layer -n "$tag-layer" -f "$scratch/layer.tar.gz"
layer=$("$storage" layer -j "$tag-layer" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo "== layer"; "$storage" layer "$layer"
echo "== diff (re-created from tar-split)"
"$storage" diff -u "$layer" > "$scratch/out.tar"
zcat "$scratch/layer.tar.gz" | cmp - "$scratch/out.tar"
echo "byte-identical to the imported archive: $(sha256sum < "$scratch/out.tar" | cut -c1-16)..."
echo "== create-image / create-container / mount"
"$storage" create-image -n "$tag-img" "$layer"
"$storage" create-container -n "$tag-ctr" "$tag-img"
mnt=$("$storage" mount "$tag-ctr")
ls -la "$mnt"
cat "$mnt/etc/hostname"
"$storage" unmount "$tag-ctr"
echo "== done"
