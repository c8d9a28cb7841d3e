//! Stride-1 lowering over the *padded grid*: im2col and col2im as long
//! contiguous copies.
//!
//! Pad each input channel once into a plane `Hp × Wp` (`Hp = H + 2·ph`,
//! `Wp = W + 2·pw`) stored row after row. With stride 1, computing the output
//! on a grid `Wp` wide instead of `OW` (the last `(KW − 1)·dw` columns of
//! each row are discarded) makes the patch row of tap `(ki, kj)` for output
//! rows `oh0..oh1` a single contiguous run of the padded plane:
//!
//! ```text
//! col[(c, ki, kj), (oh − oh0)·Wp + ow'] = xp[c][(oh + ki·dh)·Wp + ow' + kj·dw]
//!                                       = xp[c][(oh0 + ki·dh)·Wp + kj·dw + position]
//! ```
//!
//! so im2col is one `memcpy` per tap and channel, and col2im one vectorised
//! add. The output gradient is widened to the same grid with zeros in the
//! discarded columns, which makes their contributions to both gradients zero.
//! The extra work is `(KW − 1)·dw / OW` of the product (4% for a 3×3 over a
//! 56-wide image), against im2col copies of `OW` floats at a time otherwise.
//!
//! A *band* of the column matrix is a list of segments, each a run of grid
//! positions of one image: either a slice of a large image, or several whole
//! small images side by side (so that the products stay wide enough for
//! sgemm when the images are small, as in LeNet-5).

use rayon::prelude::*;

use super::layout::transpose;
use super::lowered::{matmul, Dims, Weights};
use super::scratch::with_scratch;
use crate::kernels::gemm::Trans;

/// Largest fraction of extra (discarded) output columns for which the padded
/// grid is used: its long copies beat the row-by-row im2col's short ones even
/// at 40% extra work (LeNet-5's second layer: 1.5× faster forward).
const MAX_WASTE: f64 = 0.5;

/// Whether the padded grid applies: stride 1, not a plain 1×1, and few
/// discarded columns.
pub(super) fn applies(d: &Dims) -> bool {
    let g = &d.g;
    let wp = g.in_w + 2 * g.pad_w;
    g.stride_h == 1
        && g.stride_w == 1
        && !d.pointwise
        && g.out_w > 0
        && (wp - g.out_w) as f64 <= MAX_WASTE * g.out_w as f64
}

/// Images processed together: as many whole images as fit in a band.
pub(super) fn images_per_block(d: &Dims) -> usize {
    let per_image = Grid::of(d).positions;
    (d.grid_band / per_image.max(1)).max(1)
}

/// The padded grid of one geometry.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Padded width: the grid's row length.
    wp: usize,
    /// Padded height.
    hp: usize,
    /// Grid positions of one image: every output row, `Wp` wide.
    positions: usize,
    /// Zero floats after the last padded row, which the last tap's run reads.
    tail: usize,
}

impl Grid {
    fn of(d: &Dims) -> Grid {
        let g = &d.g;
        let wp = g.in_w + 2 * g.pad_w;
        Grid {
            wp,
            hp: g.in_h + 2 * g.pad_h,
            positions: g.out_h * wp,
            tail: (g.kernel_w - 1) * g.dilation_w,
        }
    }

    /// Floats of a whole padded channel plane.
    fn plane(&self) -> usize {
        self.hp * self.wp + self.tail
    }

    /// Padded rows `first..=last` that the positions of a segment read.
    fn rows(&self, d: &Dims, seg: &Segment) -> (usize, usize) {
        let first = seg.p0 / self.wp;
        let last = (seg.p0 + seg.len - 1) / self.wp + (d.g.kernel_h - 1) * d.g.dilation_h;
        (first, last)
    }

    /// Floats of a padded plane holding the rows of a segment of up to `len`
    /// positions.
    fn segment_plane(&self, d: &Dims, len: usize) -> usize {
        let rows = len.div_ceil(self.wp) + 1 + (d.g.kernel_h - 1) * d.g.dilation_h;
        rows.min(self.hp) * self.wp + self.tail
    }
}

/// A run of grid positions `p0..p0 + len` of image `img` of the block, at
/// column `at` of the band.
#[derive(Debug, Clone, Copy)]
struct Segment {
    img: usize,
    p0: usize,
    len: usize,
    at: usize,
}

/// Calls `f(segments, width)` for each band of a block of `imgs` images:
/// one band of whole images if they fit in [`Dims::grid_band`], else bands
/// of `grid_band` positions of one image.
fn for_each_band(d: &Dims, grid: Grid, imgs: usize, mut f: impl FnMut(&[Segment], usize)) {
    let per = grid.positions;
    if per * imgs <= d.grid_band {
        let segs: Vec<Segment> = (0..imgs)
            .map(|img| Segment {
                img,
                p0: 0,
                len: per,
                at: img * per,
            })
            .collect();
        f(&segs, imgs * per);
    } else {
        let band = d.grid_band.clamp(1, per);
        for img in 0..imgs {
            for p0 in (0..per).step_by(band) {
                let len = band.min(per - p0);
                f(
                    &[Segment {
                        img,
                        p0,
                        len,
                        at: 0,
                    }],
                    len,
                );
            }
        }
    }
}

/// Largest band width and segment count of a block of `imgs` images.
fn band_shape(d: &Dims, grid: Grid, imgs: usize) -> (usize, usize) {
    let per = grid.positions;
    if per * imgs <= d.grid_band {
        (imgs * per, imgs)
    } else {
        (d.grid_band.clamp(1, per), 1)
    }
}

/// Offset of tap `t = ki·KW + kj` from a position in a padded plane.
#[inline]
fn tap_offset(d: &Dims, grid: Grid, tap: usize) -> usize {
    let (ki, kj) = (tap / d.g.kernel_w, tap % d.g.kernel_w);
    ki * d.g.dilation_h * grid.wp + kj * d.g.dilation_w
}

/// Runs `f(c, a_c)` over the group's input channels `c`, with `a` split in
/// `a_chunk` floats per channel, on this thread or over rayon's pool.
fn each_channel(
    parallel: bool,
    a: &mut [f32],
    a_chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if parallel {
        a.par_chunks_mut(a_chunk)
            .enumerate()
            .for_each(|(c, a)| f(c, a));
    } else {
        for (c, a) in a.chunks_mut(a_chunk).enumerate() {
            f(c, a);
        }
    }
}

/// [`each_channel`] with a second, read-only slice split in `b_chunk` floats
/// per channel.
fn each_channel_with(
    parallel: bool,
    a: &mut [f32],
    a_chunk: usize,
    b: &[f32],
    b_chunk: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    if parallel {
        a.par_chunks_mut(a_chunk)
            .zip(b.par_chunks(b_chunk))
            .for_each(|(a, b)| f(a, b));
    } else {
        for (a, b) in a.chunks_mut(a_chunk).zip(b.chunks(b_chunk)) {
            f(a, b);
        }
    }
}

/// Copies padded rows `first..=last` of channel plane `x_c` (`[H, W]`) into
/// `dst` (`[rows, Wp]` then zeros).
fn pad_rows(dst: &mut [f32], x_c: &[f32], d: &Dims, grid: Grid, first: usize, last: usize) {
    let g = &d.g;
    let (rows, tail) = dst.split_at_mut((last + 1 - first) * grid.wp);
    for (r, row) in (first..=last).zip(rows.chunks_exact_mut(grid.wp)) {
        match r.checked_sub(g.pad_h).filter(|&ih| ih < g.in_h) {
            Some(ih) => {
                row[..g.pad_w].fill(0.0);
                row[g.pad_w..g.pad_w + g.in_w].copy_from_slice(&x_c[ih * g.in_w..][..g.in_w]);
                row[g.pad_w + g.in_w..].fill(0.0);
            }
            None => row.fill(0.0),
        }
    }
    tail.fill(0.0);
}

/// Forward pass of a block of images: `out` `[imgs, O, OH·OW]`, `x`
/// `[imgs, C, H·W]`.
///
/// With `parallel` (fewer images than threads), the bands of the block are
/// computed in parallel, each with a single-threaded product, into separate
/// tiles that are then copied to the output in parallel over its planes.
pub(super) fn forward_block(
    out: &mut [f32],
    x: &[f32],
    wt: &Weights,
    bias: Option<&[f32]>,
    d: &Dims,
    parallel: bool,
) {
    let grid = Grid::of(d);
    let imgs = out.len() / d.out_img;
    let mut bands = 0;
    for_each_band(d, grid, imgs, |_, _| bands += 1);
    if parallel && bands >= rayon::current_num_threads() {
        return forward_bands_parallel(out, x, wt, bias, d, grid, imgs);
    }
    // Band after band; with `parallel`, the work inside each band is split.
    let (t_max, _) = band_shape(d, grid, imgs);
    with_scratch(d.og * t_max, |tile| {
        for grp in 0..d.g.groups {
            for_each_band(d, grid, imgs, |segs, t| {
                let tile = &mut tile[..d.og * t];
                band_product(tile, segs, t, x, wt, grp, d, grid, parallel);
                for (o, tile_o) in tile.chunks_exact(t).enumerate() {
                    let oc = grp * d.og + o;
                    for seg in segs {
                        let out_o = &mut out[seg.img * d.out_img + oc * d.ohw..][..d.ohw];
                        store_segment(out_o, tile_o, seg, bias.map_or(0.0, |b| b[oc]), d, grid);
                    }
                }
            });
        }
    });
}

/// [`forward_block`] with one rayon task per band.
fn forward_bands_parallel(
    out: &mut [f32],
    x: &[f32],
    wt: &Weights,
    bias: Option<&[f32]>,
    d: &Dims,
    grid: Grid,
    imgs: usize,
) {
    let mut bands: Vec<(Vec<Segment>, usize)> = Vec::new();
    for_each_band(d, grid, imgs, |segs, t| bands.push((segs.to_vec(), t)));
    let total: usize = bands.iter().map(|(_, t)| t).sum();
    with_scratch(d.og * total, |tiles| {
        for grp in 0..d.g.groups {
            // One [O/g, t] tile per band.
            let mut rest = &mut *tiles;
            let mut band_tiles = Vec::with_capacity(bands.len());
            for (_, t) in &bands {
                let (tile, tail) = rest.split_at_mut(d.og * t);
                band_tiles.push(tile);
                rest = tail;
            }
            band_tiles
                .par_iter_mut()
                .zip(&bands)
                .for_each(|(tile, (segs, t))| {
                    band_product(tile, segs, *t, x, wt, grp, d, grid, false)
                });
            // Copy out, one output plane per task.
            let band_tiles = &band_tiles;
            out.par_chunks_mut(d.ohw)
                .enumerate()
                .for_each(|(plane, out_o)| {
                    let (img, oc) = (plane / d.g.out_channels, plane % d.g.out_channels);
                    if oc / d.og != grp {
                        return;
                    }
                    let o = oc - grp * d.og;
                    for (tile, (segs, t)) in band_tiles.iter().zip(&bands) {
                        let tile_o = &tile[o * t..(o + 1) * t];
                        for seg in segs.iter().filter(|s| s.img == img) {
                            store_segment(out_o, tile_o, seg, bias.map_or(0.0, |b| b[oc]), d, grid);
                        }
                    }
                });
        }
    });
}

/// `tile [O/g, t] = W_g · col` for the band `segs` (`t` grid positions) of
/// group `grp`: pads the rows the band reads, builds its column block, and
/// multiplies; with `parallel`, over rayon's pool (channels, then rows of the
/// product).
#[allow(clippy::too_many_arguments)]
fn band_product(
    tile: &mut [f32],
    segs: &[Segment],
    t: usize,
    x: &[f32],
    wt: &Weights,
    grp: usize,
    d: &Dims,
    grid: Grid,
    parallel: bool,
) {
    let seg_plane = grid.segment_plane(d, t.min(grid.positions));
    let xp_len = d.cg * segs.len() * seg_plane;
    let x_g = &x[grp * d.cg * d.hw..];
    let wt_g = wt.group(d, grp);
    with_scratch(xp_len + d.ckk * t, |buf| {
        let (xp, col) = buf.split_at_mut(xp_len);
        // Per channel: the padded rows each segment reads ([segment][rows]),
        // and the channel's rows of the column block: one run per tap and
        // segment.
        let fill = |c: usize, xp_c: &mut [f32], col_c: &mut [f32]| {
            for (seg, xp_s) in segs.iter().zip(xp_c.chunks_exact_mut(seg_plane)) {
                let (first, last) = grid.rows(d, seg);
                let x_c = &x_g[seg.img * d.in_img + c * d.hw..][..d.hw];
                pad_rows(xp_s, x_c, d, grid, first, last);
                let start = seg.p0 - first * grid.wp;
                for (tap, row) in col_c.chunks_exact_mut(t).enumerate() {
                    row[seg.at..seg.at + seg.len]
                        .copy_from_slice(&xp_s[start + tap_offset(d, grid, tap)..][..seg.len]);
                }
            }
        };
        let xp_chunk = segs.len() * seg_plane;
        if parallel {
            xp.par_chunks_mut(xp_chunk)
                .zip(col.par_chunks_mut(d.kk * t))
                .enumerate()
                .for_each(|(c, (xp_c, col_c))| fill(c, xp_c, col_c));
        } else {
            for (c, (xp_c, col_c)) in xp
                .chunks_exact_mut(xp_chunk)
                .zip(col.chunks_exact_mut(d.kk * t))
                .enumerate()
            {
                fill(c, xp_c, col_c);
            }
        }
        // Y_band [O/g, t] = W_g [O/g, CKK] · col [CKK, t]
        matmul(
            parallel,
            tile,
            wt_g,
            wt.trans,
            col,
            Trans::No,
            (d.og, t, d.ckk),
            0.0,
        );
    });
}

/// Copies the grid positions of `seg` that lie inside the output from one
/// output channel's band row `tile_o` into its output plane `out_o`, adding
/// the bias.
fn store_segment(
    out_o: &mut [f32],
    tile_o: &[f32],
    seg: &Segment,
    bias: f32,
    d: &Dims,
    grid: Grid,
) {
    let tile_s = &tile_o[seg.at..seg.at + seg.len];
    for_each_run(grid, d.g.out_w, seg.p0, seg.len, |src, dst, len| {
        for (y, &v) in out_o[dst..][..len].iter_mut().zip(&tile_s[src..][..len]) {
            *y = v + bias;
        }
    });
}

/// Calls `f(segment_offset, output_offset, len)` for each run of grid
/// positions `p0..p0 + t` that lies inside the output (the first `out_w` of
/// every `Wp`).
#[inline]
fn for_each_run(
    grid: Grid,
    out_w: usize,
    p0: usize,
    t: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut p = p0;
    while p < p0 + t {
        let (oh, ow) = (p / grid.wp, p % grid.wp);
        let row_end = (oh * grid.wp + grid.wp).min(p0 + t);
        if ow < out_w {
            let len = (out_w - ow).min(row_end - p);
            f(p - p0, oh * out_w + ow, len);
        }
        p = row_end;
    }
}

/// Gradients of a block of images: `dx` `[imgs, C, H·W]` overwritten, `dw`
/// accumulated, from `dy` `[imgs, O, OH·OW]` and `x` `[imgs, C, H·W]`.
pub(super) fn backward_block(
    mut dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    d: &Dims,
    parallel: bool,
) {
    let g = &d.g;
    let grid = Grid::of(d);
    let imgs = dy.len() / d.out_img;
    let (t_max, _) = band_shape(d, grid, imgs);
    let plane = grid.plane();
    // Whole padded planes, [C/g][image][plane], of x (read by the weight
    // gradient) and of the input gradient (accumulated by col2im).
    let xp_len = if dw.is_some() { d.cg * imgs * plane } else { 0 };
    let dxp_len = if dx.is_some() { d.cg * imgs * plane } else { 0 };
    let col_len = d.ckk * t_max;
    let dyt_len = if dw.is_some() { d.og * t_max } else { 0 };
    with_scratch(xp_len + dxp_len + col_len + d.og * t_max + dyt_len, |buf| {
        let (xp, rest) = buf.split_at_mut(xp_len);
        let (dxp, rest) = rest.split_at_mut(dxp_len);
        let (col, rest) = rest.split_at_mut(col_len);
        let (dyw, dyt) = rest.split_at_mut(d.og * t_max);
        for grp in 0..g.groups {
            let x_g = &x[grp * d.cg * d.hw..];
            let w_g = &w[grp * d.og * d.ckk..][..d.og * d.ckk];
            let mut dw_g = dw
                .as_deref_mut()
                .map(|s| &mut s[grp * d.og * d.ckk..][..d.og * d.ckk]);
            if xp_len > 0 {
                each_channel(parallel, xp, imgs * plane, |c, xp_c| {
                    for (img, dst) in xp_c.chunks_exact_mut(plane).enumerate() {
                        let x_c = &x_g[img * d.in_img + c * d.hw..][..d.hw];
                        pad_rows(dst, x_c, d, grid, 0, grid.hp - 1);
                    }
                });
            }
            dxp.fill(0.0);
            for_each_band(d, grid, imgs, |segs, t| {
                // dY on the grid, [O/g, t], zero in the discarded columns.
                let dyw = &mut dyw[..d.og * t];
                for (o, dyw_o) in dyw.chunks_exact_mut(t).enumerate() {
                    dyw_o.fill(0.0);
                    for seg in segs {
                        let dy_o = &dy[seg.img * d.out_img + (grp * d.og + o) * d.ohw..][..d.ohw];
                        let dst = &mut dyw_o[seg.at..seg.at + seg.len];
                        for_each_run(grid, g.out_w, seg.p0, seg.len, |at, src, len| {
                            dst[at..at + len].copy_from_slice(&dy_o[src..src + len]);
                        });
                    }
                }
                let col = &mut col[..d.ckk * t];
                if let Some(dw_g) = dw_g.as_deref_mut() {
                    // dW_g [O/g, CKK] += dY [O/g, t] · colᵀ [t, CKK], dY
                    // transposed first so that sgemm packs it fast.
                    let xp = &*xp;
                    each_channel_with(parallel, col, d.kk * t, xp, imgs * plane, |col_c, xp_c| {
                        for seg in segs {
                            let src = &xp_c[seg.img * plane..][..plane];
                            for (tap, row) in col_c.chunks_exact_mut(t).enumerate() {
                                row[seg.at..seg.at + seg.len].copy_from_slice(
                                    &src[seg.p0 + tap_offset(d, grid, tap)..][..seg.len],
                                );
                            }
                        }
                    });
                    let dyt = &mut dyt[..t * d.og];
                    transpose(dyt, d.og, dyw, t, d.og, t);
                    let dims = (d.og, d.ckk, t);
                    matmul(parallel, dw_g, dyt, Trans::Yes, col, Trans::Yes, dims, 1.0);
                }
                if dxp_len > 0 {
                    // dcol [CKK, t] = W_gᵀ [CKK, O/g] · dY [O/g, t], added back
                    // onto the padded planes.
                    matmul(
                        parallel,
                        col,
                        w_g,
                        Trans::Yes,
                        dyw,
                        Trans::No,
                        (d.ckk, t, d.og),
                        0.0,
                    );
                    let col = &*col;
                    each_channel_with(
                        parallel,
                        dxp,
                        imgs * plane,
                        col,
                        d.kk * t,
                        |dxp_c, col_c| {
                            for seg in segs {
                                let dst_plane = &mut dxp_c[seg.img * plane..][..plane];
                                for (tap, row) in col_c.chunks_exact(t).enumerate() {
                                    let dst = &mut dst_plane[seg.p0 + tap_offset(d, grid, tap)..]
                                        [..seg.len];
                                    for (a, &v) in
                                        dst.iter_mut().zip(&row[seg.at..seg.at + seg.len])
                                    {
                                        *a += v;
                                    }
                                }
                            }
                        },
                    );
                }
            });
            if let Some(dx) = dx.as_deref_mut() {
                // The input gradient is the inside of the padded planes.
                for (c, dxp_c) in dxp.chunks_exact(imgs * plane).enumerate() {
                    for (img, dxp_i) in dxp_c.chunks_exact(plane).enumerate() {
                        let dx_c = &mut dx[img * d.in_img + (grp * d.cg + c) * d.hw..][..d.hw];
                        for (ih, row) in dx_c.chunks_exact_mut(g.in_w).enumerate() {
                            row.copy_from_slice(
                                &dxp_i[(ih + g.pad_h) * grid.wp + g.pad_w..][..g.in_w],
                            );
                        }
                    }
                }
            }
        }
    });
}
