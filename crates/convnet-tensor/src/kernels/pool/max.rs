//! Max pooling, forward and backward (PyTorch's `MaxPool2d`).

use rayon::prelude::*;

use super::{check_geometry, check_len, min_planes_per_task, span};
use crate::error::{fmt_shape, Result, TensorError};
use crate::geometry::Pool2dGeometry;
use crate::tensor::Tensor;

/// Max pooling forward over `[N, C, H, W]`.
///
/// - `out`: `[N, C, OH, OW]`, overwritten with the window maxima;
/// - `argmax`: `[N, C, OH, OW]`, overwritten with the position of each
///   maximum as a flat index `h·W + w` into its own input plane (what
///   [`max_pool2d_backward`] needs);
/// - `input`: `[N, C, H, W]`.
///
/// Padded positions never win (they act as −∞). Ties go to the first
/// position in row-major order; a NaN in a window wins, as in PyTorch.
/// Errors if a slice length does not match `g` or `H·W` does not fit in `u32`.
pub fn max_pool2d_forward(
    out: &mut [f32],
    argmax: &mut [u32],
    input: &[f32],
    g: &Pool2dGeometry,
) -> Result<()> {
    const OP: &str = "max_pool2d_forward";
    check_geometry(OP, g)?;
    check_len(OP, "output", out.len(), &g.output_shape())?;
    check_len(OP, "argmax", argmax.len(), &g.output_shape())?;
    check_len(OP, "input", input.len(), &g.input_shape())?;
    let in_plane = g.in_h * g.in_w;
    if u32::try_from(in_plane).is_err() {
        return Err(TensorError::invalid(
            OP,
            format!(
                "input plane of {in_plane} elements does not fit u32 indices (input {})",
                fmt_shape(&g.input_shape())
            ),
        ));
    }
    let out_plane = g.out_h * g.out_w;
    if out.is_empty() {
        return Ok(());
    }
    let g = *g;
    out.par_chunks_mut(out_plane)
        .zip(argmax.par_chunks_mut(out_plane))
        .zip(input.par_chunks(in_plane))
        .with_min_len(min_planes_per_task(out_plane))
        .for_each(|((out, argmax), plane)| {
            if is_2x2_stride_2(&g) {
                max_plane_2x2(out, argmax, plane, g.out_w, g.in_w);
            } else {
                max_plane(out, argmax, plane, &g);
            }
        });
    Ok(())
}

/// True for the common 2×2 window with stride 2 and no padding whose windows
/// all lie inside the input (floor mode, or even sizes): no clipping, so
/// [`max_plane_2x2`] applies.
fn is_2x2_stride_2(g: &Pool2dGeometry) -> bool {
    (
        g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
    ) == (2, 2, 2, 2, 0, 0)
        && 2 * g.out_h <= g.in_h
        && 2 * g.out_w <= g.in_w
}

/// [`max_plane`] for a 2×2 window, stride 2, no padding: both input rows of
/// an output row in one pass, no window arithmetic. The four candidates are
/// compared in the same row-major order as [`max_plane`] (first maximum wins
/// ties, a NaN wins), so the results are identical.
///
/// `out` and `argmax` are `[OH, OW]` with `OW = out_w`, `plane` is `[H, W]`
/// with `W = in_w ≥ 2·OW` and `H ≥ 2·OH`.
fn max_plane_2x2(out: &mut [f32], argmax: &mut [u32], plane: &[f32], out_w: usize, in_w: usize) {
    for (oh, (out_row, arg_row)) in out
        .chunks_exact_mut(out_w)
        .zip(argmax.chunks_exact_mut(out_w))
        .enumerate()
    {
        let top_at = 2 * oh * in_w;
        let top = &plane[top_at..top_at + 2 * out_w];
        let bottom = &plane[top_at + in_w..top_at + in_w + 2 * out_w];
        for (ow, (((o, a), t), b)) in out_row
            .iter_mut()
            .zip(arg_row.iter_mut())
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
            .enumerate()
        {
            let at = top_at + 2 * ow;
            let (mut best, mut best_at) = (t[0], at);
            if t[1] > best || t[1].is_nan() {
                (best, best_at) = (t[1], at + 1);
            }
            if b[0] > best || b[0].is_nan() {
                (best, best_at) = (b[0], at + in_w);
            }
            if b[1] > best || b[1].is_nan() {
                (best, best_at) = (b[1], at + in_w + 1);
            }
            *o = best;
            *a = best_at as u32;
        }
    }
}

/// One plane: `out` and `argmax` are `[OH, OW]`, `plane` is `[H, W]`.
fn max_plane(out: &mut [f32], argmax: &mut [u32], plane: &[f32], g: &Pool2dGeometry) {
    for oh in 0..g.out_h {
        let rows = span(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h);
        for ow in 0..g.out_w {
            let cols = span(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
            debug_assert!(rows.start < rows.end && cols.start < cols.end);
            let mut best = f32::NEG_INFINITY;
            let mut best_at = rows.start * g.in_w + cols.start;
            for h in rows.start..rows.end {
                let base = h * g.in_w;
                let row = &plane[base + cols.start..base + cols.end];
                for (w, &v) in (base + cols.start..).zip(row) {
                    if v > best || v.is_nan() {
                        best = v;
                        best_at = w;
                    }
                }
            }
            out[oh * g.out_w + ow] = best;
            argmax[oh * g.out_w + ow] = best_at as u32;
        }
    }
}

/// Max pooling forward without the argmax (inference): `out` is
/// `[N, C, OH, OW]`, overwritten with the window maxima of `input`,
/// `[N, C, H, W]`.
///
/// The same values as [`max_pool2d_forward`] (padding never wins, a NaN in a
/// window wins), computed as a vertical maximum of each window's rows (whole
/// rows at a time, which vectorises) followed by the horizontal maximum.
/// Errors if a slice length does not match `g`.
pub fn max_pool2d_forward_infer(out: &mut [f32], input: &[f32], g: &Pool2dGeometry) -> Result<()> {
    const OP: &str = "max_pool2d_forward_infer";
    check_geometry(OP, g)?;
    check_len(OP, "output", out.len(), &g.output_shape())?;
    check_len(OP, "input", input.len(), &g.input_shape())?;
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    if out.is_empty() {
        return Ok(());
    }
    let g = *g;
    out.par_chunks_mut(out_plane)
        .zip(input.par_chunks(in_plane))
        .with_min_len(min_planes_per_task(out_plane))
        .for_each_init(
            || vec![0.0f32; g.in_w],
            |rowmax, (out, plane)| max_plane_infer(out, rowmax, plane, &g),
        );
    Ok(())
}

/// The larger of `a` and `b`, `b` if it is a NaN (NaNs propagate).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// One plane without argmax; `rowmax` is scratch of length `W`.
fn max_plane_infer(out: &mut [f32], rowmax: &mut [f32], plane: &[f32], g: &Pool2dGeometry) {
    for (oh, out_row) in out.chunks_exact_mut(g.out_w).enumerate() {
        let rows = span(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h);
        debug_assert!(rows.start < rows.end);
        rowmax.copy_from_slice(&plane[rows.start * g.in_w..][..g.in_w]);
        for h in rows.start + 1..rows.end {
            let row = &plane[h * g.in_w..][..g.in_w];
            rowmax
                .iter_mut()
                .zip(row)
                .for_each(|(m, &v)| *m = max_nan(*m, v));
        }
        // Stride 2: the windows lying wholly inside the row take, for each
        // tap, the even elements of pairs (vectorised); the others go one by
        // one.
        let (lo, hi) = if g.stride_w == 2 {
            inner_windows(g)
        } else {
            (0, 0)
        };
        for ow in (0..lo).chain(hi.max(lo)..g.out_w) {
            let cols = span(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
            debug_assert!(cols.start < cols.end);
            out_row[ow] = rowmax[cols.start + 1..cols.end]
                .iter()
                .fold(rowmax[cols.start], |m, &v| max_nan(m, v));
        }
        if hi > lo {
            let n = hi - lo;
            let mid = &mut out_row[lo..hi];
            for j in 0..g.kernel_w {
                let start = 2 * lo + j - g.pad_w;
                let (pairs, last) = rowmax[start..start + 2 * n - 1].split_at(2 * (n - 1));
                let taps = pairs.chunks_exact(2).map(|p| p[0]).chain([last[0]]);
                if j == 0 {
                    mid.iter_mut().zip(taps).for_each(|(o, v)| *o = v);
                } else {
                    mid.iter_mut()
                        .zip(taps)
                        .for_each(|(o, v)| *o = max_nan(*o, v));
                }
            }
        }
    }
}

/// Output columns `lo..hi` whose window `ow·s − p .. ow·s − p + k` lies
/// wholly inside `0..W` (`hi <= lo` if none).
fn inner_windows(g: &Pool2dGeometry) -> (usize, usize) {
    let lo = g.pad_w.div_ceil(g.stride_w);
    let hi = if g.in_w + g.pad_w >= g.kernel_w {
        ((g.in_w + g.pad_w - g.kernel_w) / g.stride_w + 1).min(g.out_w)
    } else {
        0
    };
    (lo, hi)
}

/// Max pooling backward: routes each output gradient to the input position
/// that won the forward pass.
///
/// - `grad_input`: `[N, C, H, W]`, **overwritten**;
/// - `grad_out`: `[N, C, OH, OW]`;
/// - `argmax`: `[N, C, OH, OW]`, from [`max_pool2d_forward`].
///
/// Positions that won several overlapping windows receive the sum. Errors on
/// a length mismatch or an `argmax` entry outside its plane.
pub fn max_pool2d_backward(
    grad_input: &mut [f32],
    grad_out: &[f32],
    argmax: &[u32],
    g: &Pool2dGeometry,
) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    check_geometry(OP, g)?;
    check_len(OP, "grad_input", grad_input.len(), &g.input_shape())?;
    check_len(OP, "grad_out", grad_out.len(), &g.output_shape())?;
    check_len(OP, "argmax", argmax.len(), &g.output_shape())?;
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    if grad_input.is_empty() {
        return Ok(());
    }
    grad_input
        .par_chunks_mut(in_plane)
        .zip(grad_out.par_chunks(out_plane))
        .zip(argmax.par_chunks(out_plane))
        .with_min_len(min_planes_per_task(in_plane))
        .try_for_each(|((grad_in, grad_out), argmax)| {
            grad_in.fill(0.0);
            for (&go, &at) in grad_out.iter().zip(argmax) {
                let at = at as usize;
                if at >= in_plane {
                    return Err(TensorError::invalid(
                        OP,
                        format!(
                            "argmax index {at} outside the {}x{} input plane",
                            g.in_h, g.in_w
                        ),
                    ));
                }
                grad_in[at] += go;
            }
            Ok(())
        })
}

/// Max pooling of a `[N, C, H, W]` tensor, also returning the argmax indices
/// (flat within each input plane, `[N, C, OH, OW]`) for the backward pass.
pub fn max_pool2d_with_indices(
    input: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
) -> Result<(Tensor, Vec<u32>)> {
    let g = Pool2dGeometry::new(input.shape(), kernel, stride, padding, ceil_mode)?;
    let mut out = Tensor::zeros(&g.output_shape());
    let mut argmax = vec![0u32; out.len()];
    max_pool2d_forward(out.as_slice_mut(), &mut argmax, input.as_slice(), &g)?;
    Ok((out, argmax))
}

/// Max pooling of a `[N, C, H, W]` tensor (PyTorch's
/// `F.max_pool2d(x, kernel, stride, padding, ceil_mode=...)`).
///
/// ```
/// use convnet_tensor::{kernels::pool::max_pool2d, Tensor};
/// let x = Tensor::arange(&[1, 1, 5, 5]);
/// // ceil_mode keeps the clipped last window: 5 -> 3 instead of 2.
/// let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0), true)?;
/// assert_eq!(y.shape(), &[1, 1, 3, 3]);
/// assert_eq!(y.as_slice(), &[6., 8., 9., 16., 18., 19., 21., 23., 24.]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn max_pool2d(
    input: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
) -> Result<Tensor> {
    Ok(max_pool2d_with_indices(input, kernel, stride, padding, ceil_mode)?.0)
}

#[cfg(test)]
mod infer_tests {
    use super::*;
    use crate::Rng;

    #[test]
    fn forward_infer_equals_forward() {
        let mut rng = Rng::seed_from(4);
        for (shape, k, s, p, ceil) in [
            ([2, 3, 9, 9], (3, 3), (2, 2), (1, 1), false),
            ([1, 2, 8, 8], (2, 2), (2, 2), (0, 0), false),
            ([1, 2, 7, 10], (3, 2), (1, 2), (1, 1), true),
            ([3, 1, 5, 6], (5, 5), (3, 3), (2, 2), true),
            ([1, 2, 11, 12], (3, 3), (2, 2), (1, 1), true),
            ([1, 2, 6, 13], (2, 4), (1, 2), (1, 2), false),
            ([1, 1, 4, 3], (3, 3), (2, 2), (1, 1), false),
        ] {
            let g = Pool2dGeometry::new(&shape, k, s, p, ceil).unwrap();
            let mut x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
            // Ties, infinities, a NaN.
            let v = x.as_slice_mut();
            v[3] = v[4];
            v[5] = f32::NEG_INFINITY;
            v[7] = f32::NAN;
            let n: usize = g.output_shape().iter().product();
            let (mut want, mut arg, mut got) = (vec![0.0; n], vec![0; n], vec![1.0; n]);
            max_pool2d_forward(&mut want, &mut arg, x.as_slice(), &g).unwrap();
            max_pool2d_forward_infer(&mut got, x.as_slice(), &g).unwrap();
            assert!(got.iter().any(|v| v.is_nan()));
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{a} {b}"
                );
            }
        }
        let g = Pool2dGeometry::new(&[1, 1, 4, 4], (2, 2), (2, 2), (0, 0), false).unwrap();
        assert!(max_pool2d_forward_infer(&mut [0.0; 3], &[0.0; 16], &g).is_err());
        assert!(max_pool2d_forward_infer(&mut [0.0; 4], &[0.0; 15], &g).is_err());
    }
}
