//! What a forward pass or a training step needs in memory, checked against
//! what the machine has before anything of that size is allocated.
//!
//! The estimate comes from the model's [`summary`] (shapes only, nothing is
//! computed): the weights, their gradients and the optimizer's state, plus
//! the activations of one batch. It is a floor rather than a ceiling —
//! kernels also need scratch space — so a refusal is always right, and the
//! check exists to turn an impossible request (a VGG at 4096×4096, a batch of
//! a million) into an error instead of an abort.
//!
//! ```
//! use convnet_layers::memory::{memory_need, Usage};
//! use convnet_layers::{Flatten, Linear, LinearConfig, Sequential};
//! use convnet_tensor::Rng;
//!
//! let net = Sequential::default()
//!     .with(Flatten::new())
//!     .with(Linear::new(LinearConfig::new(784, 10), &mut Rng::seed_from(0))?);
//! let need = memory_need(&net, &[64, 1, 28, 28], Usage::Training { optimizer_slots: 1 })?;
//! assert_eq!(need.weights, 7850 * 4);
//! assert_eq!(need.gradients, 7850 * 4);
//! assert_eq!(need.optimizer, 7850 * 4);
//! // The input batch, then every layer's output kept for backward.
//! assert_eq!(need.activations, 64 * (784 + 784 + 10) * 4);
//! # Ok::<(), convnet_layers::LayerError>(())
//! ```

use convnet_tensor::memory::{available_bytes, human_bytes};
use convnet_tensor::numel;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::summary::summary;

/// What the memory is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// `infer`: no gradients, activations freed as soon as the next layer
    /// has used them.
    Inference,
    /// A training step: gradients, the optimizer's state and every
    /// activation kept for backward.
    Training {
        /// Tensors the optimizer keeps per weight (SGD with momentum 1,
        /// Adam 2, plain SGD 0).
        optimizer_slots: usize,
    },
}

/// The memory a use of a model needs, in bytes, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeed {
    /// Parameters and buffers (BatchNorm's running statistics).
    pub weights: u64,
    /// One gradient per parameter (training only).
    pub gradients: u64,
    /// The optimizer's state (training only).
    pub optimizer: u64,
    /// The batch's activations: for training the input and every layer's
    /// output (kept for backward); for inference the input and the largest
    /// output of a layer together with that layer's input.
    pub activations: u64,
}

impl MemoryNeed {
    /// The sum of every part.
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.gradients)
            .saturating_add(self.optimizer)
            .saturating_add(self.activations)
    }
}

/// Estimates what running `model` on a batch of `input_shape` needs (see
/// the module documentation); errors if the model does not accept that
/// shape.
pub fn memory_need(model: &dyn Layer, input_shape: &[usize], usage: Usage) -> Result<MemoryNeed> {
    let s = summary(model, input_shape)?;
    let bytes = |elems: usize| (elems as u64).saturating_mul(4);
    let params = bytes(s.total_params);
    let input = bytes(numel(input_shape));
    let need = match usage {
        Usage::Inference => {
            // A layer's input and output exist at the same time.
            let mut prev = input;
            let mut peak = input;
            for r in s.rows.iter().filter(|r| r.leaf) {
                let out = bytes(numel(&r.output_shape));
                peak = peak.max(prev.saturating_add(out));
                prev = out;
            }
            MemoryNeed {
                weights: params.saturating_add(bytes(s.buffer_elems)),
                gradients: 0,
                optimizer: 0,
                activations: peak,
            }
        }
        Usage::Training { optimizer_slots } => MemoryNeed {
            weights: params.saturating_add(bytes(s.buffer_elems)),
            gradients: params,
            optimizer: params.saturating_mul(optimizer_slots as u64),
            activations: input.saturating_add(s.activation_bytes as u64),
        },
    };
    Ok(need)
}

/// [`memory_need`], then an error if the need exceeds `available` bytes
/// (`None`: no limit known, nothing refused). The error says what needs the
/// memory (`what`, e.g. `"training resnet18 on batches of 64"`), the
/// estimate by part, and what is available.
///
/// ```
/// use convnet_layers::memory::{check_memory_within, Usage};
/// use convnet_layers::{Flatten, Layer};
///
/// let net = Flatten::new();
/// let shape = [1_000_000, 3, 224, 224]; // a million images at once
/// let e = check_memory_within(&net, &shape, Usage::Inference, "inference", Some(1 << 30))
///     .unwrap_err();
/// assert!(e.to_string().contains("more than the 1.0 GiB available"), "{e}");
/// assert!(check_memory_within(&net, &[1, 3, 224, 224], Usage::Inference, "x", Some(1 << 30)).is_ok());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
pub fn check_memory_within(
    model: &dyn Layer,
    input_shape: &[usize],
    usage: Usage,
    what: &str,
    available: Option<u64>,
) -> Result<MemoryNeed> {
    let need = memory_need(model, input_shape, usage)?;
    match available {
        Some(avail) if need.total() > avail => Err(LayerError::Memory {
            what: what.to_string(),
            detail: describe(&need),
            available: human_bytes(avail),
        }),
        _ => Ok(need),
    }
}

/// [`check_memory_within`] with the memory the machine has available now
/// ([`convnet_tensor::memory::available_bytes`]).
pub fn check_memory(
    model: &dyn Layer,
    input_shape: &[usize],
    usage: Usage,
    what: &str,
) -> Result<MemoryNeed> {
    check_memory_within(model, input_shape, usage, what, available_bytes())
}

/// [`check_memory`] for a caller about to run `model` on `input_shape`:
/// only a [`LayerError::Memory`] is returned; a shape the model refuses is
/// left to the forward pass, which reports it with its own context.
pub fn refuse_if_too_big(
    model: &dyn Layer,
    input_shape: &[usize],
    usage: Usage,
    what: &str,
) -> Result<()> {
    match check_memory(model, input_shape, usage, what) {
        Err(e @ LayerError::Memory { .. }) => Err(e),
        _ => Ok(()),
    }
}

/// `about 1.2 TiB (weights 528.0 MiB, gradients ..., activations 1.2 TiB)`.
fn describe(need: &MemoryNeed) -> String {
    let mut parts = vec![format!("weights {}", human_bytes(need.weights))];
    if need.gradients > 0 {
        parts.push(format!("gradients {}", human_bytes(need.gradients)));
    }
    if need.optimizer > 0 {
        parts.push(format!("optimizer state {}", human_bytes(need.optimizer)));
    }
    parts.push(format!("activations {}", human_bytes(need.activations)));
    format!(
        "at least {} ({})",
        human_bytes(need.total()),
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conv2d, Conv2dConfig, ReLU, Sequential};
    use convnet_tensor::Rng;

    fn net() -> Sequential {
        let mut rng = Rng::seed_from(0);
        Sequential::default()
            .with(Conv2d::new(Conv2dConfig::new(1, 8, 3).padding(1), &mut rng).unwrap())
            .with(ReLU::new())
    }

    #[test]
    fn inference_counts_the_largest_layer_with_its_input() {
        let need = memory_need(&net(), &[2, 1, 10, 10], Usage::Inference).unwrap();
        let (params, input, out) = (8 * 9 + 8, 2 * 100, 2 * 8 * 100);
        assert_eq!(need.weights, params * 4);
        assert_eq!((need.gradients, need.optimizer), (0, 0));
        // conv: input + output; ReLU: output + output (its input is the conv's output).
        assert_eq!(need.activations, (out + out) * 4);
        assert!(need.activations > (input + out) * 4);
    }

    #[test]
    fn training_counts_gradients_optimizer_and_every_output() {
        let need = memory_need(
            &net(),
            &[2, 1, 10, 10],
            Usage::Training { optimizer_slots: 2 },
        )
        .unwrap();
        let params = (8 * 9 + 8) * 4;
        assert_eq!(need.gradients, params);
        assert_eq!(need.optimizer, 2 * params);
        assert_eq!(need.activations, (200 + 1600 + 1600) * 4);
        assert_eq!(need.total(), 4 * params + need.activations);
    }

    #[test]
    fn too_much_is_an_error_naming_the_need_and_what_is_available() {
        let shape = [4096, 1, 1024, 1024];
        let e = check_memory_within(
            &net(),
            &shape,
            Usage::Training { optimizer_slots: 1 },
            "training net on batches of 4096",
            Some(8 << 30),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("training net on batches of 4096"), "{e}");
        // 4096 images of 1 + 8 + 8 planes of 1024×1024 floats.
        assert!(e.contains("activations 272.0 GiB"), "{e}");
        assert!(e.contains("more than the 8.0 GiB available"), "{e}");
        assert!(check_memory_within(&net(), &shape, Usage::Inference, "x", None).is_ok());
        // A shape the model refuses is that error, not a memory estimate.
        let e = memory_need(&net(), &[1, 3, 10, 10], Usage::Inference).unwrap_err();
        assert!(
            matches!(e, LayerError::InputShape { .. } | LayerError::Tensor { .. }),
            "{e}"
        );
    }
}
