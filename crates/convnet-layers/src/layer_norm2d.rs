//! Channels-first layer normalisation of `[N, C, H, W]`: each pixel is
//! normalised over its channels.
//!
//! PyTorch equivalent: torchvision's `LayerNorm2d` (ConvNeXt's stem and
//! downsampling layers), i.e. `LayerNorm(C)` applied to the NHWC permutation.
//! Shapes: `[N, C, H, W]` -> the same.

use convnet_tensor::kernels::norm::{
    layer_norm_channels_first_backward, layer_norm_channels_first_forward,
};
use convnet_tensor::Tensor;

use crate::error::Result;
use crate::layer::Layer;
use crate::layer_norm::{Affine, LayerNormConfig, NormCache};
use crate::param::Param;
use crate::util::{kernel, nchw, take_cache_for, tensor};

const NAME: &str = "LayerNorm2d";

/// Layer normalisation over the channel axis of an NCHW tensor: at every
/// `(n, h, w)`, the `C` values are normalised by their mean and (biased)
/// variance, then scaled and shifted per channel:
/// `y[n, c, h, w] = (x − μ_{n,h,w}) / sqrt(σ²_{n,h,w} + eps) · weight_c + bias_c`.
/// No permutation is needed: the kernel works on NCHW directly.
///
/// Parameters `weight` (ones) and `bias` (zeros), `[C]` each.
///
/// PyTorch equivalent: torchvision's `torchvision.models.convnext.LayerNorm2d`
/// (and timm's `LayerNorm2d`).
///
/// # Shapes
///
/// - input: `[N, C, H, W]`
/// - output: the same
///
/// ```
/// use convnet_layers::{Layer, LayerNorm2d, LayerNormConfig};
/// use convnet_tensor::Tensor;
///
/// let mut ln = LayerNorm2d::with_config(LayerNormConfig::new(3).eps(1e-6))?;
/// let x = Tensor::arange(&[2, 3, 4, 4]);
/// let y = ln.forward(&x)?;
/// // Each pixel's 3 channels (p, p + 16, p + 32) become (-1.22, 0, 1.22).
/// assert!((y.at(&[0, 0, 1, 1]) + 1.224_744_9).abs() < 1e-4);
/// assert!(y.at(&[1, 1, 3, 2]).abs() < 1e-5);
/// assert_eq!(ln.backward(&Tensor::ones(&[2, 3, 4, 4]))?.shape(), x.shape());
/// assert!(ln.infer(&Tensor::zeros(&[2, 4, 4, 3])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayerNorm2d {
    affine: Affine,
    config: LayerNormConfig,
    cache: Option<NormCache>,
}

impl LayerNorm2d {
    /// Channels-first LayerNorm over `channels`, `eps = 1e-5` (torchvision's
    /// ConvNeXt passes `1e-6`: use [`LayerNorm2d::with_config`]).
    pub fn new(channels: usize) -> Result<Self> {
        Self::with_config(LayerNormConfig::new(channels))
    }

    /// A layer from a configuration (`normalized_shape` is the channel
    /// count); errors on zero channels or a negative or non-finite `eps`.
    pub fn with_config(config: LayerNormConfig) -> Result<Self> {
        config.validate(NAME)?;
        Ok(LayerNorm2d {
            affine: Affine::new(config.normalized_shape, config.elementwise_affine),
            config,
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LayerNormConfig {
        &self.config
    }

    /// The scale `[C]`, if affine.
    pub fn weight(&self) -> Option<&Param> {
        self.affine.weight.as_ref()
    }

    /// The shift `[C]`, if affine.
    pub fn bias(&self) -> Option<&Param> {
        self.affine.bias.as_ref()
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
        let shape = nchw(NAME, x.shape(), Some(self.config.normalized_shape))?;
        let positions = shape[0] * shape[2] * shape[3];
        let (w, b) = self.affine.values();
        let mut y = vec![0.0f32; x.len()];
        let (mut mean, mut invstd) = (vec![0.0f32; positions], vec![0.0f32; positions]);
        kernel(
            NAME,
            layer_norm_channels_first_forward(
                &mut y,
                &mut mean,
                &mut invstd,
                x.as_slice(),
                &w,
                &b,
                shape,
                self.config.eps,
            ),
        )?;
        Ok((tensor(&shape, y), mean, invstd))
    }
}

impl Layer for LayerNorm2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.compute(x)?.0)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, save_mean, save_invstd) = self.compute(x)?;
        self.cache = Some(NormCache {
            input: x.clone(),
            save_mean,
            save_invstd,
        });
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let cache = take_cache_for(&mut self.cache, NAME, grad_out, |c| {
            c.input.shape().to_vec()
        })?;
        let shape = nchw(NAME, cache.input.shape(), None)?;
        let (w, _) = self.affine.values();
        let mut grad_in = vec![0.0f32; cache.input.len()];
        let r = self.affine.with_grads(|gw, gb| {
            layer_norm_channels_first_backward(
                &mut grad_in,
                gw,
                gb,
                grad_out.as_slice(),
                cache.input.as_slice(),
                &w,
                &cache.save_mean,
                &cache.save_invstd,
                shape,
            )
        });
        kernel(NAME, r)?;
        Ok(tensor(&shape, grad_in))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(nchw(NAME, input_shape, Some(self.config.normalized_shape))?.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.affine.visit(prefix, f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.affine.visit_mut(prefix, f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(LayerNorm2d {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::LayerNorm;
    use convnet_tensor::Rng;

    fn perturbed(c: usize, seed: u64) -> LayerNorm2d {
        let mut ln = LayerNorm2d::new(c).unwrap();
        let mut rng = Rng::seed_from(seed);
        ln.affine.weight.as_mut().unwrap().value = Tensor::rand_uniform(&[c], 0.5, 1.5, &mut rng);
        ln.affine.bias.as_mut().unwrap().value = Tensor::rand_uniform(&[c], -0.5, 0.5, &mut rng);
        ln
    }

    #[test]
    fn gradient() {
        check_layer(&mut perturbed(3, 0), &random(&[2, 3, 2, 3], 1));
    }

    #[test]
    fn equals_layer_norm_on_the_nhwc_permutation() {
        let x = random(&[2, 3, 2, 2], 4);
        let ln2d = perturbed(3, 5);
        let mut ln = LayerNorm::new(3).unwrap();
        ln.affine = ln2d.affine.clone();
        let y = ln2d.infer(&x).unwrap();
        let nhwc = Tensor::from_array(x.view().permuted_axes(vec![0, 2, 3, 1]).to_owned());
        let z = ln.infer(&nhwc).unwrap();
        let back = Tensor::from_array(z.view().permuted_axes(vec![0, 3, 1, 2]).to_owned());
        assert!(y.allclose(&back, 1e-5, 1e-6));
    }

    #[test]
    fn errors() {
        let mut ln = LayerNorm2d::new(3).unwrap();
        for bad in [vec![2, 3], vec![2, 4, 2, 2], vec![2, 3, 2]] {
            let e = ln.infer(&Tensor::zeros(&bad)).unwrap_err();
            assert!(e.to_string().contains("LayerNorm2d"), "{e}");
        }
        assert!(LayerNorm2d::new(0).is_err());
        assert!(ln.backward(&Tensor::zeros(&[1, 3, 1, 1])).is_err());
    }
}
