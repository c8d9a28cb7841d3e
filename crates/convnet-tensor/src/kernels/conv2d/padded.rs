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

use rayon::prelude::*;

use super::layout::transpose;
use super::lowered::{matmul, Dims};
use super::scratch::with_scratch;
use crate::kernels::gemm::Trans;

/// Largest fraction of extra (discarded) output columns for which the padded
/// grid beats the row-by-row im2col.
const MAX_WASTE: f64 = 0.25;

/// The padded grid of one geometry.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Padded width: the grid's row length.
    wp: usize,
    /// Floats per padded channel plane: `Hp · Wp` plus a zero tail that the
    /// last tap's run reads past the final row.
    plane: usize,
}

impl Grid {
    fn of(d: &Dims) -> Grid {
        let g = &d.g;
        let wp = g.in_w + 2 * g.pad_w;
        let hp = g.in_h + 2 * g.pad_h;
        Grid {
            wp,
            plane: hp * wp + (g.kernel_w - 1) * g.dilation_w,
        }
    }

    /// Grid positions computed: every output row, `Wp` wide.
    fn positions(&self, d: &Dims) -> usize {
        d.g.out_h * self.wp
    }

    /// Grid positions per band: a multiple of the sgemm micro-kernel width
    /// (16), so that only the very last band has a ragged edge.
    fn band(&self, d: &Dims) -> usize {
        d.grid_band.clamp(1, self.positions(d))
    }
}

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

/// Copies the group's channels `x_g` (`[C/g, H, W]`) into zero-padded planes.
fn pad_group(xp: &mut [f32], x_g: &[f32], d: &Dims, grid: Grid, parallel: bool) {
    let g = &d.g;
    let pad = |(xp_c, x_c): (&mut [f32], &[f32])| {
        xp_c.fill(0.0);
        for (ih, row) in x_c.chunks_exact(g.in_w).enumerate() {
            xp_c[(ih + g.pad_h) * grid.wp + g.pad_w..][..g.in_w].copy_from_slice(row);
        }
    };
    if parallel {
        xp.par_chunks_mut(grid.plane)
            .zip(x_g.par_chunks(d.hw))
            .for_each(pad);
    } else {
        xp.chunks_mut(grid.plane)
            .zip(x_g.chunks(d.hw))
            .for_each(pad);
    }
}

/// Copies padded rows `r_lo..=r_hi` of the group's channels into planes of
/// `plane` floats (zero tail included).
#[allow(clippy::too_many_arguments)]
fn pad_rows(
    xp: &mut [f32],
    plane: usize,
    x_g: &[f32],
    d: &Dims,
    grid: Grid,
    r_lo: usize,
    r_hi: usize,
    parallel: bool,
) {
    let g = &d.g;
    let pad = |(xp_c, x_c): (&mut [f32], &[f32])| {
        for (r, dst) in (r_lo..=r_hi).zip(xp_c.chunks_exact_mut(grid.wp)) {
            match r.checked_sub(g.pad_h).filter(|&ih| ih < g.in_h) {
                Some(ih) => {
                    dst[..g.pad_w].fill(0.0);
                    dst[g.pad_w..g.pad_w + g.in_w].copy_from_slice(&x_c[ih * g.in_w..][..g.in_w]);
                    dst[g.pad_w + g.in_w..].fill(0.0);
                }
                None => dst.fill(0.0),
            }
        }
        xp_c[(r_hi + 1 - r_lo) * grid.wp..].fill(0.0);
    };
    if parallel {
        xp.par_chunks_mut(plane)
            .zip(x_g.par_chunks(d.hw))
            .for_each(pad);
    } else {
        xp.chunks_mut(plane).zip(x_g.chunks(d.hw)).for_each(pad);
    }
}

/// Offset in a padded plane of tap `t = ki·KW + kj` for the band starting at
/// grid position `p0`.
#[inline]
fn tap_offset(d: &Dims, grid: Grid, p0: usize, tap: usize) -> usize {
    let (ki, kj) = (tap / d.g.kernel_w, tap % d.g.kernel_w);
    p0 + ki * d.g.dilation_h * grid.wp + kj * d.g.dilation_w
}

/// im2col of a band (`t` grid positions from `p0`): one run per tap and channel.
fn im2col(col: &mut [f32], xp: &[f32], d: &Dims, grid: Grid, p0: usize, t: usize, parallel: bool) {
    let fill = |(col_c, xp_c): (&mut [f32], &[f32])| {
        for (tap, row) in col_c.chunks_exact_mut(t).enumerate() {
            row.copy_from_slice(&xp_c[tap_offset(d, grid, p0, tap)..][..t]);
        }
    };
    if parallel {
        col.par_chunks_mut(d.kk * t)
            .zip(xp.par_chunks(grid.plane))
            .for_each(fill);
    } else {
        col.chunks_mut(d.kk * t)
            .zip(xp.chunks(grid.plane))
            .for_each(fill);
    }
}

/// col2im of a band: adds each run back onto the padded gradient planes.
fn col2im(dxp: &mut [f32], col: &[f32], d: &Dims, grid: Grid, p0: usize, t: usize, parallel: bool) {
    let add = |(dxp_c, col_c): (&mut [f32], &[f32])| {
        for (tap, row) in col_c.chunks_exact(t).enumerate() {
            let dst = &mut dxp_c[tap_offset(d, grid, p0, tap)..][..t];
            for (a, &v) in dst.iter_mut().zip(row) {
                *a += v;
            }
        }
    };
    if parallel {
        dxp.par_chunks_mut(grid.plane)
            .zip(col.par_chunks(d.kk * t))
            .for_each(add);
    } else {
        dxp.chunks_mut(grid.plane)
            .zip(col.chunks(d.kk * t))
            .for_each(add);
    }
}

/// Forward pass of one image (see [`super::lowered`] for the arguments).
pub(super) fn forward_image(
    out: &mut [f32],
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    d: &Dims,
    parallel: bool,
) {
    let g = &d.g;
    let grid = Grid::of(d);
    let total = grid.positions(d);
    let t_max = grid.band(d);
    // Padded rows a band reads: its own plus the kernel's reach below.
    let band_rows = t_max.div_ceil(grid.wp) + 1 + (g.kernel_h - 1) * g.dilation_h;
    let band_plane = band_rows * grid.wp + (g.kernel_w - 1) * g.dilation_w;
    let (xp_len, col_len) = (d.cg * band_plane, d.ckk * t_max);
    with_scratch(xp_len + col_len + d.og * t_max, |buf| {
        let (xp, rest) = buf.split_at_mut(xp_len);
        let (col, tile) = rest.split_at_mut(col_len);
        for grp in 0..g.groups {
            let out_g = &mut out[grp * d.og * d.ohw..][..d.og * d.ohw];
            let x_g = &x[grp * d.cg * d.hw..][..d.cg * d.hw];
            let wt_g = &wt[grp * d.og * d.ckk..][..d.og * d.ckk];
            for p0 in (0..total).step_by(t_max) {
                let t = t_max.min(total - p0);
                let r_lo = p0 / grid.wp;
                let r_hi = (p0 + t - 1) / grid.wp + (g.kernel_h - 1) * g.dilation_h;
                pad_rows(xp, band_plane, x_g, d, grid, r_lo, r_hi, parallel);
                let col = &mut col[..d.ckk * t];
                let sub = Grid {
                    wp: grid.wp,
                    plane: band_plane,
                };
                im2col(col, xp, d, sub, p0 - r_lo * grid.wp, t, parallel);
                // Y_band [O/g, T] = W_g [O/g, CKK] · col [CKK, T]
                let tile = &mut tile[..d.og * t];
                matmul(
                    parallel,
                    tile,
                    wt_g,
                    Trans::Yes,
                    col,
                    Trans::No,
                    (d.og, t, d.ckk),
                    0.0,
                );
                // Keep the grid positions inside the output, plus the bias.
                for (o, (out_o, tile_o)) in out_g
                    .chunks_exact_mut(d.ohw)
                    .zip(tile.chunks_exact(t))
                    .enumerate()
                {
                    let b = bias.map_or(0.0, |b| b[grp * d.og + o]);
                    for_each_run(grid, g.out_w, p0, t, |src, dst, len| {
                        for (y, &v) in out_o[dst..][..len].iter_mut().zip(&tile_o[src..][..len]) {
                            *y = v + b;
                        }
                    });
                }
            }
        }
    });
}

/// Calls `f(band_offset, output_offset, len)` for each run of grid positions
/// `p0..p0 + t` that lies inside the output (the first `out_w` of every `Wp`).
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

/// Gradients of one image (see [`super::lowered`] for the arguments).
pub(super) fn backward_image(
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
    let total = grid.positions(d);
    let t_max = grid.band(d);
    let xp_len = if dw.is_some() { d.cg * grid.plane } else { 0 };
    let dxp_len = if dx.is_some() { d.cg * grid.plane } else { 0 };
    let col_len = d.ckk * t_max;
    let dyt_len = if dw.is_some() { d.og * t_max } else { 0 };
    with_scratch(xp_len + dxp_len + col_len + d.og * t_max + dyt_len, |buf| {
        let (xp, rest) = buf.split_at_mut(xp_len);
        let (dxp, rest) = rest.split_at_mut(dxp_len);
        let (col, rest) = rest.split_at_mut(col_len);
        let (dyw, dyt) = rest.split_at_mut(d.og * t_max);
        for grp in 0..g.groups {
            let dy_g = &dy[grp * d.og * d.ohw..][..d.og * d.ohw];
            let x_g = &x[grp * d.cg * d.hw..][..d.cg * d.hw];
            let w_g = &w[grp * d.og * d.ckk..][..d.og * d.ckk];
            let mut dw_g = dw
                .as_deref_mut()
                .map(|s| &mut s[grp * d.og * d.ckk..][..d.og * d.ckk]);
            if dw_g.is_some() {
                pad_group(xp, x_g, d, grid, parallel);
            }
            dxp.fill(0.0);
            for p0 in (0..total).step_by(t_max) {
                let t = t_max.min(total - p0);
                // dY on the grid, [O/g, T], zero in the discarded columns.
                let dyw = &mut dyw[..d.og * t];
                for (dyw_o, dy_o) in dyw.chunks_exact_mut(t).zip(dy_g.chunks_exact(d.ohw)) {
                    dyw_o.fill(0.0);
                    for_each_run(grid, g.out_w, p0, t, |dst, src, len| {
                        dyw_o[dst..][..len].copy_from_slice(&dy_o[src..][..len]);
                    });
                }
                let col = &mut col[..d.ckk * t];
                if let Some(dw_g) = dw_g.as_deref_mut() {
                    // dW_g [O/g, CKK] += dY [O/g, T] · colᵀ [T, CKK], dY transposed
                    // first so that sgemm packs it fast.
                    im2col(col, xp, d, grid, p0, t, parallel);
                    let dyt = &mut dyt[..t * d.og];
                    transpose(dyt, d.og, dyw, t, d.og, t);
                    let dims = (d.og, d.ckk, t);
                    matmul(parallel, dw_g, dyt, Trans::Yes, col, Trans::Yes, dims, 1.0);
                }
                if dxp_len > 0 {
                    // dcol [CKK, T] = W_gᵀ [CKK, O/g] · dY [O/g, T], added back.
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
                    col2im(dxp, col, d, grid, p0, t, parallel);
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                // The input gradient is the inside of the padded planes.
                let dx_g = &mut dx[grp * d.cg * d.hw..][..d.cg * d.hw];
                for (dx_c, dxp_c) in dx_g
                    .chunks_exact_mut(d.hw)
                    .zip(dxp.chunks_exact(grid.plane))
                {
                    for (ih, row) in dx_c.chunks_exact_mut(g.in_w).enumerate() {
                        row.copy_from_slice(&dxp_c[(ih + g.pad_h) * grid.wp + g.pad_w..][..g.in_w]);
                    }
                }
            }
        }
    });
}
