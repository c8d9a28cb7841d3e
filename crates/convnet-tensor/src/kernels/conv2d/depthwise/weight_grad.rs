//! The backward pass of one `(image, input channel)` plane: its input
//! gradient and its partial weight gradient (the taps' dot products).

use super::super::scratch::with_scratch;
use super::{block_width, correlate, fma, pad_plane, src_cols_needed, Window, LANES};
use crate::geometry::Conv2dGeometry;

/// Gradients of one `(image, input channel)` plane: `dx_c` (`[H, W]`)
/// overwritten, `part_c` (`[m, KH·KW]`) accumulated, from the `m` output
/// gradient planes `dy_c` and the input plane `x_c`.
pub(super) fn backward_plane(
    dx_c: Option<&mut [f32]>,
    part_c: Option<&mut [f32]>,
    dy_c: &[f32],
    x_c: &[f32],
    w: &[f32],
    c: usize,
    g: &Conv2dGeometry,
) {
    let win = Window::of(g);
    let m = g.out_channels / g.in_channels;
    let (ohw, kk) = (g.out_h * g.out_w, win.kh * win.kw);
    let bw = block_width(g.out_w);
    let owp = g.out_w.div_ceil(bw) * bw;
    // The padded input plane the weight gradient reads.
    let hp = g.in_h + 2 * g.pad_h;
    let wp = (g.in_w + 2 * g.pad_w)
        .max(src_cols_needed(g.out_w, 0, &win))
        .max(owp + LANES);
    let xp_len = if part_c.is_some() { hp * wp } else { 0 };
    if win.sh == 1 && win.sw == 1 {
        // With stride 1, dX_padded[i, j] = Σ w[ki, kj] · dY[i − ki·dh, j − kj·dw]:
        // a correlation of dY, padded by the dilated kernel span, with the
        // flipped kernel, evaluated on the unpadded input region. The weight
        // gradient reads the same padded dY plane.
        let (top, left) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
        let rows = g.out_h + 2 * top;
        let cols = (g.out_w + 2 * left)
            .max(src_cols_needed(g.in_w, g.pad_w, &win))
            .max(left + owp);
        with_scratch(kk + rows * cols + xp_len, |buf| {
            let (flipped, rest) = buf.split_at_mut(kk);
            let (dyp, xp) = rest.split_at_mut(rows * cols);
            if part_c.is_some() {
                pad_plane(xp, wp, x_c, g.in_w, g.pad_h, g.pad_w);
            }
            let (mut dx_c, mut part_c) = (dx_c, part_c);
            for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
                let k = &w[(c * m + j) * kk..][..kk];
                pad_plane(dyp, cols, dy_o, g.out_w, top, left);
                if let Some(dx_c) = dx_c.as_deref_mut() {
                    for (f, &v) in flipped.iter_mut().zip(k.iter().rev()) {
                        *f = v;
                    }
                    let init = (j == 0).then_some(0.0);
                    correlate(
                        dx_c, init, g.in_w, dyp, cols, g.pad_h, g.pad_w, flipped, &win,
                    );
                }
                if let Some(part_c) = part_c.as_deref_mut() {
                    let dyv = DyPlane {
                        data: dyp,
                        stride: cols,
                        row0: top,
                        col0: left,
                        oh_n: g.out_h,
                        owp,
                    };
                    tap_dots(&mut part_c[j * kk..][..kk], &dyv, xp, wp, &win);
                }
            }
        });
        return;
    }
    // Strided: scatter each output gradient onto a padded plane, then crop;
    // the weight gradient reads dY padded on the right only.
    let (hs, ws) = (g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w);
    let dxp_len = if dx_c.is_some() { hs * ws } else { 0 };
    with_scratch(dxp_len + g.out_h * owp + xp_len, |buf| {
        let (dxp, rest) = buf.split_at_mut(dxp_len);
        let (dyp, xp) = rest.split_at_mut(g.out_h * owp);
        dxp.fill(0.0);
        if part_c.is_some() {
            pad_plane(xp, wp, x_c, g.in_w, g.pad_h, g.pad_w);
        }
        let mut part_c = part_c;
        for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
            let k = &w[(c * m + j) * kk..][..kk];
            if dxp_len > 0 {
                for (oh, dy_row) in dy_o.chunks_exact(g.out_w).enumerate() {
                    for ki in 0..win.kh {
                        let r = oh * win.sh + ki * win.dh;
                        for kj in 0..win.kw {
                            let wv = k[ki * win.kw + kj];
                            let dst = dxp[r * ws + kj * win.dw..].iter_mut().step_by(win.sw);
                            for (d, &v) in dst.zip(dy_row) {
                                *d = fma(wv, v, *d);
                            }
                        }
                    }
                }
            }
            if let Some(part_c) = part_c.as_deref_mut() {
                pad_plane(dyp, owp, dy_o, g.out_w, 0, 0);
                let dyv = DyPlane {
                    data: dyp,
                    stride: owp,
                    row0: 0,
                    col0: 0,
                    oh_n: g.out_h,
                    owp,
                };
                tap_dots(&mut part_c[j * kk..][..kk], &dyv, xp, wp, &win);
            }
        }
        if let Some(dx_c) = dx_c {
            for (ih, dx_row) in dx_c.chunks_exact_mut(g.in_w).enumerate() {
                dx_row.copy_from_slice(&dxp[(ih + g.pad_h) * ws + g.pad_w..][..g.in_w]);
            }
        }
    });
}

/// An output-gradient plane as the weight-gradient kernels read it: element
/// `(oh, ow)` at `data[(row0 + oh)·stride + col0 + ow]`, zero for
/// `OW <= ow < owp`, with `owp` a multiple of [`LANES`].
struct DyPlane<'a> {
    data: &'a [f32],
    stride: usize,
    row0: usize,
    col0: usize,
    oh_n: usize,
    owp: usize,
}

impl DyPlane<'_> {
    /// The [`LANES`] gradients of row `oh` from column `c0`.
    #[inline(always)]
    fn load(&self, oh: usize, c0: usize) -> [f32; LANES] {
        self.data[(self.row0 + oh) * self.stride + self.col0 + c0..][..LANES]
            .try_into()
            .unwrap()
    }
}

/// `dw[ki·KW + kj] += Σ_{oh, ow} dy[oh, ow] · xp[oh·sh + ki·dh, ow·sw + kj·dw]`
/// for the padded input plane `xp` (`wp` wide, at least `owp + LANES`).
fn tap_dots(dw: &mut [f32], dy: &DyPlane, xp: &[f32], wp: usize, win: &Window) {
    debug_assert!(wp >= dy.owp + LANES);
    // The register-blocked kernel relies on AVX-512's 32 registers; with 16
    // the compiler's vectoriser gives up on it (measured 3× slower than the
    // tap-by-tap loop on an AVX2 build).
    let blocked = cfg!(target_feature = "avx512f") && win.sw == 1 && win.dw == 1;
    match (win.kw, blocked) {
        (3, true) => tap_dots_rows::<3>(dw, dy, xp, wp, win),
        (5, true) => tap_dots_rows::<5>(dw, dy, xp, wp, win),
        (7, true) => tap_dots_rows::<7>(dw, dy, xp, wp, win),
        _ => tap_dots_single(dw, dy, xp, wp, win),
    }
}

/// [`tap_dots`] for a kernel `KW <= LANES` wide with unit horizontal stride
/// and dilation, one kernel row at a time: each loaded gradient vector serves
/// the `KW` taps of the row, whose accumulators stay in registers, and the
/// `KW` shifted input vectors come from one `2·LANES` window.
fn tap_dots_rows<const KW: usize>(
    dw: &mut [f32],
    dy: &DyPlane,
    xp: &[f32],
    wp: usize,
    win: &Window,
) {
    debug_assert!(win.kw == KW && KW <= LANES);
    for ki in 0..win.kh {
        let mut acc = [[0.0f32; LANES]; KW];
        for oh in 0..dy.oh_n {
            let x_row = &xp[(oh * win.sh + ki * win.dh) * wp..][..wp];
            for c0 in (0..dy.owp).step_by(LANES) {
                let d = dy.load(oh, c0);
                let x = shifted::<KW>(x_row[c0..c0 + 2 * LANES].try_into().unwrap());
                for (acc, x) in acc.iter_mut().zip(&x) {
                    for l in 0..LANES {
                        acc[l] = fma(d[l], x[l], acc[l]);
                    }
                }
            }
        }
        for (kj, acc) in acc.iter().enumerate() {
            dw[ki * KW + kj] += acc.iter().sum::<f32>();
        }
    }
}

/// The `K` vectors `window[k..k + LANES]`, `k < K`.
#[inline(always)]
fn shifted<const K: usize>(window: &[f32; 2 * LANES]) -> [[f32; LANES]; K] {
    let mut x = [[0.0; LANES]; K];
    for (k, x) in x.iter_mut().enumerate() {
        *x = window[k..k + LANES].try_into().unwrap();
    }
    x
}

/// [`tap_dots`] for any stride and dilation, one tap at a time.
fn tap_dots_single(dw: &mut [f32], dy: &DyPlane, xp: &[f32], wp: usize, win: &Window) {
    for ki in 0..win.kh {
        for kj in 0..win.kw {
            // A dot product over the plane, LANES-wide partial sums.
            let mut acc = [0.0f32; LANES];
            for oh in 0..dy.oh_n {
                let d_row = &dy.data[(dy.row0 + oh) * dy.stride + dy.col0..][..dy.owp];
                let base = (oh * win.sh + ki * win.dh) * wp + kj * win.dw;
                if win.sw == 1 {
                    let x_row = &xp[base..base + dy.owp];
                    for (d, x) in d_row.chunks_exact(LANES).zip(x_row.chunks_exact(LANES)) {
                        for l in 0..LANES {
                            acc[l] = fma(d[l], x[l], acc[l]);
                        }
                    }
                } else {
                    let x_row = xp[base..].iter().step_by(win.sw);
                    for (i, (&d, &x)) in d_row.iter().zip(x_row).enumerate() {
                        acc[i % LANES] = fma(d, x, acc[i % LANES]);
                    }
                }
            }
            dw[ki * win.kw + kj] += acc.iter().sum::<f32>();
        }
    }
}
