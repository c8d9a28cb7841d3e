//! The crate's error type: every variant names the file (or the setting) that
//! was wrong, what was expected and what was found.

use std::path::PathBuf;

/// Everything that can go wrong while reading, writing, downloading or batching
/// a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An operating-system error on a file or folder.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`"opening"`, `"reading"`, `"renaming to data/mnist/..."`).
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file that is not a well-formed IDX file (bad magic, unknown type code,
    /// a size that does not match its header, trailing bytes...).
    #[error("{path}: not a valid IDX file: {reason}")]
    Idx {
        /// The file (or the name given to an in-memory stream).
        path: PathBuf,
        /// What was wrong, with the expected and found values.
        reason: String,
    },

    /// A gzip stream that cannot be decompressed: truncated, corrupt, bad CRC.
    #[error("{path}: corrupt or truncated gzip data: {source}")]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// The decompressor's error.
        #[source]
        source: std::io::Error,
    },

    /// A well-formed IDX file whose content does not fit the dataset: wrong
    /// element type or shape, image and label counts that differ, a label out
    /// of range.
    #[error("{path}: {reason}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },

    /// A dataset file that cannot be found in any of the places looked at.
    #[error("{what} not found; looked in: {tried}.{hint}")]
    NotFound {
        /// What was looked for (`"mnist train images"`).
        what: String,
        /// The paths looked at, comma separated.
        tried: String,
        /// How to get the files (may be empty).
        hint: String,
    },

    /// A file whose decompressed content is not the publisher's: other bytes,
    /// another size, or a gzip stream that cannot be decompressed.
    #[error(
        "{path}: rejected as {name}: expected {expected_len} bytes with sha256 \
         {expected_sha256} (of the decompressed content), found {found}"
    )]
    Verification {
        /// The rejected file (or URL).
        path: PathBuf,
        /// The dataset file it was meant to be (`"mnist/train-images-idx3-ubyte"`).
        name: String,
        /// The publisher's decompressed size.
        expected_len: u64,
        /// The publisher's SHA-256 of the decompressed content.
        expected_sha256: String,
        /// What was found: `"47040016 bytes with sha256 ..."`, or why the
        /// content could not be read.
        found: String,
    },

    /// An image file that cannot be decoded (corrupt, truncated, not an
    /// image, too large) or does not suit a transform.
    #[error("{path}: {msg}")]
    Image {
        /// The file (or what names the image, see
        /// [`crate::ImageSource::describe`]).
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },

    /// A download that failed on every mirror. For MNIST and Fashion-MNIST
    /// the message ends with the way to get the files offline
    /// ([`crate::download::offline_hint`]).
    #[error("{0}")]
    Download(String),

    /// A bad argument or configuration (batch size 0, horizontal flip on MNIST,
    /// an unknown dataset name...).
    #[error("{0}")]
    Config(String),

    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] convnet_tensor::TensorError),
}

/// The crate's result type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

impl DatasetError {
    /// An [`DatasetError::Io`] error on `path`.
    pub fn io(path: impl Into<PathBuf>, action: impl Into<String>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            action: action.into(),
            source,
        }
    }

    /// An [`DatasetError::Idx`] error on `path`.
    pub fn idx(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DatasetError::Idx {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`DatasetError::Image`] error on `path`.
    pub fn image(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        DatasetError::Image {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A [`DatasetError::Content`] error on `path`.
    pub fn content(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DatasetError::Content {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
