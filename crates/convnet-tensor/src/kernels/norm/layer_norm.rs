//! LayerNorm over the last axis of `[rows, D]` (PyTorch's `LayerNorm(D)`):
//! forward and backward.

use rayon::prelude::*;

use super::{accumulate_affine_grads, check_eps, invstd, Lens};
use crate::error::{fmt_shape, Result, TensorError};
use crate::kernels::vmath::sum_f64;
use crate::tensor::Tensor;

/// Rows per rayon task in the backward pass. Fixed (not derived from the
/// thread count) so that the weight and bias gradients, summed block by
/// block in block order, are the same whatever the number of threads.
const ROWS_PER_BLOCK: usize = 16;

fn check_dim(op: &'static str, rows: usize, dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(TensorError::invalid(
            op,
            format!(
                "cannot normalise over an empty last axis (shape {})",
                fmt_shape(&[rows, dim])
            ),
        ));
    }
    Ok(())
}

/// LayerNorm forward over the last axis.
///
/// - `out`: `[rows, D]`, overwritten with `(x − μ_r)·σ̂_r·weight + bias`;
/// - `save_mean`, `save_invstd`: `[rows]`, overwritten with each row's mean
///   and `1/√(var + eps)` (biased variance), for [`layer_norm_backward`];
/// - `input`: `[rows, D]`; `weight`, `bias`: `[D]`.
///
/// Parallel over rows.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward(
    out: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    rows: usize,
    dim: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "layer_norm_forward";
    check_dim(OP, rows, dim)?;
    Lens {
        data: &[rows, dim],
        features: dim,
        stats: &[rows],
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
    // Whole rows per task (about 4K elements), each row on its own.
    let rows_per_task = (4096 / dim).max(1);
    out.par_chunks_mut(rows_per_task * dim)
        .zip(save_mean.par_chunks_mut(rows_per_task))
        .zip(save_invstd.par_chunks_mut(rows_per_task))
        .zip(input.par_chunks(rows_per_task * dim))
        .for_each(|(((o, m), s), x)| forward_rows(o, m, s, x, weight, bias, dim, eps));
    Ok(())
}

crate::multiversion! {
    /// The forward pass of whole rows, compiled for the SIMD level in use.
    /// Mean and variance in two passes, each in f64 lanes in a fixed order.
    fn forward_rows(
        out: &mut [f32],
        save_mean: &mut [f32],
        save_invstd: &mut [f32],
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        dim: usize,
        eps: f32
    ) {
        let rows = out
            .chunks_exact_mut(dim)
            .zip(save_mean.iter_mut().zip(save_invstd.iter_mut()))
            .zip(input.chunks_exact(dim));
        for ((o, (m, s)), x) in rows {
            let mean = sum_f64(x, x, |v, _| v as f64) / dim as f64;
            let var = sum_f64(x, x, |v, _| {
                let d = v as f64 - mean;
                d * d
            }) / dim as f64;
            *m = mean as f32;
            *s = invstd(var, eps);
            let (m, s) = (*m, *s);
            for (((o, &v), &w), &b) in o.iter_mut().zip(x).zip(weight).zip(bias) {
                *o = (v - m) * s * w + b;
            }
        }
    }
}

/// LayerNorm backward over the last axis.
///
/// - `grad_input`: `[rows, D]`, **overwritten** with
///   `σ̂_r · (gw − mean(gw) − x̂ · mean(gw·x̂))`, `gw = g·weight`, means over
///   the row;
/// - `grad_weight`, `grad_bias`: `[D]`, **accumulated** with `Σ_rows g·x̂`
///   and `Σ_rows g` (summed in blocks of rows, blocks in order);
/// - `grad_out`, `input`: `[rows, D]`; `weight`: `[D]`; `save_mean`,
///   `save_invstd`: `[rows]`, from [`layer_norm_forward`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    grad_input: &mut [f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_out: &[f32],
    input: &[f32],
    weight: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    rows: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "layer_norm_backward";
    check_dim(OP, rows, dim)?;
    Lens {
        data: &[rows, dim],
        features: dim,
        stats: &[rows],
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
    let block = ROWS_PER_BLOCK * dim;
    // Each block returns its partial [Σ g·x̂ (D values), Σ g (D values)].
    let partials: Vec<Vec<f64>> = grad_input
        .par_chunks_mut(block)
        .zip(grad_out.par_chunks(block))
        .zip(input.par_chunks(block))
        .zip(save_mean.par_chunks(ROWS_PER_BLOCK))
        .zip(save_invstd.par_chunks(ROWS_PER_BLOCK))
        .map(|((((gi, go), x), means), invstds)| {
            let mut acc = vec![0.0f64; 2 * dim];
            let mut gw = vec![0.0f32; dim];
            backward_block(&mut acc, &mut gw, gi, go, x, weight, means, invstds, dim);
            acc
        })
        .collect();
    accumulate_affine_grads(grad_weight, grad_bias, &partials);
    Ok(())
}

crate::multiversion! {
    /// The backward pass of a block of rows, compiled for the SIMD level in
    /// use: `gi` overwritten, `acc` = `[Σ g·x̂ (D values), Σ g (D values)]`
    /// accumulated over the block's rows in order; `gw` is a scratch row.
    fn backward_block(
        acc: &mut [f64],
        gw: &mut [f32],
        gi: &mut [f32],
        go: &[f32],
        x: &[f32],
        weight: &[f32],
        means: &[f32],
        invstds: &[f32],
        dim: usize
    ) {
        let (acc_gx, acc_g) = acc.split_at_mut(dim);
        let rows = gi
            .chunks_exact_mut(dim)
            .zip(go.chunks_exact(dim))
            .zip(x.chunks_exact(dim));
        for (((gi, go), x), (&m, &s)) in rows.zip(means.iter().zip(invstds)) {
            // x̂ into gi and gw = g·weight into the scratch row, then Σ gw
            // and Σ gw·x̂ over the row.
            for ((((xh, gw), &v), &g), &w) in gi.iter_mut().zip(gw.iter_mut()).zip(x).zip(go).zip(weight) {
                *xh = (v - m) * s;
                *gw = g * w;
            }
            let s1 = sum_f64(gw, gw, |a, _| a as f64);
            let s2 = sum_f64(gw, gi, |a, xh| a as f64 * xh as f64);
            let (mean1, mean2) = ((s1 / dim as f64) as f32, (s2 / dim as f64) as f32);
            for ((((gi, &g), &gw), agx), ag) in gi
                .iter_mut()
                .zip(go)
                .zip(gw.iter())
                .zip(acc_gx.iter_mut())
                .zip(acc_g.iter_mut())
            {
                let xhat = *gi;
                *gi = s * (gw - mean1 - xhat * mean2);
                *agx += (g * xhat) as f64;
                *ag += g as f64;
            }
        }
    }
}

/// LayerNorm of a tensor over its last axis (PyTorch's
/// `F.layer_norm(x, (D,), weight, bias, eps)`), for any rank ≥ 1; `weight`
/// and `bias` hold `D` elements.
///
/// ```
/// use convnet_tensor::{kernels::norm::layer_norm, Tensor};
/// let x = Tensor::from_vec(&[2, 2], vec![1.0, 3.0, -2.0, 2.0])?;
/// let y = layer_norm(&x, &Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0)?;
/// assert_eq!(y.as_slice(), &[-1.0, 1.0, -1.0, 1.0]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    let Some(&dim) = x.shape().last() else {
        return Err(TensorError::shape(
            OP,
            "rank",
            "at least 1 axis",
            "a scalar",
        ));
    };
    let rows = x.len().checked_div(dim).unwrap_or(0);
    let mut out = Tensor::zeros(x.shape());
    let (mut mean, mut invstd) = (vec![0.0; rows], vec![0.0; rows]);
    layer_norm_forward(
        out.as_slice_mut(),
        &mut mean,
        &mut invstd,
        x.as_slice(),
        weight.as_slice(),
        bias.as_slice(),
        rows,
        dim,
        eps,
    )
    .map_err(|e| match e {
        TensorError::Shape {
            op,
            what,
            expected,
            got,
        } => TensorError::Shape {
            op,
            what,
            expected,
            got: format!("{got} (input {})", fmt_shape(x.shape())),
        },
        other => other,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{project, projection};
    use crate::kernels::test_util::{assert_close, assert_deterministic, bits, gradcheck};
    use crate::rng::Rng;

    fn forward(x: &[f32], w: &[f32], b: &[f32], rows: usize, dim: usize) -> [Vec<f32>; 3] {
        let mut out = vec![0.0; x.len()];
        let (mut m, mut s) = (vec![0.0; rows], vec![0.0; rows]);
        layer_norm_forward(&mut out, &mut m, &mut s, x, w, b, rows, dim, 1e-5).unwrap();
        [out, m, s]
    }

    fn random(rows: usize, dim: usize, seed: u64) -> [Vec<f32>; 3] {
        let mut rng = Rng::seed_from(seed);
        [
            Tensor::randn(&[rows, dim], -2.0, 1.5, &mut rng).into_vec(),
            Tensor::randn(&[dim], 1.0, 0.5, &mut rng).into_vec(),
            Tensor::randn(&[dim], 0.0, 0.5, &mut rng).into_vec(),
        ]
    }

    #[test]
    fn forward_matches_naive_formula() {
        for (rows, dim) in [(5, 7), (1, 16), (37, 3)] {
            let [x, w, b] = random(rows, dim, 1);
            let [out, m, s] = forward(&x, &w, &b, rows, dim);
            let mut want = Vec::new();
            for (r, row) in x.chunks(dim).enumerate() {
                let mu = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
                let var = row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / dim as f64;
                assert!((m[r] as f64 - mu).abs() < 1e-6);
                assert!((s[r] as f64 - 1.0 / (var + 1e-5).sqrt()).abs() < 1e-5);
                for (d, &v) in row.iter().enumerate() {
                    want.push((v as f64 - mu) / (var + 1e-5).sqrt() * w[d] as f64 + b[d] as f64);
                }
            }
            assert_close(&out, &want, 2e-6, &format!("[{rows}, {dim}]"));
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        // 37 rows spans several row blocks, so the block reduction is covered.
        for (i, (rows, dim)) in [(4, 6), (37, 3), (2, 1)].into_iter().enumerate() {
            let [x, w, b] = random(rows, dim, 10 + i as u64);
            let r = projection(x.len(), i as u64);
            let [_, m, s] = forward(&x, &w, &b, rows, dim);
            let mut gx = vec![f32::NAN; x.len()];
            let (mut gw, mut gb) = (vec![0.5; dim], vec![0.25; dim]);
            layer_norm_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, rows, dim).unwrap();
            gw.iter_mut().for_each(|v| *v -= 0.5);
            gb.iter_mut().for_each(|v| *v -= 0.25);
            let loss =
                |x: &[f32], w: &[f32], b: &[f32]| project(&forward(x, w, b, rows, dim)[0], &r);
            let what = format!("[{rows}, {dim}]");
            gradcheck(&format!("{what} input"), |p| loss(p, &w, &b), &x, &gx);
            gradcheck(&format!("{what} weight"), |p| loss(&x, p, &b), &w, &gw);
            gradcheck(&format!("{what} bias"), |p| loss(&x, &w, p), &b, &gb);
        }
    }

    #[test]
    fn bad_shapes_are_errors_naming_them() {
        let x = vec![0.0; 12];
        let (mut out, mut m, mut s) = (vec![0.0; 12], vec![0.0; 3], vec![0.0; 3]);
        let e = layer_norm_forward(
            &mut out, &mut m, &mut s, &x, &[1.0; 3], &[0.0; 4], 3, 4, 1e-5,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("weight") && e.contains("[4]"), "{e}");
        let e = layer_norm_forward(
            &mut out,
            &mut m[..2],
            &mut s,
            &x,
            &[1.0; 4],
            &[0.0; 4],
            3,
            4,
            1e-5,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("save_mean") && e.contains("[3]"), "{e}");
        let (mut gw, mut gb) = (vec![0.0; 4], vec![0.0; 4]);
        let e = layer_norm_backward(
            &mut out,
            &mut gw,
            &mut gb,
            &x[1..],
            &x,
            &[1.0; 4],
            &m,
            &s,
            3,
            4,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("grad_out") && e.contains("[3, 4]"), "{e}");
        let t = Tensor::zeros(&[2, 5]);
        let e = layer_norm(&t, &Tensor::ones(&[4]), &Tensor::zeros(&[4]), 1e-5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 5]"), "{e}");
        assert!(layer_norm(&Tensor::scalar(1.0), &t, &t, 1e-5).is_err());
        assert!(layer_norm(
            &Tensor::zeros(&[3, 0]),
            &Tensor::zeros(&[0]),
            &Tensor::zeros(&[0]),
            1e-5
        )
        .is_err());
    }

    #[test]
    fn parallel_results_are_bit_identical() {
        let (rows, dim) = (1000, 96);
        let [x, w, b] = random(rows, dim, 20);
        let r = projection(x.len(), 21);
        let run = || {
            let [out, m, s] = forward(&x, &w, &b, rows, dim);
            let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; dim], vec![0.0; dim]);
            layer_norm_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, rows, dim).unwrap();
            [out, m, s, gx, gw, gb]
                .iter()
                .map(|t| bits(t))
                .collect::<Vec<_>>()
        };
        assert_deterministic(run);
    }
}
