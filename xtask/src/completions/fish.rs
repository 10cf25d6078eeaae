//! The fish script: `complete` lines per command and flag, for `vendor_completions.d`.

use std::fmt::Write as _;

use storage_cli::commands::COMMANDS;
use storage_cli::flags::{FlagSpec, GLOBAL_FLAGS};
use storage_cli::{HELP_FLAG, PROGRAM};

use super::{argument_words, global_value_spellings, value_spellings, HEADER};
use crate::model::{self, ValueKind};

fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

/// `complete` options for one flag: spellings, value and description.
fn fish_flag(flag: &FlagSpec) -> String {
    let mut out = String::new();
    if let Some(c) = flag.short {
        let _ = write!(out, " -s {c}");
    }
    for l in flag.long {
        let _ = write!(out, " -l {l}");
    }
    match model::flag_value_kind(flag) {
        None => {}
        Some(ValueKind::File) => out.push_str(" -r -F"),
        Some(ValueKind::Directory) => out.push_str(" -x -a '(__fish_complete_directories)'"),
        Some(_) => out.push_str(" -x"),
    }
    let _ = write!(out, " -d {}", fish_quote(flag.help));
    out
}

/// The fish script, for `vendor_completions.d`.
pub fn script() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# fish completion for {PROGRAM}. {HEADER}\n");
    let globals = global_value_spellings();
    let _ = writeln!(
        s,
        "# Prints the command word, then the number of arguments after it, or \"flags\" while the
# command's flags are still being given, for the command line up to the cursor. Prints
# nothing (and fails) before the command.
function __storage_state
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmd
    set -l skip 0
    set -l in_flags 1
    set -l nargs 0
    set -l value_flags {}
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        if test -z \"$cmd\"
            if contains -- $w $value_flags
                set skip 1
            else if not string match -q -- '-*' $w
                set cmd $w
                set value_flags $value_flags (__storage_value_flags $cmd)
            end
        else if test $in_flags = 1
            if test \"$w\" = --
                set in_flags 0
            else if contains -- $w $value_flags
                set skip 1
            else if not string match -q -- '-*' $w
                set in_flags 0
                set nargs 1
            end
        else
            set nargs (math $nargs + 1)
        end
    end
    test -n \"$cmd\"; or return 1
    echo $cmd
    if test $in_flags = 1
        echo flags
    else
        echo $nargs
    end
end

# Whether the command line is still in the flags of command $argv (any command if none is
# given, or before the command).
function __storage_in_flags
    set -l state (__storage_state)
    if test (count $state) -eq 0
        test (count $argv) -eq 0
        return
    end
    test \"$state[2]\" = flags; or return 1
    test (count $argv) -eq 0; or contains -- $state[1] $argv
end

# Whether there is no command yet.
function __storage_no_command
    not __storage_state >/dev/null
end

# The IDs and names of the objects of the kinds in $argv, from the store that the global
# flags on the command line select.
function __storage_objects
    set -l words (commandline -opc)
    set -l program $words[1]
    set -e words[1]
    set -l globals
    set -l take 0
    for w in $words
        if test $take = 1
            set -a globals $w
            set take 0
        else if contains -- $w {}
            set -a globals $w
            set take 1
        else if string match -q -r -- '^({})=' $w
            set -a globals $w
        end
    end
    for kind in $argv
        for line in ($program $globals {{$kind}}s 2>/dev/null </dev/null)
            switch $line
                case \\t'name: *'
                    string replace -- \\t'name: ' '' $line
                case \\t'*'
                case '*'
                    echo $line
            end
        end
    end
end
",
        globals.join(" "),
        globals.join(" "),
        globals.join("|")
    );

    s.push_str("# The flags of command $argv[1] that take a value.\nfunction __storage_value_flags\n    switch $argv[1]\n");
    for c in COMMANDS {
        let values = value_spellings(c.flags);
        if values.is_empty() {
            continue;
        }
        let _ = writeln!(s, "        case {}", c.names.join(" "));
        let _ = writeln!(s, "            printf '%s\\n' {}", values.join(" "));
    }
    s.push_str("    end\nend\n\n");

    s.push_str("# Completes the arguments of the command on the command line.\nfunction __storage_arguments\n    set -l state (__storage_state)\n    test (count $state) -eq 2; or return\n    set -l kinds\n    set -l repeat -1\n    switch $state[1]\n");
    for c in COMMANDS {
        let (kinds, repeat) = argument_words(c);
        if kinds.is_empty() {
            continue;
        }
        let _ = writeln!(s, "        case {}", c.names.join(" "));
        let _ = writeln!(s, "            set kinds {}", kinds.join(" "));
        let _ = writeln!(s, "            set repeat {repeat}");
    }
    s.push_str(
        "    end
    # While the command's flags may still come, the next word may also be its first argument.
    set -l index $state[2]
    test \"$index\" = flags; and set index 0
    if test $repeat -ge 0; and test $index -ge $repeat
        set index $repeat
    end
    set index (math $index + 1)
    test $index -le (count $kinds); or return
    switch $kinds[$index]
        case file
            __fish_complete_path (commandline -ct)
        case directory
            __fish_complete_directories (commandline -ct)
        case command
            __fish_complete_command
        case none
        case '*'
            __storage_objects (string split , $kinds[$index])
    end
end

",
    );

    let _ = writeln!(s, "complete -c {PROGRAM} -f");
    s.push_str("\n# Commands.\n");
    for c in COMMANDS {
        let _ = writeln!(
            s,
            "complete -c {PROGRAM} -n __storage_no_command -a {} -d {}",
            c.name(),
            fish_quote(c.usage)
        );
    }
    s.push_str("\n# Global flags, before the command or among its flags.\n");
    for flag in GLOBAL_FLAGS {
        let _ = writeln!(
            s,
            "complete -c {PROGRAM} -n __storage_in_flags{}",
            fish_flag(flag)
        );
    }
    let _ = writeln!(
        s,
        "complete -c {PROGRAM} -n __storage_no_command{}",
        fish_flag(&HELP_FLAG)
    );
    s.push_str("\n# Each command's flags.\n");
    for c in COMMANDS {
        for flag in c.flags {
            let _ = writeln!(
                s,
                "complete -c {PROGRAM} -n '__storage_in_flags {}'{}",
                c.names.join(" "),
                fish_flag(flag)
            );
        }
    }
    let _ = writeln!(
        s,
        "\n# Arguments.\ncomplete -c {PROGRAM} -n '__storage_state >/dev/null' -a '(__storage_arguments)'"
    );
    s
}
