//! Batch normalisation over the channels of `[N, C, H, W]`.
//!
//! PyTorch equivalent: `torch.nn.BatchNorm2d(num_features, eps=1e-5,
//! momentum=0.1, affine=True, track_running_stats=True)`. Shapes:
//! `[N, C, H, W]` -> the same.

use convnet_tensor::kernels::norm::{
    batch_norm2d_backward, batch_norm2d_forward_infer, batch_norm2d_forward_train,
    batch_norm_infer_scale, batch_norm_update_running_stats,
};
use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::fused::FusionRole;
use crate::layer::{visit_weight_bias, visit_weight_bias_mut, Layer};
use crate::param::{join, Param};
use crate::util::{check_eps, kernel, nchw, take_cache_for, tensor};

const NAME: &str = "BatchNorm2d";

/// Configuration of a [`BatchNorm2d`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNorm2dConfig {
    /// Channels `C`.
    pub num_features: usize,
    /// Added to the variance before the square root (default `1e-5`).
    pub eps: f32,
    /// Weight of the new batch statistic in the running averages (default
    /// `0.1`): `running = (1 − momentum)·running + momentum·batch`.
    pub momentum: f32,
    /// Whether the layer has a learned scale `weight` and shift `bias`
    /// (default `true`).
    pub affine: bool,
}

impl BatchNorm2dConfig {
    /// `num_features` channels, `eps = 1e-5`, `momentum = 0.1`, affine.
    pub fn new(num_features: usize) -> Self {
        BatchNorm2dConfig {
            num_features,
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }

    /// The epsilon.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// The momentum.
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// With or without the affine parameters.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }
}

/// What `forward` keeps for `backward`.
#[derive(Debug, Clone)]
struct Cache {
    input: Tensor,
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
    shape: [usize; 4],
    /// The forward pass used the running statistics (a frozen layer).
    frozen: bool,
}

/// Batch normalisation: each channel is normalised by statistics over
/// `(N, H, W)`, then scaled and shifted:
/// `y = (x − μ_c) / sqrt(σ²_c + eps) · weight_c + bias_c`.
///
/// - [`Layer::forward`] (training) uses the batch mean and biased variance,
///   and updates the running statistics as PyTorch does:
///   `running_mean ← (1 − m)·running_mean + m·μ`,
///   `running_var ← (1 − m)·running_var + m·σ²_unbiased`, and
///   `num_batches_tracked += 1`.
/// - [`Layer::infer`] uses `running_mean` and `running_var`.
/// - A *frozen* layer ([`Layer::set_frozen`] with its parameters frozen,
///   see [`BatchNorm2d::is_frozen`]) runs in inference mode in `forward`
///   too: running statistics, which stay unchanged, and a backward pass
///   through that per-channel affine map (as Keras treats a BatchNorm with
///   `trainable = False`).
///
/// Parameters `weight` (ones) and `bias` (zeros), `[C]` each (absent when
/// not affine). Buffers `running_mean` (zeros), `running_var` (ones) and
/// `num_batches_tracked`, the last stored as a 0-dimensional `f32` tensor
/// (PyTorch's is an `int64` scalar; `f32` counts exactly up to 2^24 steps).
///
/// PyTorch equivalent: `torch.nn.BatchNorm2d` (`track_running_stats=True`,
/// numeric momentum; the cumulative average `momentum=None` is not
/// supported).
///
/// # Shapes
///
/// - input: `[N, num_features, H, W]`, with `N·H·W >= 2` in training
/// - output: the same
///
/// ```
/// use convnet_layers::{BatchNorm2d, Layer};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut bn = BatchNorm2d::new(3)?;
/// let x = Tensor::randn(&[4, 3, 5, 5], 2.0, 3.0, &mut Rng::seed_from(0));
/// let y = bn.forward(&x)?;
/// assert!(y.mean().abs() < 1e-5); // normalised with the batch statistics
/// assert_eq!(bn.backward(&Tensor::ones(&[4, 3, 5, 5]))?.shape(), x.shape());
/// let mut keys = Vec::new();
/// bn.visit_buffers("bn1", &mut |k, _| keys.push(k.to_string()));
/// assert_eq!(keys, ["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]);
/// assert!(bn.infer(&Tensor::zeros(&[4, 2, 5, 5])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    /// Scale `[C]`, if affine.
    pub weight: Option<Param>,
    /// Shift `[C]`, if affine.
    pub bias: Option<Param>,
    /// Running mean `[C]`.
    pub running_mean: Tensor,
    /// Running (unbiased) variance `[C]`.
    pub running_var: Tensor,
    /// Number of training batches seen, a 0-dimensional tensor.
    pub num_batches_tracked: Tensor,
    config: BatchNorm2dConfig,
    /// Inference mode in `forward` too (set by [`Layer::set_frozen`]).
    frozen: bool,
    cache: Option<Cache>,
}

impl BatchNorm2d {
    /// `num_features` channels with PyTorch's defaults.
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with_config(BatchNorm2dConfig::new(num_features))
    }

    /// A layer from a configuration; errors on zero channels, a negative or
    /// non-finite `eps`, or a momentum outside `[0, 1]`.
    pub fn with_config(config: BatchNorm2dConfig) -> Result<Self> {
        let c = config.num_features;
        if c == 0 {
            return Err(LayerError::config(NAME, "num_features must be >= 1"));
        }
        check_eps(NAME, config.eps)?;
        if !(0.0..=1.0).contains(&config.momentum) {
            return Err(LayerError::config(
                NAME,
                format!("momentum must be in [0, 1], got {}", config.momentum),
            ));
        }
        Ok(BatchNorm2d {
            weight: config.affine.then(|| Param::new(Tensor::ones(&[c]))),
            bias: config.affine.then(|| Param::new(Tensor::zeros(&[c]))),
            running_mean: Tensor::zeros(&[c]),
            running_var: Tensor::ones(&[c]),
            num_batches_tracked: Tensor::scalar(0.0),
            config,
            frozen: false,
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BatchNorm2dConfig {
        &self.config
    }

    /// Whether the layer is frozen ([`Layer::set_frozen`]): `forward`
    /// normalises with the running statistics and leaves them unchanged.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Backward of the frozen (inference-mode) forward pass:
    /// `y = (x − mean)·invstd·w + b` with constant `mean` and `invstd`, so
    /// `∂x = ∂y·w·invstd`, `∂w += Σ ∂y·(x − mean)·invstd`, `∂b += Σ ∂y`
    /// (sums over `N, H, W`, accumulated in `f64`).
    fn backward_frozen(&mut self, grad_out: &Tensor, cache: Cache) -> Tensor {
        let [n, c, h, w] = cache.shape;
        let plane = h * w;
        let (weight, _) = self.affine();
        let (x, g) = (cache.input.as_slice(), grad_out.as_slice());
        let mut grad_in = vec![0.0f32; x.len()];
        let (mut gw, mut gb) = (vec![0.0f64; c], vec![0.0f64; c]);
        for i in 0..n {
            for ch in 0..c {
                let (mean, invstd) = (cache.save_mean[ch], cache.save_invstd[ch]);
                let scale = weight[ch] * invstd;
                let at = (i * c + ch) * plane;
                for k in at..at + plane {
                    let xhat = (x[k] - mean) * invstd;
                    gw[ch] += (g[k] * xhat) as f64;
                    gb[ch] += g[k] as f64;
                    grad_in[k] = g[k] * scale;
                }
            }
        }
        if let (Some(wp), Some(bp)) = (&mut self.weight, &mut self.bias) {
            for (d, s) in wp.grad.as_slice_mut().iter_mut().zip(&gw) {
                *d += *s as f32;
            }
            for (d, s) in bp.grad.as_slice_mut().iter_mut().zip(&gb) {
                *d += *s as f32;
            }
        }
        tensor(&cache.shape, grad_in)
    }

    fn dims(&self, shape: &[usize]) -> Result<[usize; 4]> {
        nchw(NAME, shape, Some(self.config.num_features))
    }

    /// The per-channel `scale` and `shift` of inference,
    /// `y = (x − running_mean)·scale + shift` with
    /// `scale = weight/√(running_var + eps)` and `shift = bias`, computed by
    /// the tensor crate's kernel: what [`Layer::infer`] applies, for a caller
    /// that folds this layer into the convolution before it.
    pub(crate) fn infer_scale_shift(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let (w, b) = self.affine();
        let mut scale = vec![0.0f32; w.len()];
        kernel(
            NAME,
            batch_norm_infer_scale(&mut scale, self.running_var.as_slice(), &w, self.config.eps),
        )?;
        Ok((scale, b))
    }

    /// The scale and shift (ones and zeros when not affine).
    fn affine(&self) -> (Vec<f32>, Vec<f32>) {
        let c = self.config.num_features;
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => (w.value.as_slice().to_vec(), b.value.as_slice().to_vec()),
            _ => (vec![1.0; c], vec![0.0; c]),
        }
    }
}

impl Layer for BatchNorm2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let shape = self.dims(x.shape())?;
        let (w, b) = self.affine();
        let mut y = vec![0.0f32; x.len()];
        kernel(
            NAME,
            batch_norm2d_forward_infer(
                &mut y,
                x.as_slice(),
                self.running_mean.as_slice(),
                self.running_var.as_slice(),
                &w,
                &b,
                shape,
                self.config.eps,
            ),
        )?;
        Ok(tensor(&shape, y))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let shape = self.dims(x.shape())?;
        let c = shape[1];
        if self.frozen {
            let y = self.infer(x)?;
            // The inverse standard deviation is the scale of a weight of ones.
            let mut save_invstd = vec![0.0f32; c];
            kernel(
                NAME,
                batch_norm_infer_scale(
                    &mut save_invstd,
                    self.running_var.as_slice(),
                    &vec![1.0; c],
                    self.config.eps,
                ),
            )?;
            self.cache = Some(Cache {
                input: x.clone(),
                save_mean: self.running_mean.as_slice().to_vec(),
                save_invstd,
                shape,
                frozen: true,
            });
            return Ok(y);
        }
        let (w, b) = self.affine();
        let mut y = vec![0.0f32; x.len()];
        let (mut save_mean, mut save_invstd, mut unbiased) =
            (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; c]);
        kernel(
            NAME,
            batch_norm2d_forward_train(
                &mut y,
                &mut save_mean,
                &mut save_invstd,
                &mut unbiased,
                x.as_slice(),
                &w,
                &b,
                shape,
                self.config.eps,
            ),
        )?;
        kernel(
            NAME,
            batch_norm_update_running_stats(
                self.running_mean.as_slice_mut(),
                self.running_var.as_slice_mut(),
                &save_mean,
                &unbiased,
                self.config.momentum,
            ),
        )?;
        self.num_batches_tracked.as_slice_mut()[0] += 1.0;
        self.cache = Some(Cache {
            input: x.clone(),
            save_mean,
            save_invstd,
            shape,
            frozen: false,
        });
        Ok(tensor(&shape, y))
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let cache = take_cache_for(&mut self.cache, NAME, grad_out, |c| c.shape.to_vec())?;
        if cache.frozen {
            return Ok(self.backward_frozen(grad_out, cache));
        }
        let c = cache.shape[1];
        let (w, _) = self.affine();
        let mut grad_in = vec![0.0f32; cache.input.len()];
        let (mut gw_scratch, mut gb_scratch) = (Vec::new(), Vec::new());
        let (gw, gb) = match (&mut self.weight, &mut self.bias) {
            (Some(w), Some(b)) => (w.grad.as_slice_mut(), b.grad.as_slice_mut()),
            _ => {
                gw_scratch.resize(c, 0.0);
                gb_scratch.resize(c, 0.0);
                (&mut gw_scratch[..], &mut gb_scratch[..])
            }
        };
        kernel(
            NAME,
            batch_norm2d_backward(
                &mut grad_in,
                gw,
                gb,
                grad_out.as_slice(),
                cache.input.as_slice(),
                &w,
                &cache.save_mean,
                &cache.save_invstd,
                cache.shape,
            ),
        )?;
        Ok(tensor(&cache.shape, grad_in))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.dims(input_shape)?.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(w) = &self.weight {
            visit_weight_bias(prefix, w, self.bias.as_ref(), f)
        }
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(w) = &mut self.weight {
            visit_weight_bias_mut(prefix, w, self.bias.as_mut(), f)
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "running_mean"), &self.running_mean);
        f(&join(prefix, "running_var"), &self.running_var);
        f(
            &join(prefix, "num_batches_tracked"),
            &self.num_batches_tracked,
        );
    }

    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&join(prefix, "running_mean"), &mut self.running_mean);
        f(&join(prefix, "running_var"), &mut self.running_var);
        f(
            &join(prefix, "num_batches_tracked"),
            &mut self.num_batches_tracked,
        );
    }

    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        self.frozen = if self.weight.is_some() {
            frozen(&join(prefix, "weight")) && frozen(&join(prefix, "bias"))
        } else {
            frozen(&join(prefix, "running_mean"))
        };
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn fusion_role(&self) -> Option<FusionRole<'_>> {
        Some(FusionRole::BatchNorm2d(self))
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(BatchNorm2d {
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

    fn perturbed(c: usize, seed: u64) -> BatchNorm2d {
        let mut bn = BatchNorm2d::new(c).unwrap();
        let mut rng = Rng::seed_from(seed);
        bn.weight.as_mut().unwrap().value = Tensor::rand_uniform(&[c], 0.5, 1.5, &mut rng);
        bn.bias.as_mut().unwrap().value = Tensor::rand_uniform(&[c], -0.5, 0.5, &mut rng);
        bn
    }

    #[test]
    fn gradient_with_batch_statistics() {
        check_layer(&mut perturbed(3, 0), &random(&[4, 3, 3, 2], 1));
        check_layer(&mut perturbed(2, 1), &random(&[2, 2, 1, 1], 2));
        let mut plain = BatchNorm2d::with_config(BatchNorm2dConfig::new(2).affine(false)).unwrap();
        assert_eq!(plain.num_params(), 0);
        check_layer(&mut plain, &random(&[3, 2, 2, 2], 3));
    }

    #[test]
    fn frozen_layer_runs_in_inference_mode_and_has_a_correct_gradient() {
        let mut bn = perturbed(3, 4);
        bn.running_mean = Tensor::from_vec(&[3], vec![0.5, -1.0, 0.25]).unwrap();
        bn.running_var = Tensor::from_vec(&[3], vec![2.0, 0.5, 1.5]).unwrap();
        bn.set_frozen("bn", &|k| k.starts_with("bn."));
        assert!(bn.is_frozen());
        let x = random(&[4, 3, 2, 3], 5);
        let (mean, var) = (bn.running_mean.clone(), bn.running_var.clone());
        let y = bn.forward(&x).unwrap();
        assert_eq!(y, bn.infer(&x).unwrap(), "forward is inference");
        assert_eq!(bn.running_mean, mean, "running statistics unchanged");
        assert_eq!(bn.running_var, var);
        assert_eq!(bn.num_batches_tracked.as_slice(), &[0.0]);
        bn.backward(&Tensor::ones(y.shape())).unwrap();
        // The gradient of the per-channel affine map, by finite differences.
        check_layer(&mut bn, &x);
        assert_eq!(bn.num_batches_tracked.as_slice(), &[0.0]);
        // Only this layer's keys count; unfreezing restores training mode.
        bn.set_frozen("other", &|k| k.starts_with("bn."));
        assert!(!bn.is_frozen());
        bn.forward(&x).unwrap();
        assert_eq!(bn.num_batches_tracked.as_slice(), &[1.0]);
        assert_ne!(bn.running_mean, mean);
        // Without affine parameters, the running_mean key decides.
        let mut plain = BatchNorm2d::with_config(BatchNorm2dConfig::new(3).affine(false)).unwrap();
        plain.set_frozen("", &|k| k == "running_mean");
        assert!(plain.is_frozen());
        assert_eq!(plain.forward(&x).unwrap(), plain.infer(&x).unwrap());
        check_layer(&mut plain, &x);
    }

    #[test]
    fn running_statistics_by_hand() {
        // One channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased 14/3.
        let x = Tensor::from_vec(&[2, 1, 1, 2], vec![1., 2., 3., 6.]).unwrap();
        let mut bn = BatchNorm2d::new(1).unwrap();
        let y = bn.forward(&x).unwrap();
        let s = (3.5f32 + 1e-5).sqrt();
        let want = [-2.0 / s, -1.0 / s, 0.0, 3.0 / s];
        for (a, b) in y.as_slice().iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // running_mean = 0.9·0 + 0.1·3, running_var = 0.9·1 + 0.1·14/3
        assert!((bn.running_mean.as_slice()[0] - 0.3).abs() < 1e-6);
        assert!((bn.running_var.as_slice()[0] - (0.9 + 1.4 / 3.0)).abs() < 1e-6);
        assert_eq!(bn.num_batches_tracked.as_slice(), &[1.0]);
        assert_eq!(bn.num_batches_tracked.shape(), &[] as &[usize]);
        // A second step keeps averaging.
        bn.forward(&x).unwrap();
        assert!((bn.running_mean.as_slice()[0] - (0.9 * 0.3 + 0.3)).abs() < 1e-6);
        assert_eq!(bn.num_batches_tracked.as_slice(), &[2.0]);
    }

    #[test]
    fn infer_uses_running_statistics_by_hand() {
        let mut bn = BatchNorm2d::new(2).unwrap();
        bn.running_mean = Tensor::from_vec(&[2], vec![1.0, -2.0]).unwrap();
        bn.running_var = Tensor::from_vec(&[2], vec![4.0, 0.25]).unwrap();
        bn.weight.as_mut().unwrap().value = Tensor::from_vec(&[2], vec![2.0, 1.0]).unwrap();
        bn.bias.as_mut().unwrap().value = Tensor::from_vec(&[2], vec![0.5, 0.0]).unwrap();
        let x = Tensor::from_vec(&[1, 2, 1, 2], vec![3.0, 5.0, -2.0, -1.0]).unwrap();
        let y = bn.infer(&x).unwrap();
        let e = 1e-5f32;
        let want = [
            (3.0 - 1.0) / (4.0 + e).sqrt() * 2.0 + 0.5,
            (5.0 - 1.0) / (4.0 + e).sqrt() * 2.0 + 0.5,
            0.0,
            1.0 / (0.25 + e).sqrt(),
        ];
        for (a, b) in y.as_slice().iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // infer neither uses nor changes the batch statistics.
        assert_eq!(bn.num_batches_tracked.as_slice(), &[0.0]);
        let y1 = bn.infer(&x.map(|v| v * 10.0)).unwrap();
        assert!((y1.as_slice()[0] - ((30.0 - 1.0) / (4.0 + e).sqrt() * 2.0 + 0.5)).abs() < 1e-4);
    }

    #[test]
    fn bad_configs_and_shapes() {
        assert!(BatchNorm2d::new(0).is_err());
        assert!(BatchNorm2d::with_config(BatchNorm2dConfig::new(2).eps(-1e-5)).is_err());
        assert!(BatchNorm2d::with_config(BatchNorm2dConfig::new(2).momentum(1.5)).is_err());
        let mut bn = BatchNorm2d::new(2).unwrap();
        for bad in [vec![2, 2], vec![2, 3, 4, 4], vec![2, 2, 4]] {
            let e = bn.infer(&Tensor::zeros(&bad)).unwrap_err();
            assert!(e.to_string().contains("[N, 2, H, W]"), "{e}");
        }
        // One value per channel cannot give batch statistics.
        assert!(bn.forward(&Tensor::zeros(&[1, 2, 1, 1])).is_err());
        assert!(bn.backward(&Tensor::zeros(&[2, 2, 1, 1])).is_err());
        bn.forward(&Tensor::zeros(&[2, 2, 1, 1])).unwrap();
        assert!(bn.backward(&Tensor::zeros(&[2, 2, 1, 2])).is_err());
    }
}
