//! 2-D adaptive average pooling: averages to a fixed output size whatever the
//! input size.
//!
//! PyTorch equivalent: `torch.nn.AdaptiveAvgPool2d(output_size)`. Shapes:
//! `[N, C, H, W]` -> `[N, C, OH, OW]`.

use convnet_tensor::kernels::pool::{adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward};
use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, kernel, nchw, take_cache, tensor, IntoPair};

const NAME: &str = "AdaptiveAvgPool2d";

/// Averages each `[H, W]` plane down to `output_size`: output row `i` of
/// `OH` averages input rows `floor(i·H/OH) .. ceil((i+1)·H/OH)` (windows
/// overlap when `H` is not a multiple of `OH`), and likewise for columns.
/// `output_size = 1` is global average pooling.
///
/// PyTorch equivalent: `torch.nn.AdaptiveAvgPool2d` (ResNet's `avgpool`,
/// VGG's and AlexNet's `avgpool` to 7×7 or 6×6).
///
/// # Shapes
///
/// - input: `[N, C, H, W]`, `H, W >= 1`
/// - output: `[N, C, OH, OW]`
///
/// ```
/// use convnet_layers::{AdaptiveAvgPool2d, Layer};
/// use convnet_tensor::Tensor;
/// let mut gap = AdaptiveAvgPool2d::new(1)?;
/// let x = Tensor::arange(&[2, 3, 4, 4]);
/// let y = gap.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 3, 1, 1]);
/// assert_eq!(y.as_slice()[0], 7.5); // mean of 0..16
/// assert_eq!(gap.backward(&y)?.shape(), &[2, 3, 4, 4]);
/// assert_eq!(AdaptiveAvgPool2d::new((7, 7))?.output_shape(&[1, 512, 13, 13])?, vec![1, 512, 7, 7]);
/// assert!(AdaptiveAvgPool2d::new(0).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveAvgPool2d {
    output_size: (usize, usize),
    /// The input shape of the last `forward`.
    cache: Option<[usize; 4]>,
}

impl AdaptiveAvgPool2d {
    /// Adaptive average pooling to `output_size` (`n` or `(h, w)`); errors on
    /// a zero size.
    pub fn new(output_size: impl IntoPair) -> Result<Self> {
        let output_size = output_size.into_pair();
        if output_size.0 == 0 || output_size.1 == 0 {
            return Err(LayerError::config(
                NAME,
                format!("output_size {output_size:?} must be at least 1x1"),
            ));
        }
        Ok(AdaptiveAvgPool2d {
            output_size,
            cache: None,
        })
    }

    /// The output size `(OH, OW)`.
    pub fn output_size(&self) -> (usize, usize) {
        self.output_size
    }

    fn shapes(&self, shape: &[usize]) -> Result<([usize; 4], [usize; 4])> {
        let [n, c, h, w] = nchw(NAME, shape, None)?;
        if h == 0 || w == 0 {
            return Err(LayerError::input_shape(
                NAME,
                "[N, C, H, W] with H, W >= 1",
                shape,
            ));
        }
        Ok(([n, c, h, w], [n, c, self.output_size.0, self.output_size.1]))
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, [usize; 4])> {
        let (in_shape, out_shape) = self.shapes(x.shape())?;
        let mut y = vec![0.0f32; out_shape.iter().product()];
        kernel(
            NAME,
            adaptive_avg_pool2d_forward(&mut y, x.as_slice(), in_shape, self.output_size),
        )?;
        Ok((tensor(&out_shape, y), in_shape))
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.compute(x)?.0)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, in_shape) = self.compute(x)?;
        self.cache = Some(in_shape);
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(in_shape) = &self.cache {
            let [n, c, _, _] = *in_shape;
            check_grad(
                NAME,
                grad_out,
                &[n, c, self.output_size.0, self.output_size.1],
            )?;
        }
        let in_shape = take_cache(&mut self.cache, NAME)?;
        let mut grad_in = Tensor::zeros(&in_shape);
        kernel(
            NAME,
            adaptive_avg_pool2d_backward(
                grad_in.as_slice_mut(),
                grad_out.as_slice(),
                in_shape,
                self.output_size,
            ),
        )?;
        Ok(grad_in)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.shapes(input_shape)?.1.to_vec())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(AdaptiveAvgPool2d {
            output_size: self.output_size,
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn gradients_divisible_overlapping_and_upsampling() {
        for (size, input) in [
            ((1, 1), (4, 4)),
            ((2, 3), (5, 7)),
            ((3, 3), (7, 5)),
            ((4, 4), (3, 3)),
        ] {
            let mut p = AdaptiveAvgPool2d::new(size).unwrap();
            check_layer(&mut p, &random(&[2, 2, input.0, input.1], 1));
        }
    }

    #[test]
    fn overlapping_windows_by_hand_and_errors() {
        // H = 3 to OH = 2: rows 0..2 and 1..3.
        let x = Tensor::from_vec(&[1, 1, 3, 1], vec![1., 2., 4.]).unwrap();
        let mut p = AdaptiveAvgPool2d::new((2, 1)).unwrap();
        assert_eq!(p.infer(&x).unwrap().as_slice(), &[1.5, 3.0]);
        assert_eq!(p.infer(&x).unwrap(), p.forward(&x).unwrap());
        for bad in [vec![1, 3, 1], vec![1, 1, 0, 3]] {
            assert!(p.infer(&Tensor::zeros(&bad)).is_err(), "{bad:?}");
        }
        assert!(p.backward(&Tensor::zeros(&[1, 1, 2, 2])).is_err());
    }
}
