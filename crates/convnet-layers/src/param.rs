//! [`Param`]: a trainable tensor and its gradient.

use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

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
