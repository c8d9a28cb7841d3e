//! Sigmoid: `1 / (1 + e^−x)`, element-wise.
//!
//! PyTorch equivalent: `torch.nn.Sigmoid()`. Shapes: any -> the same.

use convnet_tensor::kernels::activation::Activation;
use convnet_tensor::Tensor;

use crate::elementwise::{elementwise_layer, ElementWise};

const NAME: &str = "Sigmoid";

/// The logistic function `σ(x) = 1 / (1 + e^−x)`, element-wise; the backward
/// pass reads the cached output (`σ′ = σ·(1 − σ)`).
///
/// PyTorch equivalent: `torch.nn.Sigmoid` (the activation of the original
/// LeNet family).
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Layer, Sigmoid};
/// use convnet_tensor::Tensor;
/// let mut s = Sigmoid::new();
/// let y = s.forward(&Tensor::zeros(&[2]))?;
/// assert_eq!(y.as_slice(), &[0.5, 0.5]);
/// assert_eq!(s.backward(&Tensor::ones(&[2]))?.as_slice(), &[0.25, 0.25]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sigmoid {
    inner: ElementWise,
}

impl Default for Sigmoid {
    fn default() -> Self {
        Self::new()
    }
}

impl Sigmoid {
    /// The Sigmoid layer.
    pub fn new() -> Self {
        Sigmoid {
            inner: ElementWise::new(Activation::Sigmoid),
        }
    }
}

elementwise_layer!(Sigmoid);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::Layer;

    #[test]
    fn gradient_values_and_errors() {
        let mut s = Sigmoid::new();
        check_layer(&mut s, &random(&[2, 3, 4], 0));
        let x = random(&[5, 2], 1);
        assert_eq!(s.infer(&x).unwrap(), s.forward(&x).unwrap());
        let y = s
            .infer(&Tensor::from_vec(&[1], vec![2.0]).unwrap())
            .unwrap();
        assert!((y.as_slice()[0] - 0.880_797).abs() < 1e-6);
        assert!(s.backward(&Tensor::zeros(&[2, 5])).is_err());
    }
}
