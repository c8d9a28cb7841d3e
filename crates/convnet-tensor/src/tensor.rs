//! [`Tensor`]: an owned, contiguous, row-major `f32` array.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::error::{fmt_shape, Result, TensorError};
use crate::rng::Rng;

/// An owned, contiguous, standard-layout (row-major) `f32` array.
///
/// Images are NCHW (`[batch, channels, height, width]`), features `[N, D]`,
/// tokens `[N, T, D]`. The layout is always contiguous, so kernels can work on
/// [`Tensor::as_slice`] directly; conversion to and from [`ndarray::ArrayD`] is
/// free when the array is already standard-layout.
///
/// ```
/// use convnet_tensor::Tensor;
/// let t = Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.at(&[1, 0]), 4.0);
/// let r = t.reshape(&[3, 2]).unwrap();
/// assert_eq!(r.as_slice(), t.as_slice());
/// assert!(Tensor::from_vec(&[2, 2], vec![1.0]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "RawTensor", try_from = "RawTensor")]
pub struct Tensor {
    data: ArrayD<f32>,
}

/// Serialised form: shape and data.
#[derive(Serialize, Deserialize)]
struct RawTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl From<Tensor> for RawTensor {
    fn from(t: Tensor) -> Self {
        RawTensor {
            shape: t.shape().to_vec(),
            data: t.into_vec(),
        }
    }
}

impl TryFrom<RawTensor> for Tensor {
    type Error = TensorError;
    fn try_from(r: RawTensor) -> Result<Self> {
        Tensor::from_vec(&r.shape, r.data)
    }
}

/// Number of elements of a shape (1 for the empty shape, a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            data: ArrayD::zeros(IxDyn(shape)),
        }
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, 1.0)
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor {
            data: ArrayD::from_elem(IxDyn(shape), value),
        }
    }

    /// A 0-dimensional tensor holding `value`.
    pub fn scalar(value: f32) -> Self {
        Self::full(&[], value)
    }

    /// `0, 1, 2, ...` in the given shape (handy in tests and examples).
    pub fn arange(shape: &[usize]) -> Self {
        let n = numel(shape);
        Self::from_vec(shape, (0..n).map(|i| i as f32).collect()).expect("arange: sizes agree")
    }

    /// Builds a tensor from row-major data; errors if `data.len()` is not the
    /// product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(TensorError::shape(
                "Tensor::from_vec",
                format!("element count of shape {}", fmt_shape(shape)),
                numel(shape),
                data.len(),
            ));
        }
        let data = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|e| TensorError::invalid("Tensor::from_vec", e.to_string()))?;
        Ok(Tensor { data })
    }

    /// Copies a slice into a new tensor of the given shape.
    pub fn from_slice(shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::from_vec(shape, data.to_vec())
    }

    /// Wraps an ndarray array, copying it only if it is not standard-layout.
    pub fn from_array(array: ArrayD<f32>) -> Self {
        let data = if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        };
        Tensor { data }
    }

    /// Uniform samples in `[low, high)`.
    pub fn rand_uniform(shape: &[usize], low: f32, high: f32, rng: &mut Rng) -> Self {
        let data = (0..numel(shape)).map(|_| rng.uniform(low, high)).collect();
        Self::from_vec(shape, data).expect("sizes agree")
    }

    /// Normal samples with the given mean and standard deviation.
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Self {
        let data = (0..numel(shape))
            .map(|_| mean + std * rng.normal())
            .collect();
        Self::from_vec(shape, data).expect("sizes agree")
    }

    /// The shape, outermost axis first.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` if the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[f32] {
        self.data
            .as_slice()
            .expect("Tensor is always standard-layout")
    }

    /// The elements in row-major order, mutably.
    pub fn as_slice_mut(&mut self) -> &mut [f32] {
        self.data
            .as_slice_mut()
            .expect("Tensor is always standard-layout")
    }

    /// The elements as a `Vec`, consuming the tensor (no copy).
    pub fn into_vec(self) -> Vec<f32> {
        let (v, offset) = self.data.into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        v
    }

    /// Element at a multi-index; panics if out of bounds (use in tests and
    /// examples, not in kernels).
    pub fn at(&self, index: &[usize]) -> f32 {
        self.data[IxDyn(index)]
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        self.clone().into_reshape(shape)
    }

    /// Like [`Tensor::reshape`], without copying.
    pub fn into_reshape(self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.len() {
            return Err(TensorError::shape(
                "reshape",
                format!(
                    "element count for {} -> {}",
                    fmt_shape(self.shape()),
                    fmt_shape(shape)
                ),
                self.len(),
                numel(shape),
            ));
        }
        let v = self.into_vec();
        Self::from_vec(shape, v)
    }

    /// A read-only ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, f32> {
        self.data.view()
    }

    /// A mutable ndarray view.
    pub fn view_mut(&mut self) -> ArrayViewMutD<'_, f32> {
        self.data.view_mut()
    }

    /// The underlying ndarray array.
    pub fn array(&self) -> &ArrayD<f32> {
        &self.data
    }

    /// Converts into the underlying ndarray array (no copy).
    pub fn into_array(self) -> ArrayD<f32> {
        self.data
    }

    /// Applies `f` to every element, returning a new tensor.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        Tensor {
            data: self.data.mapv(f),
        }
    }

    /// Sets every element to zero, keeping the allocation.
    pub fn fill(&mut self, value: f32) {
        self.data.fill(value);
    }

    /// `self += alpha * other`; errors on a shape mismatch.
    pub fn axpy(&mut self, alpha: f32, other: &Tensor) -> Result<()> {
        self.expect_shape("axpy", other.shape())?;
        for (a, b) in self.as_slice_mut().iter_mut().zip(other.as_slice()) {
            *a += alpha * b;
        }
        Ok(())
    }

    /// Sum of all elements, accumulated in f64.
    pub fn sum(&self) -> f64 {
        self.as_slice().iter().map(|&v| v as f64).sum()
    }

    /// Mean of all elements, accumulated in f64 (NaN for an empty tensor).
    pub fn mean(&self) -> f64 {
        self.sum() / self.len() as f64
    }

    /// Largest absolute element-wise difference; errors on a shape mismatch.
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        self.expect_shape("max_abs_diff", other.shape())?;
        Ok(self
            .as_slice()
            .iter()
            .zip(other.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max))
    }

    /// `true` if shapes agree and `|a - b| <= atol + rtol * |b|` everywhere.
    pub fn allclose(&self, other: &Tensor, rtol: f32, atol: f32) -> bool {
        self.shape() == other.shape()
            && self
                .as_slice()
                .iter()
                .zip(other.as_slice())
                .all(|(a, b)| (a - b).abs() <= atol + rtol * b.abs())
    }

    /// Index of the largest element of each row of the last axis: `[.., D]` ->
    /// one index per row.
    pub fn argmax_last(&self) -> Vec<usize> {
        let d = *self.shape().last().unwrap_or(&1);
        if d == 0 {
            return Vec::new();
        }
        self.as_slice()
            .chunks_exact(d)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }

    /// Errors unless the shape is exactly `expected`.
    pub fn expect_shape(&self, op: &'static str, expected: &[usize]) -> Result<()> {
        if self.shape() != expected {
            return Err(TensorError::shape(
                op,
                "shape",
                fmt_shape(expected),
                fmt_shape(self.shape()),
            ));
        }
        Ok(())
    }

    /// Errors unless the tensor has `rank` axes.
    pub fn expect_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.ndim() != rank {
            return Err(TensorError::shape(
                op,
                "rank",
                format!("{rank} axes"),
                format!("{} axes (shape {})", self.ndim(), fmt_shape(self.shape())),
            ));
        }
        Ok(())
    }

    /// The four dimensions `[n, c, h, w]` of an NCHW tensor, or an error.
    pub fn dims4(&self, op: &'static str) -> Result<[usize; 4]> {
        self.expect_rank(op, 4)?;
        let s = self.shape();
        Ok([s[0], s[1], s[2], s[3]])
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(a: ArrayD<f32>) -> Self {
        Tensor::from_array(a)
    }
}

impl From<Tensor> for ArrayD<f32> {
    fn from(t: Tensor) -> Self {
        t.into_array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_and_errors() {
        let t = Tensor::arange(&[2, 3, 4]);
        assert_eq!(t.len(), 24);
        assert_eq!(t.at(&[1, 2, 3]), 23.0);
        let e = Tensor::from_vec(&[2, 2], vec![0.0; 3]).unwrap_err();
        assert!(e.to_string().contains("[2, 2]"), "{e}");
        assert!(t.reshape(&[5, 5]).is_err());
        assert_eq!(t.reshape(&[4, 6]).unwrap().shape(), &[4, 6]);
        assert!(Tensor::zeros(&[1, 2]).dims4("x").is_err());
    }

    #[test]
    fn non_standard_layout_is_made_contiguous() {
        let a = ndarray::Array2::from_shape_vec((2, 3), vec![1., 2., 3., 4., 5., 6.])
            .unwrap()
            .reversed_axes()
            .into_dyn();
        let t = Tensor::from_array(a);
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.as_slice(), &[1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn argmax_and_allclose() {
        let t = Tensor::from_vec(&[2, 3], vec![0., 5., 1., 9., -1., 2.]).unwrap();
        assert_eq!(t.argmax_last(), vec![1, 0]);
        let u = t.map(|v| v + 1e-7);
        assert!(t.allclose(&u, 1e-5, 1e-6));
        assert!(!t.allclose(&t.map(|v| v + 0.1), 1e-5, 1e-6));
    }

    #[test]
    fn serde_round_trip_checks_sizes() {
        let t = Tensor::arange(&[2, 2]);
        let raw: RawTensor = t.clone().into();
        let back = Tensor::try_from(raw).unwrap();
        assert_eq!(back, t);
        let bad = RawTensor {
            shape: vec![3],
            data: vec![1.0],
        };
        assert!(Tensor::try_from(bad).is_err());
    }
}
