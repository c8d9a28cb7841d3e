//! Average pooling, forward and backward (PyTorch's `AvgPool2d`, without
//! `divisor_override`).

use rayon::prelude::*;

use super::{check_geometry, check_len, min_planes_per_task, span, Span};
use crate::error::Result;
use crate::geometry::Pool2dGeometry;
use crate::tensor::Tensor;

/// The divisor of one window (see the module docs).
#[inline]
fn divisor(rows: Span, cols: Span, count_include_pad: bool) -> f32 {
    if count_include_pad {
        (rows.padded_len * cols.padded_len) as f32
    } else {
        ((rows.end - rows.start) * (cols.end - cols.start)) as f32
    }
}

/// Average pooling forward over `[N, C, H, W]`.
///
/// - `out`: `[N, C, OH, OW]`, overwritten;
/// - `input`: `[N, C, H, W]`.
///
/// `count_include_pad` chooses the divisor as PyTorch does (see the module
/// docs). Errors if a slice length does not match `g`.
pub fn avg_pool2d_forward(
    out: &mut [f32],
    input: &[f32],
    g: &Pool2dGeometry,
    count_include_pad: bool,
) -> Result<()> {
    const OP: &str = "avg_pool2d_forward";
    check_geometry(OP, g)?;
    check_len(OP, "output", out.len(), &g.output_shape())?;
    check_len(OP, "input", input.len(), &g.input_shape())?;
    if out.is_empty() {
        return Ok(());
    }
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    out.par_chunks_mut(out_plane)
        .zip(input.par_chunks(in_plane))
        .with_min_len(min_planes_per_task(out_plane))
        .for_each(|(out, plane)| {
            for oh in 0..g.out_h {
                let rows = span(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h);
                for ow in 0..g.out_w {
                    let cols = span(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
                    let mut sum = 0.0f32;
                    for h in rows.start..rows.end {
                        sum += plane[h * g.in_w + cols.start..h * g.in_w + cols.end]
                            .iter()
                            .sum::<f32>();
                    }
                    out[oh * g.out_w + ow] = sum / divisor(rows, cols, count_include_pad);
                }
            }
        });
    Ok(())
}

/// Average pooling backward: spreads each output gradient evenly (by the
/// forward divisor) over the input positions of its window.
///
/// - `grad_input`: `[N, C, H, W]`, **overwritten**;
/// - `grad_out`: `[N, C, OH, OW]`.
///
/// `count_include_pad` must be the value used in the forward pass.
pub fn avg_pool2d_backward(
    grad_input: &mut [f32],
    grad_out: &[f32],
    g: &Pool2dGeometry,
    count_include_pad: bool,
) -> Result<()> {
    const OP: &str = "avg_pool2d_backward";
    check_geometry(OP, g)?;
    check_len(OP, "grad_input", grad_input.len(), &g.input_shape())?;
    check_len(OP, "grad_out", grad_out.len(), &g.output_shape())?;
    if grad_input.is_empty() {
        return Ok(());
    }
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    grad_input
        .par_chunks_mut(in_plane)
        .zip(grad_out.par_chunks(out_plane))
        .with_min_len(min_planes_per_task(in_plane))
        .for_each(|(grad_in, grad_out)| {
            grad_in.fill(0.0);
            for oh in 0..g.out_h {
                let rows = span(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h);
                for ow in 0..g.out_w {
                    let cols = span(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
                    let share =
                        grad_out[oh * g.out_w + ow] / divisor(rows, cols, count_include_pad);
                    for h in rows.start..rows.end {
                        for v in &mut grad_in[h * g.in_w + cols.start..h * g.in_w + cols.end] {
                            *v += share;
                        }
                    }
                }
            }
        });
    Ok(())
}

/// Average pooling of a `[N, C, H, W]` tensor (PyTorch's
/// `F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)`).
///
/// ```
/// use convnet_tensor::{kernels::pool::avg_pool2d, Tensor};
/// let x = Tensor::ones(&[1, 1, 2, 2]);
/// // Padding 1 with a 2x2 window: the corner windows hold one real element.
/// let with_pad = avg_pool2d(&x, (2, 2), (2, 2), (1, 1), false, true)?;
/// assert_eq!(with_pad.as_slice(), &[0.25; 4]);
/// let without = avg_pool2d(&x, (2, 2), (2, 2), (1, 1), false, false)?;
/// assert_eq!(without.as_slice(), &[1.0; 4]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn avg_pool2d(
    input: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
    count_include_pad: bool,
) -> Result<Tensor> {
    let g = Pool2dGeometry::new(input.shape(), kernel, stride, padding, ceil_mode)?;
    let mut out = Tensor::zeros(&g.output_shape());
    avg_pool2d_forward(out.as_slice_mut(), input.as_slice(), &g, count_include_pad)?;
    Ok(out)
}
