//! Command-line parsing with clap, shaped to behave like upstream's `mflag`
//! (`cmd/containers-storage/main.go`).
//!
//! Parsing runs in two phases, as upstream's `main` does: the global flags up to the first
//! positional (the command name), then the command's own flag set, which re-registers the
//! global flags. In both phases flags stop at the first positional argument: everything
//! after it is an argument, even if it starts with `-`. clap is driven with one trailing
//! positional per phase to get exactly that, and its errors are translated into mflag's
//! messages by the caller, which knows which phase failed.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::commands::{self, CommandSpec};
use crate::flags::{parse_go_bool, FlagKind, FlagSpec, FlagValues, GLOBAL_FLAGS};

/// Name of the positional that collects everything after the flags.
const REST: &str = "\u{0}rest";

/// Why a phase of parsing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `--help` or `-help` was given where no such flag exists.
    Help,
    /// An unknown flag, as typed (`--bogus`, `-x`).
    Unknown(String),
    /// A value flag at the end of the line, as typed.
    NeedsArgument(String),
    /// A boolean flag with a value `strconv.ParseBool` rejects.
    BadBool {
        /// The flag, as `--long`.
        flag: String,
        /// The value given.
        value: String,
    },
    /// Anything else clap refused, already rendered.
    Other(String),
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagError::Help => write!(f, "flag: help requested"),
            FlagError::Unknown(flag) => write!(f, "flag provided but not defined: {flag}"),
            FlagError::NeedsArgument(flag) => write!(f, "flag needs an argument: {flag}"),
            FlagError::BadBool { flag, value } => write!(
                f,
                "invalid boolean value {value:?} for  {flag}: strconv.ParseBool: parsing {value:?}: invalid syntax"
            ),
            FlagError::Other(msg) => write!(f, "{msg}"),
        }
    }
}

/// The outcome of the global phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalParse {
    /// Global flags given before the command.
    pub flags: FlagValues,
    /// `--help` was given (upstream's global flag set has it).
    pub help: bool,
    /// The command name and everything after it.
    pub rest: Vec<String>,
}

/// One parsed invocation of a command.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Global and command flags, globals given before the command first.
    pub flags: FlagValues,
    /// Positional arguments.
    pub args: Vec<String>,
}

impl Invocation {
    /// Whether `-j/--json` was given.
    pub fn json(&self) -> bool {
        self.flags.bool("json")
    }

    /// The first positional argument, or "" (main checks the minimum count first).
    pub fn first_arg(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }
}

/// Upstream's global flag set has `--help` (and only the global one does).
pub const HELP_FLAG: FlagSpec = crate::flags::flag(&["help"], None, FlagKind::Bool, "Print usage");

/// Parses the global flags before the command (`args` excludes the program name).
pub fn parse_global(args: &[String]) -> Result<GlobalParse, FlagError> {
    let flags: Vec<FlagSpec> = GLOBAL_FLAGS.iter().copied().chain([HELP_FLAG]).collect();
    let (mut values, rest) = run_clap("storage", &flags, args)?;
    let help = values.bool("help");
    let mut without_help = FlagValues::default();
    for spec in GLOBAL_FLAGS {
        for v in values.list(spec.key()) {
            without_help.push(spec.key(), v.clone());
        }
    }
    values = without_help;
    Ok(GlobalParse {
        flags: values,
        help,
        rest,
    })
}

/// Parses a command's flags and arguments (`args` is what follows the command name).
pub fn parse_command(
    command: &'static CommandSpec,
    args: &[String],
) -> Result<Invocation, FlagError> {
    let flags: Vec<FlagSpec> = GLOBAL_FLAGS.iter().chain(command.flags).copied().collect();
    let (values, rest) = run_clap(command.name(), &flags, args)?;
    Ok(Invocation {
        flags: values,
        args: rest,
    })
}

/// Looks a command up by name or alias.
pub fn find_command(name: &str) -> Option<&'static CommandSpec> {
    commands::find(name)
}

fn run_clap(
    name: &'static str,
    flags: &[FlagSpec],
    args: &[String],
) -> Result<(FlagValues, Vec<String>), FlagError> {
    reject_short_clusters(flags, args)?;
    let mut command = Command::new(name)
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .dont_delimit_trailing_values(true)
        .arg(
            Arg::new(REST)
                .num_args(0..)
                .trailing_var_arg(true)
                .action(ArgAction::Append),
        );
    for spec in flags {
        command = command.arg(clap_arg(spec));
    }
    let matches = command
        .try_get_matches_from(args)
        .map_err(|e| translate(&e, flags, args))?;
    let values = collect(&matches, flags)?;
    let rest = matches
        .get_many::<String>(REST)
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    Ok((values, rest))
}

fn clap_arg(spec: &FlagSpec) -> Arg {
    let mut arg = Arg::new(spec.key())
        .long(spec.key())
        .action(ArgAction::Append);
    for alias in &spec.long[1..] {
        arg = arg.alias(*alias);
    }
    if let Some(short) = spec.short {
        arg = arg.short(short);
    }
    match spec.kind {
        // mflag booleans never take the next argument: only `--x=value` sets a value.
        FlagKind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true"),
        // mflag takes the next argument as the value whatever it looks like.
        FlagKind::Value | FlagKind::List => arg.num_args(1).allow_hyphen_values(true),
    }
}

fn collect(matches: &ArgMatches, flags: &[FlagSpec]) -> Result<FlagValues, FlagError> {
    // Values in command-line order, so that "last one wins" means the last typed.
    let mut ordered: Vec<(usize, &'static str, String)> = Vec::new();
    for spec in flags {
        let key = spec.key();
        let (Some(values), Some(indices)) =
            (matches.get_many::<String>(key), matches.indices_of(key))
        else {
            continue;
        };
        for (value, index) in values.zip(indices) {
            if spec.kind == FlagKind::Bool {
                let parsed = parse_go_bool(value).ok_or_else(|| FlagError::BadBool {
                    flag: format!("--{key}"),
                    value: value.clone(),
                })?;
                ordered.push((index, key, parsed.to_string()));
            } else {
                ordered.push((index, key, value.clone()));
            }
        }
    }
    ordered.sort_by_key(|(index, _, _)| *index);
    let mut values = FlagValues::default();
    for (_, key, value) in ordered {
        values.push(key, value);
    }
    Ok(values)
}

/// mflag reads a multi-letter single-dash token (`-tj`) letter by letter, and fails with the
/// whole token when a letter is unknown; clap would also take `-nvalue` as an attached value
/// and `-graph` as `-g raph`, which mflag refuses. Only clusters of known boolean letters,
/// where both agree, are left to clap. Scans the flag part of the line (up to the first
/// positional or `--`).
fn reject_short_clusters(flags: &[FlagSpec], args: &[String]) -> Result<(), FlagError> {
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        if token == "--" || !token.starts_with('-') || token.len() == 1 {
            return Ok(());
        }
        let name = token.split('=').next().unwrap_or_default();
        if !name.starts_with("--") && name.chars().count() > 2 {
            if name == "-help" {
                return Err(FlagError::Help);
            }
            let all_known_booleans = !token.contains('=')
                && name.chars().skip(1).all(|letter| {
                    flags
                        .iter()
                        .any(|f| f.short == Some(letter) && f.kind == FlagKind::Bool)
                });
            if !all_known_booleans {
                return Err(FlagError::Unknown(name.to_string()));
            }
            continue;
        }
        let takes_next = !token.contains('=')
            && flags
                .iter()
                .any(|f| f.kind != FlagKind::Bool && f.is_spelled(name));
        if takes_next {
            tokens.next();
        }
    }
    Ok(())
}

/// Turns a clap error into mflag's terms, naming flags as the user typed them.
fn translate(err: &clap::Error, flags: &[FlagSpec], args: &[String]) -> FlagError {
    let invalid = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // clap renders an argument as `--name <name>` or `-n`; keep the flag itself.
    let flag_token = invalid
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_string();
    match err.kind() {
        ErrorKind::UnknownArgument => {
            if matches!(flag_token.as_str(), "-h" | "--help" | "-help") {
                return FlagError::Help;
            }
            FlagError::Unknown(typed_unknown(&flag_token, args))
        }
        ErrorKind::InvalidValue | ErrorKind::WrongNumberOfValues => {
            FlagError::NeedsArgument(typed_spelling(&flag_token, flags, args))
        }
        _ => FlagError::Other(
            err.render()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string(),
        ),
    }
}

/// The token the user typed that clap reports as unknown: mflag names the whole token
/// (`-qj`), clap only its first letter.
fn typed_unknown(flag: &str, args: &[String]) -> String {
    let strip = |a: &str| a.split('=').next().unwrap_or_default().to_string();
    if let Some(t) = args.iter().find(|a| strip(a) == flag) {
        return strip(t);
    }
    if let Some(letter) = flag.strip_prefix('-').filter(|l| !l.starts_with('-')) {
        if let Some(t) = args
            .iter()
            .find(|a| a.starts_with('-') && !a.starts_with("--") && a[1..].contains(letter))
        {
            return strip(t);
        }
    }
    flag.to_string()
}

/// The spelling the user typed for the flag clap names (clap always names the long form).
fn typed_spelling(flag: &str, flags: &[FlagSpec], args: &[String]) -> String {
    let spec = flags.iter().find(|s| s.is_spelled(flag));
    if let Some(spec) = spec {
        if let Some(t) = args.iter().rev().find(|a| spec.is_spelled(a)) {
            return t.clone();
        }
    }
    flag.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn command(args: &[&str]) -> Result<Invocation, FlagError> {
        let name = args[0];
        let spec = find_command(name).expect("known command");
        parse_command(spec, &strings(&args[1..]))
    }

    #[test]
    fn global_phase_stops_at_command() {
        let g = parse_global(&strings(&[
            "--graph", "/g", "-R=/r", "layers", "-j", "--graph", "/x",
        ]))
        .expect("parses");
        assert_eq!(g.flags.value("graph"), Some("/g"));
        assert_eq!(g.flags.value("run"), Some("/r"));
        assert_eq!(g.rest, ["layers", "-j", "--graph", "/x"]);
        assert!(!g.help);
    }

    #[test]
    fn global_unknown_flag_is_an_error() {
        assert_eq!(
            parse_global(&strings(&["--bogus", "layers"])),
            Err(FlagError::Unknown("--bogus".into()))
        );
        assert_eq!(
            parse_global(&strings(&["-g"])),
            Err(FlagError::NeedsArgument("-g".into()))
        );
        assert_eq!(parse_global(&strings(&["-h"])), Err(FlagError::Help));
        assert!(
            parse_global(&strings(&["--help", "layers"]))
                .expect("parses")
                .help
        );
    }

    #[test]
    fn driver_is_an_alias_and_last_value_wins() {
        let g = parse_global(&strings(&[
            "--driver", "vfs", "-s", "overlay", "--debug", "x",
        ]))
        .expect("parses");
        assert_eq!(g.flags.value("storage-driver"), Some("overlay"));
        assert!(g.flags.bool("debug"));
        assert_eq!(g.rest, ["x"]);
    }

    #[test]
    fn booleans_take_values_only_with_equals() {
        let g = parse_global(&strings(&["--debug=false", "layers"])).expect("parses");
        assert!(!g.flags.bool("debug"));
        assert!(g.flags.given("debug"));
        let g = parse_global(&strings(&["--debug", "false", "layers"])).expect("parses");
        assert!(g.flags.bool("debug"));
        assert_eq!(g.rest, ["false", "layers"]);
        let g = parse_global(&strings(&["-D=0", "layers"])).expect("parses");
        assert!(!g.flags.bool("debug"));
        assert_eq!(
            command(&["layers", "--debug=foo"]).err(),
            Some(FlagError::BadBool {
                flag: "--debug".into(),
                value: "foo".into()
            })
        );
    }

    #[test]
    fn flags_stop_at_first_positional() {
        let inv = command(&["layer", "ID", "-j"]).expect("parses");
        assert!(!inv.json());
        assert_eq!(inv.args, ["ID", "-j"]);
        let inv = command(&["layer", "-j", "ID"]).expect("parses");
        assert!(inv.json());
        assert_eq!(inv.args, ["ID"]);
        let inv = command(&["layers", "--", "-j"]).expect("parses");
        assert!(!inv.json());
    }

    #[test]
    fn lists_append_and_globals_work_after_command() {
        let inv = command(&[
            "create-layer",
            "-n",
            "a",
            "--name=b",
            "--storage-opt",
            "overlay.x=1",
            "--name",
            "-c",
            "parent",
        ])
        .expect("parses");
        assert_eq!(inv.flags.list("name"), ["a", "b", "-c"]);
        assert_eq!(inv.flags.list("storage-opt"), ["overlay.x=1"]);
        assert_eq!(inv.args, ["parent"]);
    }

    #[test]
    fn alternate_spellings() {
        for spelling in ["--bzip2", "--bz2", "-b"] {
            let inv = command(&["diff", spelling, "L"]).expect("parses");
            assert!(inv.flags.bool("bzip2"), "{spelling}");
        }
        for spelling in ["--read-only", "--ro", "-r"] {
            let inv = command(&["mount", spelling, "L"]).expect("parses");
            assert!(inv.flags.bool("read-only"), "{spelling}");
        }
    }

    #[test]
    fn command_phase_errors() {
        assert_eq!(
            command(&["create-layer", "-x"]).err(),
            Some(FlagError::Unknown("-x".into()))
        );
        assert_eq!(
            command(&["layers", "--bogus=1"]).err(),
            Some(FlagError::Unknown("--bogus".into()))
        );
        assert_eq!(
            command(&["create-layer", "-n"]).err(),
            Some(FlagError::NeedsArgument("-n".into()))
        );
        assert_eq!(command(&["layers", "-h"]).err(), Some(FlagError::Help));
        assert_eq!(command(&["layers", "--help"]).err(), Some(FlagError::Help));
        // --option is not a flag of mount (only --opt is).
        assert_eq!(
            command(&["mount", "--option", "ro", "L"]).err(),
            Some(FlagError::Unknown("--option".into()))
        );
    }

    #[test]
    fn short_tokens_are_single_letters_as_in_mflag() {
        let inv = command(&["layers", "-qj"]).expect("known boolean letters cluster");
        assert!(inv.json() && inv.flags.bool("quick"));
        assert_eq!(
            command(&["layers", "-qx"]).err(),
            Some(FlagError::Unknown("-qx".into()))
        );
        assert_eq!(
            command(&["create-layer", "-nfoo"]).err(),
            Some(FlagError::Unknown("-nfoo".into()))
        );
        assert_eq!(
            parse_global(&strings(&["-graph", "/g", "layers"])),
            Err(FlagError::Unknown("-graph".into()))
        );
        assert_eq!(command(&["layers", "-help"]).err(), Some(FlagError::Help));
        // Values and positionals may look like clusters.
        let inv =
            command(&["create-layer", "-n", "-abc", "-i=-xyz", "parent", "-qj"]).expect("parses");
        assert_eq!(inv.flags.list("name"), ["-abc"]);
        assert_eq!(inv.flags.value("id"), Some("-xyz"));
        assert_eq!(inv.args, ["parent", "-qj"]);
    }

    #[test]
    fn error_messages_are_mflags() {
        assert_eq!(
            FlagError::Unknown("-x".into()).to_string(),
            "flag provided but not defined: -x"
        );
        assert_eq!(
            FlagError::BadBool {
                flag: "--debug".into(),
                value: "foo".into()
            }
            .to_string(),
            "invalid boolean value \"foo\" for  --debug: strconv.ParseBool: parsing \"foo\": invalid syntax"
        );
    }
}
