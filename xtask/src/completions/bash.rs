//! The bash script: one function bound with `complete -F`, and the shell code it runs.

use std::fmt::Write as _;

use storage_cli::commands::COMMANDS;
use storage_cli::flags::{FlagKind, GLOBAL_FLAGS};
use storage_cli::{HELP_FLAG, PROGRAM};

use super::{
    all_spellings, argument_words, flag_kind_word, global_value_spellings, value_spellings, HEADER,
};
use crate::model;

/// The bash script: `_storage`, bound with `complete -F`, reads COMP_WORDS/COMP_CWORD the
/// way `storage` parses them and needs nothing from the bash-completion package.
pub fn script() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# bash completion for {PROGRAM} -*- shell-script -*-");
    let _ = writeln!(s, "# {HEADER}\n");
    let mut globals = all_spellings(GLOBAL_FLAGS);
    globals.push(format!("--{}", HELP_FLAG.key()));
    let _ = writeln!(s, "__storage_global_flags='{}'", globals.join(" "));
    let _ = writeln!(
        s,
        "__storage_global_value_flags=' {} '",
        global_value_spellings().join(" ")
    );
    let names: Vec<&str> = COMMANDS.iter().map(|c| c.name()).collect();
    let _ = writeln!(s, "__storage_commands='{}'\n", names.join(" "));

    s.push_str(
        "# The value kind of a flag ($1), or nothing if it takes no value.
__storage_flag_kind() {
    case \"$1\" in
",
    );
    let mut seen: Vec<String> = Vec::new();
    let all_flags = GLOBAL_FLAGS
        .iter()
        .chain(COMMANDS.iter().flat_map(|c| c.flags.iter()));
    // One flag spelling has one kind across commands (`-f` is a file or a boolean).
    let mut by_kind: Vec<(String, Vec<String>)> = Vec::new();
    for flag in all_flags.filter(|f| f.kind != FlagKind::Bool) {
        let kind = flag_kind_word(flag);
        for spelling in model::spellings(flag) {
            if seen.contains(&spelling) {
                continue;
            }
            seen.push(spelling.clone());
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, v)) => v.push(spelling),
                None => by_kind.push((kind.clone(), vec![spelling])),
            }
        }
    }
    for (kind, spellings) in &by_kind {
        let _ = writeln!(s, "        {}) echo {kind} ;;", spellings.join("|"));
    }
    s.push_str("    esac\n}\n\n");

    s.push_str(
        "# Sets, for command $1 (or one of its other names): flags (its own and the global ones),
# value_flags (those that take the next word), kinds (what each argument is) and repeat
# (the index of the argument that may be repeated, or -1). Fails for an unknown command.
__storage_command_spec() {
    case \"$1\" in
",
    );
    for c in COMMANDS {
        let (kinds, repeat) = argument_words(c);
        let mut flags = all_spellings(c.flags);
        flags.extend(all_spellings(GLOBAL_FLAGS));
        let mut values = value_spellings(c.flags);
        values.extend(global_value_spellings());
        let _ = writeln!(s, "        {})", c.names.join("|"));
        let _ = writeln!(s, "            flags='{}'", flags.join(" "));
        let _ = writeln!(s, "            value_flags=' {} '", values.join(" "));
        let _ = writeln!(s, "            kinds=({})", kinds.join(" "));
        let _ = writeln!(s, "            repeat={repeat} ;;");
    }
    s.push_str("        *) return 1 ;;\n    esac\n}\n\n");
    s.push_str(BASH_BODY);
    s
}

const BASH_BODY: &str = r#"# Prints the IDs and names of the objects of the kinds in $1 (comma-separated: layer, image,
# container), from the store that the global flags on the line select (_storage's globals).
__storage_objects() {
    local kind line
    local -a kinds
    IFS=, read -ra kinds <<<"$1"
    for kind in "${kinds[@]}"; do
        "$__storage_program" "${globals[@]}" "${kind}s" 2>/dev/null </dev/null |
            while IFS= read -r line; do
                case "$line" in
                    $'\t'name:\ *) printf '%s\n' "${line#$'\t'name: }" ;;
                    $'\t'*) ;;
                    ?*) printf '%s\n' "$line" ;;
                esac
            done
    done
}

# Completes a value of kind $1 for the word $2.
__storage_complete_kind() {
    local kind=$1 cur=$2
    case "$kind" in
        file) compopt -o filenames 2>/dev/null || true; COMPREPLY=($(compgen -f -- "$cur")) ;;
        directory) compopt -o filenames 2>/dev/null || true; COMPREPLY=($(compgen -d -- "$cur")) ;;
        command) COMPREPLY=($(compgen -c -- "$cur")) ;;
        none | '') COMPREPLY=() ;;
        *)
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$(__storage_objects "$kind")" -- "$cur"))
            ;;
    esac
}

_storage() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local __storage_program=${COMP_WORDS[0]}
    local i word cmd= nargs=0 in_flags=1 expect=0 last_flag=
    local flags= value_flags= repeat=-1
    local -a kinds=() globals=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == "=" ]]; then
            # COMP_WORDBREAKS splits --flag=value into three words.
            expect=1
            continue
        fi
        if ((expect)); then
            expect=0
            [[ $__storage_global_value_flags == *" $last_flag "* ]] && globals+=("$last_flag" "$word")
            continue
        fi
        if [[ -z $cmd ]]; then
            case "$word" in
                -*)
                    last_flag=${word%%=*}
                    if [[ $__storage_global_value_flags == *" $last_flag "* ]]; then
                        if [[ $word == *=* ]]; then globals+=("$word"); else expect=1; fi
                    fi
                    ;;
                *)
                    cmd=$word
                    __storage_command_spec "$cmd" || return 0
                    ;;
            esac
        elif ((in_flags)); then
            case "$word" in
                --) in_flags=0 ;;
                -*)
                    last_flag=${word%%=*}
                    if [[ $value_flags == *" $last_flag "* && $word != *=* ]]; then
                        expect=1
                    elif [[ $__storage_global_value_flags == *" $last_flag "* ]]; then
                        globals+=("$word")
                    fi
                    ;;
                *) in_flags=0 nargs=1 ;;
            esac
        else
            nargs=$((nargs + 1))
        fi
    done

    # A flag's value: after the flag, or after "--flag=".
    local flag=
    if [[ $cur == "=" ]]; then
        flag=$prev cur=
    elif [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then
        flag=${COMP_WORDS[COMP_CWORD - 2]}
    elif ((expect)); then
        flag=$last_flag
    fi
    if [[ -n $flag ]]; then
        __storage_complete_kind "$(__storage_flag_kind "$flag")" "$cur"
        return 0
    fi

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$__storage_global_flags" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$__storage_commands" -- "$cur"))
        fi
        return 0
    fi
    if ((in_flags)) && [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return 0
    fi
    local index=$nargs
    if ((repeat >= 0 && index >= repeat)); then
        index=$repeat
    fi
    __storage_complete_kind "${kinds[index]:-none}" "$cur"
    return 0
}

complete -F _storage storage
"#;
