//! Winograd convolution for 3×3, stride-1, undilated, ungrouped layers
//! (VGG, ResNet): forward pass only.
//!
//! # The products
//!
//! The output is cut into `m × m` tiles, each computed from an
//! `α × α` input tile (`α = m + 2`, see `transform.rs`). For each of the
//! `α²` positions `p` of a transformed tile, the sum over input channels of
//! the element-wise products is one matrix product:
//!
//! ```text
//! U[p]  [O, C]  transformed weights     (G·g·Gᵀ)[p] of filter (o, c)
//! V[p]  [C, T]  transformed input tiles (Bᵀ·d·B)[p] of tile t, channel c
//! M[p]  [O, T]  = U[p] · V[p]
//! Y           = Aᵀ · M · A + bias, tile by tile
//! ```
//!
//! `U` is computed once per call (stored `[α²][C][O]`: sgemm packs a
//! column-major left operand fastest); `V` and `M` for a block of tile rows
//! of one image at a time ([`Plan::tiles_per_block`]), so that they stay in
//! cache between the transforms and the products.
//!
//! # Parallelism
//!
//! With at least as many images as threads, one rayon task per image, the
//! products on its thread. Otherwise the images and their blocks run one
//! after the other and each stage is split: the input transform over input
//! channels, the products over the `α²` positions, the output transform over
//! output channels.
//!
//! # Accuracy
//!
//! F(2×2, 3×3) keeps the error close to the direct sum; F(4×4, 3×3) is
//! several times larger (see the tests and [`Plan`]). Measured against an
//! f64 sum on ReLU inputs with He-initialised weights (outputs up to about
//! 5): im2col's largest absolute error is 1-2·10⁻⁶, F(2×2)'s 1.6-2.8·10⁻⁶,
//! F(4×4)'s 3-4.4·10⁻⁵ (64 to 512 channels).
//!
//! # Speed
//!
//! On a 2-core AMD EPYC (Zen 3, AVX2+FMA), loaded by other work, against
//! im2col: ResNet's 3×3 (64 channels, 56×56, batch 8) about 10% faster,
//! ResNet-18 and VGG-16 inference 11-14% faster. Per call, the weight
//! transform and sgemm's packing of the transformed weights in every block
//! cost `α²·C·O` each: with few tiles (batch 1 at 14×14 and 7×7) they do not
//! pay, hence [`MIN_TILES`]. Caching the transformed weights across calls
//! would remove the first.

#[cfg(test)]
mod tests;
mod transform;

use rayon::prelude::*;

use super::layout::transpose;
use super::scratch::with_scratch;
use crate::geometry::Conv2dGeometry;
use crate::kernels::gemm::{gemm, Trans};
use transform::{
    input_columns, input_tiles, kernel_row, output_tiles, split_rows, Variant, F2, F4,
};

/// Fewest input and output channels for which the Winograd path is chosen.
const MIN_CHANNELS: usize = 32;

/// Fewest tiles in a call (all images) for which the Winograd path is
/// chosen: the weights are transformed once per call and packed once per
/// block, so fewer tiles do not pay for them (measured: 256 → 256 channels
/// on 14×14 at batch 1, 49 F(2×2) tiles, runs 1.2-1.5× slower than im2col;
/// 128 → 128 on 28×28, 196 tiles, slightly faster).
const MIN_TILES: usize = 192;

/// Largest channel counts for which F(4×4, 3×3) is chosen (else F(2×2)):
/// measured faster than F(2×2) on 64-channel layers with many tiles, slower
/// with more channels (fewer tiles per weight); its error grows with the
/// channel count.
const F4_MAX_CHANNELS: usize = 64;

/// Target tiles per block: `V` and `M` are `α²·(C + O)·T` floats.
const TILES_PER_BLOCK: usize = 128;

/// The tile size of a Winograd variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tile {
    /// F(2×2, 3×3).
    F2,
    /// F(4×4, 3×3).
    F4,
}

/// How to run the Winograd forward pass; tests change the knobs to reach
/// every code path on small shapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The variant.
    pub tile: Tile,
    /// Target tiles per block (whole tile rows, at least one).
    pub tiles_per_block: usize,
    /// Split each stage over threads even when the batch could be split.
    pub force_inner_parallel: bool,
}

impl Plan {
    /// The plan chosen for `g`, if the Winograd path applies and pays.
    pub fn choose(g: &Conv2dGeometry) -> Option<Plan> {
        if !applies(g) || g.in_channels < MIN_CHANNELS || g.out_channels < MIN_CHANNELS {
            return None;
        }
        let tiles = |m: usize| g.batch * g.out_h.div_ceil(m) * g.out_w.div_ceil(m);
        let small = g.in_channels <= F4_MAX_CHANNELS && g.out_channels <= F4_MAX_CHANNELS;
        let tile = if small && tiles(4) >= MIN_TILES {
            Tile::F4
        } else if tiles(2) >= MIN_TILES {
            Tile::F2
        } else {
            return None;
        };
        Some(Plan {
            tile,
            tiles_per_block: TILES_PER_BLOCK,
            force_inner_parallel: false,
        })
    }
}

/// Whether the geometry is one the Winograd path computes: 3×3, stride 1,
/// dilation 1, one group, a non-empty output.
pub(crate) fn applies(g: &Conv2dGeometry) -> bool {
    g.kernel_h == 3
        && g.kernel_w == 3
        && g.stride_h == 1
        && g.stride_w == 1
        && g.dilation_h == 1
        && g.dilation_w == 1
        && g.groups == 1
        && g.out_h > 0
        && g.out_w > 0
        && g.in_channels > 0
}

/// Forward pass over the whole batch; the caller checked the lengths and
/// [`applies`].
pub(crate) fn forward(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    plan: &Plan,
) {
    match plan.tile {
        Tile::F2 => run::<F2, 2, 4>(out, x, w, bias, g, plan),
        Tile::F4 => run::<F4, 4, 6>(out, x, w, bias, g, plan),
    }
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pad_h: usize,
    pad_w: usize,
    /// Tile rows and columns.
    th: usize,
    tw: usize,
    /// Padded input row length the tiles read: `tw·M + 2`.
    wp: usize,
    /// Tile rows per block.
    rows_per_block: usize,
}

/// [`forward`] with the variant `V`.
fn run<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    plan: &Plan,
) {
    let (th, tw) = (g.out_h.div_ceil(M), g.out_w.div_ceil(M));
    let s = Sizes {
        c: g.in_channels,
        o: g.out_channels,
        h: g.in_h,
        w: g.in_w,
        oh: g.out_h,
        ow: g.out_w,
        pad_h: g.pad_h,
        pad_w: g.pad_w,
        th,
        tw,
        wp: tw * M + 2,
        rows_per_block: (plan.tiles_per_block / tw).clamp(1, th),
    };
    let (in_img, out_img) = (s.c * s.h * s.w, s.o * s.oh * s.ow);
    // Small images share a block, so that each product has enough tiles to
    // pay for packing its weights.
    let per = (plan.tiles_per_block / (th * tw)).clamp(1, g.batch.max(1));
    let threads = rayon::current_num_threads();
    let groups = g.batch.div_ceil(per);
    let batch_parallel = !plan.force_inner_parallel && groups >= threads && threads > 1;
    with_scratch(A * A * s.c * s.o, |u| {
        transform_weights::<V, M, A>(u, w, &s);
        let u = &*u;
        let (out_blk, x_blk) = (per * out_img, per * in_img);
        if batch_parallel {
            out.par_chunks_mut(out_blk)
                .zip(x.par_chunks(x_blk))
                .for_each(|(out, x)| images::<V, M, A>(out, x, u, bias, &s, false));
        } else {
            for (out, x) in out.chunks_mut(out_blk).zip(x.chunks(x_blk)) {
                images::<V, M, A>(out, x, u, bias, &s, threads > 1);
            }
        }
    });
}

/// Groups the rows (`len` long) of `buf`: row `i` goes to group `i % groups`,
/// in order. For a `[P][G][len]` buffer, group `g` lists its `P` rows.
fn group_rows(buf: &mut [f32], len: usize, groups: usize) -> Vec<Vec<&mut [f32]>> {
    let mut lists: Vec<Vec<&mut [f32]>> = (0..groups).map(|_| Vec::new()).collect();
    for (i, row) in buf.chunks_exact_mut(len).enumerate() {
        lists[i % groups].push(row);
    }
    lists
}

/// Turns a list of `A·A` slices into the `[[_; A]; A]` the transforms take.
fn square<T, const A: usize>(list: Vec<T>) -> [[T; A]; A] {
    let mut it = list.into_iter();
    std::array::from_fn(|_| {
        std::array::from_fn(|_| match it.next() {
            Some(v) => v,
            None => unreachable!("A·A slices"),
        })
    })
}

/// `u [α²][C][O]` = the transformed weights, over input channels in parallel.
fn transform_weights<V: Variant<M, A>, const M: usize, const A: usize>(
    u: &mut [f32],
    w: &[f32],
    s: &Sizes,
) {
    let (c_n, o_n) = (s.c, s.o);
    with_scratch(w.len(), |wt| {
        // wt [C·9][O]: each tap of each input channel, contiguous over O.
        transpose(wt, o_n, w, c_n * 9, o_n, c_n * 9);
        let wt = &*wt;
        let per_channel = |(c, rows): (usize, Vec<&mut [f32]>)| {
            let mut rows = square::<&mut [f32], A>(rows);
            let taps: [&[f32]; 9] = std::array::from_fn(|k| &wt[(c * 9 + k) * o_n..][..o_n]);
            kernel_row::<V, M, A>(&mut rows, &taps, o_n);
        };
        let lists = group_rows(u, o_n, c_n);
        if c_n * o_n >= 16 * 1024 {
            lists.into_par_iter().enumerate().for_each(per_channel);
        } else {
            lists.into_iter().enumerate().for_each(per_channel);
        }
    });
}

/// Forward pass of a group of images: `out` `[imgs, O, OH·OW]`, `x`
/// `[imgs, C, H·W]`; one block of all their tiles when there are several,
/// else blocks of tile rows.
fn images<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [f32],
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    s: &Sizes,
    parallel: bool,
) {
    let aa = A * A;
    let imgs = x.len() / (s.c * s.h * s.w);
    let step = if imgs > 1 { s.th } else { s.rows_per_block };
    let t_max = imgs * step * s.tw;
    with_scratch(aa * (s.c + s.o) * t_max, |buf| {
        let (v_buf, m_buf) = buf.split_at_mut(aa * s.c * t_max);
        for r0 in (0..s.th).step_by(step) {
            let rows = step.min(s.th - r0);
            let block = Block { imgs, r0, rows };
            let t = block.tiles(s);
            let v = &mut v_buf[..aa * s.c * t];
            let m = &mut m_buf[..aa * s.o * t];
            input_block::<V, M, A>(v, x, s, block, parallel);
            products(m, u, v, s, t, aa, parallel);
            output_block::<V, M, A>(out, m, bias, s, block, parallel);
        }
    });
}

/// Tile rows `r0..r0 + rows` of `imgs` images; tile `tx` of tile row
/// `r0 + r` of image `img` is column `(img·rows + r)·TW + tx` of the
/// block's matrices.
#[derive(Debug, Clone, Copy)]
struct Block {
    imgs: usize,
    r0: usize,
    rows: usize,
}

impl Block {
    fn tiles(&self, s: &Sizes) -> usize {
        self.imgs * self.rows * s.tw
    }
}

/// `v [α²][C][T]` = the transformed input tiles of tile rows `r0..r0+rows`.
fn input_block<V: Variant<M, A>, const M: usize, const A: usize>(
    v: &mut [f32],
    x: &[f32],
    s: &Sizes,
    block: Block,
    parallel: bool,
) {
    let t = block.tiles(s);
    let per_channel = |(c, dst): (usize, Vec<&mut [f32]>)| {
        let mut dst = square::<&mut [f32], A>(dst);
        with_scratch(2 * A * s.wp, |tmp| {
            let (padded, cols) = tmp.split_at_mut(A * s.wp);
            for (img, r) in (0..block.imgs).flat_map(|i| (0..block.rows).map(move |r| (i, r))) {
                let x_c = &x[(img * s.c + c) * s.h * s.w..][..s.h * s.w];
                let ih0 = ((block.r0 + r) * M) as isize - s.pad_h as isize;
                let col0 = (img * block.rows + r) * s.tw;
                pad_rows(padded, x_c, s, ih0, A);
                input_columns::<V, M, A>(cols, padded, s.wp);
                for (a, dst_a) in dst.iter_mut().enumerate() {
                    let out: [&mut [f32]; A] = {
                        let mut it = dst_a.iter_mut();
                        std::array::from_fn(|_| match it.next() {
                            Some(row) => &mut row[col0..][..s.tw],
                            None => unreachable!("A rows"),
                        })
                    };
                    input_tiles::<V, M, A>(out, &cols[a * s.wp..][..s.wp], s.tw);
                }
            }
        });
    };
    let lists = group_rows(v, t, s.c);
    if parallel {
        lists.into_par_iter().enumerate().for_each(per_channel);
    } else {
        lists.into_iter().enumerate().for_each(per_channel);
    }
}

/// Copies input rows `ih0..ih0+n` of one channel into `dst` (`n` rows of
/// `wp`), with the zero padding around them (rows and columns outside the
/// image are zero).
fn pad_rows(dst: &mut [f32], x_c: &[f32], s: &Sizes, ih0: isize, n: usize) {
    for (i, row) in dst.chunks_exact_mut(s.wp).take(n).enumerate() {
        let ih = ih0 + i as isize;
        if ih < 0 || ih >= s.h as isize {
            row.fill(0.0);
            continue;
        }
        let src = &x_c[ih as usize * s.w..][..s.w];
        // Columns: pad_w zeros, the row, zeros up to wp (the row may be cut
        // when the tiles end before it).
        let left = s.pad_w.min(s.wp);
        row[..left].fill(0.0);
        let len = s.w.min(s.wp - left);
        row[left..left + len].copy_from_slice(&src[..len]);
        row[left + len..].fill(0.0);
    }
}

/// `m[p] = u[p] · v[p]` for the `α²` positions.
fn products(m: &mut [f32], u: &[f32], v: &[f32], s: &Sizes, t: usize, aa: usize, parallel: bool) {
    let product = |((m_p, u_p), v_p): ((&mut [f32], &[f32]), &[f32])| {
        // M[p] [O, T] = U[p] [O, C] (stored [C, O]) · V[p] [C, T]
        if let Err(e) = gemm(m_p, u_p, Trans::Yes, v_p, Trans::No, s.o, t, s.c, 1.0, 0.0) {
            unreachable!("Winograd buffers sized by the geometry: {e}");
        }
    };
    let (m_len, u_len, v_len) = (s.o * t, s.c * s.o, s.c * t);
    debug_assert_eq!(m.len(), aa * m_len);
    if parallel {
        m.par_chunks_mut(m_len)
            .zip(u.par_chunks(u_len))
            .zip(v.par_chunks(v_len))
            .for_each(product);
    } else {
        m.chunks_mut(m_len)
            .zip(u.chunks(u_len))
            .zip(v.chunks(v_len))
            .for_each(product);
    }
}

/// Writes output rows of tile rows `r0..r0+rows` from the products `m`
/// (`[α²][O][T]`), adding the bias.
fn output_block<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [f32],
    m: &[f32],
    bias: Option<&[f32]>,
    s: &Sizes,
    block: Block,
    parallel: bool,
) {
    let t = block.tiles(s);
    let ohw = s.oh * s.ow;
    let per_channel = |(i, plane): (usize, &mut [f32])| {
        let (img, o) = (i / s.o, i % s.o);
        let b = bias.map_or(0.0, |b| b[o]);
        // Rows past the output (the last tile row) and the columns past the
        // last tile go through a padded staging row.
        with_scratch(M * s.tw * M, |stage| {
            for r in 0..block.rows {
                let col0 = (img * block.rows + r) * s.tw;
                let prod: [[&[f32]; A]; A] = std::array::from_fn(|a| {
                    std::array::from_fn(|bb| &m[((a * A + bb) * s.o + o) * t + col0..][..s.tw])
                });
                let mut staged = split_rows::<M>(stage, s.tw * M);
                output_tiles::<V, M, A>(&mut staged, &prod, s.tw, b);
                let oh0 = (block.r0 + r) * M;
                for (i, src) in staged.iter().enumerate() {
                    if oh0 + i < s.oh {
                        plane[(oh0 + i) * s.ow..][..s.ow].copy_from_slice(&src[..s.ow]);
                    }
                }
            }
        });
    };
    if parallel {
        out.par_chunks_mut(ohw).enumerate().for_each(per_channel);
    } else {
        out.chunks_mut(ohw).enumerate().for_each(per_channel);
    }
}
