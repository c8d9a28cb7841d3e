//! 2-D pooling over NCHW: max, average and adaptive average, each with its
//! backward pass.
//!
//! Every kernel works plane by plane (one `[H, W]` plane per `(n, c)`), in
//! parallel over the `N·C` planes with rayon; planes are independent, so the
//! results do not depend on the number of threads.
//!
//! # Windows
//!
//! Output position `(oh, ow)` looks at input rows `oh·stride_h − pad_h ..
//! oh·stride_h − pad_h + kernel_h` (and likewise for columns). Padding is
//! implicit: max-pooling ignores padded positions (as if they held −∞),
//! average pooling counts them as zeros. In `ceil_mode` the last window may
//! hang over the right edge of the padded input; it is clipped. The output
//! size always comes from [`Pool2dGeometry`], never re-derived here.
//!
//! Average-pooling divisor, as PyTorch's `AvgPool2d`:
//! - `count_include_pad = true`: the window clipped to the *padded* input
//!   (padding counts, the ceil-mode overhang beyond the padding does not);
//! - `count_include_pad = false`: the number of real input elements in the
//!   window.
//!
//! Adaptive average pooling (PyTorch's `AdaptiveAvgPool2d`) gives output
//! row `i` of `OH` the input rows `floor(i·H/OH) .. ceil((i+1)·H/OH)`.
//!
//! ```
//! use convnet_tensor::{kernels::pool::max_pool2d, Tensor};
//! // The lecture: 2x2 max-pooling with stride 2 of 1..16.
//! let x = Tensor::from_vec(&[1, 1, 4, 4], (1..=16).map(|v| v as f32).collect())?;
//! let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false)?;
//! assert_eq!(y.as_slice(), &[6., 8., 14., 16.]);
//! # Ok::<(), convnet_tensor::TensorError>(())
//! ```

mod adaptive;
mod avg;
mod max;
#[cfg(test)]
mod tests;

pub use adaptive::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
};
pub use avg::{avg_pool2d, avg_pool2d_backward, avg_pool2d_forward};
pub use max::{
    max_pool2d, max_pool2d_backward, max_pool2d_forward, max_pool2d_forward_infer,
    max_pool2d_with_indices,
};

use super::check_len;
use crate::error::{fmt_shape, Result, TensorError};
use crate::geometry::Pool2dGeometry;

/// Minimum number of planes given to one rayon task, so that tiny planes do
/// not each pay for a task.
fn min_planes_per_task(plane_len: usize) -> usize {
    (4096 / plane_len.max(1)).max(1)
}

/// Errors unless `g` is what [`Pool2dGeometry::new`] gives for its own input
/// shape and window (a hand-built geometry with a wrong output size would
/// otherwise index out of bounds), and the input planes are non-empty.
fn check_geometry(op: &'static str, g: &Pool2dGeometry) -> Result<()> {
    if g.in_h == 0 || g.in_w == 0 {
        return Err(TensorError::invalid(
            op,
            format!("empty input plane (input {})", fmt_shape(&g.input_shape())),
        ));
    }
    let fresh = Pool2dGeometry::new(
        &g.input_shape(),
        (g.kernel_h, g.kernel_w),
        (g.stride_h, g.stride_w),
        (g.pad_h, g.pad_w),
        g.ceil_mode,
    )?;
    if fresh != *g {
        return Err(TensorError::invalid(
            op,
            format!(
                "inconsistent geometry: output {}x{} given, {}x{} computed for input {}",
                g.out_h,
                g.out_w,
                fresh.out_h,
                fresh.out_w,
                fmt_shape(&g.input_shape())
            ),
        ));
    }
    Ok(())
}

/// One axis of a pooling window: output index `o` covers input indices
/// `start..end` (clipped to the input) and `padded_len` positions of the
/// padded input (clipped to input + padding on both sides, for the
/// `count_include_pad` divisor).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    padded_len: usize,
}

/// The window of output index `o` along one axis. Positions are first taken
/// in padded coordinates, where the input occupies `pad .. pad + input`.
#[inline]
fn span(o: usize, stride: usize, pad: usize, kernel: usize, input: usize) -> Span {
    let begin = o * stride;
    let end_padded = (begin + kernel).min(input + 2 * pad);
    Span {
        start: begin.max(pad) - pad,
        end: end_padded.saturating_sub(pad).min(input),
        padded_len: end_padded - begin,
    }
}
