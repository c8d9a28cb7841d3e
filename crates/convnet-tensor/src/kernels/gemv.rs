//! Matrix-vector products for a few rows (GEMV): the batch-1 dense layer.
//!
//! `Y[m×n] = alpha · X[m×k] · op(W) + beta · Y`, row-major, for small `m`
//! (1 to a few rows), where `op(W)` is `W` (stored `[k, n]`) or `Wᵀ` (stored
//! `[n, k]`, the dense layer's forward: `y = x · Wᵀ`). When `beta == 0`, `Y`
//! is overwritten (NaNs in it do not propagate).
//!
//! At batch 1 a dense layer is memory bound: every weight is used once per
//! row of `X`. A general sgemm packs the whole weight matrix (a copy of
//! hundreds of MB for AlexNet's and VGG's classifiers) and splits the rows of
//! `Y` over threads, so one row gets one thread. Here the weight is read in
//! place, once, by all threads: the columns of `Y` (rows of `W` for `Wᵀ`)
//! are split in contiguous blocks over rayon's pool, and each weight loaded
//! serves up to [`ROW_GROUP`] rows of `X`.
//!
//! - `op(W) = Wᵀ`: each output is a dot product of a row of `W` with a row of
//!   `X`, summed in [`LANES`] independent partial sums ([`dot_rows`]).
//! - `op(W) = W`: each row of `W` is added to the outputs scaled by an element
//!   of `X` (an axpy, [`axpy4`]), over a block of columns kept in cache.
//!
//! Every output is summed in a fixed order that depends on neither the block
//! split nor the thread count nor `m`, so the results are bit-identical for
//! any number of threads.

use rayon::prelude::*;

use super::gemm::{check_lens, Trans};
use crate::error::Result;

/// Partial sums per dot product: two AVX2 vectors or one AVX-512 vector, so
/// the compiler vectorises the loop and hides the add latency.
pub const LANES: usize = 16;

/// Up to this many rows of `X`, the GEMV beats [`gemm_parallel`] on a dense
/// layer's shapes (which splits the rows of `Y`, so runs one thread there).
///
/// [`gemm_parallel`]: super::gemm::gemm_parallel
pub const GEMV_MAX_ROWS: usize = 4;

/// Rows of `X` served per weight load.
pub const ROW_GROUP: usize = 4;

/// Below this many multiply-adds (`n·k`) the product stays on one thread.
const PARALLEL_MIN: usize = 1 << 16;

/// Widest column block of the `op(W) = W` form (floats per row of `Y`), so
/// that [`ROW_GROUP`] rows of outputs stay in the L1 cache.
const AXPY_BLOCK: usize = 2048;

/// `Y = alpha · X · op(W) + beta · Y` on the calling thread.
///
/// `y` is `[m, n]`, `x` is `[m, k]`, `op(w)` is `[k, n]` (so `w` is stored
/// `[k, n]` for [`Trans::No`] and `[n, k]` for [`Trans::Yes`]). Errors if a
/// slice is too short for its shape. Gives the same bits as
/// [`gemv_parallel`].
///
/// ```
/// use convnet_tensor::kernels::gemm::Trans;
/// use convnet_tensor::kernels::gemv::gemv;
/// let w = [1., 2., 3., 4., 5., 6.]; // [[1, 2], [3, 4], [5, 6]]
/// let x = [1., -1.];
/// let mut y = [0.0; 3];
/// gemv(&mut y, &x, &w, Trans::Yes, 1, 3, 2, 1.0, 0.0).unwrap(); // x · Wᵀ
/// assert_eq!(y, [-1., -1., -1.]);
/// let x = [1., 0., -1.];
/// let mut y = [0.0; 2];
/// gemv(&mut y, &x, &w, Trans::No, 1, 2, 3, 1.0, 0.0).unwrap(); // x · W
/// assert_eq!(y, [-4., -4.]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemv(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    trans_w: Trans,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    check_lens(y, x, w, m, n, k)?;
    product(y, x, w, trans_w, (m, n, k), alpha, beta, 1);
    Ok(())
}

/// [`gemv`] with the columns of `Y` split over rayon's pool when the product
/// is large enough and the caller is not already a rayon task (then it runs
/// on the calling thread). Bit-identical to [`gemv`] for any thread count.
#[allow(clippy::too_many_arguments)]
pub fn gemv_parallel(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    trans_w: Trans,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    check_lens(y, x, w, m, n, k)?;
    let threads = rayon::current_num_threads();
    let inside_pool = rayon::current_thread_index().is_some();
    let tasks = if inside_pool || n * k < PARALLEL_MIN {
        1
    } else {
        threads
    };
    product(y, x, w, trans_w, (m, n, k), alpha, beta, tasks);
    Ok(())
}

/// The product over `tasks` rayon tasks (1: on this thread). The lengths
/// were checked by the caller.
#[allow(clippy::too_many_arguments)]
fn product(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    trans_w: Trans,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
    tasks: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let y = &mut y[..m * n];
    let x = &x[..m * k];
    if k == 0 {
        // An empty sum: Y = beta · Y.
        y.iter_mut()
            .for_each(|v| *v = if beta == 0.0 { 0.0 } else { beta * *v });
        return;
    }
    // Column blocks: a few per thread for balance, whole rows of W apiece.
    let block = match trans_w {
        Trans::Yes => n.div_ceil(4 * tasks).max(1),
        // At most AXPY_BLOCK wide, a multiple of `tasks` blocks (balance).
        Trans::No => {
            let blocks = n.div_ceil(AXPY_BLOCK).next_multiple_of(tasks);
            n.div_ceil(blocks).next_multiple_of(LANES)
        }
    };
    let blocks = column_blocks(y, n, block);
    let run = |(j0, mut ys): (usize, Vec<&mut [f32]>)| match trans_w {
        Trans::Yes => dot_block(&mut ys, x, w, j0, k, alpha, beta),
        Trans::No => axpy_block(&mut ys, x, w, j0, (n, k), alpha, beta),
    };
    if tasks > 1 {
        blocks.into_par_iter().for_each(run);
    } else {
        blocks.into_iter().for_each(run);
    }
}

/// Splits the `m` rows of `y` (`[m, n]`) into column blocks of `block`
/// columns: for each block, its first column and its segment of every row.
fn column_blocks(y: &mut [f32], n: usize, block: usize) -> Vec<(usize, Vec<&mut [f32]>)> {
    let mut rows: Vec<&mut [f32]> = y.chunks_exact_mut(n).collect();
    let mut blocks = Vec::with_capacity(n.div_ceil(block));
    for j0 in (0..n).step_by(block) {
        let width = block.min(n - j0);
        let segments = rows
            .iter_mut()
            .map(|row| {
                let (head, tail) = std::mem::take(row).split_at_mut(width);
                *row = tail;
                head
            })
            .collect();
        blocks.push((j0, segments));
    }
    blocks
}

/// `op(W) = Wᵀ` for the columns `j0..j0 + width` of `Y`: `ys[i][j - j0] =
/// alpha · dot(X[i, :], W[j, :]) + beta · ys[i][j - j0]`.
fn dot_block(
    ys: &mut [&mut [f32]],
    x: &[f32],
    w: &[f32],
    j0: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) {
    let width = ys.first().map_or(0, |s| s.len());
    let xs: Vec<&[f32]> = x.chunks_exact(k).collect();
    for jj in 0..width {
        let w_row = &w[(j0 + jj) * k..(j0 + jj + 1) * k];
        let mut i0 = 0;
        while i0 < xs.len() {
            let g = (xs.len() - i0).min(ROW_GROUP);
            let sums = if g == 1 {
                let [sum] = dot_rows::<1>(w_row, [xs[i0]]);
                [sum, 0.0, 0.0, 0.0]
            } else {
                // Two or three rows ride in a group of four (repeating the
                // last): one code path, and the extra sums cost nothing
                // next to the weights' load.
                let row = |r: usize| xs[i0 + r.min(g - 1)];
                dot_rows::<ROW_GROUP>(w_row, [row(0), row(1), row(2), row(3)])
            };
            for (r, s) in sums.iter().take(g).enumerate() {
                let out = &mut ys[i0 + r][jj];
                *out = if beta == 0.0 {
                    alpha * s
                } else {
                    alpha * s + beta * *out
                };
            }
            i0 += g;
        }
    }
}

/// The dot products of `w` with each of the `M` slices of `xs` (each at
/// least `w.len()` long), reading `w` once: the GEMV's inner loop.
///
/// Each product is summed in [`LANES`] partial sums (element `p` into lane
/// `p % LANES`), which are then added pairwise in a fixed tree, so the
/// result does not depend on `M`. Plain multiply and add, no fused FMA: the
/// same bits at every SIMD level.
#[inline(always)]
pub fn dot_rows<const M: usize>(w: &[f32], xs: [&[f32]; M]) -> [f32; M] {
    let k = w.len();
    let body = k - k % LANES;
    let mut acc = [[0.0f32; LANES]; M];
    for (c, wv) in w[..body].chunks_exact(LANES).enumerate() {
        let wv: &[f32; LANES] = wv.try_into().expect("chunks of LANES");
        let p = c * LANES;
        for (acc_r, x) in acc.iter_mut().zip(&xs) {
            let xv: &[f32; LANES] = x[p..p + LANES].try_into().expect("LANES");
            lanes_step(acc_r, wv, xv);
        }
    }
    if body < k {
        // The tail, zero-padded to a full step (adding 0·0 changes no sum):
        // the accumulators are only ever indexed by constants, so they stay
        // in registers (indexing them by a variable spills them all).
        let padded = |v: &[f32]| {
            let mut out = [0.0f32; LANES];
            out[..k - body].copy_from_slice(&v[body..k]);
            out
        };
        let wv = padded(w);
        for (acc_r, x) in acc.iter_mut().zip(&xs) {
            lanes_step(acc_r, &wv, &padded(x));
        }
    }
    acc.map(reduce_lanes)
}

/// `acc[l] += w[l] · x[l]` for every lane `l`.
#[inline(always)]
fn lanes_step(acc: &mut [f32; LANES], w: &[f32; LANES], x: &[f32; LANES]) {
    for l in 0..LANES {
        acc[l] += w[l] * x[l];
    }
}

/// The sum of the lanes, added pairwise (16 → 8 → 4 → 2 → 1).
#[inline(always)]
fn reduce_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `op(W) = W` for the columns `j0..j0 + width` of `Y`: the segments are set
/// to `beta · Y` (zero when `beta == 0`), then each row `p` of `W` is added
/// scaled by `alpha · X[i, p]`, in order of `p`.
fn axpy_block(
    ys: &mut [&mut [f32]],
    x: &[f32],
    w: &[f32],
    j0: usize,
    (n, k): (usize, usize),
    alpha: f32,
    beta: f32,
) {
    let width = ys.first().map_or(0, |s| s.len());
    for seg in ys.iter_mut() {
        if beta == 0.0 {
            seg.fill(0.0);
        } else if beta != 1.0 {
            seg.iter_mut().for_each(|v| *v *= beta);
        }
    }
    let w_row = |p: usize| &w[p * n + j0..p * n + j0 + width];
    // Four rows of W per pass over the outputs; a row of W's block is read
    // from memory once and served to every row of Y from the cache (with
    // k <= 4, the dense layer's weight gradient, one pass: Y read and
    // written once).
    for p0 in (0..k).step_by(4) {
        for (seg, xi) in ys.iter_mut().zip(x.chunks_exact(k)) {
            let mut p = p0;
            if p + 4 <= k {
                let c = [0, 1, 2, 3].map(|q| alpha * xi[p + q]);
                axpy4(seg, c, [w_row(p), w_row(p + 1), w_row(p + 2), w_row(p + 3)]);
                p += 4;
            }
            while p < k.min(p0 + 4) {
                axpy1(seg, alpha * xi[p], w_row(p));
                p += 1;
            }
        }
    }
}

/// `y[j] += c[0]·w[0][j] + c[1]·w[1][j] + c[2]·w[2][j] + c[3]·w[3][j]`,
/// added left to right (each `w[q]` at least `y.len()` long), so the same
/// bits as four [`axpy1`] calls: the inner loop of the `op(W) = W` form.
#[inline(always)]
pub fn axpy4(y: &mut [f32], c: [f32; 4], w: [&[f32]; 4]) {
    let len = y.len();
    let [w0, w1, w2, w3] = w.map(|r| &r[..len]);
    for j in 0..len {
        y[j] = (((y[j] + c[0] * w0[j]) + c[1] * w1[j]) + c[2] * w2[j]) + c[3] * w3[j];
    }
}

/// `y[j] += c·w[j]` (`w` at least `y.len()` long).
#[inline(always)]
pub fn axpy1(y: &mut [f32], c: f32, w: &[f32]) {
    let w = &w[..y.len()];
    for (yv, wv) in y.iter_mut().zip(w) {
        *yv += c * wv;
    }
}

#[cfg(test)]
mod tests;
