//! ReLU: `max(x, 0)`, element-wise.
//!
//! PyTorch equivalent: `torch.nn.ReLU()`. Shapes: any -> the same.

use convnet_tensor::kernels::activation::Activation;
use convnet_tensor::Tensor;

use crate::elementwise::{elementwise_layer, ElementWise};

const NAME: &str = "ReLU";

/// The rectified linear unit, `max(x, 0)`, element-wise; its derivative at
/// 0 is taken as 0, as PyTorch does. The backward pass reads the cached
/// output.
///
/// PyTorch equivalent: `torch.nn.ReLU` (AlexNet, VGG, ResNet, Inception).
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Layer, ReLU};
/// use convnet_tensor::Tensor;
/// let mut relu = ReLU::new();
/// let x = Tensor::from_vec(&[4], vec![-2.0, -0.5, 0.5, 2.0])?;
/// assert_eq!(relu.forward(&x)?.as_slice(), &[0.0, 0.0, 0.5, 2.0]);
/// assert_eq!(relu.backward(&Tensor::ones(&[4]))?.as_slice(), &[0.0, 0.0, 1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReLU {
    inner: ElementWise,
}

impl Default for ReLU {
    fn default() -> Self {
        Self::new()
    }
}

impl ReLU {
    /// The ReLU layer.
    pub fn new() -> Self {
        ReLU {
            inner: ElementWise::new(Activation::Relu),
        }
    }
}

elementwise_layer!(ReLU);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random_away_from_zero};
    use crate::{Layer, LayerError};

    #[test]
    fn gradient_values_and_errors() {
        let mut r = ReLU::new();
        check_layer(&mut r, &random_away_from_zero(&[2, 3, 4], 0.05, 0));
        let x = random_away_from_zero(&[5, 2], 0.05, 1);
        assert_eq!(r.infer(&x).unwrap(), r.forward(&x).unwrap());
        assert!(r.infer(&x).unwrap().as_slice().iter().all(|&v| v >= 0.0));
        assert!(r.backward(&Tensor::zeros(&[2, 5])).is_err());
        r.backward(&Tensor::zeros(&[5, 2])).unwrap();
        assert!(matches!(
            r.backward(&Tensor::zeros(&[5, 2])),
            Err(LayerError::NoCache { .. })
        ));
    }
}
