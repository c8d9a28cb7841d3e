//! BatchNorm over `[N, C, H, W]` (PyTorch's `BatchNorm2d`): training forward
//! with batch statistics, inference forward with running statistics,
//! backward, and the running-statistics update.
//!
//! A `[N, C]` input (`BatchNorm1d`) is the same computation with shape
//! `[N, C, 1, 1]`.

use rayon::prelude::*;

use super::{check_eps, check_len, invstd, mean_var};
use crate::error::{fmt_shape, Result, TensorError};
use crate::tensor::Tensor;

/// The `HW`-long plane of channel `ch` in image `n`.
#[inline]
fn plane(x: &[f32], [_, c, h, w]: [usize; 4], n: usize, ch: usize) -> &[f32] {
    let hw = h * w;
    &x[(n * c + ch) * hw..(n * c + ch + 1) * hw]
}

/// The elements of channel `ch`, image by image.
fn channel(x: &[f32], shape: [usize; 4], ch: usize) -> impl Iterator<Item = &f32> {
    (0..shape[0]).flat_map(move |n| plane(x, shape, n, ch).iter())
}

/// Checks the lengths of the `[N, C, H, W]` slices and of the per-channel
/// `[C]` slices.
fn check_shapes(
    op: &'static str,
    shape: [usize; 4],
    full: &[(&str, usize)],
    per_channel: &[(&str, usize)],
) -> Result<()> {
    for &(what, len) in full {
        check_len(op, what, len, &shape)?;
    }
    for &(what, len) in per_channel {
        check_len(op, what, len, &[shape[1]])?;
    }
    Ok(())
}

/// Batch statistics need at least two values per channel (PyTorch refuses
/// one as well: its variance is 0 and the unbiased variance undefined).
fn check_count(op: &'static str, shape: [usize; 4]) -> Result<usize> {
    let [n, _, h, w] = shape;
    let count = n * h * w;
    if count < 2 {
        return Err(TensorError::invalid(
            op,
            format!(
                "expected more than 1 value per channel in training, got {count} (input {})",
                fmt_shape(&shape)
            ),
        ));
    }
    Ok(count)
}

/// `out = (x − mean[c]) · scale[c] + shift[c]` plane by plane, in parallel.
fn affine_planes(
    out: &mut [f32],
    input: &[f32],
    mean: &[f32],
    scale: &[f32],
    shift: &[f32],
    shape: [usize; 4],
) {
    let [_, c, h, w] = shape;
    let hw = h * w;
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(hw)
        .zip(input.par_chunks(hw))
        .enumerate()
        .with_min_len((4096 / hw).max(1))
        .for_each(|(i, (o, x))| {
            let ch = i % c;
            let (m, k, b) = (mean[ch], scale[ch], shift[ch]);
            for (o, &v) in o.iter_mut().zip(x) {
                *o = (v - m) * k + b;
            }
        });
}

/// BatchNorm training forward over `[N, C, H, W]` with batch statistics.
///
/// - `out`: `[N, C, H, W]`, overwritten with `(x − μ_c)·σ̂_c·weight_c + bias_c`;
/// - `save_mean`, `save_invstd`: `[C]`, overwritten with the batch mean
///   `μ_c` and `σ̂_c = 1/√(var_c + eps)` (biased variance over `N·H·W`),
///   for [`batch_norm2d_backward`];
/// - `unbiased_var`: `[C]`, overwritten with `var_c · M/(M − 1)`, `M = N·H·W`,
///   for the running-variance update ([`batch_norm_update_running_stats`]);
/// - `input`: `[N, C, H, W]`; `weight`, `bias`: `[C]`.
///
/// Parallel over channels for the statistics and over planes for the output.
/// Errors on a length mismatch, a bad `eps`, or fewer than 2 values per
/// channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_forward_train(
    out: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    unbiased_var: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: [usize; 4],
    eps: f32,
) -> Result<()> {
    const OP: &str = "batch_norm2d_forward_train";
    check_shapes(
        OP,
        shape,
        &[("out", out.len()), ("input", input.len())],
        &[
            ("save_mean", save_mean.len()),
            ("save_invstd", save_invstd.len()),
            ("unbiased_var", unbiased_var.len()),
            ("weight", weight.len()),
            ("bias", bias.len()),
        ],
    )?;
    check_eps(OP, eps)?;
    let count = check_count(OP, shape)?;
    let stats: Vec<(f64, f64)> = (0..shape[1])
        .into_par_iter()
        .map(|ch| mean_var(|| channel(input, shape, ch), count))
        .collect();
    let mut scale = vec![0.0f32; shape[1]];
    for (ch, &(mean, var)) in stats.iter().enumerate() {
        save_mean[ch] = mean as f32;
        save_invstd[ch] = invstd(var, eps);
        unbiased_var[ch] = (var * count as f64 / (count - 1) as f64) as f32;
        scale[ch] = save_invstd[ch] * weight[ch];
    }
    affine_planes(out, input, save_mean, &scale, bias, shape);
    Ok(())
}

/// BatchNorm inference forward with running statistics:
/// `out = (x − running_mean_c) / √(running_var_c + eps) · weight_c + bias_c`.
///
/// - `out`, `input`: `[N, C, H, W]`; `running_mean`, `running_var`,
///   `weight`, `bias`: `[C]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_forward_infer(
    out: &mut [f32],
    input: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: [usize; 4],
    eps: f32,
) -> Result<()> {
    const OP: &str = "batch_norm2d_forward_infer";
    check_shapes(
        OP,
        shape,
        &[("out", out.len()), ("input", input.len())],
        &[
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
            ("weight", weight.len()),
            ("bias", bias.len()),
        ],
    )?;
    check_eps(OP, eps)?;
    let mut scale = vec![0.0f32; shape[1]];
    batch_norm_infer_scale(&mut scale, running_var, weight, eps)?;
    affine_planes(out, input, running_mean, &scale, bias, shape);
    Ok(())
}

/// The per-channel factor of BatchNorm inference,
/// `scale_c = weight_c / √(running_var_c + eps)` (in f64, rounded to f32),
/// so that `y = (x − running_mean_c)·scale_c + bias_c`: what
/// [`batch_norm2d_forward_infer`] multiplies by, for callers that fold
/// BatchNorm into another operation (a convolution before it).
///
/// - `scale`: `[C]`, overwritten; `running_var`, `weight`: `[C]` (ones for
///   a BatchNorm without affine parameters, which makes `scale` the inverse
///   standard deviation).
///
/// Errors on a length mismatch or a bad `eps`.
pub fn batch_norm_infer_scale(
    scale: &mut [f32],
    running_var: &[f32],
    weight: &[f32],
    eps: f32,
) -> Result<()> {
    const OP: &str = "batch_norm_infer_scale";
    let c = scale.len();
    check_len(OP, "running_var", running_var.len(), &[c])?;
    check_len(OP, "weight", weight.len(), &[c])?;
    check_eps(OP, eps)?;
    for ((s, &v), &w) in scale.iter_mut().zip(running_var).zip(weight) {
        *s = (w as f64 / (v as f64 + eps as f64).sqrt()) as f32;
    }
    Ok(())
}

/// BatchNorm inference in place, with the scale precomputed by
/// [`batch_norm_infer_scale`], optionally followed by a ReLU:
/// `x = (x − mean_c)·scale_c + shift_c`, then `x = max(x, 0)` if `relu`.
/// Gives the bits of [`batch_norm2d_forward_infer`] (and of a ReLU after
/// it) without a second tensor: the pass that runs a BatchNorm fused
/// after a convolution.
///
/// - `x`: `[N, C, H, W]`, overwritten; `mean`, `scale`, `shift`: `[C]`.
pub fn batch_norm2d_infer_inplace(
    x: &mut [f32],
    mean: &[f32],
    scale: &[f32],
    shift: &[f32],
    shape: [usize; 4],
    relu: bool,
) -> Result<()> {
    const OP: &str = "batch_norm2d_infer_inplace";
    check_shapes(
        OP,
        shape,
        &[("x", x.len())],
        &[
            ("mean", mean.len()),
            ("scale", scale.len()),
            ("shift", shift.len()),
        ],
    )?;
    let [_, c, h, w] = shape;
    let hw = h * w;
    if x.is_empty() {
        return Ok(());
    }
    x.par_chunks_mut(hw)
        .enumerate()
        .with_min_len((4096 / hw).max(1))
        .for_each(|(i, plane)| {
            let ch = i % c;
            let (m, k, b) = (mean[ch], scale[ch], shift[ch]);
            if relu {
                plane
                    .iter_mut()
                    .for_each(|v| *v = ((*v - m) * k + b).max(0.0));
            } else {
                plane.iter_mut().for_each(|v| *v = (*v - m) * k + b);
            }
        });
    Ok(())
}

/// BatchNorm backward (training mode, batch statistics).
///
/// - `grad_input`: `[N, C, H, W]`, **overwritten** with
///   `weight_c·σ̂_c · (g − mean(g) − x̂ · mean(g·x̂))`, means over `(N, H, W)`;
/// - `grad_weight`, `grad_bias`: `[C]`, **accumulated** (`+= Σ g·x̂`,
///   `+= Σ g`);
/// - `grad_out`, `input`: `[N, C, H, W]`; `weight`, `save_mean`,
///   `save_invstd`: `[C]`, from [`batch_norm2d_forward_train`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_backward(
    grad_input: &mut [f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_out: &[f32],
    input: &[f32],
    weight: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    shape: [usize; 4],
) -> Result<()> {
    const OP: &str = "batch_norm2d_backward";
    check_shapes(
        OP,
        shape,
        &[
            ("grad_input", grad_input.len()),
            ("grad_out", grad_out.len()),
            ("input", input.len()),
        ],
        &[
            ("grad_weight", grad_weight.len()),
            ("grad_bias", grad_bias.len()),
            ("weight", weight.len()),
            ("save_mean", save_mean.len()),
            ("save_invstd", save_invstd.len()),
        ],
    )?;
    let count = check_count(OP, shape)?;
    // Per channel: Σ g and Σ g·(x − μ), in f64, one sequential pass each.
    let sums: Vec<(f64, f64)> = (0..shape[1])
        .into_par_iter()
        .map(|ch| {
            let mean = save_mean[ch];
            channel(grad_out, shape, ch)
                .zip(channel(input, shape, ch))
                .fold((0.0f64, 0.0f64), |(sg, sgx), (&g, &x)| {
                    (sg + g as f64, sgx + g as f64 * (x - mean) as f64)
                })
        })
        .collect();
    // grad_input = k·(g − mean_g − (x − μ)·q) with k = weight·σ̂ and
    // q = σ̂ · mean(g·x̂) = σ̂² · Σ g·(x − μ) / M.
    let c = shape[1];
    let (mut k, mut mean_g, mut q) = (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; c]);
    for (ch, &(sg, sgx)) in sums.iter().enumerate() {
        let s = save_invstd[ch] as f64;
        grad_weight[ch] += (sgx * s) as f32;
        grad_bias[ch] += sg as f32;
        k[ch] = (weight[ch] as f64 * s) as f32;
        mean_g[ch] = (sg / count as f64) as f32;
        q[ch] = (s * s * sgx / count as f64) as f32;
    }
    let hw = shape[2] * shape[3];
    grad_input
        .par_chunks_mut(hw)
        .zip(grad_out.par_chunks(hw))
        .zip(input.par_chunks(hw))
        .enumerate()
        .with_min_len((4096 / hw).max(1))
        .for_each(|(i, ((d, g), x))| {
            let ch = i % c;
            let (m, k, mg, q) = (save_mean[ch], k[ch], mean_g[ch], q[ch]);
            for ((d, &g), &x) in d.iter_mut().zip(g).zip(x) {
                *d = k * (g - mg - (x - m) * q);
            }
        });
    Ok(())
}

/// The running-statistics update of a training step, as PyTorch does it:
/// `running = (1 − momentum)·running + momentum·batch`, with the batch mean
/// and the **unbiased** batch variance from [`batch_norm2d_forward_train`].
/// All slices are `[C]`.
pub fn batch_norm_update_running_stats(
    running_mean: &mut [f32],
    running_var: &mut [f32],
    save_mean: &[f32],
    unbiased_var: &[f32],
    momentum: f32,
) -> Result<()> {
    const OP: &str = "batch_norm_update_running_stats";
    let c = running_mean.len();
    check_len(OP, "running_var", running_var.len(), &[c])?;
    check_len(OP, "save_mean", save_mean.len(), &[c])?;
    check_len(OP, "unbiased_var", unbiased_var.len(), &[c])?;
    if !(0.0..=1.0).contains(&momentum) {
        return Err(TensorError::invalid(
            OP,
            format!("momentum must be in [0, 1], got {momentum}"),
        ));
    }
    for (r, &b) in running_mean.iter_mut().zip(save_mean) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    for (r, &b) in running_var.iter_mut().zip(unbiased_var) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    Ok(())
}

/// BatchNorm inference on a `[N, C, H, W]` tensor with `[C]` running
/// statistics, weight and bias (PyTorch's `F.batch_norm(x, running_mean,
/// running_var, weight, bias, training=False, eps=eps)`).
///
/// ```
/// use convnet_tensor::{kernels::norm::batch_norm2d_infer, Tensor};
/// let x = Tensor::from_vec(&[1, 1, 1, 2], vec![3.0, 5.0])?;
/// let c = |v: f32| Tensor::from_vec(&[1], vec![v]).unwrap();
/// // (x − 1) / √4 · 2 + 0.5
/// let y = batch_norm2d_infer(&x, &c(1.0), &c(4.0), &c(2.0), &c(0.5), 0.0)?;
/// assert_eq!(y.as_slice(), &[2.5, 4.5]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn batch_norm2d_infer(
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let shape = x.dims4("batch_norm2d")?;
    let mut out = Tensor::zeros(&shape);
    batch_norm2d_forward_infer(
        out.as_slice_mut(),
        x.as_slice(),
        running_mean.as_slice(),
        running_var.as_slice(),
        weight.as_slice(),
        bias.as_slice(),
        shape,
        eps,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests;
