#!/usr/bin/env bash
# Builds everything, then runs the main job of `storage` end to end on the default
# configuration (this repository's storage.toml, the same file that is compiled into the
# binary) in a scratch store: import a gzip layer archive, list it, re-create the archive
# byte for byte from tar-split, build an image and a container on it, mount the container.
#
# The store is a copy of storage.toml with only `graphroot` and `runroot` pointed into a
# temporary directory, so the system store (/var/lib/containers/storage) is never touched.
# At exit (success or not) the store is shut down, anything still mounted below the
# temporary directory is detached, and the directory is removed. Needs root (overlay
# mounts). The only thing left behind is the compiled-component cache of root
# (/var/cache/storage/components), which later commands reuse.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root (the overlay driver mounts)" >&2
    exit 1
fi

cargo build --release --locked
storage="$PWD/target/release/storage"

scratch=$(mktemp -d /tmp/storage-demo.XXXXXX)
conf="$scratch/storage.conf"
cleanup() {
    # Unmounts the container's layer and the driver's home, as `containers-storage
    # shutdown -f` does (only ever on the scratch store: never without its configuration);
    # then whatever a failure left mounted below the scratch directory, deepest first.
    if [ -f "$conf" ]; then
        CONTAINERS_STORAGE_CONF="$conf" "$storage" shutdown -f >/dev/null 2>&1 || true
    fi
    awk -v dir="$scratch/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf --one-file-system "$scratch"
}
trap cleanup EXIT

# Checked before it is put in place: cleanup's `shutdown` must never see the system store.
sed -e "s|^graphroot = .*|graphroot = \"$scratch/graph\"|" \
    -e "s|^runroot = .*|runroot = \"$scratch/run\"|" storage.toml > "$conf.new"
if ! grep -qxF "graphroot = \"$scratch/graph\"" "$conf.new" ||
    ! grep -qxF "runroot = \"$scratch/run\"" "$conf.new"; then
    echo "demo.sh: storage.toml has no graphroot/runroot line to point at the scratch store" >&2
    exit 1
fi
mv "$conf.new" "$conf"
export CONTAINERS_STORAGE_CONF="$conf"
unset STORAGE_DRIVER STORAGE_OPTS

# A small root filesystem: directories, files, a symlink, a hardlink.
mkdir -p "$scratch/rootfs/etc" "$scratch/rootfs/usr/bin"
echo "demo" > "$scratch/rootfs/etc/hostname"
printf '#!/bin/sh\necho hello\n' > "$scratch/rootfs/usr/bin/hello"
chmod 755 "$scratch/rootfs/usr/bin/hello"
ln -s usr/bin "$scratch/rootfs/bin"
ln "$scratch/rootfs/etc/hostname" "$scratch/rootfs/etc/hostname.bak"
tar -C "$scratch/rootfs" -czf "$scratch/layer.tar.gz" .

echo "== storage config (storage.toml, graph root and run root in $scratch)"
"$storage" config
echo "== import-layer"; "$storage" import-layer -n demo-layer -f "$scratch/layer.tar.gz"
layer=$("$storage" layer -j demo-layer | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo "== layers"; "$storage" layers
echo "== layer"; "$storage" layer "$layer"
echo "== diff (re-created from tar-split)"
"$storage" diff -u "$layer" > "$scratch/out.tar"
zcat "$scratch/layer.tar.gz" | cmp - "$scratch/out.tar"
echo "byte-identical to the imported archive: $(sha256sum < "$scratch/out.tar" | cut -c1-16)..."
echo "== create-image / create-container / mount"
"$storage" create-image -n demo-img "$layer"
"$storage" create-container -n demo-ctr demo-img
mnt=$("$storage" mount demo-ctr)
ls -la "$mnt"
cat "$mnt/etc/hostname"
"$storage" unmount demo-ctr
echo "== done (the scratch store is removed at exit)"
