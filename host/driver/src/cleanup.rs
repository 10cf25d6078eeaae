//! Steps whose failure is logged instead of returned.
//!
//! Some steps run on the way out of an error that is already being reported (a rollback),
//! or tidy up what the next operation repeats anyway (a mount point to remove, a probe's
//! leftovers). Their failure must neither hide the first error nor fail an operation that
//! otherwise succeeded; it goes to the log (the CLI shows it with `--debug`), with what the
//! step was. Each caller says, where it calls, why carrying on is right.

use std::fmt::Display;

/// Logs `result`'s error, if any, naming the step (`what`); gives back the value when there
/// is one. At debug level: the error that matters is the one being reported (a rollback's
/// failure after a full disk would otherwise bury it under lines of consequences).
pub fn log_failure<T, E: Display>(what: impl Display, result: Result<T, E>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            log::debug!("{what} (carrying on): {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_given_back_and_an_error_is_swallowed() {
        assert_eq!(log_failure("adding", Ok::<_, String>(3)), Some(3));
        assert_eq!(
            log_failure("removing x", Err::<u8, _>(std::io::Error::other("busy"))),
            None
        );
    }
}
