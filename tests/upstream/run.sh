#!/usr/bin/env bash
# Runs upstream containers/storage's bats suite, unmodified, against a `containers-storage`
# compatible binary on one graph driver:
#
#     tests/upstream/run.sh overlay|vfs|btrfs
#     CONTAINERS_STORAGE_CONF=storage.toml tests/upstream/run.sh NAME
#
# The second form runs the suite on a driver component named in the configuration's
# `[plugins.NAME]` (examples/driver-template/test.sh does this with the template driver).
#
# Environment:
#   STORAGE_BINARY   the binary under test (default: <repo>/target/release/storage)
#   UPSTREAM_TESTS   the suite's folder (default: /work/shared/upstream/tests, else
#                    <repo>/../shared/upstream/tests)
#   TMPDIR           where this run's own temporary folder is made (default: /var/tmp)
#   BATS_FILTER      passed to `bats --filter` when set (a regex on test names)
#   STORAGE_OPTION, STORAGE_TRANSIENT are the suite's own knobs and are passed through.
#
# Every run works in a fresh folder `$TMPDIR/storage-upstream.XXXXXX` (the suite's
# BATS_TMPDIR), so runs in parallel or one after another do not meet. For btrfs a sparse
# image is formatted, attached to a loop device and mounted there, and the suite's TMPDIR is
# a folder on it. On exit, also on failure or interruption, everything mounted below the run's
# folder is unmounted, the loop device detached and the folder removed; the folders of earlier
# runs that were killed (their lock is free) are swept the same way first. The run fails when
# a test fails, when the suite does not run to its plan, or when anything is still mounted
# below the suite's TMPDIR after the suite finished (its teardown runs `wipe`, `shutdown` and
# `rm -fr`, so nothing may be).
set -euo pipefail

usage() {
    echo "usage: $0 overlay|vfs|btrfs, or CONTAINERS_STORAGE_CONF=FILE $0 PLUGIN" >&2
    exit 2
}
[ $# -eq 1 ] || usage
driver=$1
case "$driver" in
overlay | vfs | btrfs) ;;
# A `[plugins.NAME]` driver: the binary reads the plugins from $CONTAINERS_STORAGE_CONF
# even when the suite's store flags (--graph, --storage-driver) are given.
*[!a-z0-9_-]* | "") usage ;;
*) [ -f "${CONTAINERS_STORAGE_CONF:-}" ] || usage ;;
esac

[ "$(id -u)" -eq 0 ] || {
    echo "$0: must run as root (the suite mounts filesystems)" >&2
    exit 2
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=${STORAGE_BINARY:-$repo/target/release/storage}
[ -x "$binary" ] || {
    echo "$0: no executable binary at $binary (build it: cargo build --release -p storage-cli, or set STORAGE_BINARY)" >&2
    exit 2
}
binary=$(readlink -f "$binary")

suite=
for candidate in "${UPSTREAM_TESTS:-}" /work/shared/upstream/tests "$repo/../shared/upstream/tests"; do
    if [ -n "$candidate" ] && [ -f "$candidate/helpers.bash" ]; then
        suite=$(cd "$candidate" && pwd)
        break
    fi
done
if [ -z "$suite" ]; then
    echo "$0: upstream's test suite not found: set UPSTREAM_TESTS, or put it in /work/shared/upstream/tests or $repo/../shared/upstream/tests" >&2
    exit 2
fi
command -v bats >/dev/null || {
    echo "$0: bats is not installed" >&2
    exit 2
}

base=${TMPDIR:-/var/tmp}
base=${base%/}
prefix=storage-upstream.

# Mount points below $1 (itself included), deepest first; mountinfo escapes blanks as \040.
mounts_below() {
    local dir=$1
    awk -v dir="$dir" '{
        p = $5
        gsub(/\\040/, " ", p); gsub(/\\011/, "\t", p); gsub(/\\012/, "\n", p); gsub(/\\134/, "\\", p)
        if (p == dir || index(p, dir "/") == 1) print length(p) "\t" p
    }' /proc/self/mountinfo | sort -rn | cut -f2-
}

# Unmounts everything below $1, detaches the loop device of $1/btrfs.img, removes $1.
remove_run_dir() {
    local dir=$1 m loop
    while read -r m; do
        [ -n "$m" ] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "$0: could not unmount $m" >&2
    done < <(mounts_below "$dir")
    # A filesystem mounted several times (bind mounts) needs another pass.
    while read -r m; do
        [ -n "$m" ] || continue
        umount -l "$m" 2>/dev/null || echo "$0: could not unmount $m" >&2
    done < <(mounts_below "$dir")
    if [ -e "$dir/btrfs.img" ]; then
        while read -r loop; do
            [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
        done < <(losetup -j "$dir/btrfs.img" -O NAME -n 2>/dev/null)
    fi
    rm -rf --one-file-system "$dir" 2>/dev/null || rm -rf "$dir" || true
}

# Sweeps what killed runs left: their lock file is no longer held by anybody. A run's
# folder gets its final name only once its lock is held (see below), so a folder without
# a lock is debris of a run killed while starting.
sweep_stale() {
    local dir
    for dir in "$base/$prefix"* "$base/.$prefix"*; do
        [ -d "$dir" ] || continue
        if [ -e "$dir/lock" ]; then
            # A live run holds its lock; skip it.
            flock -n "$dir/lock" true 2>/dev/null || continue
        elif [ -z "$(find "$dir" -maxdepth 0 -mmin +1)" ]; then
            # A run that is making its folder right now.
            continue
        fi
        echo "# sweeping $dir, left by an earlier run" >&2
        remove_run_dir "$dir"
    done
}

mkdir -p "$base"
sweep_stale
# Made under a hidden name, locked, then renamed: a sweeping run never sees a live run's
# folder without its lock held. The lock (held by this shell and inherited by everything
# it starts) says the run is alive.
new_dir=$(mktemp -d "$base/.${prefix}XXXXXX")
exec 9>"$new_dir/lock"
flock -n 9 || {
    echo "$0: could not lock $new_dir/lock" >&2
    exit 2
}
run_dir=$base/$prefix${new_dir##*.}
mv -T "$new_dir" "$run_dir"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    exec 9>&-
    remove_run_dir "$run_dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

tests_tmp=$run_dir/tmp
if [ "$driver" = btrfs ]; then
    image=$run_dir/btrfs.img
    truncate -s 4G "$image"
    mkfs.btrfs -q "$image" >/dev/null
    loop=$(losetup --find --show "$image")
    mkdir "$run_dir/mnt"
    mount -t btrfs "$loop" "$run_dir/mnt"
    tests_tmp=$run_dir/mnt/tmp
fi
mkdir -p "$tests_tmp"

filter=()
[ -n "${BATS_FILTER:-}" ] && filter=(--filter "$BATS_FILTER")

log=$run_dir/tap
set +e
(
    cd "$suite"
    # BATS_TEST_TIMEOUT: a test that hangs fails after five minutes instead of stalling
    # the run (the slowest test takes seconds).
    env STORAGE_BINARY="$binary" STORAGE_DRIVER="$driver" TMPDIR="$tests_tmp" \
        BATS_TEST_TIMEOUT="${BATS_TEST_TIMEOUT:-300}" bats --tap "${filter[@]}" .
) 2>&1 | tee "$log"
bats_rc=${PIPESTATUS[0]}
set -e

planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log" | head -n1)
planned=${planned:-0}
ok=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^not ok ' "$log" || true)
skipped=$(grep -Ec '^ok [0-9]+ .* # skip' "$log" || true)

status=0
echo "upstream suite, $driver: $ok/$planned passed, $skipped skipped (binary: $binary)"
if [ "$failed" -ne 0 ] || [ "$bats_rc" -ne 0 ] || [ "$((ok + failed))" -ne "$planned" ] || [ "$planned" -eq 0 ]; then
    echo "upstream suite, $driver: FAILED ($failed failed, bats exit $bats_rc)" >&2
    status=1
fi
left=$(mounts_below "$tests_tmp")
if [ -n "$left" ]; then
    echo "upstream suite, $driver: FAILED: still mounted after the suite:" >&2
    echo "$left" >&2
    status=1
fi
exit "$status"
