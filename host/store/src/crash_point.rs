//! Named crash points for the crash tests (issue #13, item 2): every write path calls
//! [`crash_point`] between its durable effects, and a debug build dies there on demand, as a
//! `kill -9` would (SIGKILL to itself: no destructor runs, no buffer is flushed, no lock is
//! released but by the kernel).
//!
//! Only builds with `debug_assertions` (the binary the end-to-end suite runs) look at the
//! environment; in a release build every call compiles to nothing.
//!
//! - `STORAGE_CRASH_AT=NAME` kills the process the first time it passes the point `NAME`;
//!   `NAME#N` the N-th time (a command may pass a point more than once, e.g. two saves of
//!   `layers.json`).
//! - `STORAGE_CRASH_LIST=1` prints `storage-crash-point: NAME` to stderr at every point passed,
//!   so a test learns the points of a command by running it (tests/e2e/crash_points.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// What the environment asked for, read once.
struct Wanted {
    /// The point to die at and at which of its passes (1-based).
    at: Option<(String, usize)>,
    /// Whether every point passed is printed.
    list: bool,
}

fn wanted() -> &'static Wanted {
    static WANTED: OnceLock<Wanted> = OnceLock::new();
    WANTED.get_or_init(|| {
        let at = std::env::var("STORAGE_CRASH_AT")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| match s.rsplit_once('#') {
                Some((name, n)) => match n.parse::<usize>() {
                    Ok(n) => (name.to_string(), n),
                    Err(_) => (s.clone(), 1),
                },
                None => (s, 1),
            });
        let list = std::env::var_os("STORAGE_CRASH_LIST").is_some_and(|v| v == "1");
        Wanted { at, list }
    })
}

/// How many times this process passed the point it is to die at.
static PASSES: AtomicUsize = AtomicUsize::new(0);

/// A named step of a write path: in a debug build, dies here when `STORAGE_CRASH_AT` names
/// it (module docs). Nothing in a release build.
#[inline]
pub fn crash_point(name: &str) {
    if cfg!(debug_assertions) {
        reached(name);
    }
}

/// [`crash_point`] with a name made only when a debug build needs it (a point naming the
/// file it writes).
#[inline]
pub fn crash_point_with(name: impl FnOnce() -> String) {
    if cfg!(debug_assertions) {
        let w = wanted();
        if w.list || w.at.is_some() {
            reached(&name());
        }
    }
}

fn reached(name: &str) {
    let w = wanted();
    if w.list {
        eprintln!("storage-crash-point: {name}");
    }
    let Some((at, n)) = &w.at else {
        return;
    };
    if at != name || PASSES.fetch_add(1, Ordering::SeqCst) + 1 != *n {
        return;
    }
    // As a `kill -9`: no unwinding, no destructors, no flush of buffered output.
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught; should it somehow return, do not go on past the point.
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_not_asked_for_returns() {
        // The test process has neither variable set (cargo does not set them).
        crash_point("nowhere");
        crash_point_with(|| "nowhere-either".to_string());
        assert_eq!(PASSES.load(Ordering::SeqCst), 0);
    }
}
