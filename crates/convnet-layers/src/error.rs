//! The error type of the layers crate.

use convnet_tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong when building or running a layer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LayerError {
    /// A kernel or tensor operation failed (its message names the shapes).
    #[error("{layer}: {source}")]
    Tensor {
        /// The layer (its type, and its name when known).
        layer: String,
        /// The underlying error.
        #[source]
        source: TensorError,
    },
    /// The input does not have the shape the layer needs.
    #[error("{layer}: input shape: expected {expected}, got {got:?}")]
    InputShape {
        /// The layer (its type, and its name when known).
        layer: String,
        /// What the layer accepts, e.g. `"[N, 3, H, W]"`.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// `backward` was called without a preceding training-mode `forward`.
    #[error("{layer}: backward called without a preceding forward (no cached activations)")]
    NoCache {
        /// The layer.
        layer: String,
    },
    /// A configuration value is invalid (zero channels, dropout probability
    /// outside [0, 1), ...).
    #[error("{layer}: invalid configuration: {msg}")]
    Config {
        /// The layer.
        layer: String,
        /// What was wrong.
        msg: String,
    },
    /// Running the model as asked would need more memory than the machine
    /// has available (see [`crate::memory`]).
    #[error("{what} would need {detail}, more than the {available} available: use a smaller batch or image size")]
    Memory {
        /// What was asked (`training vgg16 on batches of 64`).
        what: String,
        /// The estimate by part.
        detail: String,
        /// The memory available, for people.
        available: String,
    },
}

/// `Result` with [`LayerError`].
pub type Result<T, E = LayerError> = std::result::Result<T, E>;

impl LayerError {
    /// Wraps a tensor error with the layer's name.
    pub fn tensor(layer: impl Into<String>, source: TensorError) -> Self {
        LayerError::Tensor {
            layer: layer.into(),
            source,
        }
    }

    /// An input-shape error.
    pub fn input_shape(
        layer: impl Into<String>,
        expected: impl Into<String>,
        got: &[usize],
    ) -> Self {
        LayerError::InputShape {
            layer: layer.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// A missing-cache error.
    pub fn no_cache(layer: impl Into<String>) -> Self {
        LayerError::NoCache {
            layer: layer.into(),
        }
    }

    /// A configuration error.
    pub fn config(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        LayerError::Config {
            layer: layer.into(),
            msg: msg.into(),
        }
    }

    /// The layer description carried by the error (`"Conv2d"`, or
    /// `"layer1.0.conv1 (Conv2d)"` once containers have named it).
    pub fn layer(&self) -> &str {
        match self {
            LayerError::Tensor { layer, .. }
            | LayerError::InputShape { layer, .. }
            | LayerError::NoCache { layer }
            | LayerError::Config { layer, .. } => layer,
            LayerError::Memory { what, .. } => what,
        }
    }

    /// Prefixes the layer description with the name a container gives the
    /// failing child, so that an error deep in a model names its full path:
    /// `"Conv2d"` becomes `"conv1 (Conv2d)"`, then `"layer1.0.conv1 (Conv2d)"`.
    /// An empty name (a child merged into its parent's namespace) changes
    /// nothing.
    ///
    /// ```
    /// use convnet_layers::LayerError;
    /// let e = LayerError::no_cache("Conv2d").in_child("conv1").in_child("0");
    /// assert_eq!(e.layer(), "0.conv1 (Conv2d)");
    /// ```
    pub fn in_child(mut self, name: &str) -> Self {
        if name.is_empty() {
            return self;
        }
        let slot = match &mut self {
            LayerError::Tensor { layer, .. }
            | LayerError::InputShape { layer, .. }
            | LayerError::NoCache { layer }
            | LayerError::Config { layer, .. } => layer,
            // About the whole model, not a child.
            LayerError::Memory { .. } => return self,
        };
        *slot = if slot.ends_with(')') && slot.contains(" (") {
            format!("{name}.{slot}")
        } else {
            format!("{name} ({slot})")
        };
        self
    }
}
