#!/usr/bin/env bash
# Checks the generated bash completion the way bash uses it: sources the script, sets
# COMP_WORDS/COMP_CWORD as for `storage <TAB>` and calls the function `complete` registered.
#
#   xtask/tests/bash-completion.sh COMPLETION_FILE [STORAGE_BINARY]
#
# With STORAGE_BINARY (as root), also checks that layer, image and container names come from
# the store the command line names: a scratch vfs store in a temporary directory, shut down
# and removed at exit.
set -euo pipefail

script=$1
binary=${2:-}
passed=0
failed=0

# shellcheck source=/dev/null
source "$script"
func=$(complete -p storage | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || { echo "no completion function registered for storage"; exit 1; }

# Completes the words given; the last one is the word being completed (may be empty).
complete_line() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]:-}"
}

# check DESCRIPTION WORD... :: [+WANTED | -UNWANTED]...
# The words are the command line; the last one is the word being completed ('' for none).
check() {
    local what=$1 ok=1 item
    shift
    local -a words=()
    while [ "$1" != "::" ]; do words+=("$1"); shift; done
    shift
    complete_line "${words[@]}"
    for item in "$@"; do
        local want=${item:1} found=0 r
        for r in "${COMPREPLY[@]}"; do [[ $r == "$want" ]] && found=1; done
        if [[ ${item:0:1} == + && $found == 0 ]] || [[ ${item:0:1} == - && $found == 1 ]]; then
            ok=0
            echo "  $what: expected ${item:0:1}$want in: ${COMPREPLY[*]}"
        fi
    done
    if [[ $ok == 1 ]]; then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what"
    fi
}

check "commands" storage '' :: +create-layer +layers +import-oci +wipe -createlayer
check "command prefix" storage create- :: +create-layer +create-image +create-container -layers
check "global flags before the command" storage -- :: +--graph +--run +--storage-driver +--help -create-layer
check "command after global flags" storage --graph /tmp/g -D cre :: +create-layer -layers
check "command after --flag=value" storage --graph = /tmp/g la :: +layers +layer +layer-parent-owners
check "create-layer flags" storage create-layer -- :: +--name +--id +--uidmap +--hostgidmap +--readonly +--json +--graph -tree -help
check "layers flags" storage layers - :: +--tree +--quick +-t +-q +-j -name
check "flags of an alias" storage createlayer -- :: +--name +--uidmap
check "flags after a value flag" storage create-layer -n base -- :: +--id +--label
check "no flags after the first argument" storage create-layer parent -- :: -- --name
check "no commands as a flag's value" storage --graph '' :: -create-layer -layers
check "files for --file" storage import-layer -f /et :: +/etc
check "directories for --graph" storage --graph /us :: +/usr
check "directories after --graph=" storage --graph = /us :: +/usr
check "nothing for an unknown command" storage frobnicate -- :: -- --name

if [ -n "$binary" ]; then
    tmp=$(mktemp -d)
    store=(--graph "$tmp/g" --run "$tmp/r" --storage-driver vfs)
    cleanup() {
        "$binary" "${store[@]}" shutdown -f >/dev/null 2>&1 || true
        rm -rf "$tmp"
    }
    trap cleanup EXIT
    "$binary" "${store[@]}" create-layer -n base-layer >/dev/null
    "$binary" "${store[@]}" create-image -n my-image base-layer >/dev/null
    "$binary" "${store[@]}" create-container -n my-ctr my-image >/dev/null
    layer_id=$("$binary" "${store[@]}" layers -q | head -n1)
    check "layer names from the store" "$binary" "${store[@]}" layer '' :: +base-layer "+$layer_id" -my-image -my-ctr
    check "image names from the store" "$binary" "${store[@]}" create-container -n x '' :: +my-image -base-layer
    check "any object for delete" "$binary" "${store[@]}" delete '' :: +base-layer +my-image +my-ctr
    check "repeated arguments" "$binary" "${store[@]}" container my-ctr '' :: +my-ctr
    check "global flags after the command" "$binary" layer "${store[@]}" '' :: +base-layer
    check "name prefix" "$binary" "${store[@]}" layer base :: +base-layer
    check "no argument past the last" "$binary" "${store[@]}" changes base-layer base-layer '' :: -base-layer
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
