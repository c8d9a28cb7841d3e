//! Softmax along one axis: `y_i = e^(x_i) / Σ_j e^(x_j)`.
//!
//! PyTorch equivalent: `torch.nn.Softmax(dim)`. Shapes: any with the axis ->
//! the same.

use convnet_tensor::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxGeometry};
use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{kernel, take_cache_for};

const NAME: &str = "Softmax";

/// Softmax along axis `dim` (negative counts from the end), computed stably
/// (the maximum is subtracted first). Mostly used at inference, to turn
/// logits into probabilities; it has a backward pass too (reading the cached
/// output). For training a classifier, the loss should combine log-softmax and
/// the negative log-likelihood instead (the train crate's cross-entropy).
///
/// PyTorch equivalent: `torch.nn.Softmax(dim)`.
///
/// # Shapes
///
/// Any shape that has axis `dim` -> the same shape, e.g. `[N, classes]` with
/// `dim = -1` (or `1`), `[N, C, H, W]` with `dim = 1` (per pixel).
///
/// ```
/// use convnet_layers::{Layer, Softmax};
/// use convnet_tensor::Tensor;
/// let sm = Softmax::new(-1);
/// let p = sm.infer(&Tensor::from_vec(&[1, 3], vec![1.0, 2.0, 3.0])?)?;
/// assert!((p.sum() - 1.0).abs() < 1e-6);
/// assert!((p.as_slice()[2] - 0.665_241_3).abs() < 1e-6);
/// assert!(Softmax::new(2).infer(&Tensor::zeros(&[1, 3])).is_err()); // no axis 2
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Softmax {
    dim: isize,
    /// The output of the last `forward` and its geometry.
    cache: Option<(Tensor, SoftmaxGeometry)>,
}

impl Softmax {
    /// Softmax along `dim` (negative counts from the end: `-1` is the last
    /// axis).
    pub fn new(dim: isize) -> Self {
        Softmax { dim, cache: None }
    }

    /// The axis, as given.
    pub fn dim(&self) -> isize {
        self.dim
    }

    fn geometry(&self, shape: &[usize]) -> Result<SoftmaxGeometry> {
        let rank = shape.len() as isize;
        let axis = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        };
        if axis < 0 || axis >= rank {
            return Err(LayerError::input_shape(
                NAME,
                format!("a shape with axis {}", self.dim),
                shape,
            ));
        }
        kernel(NAME, SoftmaxGeometry::new(shape, axis as usize))
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, SoftmaxGeometry)> {
        let g = self.geometry(x.shape())?;
        let mut y = Tensor::zeros(x.shape());
        kernel(NAME, softmax_forward(y.as_slice_mut(), x.as_slice(), &g))?;
        Ok((y, g))
    }
}

impl Layer for Softmax {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.compute(x)?.0)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, g) = self.compute(x)?;
        self.cache = Some((y.clone(), g));
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let (y, g) = take_cache_for(&mut self.cache, NAME, grad_out, |(y, _)| y.shape().to_vec())?;
        let mut grad_in = Tensor::zeros(y.shape());
        kernel(
            NAME,
            softmax_backward(
                grad_in.as_slice_mut(),
                grad_out.as_slice(),
                y.as_slice(),
                &g,
            ),
        )?;
        Ok(grad_in)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.geometry(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Softmax::new(self.dim)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn gradient_on_last_and_channel_axes() {
        check_layer(&mut Softmax::new(-1), &random(&[3, 5], 0));
        check_layer(&mut Softmax::new(1), &random(&[2, 3, 2, 2], 1));
    }

    #[test]
    fn rows_sum_to_one_infer_equals_forward_and_errors() {
        let x = random(&[4, 6], 2);
        let mut sm = Softmax::new(1);
        let y = sm.forward(&x).unwrap();
        assert_eq!(y, sm.infer(&x).unwrap());
        for row in y.as_slice().chunks(6) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        for bad in [vec![4], vec![]] {
            assert!(sm.infer(&Tensor::zeros(&bad)).is_err(), "{bad:?}");
        }
        assert!(Softmax::new(-3).output_shape(&[4, 6]).is_err());
        assert!(sm.backward(&Tensor::zeros(&[4, 5])).is_err());
    }
}
