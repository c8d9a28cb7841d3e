//! im2col and col2im for one input channel and a band of output rows.
//!
//! # Layout
//!
//! For one input channel `x` (`[H, W]`) and the output rows `oh0..oh1` (a
//! *band*, `T = (oh1 − oh0) · OW` output positions), the column block is
//! `col[KH · KW, T]`:
//!
//! ```text
//! col[ki·KW + kj, (oh − oh0)·OW + ow] = x[oh·sh + ki·dh − ph, ow·sw + kj·dw − pw]   (0 outside x)
//! ```
//!
//! Stacking the blocks of the `C/groups` channels of a group gives the matrix
//! `[C/groups · KH · KW, T]` that the weights `[O/groups, C/groups · KH · KW]`
//! multiply. `col2im` is the adjoint: it scatters (adds) a column block back
//! onto the channel, which is the input gradient of im2col.

use crate::geometry::Conv2dGeometry;

/// A band of output rows `oh0..oh1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Band {
    /// First output row.
    pub oh0: usize,
    /// One past the last output row.
    pub oh1: usize,
}

impl Band {
    /// Output positions in the band (`rows · OW`).
    pub fn positions(&self, out_w: usize) -> usize {
        (self.oh1 - self.oh0) * out_w
    }

    /// The bands of `rows` output rows (the last may be shorter) covering `0..out_h`.
    pub fn split(out_h: usize, rows: usize) -> impl Iterator<Item = Band> {
        let rows = rows.max(1);
        (0..out_h).step_by(rows).map(move |oh0| Band {
            oh0,
            oh1: (oh0 + rows).min(out_h),
        })
    }
}

/// Range `lo..hi` of output columns `ow` whose input column
/// `ow·stride + offset − pad` falls inside `0..in_w`.
fn valid_cols(
    out_w: usize,
    in_w: usize,
    stride: usize,
    offset: usize,
    pad: usize,
) -> (usize, usize) {
    // iw >= 0  <=>  ow·stride >= pad − offset
    let lo = pad.saturating_sub(offset).div_ceil(stride).min(out_w);
    // iw < in_w  <=>  ow·stride < in_w + pad − offset
    let hi = (in_w + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out_w);
    (lo, hi.max(lo))
}

/// `dst.copy_from_slice(src)` for the short rows of an image, by 16-float
/// blocks the compiler moves with vector registers instead of a `memcpy` call.
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 16] = s.try_into().unwrap();
        let d: &mut [f32; 16] = d.try_into().unwrap();
        *d = *s;
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = s;
    }
}

/// Input row `oh·sh + ki·dh − ph`, or `None` in the padding.
#[inline]
fn input_row(g: &Conv2dGeometry, oh: usize, ki: usize) -> Option<usize> {
    (oh * g.stride_h + ki * g.dilation_h)
        .checked_sub(g.pad_h)
        .filter(|&ih| ih < g.in_h)
}

/// Fills `col` (`[KH·KW, T]`) with the patches of channel `x` (`[H, W]`) for
/// the output rows of `band`.
pub(super) fn im2col_channel(col: &mut [f32], x: &[f32], g: &Conv2dGeometry, band: Band) {
    let (ow_n, w) = (g.out_w, g.in_w);
    let t = band.positions(ow_n);
    debug_assert_eq!(col.len(), g.kernel_h * g.kernel_w * t);
    debug_assert_eq!(x.len(), g.in_h * w);
    for ki in 0..g.kernel_h {
        for kj in 0..g.kernel_w {
            let row = &mut col[(ki * g.kernel_w + kj) * t..][..t];
            let off = kj * g.dilation_w;
            let (lo, hi) = valid_cols(ow_n, w, g.stride_w, off, g.pad_w);
            for (dst, oh) in row.chunks_exact_mut(ow_n).zip(band.oh0..band.oh1) {
                let Some(ih) = input_row(g, oh, ki) else {
                    dst.fill(0.0);
                    continue;
                };
                let src = &x[ih * w..][..w];
                dst[..lo].fill(0.0);
                dst[hi..].fill(0.0);
                if lo == hi {
                    continue;
                }
                // Input column of output column `lo`.
                let start = lo * g.stride_w + off - g.pad_w;
                if g.stride_w == 1 {
                    copy_short(&mut dst[lo..hi], &src[start..start + (hi - lo)]);
                } else if g.stride_w == 2 {
                    // Even elements of pairs: a shuffle the compiler
                    // vectorises (`step_by` stays scalar).
                    let n = hi - lo;
                    let (pairs, last) = src[start..start + 2 * n - 1].split_at(2 * (n - 1));
                    for (d, p) in dst[lo..hi - 1].iter_mut().zip(pairs.chunks_exact(2)) {
                        *d = p[0];
                    }
                    dst[hi - 1] = last[0];
                } else {
                    let src = src[start..].iter().step_by(g.stride_w);
                    for (d, &s) in dst[lo..hi].iter_mut().zip(src) {
                        *d = s;
                    }
                }
            }
        }
    }
}

/// Adds the column block `col` (`[KH·KW, T]`, as built by [`im2col_channel`]
/// for `band`) back onto channel `dx` (`[H, W]`): the adjoint of im2col.
pub(super) fn col2im_channel(dx: &mut [f32], col: &[f32], g: &Conv2dGeometry, band: Band) {
    let (ow_n, w) = (g.out_w, g.in_w);
    let t = band.positions(ow_n);
    debug_assert_eq!(col.len(), g.kernel_h * g.kernel_w * t);
    debug_assert_eq!(dx.len(), g.in_h * w);
    for ki in 0..g.kernel_h {
        for kj in 0..g.kernel_w {
            let row = &col[(ki * g.kernel_w + kj) * t..][..t];
            let off = kj * g.dilation_w;
            let (lo, hi) = valid_cols(ow_n, w, g.stride_w, off, g.pad_w);
            if lo == hi {
                continue;
            }
            let start = lo * g.stride_w + off - g.pad_w;
            for (src, oh) in row.chunks_exact(ow_n).zip(band.oh0..band.oh1) {
                let Some(ih) = input_row(g, oh, ki) else {
                    continue;
                };
                let dst = &mut dx[ih * w..][..w];
                if g.stride_w == 1 {
                    for (d, &s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                        *d += s;
                    }
                } else {
                    let dst = dst[start..].iter_mut().step_by(g.stride_w);
                    for (d, &s) in dst.zip(&src[lo..hi]) {
                        *d += s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_cols_matches_brute_force() {
        for out_w in 1..6 {
            for in_w in 1..6 {
                for stride in 1..4 {
                    for offset in 0..5 {
                        for pad in 0..4 {
                            let ok = |ow: usize| {
                                let iw = (ow * stride + offset) as isize - pad as isize;
                                iw >= 0 && iw < in_w as isize
                            };
                            let (lo, hi) = valid_cols(out_w, in_w, stride, offset, pad);
                            for ow in 0..out_w {
                                assert_eq!(
                                    ok(ow),
                                    (lo..hi).contains(&ow),
                                    "ow {ow} out_w {out_w} in_w {in_w} s {stride} off {offset} p {pad}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x, c.
        let mut rng = crate::Rng::seed_from(5);
        let g =
            Conv2dGeometry::new(&[1, 1, 7, 6], &[1, 1, 3, 2], (2, 1), (1, 2), (1, 2), 1).unwrap();
        for band in Band::split(g.out_h, 2) {
            let t = band.positions(g.out_w);
            let x: Vec<f32> = (0..42).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let c: Vec<f32> = (0..6 * t).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let mut col = vec![f32::NAN; 6 * t];
            im2col_channel(&mut col, &x, &g, band);
            let mut dx = vec![0.0; 42];
            col2im_channel(&mut dx, &c, &g, band);
            let lhs: f64 = col.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
        }
    }
}
