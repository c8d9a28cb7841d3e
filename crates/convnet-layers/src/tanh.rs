//! Tanh: the hyperbolic tangent, element-wise.
//!
//! PyTorch equivalent: `torch.nn.Tanh()`. Shapes: any -> the same.

use convnet_tensor::kernels::activation::Activation;
use convnet_tensor::Tensor;

use crate::elementwise::{elementwise_layer, ElementWise};

const NAME: &str = "Tanh";

/// The hyperbolic tangent, element-wise; the backward pass reads the cached
/// output (`tanh′ = 1 − tanh²`).
///
/// PyTorch equivalent: `torch.nn.Tanh` (LeNet-5's squashing function).
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Layer, Tanh};
/// use convnet_tensor::Tensor;
/// let mut t = Tanh::new();
/// let y = t.forward(&Tensor::from_vec(&[2], vec![0.0, 1.0])?)?;
/// assert!((y.as_slice()[1] - 0.761_594_2).abs() < 1e-6);
/// let g = t.backward(&Tensor::ones(&[2]))?;
/// assert_eq!(g.as_slice()[0], 1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tanh {
    inner: ElementWise,
}

impl Default for Tanh {
    fn default() -> Self {
        Self::new()
    }
}

impl Tanh {
    /// The Tanh layer.
    pub fn new() -> Self {
        Tanh {
            inner: ElementWise::new(Activation::Tanh),
        }
    }
}

elementwise_layer!(Tanh);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::Layer;

    #[test]
    fn gradient_values_and_errors() {
        let mut t = Tanh::new();
        check_layer(&mut t, &random(&[2, 3, 4], 0));
        let x = random(&[5, 2], 1);
        assert_eq!(t.infer(&x).unwrap(), t.forward(&x).unwrap());
        assert!(t.backward(&Tensor::zeros(&[10])).is_err());
    }
}
