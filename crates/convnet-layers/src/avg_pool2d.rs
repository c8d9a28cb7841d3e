//! 2-D average pooling: the mean of each window.
//!
//! PyTorch equivalent: `torch.nn.AvgPool2d(kernel_size, stride=None,
//! padding=0, ceil_mode=False, count_include_pad=True)`. Shapes:
//! `[N, C, H, W]` -> `[N, C, OH, OW]`.

use convnet_tensor::kernels::pool::{avg_pool2d_backward, avg_pool2d_forward};
use convnet_tensor::{Pool2dGeometry, Tensor};

use crate::error::Result;
use crate::layer::Layer;
use crate::max_pool2d::Pool2dConfig;
use crate::util::{kernel, take_cache_for, tensor};

const NAME: &str = "AvgPool2d";

/// Average pooling over `kernel_size` windows. With `count_include_pad`
/// (PyTorch's default) the divisor counts the padded positions of a window,
/// otherwise only its real input elements; the overhang of a ceil-mode
/// window beyond the padding never counts.
///
/// PyTorch equivalent: `torch.nn.AvgPool2d` (without `divisor_override`);
/// LeNet-5's original subsampling, and GoogLeNet's final 7×7 pooling.
///
/// # Shapes
///
/// - input: `[N, C, H, W]`
/// - output: `[N, C, OH, OW]`, as [`crate::MaxPool2d`]
///
/// ```
/// use convnet_layers::{AvgPool2d, Layer, Pool2dConfig};
/// use convnet_tensor::Tensor;
/// let mut pool = AvgPool2d::new(Pool2dConfig::new(2))?;
/// let x = Tensor::from_vec(&[1, 1, 2, 4], vec![1., 3., 0., 0., 5., 7., 4., 8.])?;
/// let y = pool.forward(&x)?;
/// assert_eq!(y.as_slice(), &[4., 3.]);
/// let g = pool.backward(&Tensor::ones(&[1, 1, 1, 2]))?;
/// assert!(g.as_slice().iter().all(|&v| v == 0.25));
/// // ceil mode and padding not counted:
/// let p = AvgPool2d::new(Pool2dConfig::new(3).stride(2).padding(1).ceil_mode(true))?
///     .count_include_pad(false);
/// assert_eq!(p.output_shape(&[1, 1, 6, 6])?, vec![1, 1, 4, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AvgPool2d {
    config: Pool2dConfig,
    count_include_pad: bool,
    /// The geometry of the last `forward`.
    cache: Option<Pool2dGeometry>,
}

impl AvgPool2d {
    /// An average-pooling layer counting the padding (PyTorch's default);
    /// errors on a zero window or stride, or padding over half the window.
    pub fn new(config: Pool2dConfig) -> Result<Self> {
        config.validate(NAME)?;
        Ok(AvgPool2d {
            config,
            count_include_pad: true,
            cache: None,
        })
    }

    /// Whether padded positions count in the divisor.
    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Pool2dConfig {
        &self.config
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, Pool2dGeometry)> {
        let g = self.config.geometry(NAME, x.shape())?;
        let out_shape = g.output_shape();
        let mut y = vec![0.0f32; out_shape.iter().product()];
        kernel(
            NAME,
            avg_pool2d_forward(&mut y, x.as_slice(), &g, self.count_include_pad),
        )?;
        Ok((tensor(&out_shape, y), g))
    }
}

impl Layer for AvgPool2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.compute(x)?.0)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, g) = self.compute(x)?;
        self.cache = Some(g);
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let g = take_cache_for(&mut self.cache, NAME, grad_out, |g| {
            g.output_shape().to_vec()
        })?;
        let mut grad_in = Tensor::zeros(&g.input_shape());
        kernel(
            NAME,
            avg_pool2d_backward(
                grad_in.as_slice_mut(),
                grad_out.as_slice(),
                &g,
                self.count_include_pad,
            ),
        )?;
        Ok(grad_in)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self
            .config
            .geometry(NAME, input_shape)?
            .output_shape()
            .to_vec())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(AvgPool2d {
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
    fn gradients_for_several_geometries() {
        for (cfg, include) in [
            (Pool2dConfig::new(2), true),
            (Pool2dConfig::new(3).stride(2).padding(1), true),
            (Pool2dConfig::new(3).stride(2).padding(1), false),
            (Pool2dConfig::new(3).stride(2).ceil_mode(true), true),
            (
                Pool2dConfig::new(3).stride(2).padding(1).ceil_mode(true),
                false,
            ),
        ] {
            let mut p = AvgPool2d::new(cfg).unwrap().count_include_pad(include);
            check_layer(&mut p, &random(&[2, 2, 6, 7], 3));
        }
    }

    #[test]
    fn padding_divisor_and_errors() {
        // A 2x2 input of ones, 3x3 window, padding 1, stride 2: one output
        // per corner window. Counting the padding: 4 ones / 9; not: 4 / 4.
        let x = Tensor::ones(&[1, 1, 2, 2]);
        let cfg = Pool2dConfig::new(3).stride(2).padding(1);
        let with = AvgPool2d::new(cfg).unwrap();
        let without = AvgPool2d::new(cfg).unwrap().count_include_pad(false);
        assert!((with.infer(&x).unwrap().as_slice()[0] - 4.0 / 9.0).abs() < 1e-6);
        assert_eq!(without.infer(&x).unwrap().as_slice()[0], 1.0);
        let mut p = with.clone();
        let x = random(&[1, 2, 5, 5], 0);
        assert_eq!(p.infer(&x).unwrap(), p.forward(&x).unwrap());
        for bad in [vec![1, 2, 5], vec![1, 2, 0, 0]] {
            assert!(p.infer(&Tensor::zeros(&bad)).is_err(), "{bad:?}");
        }
        assert!(AvgPool2d::new(Pool2dConfig::new(2).padding(2)).is_err());
        assert!(p.backward(&Tensor::zeros(&[1, 2, 2, 2])).is_err());
    }
}
