//! [`Param`]: a trainable tensor and its gradient.

use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{LayerError, Result};

/// The most elements one parameter tensor may have: 2^30, 4 GiB of `f32`
/// (8 GiB with its gradient). Layers check their weight's shape against it
/// before allocating anything, so a configuration with absurd sizes (10^12
/// classes, a 100000×100000 input flattened into a linear layer) is an
/// error rather than an allocation that aborts the process.
pub const MAX_PARAM_ELEMENTS: usize = 1 << 30;

/// Checks that a parameter of `shape` of `layer` stays within
/// [`MAX_PARAM_ELEMENTS`]; the error names the shape, its element count and
/// the limit.
///
/// ```
/// use convnet_layers::param::check_param_size;
///
/// assert!(check_param_size("Linear", &[1000, 4096]).is_ok());
/// let e = check_param_size("Linear", &[1_000_000_000_000, 84]).unwrap_err();
/// assert!(e.to_string().contains("84000000000000 elements"), "{e}");
/// ```
pub fn check_param_size(layer: &str, shape: &[usize]) -> Result<()> {
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match n {
        Some(n) if n <= MAX_PARAM_ELEMENTS => Ok(()),
        _ => {
            let count = shape.iter().map(|&d| d as u128).product::<u128>();
            Err(LayerError::config(
                layer,
                format!(
                    "a weight of shape {shape:?} would have {count} elements, more than the \
                     {MAX_PARAM_ELEMENTS} ({} GiB of f32) a parameter may have",
                    (MAX_PARAM_ELEMENTS * 4) >> 30
                ),
            ))
        }
    }
}

/// A trainable value and the gradient accumulated into it by `backward`.
///
/// `grad` always has the shape of `value`; backward passes add to it (`+=`),
/// and [`Param::zero_grad`] resets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The current value.
    pub value: Tensor,
    /// The accumulated gradient of the loss with respect to `value`.
    pub grad: Tensor,
}

impl Param {
    /// A parameter with a zero gradient.
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad }
    }

    /// Resets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// Shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of scalar values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// `true` for an empty parameter.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// Joins a prefix and a name with a dot, as PyTorch builds `state_dict` keys:
/// `join("layer1.0", "conv1")` is `"layer1.0.conv1"`, `join("", "weight")` is
/// `"weight"`.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod size_tests {
    use convnet_tensor::Rng;

    use crate::{Conv2d, Conv2dConfig, Linear, LinearConfig};

    #[test]
    fn absurd_layer_sizes_are_errors_before_allocating() {
        let mut rng = Rng::seed_from(0);
        let e = Linear::new(LinearConfig::new(84, 1_000_000_000_000), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Linear")
                && e.contains("[1000000000000, 84]")
                && e.contains("84000000000000"),
            "{e}"
        );
        // The product overflows usize: still a clear error.
        let e = Linear::new(LinearConfig::new(usize::MAX, 2), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 1073741824"), "{e}");
        let e = Conv2d::new(Conv2dConfig::new(1_000_000_000, 6, 5), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Conv2d") && e.contains("150000000000 elements"),
            "{e}"
        );
        assert!(Linear::new(LinearConfig::new(4096, 1000), &mut rng).is_ok());
    }
}
