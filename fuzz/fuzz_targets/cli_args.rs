//! The Go-style (`mflag`) flag parser of the `storage` command (`storage_cli::parse`): the
//! global phase up to the command name, the command lookup, the command's phase, as `run`
//! does them before it opens a store (which this target never does).
//!
//! Checked: no panic; flags stop at the first positional argument in both phases (what is
//! left is a suffix of the line); a line that starts with a positional has no flags; a line
//! the global phase accepts gives the same result when parsed again; errors display.
//!
//! Input: the arguments (without the program name), one a line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_cli::parse::{find_command, parse_command, parse_global};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    };
    let global = match parse_global(&args) {
        Ok(global) => global,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(
        args.ends_with(&global.rest),
        "the global phase's rest is not a suffix of the line"
    );
    if args
        .first()
        .is_some_and(|a| !a.starts_with('-') || a == "-")
    {
        assert_eq!(
            global.rest, args,
            "flags parsed after a positional argument"
        );
    }
    assert_eq!(
        parse_global(&args).ok(),
        Some(global.clone()),
        "parsing is not deterministic"
    );
    let Some((name, rest)) = global.rest.split_first() else {
        return;
    };
    let Some(command) = find_command(name) else {
        return;
    };
    assert!(command.names.contains(&name.as_str()));
    match parse_command(command, rest) {
        Ok(invocation) => {
            assert!(
                rest.ends_with(&invocation.args),
                "the command's arguments are not a suffix of the line"
            );
            let _ = invocation.json();
            let _ = invocation.first_arg();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
