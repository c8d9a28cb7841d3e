//! Depthwise convolution (one input channel per group: `C / groups == 1`) by
//! direct loops.
//!
//! Output channel `o` reads input channel `c = o / m`, where `m = O / C` is
//! the channel multiplier (1 for ConvNeXt's depthwise 7×7, 6 for LeNet-5's
//! first layer, which has one input channel). The output planes of one input
//! channel, `[m, OH, OW]`, are contiguous, so each rayon task owns one
//! `(image, input channel)` pair.
//!
//! Every loop runs over a zero-padded copy of a plane, so the inner loops have
//! no bounds logic: they compute blocks of `BW` consecutive output columns of
//! `R` rows at once in accumulator arrays that the compiler keeps in vector
//! registers (`R · BW` = 128 floats, eight AVX-512 registers, enough
//! independent FMA chains to hide their latency).

use rayon::prelude::*;

use super::scratch::with_scratch;
use crate::geometry::Conv2dGeometry;

/// The sliding window: kernel size, stride and dilation.
#[derive(Debug, Clone, Copy)]
struct Window {
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
}

impl Window {
    fn of(g: &Conv2dGeometry) -> Self {
        Window {
            kh: g.kernel_h,
            kw: g.kernel_w,
            sh: g.stride_h,
            sw: g.stride_w,
            dh: g.dilation_h,
            dw: g.dilation_w,
        }
    }
}

/// Output columns computed per block for an output `out_w` wide.
fn block_width(out_w: usize) -> usize {
    match out_w {
        0..=16 => 16,
        17..=32 => 32,
        _ => 64,
    }
}

/// Columns a padded source plane needs so that the blocks of an output
/// `out_w` wide, starting at source column `col0`, read inside it.
fn src_cols_needed(out_w: usize, col0: usize, win: &Window) -> usize {
    let bw = block_width(out_w);
    col0 + (out_w.div_ceil(bw) * bw - 1) * win.sw + (win.kw - 1) * win.dw + 1
}

/// Copies the plane `src` (`[h, w]`) into `dst` (`[rows, dst_w]`) at
/// `(top, left)`, zero elsewhere.
fn pad_plane(dst: &mut [f32], dst_w: usize, src: &[f32], w: usize, top: usize, left: usize) {
    dst.fill(0.0);
    if w == 0 {
        return;
    }
    for (r, src_row) in src.chunks_exact(w).enumerate() {
        dst[(top + r) * dst_w + left..][..w].copy_from_slice(src_row);
    }
}

/// `out[r, c] += Σ_{ki,kj} k[ki·KW + kj] · src[(row0 + r·sh + ki·dh)·src_w + col0 + c·sw + kj·dw]`
/// for `out` `[out_h, out_w]`. `src` (`src_w` wide) must have
/// [`src_cols_needed`] columns and every row the window reaches.
#[allow(clippy::too_many_arguments)]
fn correlate(
    out: &mut [f32],
    out_w: usize,
    src: &[f32],
    src_w: usize,
    row0: usize,
    col0: usize,
    k: &[f32],
    win: &Window,
) {
    debug_assert!(src_w >= src_cols_needed(out_w, col0, win));
    match block_width(out_w) {
        16 => correlate_blocks::<8, 16>(out, out_w, src, src_w, row0, col0, k, win),
        32 => correlate_blocks::<4, 32>(out, out_w, src, src_w, row0, col0, k, win),
        _ => correlate_blocks::<2, 64>(out, out_w, src, src_w, row0, col0, k, win),
    }
}

/// [`correlate`] by blocks of `R` rows and `BW` columns (then single rows).
#[allow(clippy::too_many_arguments)]
fn correlate_blocks<const R: usize, const BW: usize>(
    out: &mut [f32],
    out_w: usize,
    src: &[f32],
    src_w: usize,
    row0: usize,
    col0: usize,
    k: &[f32],
    win: &Window,
) {
    if out_w == 0 {
        return;
    }
    let out_h = out.len() / out_w;
    let full = out_h / R * R;
    for r0 in (0..full).step_by(R) {
        for c0 in (0..out_w).step_by(BW) {
            block::<R, BW>(out, out_w, r0, c0, src, src_w, row0, col0, k, win);
        }
    }
    for r0 in full..out_h {
        for c0 in (0..out_w).step_by(BW) {
            block::<1, BW>(out, out_w, r0, c0, src, src_w, row0, col0, k, win);
        }
    }
}

/// One `R × BW` block of [`correlate`] at output `(r0, c0)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const R: usize, const BW: usize>(
    out: &mut [f32],
    out_w: usize,
    r0: usize,
    c0: usize,
    src: &[f32],
    src_w: usize,
    row0: usize,
    col0: usize,
    k: &[f32],
    win: &Window,
) {
    let cols = BW.min(out_w - c0);
    let mut acc = [[0.0f32; BW]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        acc[..cols].copy_from_slice(&out[(r0 + r) * out_w + c0..][..cols]);
    }
    for ki in 0..win.kh {
        let k_row = &k[ki * win.kw..][..win.kw];
        for (r, acc) in acc.iter_mut().enumerate() {
            let base = (row0 + (r0 + r) * win.sh + ki * win.dh) * src_w + col0 + c0 * win.sw;
            for (kj, &wv) in k_row.iter().enumerate() {
                let start = base + kj * win.dw;
                if win.sw == 1 {
                    let seg = &src[start..start + BW];
                    for l in 0..BW {
                        acc[l] = wv.mul_add(seg[l], acc[l]);
                    }
                } else {
                    let seg = src[start..].iter().step_by(win.sw);
                    for (a, &s) in acc.iter_mut().zip(seg) {
                        *a = wv.mul_add(s, *a);
                    }
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        out[(r0 + r) * out_w + c0..][..cols].copy_from_slice(&acc[..cols]);
    }
}

/// Forward pass. Lengths are checked by the caller.
pub(super) fn forward(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
) {
    let win = Window::of(g);
    let c_n = g.in_channels;
    let m = g.out_channels / c_n;
    let (hw, ohw, kk) = (g.in_h * g.in_w, g.out_h * g.out_w, win.kh * win.kw);
    let hp = g.in_h + 2 * g.pad_h;
    let wp = (g.in_w + 2 * g.pad_w).max(src_cols_needed(g.out_w, 0, &win));
    out.par_chunks_mut(m * ohw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(plane, (out_c, x_c))| {
            let c = plane % c_n;
            with_scratch(hp * wp, |xp| {
                pad_plane(xp, wp, x_c, g.in_w, g.pad_h, g.pad_w);
                for (j, out_o) in out_c.chunks_exact_mut(ohw).enumerate() {
                    let o = c * m + j;
                    out_o.fill(bias.map_or(0.0, |b| b[o]));
                    correlate(out_o, g.out_w, xp, wp, 0, 0, &w[o * kk..][..kk], &win);
                }
            });
        });
}

/// Input and weight gradients (the bias gradient is computed by the caller).
/// `dx` is overwritten, `dw` accumulated.
pub(super) fn backward(
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    g: &Conv2dGeometry,
) {
    if let Some(dx) = dx {
        backward_input(dx, dy, w, g);
    }
    if let Some(dw) = dw {
        backward_weight(dw, dy, x, g);
    }
}

/// `dx[n, c]` = the sum over the `m` outputs `o` of `c` of the transposed
/// correlation of `dy[n, o]` with `w[o]`. Parallel over `(n, c)` planes.
fn backward_input(dx: &mut [f32], dy: &[f32], w: &[f32], g: &Conv2dGeometry) {
    let win = Window::of(g);
    let c_n = g.in_channels;
    let m = g.out_channels / c_n;
    let (hw, ohw, kk) = (g.in_h * g.in_w, g.out_h * g.out_w, win.kh * win.kw);
    if hw == 0 {
        return;
    }
    dx.par_chunks_mut(hw)
        .zip(dy.par_chunks(m * ohw))
        .enumerate()
        .for_each(|(plane, (dx_c, dy_c))| {
            let c = plane % c_n;
            dx_c.fill(0.0);
            if win.sh == 1 && win.sw == 1 {
                // With stride 1, dX_padded[i, j] = Σ w[ki, kj] · dY[i − ki·dh, j − kj·dw]:
                // a correlation of dY, padded by the dilated kernel span, with
                // the flipped kernel, evaluated on the unpadded input region.
                let (top, left) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
                let rows = g.out_h + 2 * top;
                let cols = (g.out_w + 2 * left).max(src_cols_needed(g.in_w, g.pad_w, &win));
                with_scratch(kk + rows * cols, |buf| {
                    let (flipped, dyp) = buf.split_at_mut(kk);
                    for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
                        let k = &w[(c * m + j) * kk..][..kk];
                        for (f, &v) in flipped.iter_mut().zip(k.iter().rev()) {
                            *f = v;
                        }
                        pad_plane(dyp, cols, dy_o, g.out_w, top, left);
                        correlate(dx_c, g.in_w, dyp, cols, g.pad_h, g.pad_w, flipped, &win);
                    }
                });
            } else {
                // Strided: scatter each output gradient onto a padded plane, then crop.
                let (hp, wp) = (g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w);
                with_scratch(hp * wp, |dxp| {
                    dxp.fill(0.0);
                    for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
                        let k = &w[(c * m + j) * kk..][..kk];
                        for (oh, dy_row) in dy_o.chunks_exact(g.out_w).enumerate() {
                            for ki in 0..win.kh {
                                let r = oh * win.sh + ki * win.dh;
                                for kj in 0..win.kw {
                                    let wv = k[ki * win.kw + kj];
                                    let dst =
                                        dxp[r * wp + kj * win.dw..].iter_mut().step_by(win.sw);
                                    for (d, &v) in dst.zip(dy_row) {
                                        *d = wv.mul_add(v, *d);
                                    }
                                }
                            }
                        }
                    }
                    for (ih, dx_row) in dx_c.chunks_exact_mut(g.in_w).enumerate() {
                        dx_row.copy_from_slice(&dxp[(ih + g.pad_h) * wp + g.pad_w..][..g.in_w]);
                    }
                });
            }
        });
}

/// `dw[o, ki, kj] += Σ_n Σ_{oh, ow} dy[n, o, oh, ow] · x_padded[n, c, oh·sh + ki·dh, ow·sw + kj·dw]`.
/// Parallel over input channels `c` (each owns the rows of its `m` outputs),
/// images summed in order.
fn backward_weight(dw: &mut [f32], dy: &[f32], x: &[f32], g: &Conv2dGeometry) {
    let win = Window::of(g);
    let c_n = g.in_channels;
    let m = g.out_channels / c_n;
    let (hw, ohw, kk) = (g.in_h * g.in_w, g.out_h * g.out_w, win.kh * win.kw);
    let bw = block_width(g.out_w);
    let owp = g.out_w.div_ceil(bw) * bw;
    let hp = g.in_h + 2 * g.pad_h;
    let wp = (g.in_w + 2 * g.pad_w).max(src_cols_needed(g.out_w, 0, &win));
    dw.par_chunks_mut(m * kk).enumerate().for_each(|(c, dw_c)| {
        with_scratch(hp * wp + g.out_h * owp, |buf| {
            let (xp, dyp) = buf.split_at_mut(hp * wp);
            for n in 0..g.batch {
                let x_c = &x[(n * c_n + c) * hw..][..hw];
                pad_plane(xp, wp, x_c, g.in_w, g.pad_h, g.pad_w);
                for (j, dw_o) in dw_c.chunks_exact_mut(kk).enumerate() {
                    let o = c * m + j;
                    let dy_o = &dy[(n * g.out_channels + o) * ohw..][..ohw];
                    pad_plane(dyp, owp, dy_o, g.out_w, 0, 0);
                    match bw {
                        16 => tap_dots::<16>(dw_o, dyp, owp, xp, wp, &win),
                        32 => tap_dots::<32>(dw_o, dyp, owp, xp, wp, &win),
                        _ => tap_dots::<64>(dw_o, dyp, owp, xp, wp, &win),
                    }
                }
            }
        });
    });
}

/// `dw[ki·KW + kj] += Σ_{oh, ow} dyp[oh, ow] · xp[oh·sh + ki·dh, ow·sw + kj·dw]`,
/// with `dyp` zero-padded to `owp` (a multiple of `BW`) columns.
fn tap_dots<const BW: usize>(
    dw: &mut [f32],
    dyp: &[f32],
    owp: usize,
    xp: &[f32],
    wp: usize,
    win: &Window,
) {
    for ki in 0..win.kh {
        for kj in 0..win.kw {
            let mut acc = [0.0f32; BW];
            for (oh, dy_row) in dyp.chunks_exact(owp).enumerate() {
                let base = (oh * win.sh + ki * win.dh) * wp + kj * win.dw;
                for (c0, dy_blk) in dy_row.chunks_exact(BW).enumerate() {
                    let start = base + c0 * BW * win.sw;
                    if win.sw == 1 {
                        let seg = &xp[start..start + BW];
                        for l in 0..BW {
                            acc[l] = dy_blk[l].mul_add(seg[l], acc[l]);
                        }
                    } else {
                        let seg = xp[start..].iter().step_by(win.sw);
                        for ((a, &d), &s) in acc.iter_mut().zip(dy_blk).zip(seg) {
                            *a = d.mul_add(s, *a);
                        }
                    }
                }
            }
            dw[ki * win.kw + kj] += acc.iter().sum::<f32>();
        }
    }
}
