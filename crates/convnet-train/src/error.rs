//! The error type of the training crate.

use std::path::PathBuf;

use convnet_layers::LayerError;
use convnet_tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong while training, evaluating or checkpointing.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A layer failed (wrong input shape, missing cache, ...).
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Input to a loss, metric or optimizer has the wrong shape or content.
    #[error("{op}: {msg}")]
    Invalid {
        /// The operation (`"cross_entropy"`, `"Sgd::step"`).
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A configuration value is out of range (negative learning rate, zero
    /// epochs, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error(
        "non-finite loss ({loss}) at epoch {epoch}, batch {batch}: training stopped \
         (try a smaller learning rate or gradient clipping); the last good checkpoint, if any, \
         is kept"
    )]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The value.
        loss: f32,
    },
    /// The evaluation after an epoch gave a NaN or infinite test loss: the
    /// model diverged, so its accuracy means nothing.
    #[error(
        "non-finite test loss ({loss}) after epoch {epoch}: training stopped (try a smaller \
         learning rate or gradient clipping); the checkpoint of epoch {epoch} was not saved, the \
         last one with a finite evaluation, if any, is kept"
    )]
    NonFiniteTestLoss {
        /// 1-based epoch.
        epoch: usize,
        /// The value.
        loss: f64,
    },
    /// A checkpoint file is unusable (not a checkpoint, truncated, corrupted,
    /// for another model...).
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A checkpoint does not fit the model it is loaded into.
    #[error("checkpoint does not fit this model: {0}")]
    Mismatch(String),
    /// An I/O error, with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An output path that must not be replaced: something other than a
    /// regular file (a device, a folder, a FIFO), or a file the same command
    /// reads.
    #[error("{path}: refusing to write there: {msg}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why it is refused.
        msg: String,
    },
    /// Writing a plot failed.
    #[error("plot {path}: {msg}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A run folder is locked by another run.
    #[error("{path}: {msg}")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, or what to do.
        msg: String,
    },
    /// The data loader failed.
    #[error("data: {0}")]
    Data(String),
    /// Distributed training failed: the ranks disagree (different weights
    /// or data), or the communication failed.
    #[error("distributed training: {0}")]
    Distributed(String),
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// An [`TrainError::Invalid`] error.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        TrainError::Invalid {
            op,
            msg: msg.into(),
        }
    }

    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    /// A checkpoint error about `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
