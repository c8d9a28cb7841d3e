//! Layer normalisation over the last axis.
//!
//! PyTorch equivalent: `torch.nn.LayerNorm(normalized_shape, eps=1e-5,
//! elementwise_affine=True)` with an integer `normalized_shape`. Shapes:
//! `[..., D]` -> the same.

use convnet_tensor::kernels::norm::{layer_norm_backward, layer_norm_forward};
use std::marker::PhantomData;

use convnet_tensor::{Result as TensorResult, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::{visit_weight_bias, visit_weight_bias_mut, Layer};
use crate::param::Param;
use crate::util::{check_eps, kernel, last_axis, take_cache_for, tensor};

/// Configuration of a [`LayerNorm`] or a [`crate::LayerNorm2d`], with
/// PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    /// Size `D` of the normalised axis (the last axis for [`LayerNorm`], the
    /// channels for [`crate::LayerNorm2d`]).
    pub normalized_shape: usize,
    /// Added to the variance before the square root (default `1e-5`;
    /// ConvNeXt and ViT use `1e-6`).
    pub eps: f32,
    /// Whether the layer has a learned `weight` and `bias` (default `true`).
    pub elementwise_affine: bool,
}

impl LayerNormConfig {
    /// `normalized_shape` features, `eps = 1e-5`, affine.
    pub fn new(normalized_shape: usize) -> Self {
        LayerNormConfig {
            normalized_shape,
            eps: 1e-5,
            elementwise_affine: true,
        }
    }

    /// The epsilon.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// With or without `weight` and `bias`.
    pub fn elementwise_affine(mut self, affine: bool) -> Self {
        self.elementwise_affine = affine;
        self
    }

    /// Errors on zero features or a negative or non-finite `eps`.
    pub(crate) fn validate(&self, layer: &str) -> Result<()> {
        if self.normalized_shape == 0 {
            return Err(LayerError::config(layer, "normalized_shape must be >= 1"));
        }
        check_eps(layer, self.eps)
    }
}

/// The learned scale and shift of a normalisation layer, and their
/// stand-ins (ones and zeros) when it has none.
#[derive(Debug, Clone)]
pub(crate) struct Affine {
    pub(crate) weight: Option<Param>,
    pub(crate) bias: Option<Param>,
    dim: usize,
}

impl Affine {
    pub(crate) fn new(dim: usize, affine: bool) -> Self {
        Affine {
            weight: affine.then(|| Param::new(Tensor::ones(&[dim]))),
            bias: affine.then(|| Param::new(Tensor::zeros(&[dim]))),
            dim,
        }
    }

    /// The weight and bias values, or ones and zeros.
    pub(crate) fn values(&self) -> (Vec<f32>, Vec<f32>) {
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => (w.value.as_slice().to_vec(), b.value.as_slice().to_vec()),
            _ => (vec![1.0; self.dim], vec![0.0; self.dim]),
        }
    }

    /// Runs `f` with the weight and bias gradients (scratch buffers when
    /// there are no parameters).
    pub(crate) fn with_grads<T>(&mut self, f: impl FnOnce(&mut [f32], &mut [f32]) -> T) -> T {
        match (&mut self.weight, &mut self.bias) {
            (Some(w), Some(b)) => f(w.grad.as_slice_mut(), b.grad.as_slice_mut()),
            _ => f(&mut vec![0.0; self.dim], &mut vec![0.0; self.dim]),
        }
    }

    pub(crate) fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(w) = &self.weight {
            visit_weight_bias(prefix, w, self.bias.as_ref(), f)
        }
    }

    pub(crate) fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(w) = &mut self.weight {
            visit_weight_bias_mut(prefix, w, self.bias.as_mut(), f)
        }
    }
}

/// What `forward` keeps for `backward`.
#[derive(Debug, Clone)]
pub(crate) struct NormCache {
    pub(crate) input: Tensor,
    pub(crate) save_mean: Vec<f32>,
    pub(crate) save_invstd: Vec<f32>,
}

/// Layer normalisation over the last axis: every row of `D` values is
/// normalised by its own mean and (biased) variance, then scaled and
/// shifted per feature: `y = (x − μ) / sqrt(σ² + eps) · weight + bias`.
/// Training and inference compute the same thing (no running statistics).
///
/// Parameters `weight` (ones) and `bias` (zeros), `[D]` each (absent without
/// `elementwise_affine`).
///
/// PyTorch equivalent: `torch.nn.LayerNorm(D)` (ViT's `norm1`, `norm2`,
/// ConvNeXt's block norm on channels-last data).
///
/// # Shapes
///
/// - input: `[..., D]` (`[N, D]`, tokens `[N, T, D]`, channels-last
///   `[N, H, W, D]`)
/// - output: the same
///
/// ```
/// use convnet_layers::{Layer, LayerNorm, LayerNormConfig};
/// use convnet_tensor::Tensor;
///
/// let mut ln = LayerNorm::new(4)?;
/// let x = Tensor::from_vec(&[1, 2, 4], vec![1., 2., 3., 4., 10., 10., 10., 10.])?;
/// let y = ln.forward(&x)?;
/// // Each row has mean 0 and variance ~1 (a constant row gives zeros).
/// assert!(y.as_slice()[..4].iter().sum::<f32>().abs() < 1e-5);
/// assert_eq!(&y.as_slice()[4..], &[0.0; 4]);
/// assert_eq!(ln.backward(&Tensor::ones(&[1, 2, 4]))?.shape(), &[1, 2, 4]);
/// let vit = LayerNorm::with_config(LayerNormConfig::new(384).eps(1e-6))?;
/// assert_eq!(vit.num_params(), 768);
/// assert!(ln.infer(&Tensor::zeros(&[2, 5])).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type LayerNorm = Norm<LastAxis>;

/// The axis a [`Norm`] normalises over, with its kernels: [`LastAxis`]
/// ([`LayerNorm`]) or [`ChannelsFirst`] ([`crate::LayerNorm2d`]).
pub trait NormAxis: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The layer's name, as PyTorch names the module.
    const NAME: &'static str;
    /// The input shape as the kernels take it.
    type Geometry: Copy;
    /// The checked geometry of an input of `shape` normalised over `dim`
    /// features, or the error naming the shape expected.
    fn geometry(shape: &[usize], dim: usize) -> Result<Self::Geometry>;
    /// How many groups of `dim` values are normalised (one mean each).
    fn groups(g: Self::Geometry) -> usize;
    /// The forward kernel.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        out: &mut [f32],
        mean: &mut [f32],
        invstd: &mut [f32],
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        g: Self::Geometry,
        eps: f32,
    ) -> TensorResult<()>;
    /// The backward kernel.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        grad_in: &mut [f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
        grad_out: &[f32],
        x: &[f32],
        weight: &[f32],
        mean: &[f32],
        invstd: &[f32],
        g: Self::Geometry,
    ) -> TensorResult<()>;
}

/// Normalisation over the last axis (`[..., D]`): [`LayerNorm`].
#[derive(Debug, Clone, Copy)]
pub struct LastAxis;

impl NormAxis for LastAxis {
    const NAME: &'static str = "LayerNorm";
    /// `(rows, dim)`.
    type Geometry = (usize, usize);

    fn geometry(shape: &[usize], dim: usize) -> Result<(usize, usize)> {
        Ok((last_axis(Self::NAME, shape, dim)?, dim))
    }

    fn groups((rows, _): (usize, usize)) -> usize {
        rows
    }

    fn forward(
        out: &mut [f32],
        mean: &mut [f32],
        invstd: &mut [f32],
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        (rows, dim): (usize, usize),
        eps: f32,
    ) -> TensorResult<()> {
        layer_norm_forward(out, mean, invstd, x, weight, bias, rows, dim, eps)
    }

    fn backward(
        grad_in: &mut [f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
        grad_out: &[f32],
        x: &[f32],
        weight: &[f32],
        mean: &[f32],
        invstd: &[f32],
        (rows, dim): (usize, usize),
    ) -> TensorResult<()> {
        layer_norm_backward(
            grad_in,
            grad_weight,
            grad_bias,
            grad_out,
            x,
            weight,
            mean,
            invstd,
            rows,
            dim,
        )
    }
}

/// A layer normalisation over the axis `A` ([`LayerNorm`] over the last
/// axis, [`crate::LayerNorm2d`] over the channels of NCHW data): each
/// group of `D` values is normalised by its mean and (biased) variance,
/// then scaled and shifted per feature. Training and inference compute the
/// same thing (no running statistics).
#[derive(Debug, Clone)]
pub struct Norm<A: NormAxis> {
    pub(crate) affine: Affine,
    config: LayerNormConfig,
    cache: Option<NormCache>,
    axis: PhantomData<A>,
}

impl<A: NormAxis> Norm<A> {
    /// Normalisation over `dim` features (the last axis's size, or the
    /// channel count), PyTorch's defaults (`eps = 1e-5`; torchvision's
    /// ConvNeXt and ViT pass `1e-6`: use [`Norm::with_config`]).
    pub fn new(dim: usize) -> Result<Self> {
        Self::with_config(LayerNormConfig::new(dim))
    }

    /// A layer from a configuration; errors on zero features or a negative
    /// or non-finite `eps`.
    pub fn with_config(config: LayerNormConfig) -> Result<Self> {
        config.validate(A::NAME)?;
        Ok(Norm {
            affine: Affine::new(config.normalized_shape, config.elementwise_affine),
            config,
            cache: None,
            axis: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LayerNormConfig {
        &self.config
    }

    /// The scale `[D]`, if affine.
    pub fn weight(&self) -> Option<&Param> {
        self.affine.weight.as_ref()
    }

    /// The shift `[D]`, if affine.
    pub fn bias(&self) -> Option<&Param> {
        self.affine.bias.as_ref()
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
        let g = A::geometry(x.shape(), self.config.normalized_shape)?;
        let groups = A::groups(g);
        let (w, b) = self.affine.values();
        let mut y = vec![0.0f32; x.len()];
        let (mut mean, mut invstd) = (vec![0.0f32; groups], vec![0.0f32; groups]);
        let r = A::forward(
            &mut y,
            &mut mean,
            &mut invstd,
            x.as_slice(),
            &w,
            &b,
            g,
            self.config.eps,
        );
        kernel(A::NAME, r)?;
        Ok((tensor(x.shape(), y), mean, invstd))
    }
}

impl<A: NormAxis> Layer for Norm<A> {
    fn type_name(&self) -> &'static str {
        A::NAME
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
        let cache = take_cache_for(&mut self.cache, A::NAME, grad_out, |c| {
            c.input.shape().to_vec()
        })?;
        let g = A::geometry(cache.input.shape(), self.config.normalized_shape)?;
        let (w, _) = self.affine.values();
        let mut grad_in = vec![0.0f32; cache.input.len()];
        let r = self.affine.with_grads(|gw, gb| {
            A::backward(
                &mut grad_in,
                gw,
                gb,
                grad_out.as_slice(),
                cache.input.as_slice(),
                &w,
                &cache.save_mean,
                &cache.save_invstd,
                g,
            )
        });
        kernel(A::NAME, r)?;
        Ok(tensor(cache.input.shape(), grad_in))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        A::geometry(input_shape, self.config.normalized_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.affine.visit(prefix, f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.affine.visit_mut(prefix, f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Norm::<A> {
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

    fn perturbed(dim: usize, seed: u64) -> LayerNorm {
        let mut ln = LayerNorm::new(dim).unwrap();
        let mut rng = Rng::seed_from(seed);
        ln.affine.weight.as_mut().unwrap().value = Tensor::rand_uniform(&[dim], 0.5, 1.5, &mut rng);
        ln.affine.bias.as_mut().unwrap().value = Tensor::rand_uniform(&[dim], -0.5, 0.5, &mut rng);
        ln
    }

    #[test]
    fn gradients_2d_3d_and_without_affine() {
        check_layer(&mut perturbed(5, 0), &random(&[3, 5], 1));
        check_layer(&mut perturbed(4, 1), &random(&[2, 3, 4], 2));
        let mut plain =
            LayerNorm::with_config(LayerNormConfig::new(4).elementwise_affine(false)).unwrap();
        assert_eq!(plain.num_params(), 0);
        check_layer(&mut plain, &random(&[3, 4], 3));
    }

    #[test]
    fn values_by_hand_infer_equals_forward_and_errors() {
        let x = Tensor::from_vec(&[1, 4], vec![1., 2., 3., 6.]).unwrap();
        let mut ln = LayerNorm::with_config(LayerNormConfig::new(4).eps(0.0)).unwrap();
        let y = ln.forward(&x).unwrap();
        // mean 3, biased variance 3.5
        let s = 3.5f32.sqrt();
        for (a, b) in y.as_slice().iter().zip([-2.0 / s, -1.0 / s, 0.0, 3.0 / s]) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(ln.infer(&x).unwrap(), y);
        let keys: Vec<String> = ln.param_shapes().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["weight", "bias"]);
        for bad in [vec![4, 3], vec![]] {
            assert!(ln.infer(&Tensor::zeros(&bad)).is_err(), "{bad:?}");
        }
        assert!(LayerNorm::new(0).is_err());
        assert!(LayerNorm::with_config(LayerNormConfig::new(3).eps(f32::NAN)).is_err());
        assert!(ln.backward(&Tensor::zeros(&[1, 3])).is_err());
    }
}
