//! Layer scale: a learned per-feature (or per-channel) multiplier.
//!
//! PyTorch equivalent: timm's `LayerScale` (`ls1.gamma` in ViT, `gamma` in
//! ConvNeXt) and torchvision's ConvNeXt `layer_scale` parameter. Shapes: any
//! -> the same.

use convnet_tensor::{numel, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::param::Param;
use crate::util::{check_grad, last_axis, nchw, take_cache, tensor};

const NAME: &str = "LayerScale";

/// Which axis a [`LayerScale`] scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleAxis {
    /// The last axis of `[..., D]`; `gamma` is `[D]` (timm's ViT and
    /// channels-last ConvNeXt).
    Last,
    /// The channel axis of `[N, C, H, W]`; `gamma` is `[C, 1, 1]`
    /// (torchvision's ConvNeXt `layer_scale`).
    Channels,
}

/// `y = gamma ⊙ x`, `gamma` learned per feature and broadcast over the other
/// axes; initialised to a small constant (`1e-6` in ConvNeXt, `1e-5` in
/// CaiT/DeiT III) so that a residual branch starts near the identity.
///
/// The parameter is named `gamma` (timm); [`LayerScale::with_param_name`]
/// renames it (torchvision's ConvNeXt block stores it as `layer_scale`
/// directly on the block: give the layer the name `""` in the block and the
/// parameter the name `layer_scale`).
///
/// PyTorch equivalent: timm's `LayerScale` / `x * self.gamma`.
///
/// # Shapes
///
/// - [`ScaleAxis::Last`]: `[..., D]` -> the same
/// - [`ScaleAxis::Channels`]: `[N, C, H, W]` -> the same
///
/// ```
/// use convnet_layers::{Layer, LayerScale};
/// use convnet_tensor::Tensor;
///
/// let mut ls = LayerScale::new(3, 0.5)?;
/// let y = ls.forward(&Tensor::ones(&[2, 3]))?;
/// assert_eq!(y.as_slice(), &[0.5; 6]);
/// ls.backward(&Tensor::ones(&[2, 3]))?;
/// let mut grads = Vec::new();
/// ls.visit_params("ls1", &mut |k, p| grads.push((k.to_string(), p.grad.as_slice().to_vec())));
/// assert_eq!(grads, [("ls1.gamma".to_string(), vec![2.0, 2.0, 2.0])]);
///
/// let cn = LayerScale::channels_first(96, 1e-6)?.with_param_name("layer_scale");
/// assert_eq!(cn.param_shapes(), [("layer_scale".to_string(), vec![96, 1, 1])]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayerScale {
    /// `[D]` or `[C, 1, 1]`.
    pub gamma: Param,
    axis: ScaleAxis,
    param_name: String,
    /// The input of the last `forward`.
    cache: Option<Tensor>,
}

impl LayerScale {
    /// Scales the last axis of size `dim`, `gamma` filled with `init`.
    pub fn new(dim: usize, init: f32) -> Result<Self> {
        Self::build(dim, init, ScaleAxis::Last)
    }

    /// Scales the channels of NCHW input, `gamma` (`[C, 1, 1]`) filled with
    /// `init`.
    pub fn channels_first(channels: usize, init: f32) -> Result<Self> {
        Self::build(channels, init, ScaleAxis::Channels)
    }

    fn build(dim: usize, init: f32, axis: ScaleAxis) -> Result<Self> {
        if dim == 0 || !init.is_finite() {
            return Err(LayerError::config(
                NAME,
                format!("dim ({dim}) must be >= 1 and init ({init}) finite"),
            ));
        }
        let shape: &[usize] = match axis {
            ScaleAxis::Last => &[dim],
            ScaleAxis::Channels => &[dim, 1, 1],
        };
        Ok(LayerScale {
            gamma: Param::new(Tensor::full(shape, init)),
            axis,
            param_name: "gamma".to_string(),
            cache: None,
        })
    }

    /// Renames the parameter (default `gamma`).
    pub fn with_param_name(mut self, name: impl Into<String>) -> Self {
        self.param_name = name.into();
        self
    }

    /// The scaled axis.
    pub fn axis(&self) -> ScaleAxis {
        self.axis
    }

    fn dim(&self) -> usize {
        self.gamma.shape()[0]
    }

    /// Checks the shape; returns `(outer, dim, inner)`: element
    /// `[o, d, i]` is scaled by `gamma[d]`.
    fn layout(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        let d = self.dim();
        match self.axis {
            ScaleAxis::Last => Ok((last_axis(NAME, shape, d)?, d, 1)),
            ScaleAxis::Channels => {
                let [n, _, h, w] = nchw(NAME, shape, Some(d))?;
                Ok((n, d, h * w))
            }
        }
    }
}

impl Layer for LayerScale {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let (_, d, inner) = self.layout(x.shape())?;
        let gamma = self.gamma.value.as_slice();
        let mut y = x.as_slice().to_vec();
        for (i, block) in y.chunks_exact_mut(inner).enumerate() {
            let s = gamma[i % d];
            block.iter_mut().for_each(|v| *v *= s);
        }
        Ok(tensor(x.shape(), y))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.infer(x)?;
        self.cache = Some(x.clone());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(x) = &self.cache {
            check_grad(NAME, grad_out, x.shape())?;
        }
        let x = take_cache(&mut self.cache, NAME)?;
        let (_, d, inner) = self.layout(x.shape())?;
        let gamma = self.gamma.value.as_slice();
        let gg = self.gamma.grad.as_slice_mut();
        let mut gx = grad_out.as_slice().to_vec();
        for (i, (gblock, xblock)) in gx
            .chunks_exact_mut(inner)
            .zip(x.as_slice().chunks_exact(inner))
            .enumerate()
        {
            let k = i % d;
            let mut acc = 0.0f32;
            for (g, &v) in gblock.iter_mut().zip(xblock) {
                acc += *g * v;
                *g *= gamma[k];
            }
            gg[k] += acc;
        }
        debug_assert_eq!(gx.len(), numel(x.shape()));
        Ok(tensor(x.shape(), gx))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.layout(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, &self.param_name, &self.gamma, f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, &self.param_name, &mut self.gamma, f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(LayerScale {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use convnet_tensor::Rng;

    #[test]
    fn gradients_of_both_layouts() {
        let mut rng = Rng::seed_from(0);
        let mut last = LayerScale::new(4, 1.0).unwrap();
        last.gamma.value = Tensor::randn(&[4], 0.0, 1.0, &mut rng);
        check_layer(&mut last, &random(&[2, 3, 4], 1));
        let mut ch = LayerScale::channels_first(3, 1.0).unwrap();
        ch.gamma.value = Tensor::randn(&[3, 1, 1], 0.0, 1.0, &mut rng);
        check_layer(&mut ch, &random(&[2, 3, 2, 2], 2));
    }

    #[test]
    fn values_and_errors() {
        let mut ch = LayerScale::channels_first(2, 1.0).unwrap();
        ch.gamma.value = Tensor::from_vec(&[2, 1, 1], vec![2.0, -1.0]).unwrap();
        let y = ch.infer(&Tensor::ones(&[1, 2, 1, 2])).unwrap();
        assert_eq!(y.as_slice(), &[2.0, 2.0, -1.0, -1.0]);
        assert!(ch.infer(&Tensor::ones(&[1, 3, 1, 2])).is_err());
        assert!(LayerScale::new(3, 1.0)
            .unwrap()
            .infer(&Tensor::ones(&[2, 2]))
            .is_err());
        assert!(LayerScale::new(0, 1.0).is_err());
        assert!(LayerScale::new(2, f32::NAN).is_err());
        assert!(ch.backward(&Tensor::ones(&[1, 2, 1, 2])).is_err());
    }
}
