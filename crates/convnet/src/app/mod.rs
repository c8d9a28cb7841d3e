//! What the `convnet` command does, as a library: training runs with their
//! output folder, evaluation of a checkpoint, prediction on image files,
//! model summaries and the zoo listing. The binary only parses flags and
//! calls these; the end-to-end tests call them directly.

pub mod data;
pub mod eval;
pub mod predict;
pub mod summary;
pub mod train;
pub mod weights;

use std::path::PathBuf;

use thiserror::Error;

/// Everything a command can fail with.
#[derive(Debug, Error)]
pub enum AppError {
    /// Training, evaluation or a checkpoint failed.
    #[error(transparent)]
    Train(#[from] convnet_train::TrainError),
    /// A dataset is missing or invalid.
    #[error(transparent)]
    Dataset(#[from] convnet_datasets::DatasetError),
    /// An unknown model or a bad model configuration.
    #[error(transparent)]
    Zoo(#[from] convnet_zoo::ZooError),
    /// A layer failed.
    #[error(transparent)]
    Layer(#[from] convnet_layers::LayerError),
    /// A weight file cannot be read, written or loaded.
    #[error(transparent)]
    Weights(#[from] convnet_weights::WeightsError),
    /// A flag or a combination of flags is invalid.
    #[error("{0}")]
    Usage(String),
    /// An image cannot be read.
    #[error("{path}: {msg}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A file or folder cannot be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AppError::Io {
            path: path.into(),
            source,
        }
    }
}

/// How a command reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ProgressMode {
    /// A progress bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines.
    Plain,
    /// Only one line per epoch.
    Quiet,
}
