#!/usr/bin/env bash
# Builds the template driver the way a distributor does (plain cargo, its own workspace),
# registers it in a storage.toml as `[plugins.template]`, and tests it through the `storage`
# binary (as root: the suite mounts):
#
#     examples/driver-template/test.sh
#
# 1. `storage status` names the component's file and its WIT version;
# 2. the same component with its imports relabelled to an older WIT version is refused, with
#    a message naming both versions;
# 3. upstream's bats suite (tests/upstream/run.sh) runs on `--storage-driver template`, its
#    `get` answering with bind mounts the host performs, then the layer tests again with
#    `--storage-opt template.get=directory` (nothing mounted);
# 4. the e2e suite (tests/e2e, target `e2e-vfs`) with the template in place of the built-in
#    vfs component (`[plugins.vfs]` replaces a built-in of that name; the template keeps
#    vfs's layout, `dir/<id>`, so Go tools share the store with it): layers, images,
#    containers, diffs, ID mappings, read-only and split image stores, check, OCI layouts,
#    real archives, hostile archives, faults, crashes, concurrency, Podman, Skopeo and upstream
#    1.60 on one store. Left out: `vfs::` (the built-in vfs component against its native
#    twin), `dedup::` (needs `get` to answer directories; the template asks for bind mounts),
#    and the long stages CI runs on the built-in drivers (`crash_points::`, `soak::`,
#    `power_loss::`). TEMPLATE_E2E=0 skips this step.
#
# Environment: STORAGE_BINARY (default <repo>/target/release/storage), UPSTREAM_TESTS,
# BATS_FILTER and TMPDIR as for tests/upstream/run.sh.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=${STORAGE_BINARY:-$repo/target/release/storage}
[ -x "$binary" ] || {
    echo "$0: no executable binary at $binary (build it: cargo build --release -p storage-cli, or set STORAGE_BINARY)" >&2
    exit 2
}
export STORAGE_BINARY=$binary

manifest=$repo/examples/driver-template/Cargo.toml
cargo build --locked --release --target wasm32-wasip2 --manifest-path "$manifest"
component=$repo/examples/driver-template/target/wasm32-wasip2/release/storage_driver_template.wasm

work=$(mktemp -d "${TMPDIR:-/var/tmp}/driver-template.XXXXXX")
cleanup() {
    local rc=$?
    # A failed check may leave the scratch store's bind mounts: detach them before removing.
    { grep -F " $work/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# The host's WIT package version (`package storage:plugin@X.Y.Z;`), and an older one.
host_version=$(sed -n 's/^package storage:plugin@\([0-9.]*\);$/\1/p' "$repo/wit/types.wit")
IFS=. read -r major minor patch <<<"$host_version"
if [ "$major" -eq 0 ]; then
    old_version=0.$((minor - 1)).$patch
else
    old_version=$((major - 1)).$minor.$patch
fi

# A component as built against the older package: the same bytes with every
# `storage:plugin/...@<host>` import renamed `@<old>` (same length, so still valid).
python3 - "$component" "$work/old.wasm" "$host_version" "$old_version" <<'EOF'
import re, sys
src, dst, new, old = sys.argv[1:]
data = open(src, "rb").read()
pattern = re.compile(rb"(storage:plugin/[a-z-]+@)" + re.escape(new.encode()))
renamed, count = pattern.subn(lambda m: m.group(1) + old.encode(), data)
assert count > 0, "no storage:plugin import found"
open(dst, "wb").write(renamed)
EOF

conf=$work/storage.toml
cat >"$conf" <<EOF
[storage]
driver = "template"
graphroot = "$work/graph"
runroot = "$work/run"

[plugins.template]
component = "$component"
memory_limit = 268435456
deadline_ms = 60000

[plugins.old]
component = "$work/old.wasm"
EOF
export CONTAINERS_STORAGE_CONF=$conf

fail() {
    echo "driver template: FAILED: $*" >&2
    exit 1
}

# 1. `storage status`: the host's lines about the component, then the driver's own.
status=$("$binary" status 2>&1) || fail "status: $status"
echo "$status"
grep -qxF "Driver Name: template" <<<"$status" || fail "status does not name the driver"
grep -qxF "Component: $component" <<<"$status" || fail "status does not name the component file"
grep -qxF "WIT Version: storage:plugin@$host_version" <<<"$status" || fail "status does not name the WIT version"
"$binary" shutdown >/dev/null

# 2. The older build is refused, naming both versions.
if refused=$("$binary" --graph "$work/old-graph" --run "$work/old-run" --storage-driver old layers 2>&1); then
    fail "a component built against WIT $old_version was loaded"
fi
echo "$refused"
grep -qF "built against WIT version $old_version, this host implements storage:plugin@$host_version" <<<"$refused" ||
    fail "the refusal does not name both versions"

# 3. Upstream's suite, with bind mounts, then the layer tests with plain directories.
"$repo/tests/upstream/run.sh" template
STORAGE_OPTION=template.get=directory BATS_FILTER=${BATS_FILTER:-layer|diff|changes|mount} \
    "$repo/tests/upstream/run.sh" template

# 4. The e2e modules, through the debug binary the e2e target builds.
if [ "${TEMPLATE_E2E:-1}" != 0 ]; then
    cat >"$work/e2e.toml" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/e2e-graph"
runroot = "$work/e2e-run"

[plugins.vfs]
component = "$component"
EOF
    (cd "$repo" && CONTAINERS_STORAGE_CONF=$work/e2e.toml cargo test --locked -p storage-cli --test e2e-vfs -- \
        --skip vfs:: --skip dedup:: --skip crash_points:: --skip soak:: --skip power_loss::)
fi
echo "driver template: passed"
