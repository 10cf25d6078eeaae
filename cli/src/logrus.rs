//! Log lines in logrus' text format, the one upstream's CLI prints its diagnostics in
//! (`github.com/sirupsen/logrus`, `text_formatter.go`, with its default settings).
//!
//! Two forms, chosen as logrus chooses: on a terminal, colored, with the whole seconds since
//! the process started (`\x1b[33mWARN\x1b[0m[0000] message padded to 44 `), and otherwise as
//! key/value pairs with the local time (`time="2026-12-05T00:50:51Z" level=warning
//! msg="message"`), a value quoted as Go's `%q` only when it holds a character outside
//! logrus' plain set. Both end with a newline; a message's own trailing newline is dropped in
//! the colored form, as logrus drops it.

use std::sync::OnceLock;
use std::time::Instant;

use storage_store::gostr;

/// A line's level, named as logrus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `error`, red on a terminal.
    Error,
    /// `warning`, yellow on a terminal.
    Warning,
    /// `info`, blue on a terminal.
    Info,
    /// `debug`, gray on a terminal.
    Debug,
}

impl Level {
    /// The level as the key/value form prints it.
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level as the colored form prints it: upper case, truncated to four letters.
    fn tag(self) -> &'static str {
        match self {
            Level::Error => "ERRO",
            Level::Warning => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBU",
        }
    }

    /// The ANSI color of the colored form's tag.
    fn color(self) -> u8 {
        match self {
            Level::Error => 31,
            Level::Warning => 33,
            Level::Info => 36,
            Level::Debug => 37,
        }
    }
}

/// How this process's log lines look: decided once, from whether stderr is a terminal (as
/// logrus decides on its first line), with the start the colored form counts seconds from.
struct Style {
    colored: bool,
    start: Instant,
}

fn style() -> &'static Style {
    static STYLE: OnceLock<Style> = OnceLock::new();
    STYLE.get_or_init(|| Style {
        colored: rustix::termios::isatty(rustix::stdio::stderr()),
        start: Instant::now(),
    })
}

/// Fixes the instant the colored form counts from, as logrus' package initialization does;
/// called once at the start of a command. Later calls change nothing.
pub fn start_clock() {
    style();
}

/// One line of this process's log, newline included, in the form stderr calls for.
pub fn line(level: Level, msg: &str) -> String {
    let style = style();
    if style.colored {
        colored_line(level, msg, style.start.elapsed().as_secs())
    } else {
        let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        plain_line(level, msg, &now)
    }
}

/// The key/value form, with `time` already formatted (Go's `time.RFC3339` of local time).
fn plain_line(level: Level, msg: &str, time: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 64);
    out.push_str("time=");
    push_value(&mut out, time);
    out.push_str(" level=");
    push_value(&mut out, level.name());
    // logrus leaves out an empty message's key.
    if !msg.is_empty() {
        out.push_str(" msg=");
        push_value(&mut out, msg);
    }
    out.push('\n');
    out
}

/// The colored form (`%-44s` pads the message to 44 characters, then one space).
fn colored_line(level: Level, msg: &str, seconds: u64) -> String {
    let msg = msg.strip_suffix('\n').unwrap_or(msg);
    let pad = 44usize.saturating_sub(msg.chars().count());
    format!(
        "\x1b[{}m{}\x1b[0m[{seconds:04}] {msg}{:pad$} \n",
        level.color(),
        level.tag(),
        ""
    )
}

/// A value as logrus' `appendValue` writes it: bare when every character is in its plain
/// set, else quoted as Go's `%q`.
fn push_value(out: &mut String, value: &str) {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'));
    if plain {
        out.push_str(value);
    } else {
        out.push_str(&gostr::quote(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_form_quotes_only_what_logrus_quotes() {
        assert_eq!(
            plain_line(Level::Warning, "Failed to decode", "2026-12-05T00:50:51Z"),
            "time=\"2026-12-05T00:50:51Z\" level=warning msg=\"Failed to decode\"\n"
        );
        assert_eq!(
            plain_line(
                Level::Debug,
                "plain/word-1.2_x@y^z+w",
                "2026-12-05T01:50:51+01:00"
            ),
            "time=\"2026-12-05T01:50:51+01:00\" level=debug msg=plain/word-1.2_x@y^z+w\n"
        );
        assert_eq!(
            plain_line(Level::Error, "", "T"),
            "time=T level=error\n",
            "an empty message has no key"
        );
        assert_eq!(
            plain_line(Level::Info, "say \"hi\"\n", "T"),
            "time=T level=info msg=\"say \\\"hi\\\"\\n\"\n"
        );
    }

    #[test]
    fn the_colored_form_pads_the_message_to_44_characters() {
        assert_eq!(
            colored_line(Level::Warning, "short", 3),
            format!("\x1b[33mWARN\x1b[0m[0003] short{} \n", " ".repeat(39))
        );
        let long = "é".repeat(50);
        assert_eq!(
            colored_line(Level::Debug, &format!("{long}\n"), 12345),
            format!("\x1b[37mDEBU\x1b[0m[12345] {long} \n")
        );
        assert_eq!(
            colored_line(Level::Error, &"x".repeat(44), 0),
            format!("\x1b[31mERRO\x1b[0m[0000] {} \n", "x".repeat(44))
        );
        assert!(colored_line(Level::Info, "m", 0).starts_with("\x1b[36mINFO\x1b[0m[0000] m"));
    }
}
