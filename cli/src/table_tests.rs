//! Checks of the command table's documentation (what the man pages and completions are made
//! from): every command is described, its examples parse as its own command lines, and the
//! flags its description names are its flags.

use crate::commands::COMMANDS;
use crate::flags::GLOBAL_FLAGS;
use crate::parse;
use crate::usage::PROGRAM;

/// The words of an example command line, as a shell would split them: single and double
/// quotes group words; a redirection or pipe ends the command.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '<' | '>' | '|') => break,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words("storage set-metadata -m 'built by ci' img > out"),
        ["storage", "set-metadata", "-m", "built by ci", "img"]
    );
    assert_eq!(shell_words("a \"b c\"d"), ["a", "b cd"]);
}

#[test]
fn every_command_is_described() {
    for c in COMMANDS {
        assert!(
            !c.description.trim().is_empty(),
            "{}: no description",
            c.name()
        );
        assert!(
            !c.description.contains("\n\n\n") && !c.description.ends_with('\n'),
            "{}: paragraphs are separated by one blank line",
            c.name()
        );
    }
}

#[test]
fn examples_are_valid_command_lines_of_their_command() {
    for c in COMMANDS {
        for example in c.examples {
            let words = shell_words(example.command);
            assert_eq!(
                words.first().map(String::as_str),
                Some(PROGRAM),
                "{example:?}"
            );
            let global = parse::parse_global(&words[1..])
                .unwrap_or_else(|e| panic!("{example:?}: global flags: {e}"));
            let (name, rest) = global.rest.split_first().expect("a command");
            let found = parse::find_command(name).map(|f| f.name());
            assert_eq!(
                found,
                Some(c.name()),
                "{example:?} is an example of another command"
            );
            let inv = parse::parse_command(c, rest)
                .unwrap_or_else(|e| panic!("{example:?}: command flags: {e}"));
            assert!(
                inv.args.len() >= c.min_args && c.max_args.is_none_or(|m| inv.args.len() <= m),
                "{example:?}: {} arguments",
                inv.args.len()
            );
        }
    }
}

#[test]
fn flags_named_in_descriptions_exist() {
    for c in COMMANDS {
        for word in c
            .description
            .split(|ch: char| ch.is_whitespace() || ch == ',' || ch == ';')
        {
            let Some(flag) = word.strip_prefix("--") else {
                continue;
            };
            let flag = flag.trim_end_matches(['.', ')', ':']);
            let flag = flag.split(['=', ' ']).next().unwrap_or_default();
            let known = c
                .flags
                .iter()
                .chain(GLOBAL_FLAGS)
                .any(|f| f.long.contains(&flag));
            assert!(known, "{}: its description names --{flag}", c.name());
        }
    }
}
