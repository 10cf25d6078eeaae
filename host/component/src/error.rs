//! What can go wrong when loading or running a component.

use std::path::PathBuf;

use storage_driver::DriverError;

/// Why a guest was stopped by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It asked for more memory than its limit.
    OutOfMemory,
    /// It ran past its epoch deadline.
    Deadline,
    /// It trapped (a panic, an unreachable, a bad memory access, an unlinked import).
    Trap,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::OutOfMemory => "exceeded its memory limit",
            StopReason::Deadline => "ran past its deadline",
            StopReason::Trap => "trapped",
        })
    }
}

/// An error of the component runtime.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The bytes are not a valid component, or compiling it failed.
    #[error("component {name}: cannot compile: {message}")]
    Compile {
        /// Which component.
        name: String,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component asks for something the host never grants.
    #[error("component {name} refused: it imports {import} ({why})")]
    Refused {
        /// Which component.
        name: String,
        /// The offending import.
        import: String,
        /// Why it is refused.
        why: String,
    },
    /// The precompiled-artifact cache could not be used.
    #[error(
        "component cache {path}: {}",
        storage_archive::error::os_error_text(source)
    )]
    Cache {
        /// The cache directory or artifact.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Instantiating the component failed (missing export, wrong world).
    #[error("component {name}: cannot instantiate: {message}")]
    Instantiate {
        /// Which component.
        name: String,
        /// wasmtime's explanation.
        message: String,
    },
    /// The process-wide built-in component could not be made ready; every use reports the
    /// first failure again.
    #[error("component {name}: cannot instantiate: {source}")]
    BuiltinUnavailable {
        /// Which component.
        name: String,
        /// The first failure.
        #[source]
        source: std::sync::Arc<ComponentError>,
    },
    /// The guest was stopped during a call; its Store has been dropped.
    #[error("component {name} {reason} during {call}: {message}")]
    Stopped {
        /// Which component.
        name: String,
        /// The function called.
        call: &'static str,
        /// Why it was stopped.
        reason: StopReason,
        /// Detail from wasmtime.
        message: String,
    },
    /// The guest reported an archive error.
    #[error("component {name}: {source}")]
    Archive {
        /// Which component.
        name: String,
        /// The error, as the archive crate reports it.
        #[source]
        source: storage_archive::ArchiveError,
    },
    /// Opening a directory or stream to lend failed.
    #[error(
        "component {name}: {context}: {}",
        storage_archive::error::os_error_text(source)
    )]
    Io {
        /// Which component.
        name: String,
        /// What the host was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<ComponentError> for DriverError {
    fn from(e: ComponentError) -> Self {
        match e {
            ComponentError::Archive { source, .. } => DriverError::Archive(source),
            other => DriverError::Component(Box::new(other)),
        }
    }
}

/// A component error shown in other words (on one line, without wasmtime's backtrace, or
/// rephrased for the user), kept whole as the source.
#[derive(Debug)]
pub(crate) struct Rephrased {
    /// What is shown.
    pub text: String,
    /// The error itself.
    pub source: ComponentError,
}

impl std::fmt::Display for Rephrased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Rephrased {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
