//! The backward pass of one `(image, input channel)` plane: its input
//! gradient and its partial weight gradient (the taps' dot products).

use super::{block_width, correlate, fma, pad_plane, src_cols_needed, Window};
use crate::geometry::Conv2dGeometry;

/// The scratch buffers of [`backward_plane`]: `(rows, cols)` of the padded
/// input plane (when the weight gradient is wanted), of the padded output
/// gradient, and the length of the strided path's padded input gradient.
#[derive(Clone, Copy)]
struct PlaneBuffers {
    xp: (usize, usize),
    dyp: (usize, usize),
    dxp: usize,
    /// Output width rounded up to whole blocks.
    owp: usize,
}

impl PlaneBuffers {
    #[inline(always)]
    fn of<const L: usize>(g: &Conv2dGeometry, want_dx: bool, want_dw: bool) -> Self {
        let win = Window::of(g);
        let bw = block_width::<L>(g.out_w);
        let owp = g.out_w.div_ceil(bw) * bw;
        let hp = g.in_h + 2 * g.pad_h;
        let wp = (g.in_w + 2 * g.pad_w)
            .max(src_cols_needed::<L>(g.out_w, 0, &win))
            .max(owp + L);
        let xp = if want_dw { (hp, wp) } else { (0, wp) };
        if win.sh == 1 && win.sw == 1 {
            let (top, left) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
            let rows = g.out_h + 2 * top;
            let cols = (g.out_w + 2 * left)
                .max(src_cols_needed::<L>(g.in_w, g.pad_w, &win))
                .max(left + owp);
            PlaneBuffers {
                xp,
                dyp: (rows, cols),
                dxp: 0,
                owp,
            }
        } else {
            let dxp = if want_dx {
                (g.in_h + 2 * g.pad_h) * (g.in_w + 2 * g.pad_w)
            } else {
                0
            };
            PlaneBuffers {
                xp,
                dyp: (g.out_h, owp),
                dxp,
                owp,
            }
        }
    }

    fn len(&self, kk: usize) -> usize {
        kk + self.xp.0 * self.xp.1 + self.dyp.0 * self.dyp.1 + self.dxp
    }
}

/// The scratch length [`backward_plane`] needs with `L` floats per vector.
pub(super) fn plane_scratch_len<const L: usize>(
    g: &Conv2dGeometry,
    want_dx: bool,
    want_dw: bool,
) -> usize {
    PlaneBuffers::of::<L>(g, want_dx, want_dw).len(g.kernel_h * g.kernel_w)
}

/// Gradients of one `(image, input channel)` plane: `dx_c` (`[H, W]`)
/// overwritten, `part_c` (`[m, KH·KW]`) accumulated, from the `m` output
/// gradient planes `dy_c` and the input plane `x_c`; `L` floats per vector,
/// `F`: fused multiply-adds. `buf` is scratch, at least
/// [`plane_scratch_len`] long.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn backward_plane<const L: usize, const F: bool>(
    buf: &mut [f32],
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
    let b = PlaneBuffers::of::<L>(g, dx_c.is_some(), part_c.is_some());
    let owp = b.owp;
    let (xp_len, wp) = (b.xp.0 * b.xp.1, b.xp.1);
    let (flipped, rest) = buf.split_at_mut(kk);
    let (dyp, rest) = rest.split_at_mut(b.dyp.0 * b.dyp.1);
    let (xp, rest) = rest.split_at_mut(xp_len);
    let dxp = &mut rest[..b.dxp];
    if part_c.is_some() {
        pad_plane(xp, wp, x_c, g.in_w, g.pad_h, g.pad_w);
    }
    let (mut dx_c, mut part_c) = (dx_c, part_c);
    if win.sh == 1 && win.sw == 1 {
        // With stride 1, dX_padded[i, j] = Σ w[ki, kj] · dY[i − ki·dh, j − kj·dw]:
        // a correlation of dY, padded by the dilated kernel span, with the
        // flipped kernel, evaluated on the unpadded input region. The weight
        // gradient reads the same padded dY plane.
        let (top, left) = ((win.kh - 1) * win.dh, (win.kw - 1) * win.dw);
        let cols = b.dyp.1;
        for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
            let k = &w[(c * m + j) * kk..][..kk];
            pad_plane(dyp, cols, dy_o, g.out_w, top, left);
            if let Some(dx_c) = dx_c.as_deref_mut() {
                for (f, &v) in flipped.iter_mut().zip(k.iter().rev()) {
                    *f = v;
                }
                let init = (j == 0).then_some(0.0);
                correlate::<L, F>(
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
                tap_dots::<L, F>(&mut part_c[j * kk..][..kk], &dyv, xp, wp, &win);
            }
        }
        return;
    }
    // Strided: scatter each output gradient onto a padded plane, then crop;
    // the weight gradient reads dY padded on the right only.
    let ws = g.in_w + 2 * g.pad_w;
    dxp.fill(0.0);
    for (j, dy_o) in dy_c.chunks_exact(ohw).enumerate() {
        let k = &w[(c * m + j) * kk..][..kk];
        if !dxp.is_empty() {
            for (oh, dy_row) in dy_o.chunks_exact(g.out_w).enumerate() {
                for ki in 0..win.kh {
                    let r = oh * win.sh + ki * win.dh;
                    for kj in 0..win.kw {
                        let wv = k[ki * win.kw + kj];
                        let dst = dxp[r * ws + kj * win.dw..].iter_mut().step_by(win.sw);
                        for (d, &v) in dst.zip(dy_row) {
                            *d = fma::<F>(wv, v, *d);
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
            tap_dots::<L, F>(&mut part_c[j * kk..][..kk], &dyv, xp, wp, &win);
        }
    }
    if let Some(dx_c) = dx_c {
        for (ih, dx_row) in dx_c.chunks_exact_mut(g.in_w).enumerate() {
            dx_row.copy_from_slice(&dxp[(ih + g.pad_h) * ws + g.pad_w..][..g.in_w]);
        }
    }
}

/// An output-gradient plane as the weight-gradient kernels read it: element
/// `(oh, ow)` at `data[(row0 + oh)·stride + col0 + ow]`, zero for
/// `OW <= ow < owp`, with `owp` a multiple of [`L`].
struct DyPlane<'a> {
    data: &'a [f32],
    stride: usize,
    row0: usize,
    col0: usize,
    oh_n: usize,
    owp: usize,
}

impl DyPlane<'_> {
    /// The `L` gradients of row `oh` from column `c0`.
    #[inline(always)]
    fn load<const L: usize>(&self, oh: usize, c0: usize) -> [f32; L] {
        self.data[(self.row0 + oh) * self.stride + self.col0 + c0..][..L]
            .try_into()
            .unwrap()
    }
}

/// `dw[ki·KW + kj] += Σ_{oh, ow} dy[oh, ow] · xp[oh·sh + ki·dh, ow·sw + kj·dw]`
/// for the padded input plane `xp` (`wp` wide, at least `owp + L`).
#[inline(always)]
fn tap_dots<const L: usize, const F: bool>(
    dw: &mut [f32],
    dy: &DyPlane,
    xp: &[f32],
    wp: usize,
    win: &Window,
) {
    debug_assert!(wp >= dy.owp + L);
    // The register-blocked kernel relies on AVX-512's 32 registers; with 16
    // the compiler's vectoriser gives up on it (measured 3× slower than the
    // tap-by-tap loop on an AVX2 build).
    let blocked = L >= 16 && win.sw == 1 && win.dw == 1;
    match (win.kw, blocked) {
        (3, true) => tap_dots_rows::<L, F, 3>(dw, dy, xp, wp, win),
        (5, true) => tap_dots_rows::<L, F, 5>(dw, dy, xp, wp, win),
        (7, true) => tap_dots_rows::<L, F, 7>(dw, dy, xp, wp, win),
        _ => tap_dots_single::<L, F>(dw, dy, xp, wp, win),
    }
}

/// [`tap_dots`] for a kernel `KW <= L` wide with unit horizontal stride
/// and dilation, one kernel row at a time: each loaded gradient vector serves
/// the `KW` taps of the row, whose accumulators stay in registers, and the
/// `KW` shifted input vectors come from one `2·L` window.
#[inline(always)]
fn tap_dots_rows<const L: usize, const F: bool, const KW: usize>(
    dw: &mut [f32],
    dy: &DyPlane,
    xp: &[f32],
    wp: usize,
    win: &Window,
) {
    debug_assert!(win.kw == KW && KW <= L);
    for ki in 0..win.kh {
        let mut acc = [[0.0f32; L]; KW];
        for oh in 0..dy.oh_n {
            let x_row = &xp[(oh * win.sh + ki * win.dh) * wp..][..wp];
            for c0 in (0..dy.owp).step_by(L) {
                let d = dy.load::<L>(oh, c0);
                let x = shifted::<L, KW>(&x_row[c0..c0 + 2 * L]);
                for (acc, x) in acc.iter_mut().zip(&x) {
                    for l in 0..L {
                        acc[l] = fma::<F>(d[l], x[l], acc[l]);
                    }
                }
            }
        }
        for (kj, acc) in acc.iter().enumerate() {
            dw[ki * KW + kj] += acc.iter().sum::<f32>();
        }
    }
}

/// The `K` vectors `window[k..k + L]`, `k < K` (`window` is `2·L` long).
#[inline(always)]
fn shifted<const L: usize, const K: usize>(window: &[f32]) -> [[f32; L]; K] {
    let mut x = [[0.0; L]; K];
    for (k, x) in x.iter_mut().enumerate() {
        *x = window[k..k + L].try_into().unwrap();
    }
    x
}

/// [`tap_dots`] for any stride and dilation, one tap at a time.
#[inline(always)]
fn tap_dots_single<const L: usize, const F: bool>(
    dw: &mut [f32],
    dy: &DyPlane,
    xp: &[f32],
    wp: usize,
    win: &Window,
) {
    for ki in 0..win.kh {
        for kj in 0..win.kw {
            // A dot product over the plane, L-wide partial sums.
            let mut acc = [0.0f32; L];
            for oh in 0..dy.oh_n {
                let d_row = &dy.data[(dy.row0 + oh) * dy.stride + dy.col0..][..dy.owp];
                let base = (oh * win.sh + ki * win.dh) * wp + kj * win.dw;
                if win.sw == 1 {
                    let x_row = &xp[base..base + dy.owp];
                    for (d, x) in d_row.chunks_exact(L).zip(x_row.chunks_exact(L)) {
                        for l in 0..L {
                            acc[l] = fma::<F>(d[l], x[l], acc[l]);
                        }
                    }
                } else {
                    let x_row = xp[base..].iter().step_by(win.sw);
                    for (i, (&d, &x)) in d_row.iter().zip(x_row).enumerate() {
                        acc[i % L] = fma::<F>(d, x, acc[i % L]);
                    }
                }
            }
            dw[ki * win.kw + kj] += acc.iter().sum::<f32>();
        }
    }
}
