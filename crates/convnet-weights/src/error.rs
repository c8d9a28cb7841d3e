//! The error type of the weights crate.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong when reading, writing or loading weights.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the format it claims or seems to be, or it is
    /// corrupt or truncated: the message says what was wrong.
    #[error("{path}: {msg}")]
    Format {
        /// The file (or `<memory>` for bytes that never were a file).
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A `.pth` file holds something else than tensors and plain containers
    /// (a pickled class instance, code): it is refused, never executed.
    #[error("{path}: refused: {msg}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// What the file holds.
        msg: String,
    },
    /// A state dict does not fit a model (strict loading): every missing or
    /// unexpected key and every shape mismatch is listed.
    #[error("{0}")]
    Mismatch(crate::LoadReport),
    /// A tensor of the state dict is unusable (wrong element type, shape that
    /// does not match its data, ...).
    #[error("tensor `{key}`: {msg}")]
    Tensor {
        /// The state dict key.
        key: String,
        /// What was wrong.
        msg: String,
    },
}

/// `Result` with [`WeightsError`].
pub type Result<T, E = WeightsError> = std::result::Result<T, E>;

impl WeightsError {
    /// A format error for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        WeightsError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WeightsError::Io {
            path: path.into(),
            source,
        }
    }
}
