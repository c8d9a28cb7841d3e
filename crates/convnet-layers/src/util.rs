//! Small helpers shared by the layer files: shape checks and cache handling.

use convnet_tensor::{numel, Tensor};

use crate::error::{LayerError, Result};

/// Takes a cache out of its slot, or returns [`LayerError::NoCache`].
pub(crate) fn take_cache<T>(slot: &mut Option<T>, layer: &str) -> Result<T> {
    slot.take().ok_or_else(|| LayerError::no_cache(layer))
}

/// Takes the cache of the last `forward` for a backward pass, after checking
/// that `grad_out` has the shape `output_shape` reads from it (the cache
/// stays in place on a wrong gradient); [`LayerError::NoCache`] without one.
pub(crate) fn take_cache_for<T>(
    slot: &mut Option<T>,
    layer: &str,
    grad_out: &Tensor,
    output_shape: impl FnOnce(&T) -> Vec<usize>,
) -> Result<T> {
    if let Some(cache) = slot {
        check_grad(layer, grad_out, &output_shape(cache))?;
    }
    take_cache(slot, layer)
}

/// Errors unless `grad_out` has exactly the shape of the last output.
pub(crate) fn check_grad(layer: &str, grad_out: &Tensor, expected: &[usize]) -> Result<()> {
    if grad_out.shape() != expected {
        return Err(LayerError::input_shape(
            layer,
            format!("a gradient of the last output's shape {expected:?}"),
            grad_out.shape(),
        ));
    }
    Ok(())
}

/// Errors unless the shape has exactly four axes with `channels` channels
/// (any channel count when `channels` is `None`); returns `[n, c, h, w]`.
pub(crate) fn nchw(layer: &str, shape: &[usize], channels: Option<usize>) -> Result<[usize; 4]> {
    let expected = || match channels {
        Some(c) => format!("[N, {c}, H, W]"),
        None => "[N, C, H, W]".to_string(),
    };
    if shape.len() != 4 || channels.is_some_and(|c| shape[1] != c) {
        return Err(LayerError::input_shape(layer, expected(), shape));
    }
    Ok([shape[0], shape[1], shape[2], shape[3]])
}

/// Errors unless the last axis has `features` elements (at least one axis);
/// returns the number of rows (the product of the other axes).
pub(crate) fn last_axis(layer: &str, shape: &[usize], features: usize) -> Result<usize> {
    match shape.last() {
        Some(&d) if d == features => Ok(numel(&shape[..shape.len() - 1])),
        _ => Err(LayerError::input_shape(
            layer,
            format!("[..., {features}] (last axis of size {features})"),
            shape,
        )),
    }
}

/// Errors unless a normalisation layer's `eps` is finite and `>= 0`.
pub(crate) fn check_eps(layer: &str, eps: f32) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(LayerError::config(
            layer,
            format!("eps must be finite and >= 0, got {eps}"),
        ));
    }
    Ok(())
}

/// A tensor from data known to match the shape.
pub(crate) fn tensor(shape: &[usize], data: Vec<f32>) -> Tensor {
    debug_assert_eq!(numel(shape), data.len());
    Tensor::from_vec(shape, data).expect("shape and data agree")
}

/// Builds a tensor from a kernel result, wrapping kernel errors with the
/// layer's name.
pub(crate) fn kernel<T>(layer: &str, r: convnet_tensor::Result<T>) -> Result<T> {
    r.map_err(|e| LayerError::tensor(layer, e))
}

/// A 2-D size (kernel, stride, padding, dilation, output size) given as one
/// number for both axes or as `(height, width)`, as PyTorch accepts an `int`
/// or a tuple.
///
/// ```
/// use convnet_layers::IntoPair;
/// assert_eq!(3.into_pair(), (3, 3));
/// assert_eq!((1, 7).into_pair(), (1, 7));
/// assert_eq!([2, 4].into_pair(), (2, 4));
/// ```
pub trait IntoPair {
    /// `(height, width)`.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
    }
}
