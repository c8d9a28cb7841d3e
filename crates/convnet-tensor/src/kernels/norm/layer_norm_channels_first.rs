//! Channels-first LayerNorm over `[N, C, H, W]`: each `(n, h, w)` position is
//! normalised over its `C` channels, with a per-channel weight and bias
//! (ConvNeXt's `LayerNorm(data_format="channels_first")`, equivalently
//! PyTorch's `LayerNorm(C)` applied to the NHWC permutation).
//!
//! Within one image the data is `[C, P]` with `P = H·W` positions; the
//! statistics of all `P` positions are gathered channel row by channel row,
//! so the inner loops run over contiguous positions. Work is split over
//! blocks of positions for the statistics and over `(image, channel)` rows
//! for the rest, so one image uses every thread; every sum runs in a fixed
//! order, so results do not depend on the thread count.

use rayon::prelude::*;

use super::{accumulate_affine_grads, check_eps, Lens};
use crate::error::{fmt_shape, Result, TensorError};
use crate::kernels::vmath::sum_f64;
use crate::tensor::Tensor;

fn check_channels(op: &'static str, shape: [usize; 4]) -> Result<()> {
    if shape[1] == 0 {
        return Err(TensorError::invalid(
            op,
            format!(
                "cannot normalise over zero channels (input {})",
                fmt_shape(&shape)
            ),
        ));
    }
    Ok(())
}

/// Channels-first LayerNorm forward.
///
/// - `out`: `[N, C, H, W]`, overwritten with
///   `(x − μ_{n,p})·σ̂_{n,p}·weight_c + bias_c`;
/// - `save_mean`, `save_invstd`: `[N, H, W]`, overwritten with the mean and
///   `1/√(var + eps)` over the channels at each position (biased variance),
///   for [`layer_norm_channels_first_backward`];
/// - `input`: `[N, C, H, W]`; `weight`, `bias`: `[C]`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_channels_first_forward(
    out: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: [usize; 4],
    eps: f32,
) -> Result<()> {
    const OP: &str = "layer_norm_channels_first_forward";
    let [n, c, h, w] = shape;
    check_channels(OP, shape)?;
    let stats = [n, h, w];
    Lens {
        data: &shape,
        features: c,
        stats: &stats,
    }
    .check(
        OP,
        [
            out.len(),
            save_mean.len(),
            save_invstd.len(),
            input.len(),
            weight.len(),
            bias.len(),
        ],
    )?;
    check_eps(OP, eps)?;
    let p = h * w;
    if out.is_empty() {
        return Ok(());
    }
    if n >= rayon::current_num_threads() {
        // Enough images for every thread: one image per task, its
        // statistics then its output while the image is in cache (the same
        // sums in the same order as the split below, so the same bits).
        out.par_chunks_mut(c * p)
            .zip(save_mean.par_chunks_mut(p))
            .zip(save_invstd.par_chunks_mut(p))
            .zip(input.par_chunks(c * p))
            .for_each_init(
                || (vec![0.0f64; p], vec![0.0f64; p]),
                |(mean64, acc), (((out, mean), invstd), x)| {
                    stats_block(mean, invstd, mean64, acc, x, 0, p, eps);
                    for (ch, (o, x)) in out.chunks_exact_mut(p).zip(x.chunks_exact(p)).enumerate() {
                        normalize_row(o, x, mean, invstd, weight[ch], bias[ch]);
                    }
                },
            );
        return Ok(());
    }
    // Fewer images than threads: the statistics in parallel over blocks of
    // positions of each image...
    save_mean
        .par_chunks_mut(p)
        .zip(save_invstd.par_chunks_mut(p))
        .zip(input.par_chunks(c * p))
        .for_each(|((mean, invstd), x)| {
            mean.par_chunks_mut(POSITIONS_PER_TASK)
                .zip(invstd.par_chunks_mut(POSITIONS_PER_TASK))
                .enumerate()
                .for_each_init(
                    || {
                        (
                            vec![0.0f64; POSITIONS_PER_TASK],
                            vec![0.0f64; POSITIONS_PER_TASK],
                        )
                    },
                    |(mean64, acc), (block, (mean, invstd))| {
                        let q0 = block * POSITIONS_PER_TASK;
                        stats_block(mean, invstd, mean64, acc, x, q0, p, eps)
                    },
                )
        });
    // ...then the output, in parallel over the (image, channel) rows.
    out.par_chunks_mut(p)
        .zip(input.par_chunks(p))
        .enumerate()
        .with_min_len((4096 / p).max(1))
        .for_each(|(row, (o, x))| {
            let (image, ch) = (row / c, row % c);
            let stats = image * p..(image + 1) * p;
            normalize_row(
                o,
                x,
                &save_mean[stats.clone()],
                &save_invstd[stats],
                weight[ch],
                bias[ch],
            )
        });
    Ok(())
}

/// Positions per rayon task for the per-position statistics (fixed: each
/// position's sums run over the channels in order, whatever the split).
const POSITIONS_PER_TASK: usize = 256;

crate::multiversion! {
    /// Mean and `1/√(var + eps)` over the `C` channels of the positions
    /// `q0..q0 + mean.len()` of one image `x` (`[C, P]`), in f64, two
    /// passes; `mean64` and `acc` are scratch of at least that length.
    fn stats_block(
        mean: &mut [f32],
        invstd: &mut [f32],
        mean64: &mut [f64],
        acc: &mut [f64],
        x: &[f32],
        q0: usize,
        p: usize,
        eps: f32
    ) {
        let len = mean.len();
        let c = x.len() / p;
        let (mean64, acc) = (&mut mean64[..len], &mut acc[..len]);
        mean64.fill(0.0);
        for row in x.chunks_exact(p) {
            for (a, &v) in mean64.iter_mut().zip(&row[q0..q0 + len]) {
                *a += v as f64;
            }
        }
        for (m, a) in mean.iter_mut().zip(mean64.iter_mut()) {
            *a /= c as f64;
            *m = *a as f32;
        }
        acc.fill(0.0);
        for row in x.chunks_exact(p) {
            for ((a, &v), &m) in acc.iter_mut().zip(&row[q0..q0 + len]).zip(mean64.iter()) {
                let d = v as f64 - m;
                *a += d * d;
            }
        }
        for (s, &a) in invstd.iter_mut().zip(acc.iter()) {
            *s = super::invstd(a / c as f64, eps);
        }
    }
}

crate::multiversion! {
    /// One channel row of the output: `(x − μ)·σ̂·w + b` over its positions.
    fn normalize_row(out: &mut [f32], x: &[f32], mean: &[f32], invstd: &[f32], w: f32, b: f32) {
        for (((o, &v), &m), &s) in out.iter_mut().zip(x).zip(mean).zip(invstd) {
            *o = (v - m) * s * w + b;
        }
    }
}

/// Channels-first LayerNorm backward.
///
/// - `grad_input`: `[N, C, H, W]`, **overwritten** with
///   `σ̂ · (gw − mean_c(gw) − x̂ · mean_c(gw·x̂))`, `gw = g·weight_c`, means
///   over the channels at each position;
/// - `grad_weight`, `grad_bias`: `[C]`, **accumulated** with
///   `Σ_{n,h,w} g·x̂` and `Σ_{n,h,w} g` (per image, images in order);
/// - `grad_out`, `input`: `[N, C, H, W]`; `weight`: `[C]`; `save_mean`,
///   `save_invstd`: `[N, H, W]`, from [`layer_norm_channels_first_forward`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_channels_first_backward(
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
    const OP: &str = "layer_norm_channels_first_backward";
    let [n, c, h, w] = shape;
    check_channels(OP, shape)?;
    let stats = [n, h, w];
    Lens {
        data: &shape,
        features: c,
        stats: &stats,
    }
    .check_backward(
        OP,
        [
            grad_input.len(),
            grad_weight.len(),
            grad_bias.len(),
            grad_out.len(),
            input.len(),
            weight.len(),
            save_mean.len(),
            save_invstd.len(),
        ],
    )?;
    let p = h * w;
    if grad_input.is_empty() {
        return Ok(());
    }
    let (mut m1, mut m2) = (vec![0.0f32; n * p], vec![0.0f32; n * p]);
    if n >= rayon::current_num_threads() {
        // One image per task while it is in cache: its means, then its rows
        // (the same sums in the same order as the split below).
        let partials: Vec<Vec<f64>> = grad_input
            .par_chunks_mut(c * p)
            .zip(m1.par_chunks_mut(p).zip(m2.par_chunks_mut(p)))
            .zip(grad_out.par_chunks(c * p).zip(input.par_chunks(c * p)))
            .zip(save_mean.par_chunks(p).zip(save_invstd.par_chunks(p)))
            .map_init(
                || (vec![0.0f64; p], vec![0.0f64; p]),
                |(s1, s2), (((gi, (m1, m2)), (go, x)), (mean, invstd))| {
                    grad_means_block(m1, m2, s1, s2, go, x, weight, mean, invstd, 0, p);
                    let rows = gi
                        .chunks_exact_mut(p)
                        .zip(go.chunks_exact(p).zip(x.chunks_exact(p)));
                    let (gx, g): (Vec<f64>, Vec<f64>) = rows
                        .zip(weight)
                        .map(|((gi, (go, x)), &w)| {
                            grad_input_row(gi, go, x, mean, invstd, m1, m2, w)
                        })
                        .unzip();
                    [gx, g].concat()
                },
            )
            .collect();
        accumulate_affine_grads(grad_weight, grad_bias, &partials);
        return Ok(());
    }
    // Fewer images than threads. Per position: the means over the channels
    // of gw = g·weight_c and of gw·x̂, in parallel over blocks of positions
    // of each image...
    m1.par_chunks_mut(p)
        .zip(m2.par_chunks_mut(p))
        .zip(grad_out.par_chunks(c * p))
        .zip(input.par_chunks(c * p))
        .zip(save_mean.par_chunks(p).zip(save_invstd.par_chunks(p)))
        .for_each(|((((m1, m2), go), x), (mean, invstd))| {
            m1.par_chunks_mut(POSITIONS_PER_TASK)
                .zip(m2.par_chunks_mut(POSITIONS_PER_TASK))
                .enumerate()
                .for_each_init(
                    || {
                        (
                            vec![0.0f64; POSITIONS_PER_TASK],
                            vec![0.0f64; POSITIONS_PER_TASK],
                        )
                    },
                    |(s1, s2), (block, (m1, m2))| {
                        let q = block * POSITIONS_PER_TASK..block * POSITIONS_PER_TASK + m1.len();
                        let (mean, invstd) = (&mean[q.clone()], &invstd[q.clone()]);
                        grad_means_block(m1, m2, s1, s2, go, x, weight, mean, invstd, q.start, p)
                    },
                )
        });
    // ...then grad_input and each row's [Σ g·x̂, Σ g], in parallel over the
    // (image, channel) rows.
    let row_sums: Vec<(f64, f64)> = grad_input
        .par_chunks_mut(p)
        .zip(grad_out.par_chunks(p))
        .zip(input.par_chunks(p))
        .enumerate()
        .with_min_len((4096 / p).max(1))
        .map(|(row, ((gi, go), x))| {
            let (image, ch) = (row / c, row % c);
            let at = image * p..(image + 1) * p;
            grad_input_row(
                gi,
                go,
                x,
                &save_mean[at.clone()],
                &save_invstd[at.clone()],
                &m1[at.clone()],
                &m2[at],
                weight[ch],
            )
        })
        .collect();
    // Per image [Σ g·x̂ (C values), Σ g (C values)], images in order.
    let partials: Vec<Vec<f64>> = row_sums
        .chunks_exact(c)
        .map(|rows| {
            let (gx, g): (Vec<f64>, Vec<f64>) = rows.iter().copied().unzip();
            [gx, g].concat()
        })
        .collect();
    accumulate_affine_grads(grad_weight, grad_bias, &partials);
    Ok(())
}

crate::multiversion! {
    /// `m1 = mean_c(gw)`, `m2 = mean_c(gw·x̂)` at the positions
    /// `q0..q0 + m1.len()` of one image (`go`, `x`: `[C, P]`; `mean`,
    /// `invstd` those positions' statistics); `s1`, `s2` are f64 scratch.
    fn grad_means_block(
        m1: &mut [f32],
        m2: &mut [f32],
        s1: &mut [f64],
        s2: &mut [f64],
        go: &[f32],
        x: &[f32],
        weight: &[f32],
        mean: &[f32],
        invstd: &[f32],
        q0: usize,
        p: usize
    ) {
        let len = m1.len();
        let c = weight.len();
        let (s1, s2) = (&mut s1[..len], &mut s2[..len]);
        s1.fill(0.0);
        s2.fill(0.0);
        for ((grow, xrow), &wc) in go.chunks_exact(p).zip(x.chunks_exact(p)).zip(weight) {
            let (grow, xrow) = (&grow[q0..q0 + len], &xrow[q0..q0 + len]);
            for (((((a1, a2), &g), &v), &m), &s) in s1
                .iter_mut()
                .zip(s2.iter_mut())
                .zip(grow)
                .zip(xrow)
                .zip(mean)
                .zip(invstd)
            {
                let xhat = (v - m) * s;
                let gw = (g * wc) as f64;
                *a1 += gw;
                *a2 += gw * xhat as f64;
            }
        }
        for ((o1, o2), (&a1, &a2)) in m1.iter_mut().zip(m2.iter_mut()).zip(s1.iter().zip(s2.iter())) {
            *o1 = (a1 / c as f64) as f32;
            *o2 = (a2 / c as f64) as f32;
        }
    }
}

crate::multiversion! {
    /// One channel row of `grad_input`: `σ̂·(g·w − m1 − x̂·m2)`; returns the
    /// row's `(Σ g·x̂, Σ g)` (f64 lanes in a fixed order).
    fn grad_input_row(
        gi: &mut [f32],
        go: &[f32],
        x: &[f32],
        mean: &[f32],
        invstd: &[f32],
        m1: &[f32],
        m2: &[f32],
        w: f32
    ) -> (f64, f64) {
        for ((((((d, &g), &v), &m), &s), &a), &b) in gi
            .iter_mut()
            .zip(go)
            .zip(x)
            .zip(mean)
            .zip(invstd)
            .zip(m1)
            .zip(m2)
        {
            let xhat = (v - m) * s;
            *d = s * (g * w - a - xhat * b);
        }
        // x̂ again for Σ g·x̂ (cheaper than a scratch row), in 8 f64 lanes.
        let mut lanes = [0.0f64; 8];
        let blocks = go
            .chunks_exact(8)
            .zip(x.chunks_exact(8))
            .zip(mean.chunks_exact(8))
            .zip(invstd.chunks_exact(8));
        for (((g, v), m), s) in blocks {
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane += (g[i] * ((v[i] - m[i]) * s[i])) as f64;
            }
        }
        let n = go.len() / 8 * 8;
        let tail: f64 = (n..go.len())
            .map(|i| (go[i] * ((x[i] - mean[i]) * invstd[i])) as f64)
            .sum();
        let lanes_sum: f64 = lanes.iter().sum::<f64>() + tail;
        (lanes_sum, sum_f64(go, go, |g, _| g as f64))
    }
}

/// Channels-first LayerNorm of a `[N, C, H, W]` tensor with `[C]` weight and
/// bias.
///
/// ```
/// use convnet_tensor::{kernels::norm::layer_norm_channels_first, Tensor};
/// // Two channels at each of two positions: [[1, -2], [3, 2]] (C x P).
/// let x = Tensor::from_vec(&[1, 2, 1, 2], vec![1.0, -2.0, 3.0, 2.0])?;
/// let y = layer_norm_channels_first(&x, &Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0)?;
/// assert_eq!(y.as_slice(), &[-1.0, -1.0, 1.0, 1.0]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn layer_norm_channels_first(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let shape = x.dims4("layer_norm_channels_first")?;
    let positions = shape[0] * shape[2] * shape[3];
    let mut out = Tensor::zeros(&shape);
    let (mut mean, mut invstd) = (vec![0.0; positions], vec![0.0; positions]);
    layer_norm_channels_first_forward(
        out.as_slice_mut(),
        &mut mean,
        &mut invstd,
        x.as_slice(),
        weight.as_slice(),
        bias.as_slice(),
        shape,
        eps,
    )?;
    Ok(out)
}

#[cfg(test)]
#[path = "layer_norm_channels_first_tests.rs"]
mod tests;
