//! What each command does: calls into the store and prints what upstream prints.
//!
//! An action returns the exit status, or an error that `main` prints as one line on stderr
//! (exit 1). Actions that report per-argument errors themselves (delete, mount, ...) print
//! them and return 1.

pub mod containers;
pub mod copy;
pub mod data;
pub mod delete;
pub mod diff;
pub mod images;
pub mod layers;
pub mod misc;
pub mod mounts;
pub mod names;
pub mod oci;
pub mod unshare;

use std::io::{Read, Write};

use serde::Serialize;
use storage_store::store::{Store, StoreError};

use crate::parse::Invocation;

/// What an action works with.
pub struct Ctx<'a> {
    /// The open store.
    pub store: &'a Store,
    /// The parsed command line.
    pub inv: &'a Invocation,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
}

/// The records `args` name, looked up with `find`. An unknown name is skipped silently (the
/// command then exits 1, as upstream's does); a prefix naming several records is skipped too,
/// with one line on stderr listing them.
pub fn lookup_all<T>(
    err: &mut dyn Write,
    args: &[String],
    find: impl Fn(&str) -> Result<T, StoreError>,
) -> Result<Vec<T>, CliError> {
    let mut found = Vec::new();
    for arg in args {
        match find(arg) {
            Ok(record) => found.push(record),
            Err(e @ StoreError::Ambiguous { .. }) => {
                writeln!(err, "{e}").map_err(|e| CliError::io("writing output", e))?
            }
            Err(_) => {}
        }
    }
    Ok(found)
}

/// A command's action.
pub type Action = fn(&mut Ctx<'_>) -> Result<i32, CliError>;

/// Errors an action reports.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing a file or a standard stream failed (the system's error in Go's
    /// words, as upstream prints it).
    #[error("{context}: {}", storage_store::gostr::os_error_text(source))]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The ID-mapping flags are inconsistent or malformed.
    #[error(transparent)]
    IdMap(#[from] crate::idmaps::IdMapError),
    /// An OCI layout command failed (other than in the store).
    #[error("{0}")]
    Oci(#[source] storage_store::oci::OciError),
    /// A step of the command failed: what it was (upstream's words before the colon) and
    /// the error it failed with.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The step's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A message of the CLI itself (bad flag combination, bad argument).
    #[error("{0}")]
    Message(String),
}

impl CliError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps the error of a step of the command with what the step was.
    pub fn context(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError::Context {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Writes formatted text to an output, turning a write failure into a [`CliError`].
#[macro_export]
macro_rules! outln {
    ($w:expr, $($arg:tt)*) => {
        writeln!($w, $($arg)*).map_err(|e| $crate::actions::CliError::io("writing output", e))
    };
}

/// Prints `value` as Go's `json.NewEncoder(os.Stdout).Encode` would: compact, newline.
pub fn print_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = storage_store::gojson::to_string(value);
    outln!(out, "{text}")
}

/// Prints a list that Go keeps in a slice that is nil when empty (`null`).
pub fn print_json_nil_slice<T: Serialize>(
    out: &mut dyn Write,
    items: &[T],
) -> Result<(), CliError> {
    let text = storage_store::gojson::nil_slice_to_string(items);
    outln!(out, "{text}")
}

/// Reads all of a file, or of standard input when `path` is `None`.
pub fn read_input(path: Option<&str>) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    match path {
        Some(p) => {
            data = std::fs::read(p).map_err(|e| CliError::io(format!("open {p}"), e))?;
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut data)
                .map_err(|e| CliError::io("reading standard input", e))?;
        }
    }
    Ok(data)
}

/// Opens a file for reading, or standard input when `path` is `None`.
pub fn open_input(path: Option<&str>) -> Result<Box<dyn Read + Send>, CliError> {
    match path {
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| CliError::io(format!("open {p}"), e))?;
            Ok(Box::new(std::io::BufReader::new(f)))
        }
        None => Ok(Box::new(std::io::stdin())),
    }
}

/// Creates (or truncates) an output file named by a `-f` flag; its failure reads as Go's
/// `os.Create` error (`open PATH: ...`), as upstream's.
pub fn create_output(path: &str) -> Result<std::fs::File, CliError> {
    std::fs::File::create(path).map_err(|e| CliError::io(format!("open {path}"), e))
}

/// What the create commands print: the record as JSON with `-j`, else the ID and one
/// `\tNAME` line per name.
pub fn print_created<T: Serialize>(
    ctx: &mut Ctx<'_>,
    id: &str,
    names: &[String],
    record: &T,
) -> Result<(), CliError> {
    if ctx.inv.json() {
        return print_json(ctx.out, record);
    }
    outln!(ctx.out, "{id}")?;
    for name in names {
        outln!(ctx.out, "\t{name}")?;
    }
    Ok(())
}

/// The metadata given by `-m` or read from `-f` (the file wins, as upstream).
pub fn metadata_param(inv: &Invocation) -> Result<String, CliError> {
    match inv.flags.value("metadata-file").filter(|p| !p.is_empty()) {
        Some(path) => {
            let bytes = read_input(Some(path))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        None => Ok(inv.flags.value_or_empty("metadata").to_string()),
    }
}

/// Formats a list of numbers as Go's `%v` of a slice: `[1 2 3]`.
pub fn go_slice(values: &[u32]) -> String {
    let inner: Vec<String> = values.iter().map(u32::to_string).collect();
    format!("[{}]", inner.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_slice_format() {
        assert_eq!(go_slice(&[]), "[]");
        assert_eq!(go_slice(&[0, 1000, 65534]), "[0 1000 65534]");
    }
}
