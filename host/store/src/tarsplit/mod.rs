//! tar-split: the record that lets an imported layer archive be re-created byte for byte
//! from the files of the layer.
//!
//! The format is that of Go's `vbatts/tar-split` as containers/storage writes it: a gzip
//! stream of JSON objects, one a line, each either a raw segment (type 2: tar headers,
//! padding, end-of-archive blocks and anything after them, as base64) or a file entry
//! (type 1: the entry's name, its size and the CRC-64/ISO of its content). No Rust crate
//! writes it, so it is written here, field order and string escaping included, so that
//! the lines equal those the Go writer produces for the same tar.
//!
//! The parts, one module each: `writer` packs records ([`TarSplitWriter`]); `reader` reads
//! them back ([`TarSplitReader`]); `disassemble` walks a tar stream fed to it in pieces and
//! records it ([`Disassembler`], a push parser, so that the same bytes can be handed to a
//! driver without a second thread); `reassemble` writes the original tar from a tar-split
//! and the layer's files ([`reassemble()`]); `crc` is the CRC-64 of file contents they share.
//!
//! What can go wrong: the tar is malformed or truncated, names repeat
//! (`duplicates of file paths not supported`), the tar-split file is corrupt, a file's
//! content no longer matches its checksum (`file integrity checksum failed for "<name>"`).

use std::io;

use storage_archive::ArchiveError;
use storage_driver::DriverError;

mod crc;
mod disassemble;
mod reader;
mod reassemble;
mod seen;
mod writer;

pub use disassemble::{disassemble, Disassembler, IdSets};
pub use reader::TarSplitReader;
pub use reassemble::reassemble;
pub use writer::TarSplitWriter;

/// Tar block size.
const BLOCK: usize = 512;
/// Upper bound of raw bytes between two file entries; only a chain of meta headers can
/// reach it, and nothing legitimate does.
const MAX_RAW: usize = 16 << 20;
/// Segment size for what follows the end-of-archive blocks (Go reads it in 1 MiB chunks).
const TRAILING_CHUNK: usize = 1 << 20;

/// Errors of writing, reading, disassembling and reassembling tar-split.
#[derive(Debug, thiserror::Error)]
pub enum TarSplitError {
    /// Reading or writing a stream failed.
    #[error("{context}: {}", storage_archive::error::os_error_text(source))]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Two entries of one archive have the same cleaned path (Go's `ErrDuplicatePath`).
    #[error("duplicates of file paths not supported: {0:?}")]
    DuplicatePath(String),
    /// A tar header is malformed.
    #[error("archive/tar: invalid tar header: {0}")]
    InvalidHeader(String),
    /// The tar parser failed otherwise than on a malformed header or a truncation (which
    /// it does not today: its only other errors are of I/O it does not do).
    #[error("archive/tar: invalid tar header: {0}")]
    Parser(#[source] ArchiveError),
    /// The tar ends inside a header or an entry's content.
    #[error("unexpected EOF in the layer tar")]
    UnexpectedEof,
    /// The tar uses a feature whose bytes cannot be re-created from the files.
    #[error("tar-split: {0} are not supported")]
    Unsupported(&'static str),
    /// A tar-split record is inconsistent (an unknown entry type, a checksum that is not 8
    /// bytes).
    #[error("corrupt tar-split data: {0}")]
    Corrupt(String),
    /// The stored tar-split cannot be read or gunzipped.
    #[error("corrupt tar-split data: {}", storage_archive::error::os_error_text(.0))]
    Unreadable(#[source] io::Error),
    /// A tar-split line is not valid JSON of a record.
    #[error("corrupt tar-split data: {0}")]
    Json(#[source] serde_json::Error),
    /// A base64 field of a tar-split record does not decode.
    #[error("corrupt tar-split data: {field}: {source}")]
    Base64 {
        /// The field (`payload`, `name_raw`).
        field: &'static str,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// A file's content does not match the checksum recorded at import.
    #[error("file integrity checksum failed for {0:?}")]
    ChecksumMismatch(String),
    /// The layer could not give a file's content.
    #[error("reading {name:?} from the layer: {source}")]
    File {
        /// The entry name.
        name: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
}

/// Result of tar-split operations.
pub type Result<T> = std::result::Result<T, TarSplitError>;

fn io_err(context: &'static str) -> impl Fn(io::Error) -> TarSplitError + Copy {
    move |source| TarSplitError::Io { context, source }
}

/// One record of a tar-split stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarSplitEntry {
    /// Raw bytes of the archive other than file contents (type 2).
    Segment(Vec<u8>),
    /// A tar entry (type 1), whatever its kind.
    File {
        /// The entry's path as the tar names it, byte for byte.
        name: Vec<u8>,
        /// The size field of the entry (after PAX overrides).
        size: i64,
        /// CRC-64/ISO of the content, big-endian; `None` when `size` is 0.
        crc: Option<[u8; 8]>,
    },
}

impl From<ArchiveError> for TarSplitError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::UnexpectedEof => TarSplitError::UnexpectedEof,
            ArchiveError::InvalidHeader(m) => TarSplitError::InvalidHeader(m),
            other => TarSplitError::Parser(other),
        }
    }
}

#[cfg(test)]
mod proptests;
/// Builds tars block by block for tests, so every byte (PAX and GNU headers, padding,
/// names that are not UTF-8, junk after the end) is under the test's control.
#[cfg(test)]
pub(crate) mod test_tar;
#[cfg(test)]
mod tests;
