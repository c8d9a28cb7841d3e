//! Flatten: merges a range of axes into one (by default every axis after the
//! batch axis).
//!
//! PyTorch equivalent: `torch.nn.Flatten(start_dim=1, end_dim=-1)`.
//! Shapes: `[N, C, H, W]` -> `[N, C·H·W]` with the defaults.

use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache};

const NAME: &str = "Flatten";

/// Merges the axes `start_dim..=end_dim` into one; negative dims count from
/// the end, as in PyTorch.
///
/// PyTorch equivalent: `torch.nn.Flatten(start_dim, end_dim)`; the defaults
/// (`1`, `-1`) flatten everything but the batch axis.
///
/// # Shapes
///
/// - input: at least `max(start, end) + 1` axes, e.g. `[N, C, H, W]`
/// - output: the axes `start..=end` replaced by their product, e.g. `[N, C·H·W]`
///
/// ```
/// use convnet_layers::{Flatten, Layer};
/// use convnet_tensor::Tensor;
/// let mut f = Flatten::new();
/// let y = f.forward(&Tensor::arange(&[2, 16, 5, 5]))?;
/// assert_eq!(y.shape(), &[2, 400]);
/// assert_eq!(f.backward(&y)?.shape(), &[2, 16, 5, 5]);
/// assert_eq!(Flatten::with_dims(2, 3)?.output_shape(&[2, 3, 4, 5])?, vec![2, 3, 20]);
/// assert!(f.infer(&Tensor::zeros(&[3])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Flatten {
    start_dim: isize,
    end_dim: isize,
    /// The shape of the last `forward`'s input.
    cache: Option<Vec<usize>>,
}

impl Default for Flatten {
    fn default() -> Self {
        Self::new()
    }
}

impl Flatten {
    /// `Flatten(start_dim=1, end_dim=-1)`: everything but the batch axis.
    pub fn new() -> Self {
        Flatten {
            start_dim: 1,
            end_dim: -1,
            cache: None,
        }
    }

    /// Flattens `start_dim..=end_dim`. Errors when both have the same sign and
    /// `start_dim > end_dim` (the range is checked against the rank of each
    /// input as well).
    pub fn with_dims(start_dim: isize, end_dim: isize) -> Result<Self> {
        if (start_dim >= 0) == (end_dim >= 0) && start_dim > end_dim {
            return Err(LayerError::config(
                NAME,
                format!("start_dim ({start_dim}) must not be after end_dim ({end_dim})"),
            ));
        }
        Ok(Flatten {
            start_dim,
            end_dim,
            cache: None,
        })
    }

    fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let rank = shape.len() as isize;
        let norm = |d: isize| if d < 0 { d + rank } else { d };
        let (s, e) = (norm(self.start_dim), norm(self.end_dim));
        if s < 0 || e >= rank || s > e {
            return Err(LayerError::input_shape(
                NAME,
                format!(
                    "a shape with axes {}..={} (at least {} axes)",
                    self.start_dim,
                    self.end_dim,
                    self.start_dim.max(self.end_dim).max(0) + 1
                ),
                shape,
            ));
        }
        let (s, e) = (s as usize, e as usize);
        let mut out = shape[..s].to_vec();
        out.push(shape[s..=e].iter().product());
        out.extend_from_slice(&shape[e + 1..]);
        Ok(out)
    }
}

impl Layer for Flatten {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let shape = self.out_shape(x.shape())?;
        Ok(x.reshape(&shape).expect("same element count"))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.infer(x)?;
        self.cache = Some(x.shape().to_vec());
        Ok(y)
    }

    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        // The owned input is reshaped where it is, without a copy.
        let shape = self.out_shape(x.shape())?;
        self.cache = Some(x.shape().to_vec());
        Ok(x.into_reshape(&shape).expect("same element count"))
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(shape) = &self.cache {
            check_grad(NAME, grad_out, &self.out_shape(shape)?)?;
        }
        let shape = take_cache(&mut self.cache, NAME)?;
        Ok(grad_out.reshape(&shape).expect("same element count"))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.out_shape(input_shape)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Flatten {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn shapes_like_pytorch() {
        let f = Flatten::new();
        assert_eq!(f.output_shape(&[2, 3, 4, 5]).unwrap(), vec![2, 60]);
        assert_eq!(f.output_shape(&[2, 3]).unwrap(), vec![2, 3]);
        let f = Flatten::with_dims(0, -1).unwrap();
        assert_eq!(f.output_shape(&[2, 3, 4]).unwrap(), vec![24]);
        let f = Flatten::with_dims(-3, -2).unwrap();
        assert_eq!(f.output_shape(&[2, 3, 4, 5]).unwrap(), vec![2, 12, 5]);
        assert!(f.output_shape(&[2]).is_err());
        assert!(Flatten::with_dims(3, 1).is_err());
        assert!(Flatten::new().output_shape(&[5]).is_err());
    }

    #[test]
    fn gradient_and_no_cache() {
        let mut f = Flatten::new();
        assert!(f.backward(&Tensor::zeros(&[2, 6])).is_err());
        check_layer(&mut f, &random(&[2, 3, 2, 2], 0));
        f.forward(&Tensor::zeros(&[2, 3, 2])).unwrap();
        assert!(f.backward(&Tensor::zeros(&[2, 5])).is_err());
    }
}
