//! The man pages: `storage(1)` and one `storage-COMMAND(1)` per command of the table.
//!
//! Written with the `roff` crate (rust-cli's, which clap_mangen is built on) rather than
//! clap_mangen: clap_mangen renders a `clap::Command`'s own usage, but `storage` parses
//! mflag-style (flags stop at the first argument, several long spellings, Go booleans) and
//! its synopses are upstream's usage lines, so only the roff layer fits; it does the
//! escaping, the pages' structure is ours.

use roff::{bold, italic, roman, Inline, Roff};
use storage_cli::commands::{CommandSpec, COMMANDS};
use storage_cli::flags::{FlagKind, FlagSpec, GLOBAL_FLAGS};
use storage_cli::{EXIT_FLAG_ERROR, HELP_FLAG, PROGRAM};
use storage_store::config::{DEFAULT_GRAPH_ROOT, DEFAULT_RUN_ROOT};

use crate::model;

/// One generated file: its name and contents.
pub type Page = (String, String);

/// Every page: `storage.1`, then `storage-COMMAND.1` in the table's order.
pub fn pages() -> Vec<Page> {
    let mut out = vec![(format!("{PROGRAM}.1"), main_page())];
    out.extend(
        COMMANDS
            .iter()
            .map(|c| (format!("{PROGRAM}-{}.1", c.name()), command_page(c))),
    );
    out
}

/// The header every page starts with. No date, so that the output depends on the table only.
fn title(roff: &mut Roff, name: &str) {
    let version = format!("{PROGRAM} {}", env!("CARGO_PKG_VERSION"));
    roff.control(
        "TH",
        [
            name.to_ascii_uppercase().as_str(),
            "1",
            // roff drops an empty argument; `""` keeps the date's place.
            "\"\"",
            &version,
            "User Commands",
        ],
    );
    // Ragged right: justified lines stretch the long placeholders' neighbours apart.
    roff.control("ad", ["l"]);
}

fn section(roff: &mut Roff, name: &str) {
    roff.control("SH", [name]);
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text([roman(text)]);
}

/// Text with `storage(1)`-style references in bold.
fn paragraphs(roff: &mut Roff, text: &str) {
    for para in text.split("\n\n") {
        paragraph(roff, para);
    }
}

/// A flag's spellings as a `.TP` tag: `-n, --name=NAME`.
fn flag_tag(flag: &FlagSpec) -> Vec<Inline> {
    let mut tag = Vec::new();
    for (i, spelling) in model::spellings(flag).into_iter().enumerate() {
        if i > 0 {
            tag.push(roman(", "));
        }
        tag.push(bold(spelling));
    }
    if flag.kind != FlagKind::Bool {
        tag.push(roman("="));
        tag.push(italic(model::value_name(flag)));
    }
    tag
}

/// A flag's help with its type and default.
fn flag_body(flag: &FlagSpec) -> String {
    let kind = match flag.kind {
        FlagKind::Bool => "boolean".to_string(),
        FlagKind::Value => "string".to_string(),
        FlagKind::List => "string, repeatable: each use adds one".to_string(),
    };
    let default = flag
        .default
        .map(|d| format!(", default {d}"))
        .unwrap_or_default();
    format!("{} ({kind}{default}).", flag.help.trim_end_matches('.'))
}

fn flag_list(roff: &mut Roff, flags: &[FlagSpec]) {
    for flag in flags {
        roff.control("TP", []);
        roff.text(flag_tag(flag));
        roff.text([roman(flag_body(flag))]);
    }
}

/// A usage line with its placeholders in italics and its brackets in roman.
fn usage_inlines(usage: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Inline>| {
        if !word.is_empty() {
            out.push(italic(std::mem::take(word)));
        }
    };
    for c in usage.chars() {
        if c.is_alphanumeric() || c == '/' || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(roman(c.to_string()));
        }
    }
    flush(&mut word, &mut out);
    out
}

fn command_page(command: &CommandSpec) -> String {
    let page = format!("{PROGRAM}-{}", command.name());
    let mut roff = Roff::new();
    title(&mut roff, &page);

    section(&mut roff, "NAME");
    roff.text([roman(format!("{page} - {}", command.usage))]);

    section(&mut roff, "SYNOPSIS");
    // A placeholder split at a hyphen reads as two.
    roff.control("nh", []);
    let mut synopsis = vec![
        bold(PROGRAM),
        roman(" ["),
        italic("global options"),
        roman("] "),
        bold(command.name()),
        roman(" "),
    ];
    synopsis.extend(usage_inlines(command.options_help));
    roff.text(synopsis);
    roff.control("hy", []);

    section(&mut roff, "DESCRIPTION");
    paragraphs(&mut roff, command.description);
    if command.names.len() > 1 {
        roff.control("PP", []);
        let mut also = vec![roman("Also called ")];
        for (i, alias) in command.names[1..].iter().enumerate() {
            if i > 0 {
                also.push(roman(", "));
            }
            also.push(bold(*alias));
        }
        also.push(roman("."));
        roff.text(also);
    }

    section(&mut roff, "OPTIONS");
    if command.flags.is_empty() {
        paragraph(&mut roff, "The command has no options of its own.");
    } else {
        flag_list(&mut roff, command.flags);
    }
    roff.control("PP", []);
    roff.text([
        roman("The global options of "),
        bold(PROGRAM),
        roman("(1) are accepted too, before or after the command name. Options come before the arguments: the first argument ends them."),
    ]);

    if !command.examples.is_empty() {
        section(&mut roff, "EXAMPLES");
        for example in command.examples {
            roff.control("TP", []);
            roff.text([bold(example.command)]);
            if example.text.is_empty() {
                roff.text([roman("")]);
            } else {
                roff.text([roman(example.text)]);
            }
        }
    }

    section(&mut roff, "EXIT STATUS");
    exit_status(&mut roff);

    section(&mut roff, "SEE ALSO");
    let mut refs = vec![format!("{PROGRAM}(1)")];
    refs.extend(
        mentioned_commands(command)
            .into_iter()
            .map(|c| format!("{PROGRAM}-{c}(1)")),
    );
    see_also(&mut roff, &refs);
    roff.render()
}

/// The other commands a command's description names (as words of the text), in table order.
/// The object nouns that are also commands (`layer`, `images`, ...) are left out: the text
/// uses them as nouns.
fn mentioned_commands(command: &CommandSpec) -> Vec<&'static str> {
    const NOUNS: &[&str] = &[
        "layer",
        "layers",
        "image",
        "images",
        "container",
        "containers",
    ];
    let words: Vec<&str> = command
        .description
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .collect();
    COMMANDS
        .iter()
        .map(|c| c.name())
        .filter(|name| *name != command.name() && !NOUNS.contains(name))
        .filter(|name| words.contains(name))
        .collect()
}

fn see_also(roff: &mut Roff, refs: &[String]) {
    let mut inlines = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            inlines.push(roman(", "));
        }
        let (name, section) = r.split_once('(').unwrap_or((r, ""));
        inlines.push(bold(name));
        inlines.push(roman(format!("({section}")));
    }
    roff.text(inlines);
}

fn exit_status(roff: &mut Roff) {
    let entries = [
        ("0".to_string(), "The command succeeded."),
        (
            "1".to_string(),
            "The command failed, was given too few or too many arguments, or the store could not be opened. Errors of the command go to standard error; usage errors and a store that cannot be opened are reported on standard output, as upstream does.",
        ),
        (
            EXIT_FLAG_ERROR.to_string(),
            "An option after the command name is unknown or lacks its value, or -h or --help was given there.",
        ),
    ];
    for (code, text) in entries {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(text)]);
    }
}

const DESCRIPTION: &str = "\
storage keeps container layers, images and containers on disk the way containers/storage \
does for Podman, Buildah, CRI-O and Skopeo, and is a drop-in for its containers-storage \
command: the same commands, options, output, exit statuses and files on disk, so that those \
tools and storage can share a store.

A layer is a file system tree recorded as its changes to its parent layer; a layer without a \
parent starts empty. An image names a top layer, and with it the chain of its parents, and \
carries data items such as its manifest and configuration. A container is a writable layer \
on top of an image's top layer, with data items of its own. Layers, images and containers \
have IDs, may have names, and carry metadata; arguments name them by name, by ID, or by an \
unambiguous prefix of the ID.

The graph driver keeps the layers' contents: overlay and btrfs are native drivers, vfs runs as \
a sandboxed WebAssembly component, and plug-in drivers are components named in the \
configuration.";

const FLAG_SYNTAX: &str = "\
Options are written as in containers-storage: --name VALUE or --name=VALUE, -n VALUE or \
-n=VALUE; a boolean option takes no value except as --name=false (or true); single-letter \
booleans may be grouped (-qj). Options stop at the first argument that is not an option, or \
at --. A repeatable option adds a value each time it is given; for the others the last one \
given wins.";

const CONFIGURATION: &str = "\
When none of --graph, --run, --storage-driver and --storage-opt is given, the options come \
from the first of: the file that $CONTAINERS_STORAGE_CONF names (it must exist); \
$XDG_CONFIG_HOME/containers/storage.conf, /etc/containers/storage.conf and \
/usr/share/containers/storage.conf, the first that exists; the built-in default, the \
storage.toml of the source tree, compiled into the binary. When any of them is given, the \
configuration files and the environment are not read, and the roots that are not given \
default to GRAPH_ROOT and RUN_ROOT.

The format is that of containers-storage.conf(5): the tables [storage], [storage.options], \
[storage.options.overlay] and so on; keys it does not know are ignored (and listed with \
--debug). storage config prints the options that result, as JSON.

The overlay and btrfs drivers run archive work through a sandboxed WebAssembly component \
unless the driver option archive=native says otherwise; archive_memory_limit and \
archive_deadline_ms bound each call. Compiled components are cached, for root in \
/var/cache/storage/components.";

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "CONTAINERS_STORAGE_CONF",
        "The configuration file to read instead of the default ones; it must exist.",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the first default configuration file is looked for: $XDG_CONFIG_HOME/containers/storage.conf.",
    ),
    (
        "STORAGE_DRIVER",
        "The driver to use, over the configuration file's (only when the configuration file is read).",
    ),
    (
        "STORAGE_OPTS",
        "Driver options, comma-separated, that replace the configuration file's (only when the configuration file is read).",
    ),
];

fn main_page() -> String {
    let mut roff = Roff::new();
    title(&mut roff, PROGRAM);

    section(&mut roff, "NAME");
    roff.text([roman(format!(
        "{PROGRAM} - keep container layers, images and containers (containers-storage)"
    ))]);

    section(&mut roff, "SYNOPSIS");
    roff.text([
        bold(PROGRAM),
        roman(" ["),
        italic("global options"),
        roman("] "),
        italic("command"),
        roman(" ["),
        italic("options"),
        roman("] ["),
        italic("arguments"),
        roman(" ...]"),
    ]);

    section(&mut roff, "DESCRIPTION");
    paragraphs(&mut roff, DESCRIPTION);

    section(&mut roff, "GLOBAL OPTIONS");
    paragraph(
        &mut roff,
        "These options are accepted before the command name and after it, among the command's own options.",
    );
    flag_list(&mut roff, GLOBAL_FLAGS);
    flag_list(&mut roff, &[HELP_FLAG]);
    paragraphs(&mut roff, FLAG_SYNTAX);

    section(&mut roff, "COMMANDS");
    paragraph(
        &mut roff,
        &format!("Each command has its page, {PROGRAM}-COMMAND(1)."),
    );
    for command in COMMANDS {
        roff.control("TP", []);
        let mut tag = vec![bold(format!("{PROGRAM}-{}", command.name())), roman("(1)")];
        if command.names.len() > 1 {
            tag.push(roman(format!(" (also {})", command.names[1..].join(", "))));
        }
        roff.text(tag);
        roff.text([roman(command.usage)]);
    }

    section(&mut roff, "CONFIGURATION");
    paragraphs(
        &mut roff,
        &CONFIGURATION
            .replace("GRAPH_ROOT", DEFAULT_GRAPH_ROOT)
            .replace("RUN_ROOT", DEFAULT_RUN_ROOT),
    );

    section(&mut roff, "ENVIRONMENT");
    for (name, text) in ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*text)]);
    }

    section(&mut roff, "FILES");
    for (path, text) in [
        (
            "/etc/containers/storage.conf",
            "The system's configuration (see CONFIGURATION).",
        ),
        (
            "/usr/share/containers/storage.conf",
            "The distribution's configuration, read when the system has none.",
        ),
        (
            DEFAULT_GRAPH_ROOT,
            "The default graph root: layers, images, containers and their records.",
        ),
        (
            DEFAULT_RUN_ROOT,
            "The default run root: mount counts and other state that ends with the boot.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([italic(path)]);
        roff.text([roman(text)]);
    }

    section(&mut roff, "EXIT STATUS");
    exit_status(&mut roff);

    section(&mut roff, "SEE ALSO");
    see_also(
        &mut roff,
        &[
            "containers-storage(1)".to_string(),
            "containers-storage.conf(5)".to_string(),
            "podman(1)".to_string(),
            "skopeo(1)".to_string(),
        ],
    );
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_no_page_is_extra() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected = vec![format!("{PROGRAM}.1")];
        expected.extend(COMMANDS.iter().map(|c| format!("{PROGRAM}-{}.1", c.name())));
        assert_eq!(names, expected);
    }

    #[test]
    fn pages_carry_the_table() {
        let pages = pages();
        let main = &pages[0].1;
        for command in COMMANDS {
            let page = &pages
                .iter()
                .find(|(n, _)| *n == format!("{PROGRAM}-{}.1", command.name()))
                .expect("a page")
                .1;
            // Roff escapes dashes and apostrophes; compare on the escaped form.
            let esc = |s: &str| s.replace('-', "\\-").replace('\'', "\\*(Aq");
            assert!(main.contains(&esc(&format!("{PROGRAM}-{}", command.name()))));
            assert!(main.contains(&esc(command.usage)), "{}", command.name());
            assert!(page.contains(&esc(command.usage)));
            let first_words: String = command
                .description
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(page.contains(&esc(&first_words)), "{}", command.name());
            for flag in command.flags {
                for spelling in model::spellings(flag) {
                    assert!(
                        page.contains(&esc(&spelling)),
                        "{}: {spelling}",
                        command.name()
                    );
                }
                assert!(page.contains(&esc(flag.help)), "{}", command.name());
            }
            for example in command.examples {
                assert!(page.contains(&esc(example.command)));
            }
        }
        for flag in GLOBAL_FLAGS {
            assert!(
                main.contains(&flag.help.replace('-', "\\-")),
                "{}",
                flag.key()
            );
        }
        let check = &pages
            .iter()
            .find(|(n, _)| n == "storage-check.1")
            .expect("check")
            .1;
        assert!(check.contains("(string, default 24h)"));
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(pages(), pages());
    }

    #[test]
    fn see_also_names_commands_the_text_mentions() {
        let import = storage_cli::commands::find("import-layer").expect("import-layer");
        assert_eq!(mentioned_commands(import), ["create-layer", "diff"]);
    }
}
