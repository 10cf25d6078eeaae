#!/usr/bin/env bash
# Runs the fuzz targets one after the other, each for SECONDS (default 60), and fails if any
# of them found a crash, a leak, a timeout or an out-of-memory; what it found is in
# fuzz/artifacts/<target>/ and is replayed with
#   cargo +$FUZZ_TOOLCHAIN fuzz run -O -a <target> fuzz/artifacts/<target>/<file>
#
#   fuzz/run.sh                  # every target, 60 s each
#   fuzz/run.sh 3600             # every target, an hour each
#   fuzz/run.sh 600 tar_parser apply_memfs
#   FUZZ_JOBS=2 fuzz/run.sh 7200 # two processes per target (libFuzzer -fork)
#
# The corpus each run grows is kept in fuzz/corpus/<target>/ (not checked in) and starts
# from the checked-in seeds in fuzz/seeds/<target>/. Installs what it needs when missing:
# the fuzz toolchain with the wasm32-wasip2 target (the host crate builds its components
# with the toolchain that builds it) and cargo-fuzz. Runs as root (host_calls makes the
# filesystem read-only around itself in a mount namespace of its own).
set -euo pipefail
cd "$(dirname "$0")/.."

# A dated nightly: cargo-fuzz needs nightly for the sanitizer flags, and nightlies of 2026-05
# ship no wasm32-wasip2 standard library (its manifest says `available = false`).
toolchain="${FUZZ_TOOLCHAIN:-nightly-2026-04-20}"
seconds="${1:-60}"
shift || true
jobs="${FUZZ_JOBS:-1}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal --target wasm32-wasip2
fi
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null
if ! cargo +"$toolchain" fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Release build with debug assertions and overflow checks, with AddressSanitizer by default
# (FUZZ_SANITIZER=none builds without: the project's code is safe Rust, so a sanitizer catches
# little more than Rust's own checks, and the build of wasmtime is then several times faster;
# CI uses it to stay within its time).
build=(-O -a -s "${FUZZ_SANITIZER:-address}")
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

# Per-target libFuzzer options. -malloc_limit_mb fails a run on any single allocation that
# large: the bound each parser promises whatever its input (the tar parser: one metadata
# record of at most 1 MiB at a time; tar-split: headers and buffers; the harness's in-memory
# tree: sparse files up to 16 MiB), far below what a hostile size field asks for.
options_for() {
    case "$1" in
    tar_parser) echo "-timeout=30 -malloc_limit_mb=2" ;;
    apply_memfs | tarsplit_roundtrip | tarsplit_reader) echo "-timeout=30 -malloc_limit_mb=32" ;;
    cli_args | config | oci_json) echo "-timeout=10 -malloc_limit_mb=64 -max_len=8192" ;;
    host_calls) echo "-timeout=60 -rss_limit_mb=4096 -max_len=4096" ;;
    *) echo "-timeout=30" ;;
    esac
}

cargo +"$toolchain" fuzz build "${build[@]}"
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds+=("fuzz/seeds/$target")
    # The tar targets read the same shape of input and share their seeds.
    case "$target" in tar_parser | apply_memfs | tarsplit_roundtrip) seeds+=(fuzz/seeds/tar) ;; esac
    echo "=== $target: ${seconds}s" >&2
    # shellcheck disable=SC2046 # the options are words
    if ! cargo +"$toolchain" fuzz run "${build[@]}" "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(options_for "$target") \
        $([ "$jobs" -gt 1 ] && echo "-fork=$jobs -ignore_crashes=0"); then
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: no problem found in ${targets[*]}" >&2
