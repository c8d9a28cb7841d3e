//! Compute kernels: free functions over slices, knowing nothing of layers.
//!
//! # Conventions
//!
//! - **Argument order:** outputs (and caches) first, then inputs and weights,
//!   then geometry.
//! - **Backward** takes the output gradient, **overwrites** the input gradient
//!   and **accumulates** (`+=`) parameter gradients, so that a parameter shared
//!   by several calls (or a gradient accumulated over micro-batches) sums.
//! - Layouts are row-major NCHW; weights are OIHW as in PyTorch.
//! - Parallel kernels split their outputs with rayon (one chunk per image or
//!   channel) and reduce across chunks in a fixed order, so a given thread
//!   count always gives bit-identical results.

pub mod activation;
pub mod conv2d;
pub mod gemm;
pub mod gemv;
pub mod norm;
pub mod pool;
pub mod softmax;
pub mod vmath;

#[cfg(test)]
pub(crate) mod test_util;

use crate::error::{fmt_shape, Result, TensorError};

/// Errors unless `got` is the number of elements of `expected_shape`,
/// naming the slice and its expected shape (the kernels' length checks).
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    got: usize,
    expected_shape: &[usize],
) -> Result<()> {
    let expected: usize = expected_shape.iter().product();
    if got != expected {
        return Err(TensorError::shape(
            op,
            format!("length of {what}"),
            format!("{expected} (shape {})", fmt_shape(expected_shape)),
            got,
        ));
    }
    Ok(())
}
