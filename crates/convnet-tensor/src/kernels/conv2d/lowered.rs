//! Convolution lowered to matrix products: im2col + sgemm per image (or per
//! block of small images) and group, or sgemm alone for 1×1, stride-1,
//! unpadded convolutions.
//!
//! # The products (one image, one group)
//!
//! With `X_g` the group's input `[C/g, H·W]`, `col = im2col(X_g)`
//! `[C/g·KH·KW, OH·OW]`, `W_g` `[O/g, C/g·KH·KW]` and `Y_g`, `dY_g` `[O/g, OH·OW]`:
//!
//! ```text
//! forward        Y_g   = W_g · col                (1×1: W_g · X_g)
//! weight grad    dW_g += dY_g · colᵀ              (1×1: dY_g · X_gᵀ)
//! input grad     dX_g  = col2im(W_gᵀ · dY_g)      (1×1: W_gᵀ · dY_g)
//! ```
//!
//! # Strategies
//!
//! - **Stride 1** (most layers): the padded grid of `padded.rs`, where
//!   im2col and col2im are long contiguous copies, and small images share a
//!   product.
//! - **Other strides**: im2col row by row (`im2col.rs`), over bands of whole
//!   output rows sized so that a band's column block stays in the core's L2
//!   cache between im2col and the product that reads it.
//! - **1×1, stride 1, no padding**: no im2col at all.
//!
//! # Operand layouts
//!
//! sgemm (matrixmultiply) packs its left operand fastest when it is stored
//! column-major and its right operand when it is stored row-major; the other
//! layouts cost up to a quarter of a product's time (measured). So the
//! forward pass multiplies by `W_gᵀ` transposed once per call, the weight
//! gradient transposes `dY` (and, for 1×1, `X`) band by band while it is in
//! cache, and the input gradient reads `W_g` as stored.
//!
//! # Parallelism
//!
//! With at least as many images (blocks) as threads, each rayon task handles
//! whole images (the products run single-threaded inside it). The weight
//! gradient is reduced deterministically: the batch is cut into one fixed
//! contiguous chunk of images per thread, each chunk accumulates its own
//! partial `dW`, and the partials are added in chunk order. With fewer images
//! than threads, images are processed one after the other and the work
//! inside an image is split instead: im2col / col2im over input channels, and
//! the products over rows of their result (`gemm_parallel`).

use rayon::prelude::*;

use super::im2col::{col2im_channel, im2col_channel, Band};
use super::layout::transpose;
use super::padded;
use super::scratch::with_scratch;
use crate::geometry::Conv2dGeometry;
use crate::kernels::gemm::{gemm, gemm_parallel, Trans};

/// Elements of a band's column block when each thread works on its own image:
/// 128 Ki floats (512 KiB) stays in a core's L2 cache next to sgemm's packing
/// buffers.
const BAND_ELEMS: usize = 128 * 1024;

/// Grid positions per band on the padded grid (see `padded.rs`): a multiple
/// of the sgemm micro-kernel width (16); 384 measured best for 3×3 layers of
/// 64 channels (192 to 1024 are within a few percent).
const GRID_BAND: usize = 384;

/// Positions per band of the 1×1 weight gradient: the transposed `dY` and
/// `X` bands (`(O + C) · 256` floats) stay in L2 cache, and 256 is sgemm's
/// depth block. 256 measured 20% faster than 1024, 128 slower.
const POINTWISE_BAND: usize = 256;

/// Sizes derived from the geometry, shared by the loops below.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    /// The geometry.
    pub g: Conv2dGeometry,
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub og: usize,
    /// `KH · KW`.
    pub kk: usize,
    /// `C/g · KH · KW`: rows of a group's column matrix.
    pub ckk: usize,
    /// `H · W`.
    pub hw: usize,
    /// `OH · OW`.
    pub ohw: usize,
    /// Elements of one input image, `C · H · W`.
    pub in_img: usize,
    /// Elements of one output image, `O · OH · OW`.
    pub out_img: usize,
    /// 1×1 kernel, stride 1, no padding: the input is its own column matrix.
    pub pointwise: bool,
    /// Target elements of a band's column block ([`BAND_ELEMS`]). This and
    /// the next fields are tuning knobs that tests turn to reach every code
    /// path on small shapes.
    pub band_elems: usize,
    /// Positions per band on the padded grid ([`GRID_BAND`]).
    pub grid_band: usize,
    /// Positions per band of the 1×1 weight gradient ([`POINTWISE_BAND`]).
    pub pointwise_band: usize,
    /// Whether to use the padded-grid lowering (`padded.rs`) when it applies.
    pub padded_grid: bool,
}

impl Dims {
    pub fn new(g: &Conv2dGeometry) -> Self {
        let cg = g.in_channels / g.groups;
        let kk = g.kernel_h * g.kernel_w;
        Dims {
            g: *g,
            cg,
            og: g.out_channels / g.groups,
            kk,
            ckk: cg * kk,
            hw: g.in_h * g.in_w,
            ohw: g.out_h * g.out_w,
            in_img: g.in_channels * g.in_h * g.in_w,
            out_img: g.out_channels * g.out_h * g.out_w,
            pointwise: kk == 1
                && g.stride_h == 1
                && g.stride_w == 1
                && g.pad_h == 0
                && g.pad_w == 0,
            band_elems: BAND_ELEMS,
            grid_band: GRID_BAND,
            pointwise_band: POINTWISE_BAND,
            padded_grid: true,
        }
    }

    /// Whether the padded-grid lowering runs.
    pub fn use_padded_grid(&self) -> bool {
        self.padded_grid && padded::applies(self)
    }

    /// Images processed together by one task.
    fn images_per_block(&self) -> usize {
        if self.use_padded_grid() {
            padded::images_per_block(self)
        } else {
            1
        }
    }

    /// Output rows per band so that the column block has about `band_elems` elements.
    fn band_rows(&self) -> usize {
        (self.band_elems / (self.ckk * self.g.out_w).max(1)).clamp(1, self.g.out_h.max(1))
    }
}

/// Whether to split the batch over threads (else: the work inside each image).
fn batch_parallel(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

/// `C = op(A)·op(B) + beta·C`, on this thread or over rayon's pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    parallel: bool,
    c: &mut [f32],
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    (m, n, k): (usize, usize, usize),
    beta: f32,
) {
    let product = if parallel { gemm_parallel } else { gemm };
    if let Err(e) = product(c, a, ta, b, tb, m, n, k, 1.0, beta) {
        // The geometry sized every buffer: a short one is a bug here.
        unreachable!("convolution buffers sized by the geometry: {e}");
    }
}

/// im2col of a group's channels `x_g` (`[C/g, H, W]`) into `col` (`[C/g·KH·KW, T]`).
fn im2col_group(col: &mut [f32], x_g: &[f32], d: &Dims, band: Band, parallel: bool) {
    let blk = d.kk * band.positions(d.g.out_w);
    if parallel {
        col.par_chunks_mut(blk)
            .zip(x_g.par_chunks(d.hw))
            .for_each(|(c, x)| im2col_channel(c, x, &d.g, band));
    } else {
        for (c, x) in col.chunks_mut(blk).zip(x_g.chunks(d.hw)) {
            im2col_channel(c, x, &d.g, band);
        }
    }
}

/// col2im of `col` (`[C/g·KH·KW, T]`) added onto a group's input gradient `dx_g`.
fn col2im_group(dx_g: &mut [f32], col: &[f32], d: &Dims, band: Band, parallel: bool) {
    let blk = d.kk * band.positions(d.g.out_w);
    if parallel {
        dx_g.par_chunks_mut(d.hw)
            .zip(col.par_chunks(blk))
            .for_each(|(dx, c)| col2im_channel(dx, c, &d.g, band));
    } else {
        for (dx, c) in dx_g.chunks_mut(d.hw).zip(col.chunks(blk)) {
            col2im_channel(dx, c, &d.g, band);
        }
    }
}

/// Forward pass over the whole batch. Lengths are checked by the caller.
pub(super) fn forward(out: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, d: &Dims) {
    // sgemm packs a column-major left operand fastest: hand it W_gᵀ stored
    // [C/g·KH·KW, O/g] (per group), transposed once per call (measured
    // faster even when the weights are used for a single product: sgemm's
    // packing of a row-major left operand is slower than this transpose).
    with_scratch(w.len(), |wt| {
        transpose_weights(wt, w, d);
        let weights = Weights {
            data: wt,
            trans: Trans::Yes,
        };
        let wt = &weights;
        let per = d.images_per_block();
        let (out_blk, x_blk) = (per * d.out_img, per * d.in_img);
        if batch_parallel(d.g.batch.div_ceil(per)) {
            out.par_chunks_mut(out_blk)
                .zip(x.par_chunks(x_blk))
                .for_each(|(out, x)| forward_block(out, x, wt, bias, d, false));
        } else {
            for (out, x) in out.chunks_mut(out_blk).zip(x.chunks(x_blk)) {
                forward_block(out, x, wt, bias, d, true);
            }
        }
    });
}

/// `wt` = each group's `W_g` `[O/g, CKK]` transposed to `[CKK, O/g]`; large
/// weights in parallel, by blocks of rows of the result.
fn transpose_weights(wt: &mut [f32], w: &[f32], d: &Dims) {
    const ROWS: usize = 256;
    let block = d.og * d.ckk;
    for (wt_g, w_g) in wt.chunks_exact_mut(block).zip(w.chunks_exact(block)) {
        let rows = |(i, dst): (usize, &mut [f32])| {
            let k0 = i * ROWS;
            transpose(dst, d.og, &w_g[k0..], d.ckk, d.og, dst.len() / d.og);
        };
        if block > 64 * 1024 {
            wt_g.par_chunks_mut(ROWS * d.og).enumerate().for_each(rows);
        } else {
            wt_g.chunks_mut(ROWS * d.og).enumerate().for_each(rows);
        }
    }
}

/// The weights as the forward products' left operand: `W` as stored, or
/// per group transposed (`[C/g·KH·KW, O/g]`), which sgemm packs faster.
pub(super) struct Weights<'a> {
    /// The weights, in the layout `trans` says.
    pub data: &'a [f32],
    /// `Trans::Yes` if each group's block is stored transposed.
    pub trans: Trans,
}

impl Weights<'_> {
    /// The block of group `grp`.
    pub fn group(&self, d: &Dims, grp: usize) -> &[f32] {
        &self.data[grp * d.og * d.ckk..][..d.og * d.ckk]
    }
}

/// Forward pass of a block of images (one unless the padded grid groups them).
fn forward_block(
    out: &mut [f32],
    x: &[f32],
    wt: &Weights,
    bias: Option<&[f32]>,
    d: &Dims,
    parallel: bool,
) {
    if d.use_padded_grid() {
        return padded::forward_block(out, x, wt, bias, d, parallel);
    }
    for (out, x) in out.chunks_mut(d.out_img).zip(x.chunks(d.in_img)) {
        forward_image(out, x, wt, bias, d, parallel);
    }
}

/// Forward pass of one image: `out` `[O, OH·OW]`, `x` `[C, H·W]`.
fn forward_image(
    out: &mut [f32],
    x: &[f32],
    wt: &Weights,
    bias: Option<&[f32]>,
    d: &Dims,
    parallel: bool,
) {
    let g = &d.g;
    for grp in 0..g.groups {
        let out_g = &mut out[grp * d.og * d.ohw..][..d.og * d.ohw];
        let x_g = &x[grp * d.cg * d.hw..][..d.cg * d.hw];
        let wt_g = wt.group(d, grp);
        if d.pointwise {
            // Y_g [O/g, HW] = W_g [O/g, C/g] · X_g [C/g, HW]
            let dims = (d.og, d.ohw, d.cg);
            matmul(parallel, out_g, wt_g, wt.trans, x_g, Trans::No, dims, 0.0);
        } else {
            let rows = d.band_rows();
            let whole = rows >= g.out_h;
            let t_max = rows * g.out_w;
            let tile_len = if whole { 0 } else { d.og * t_max };
            with_scratch(d.ckk * t_max + tile_len, |buf| {
                let (col, tile) = buf.split_at_mut(d.ckk * t_max);
                for band in Band::split(g.out_h, rows) {
                    let t = band.positions(g.out_w);
                    let col = &mut col[..d.ckk * t];
                    im2col_group(col, x_g, d, band, parallel);
                    let dims = (d.og, t, d.ckk);
                    if whole {
                        matmul(parallel, out_g, wt_g, wt.trans, col, Trans::No, dims, 0.0);
                    } else {
                        // The band is a column range of Y_g: compute it apart, copy it in.
                        let tile = &mut tile[..d.og * t];
                        matmul(parallel, tile, wt_g, wt.trans, col, Trans::No, dims, 0.0);
                        let p0 = band.oh0 * g.out_w;
                        for (dst, src) in out_g.chunks_exact_mut(d.ohw).zip(tile.chunks_exact(t)) {
                            dst[p0..p0 + t].copy_from_slice(src);
                        }
                    }
                }
            });
        }
        if let Some(bias) = bias {
            let bias_g = &bias[grp * d.og..][..d.og];
            for (row, &b) in out_g.chunks_exact_mut(d.ohw).zip(bias_g) {
                for v in row {
                    *v += b;
                }
            }
        }
    }
}

/// Input and weight gradients over the whole batch (the bias gradient is
/// computed by the caller). `dx` is overwritten, `dw` accumulated.
pub(super) fn backward(
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    d: &Dims,
) {
    let n = d.g.batch;
    let per = d.images_per_block();
    if !batch_parallel(n.div_ceil(per)) {
        let mut dx = dx;
        let mut dw = dw;
        for i in (0..n).step_by(per) {
            let k = per.min(n - i);
            let dx_i = dx
                .as_deref_mut()
                .map(|s| &mut s[i * d.in_img..][..k * d.in_img]);
            let dy_i = &dy[i * d.out_img..][..k * d.out_img];
            let x_i = &x[i * d.in_img..][..k * d.in_img];
            backward_block(dx_i, dw.as_deref_mut(), dy_i, x_i, w, d, true);
        }
        return;
    }
    // One fixed contiguous chunk of images per thread; each chunk accumulates
    // its own partial weight gradient, summed below in chunk order.
    let per_chunk = n.div_ceil(rayon::current_num_threads());
    let chunks = n.div_ceil(per_chunk);
    let wlen = w.len();
    let partial_len = if dw.is_some() { chunks * wlen } else { 0 };
    with_scratch(partial_len, |partials| {
        let mut dx_chunks: Vec<Option<&mut [f32]>> = match dx {
            Some(dx) => dx.chunks_mut(per_chunk * d.in_img).map(Some).collect(),
            None => (0..chunks).map(|_| None).collect(),
        };
        let mut dw_chunks: Vec<Option<&mut [f32]>> = if partial_len > 0 {
            partials.chunks_mut(wlen).map(Some).collect()
        } else {
            (0..chunks).map(|_| None).collect()
        };
        dx_chunks
            .par_iter_mut()
            .zip(dw_chunks.par_iter_mut())
            .enumerate()
            .for_each(|(c, (dx_c, dw_c))| {
                if let Some(dw_c) = dw_c.as_deref_mut() {
                    dw_c.fill(0.0);
                }
                let first = c * per_chunk;
                let last = (first + per_chunk).min(n);
                for i in (first..last).step_by(per) {
                    let k = per.min(last - i);
                    let dx_i = dx_c
                        .as_deref_mut()
                        .map(|s| &mut s[(i - first) * d.in_img..][..k * d.in_img]);
                    let dy_i = &dy[i * d.out_img..][..k * d.out_img];
                    let x_i = &x[i * d.in_img..][..k * d.in_img];
                    backward_block(dx_i, dw_c.as_deref_mut(), dy_i, x_i, w, d, false);
                }
            });
        if let Some(dw) = dw {
            add_partials(dw, partials);
        }
    });
}

/// `dw += Σ_c partials[c]`, the partials (each `dw.len()` long) added in
/// order, element by element; in parallel over blocks of elements for large
/// weights (the order per element is the same).
pub(super) fn add_partials(dw: &mut [f32], partials: &[f32]) {
    const BLOCK: usize = 16 * 1024;
    let wlen = dw.len();
    let add = |(b, dw_b): (usize, &mut [f32])| {
        for part in partials.chunks_exact(wlen) {
            for (a, &p) in dw_b.iter_mut().zip(&part[b * BLOCK..]) {
                *a += p;
            }
        }
    };
    if wlen > 4 * BLOCK {
        dw.par_chunks_mut(BLOCK).enumerate().for_each(add);
    } else {
        dw.chunks_mut(BLOCK).enumerate().for_each(add);
    }
}

/// Gradients of a block of images (one unless the padded grid groups them).
fn backward_block(
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    d: &Dims,
    parallel: bool,
) {
    if d.use_padded_grid() {
        return padded::backward_block(dx, dw, dy, x, w, d, parallel);
    }
    let (mut dx, mut dw) = (dx, dw);
    for (i, (dy, x)) in dy.chunks(d.out_img).zip(x.chunks(d.in_img)).enumerate() {
        let dx_i = dx
            .as_deref_mut()
            .map(|s| &mut s[i * d.in_img..][..d.in_img]);
        backward_image(dx_i, dw.as_deref_mut(), dy, x, w, d, parallel);
    }
}

/// Gradients of one image: `dx` `[C, H·W]` overwritten, `dw` `[O, C/g·KH·KW]`
/// accumulated, from `dy` `[O, OH·OW]` and `x` `[C, H·W]`.
fn backward_image(
    mut dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    d: &Dims,
    parallel: bool,
) {
    let g = &d.g;
    for grp in 0..g.groups {
        let dy_g = &dy[grp * d.og * d.ohw..][..d.og * d.ohw];
        let x_g = &x[grp * d.cg * d.hw..][..d.cg * d.hw];
        let w_g = &w[grp * d.og * d.ckk..][..d.og * d.ckk];
        let dx_g = dx
            .as_deref_mut()
            .map(|s| &mut s[grp * d.cg * d.hw..][..d.cg * d.hw]);
        let dw_g = dw
            .as_deref_mut()
            .map(|s| &mut s[grp * d.og * d.ckk..][..d.og * d.ckk]);
        if d.pointwise {
            if let Some(dw_g) = dw_g {
                // dW_g [O/g, C/g] += dY_g [O/g, HW] · X_gᵀ [HW, C/g], over bands
                // of positions with both operands transposed in cache first.
                let t_max = d.pointwise_band.clamp(1, d.ohw);
                with_scratch(t_max * (d.og + d.cg), |buf| {
                    let (dyt, xt) = buf.split_at_mut(t_max * d.og);
                    for p0 in (0..d.ohw).step_by(t_max) {
                        let t = t_max.min(d.ohw - p0);
                        let (dyt, xt) = (&mut dyt[..t * d.og], &mut xt[..t * d.cg]);
                        transpose(dyt, d.og, &dy_g[p0..], d.ohw, d.og, t);
                        transpose(xt, d.cg, &x_g[p0..], d.hw, d.cg, t);
                        let dims = (d.og, d.cg, t);
                        matmul(parallel, dw_g, dyt, Trans::Yes, xt, Trans::No, dims, 1.0);
                    }
                });
            }
            if let Some(dx_g) = dx_g {
                // dX_g [C/g, HW] = W_gᵀ [C/g, O/g] · dY_g [O/g, HW]
                let dims = (d.cg, d.hw, d.og);
                matmul(parallel, dx_g, w_g, Trans::Yes, dy_g, Trans::No, dims, 0.0);
            }
            continue;
        }
        backward_group_lowered(dx_g, dw_g, dy_g, x_g, w_g, d, parallel);
    }
}

/// [`backward_image`] for one group through im2col / col2im, band by band.
fn backward_group_lowered(
    mut dx_g: Option<&mut [f32]>,
    mut dw_g: Option<&mut [f32]>,
    dy_g: &[f32],
    x_g: &[f32],
    w_g: &[f32],
    d: &Dims,
    parallel: bool,
) {
    let g = &d.g;
    let rows = d.band_rows();
    let whole = rows >= g.out_h;
    let t_max = rows * g.out_w;
    let tile_len = if whole { 0 } else { d.og * t_max };
    if let Some(dx_g) = dx_g.as_deref_mut() {
        dx_g.fill(0.0);
    }
    with_scratch(d.ckk * t_max + tile_len + d.og * t_max, |buf| {
        let (col, rest) = buf.split_at_mut(d.ckk * t_max);
        let (tile, dyt) = rest.split_at_mut(tile_len);
        for band in Band::split(g.out_h, rows) {
            let t = band.positions(g.out_w);
            let col = &mut col[..d.ckk * t];
            // dY_g restricted to the band, [O/g, T].
            let dy_b: &[f32] = if whole {
                dy_g
            } else {
                let tile = &mut tile[..d.og * t];
                let p0 = band.oh0 * g.out_w;
                for (dst, src) in tile.chunks_exact_mut(t).zip(dy_g.chunks_exact(d.ohw)) {
                    dst.copy_from_slice(&src[p0..p0 + t]);
                }
                tile
            };
            if let Some(dw_g) = dw_g.as_deref_mut() {
                // dW_g [O/g, CKK] += dY_b [O/g, T] · colᵀ [T, CKK]
                im2col_group(col, x_g, d, band, parallel);
                let dyt = &mut dyt[..t * d.og];
                transpose(dyt, d.og, dy_b, t, d.og, t);
                let dims = (d.og, d.ckk, t);
                matmul(parallel, dw_g, dyt, Trans::Yes, col, Trans::Yes, dims, 1.0);
            }
            if let Some(dx_g) = dx_g.as_deref_mut() {
                // dcol [CKK, T] = W_gᵀ [CKK, O/g] · dY_b [O/g, T], then col2im.
                let dims = (d.ckk, t, d.og);
                matmul(parallel, col, w_g, Trans::Yes, dy_b, Trans::No, dims, 0.0);
                col2im_group(dx_g, col, d, band, parallel);
            }
        }
    });
}
