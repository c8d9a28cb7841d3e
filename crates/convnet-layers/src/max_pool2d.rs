//! 2-D max pooling: the maximum of each window.
//!
//! PyTorch equivalent: `torch.nn.MaxPool2d(kernel_size, stride=None,
//! padding=0, ceil_mode=False)`. Shapes: `[N, C, H, W]` -> `[N, C, OH, OW]`.

use convnet_tensor::kernels::pool::{max_pool2d_backward, max_pool2d_forward};
use convnet_tensor::{Pool2dGeometry, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{kernel, nchw, take_cache_for, tensor, IntoPair};

const NAME: &str = "MaxPool2d";

/// Configuration of a [`MaxPool2d`] (and, with `count_include_pad`, of an
/// [`crate::AvgPool2d`]): window, stride (the window by default), implicit
/// padding, ceil mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dConfig {
    /// Window `(height, width)`.
    pub kernel_size: (usize, usize),
    /// Step between windows (PyTorch's default: the window size).
    pub stride: (usize, usize),
    /// Implicit padding on each side, at most half the window.
    pub padding: (usize, usize),
    /// Round the output size up instead of down (GoogLeNet uses it).
    pub ceil_mode: bool,
}

impl Pool2dConfig {
    /// A `kernel_size` window with stride `kernel_size`, no padding, floor
    /// mode.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        let k = kernel_size.into_pair();
        Pool2dConfig {
            kernel_size: k,
            stride: k,
            padding: (0, 0),
            ceil_mode: false,
        }
    }

    /// The stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// The padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// The ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Errors on a zero window or stride, or padding over half the window.
    pub(crate) fn validate(&self, layer: &str) -> Result<()> {
        let (k, s, p) = (self.kernel_size, self.stride, self.padding);
        if k.0 == 0 || k.1 == 0 || s.0 == 0 || s.1 == 0 {
            return Err(LayerError::config(
                layer,
                format!("kernel_size {k:?} and stride {s:?} must be >= 1"),
            ));
        }
        if 2 * p.0 > k.0 || 2 * p.1 > k.1 {
            return Err(LayerError::config(
                layer,
                format!("padding {p:?} must be at most half of kernel_size {k:?}"),
            ));
        }
        Ok(())
    }

    /// The geometry for an input shape, or an error naming the layer.
    pub(crate) fn geometry(&self, layer: &str, shape: &[usize]) -> Result<Pool2dGeometry> {
        nchw(layer, shape, None)?;
        kernel(
            layer,
            Pool2dGeometry::new(
                shape,
                self.kernel_size,
                self.stride,
                self.padding,
                self.ceil_mode,
            ),
        )
    }
}

/// Max pooling over `kernel_size` windows: each output is the largest value
/// of its window (padded positions never win); the gradient flows to that
/// position only.
///
/// PyTorch equivalent: `torch.nn.MaxPool2d` (without dilation).
///
/// # Shapes
///
/// - input: `[N, C, H, W]`
/// - output: `[N, C, OH, OW]`, `OH = floor((H + 2·pad − k) / stride) + 1`
///   (rounded up in ceil mode), from [`Pool2dGeometry`]
///
/// ```
/// use convnet_layers::{Layer, MaxPool2d, Pool2dConfig};
/// use convnet_tensor::Tensor;
/// // The lecture: 2x2 max-pooling with stride 2 of a 4x4 image.
/// let mut pool = MaxPool2d::new(Pool2dConfig::new(2))?;
/// let x = Tensor::from_vec(&[1, 1, 4, 4], (1..=16).map(|v| v as f32).collect())?;
/// let y = pool.forward(&x)?;
/// assert_eq!(y.as_slice(), &[6., 8., 14., 16.]);
/// let g = pool.backward(&Tensor::ones(&[1, 1, 2, 2]))?;
/// assert_eq!(g.at(&[0, 0, 1, 1]), 1.0); // the position of 6
/// assert_eq!(g.at(&[0, 0, 0, 0]), 0.0);
/// assert!(pool.infer(&Tensor::zeros(&[1, 16])).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    config: Pool2dConfig,
    /// The argmax of the last `forward` and its geometry.
    cache: Option<(Vec<u32>, Pool2dGeometry)>,
}

impl MaxPool2d {
    /// A max-pooling layer; errors on a zero window or stride, or padding
    /// over half the window.
    pub fn new(config: Pool2dConfig) -> Result<Self> {
        config.validate(NAME)?;
        Ok(MaxPool2d {
            config,
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Pool2dConfig {
        &self.config
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, Vec<u32>, Pool2dGeometry)> {
        let g = self.config.geometry(NAME, x.shape())?;
        let out_shape = g.output_shape();
        let n = out_shape.iter().product();
        let mut y = vec![0.0f32; n];
        let mut argmax = vec![0u32; n];
        kernel(
            NAME,
            max_pool2d_forward(&mut y, &mut argmax, x.as_slice(), &g),
        )?;
        Ok((tensor(&out_shape, y), argmax, g))
    }
}

impl Layer for MaxPool2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        // No argmax in inference.
        let g = self.config.geometry(NAME, x.shape())?;
        let out_shape = g.output_shape();
        let mut y = vec![0.0f32; out_shape.iter().product()];
        kernel(
            NAME,
            convnet_tensor::kernels::pool::max_pool2d_forward_infer(&mut y, x.as_slice(), &g),
        )?;
        Ok(tensor(&out_shape, y))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, argmax, g) = self.compute(x)?;
        self.cache = Some((argmax, g));
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let (argmax, g) = take_cache_for(&mut self.cache, NAME, grad_out, |(_, g)| {
            g.output_shape().to_vec()
        })?;
        let mut grad_in = Tensor::zeros(&g.input_shape());
        kernel(
            NAME,
            max_pool2d_backward(grad_in.as_slice_mut(), grad_out.as_slice(), &argmax, &g),
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
        Some(Box::new(MaxPool2d {
            config: self.config,
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random_distinct};

    #[test]
    fn gradients_for_several_geometries() {
        for cfg in [
            Pool2dConfig::new(2),
            Pool2dConfig::new(3).stride(2),
            Pool2dConfig::new(3).stride(2).padding(1),
            Pool2dConfig::new(3).stride(2).ceil_mode(true),
            Pool2dConfig::new((2, 3)).stride((1, 2)),
        ] {
            let mut p = MaxPool2d::new(cfg).unwrap();
            check_layer(&mut p, &random_distinct(&[2, 2, 6, 7], 3));
        }
    }

    #[test]
    fn shapes_config_and_errors() {
        let p = MaxPool2d::new(Pool2dConfig::new(3).stride(2).ceil_mode(true)).unwrap();
        assert_eq!(
            p.output_shape(&[1, 64, 112, 112]).unwrap(),
            vec![1, 64, 56, 56]
        );
        let x = random_distinct(&[1, 2, 5, 5], 0);
        let mut q = p.clone();
        assert_eq!(q.infer(&x).unwrap(), q.forward(&x).unwrap());
        for bad in [vec![1, 2, 5], vec![1, 2, 1, 1], vec![2, 25]] {
            let e = p.infer(&Tensor::zeros(&bad)).unwrap_err();
            assert!(e.to_string().contains("MaxPool2d"), "{e}");
        }
        assert!(MaxPool2d::new(Pool2dConfig::new(0)).is_err());
        assert!(MaxPool2d::new(Pool2dConfig::new(2).stride(0)).is_err());
        assert!(MaxPool2d::new(Pool2dConfig::new(2).padding(2)).is_err());
        assert!(q.backward(&Tensor::zeros(&[1, 2, 2, 2])).is_ok());
        assert!(q.backward(&Tensor::zeros(&[1, 2, 2, 2])).is_err());
        q.forward(&x).unwrap();
        assert!(q.backward(&Tensor::zeros(&[1, 2, 3, 3])).is_err());
        assert!(q.backward(&Tensor::zeros(&[1, 2, 2, 2])).is_ok());
    }
}
