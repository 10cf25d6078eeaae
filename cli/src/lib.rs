//! The `storage` command as a library: [`run`] is the whole command (the binary adds only
//! process setup), and [`commands::COMMANDS`] with [`flags::GLOBAL_FLAGS`] is the one table
//! of commands and flags that the usage texts, the parser, and the man pages and shell
//! completions that `cargo xtask` generates are all made from.
//!
//! `run` follows upstream's flow (`cmd/containers-storage/main.go`): parse the global flags up to
//! the command name, parse the command's flags, check the argument count, open the store (before
//! every command, even `version`), run the action. Each step's failure has upstream's message,
//! stream and exit status.

mod actions;
pub mod commands;
mod drivers;
pub mod flags;
mod idmaps;
mod logrus;
mod options;
pub mod parse;
mod progress;
#[cfg(test)]
mod table_tests;
mod tarowner;
mod tree;
mod usage;

use std::io::Write;

use storage_store::store::Store;

use crate::actions::Ctx;
use crate::flags::{FlagSpec, FlagValues, GLOBAL_FLAGS};
use crate::parse::FlagError;
pub use crate::parse::HELP_FLAG;
pub use crate::usage::PROGRAM;

/// Exit status of mflag's ExitOnError failures in the command phase.
pub const EXIT_FLAG_ERROR: i32 = 125;

/// Runs one command line (without the program name); returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    logrus::start_clock();
    // Output failures below are ignored: there is nowhere left to report them. Upstream's
    // main usage lists the global flags without the values given (its flag set there is not
    // the one the command parses).
    let global_defaults = |err: &mut dyn Write| {
        let flags = global_flags_with_help();
        let _ = err.write_all(usage::flag_defaults(&flags, &FlagValues::default()).as_bytes());
    };
    if args.is_empty() {
        let _ = out.write_all(usage::main_usage().as_bytes());
        global_defaults(err);
        return 1;
    }
    let global = match parse::parse_global(args) {
        Ok(g) => g,
        Err(e) => {
            if e == FlagError::Help {
                let _ = out.write_all(usage::main_usage().as_bytes());
                global_defaults(err);
            } else {
                let _ = writeln!(err, "{e}\nSee '{PROGRAM} --help'.");
                global_defaults(err);
            }
            let _ = writeln!(out, "{e} while parsing arguments (1)");
            let _ = out.write_all(usage::main_usage().as_bytes());
            global_defaults(err);
            return 1;
        }
    };
    if global.help {
        let _ = out.write_all(usage::main_usage().as_bytes());
        global_defaults(err);
        return 0;
    }
    let Some((name, rest)) = global.rest.split_first() else {
        let _ = out.write_all(usage::main_usage().as_bytes());
        global_defaults(err);
        return 1;
    };
    let Some(command) = parse::find_command(name) else {
        let _ = writeln!(out, "{name}: unrecognized command.");
        return 1;
    };
    let command_flags: Vec<FlagSpec> = GLOBAL_FLAGS.iter().chain(command.flags).copied().collect();
    let command_defaults = |err: &mut dyn Write| {
        let shown = options::shown_in_usage(&global.flags);
        let _ = err.write_all(usage::flag_defaults(&command_flags, &shown).as_bytes());
    };
    let mut inv = match parse::parse_command(command, rest) {
        Ok(inv) => inv,
        Err(FlagError::Help) => {
            let _ = out.write_all(usage::command_usage(command, name).as_bytes());
            command_defaults(err);
            return EXIT_FLAG_ERROR;
        }
        Err(e) => {
            // Two lines, as upstream prints them (no flag list after them).
            let _ = writeln!(err, "{e}\nSee '{PROGRAM} {name} --help'.");
            return EXIT_FLAG_ERROR;
        }
    };
    let mut flags = global.flags.clone();
    flags.extend(std::mem::take(&mut inv.flags));
    inv.flags = flags;

    if inv.args.len() < command.min_args {
        let _ = writeln!(out, "{name}: more arguments required.");
        let _ = out.write_all(usage::command_usage(command, name).as_bytes());
        command_defaults(err);
        return 1;
    }
    if command.max_args.is_some_and(|max| inv.args.len() > max) {
        let _ = writeln!(
            out,
            "{name}: too many arguments ([{}]).",
            inv.args.join(" ")
        );
        let _ = out.write_all(usage::command_usage(command, name).as_bytes());
        command_defaults(err);
        return 1;
    }

    let (opts, warnings) = match options::resolve_for_process(&inv.flags) {
        Ok(resolved) => resolved,
        Err(e) => {
            let _ = writeln!(out, "error initializing: {e}");
            return 1;
        }
    };
    // Upstream's `--unshare` (on by default for a rootless user): the command runs again in a
    // user namespace, which resolves the same options there (the rootless user's, by the
    // markers it inherits).
    let unshare = if inv.flags.given("unshare") {
        inv.flags.bool("unshare")
    } else {
        actions::unshare::unshare_by_default()
    };
    Logger::install(inv.flags.bool("debug"));
    if unshare && !actions::unshare::in_configured_user_namespace() {
        let _ = out.flush();
        return actions::unshare::reexec_in_user_namespace(args, err);
    }
    // What the configuration files gave that upstream warns about (logrus shows warnings
    // without `--debug` too).
    for warning in &warnings {
        let _ = err.write_all(logrus::line(logrus::Level::Warning, warning).as_bytes());
    }
    if inv.flags.bool("debug") {
        debug_line(err, &format!("Root: {}", opts.graph_root.display()));
        debug_line(err, &format!("Run Root: {}", opts.run_root.display()));
        debug_line(err, &format!("Driver Name: {}", opts.driver_name));
        debug_line(
            err,
            &format!("Driver Options: [{}]", opts.driver_options.join(" ")),
        );
    }
    let store = match Store::open(&opts, &drivers::registry(&opts)) {
        Ok(store) => store,
        Err(e) => {
            let hint = drivers::unregistered_driver_hint(&e, &opts);
            let _ = writeln!(out, "error initializing: {e}{hint}");
            return 1;
        }
    };
    let mut ctx = Ctx {
        store: &store,
        inv: &inv,
        out,
        err,
    };
    let code = match (command.action)(&mut ctx) {
        Ok(code) => code,
        Err(e) => {
            let _ = ctx.out.flush();
            let _ = writeln!(ctx.err, "{e}");
            1
        }
    };
    // The command is done and the process exits next: its records are not freed one by one.
    store.forget_records();
    code
}

/// The global flags as the first phase knows them (with upstream's `--help`).
fn global_flags_with_help() -> Vec<FlagSpec> {
    let mut v = GLOBAL_FLAGS.to_vec();
    v.push(parse::HELP_FLAG);
    v
}

/// Where the libraries' diagnostics (the `log` facade) go: stderr, in logrus' text format,
/// as upstream prints its own. Warnings and errors always (logrus' default level shows them:
/// a driver whose `exists` trapped, a cleanup that could not finish), debug lines too under
/// `--debug`.
struct Logger;

impl Logger {
    fn install(debug: bool) {
        static LOGGER: Logger = Logger;
        let level = if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        };
        log::set_max_level(level);
        if log::set_logger(&LOGGER).is_err() {
            // Another logger already set (a test in the same process) is as good.
            log::debug!("a logger was set already: keeping it");
        }
    }
}

impl log::Log for Logger {
    /// Only the project's own crates: what wasmtime and cranelift log is their business, and
    /// upstream prints nothing like it.
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && metadata.target().starts_with("storage")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => logrus::Level::Error,
            log::Level::Warn => logrus::Level::Warning,
            log::Level::Info => logrus::Level::Info,
            _ => logrus::Level::Debug,
        };
        let line = logrus::line(level, &record.args().to_string());
        // Straight to the file descriptor, not through `std::io::stderr()`: the command holds
        // that lock while it runs, and a message from another thread (a compile worker, a
        // pipeline thread) would wait for it forever.
        let mut rest = line.as_bytes();
        while !rest.is_empty() {
            match rustix::io::write(rustix::stdio::stderr(), rest) {
                Ok(0) | Err(_) => break,
                Ok(n) => rest = &rest[n..],
            }
        }
    }

    fn flush(&self) {}
}

/// A debug line in logrus' text format.
fn debug_line(err: &mut dyn Write, msg: &str) {
    let _ = err.write_all(logrus::line(logrus::Level::Debug, msg).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_strs(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn no_arguments_prints_usage_and_fails() {
        let (code, out, _) = run_strs(&[]);
        assert_eq!(code, 1);
        assert!(out.starts_with("Usage: storage command"));
    }

    #[test]
    fn global_parse_error() {
        let (code, out, err) = run_strs(&["--bogus", "layers"]);
        assert_eq!(code, 1);
        assert!(out.starts_with(
            "flag provided but not defined: --bogus while parsing arguments (1)\nUsage: storage command"
        ));
        assert!(err.starts_with("flag provided but not defined: --bogus\nSee 'storage --help'.\n"));
    }

    #[test]
    fn command_flag_error_is_125_on_stderr() {
        let (code, out, err) = run_strs(&["create-layer", "-x"]);
        assert_eq!(code, 125);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "flag provided but not defined: -x\nSee 'storage create-layer --help'.\n"
        );
    }

    #[test]
    fn help_after_command_is_125_with_usage_on_stdout() {
        let (code, out, _) = run_strs(&["layers", "-h"]);
        assert_eq!(code, 125);
        assert!(out.starts_with("Usage: storage layers [options [...]]\n\nList layers\n"));
    }

    #[test]
    fn unknown_command() {
        let (code, out, err) = run_strs(&["--graph", "/nonexistent", "frobnicate"]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (1, "frobnicate: unrecognized command.\n", "")
        );
    }

    #[test]
    fn argument_counts() {
        let (code, out, _) = run_strs(&["layer"]);
        assert_eq!(code, 1);
        assert!(out.starts_with("layer: more arguments required.\nUsage: storage layer "));
        let (code, out, _) = run_strs(&["get-names", "a", "b"]);
        assert_eq!(code, 1);
        assert!(out.starts_with("get-names: too many arguments ([a b]).\n"));
    }

    #[test]
    fn global_help_succeeds() {
        let (code, out, _) = run_strs(&["--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: storage command"));
    }
}
