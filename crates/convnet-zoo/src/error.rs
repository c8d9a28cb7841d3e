//! The error type of the model zoo.

use convnet_layers::LayerError;
use thiserror::Error;

/// Everything that can go wrong when choosing or building a model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ZooError {
    /// No model of that name in the registry.
    #[error("unknown model `{name}`: valid models are {}", valid.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Every registered name.
        valid: Vec<String>,
    },
    /// The configuration does not suit the model (unknown variant, input too
    /// small, zero classes...).
    #[error("{model}: invalid configuration: {msg}")]
    Config {
        /// The model.
        model: String,
        /// What was wrong.
        msg: String,
    },
    /// Building a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// `Result` with [`ZooError`].
pub type Result<T, E = ZooError> = std::result::Result<T, E>;

impl ZooError {
    /// A configuration error.
    pub fn config(model: impl Into<String>, msg: impl Into<String>) -> Self {
        ZooError::Config {
            model: model.into(),
            msg: msg.into(),
        }
    }
}
