//! GELU: `x·Φ(x)`, exact or with the tanh approximation, element-wise.
//!
//! PyTorch equivalent: `torch.nn.GELU(approximate='none' | 'tanh')`.
//! Shapes: any -> the same.

use convnet_tensor::kernels::activation::Activation;
use convnet_tensor::Tensor;

use crate::elementwise::{elementwise_layer, ElementWise};

const NAME: &str = "GELU";

/// The Gaussian error linear unit (the lecture's annex):
/// `GELU(x) = x·Φ(x) = ½x·(1 + erf(x/√2))`, `Φ` the standard normal CDF;
/// or its tanh approximation
/// `½x·(1 + tanh(√(2/π)·(x + 0.044715x³)))`. The backward pass reads the
/// cached input.
///
/// PyTorch equivalent: `torch.nn.GELU()` ([`GELU::new`]) and
/// `torch.nn.GELU(approximate='tanh')` ([`GELU::tanh`]); ConvNeXt and ViT use
/// the exact one.
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Layer, GELU};
/// use convnet_tensor::Tensor;
/// let x = Tensor::from_vec(&[3], vec![-1.0, 0.0, 1.0])?;
/// let exact = GELU::new().infer(&x)?;
/// let approx = GELU::tanh().infer(&x)?;
/// assert!((exact.as_slice()[2] - 0.841_344_7).abs() < 1e-6); // 1·Φ(1)
/// assert!((approx.as_slice()[2] - 0.841_192).abs() < 1e-5);
/// assert!(GELU::tanh().is_tanh_approximation());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[allow(clippy::upper_case_acronyms)]
pub struct GELU {
    inner: ElementWise,
}

impl Default for GELU {
    fn default() -> Self {
        Self::new()
    }
}

impl GELU {
    /// The exact GELU, `x·Φ(x)`.
    pub fn new() -> Self {
        GELU {
            inner: ElementWise::new(Activation::Gelu),
        }
    }

    /// The tanh approximation (`approximate='tanh'`).
    pub fn tanh() -> Self {
        GELU {
            inner: ElementWise::new(Activation::GeluTanh),
        }
    }

    /// Whether this is the tanh approximation.
    pub fn is_tanh_approximation(&self) -> bool {
        self.inner.act == Activation::GeluTanh
    }
}

elementwise_layer!(GELU);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::Layer;

    #[test]
    fn gradient_of_both_forms() {
        check_layer(&mut GELU::new(), &random(&[2, 3, 4], 0));
        check_layer(&mut GELU::tanh(), &random(&[2, 3, 4], 1));
    }

    #[test]
    fn values_infer_and_errors() {
        let x = random(&[50], 2);
        let mut g = GELU::new();
        let y = g.forward(&x).unwrap();
        assert_eq!(y, g.infer(&x).unwrap());
        let approx = GELU::tanh().infer(&x).unwrap();
        // The two forms differ by less than 1e-3 everywhere.
        assert!(y.max_abs_diff(&approx).unwrap() < 1e-3);
        assert!(y != approx);
        assert!(g.backward(&Tensor::zeros(&[49])).is_err());
    }
}
