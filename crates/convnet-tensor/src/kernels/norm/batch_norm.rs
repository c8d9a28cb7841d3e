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
    let scale: Vec<f32> = running_var
        .iter()
        .zip(weight)
        .map(|(&v, &w)| (w as f64 / (v as f64 + eps as f64).sqrt()) as f32)
        .collect();
    affine_planes(out, input, running_mean, &scale, bias, shape);
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
mod tests {
    use super::*;
    use crate::gradcheck::{project, projection};
    use crate::kernels::test_util::{assert_close, assert_deterministic, bits, gradcheck};
    use crate::rng::Rng;

    /// Training forward by the textbook formula, in f64.
    fn naive_train(x: &[f32], w: &[f32], b: &[f32], s: [usize; 4], eps: f64) -> Vec<f64> {
        let [n, c, h, wd] = s;
        let m = (n * h * wd) as f64;
        let idx = |i: usize, ch: usize, j: usize| (i * c + ch) * h * wd + j;
        let mut out = vec![0.0; x.len()];
        for ch in 0..c {
            let mut mean = 0.0;
            for i in 0..n {
                for j in 0..h * wd {
                    mean += x[idx(i, ch, j)] as f64 / m;
                }
            }
            let mut var = 0.0;
            for i in 0..n {
                for j in 0..h * wd {
                    var += (x[idx(i, ch, j)] as f64 - mean).powi(2) / m;
                }
            }
            for i in 0..n {
                for j in 0..h * wd {
                    out[idx(i, ch, j)] = (x[idx(i, ch, j)] as f64 - mean) / (var + eps).sqrt()
                        * w[ch] as f64
                        + b[ch] as f64;
                }
            }
        }
        out
    }

    struct Setup {
        x: Vec<f32>,
        w: Vec<f32>,
        b: Vec<f32>,
    }

    fn setup(shape: [usize; 4], seed: u64) -> Setup {
        let mut rng = Rng::seed_from(seed);
        let c = shape[1];
        Setup {
            // An offset mean checks that the variance does not cancel.
            x: Tensor::randn(&shape, 3.0, 2.0, &mut rng).into_vec(),
            w: Tensor::randn(&[c], 1.0, 0.5, &mut rng).into_vec(),
            b: Tensor::randn(&[c], 0.0, 0.5, &mut rng).into_vec(),
        }
    }

    /// Runs the training forward and returns (out, mean, invstd, unbiased var).
    fn train(x: &[f32], w: &[f32], b: &[f32], shape: [usize; 4]) -> [Vec<f32>; 4] {
        let c = shape[1];
        let mut out = vec![0.0; x.len()];
        let (mut m, mut s, mut v) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        batch_norm2d_forward_train(&mut out, &mut m, &mut s, &mut v, x, w, b, shape, 1e-5).unwrap();
        [out, m, s, v]
    }

    #[test]
    fn train_forward_matches_naive_formula() {
        for shape in [[3, 2, 5, 4], [1, 3, 7, 3], [4, 5, 1, 1]] {
            let Setup { x, w, b } = setup(shape, 1);
            let [out, mean, invstd, uvar] = train(&x, &w, &b, shape);
            assert_close(&out, &naive_train(&x, &w, &b, shape, 1e-5), 2e-5, "out");
            // Saved statistics agree with the output they produced.
            let m = (shape[0] * shape[2] * shape[3]) as f64;
            for ch in 0..shape[1] {
                let vals: Vec<f64> = channel(&x, shape, ch).map(|&v| v as f64).collect();
                let mu = vals.iter().sum::<f64>() / m;
                let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m;
                assert!((mean[ch] as f64 - mu).abs() < 1e-5);
                assert!((invstd[ch] as f64 - 1.0 / (var + 1e-5).sqrt()).abs() < 1e-5);
                assert!((uvar[ch] as f64 - var * m / (m - 1.0)).abs() < 1e-4 * var);
            }
        }
    }

    #[test]
    fn inference_formula_on_a_hand_computed_example() {
        // Two channels, x = [[1, 2], [3, 4]] (one image, 1x2 planes):
        // channel 0: mean 1, var 4, weight 2, bias 0.5 -> (x-1)/2*2+0.5 = [0.5, 1.5]
        // channel 1: mean 2, var 0.25, weight 1, bias -1 -> (x-2)/0.5-1 = [1, 3]
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        batch_norm2d_forward_infer(
            &mut out,
            &x,
            &[1.0, 2.0],
            &[4.0, 0.25],
            &[2.0, 1.0],
            &[0.5, -1.0],
            [1, 2, 1, 2],
            0.0,
        )
        .unwrap();
        assert_eq!(out, [0.5, 1.5, 1.0, 3.0]);
        // With eps = 1e-5: the divisor is √(var + eps).
        batch_norm2d_forward_infer(
            &mut out,
            &x,
            &[1.0, 2.0],
            &[4.0, 0.25],
            &[2.0, 1.0],
            &[0.5, -1.0],
            [1, 2, 1, 2],
            1e-5,
        )
        .unwrap();
        let k0 = 2.0 / (4.0f64 + 1e-5).sqrt();
        let k1 = 1.0 / (0.25f64 + 1e-5).sqrt();
        assert_close(
            &out,
            &[0.5, k0 + 0.5, k1 - 1.0, 2.0 * k1 - 1.0],
            1e-7,
            "eps",
        );
    }

    #[test]
    fn running_stats_update_as_pytorch() {
        // momentum 0.1: running = 0.9 running + 0.1 batch (variance unbiased).
        let x = [1.0, 3.0, 5.0, 7.0]; // one channel, 4 values: mean 4, biased var 5, unbiased 20/3
        let [_, m, _, v] = train(&x, &[1.0], &[0.0], [2, 1, 1, 2]);
        assert_eq!(m, [4.0]);
        assert!((v[0] - 20.0 / 3.0).abs() < 1e-6);
        let (mut rm, mut rv) = ([0.0], [1.0]);
        batch_norm_update_running_stats(&mut rm, &mut rv, &m, &v, 0.1).unwrap();
        assert!((rm[0] - 0.4).abs() < 1e-7);
        assert!((rv[0] - (0.9 + 2.0 / 3.0)).abs() < 1e-6);
        assert!(batch_norm_update_running_stats(&mut rm, &mut rv, &m, &v, 1.5).is_err());
        assert!(batch_norm_update_running_stats(&mut rm, &mut rv, &[1.0, 2.0], &v, 0.1).is_err());
    }

    #[test]
    fn backward_matches_finite_differences() {
        for (i, shape) in [[3, 2, 3, 4], [1, 3, 5, 2], [6, 2, 1, 1]]
            .into_iter()
            .enumerate()
        {
            let Setup { x, w, b } = setup(shape, 10 + i as u64);
            let c = shape[1];
            let r = projection(x.len(), i as u64);
            let [_, mean, invstd, _] = train(&x, &w, &b, shape);
            let mut gx = vec![f32::NAN; x.len()];
            // Parameter gradients accumulate onto what is there.
            let (mut gw, mut gb) = (vec![1.0; c], vec![-2.0; c]);
            batch_norm2d_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &mean, &invstd, shape)
                .unwrap();
            gw.iter_mut().for_each(|v| *v -= 1.0);
            gb.iter_mut().for_each(|v| *v += 2.0);
            let loss = |x: &[f32], w: &[f32], b: &[f32]| project(&train(x, w, b, shape)[0], &r);
            gradcheck(&format!("{shape:?} input"), |p| loss(p, &w, &b), &x, &gx);
            gradcheck(&format!("{shape:?} weight"), |p| loss(&x, p, &b), &w, &gw);
            gradcheck(&format!("{shape:?} bias"), |p| loss(&x, &w, p), &b, &gb);
        }
    }

    #[test]
    fn bad_shapes_are_errors_naming_them() {
        let shape = [2, 3, 4, 4];
        let x = vec![0.5; 96];
        let (mut out, mut m, mut s, mut v) = (vec![0.0; 96], [0.0; 3], [0.0; 3], [0.0; 3]);
        let e = batch_norm2d_forward_train(
            &mut out, &mut m, &mut s, &mut v, &x, &[1.0; 2], &[0.0; 3], shape, 1e-5,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("weight") && e.contains("[3]"), "{e}");
        let e = batch_norm2d_forward_train(
            &mut out,
            &mut m,
            &mut s,
            &mut v,
            &x[1..],
            &[1.0; 3],
            &[0.0; 3],
            shape,
            1e-5,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input") && e.contains("[2, 3, 4, 4]"), "{e}");
        // One value per channel cannot be normalised with batch statistics.
        let e = batch_norm2d_forward_train(
            &mut out[..3],
            &mut m,
            &mut s,
            &mut v,
            &x[..3],
            &[1.0; 3],
            &[0.0; 3],
            [1, 3, 1, 1],
            1e-5,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("more than 1 value") && e.contains("[1, 3, 1, 1]"),
            "{e}"
        );
        assert!(batch_norm2d_forward_train(
            &mut out,
            &mut m,
            &mut s,
            &mut v,
            &x,
            &[1.0; 3],
            &[0.0; 3],
            shape,
            f32::NAN,
        )
        .is_err());
        let (mut gx, mut gw, mut gb) = (vec![0.0; 96], [0.0; 3], [0.0; 3]);
        let e = batch_norm2d_backward(
            &mut gx,
            &mut gw,
            &mut gb,
            &x[..95],
            &x,
            &[1.0; 3],
            &m,
            &s,
            shape,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("grad_out"), "{e}");
        assert!(batch_norm2d_forward_infer(
            &mut out, &x, &[0.0; 4], &[1.0; 3], &[1.0; 3], &[0.0; 3], shape, 1e-5
        )
        .is_err());
        let t = Tensor::zeros(&[3]);
        assert!(batch_norm2d_infer(&Tensor::zeros(&[2, 3]), &t, &t, &t, &t, 1e-5).is_err());
    }

    #[test]
    fn parallel_results_are_bit_identical() {
        let shape = [8, 32, 12, 12];
        let Setup { x, w, b } = setup(shape, 20);
        let r = projection(x.len(), 21);
        let run = || {
            let [out, m, s, v] = train(&x, &w, &b, shape);
            let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; 32], vec![0.0; 32]);
            batch_norm2d_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, shape).unwrap();
            [out, m, s, v, gx, gw, gb]
                .iter()
                .map(|t| bits(t))
                .collect::<Vec<_>>()
        };
        assert_deterministic(run);
    }
}
