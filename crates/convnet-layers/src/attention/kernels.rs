//! The kernels of [`super::MultiheadAttention`] (also run by
//! [`crate::ShiftedWindowAttention`]): head layout changes and scaled
//! dot-product attention of every `(sample, head)` pair, forward and
//! backward.

use convnet_tensor::kernels::gemm::{gemm, Trans};
use convnet_tensor::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxGeometry};
use rayon::prelude::*;

// ---------------------------------------------------------------------------
// Layout changes. `qkv` is [N, T, 3D] with Q in columns 0..D, K in D..2D and
// V in 2D..3D; head h owns columns h·d .. (h+1)·d of each. The kernels work
// on [N, H, 3, T, d] (one contiguous chunk per (sample, head)).
// ---------------------------------------------------------------------------

/// `[N, T, 3D]` -> `[N, H, 3, T, d]`.
pub(crate) fn split_heads(qkv: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; qkv.len()];
    for (nh, chunk) in out.chunks_exact_mut(3 * t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (which, part) in chunk.chunks_exact_mut(t * hd).enumerate() {
            for (tok, row) in part.chunks_exact_mut(hd).enumerate() {
                let src = (s * t + tok) * 3 * d + which * d + head * hd;
                row.copy_from_slice(&qkv[src..src + hd]);
            }
        }
    }
    debug_assert_eq!(out.len(), n * h * 3 * t * hd);
    out
}

/// `[N, H, 3, T, d]` -> `[N, T, 3D]` (the inverse of [`split_heads`]).
pub(crate) fn unsplit_heads(heads: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; heads.len()];
    for (nh, chunk) in heads.chunks_exact(3 * t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (which, part) in chunk.chunks_exact(t * hd).enumerate() {
            for (tok, row) in part.chunks_exact(hd).enumerate() {
                let dst = (s * t + tok) * 3 * d + which * d + head * hd;
                out[dst..dst + hd].copy_from_slice(row);
            }
        }
    }
    debug_assert_eq!(out.len(), n * t * 3 * d);
    out
}

/// `[N, H, T, d]` -> `[N, T, D]` (heads side by side).
pub(crate) fn merge_heads(o: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; o.len()];
    for (nh, chunk) in o.chunks_exact(t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (tok, row) in chunk.chunks_exact(hd).enumerate() {
            let dst = (s * t + tok) * d + head * hd;
            out[dst..dst + hd].copy_from_slice(row);
        }
    }
    debug_assert_eq!(out.len(), n * t * d);
    out
}

/// `[N, T, D]` -> `[N, H, T, d]` (the inverse of [`merge_heads`]).
pub(crate) fn split_ctx(ctx: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; ctx.len()];
    for (nh, chunk) in out.chunks_exact_mut(t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (tok, row) in chunk.chunks_exact_mut(hd).enumerate() {
            let src = (s * t + tok) * d + head * hd;
            row.copy_from_slice(&ctx[src..src + hd]);
        }
    }
    debug_assert_eq!(out.len(), n * t * d);
    out
}

// ---------------------------------------------------------------------------
// Kernels: one rayon task per (sample, head), each on its own chunks.
// ---------------------------------------------------------------------------

/// The backward pass of the attention proper, from the gradient of the
/// concatenated head outputs `d_ctx` (`[N, T, D]`) to the gradient of the
/// packed projections (`[N, T, 3D]`), with the gradient of the scores
/// (`[N, H, T, T]`); `heads`, `probs` and `mask` as saved by the forward
/// pass, `[n, t, h, hd]` the sizes.
pub(crate) fn heads_backward(
    d_ctx: &[f32],
    heads: &[f32],
    probs: &[f32],
    mask: Option<&[f32]>,
    [n, t, h, hd]: [usize; 4],
) -> convnet_tensor::Result<(Vec<f32>, Vec<f32>)> {
    let d_out = split_ctx(d_ctx, n, t, h, hd);
    let mut d_heads = vec![0.0f32; heads.len()];
    let mut d_scores = vec![0.0f32; probs.len()];
    attention_backward(
        &mut d_heads,
        &mut d_scores,
        &d_out,
        heads,
        probs,
        mask,
        [t, hd],
    )?;
    Ok((unsplit_heads(&d_heads, n, t, h, hd), d_scores))
}

/// What a kernel adds to the scaled scores `Q·Kᵀ/√d` of pair `i` (a
/// `[T, T]` slice, zeroed first) before the softmax: Swin's relative
/// position bias and shifted-window masks. `None` adds nothing.
pub(crate) type ScoreTerm<'a> = Option<&'a (dyn Fn(usize, &mut [f32]) + Sync)>;

/// Scaled dot-product attention of every `(sample, head)` pair `i`.
///
/// - `out`: `[NH, T, d]`, overwritten with `(P ⊙ M) · V`;
/// - `probs`: `[NH, T, T]`, overwritten with `P = softmax(Q·Kᵀ/√d + A_i)`,
///   `A_i` what `term` adds (0 without);
/// - `heads`: `[NH, 3, T, d]` (Q, K, V of each pair);
/// - `mask`: `[NH, T, T]` dropout multipliers, if any.
pub(crate) fn attention_forward(
    out: &mut [f32],
    probs: &mut [f32],
    heads: &[f32],
    mask: Option<&[f32]>,
    term: ScoreTerm,
    t: usize,
    hd: usize,
) -> convnet_tensor::Result<()> {
    let (tt, td) = (t * t, t * hd);
    let geom = SoftmaxGeometry::new(&[t, t], 1)?;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(td)
        .zip(probs.par_chunks_mut(tt))
        .zip(heads.par_chunks(3 * td))
        .enumerate()
        .try_for_each_init(
            || vec![0.0f32; tt],
            |scratch, (i, ((o, p), qkv))| {
                let (q, kv) = qkv.split_at(td);
                let (k, v) = kv.split_at(td);
                // S[T, T] = A_i + scale · Q[T, d] · K[T, d]ᵀ
                let beta = match term {
                    Some(add) => {
                        scratch.fill(0.0);
                        add(i, scratch);
                        1.0
                    }
                    None => 0.0,
                };
                gemm(scratch, q, Trans::No, k, Trans::Yes, t, t, hd, scale, beta)?;
                softmax_forward(p, scratch, &geom)?;
                let weights: &[f32] = match mask {
                    Some(m) => {
                        for ((s, &pv), &mv) in scratch.iter_mut().zip(p.iter()).zip(&m[i * tt..]) {
                            *s = pv * mv;
                        }
                        scratch
                    }
                    None => p,
                };
                // O[T, d] = W[T, T] · V[T, d]
                gemm(o, weights, Trans::No, v, Trans::No, t, hd, t, 1.0, 0.0)
            },
        )
}

/// The backward pass of [`attention_forward`].
///
/// - `d_heads`: `[NH, 3, T, d]`, overwritten with dQ, dK, dV;
/// - `d_scores`: `[NH, T, T]`, overwritten with dS, the gradient of the
///   scores (and so of what `term` added);
/// - `d_out`: `[NH, T, d]`, the gradient of `out`;
/// - `heads`, `probs`, `mask`: as saved by the forward pass;
/// - `[t, hd]`: tokens and head width.
fn attention_backward(
    d_heads: &mut [f32],
    d_scores: &mut [f32],
    d_out: &[f32],
    heads: &[f32],
    probs: &[f32],
    mask: Option<&[f32]>,
    [t, hd]: [usize; 2],
) -> convnet_tensor::Result<()> {
    let (tt, td) = (t * t, t * hd);
    let geom = SoftmaxGeometry::new(&[t, t], 1)?;
    let scale = 1.0 / (hd as f32).sqrt();
    d_heads
        .par_chunks_mut(3 * td)
        .zip(d_scores.par_chunks_mut(tt))
        .zip(d_out.par_chunks(td))
        .zip(heads.par_chunks(3 * td))
        .zip(probs.par_chunks(tt))
        .enumerate()
        .try_for_each_init(
            || vec![0.0f32; tt],
            |dp, (i, ((((dqkv, ds), d_o), qkv), p))| {
                let (q, kv) = qkv.split_at(td);
                let (k, v) = kv.split_at(td);
                let (dq, dkv) = dqkv.split_at_mut(td);
                let (dk, dv) = dkv.split_at_mut(td);
                let m = mask.map(|m| &m[i * tt..(i + 1) * tt]);
                // The weights used by the forward pass: P ⊙ M (kept in `ds`).
                let weights: &[f32] = match m {
                    Some(m) => {
                        for ((w, &pv), &mv) in ds.iter_mut().zip(p).zip(m) {
                            *w = pv * mv;
                        }
                        ds
                    }
                    None => p,
                };
                // dV[T, d] = Wᵀ[T, T] · dO[T, d]
                gemm(dv, weights, Trans::Yes, d_o, Trans::No, t, hd, t, 1.0, 0.0)?;
                // dW[T, T] = dO[T, d] · V[T, d]ᵀ, then dP = dW ⊙ M
                gemm(dp, d_o, Trans::No, v, Trans::Yes, t, t, hd, 1.0, 0.0)?;
                if let Some(m) = m {
                    dp.iter_mut().zip(m).for_each(|(g, &mv)| *g *= mv);
                }
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                softmax_backward(ds, dp, p, &geom)?;
                // dQ = scale · dS · K ; dK = scale · dSᵀ · Q
                gemm(dq, ds, Trans::No, k, Trans::No, t, hd, t, scale, 0.0)?;
                gemm(dk, ds, Trans::Yes, q, Trans::No, t, hd, t, scale, 0.0)
            },
        )
}
