//! The zsh script: an `_arguments` spec per flag and positional, for a directory of `fpath`.

use std::fmt::Write as _;

use storage_cli::commands::{CommandSpec, COMMANDS};
use storage_cli::flags::{FlagKind, FlagSpec, GLOBAL_FLAGS};
use storage_cli::{HELP_FLAG, PROGRAM};

use super::{global_value_spellings, HEADER};
use crate::model::{self, ValueKind};

/// Quotes `text` for zsh in single quotes.
fn zsh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A description inside an `_arguments` spec's brackets.
fn zsh_help(text: &str) -> String {
    text.replace('\\', r"\\")
        .replace('[', r"\[")
        .replace(']', r"\]")
        .replace(':', r"\:")
}

fn zsh_action(kind: Option<ValueKind>) -> String {
    match kind {
        None | Some(ValueKind::Other) => " ".to_string(),
        Some(ValueKind::File) => "_files".to_string(),
        Some(ValueKind::Directory) => "_files -/".to_string(),
        Some(ValueKind::Command) => "_command_names -e".to_string(),
        Some(ValueKind::Object(o)) => format!("__storage_objects {}", o.words().join(" ")),
    }
}

/// One `_arguments` spec per flag: `'(-n --name)'{-n,--name=}'[Name]:name: '`.
fn zsh_flag_spec(flag: &FlagSpec) -> String {
    let mut names: Vec<String> = Vec::new();
    names.extend(flag.short.map(|c| format!("-{c}")));
    for l in flag.long {
        let suffix = if flag.kind == FlagKind::Bool { "" } else { "=" };
        names.push(format!("--{l}{suffix}"));
    }
    let exclusion = if flag.kind == FlagKind::List {
        "*".to_string()
    } else {
        format!("({})", model::spellings(flag).join(" "))
    };
    let mut tail = format!("[{}]", zsh_help(flag.help));
    if flag.kind != FlagKind::Bool {
        let value = model::value_name(flag).to_ascii_lowercase();
        tail.push_str(&format!(
            ":{value}:{}",
            zsh_action(model::flag_value_kind(flag))
        ));
    }
    let names = if names.len() == 1 {
        names[0].clone()
    } else {
        format!("{{{}}}", names.join(","))
    };
    format!("{}{names}{}", zsh_quote(&exclusion), zsh_quote(&tail))
}

fn zsh_positional_specs(command: &CommandSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in model::positionals(command).iter().enumerate() {
        let action = zsh_action(Some(p.kind));
        let name = p.name.replace(':', r"\:");
        if p.repeats {
            out.push(zsh_quote(&format!("*:{name}:{action}")));
            break;
        }
        let colon = if p.optional { "::" } else { ":" };
        out.push(zsh_quote(&format!("{}{colon}{name}:{action}", i + 1)));
    }
    out
}

/// The zsh script: `#compdef storage`, for a directory of `fpath`.
pub fn script() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#compdef {PROGRAM}");
    let _ = writeln!(s, "# zsh completion for {PROGRAM}. {HEADER}\n");
    let spellings = global_value_spellings();
    let _ = writeln!(
        s,
        "# The IDs and names of the objects of the kinds given (layer, image, container), from the
# store that the global flags on the command line select.
__storage_objects() {{
  local -a line globals ids expl
  local i w kind l out
  line=(${{(z)BUFFER}})
  for (( i = 2; i <= $#line; i++ )); do
    w=${{(Q)line[i]}}
    case $w in
      ({})
        globals+=($w ${{(Q)line[i+1]}}); (( i++ )) ;;
      ({})
        globals+=($w) ;;
    esac
  done
  # _arguments passes compadd options after the kinds; keep the kinds.
  for kind in ${{(M)@:#(layer|image|container)}}; do
    out=$(${{(Q)line[1]}} $globals ${{kind}}s 2>/dev/null </dev/null)
    for l in ${{(f)out}}; do
      case $l in
        ($'\\t'name:\\ *) ids+=(${{l#$'\\t'name: }}) ;;
        ($'\\t'*) ;;
        (*) ids+=($l) ;;
      esac
    done
  done
  _wanted objects expl 'name or ID' compadd -a ids
}}
",
        spellings.join("|"),
        spellings
            .iter()
            .map(|s| format!("{s}=*"))
            .collect::<Vec<_>>()
            .join("|")
    );
    s.push_str("_storage() {\n  local curcontext=$curcontext state state_descr line ret=1\n");
    s.push_str("  typeset -A opt_args\n  local -a global_specs commands\n  global_specs=(\n");
    for flag in GLOBAL_FLAGS {
        let _ = writeln!(s, "    {}", zsh_flag_spec(flag));
    }
    s.push_str("  )\n  commands=(\n");
    for c in COMMANDS {
        let _ = writeln!(s, "    {}", zsh_quote(&format!("{}:{}", c.name(), c.usage)));
    }
    let _ = write!(
        s,
        "  )
  _arguments -C -s -A '-*' : $global_specs {} \\
    ':command:->command' '*::argument:->argument' && ret=0
  case $state in
    (command)
      _describe -t commands '{PROGRAM} command' commands && ret=0 ;;
    (argument)
      curcontext=${{curcontext%:*:*}}:{PROGRAM}-$words[1]:
      case $words[1] in
",
        zsh_flag_spec(&HELP_FLAG)
    );
    for c in COMMANDS {
        let _ = writeln!(s, "        ({})", c.names.join("|"));
        let mut specs: Vec<String> = c.flags.iter().map(zsh_flag_spec).collect();
        specs.extend(zsh_positional_specs(c));
        let _ = write!(s, "          _arguments -s -S -A '-*' : $global_specs");
        for spec in specs {
            let _ = write!(s, " \\\n            {spec}");
        }
        s.push_str(" && ret=0 ;;\n");
    }
    let _ = write!(
        s,
        "      esac ;;
  esac
  return ret
}}

if [[ $funcstack[1] == _{PROGRAM} ]]; then
  _{PROGRAM} \"$@\"
else
  compdef _{PROGRAM} {PROGRAM}
fi
"
    );
    s
}
