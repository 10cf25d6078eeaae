//! Usage texts, as upstream prints them: the usage proper on stdout, and the flag list
//! (mflag's `PrintDefaults`) on stderr.

use crate::commands::{CommandSpec, COMMANDS};
use crate::flags::{FlagKind, FlagSpec, FlagValues};

/// The program name shown in usage and error lines.
pub const PROGRAM: &str = "storage";

/// The main usage (stdout part).
pub fn main_usage() -> String {
    let mut out = format!("Usage: {PROGRAM} command [options [...]]\n\nCommands:\n\n");
    for c in COMMANDS {
        out.push_str(&format!("  {:<30}{}\n", c.name(), c.usage));
    }
    out.push_str("\nOptions:\n");
    out
}

/// A command's usage (stdout part). `name` is the name it was called by.
pub fn command_usage(command: &CommandSpec, name: &str) -> String {
    format!(
        "Usage: {PROGRAM} {name} {}\n\n{}\n\nOptions:\n",
        command.options_help, command.usage
    )
}

/// A value as mflag shows it: starting with `$HOME` (a plain prefix, as mflag compares), `~`
/// in its place; not when `HOME` is `/` or unset.
fn home_shortened(value: &str) -> String {
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() && home != "/" && value.starts_with(&home) => {
            format!("~{}", &value[home.len()..])
        }
        _ => value.to_string(),
    }
}

/// The flag list (stderr part): one line per flag, sorted by long name, with the current
/// value of value flags shown as `=value` (`=[]` for empty lists), aligned like Go's
/// tabwriter (minimum width 20, padding 3).
pub fn flag_defaults(flags: &[FlagSpec], current: &FlagValues) -> String {
    // `--unshare` is registered with the user's default (upstream's `unshare.IsRootless()`,
    // whatever was given): its help says it, and it shows `=true` for a rootless user.
    let unshare_default = crate::actions::unshare::unshare_by_default();
    let mut sorted: Vec<&FlagSpec> = flags.iter().collect();
    sorted.sort_by_key(|f| f.key());
    let cells: Vec<(String, String)> = sorted
        .iter()
        .map(|f| {
            let mut names: Vec<String> = f.listed_long().iter().map(|l| format!("--{l}")).collect();
            if let Some(s) = f.short {
                names.push(format!("-{s}"));
            }
            let mut cell = format!("  {}", names.join(", "));
            match f.kind {
                FlagKind::Bool => {
                    let on = if f.key() == "unshare" {
                        unshare_default
                    } else {
                        current.bool(f.key())
                    };
                    if on {
                        cell.push_str("=true");
                    }
                }
                FlagKind::Value => {
                    let value = current.value(f.key()).or(f.default).unwrap_or("");
                    // mflag leaves out Go's zero values ("", "0", "false").
                    if !matches!(value, "" | "0" | "false") {
                        cell.push('=');
                        cell.push_str(&home_shortened(value));
                    }
                }
                FlagKind::List => {
                    cell.push_str(&format!("=[{}]", current.list(f.key()).join(" ")));
                }
            }
            let help = if f.key() == "unshare" {
                format!("{} (default {unshare_default})", f.help)
            } else {
                f.help.to_string()
            };
            (cell, help)
        })
        .collect();
    let width = cells
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0)
        .max(20)
        + 3;
    let mut out = String::from("\n");
    for (cell, help) in cells {
        let pad = width - cell.chars().count();
        out.push_str(&format!("{cell}{} {help}\n", " ".repeat(pad)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::GLOBAL_FLAGS;

    #[test]
    fn main_usage_lists_commands_in_columns() {
        let u = main_usage();
        assert!(u.starts_with("Usage: storage command [options [...]]\n\nCommands:\n\n"));
        assert!(u.contains(&format!("  {:<30}List layers\n", "layers")));
        assert!(u.ends_with("\nOptions:\n"));
    }

    #[test]
    fn defaults_align_like_tabwriter() {
        let mut current = FlagValues::default();
        current.push("graph", "/g".into());
        let text = flag_defaults(GLOBAL_FLAGS, &current);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "");
        assert!(lines.iter().any(
            |l| l.starts_with("  --debug, -D ") && l.ends_with(" Print debugging information")
        ));
        assert!(lines.iter().any(|l| l.starts_with("  --graph, -g=/g ")));
        assert!(lines.iter().any(|l| l.starts_with("  --storage-opt=[] ")));
        // Every help text starts in the same column.
        let col = |l: &str, h: &str| l.find(h).expect("help present");
        assert_eq!(
            col(lines[1], "Print debugging"),
            col(
                lines
                    .iter()
                    .find(|l| l.contains("--run"))
                    .expect("run listed"),
                "Root of the runtime"
            )
        );
    }
}
