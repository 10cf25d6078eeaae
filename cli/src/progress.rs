//! The progress bar of long imports and exports: drawn on standard error only when it is
//! a terminal, and only once an operation has run for a while, so quick commands and
//! scripts see nothing.
//!
//! Written here rather than with `indicatif`: one byte-count bar is this small, and
//! indicatif's terminal target writes through `std::io::stderr()`, whose lock `main` holds for
//! the whole command (see [`for_stderr`]).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use storage_store::oci::{NoProgress, Progress};

/// How long an operation runs before the bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(800);
/// How often the bar is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Cells of the bar.
const WIDTH: usize = 30;

/// A progress reporter for this process: a bar on a terminal, nothing otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    let stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return Box::new(NoProgress);
    }
    // A file of its own on the same terminal: bytes are counted on the import's reading
    // thread while `main` holds the lock of `std::io::stderr()`, so writing through that
    // would wait forever.
    match stderr.as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(TerminalBar::new(File::from(fd))),
        Err(_) => Box::new(NoProgress),
    }
}

/// A one-line bar redrawn in place on standard error.
struct TerminalBar {
    term: File,
    started: Instant,
    last_draw: Option<Instant>,
    what: String,
    total: Option<u64>,
    done: u64,
    drawn: bool,
}

impl TerminalBar {
    fn new(term: File) -> Self {
        TerminalBar {
            term,
            started: Instant::now(),
            last_draw: None,
            what: String::new(),
            total: None,
            done: 0,
            drawn: false,
        }
    }

    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if now.duration_since(self.started) < SHOW_AFTER {
            return;
        }
        if !force
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(now);
        self.drawn = true;
        let line = render(&self.what, self.done, self.total);
        let _ = write!(self.term, "\r\x1b[K{line}");
    }
}

impl Progress for TerminalBar {
    fn start(&mut self, what: &str, total: Option<u64>) {
        self.what = what.to_string();
        self.total = total;
        self.done = 0;
        self.draw(true);
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        self.draw(false);
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = write!(self.term, "\r\x1b[K");
            self.drawn = false;
        }
    }
}

/// One line of the bar: what, a bar when the total is known, and the byte counts.
fn render(what: &str, done: u64, total: Option<u64>) -> String {
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    match total.filter(|t| *t > 0) {
        Some(total) => {
            let filled = ((done.min(total) as f64 / total as f64) * WIDTH as f64) as usize;
            format!(
                "{what} [{}{}] {:.1}/{:.1} MiB",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                mib(done),
                mib(total)
            )
        }
        None => format!("{what} {:.1} MiB", mib(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_lines() {
        assert_eq!(
            render("layer 1/2 abc", 512 * 1024, Some(1024 * 1024)),
            format!(
                "layer 1/2 abc [{}{}] 0.5/1.0 MiB",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        assert_eq!(
            render("x", 3 << 20, Some(1 << 20)),
            format!("x [{}] 3.0/1.0 MiB", "#".repeat(30))
        );
        assert_eq!(render("layer", 0, None), "layer 0.0 MiB");
        assert_eq!(
            render("y", 0, Some(0)),
            "y 0.0 MiB",
            "an empty total draws no bar"
        );
    }
}
