//! Normalisation kernels, forward and backward: BatchNorm over NCHW, LayerNorm
//! over the last axis, and channels-first LayerNorm over NCHW (ConvNeXt).
//!
//! All three compute `y = (x − μ)·σ̂ · γ + β` with `σ̂ = 1/√(var + eps)` (the
//! *inverse standard deviation*, `invstd`), the biased variance, and a
//! per-feature `γ` (`weight`) and `β` (`bias`), as PyTorch names them. They
//! differ in the set of elements `μ` and `var` are taken over:
//!
//! | kernel | input | statistics over | γ, β length |
//! |---|---|---|---|
//! | [`batch_norm2d_forward_train`] | `[N, C, H, W]` | `(N, H, W)`, one per channel | `C` |
//! | [`layer_norm_forward`] | `[rows, D]` | `D`, one per row | `D` |
//! | [`layer_norm_channels_first_forward`] | `[N, C, H, W]` | `C`, one per `(n, h, w)` | `C` |
//!
//! Statistics are two-pass (mean, then mean squared deviation) and
//! accumulated in f64, so a large mean does not swallow a small variance.
//! The forward passes save `μ` and `σ̂` (f32) for the backward passes, which
//! use the batch-statistics formula, with `x̂ = (x − μ)·σ̂`, `M` the number of
//! elements normalised together and `g` the output gradient:
//!
//! `dx = γ·σ̂ · (g − mean(g) − x̂ · mean(g·x̂))`, `dγ += Σ g·x̂`, `dβ += Σ g`.
//!
//! Every reduction runs in a fixed order (one sequential pass per channel,
//! row or image, and partial sums combined in index order), so the results
//! do not depend on the number of threads.

mod batch_norm;
mod layer_norm;
mod layer_norm_channels_first;

pub use batch_norm::{
    batch_norm2d_backward, batch_norm2d_forward_infer, batch_norm2d_forward_train,
    batch_norm2d_infer, batch_norm2d_infer_inplace, batch_norm_infer_scale,
    batch_norm_update_running_stats,
};
pub use layer_norm::{layer_norm, layer_norm_backward, layer_norm_forward};
pub use layer_norm_channels_first::{
    layer_norm_channels_first, layer_norm_channels_first_backward,
    layer_norm_channels_first_forward,
};

use super::check_len;
use crate::error::{Result, TensorError};

/// Errors unless `eps` is finite and non-negative.
fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(TensorError::invalid(
            op,
            format!("eps must be finite and >= 0, got {eps}"),
        ));
    }
    Ok(())
}

/// `1/√(var + eps)` in f64, rounded to f32.
#[inline]
fn invstd(var: f64, eps: f32) -> f32 {
    (1.0 / (var + eps as f64).sqrt()) as f32
}

/// Mean and biased variance of `values` (two passes, f64). `len` is the
/// number of values, for the division.
fn mean_var<'a, I>(values: impl Fn() -> I, len: usize) -> (f64, f64)
where
    I: Iterator<Item = &'a f32>,
{
    let mean = values().map(|&v| v as f64).sum::<f64>() / len as f64;
    let var = values()
        .map(|&v| {
            let d = v as f64 - mean;
            d * d
        })
        .sum::<f64>()
        / len as f64;
    (mean, var)
}

/// Adds the per-feature partial sums `[Σ g·x̂ (D values), Σ g (D values)]`
/// of `partials`, combined in index order (so the result does not depend on
/// the thread count), into `grad_weight` and `grad_bias` (`[D]`).
fn accumulate_affine_grads(grad_weight: &mut [f32], grad_bias: &mut [f32], partials: &[Vec<f64>]) {
    let dim = grad_weight.len();
    let mut total = vec![0.0f64; 2 * dim];
    for part in partials {
        for (t, &v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    for (d, (gw, gb)) in grad_weight.iter_mut().zip(grad_bias.iter_mut()).enumerate() {
        *gw += total[d] as f32;
        *gb += total[dim + d] as f32;
    }
}

/// The shapes of a LayerNorm's slices: the data (`out`, `input` and their
/// gradients), the `features` of `weight` and `bias`, and the `stats` of
/// `save_mean` and `save_invstd`. Checks the lengths of a forward or
/// backward pass's slices, given in their argument order.
struct Lens<'a> {
    data: &'a [usize],
    features: usize,
    stats: &'a [usize],
}

impl Lens<'_> {
    fn check(
        &self,
        op: &'static str,
        [out, save_mean, save_invstd, input, weight, bias]: [usize; 6],
    ) -> Result<()> {
        check_len(op, "out", out, self.data)?;
        check_len(op, "input", input, self.data)?;
        check_len(op, "save_mean", save_mean, self.stats)?;
        check_len(op, "save_invstd", save_invstd, self.stats)?;
        check_len(op, "weight", weight, &[self.features])?;
        check_len(op, "bias", bias, &[self.features])
    }

    /// Like [`Lens::check`] for a backward pass's slices, in their
    /// argument order: `grad_input`, `grad_out` and `input` are `data`,
    /// `grad_weight`, `grad_bias` and `weight` hold `features` elements.
    fn check_backward(
        &self,
        op: &'static str,
        [grad_input, grad_weight, grad_bias, grad_out, input, weight, save_mean, save_invstd]: [usize;
            8],
    ) -> Result<()> {
        check_len(op, "grad_input", grad_input, self.data)?;
        check_len(op, "grad_out", grad_out, self.data)?;
        check_len(op, "input", input, self.data)?;
        check_len(op, "grad_weight", grad_weight, &[self.features])?;
        check_len(op, "grad_bias", grad_bias, &[self.features])?;
        check_len(op, "weight", weight, &[self.features])?;
        check_len(op, "save_mean", save_mean, self.stats)?;
        check_len(op, "save_invstd", save_invstd, self.stats)
    }
}
