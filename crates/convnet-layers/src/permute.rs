//! Permute: reorders the axes of a tensor.
//!
//! PyTorch equivalent: `torchvision.ops.Permute(dims)` (`x.permute(*dims)`).
//! Shapes: `[d_0, ..., d_k]` -> `[d_dims[0], ..., d_dims[k]]`.

use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache};

const NAME: &str = "Permute";

/// Reorders axes: output axis `i` is input axis `dims[i]` (the result is
/// copied into a contiguous tensor). The backward pass applies the inverse
/// permutation.
///
/// PyTorch equivalent: `torchvision.ops.Permute` (ConvNeXt's blocks go to
/// channels-last with `[0, 2, 3, 1]` and back with `[0, 3, 1, 2]`).
///
/// # Shapes
///
/// - input: exactly `dims.len()` axes
/// - output: the axes in the order `dims`
///
/// ```
/// use convnet_layers::{Layer, Permute};
/// use convnet_tensor::Tensor;
/// let mut to_nhwc = Permute::new(&[0, 2, 3, 1])?;
/// let x = Tensor::arange(&[1, 3, 2, 2]);
/// let y = to_nhwc.forward(&x)?;
/// assert_eq!(y.shape(), &[1, 2, 2, 3]);
/// assert_eq!(&y.as_slice()[..3], &[0.0, 4.0, 8.0]); // the 3 channels of pixel (0, 0)
/// assert_eq!(to_nhwc.backward(&y)?, x);
/// assert!(Permute::new(&[0, 0, 1]).is_err());
/// assert!(to_nhwc.infer(&Tensor::zeros(&[2, 3])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Permute {
    dims: Vec<usize>,
    inverse: Vec<usize>,
    /// The input shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl Permute {
    /// A permutation of `dims.len()` axes; errors unless `dims` is a
    /// permutation of `0..dims.len()`.
    pub fn new(dims: &[usize]) -> Result<Self> {
        let mut inverse = vec![usize::MAX; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            if d >= dims.len() || inverse[d] != usize::MAX {
                return Err(LayerError::config(
                    NAME,
                    format!("dims {dims:?} must be a permutation of 0..{}", dims.len()),
                ));
            }
            inverse[d] = i;
        }
        Ok(Permute {
            dims: dims.to_vec(),
            inverse,
            cache: None,
        })
    }

    /// The permutation.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    fn check(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != self.dims.len() {
            return Err(LayerError::input_shape(
                NAME,
                format!("{} axes", self.dims.len()),
                shape,
            ));
        }
        Ok(())
    }

    fn apply(x: &Tensor, dims: &[usize]) -> Tensor {
        Tensor::from_array(x.view().permuted_axes(dims.to_vec()).to_owned())
    }
}

impl Layer for Permute {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x.shape())?;
        Ok(Self::apply(x, &self.dims))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.infer(x)?;
        self.cache = Some(x.shape().to_vec());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(shape) = &self.cache {
            check_grad(NAME, grad_out, &self.output_shape(shape)?)?;
        }
        take_cache(&mut self.cache, NAME)?;
        Ok(Self::apply(grad_out, &self.inverse))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)?;
        Ok(self.dims.iter().map(|&d| input_shape[d]).collect())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Permute {
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
    fn gradient_and_round_trip() {
        check_layer(
            &mut Permute::new(&[0, 2, 3, 1]).unwrap(),
            &random(&[2, 3, 2, 4], 0),
        );
        check_layer(&mut Permute::new(&[1, 0]).unwrap(), &random(&[3, 5], 1));
        let x = random(&[2, 3, 4, 5], 2);
        let there = Permute::new(&[0, 2, 3, 1]).unwrap().infer(&x).unwrap();
        let back = Permute::new(&[0, 3, 1, 2]).unwrap().infer(&there).unwrap();
        assert_eq!(back, x);
        assert_eq!(there.at(&[1, 2, 3, 0]), x.at(&[1, 0, 2, 3]));
    }

    #[test]
    fn errors() {
        assert!(Permute::new(&[0, 2]).is_err());
        let mut p = Permute::new(&[1, 0]).unwrap();
        assert!(p.infer(&Tensor::zeros(&[2, 3, 4])).is_err());
        assert!(p.backward(&Tensor::zeros(&[3, 2])).is_err());
        p.forward(&Tensor::zeros(&[2, 3])).unwrap();
        assert!(p.backward(&Tensor::zeros(&[2, 3])).is_err());
    }
}
