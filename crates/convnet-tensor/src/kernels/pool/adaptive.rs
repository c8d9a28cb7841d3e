//! Adaptive average pooling, forward and backward (PyTorch's
//! `AdaptiveAvgPool2d`).

use rayon::prelude::*;

use super::{check_len, min_planes_per_task};
use crate::error::{fmt_shape, Result, TensorError};
use crate::tensor::Tensor;

/// Input indices `floor(i·input/out) .. ceil((i+1)·input/out)` of output `i`.
#[inline]
fn bounds(i: usize, out: usize, input: usize) -> (usize, usize) {
    (i * input / out, ((i + 1) * input).div_ceil(out))
}

fn check(op: &'static str, input_shape: [usize; 4], out_hw: (usize, usize)) -> Result<[usize; 4]> {
    let [n, c, h, w] = input_shape;
    if h == 0 || w == 0 {
        return Err(TensorError::invalid(
            op,
            format!("empty input plane (input {})", fmt_shape(&input_shape)),
        ));
    }
    if out_hw.0 == 0 || out_hw.1 == 0 {
        return Err(TensorError::invalid(
            op,
            format!(
                "output size {out_hw:?} must be at least 1x1 (input {})",
                fmt_shape(&input_shape)
            ),
        ));
    }
    Ok([n, c, out_hw.0, out_hw.1])
}

/// Adaptive average pooling forward: `[N, C, H, W]` to `[N, C, OH, OW]`,
/// whatever the ratio (windows overlap when `H` is not a multiple of `OH`).
///
/// - `out`: `[N, C, OH, OW]`, overwritten;
/// - `input`: `[N, C, H, W]`, with `input_shape` its shape;
/// - `out_hw`: `(OH, OW)`, at least 1 each.
pub fn adaptive_avg_pool2d_forward(
    out: &mut [f32],
    input: &[f32],
    input_shape: [usize; 4],
    out_hw: (usize, usize),
) -> Result<()> {
    const OP: &str = "adaptive_avg_pool2d_forward";
    let out_shape = check(OP, input_shape, out_hw)?;
    check_len(OP, "output", out.len(), &out_shape)?;
    check_len(OP, "input", input.len(), &input_shape)?;
    if out.is_empty() {
        return Ok(());
    }
    let [_, _, h, w] = input_shape;
    let (oh_n, ow_n) = out_hw;
    out.par_chunks_mut(oh_n * ow_n)
        .zip(input.par_chunks(h * w))
        .with_min_len(min_planes_per_task(h * w))
        .for_each(|(out, plane)| {
            for oh in 0..oh_n {
                let (h0, h1) = bounds(oh, oh_n, h);
                for ow in 0..ow_n {
                    let (w0, w1) = bounds(ow, ow_n, w);
                    let mut sum = 0.0f32;
                    for r in h0..h1 {
                        sum += plane[r * w + w0..r * w + w1].iter().sum::<f32>();
                    }
                    out[oh * ow_n + ow] = sum / ((h1 - h0) * (w1 - w0)) as f32;
                }
            }
        });
    Ok(())
}

/// Adaptive average pooling backward.
///
/// - `grad_input`: `[N, C, H, W]`, **overwritten**, with `input_shape` its
///   shape;
/// - `grad_out`: `[N, C, OH, OW]`;
/// - `out_hw`: `(OH, OW)` as in the forward pass.
pub fn adaptive_avg_pool2d_backward(
    grad_input: &mut [f32],
    grad_out: &[f32],
    input_shape: [usize; 4],
    out_hw: (usize, usize),
) -> Result<()> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let out_shape = check(OP, input_shape, out_hw)?;
    check_len(OP, "grad_input", grad_input.len(), &input_shape)?;
    check_len(OP, "grad_out", grad_out.len(), &out_shape)?;
    if grad_input.is_empty() {
        return Ok(());
    }
    let [_, _, h, w] = input_shape;
    let (oh_n, ow_n) = out_hw;
    grad_input
        .par_chunks_mut(h * w)
        .zip(grad_out.par_chunks(oh_n * ow_n))
        .with_min_len(min_planes_per_task(h * w))
        .for_each(|(grad_in, grad_out)| {
            grad_in.fill(0.0);
            for oh in 0..oh_n {
                let (h0, h1) = bounds(oh, oh_n, h);
                for ow in 0..ow_n {
                    let (w0, w1) = bounds(ow, ow_n, w);
                    let share = grad_out[oh * ow_n + ow] / ((h1 - h0) * (w1 - w0)) as f32;
                    for r in h0..h1 {
                        for v in &mut grad_in[r * w + w0..r * w + w1] {
                            *v += share;
                        }
                    }
                }
            }
        });
    Ok(())
}

/// Adaptive average pooling of a `[N, C, H, W]` tensor to `[N, C, OH, OW]`
/// (PyTorch's `F.adaptive_avg_pool2d(x, (OH, OW))`).
///
/// ```
/// use convnet_tensor::{kernels::pool::adaptive_avg_pool2d, Tensor};
/// let x = Tensor::arange(&[1, 1, 1, 5]); // [0, 1, 2, 3, 4]
/// // Three outputs over five inputs: windows 0..2, 1..4, 3..5.
/// let y = adaptive_avg_pool2d(&x, (1, 3))?;
/// assert_eq!(y.as_slice(), &[0.5, 2.0, 3.5]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn adaptive_avg_pool2d(input: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool2d";
    let shape = input.dims4(OP)?;
    let mut out = Tensor::zeros(&check(OP, shape, out_hw)?);
    adaptive_avg_pool2d_forward(out.as_slice_mut(), input.as_slice(), shape, out_hw)?;
    Ok(out)
}
