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

use crate::error::{fmt_shape, Result, TensorError};

/// Errors unless `got` is the number of elements of `expected_shape`.
fn check_len(op: &'static str, what: &str, got: usize, expected_shape: &[usize]) -> Result<()> {
    let expected: usize = expected_shape.iter().product();
    if got != expected {
        return Err(TensorError::shape(
            op,
            format!("length of {what}"),
            format!("{expected} (shape {})", fmt_shape(expected_shape)),
            got,
        ));
    }
    Ok(())
}

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

#[cfg(test)]
mod test_util {
    //! Helpers shared by the normalisation tests.

    use crate::gradcheck::{check_gradient, GradCheck};

    /// Checks `analytic` against finite differences of `loss`, panicking with
    /// `what` on a mismatch.
    pub fn gradcheck(what: &str, loss: impl FnMut(&[f32]) -> f64, x: &[f32], analytic: &[f32]) {
        check_gradient(loss, x, analytic, GradCheck::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// f32 slices agree within `tol·(1 + |want|)`.
    pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
                "{what}: element {i}: {g} vs {w}"
            );
        }
    }

    /// The bits of a slice, for determinism checks.
    pub fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }
}
