//! Softmax and log-softmax over one axis, forward and backward.
//!
//! A tensor is viewed as `[outer, axis_len, inner]` ([`SoftmaxGeometry`]):
//! the axis being reduced has stride `inner`, and each of the `outer·inner`
//! lines along it is normalised on its own.
//!
//! # Numerics
//!
//! Each line subtracts its maximum `m` before exponentiating, so inputs of
//! ±1000 give finite results; the sum of exponentials is accumulated in f64.
//! The exponentials are [`vmath::exp`](super::vmath::exp) (relative error
//! 1.1e-7), in loops compiled for the SIMD level in use.
//!
//! - softmax: `y_i = e^(x_i − m) / Σ_j e^(x_j − m)`;
//! - log-softmax: `y_i = (x_i − m) − ln Σ_j e^(x_j − m)`, exact for a dominant
//!   element (`log_softmax([1000, 0]) = [0, −1000]`).
//!
//! Backward passes read the forward **output** `y`:
//!
//! - softmax: `dx_i = y_i·(g_i − Σ_j g_j·y_j)`;
//! - log-softmax: `dx_i = g_i − e^(y_i)·Σ_j g_j`.
//!
//! Work is split over the `outer` slabs with rayon; each line is reduced in a
//! fixed order, so results do not depend on the number of threads.
//!
//! ```
//! use convnet_tensor::{kernels::softmax::{log_softmax, softmax}, Tensor};
//! let x = Tensor::from_vec(&[1, 3], vec![1000.0, 0.0, -1000.0])?;
//! let y = softmax(&x, 1)?;
//! assert_eq!(y.as_slice(), &[1.0, 0.0, 0.0]);
//! let l = log_softmax(&Tensor::from_vec(&[2], vec![1000.0, 0.0])?, 0)?;
//! assert_eq!(l.as_slice(), &[0.0, -1000.0]);
//! assert!(softmax(&x, 2).is_err()); // no axis 2 in a 2-D tensor
//! # Ok::<(), convnet_tensor::TensorError>(())
//! ```

use rayon::prelude::*;

use super::vmath;
use crate::error::{fmt_shape, Result, TensorError};
use crate::tensor::Tensor;

/// A tensor seen as `[outer, axis_len, inner]` for a reduction along its
/// middle axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoftmaxGeometry {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub axis_len: usize,
    /// Product of the dimensions after the axis (the axis' stride).
    pub inner: usize,
}

impl SoftmaxGeometry {
    /// The view of `shape` around `axis`; errors if `axis >= shape.len()`.
    ///
    /// ```
    /// use convnet_tensor::kernels::softmax::SoftmaxGeometry;
    /// let g = SoftmaxGeometry::new(&[2, 3, 4, 5], 1)?;
    /// assert_eq!((g.outer, g.axis_len, g.inner), (2, 3, 20));
    /// # Ok::<(), convnet_tensor::TensorError>(())
    /// ```
    pub fn new(shape: &[usize], axis: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(TensorError::shape(
                "softmax",
                "axis",
                format!("an axis below {} (shape {})", shape.len(), fmt_shape(shape)),
                axis,
            ));
        }
        Ok(SoftmaxGeometry {
            outer: shape[..axis].iter().product(),
            axis_len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        })
    }

    /// Number of elements, `outer · axis_len · inner`.
    pub fn len(&self) -> usize {
        self.outer * self.axis_len * self.inner
    }

    /// `true` if there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shape(&self) -> [usize; 3] {
        [self.outer, self.axis_len, self.inner]
    }

    fn check(&self, op: &'static str, what: &str, len: usize) -> Result<()> {
        if len != self.len() {
            return Err(TensorError::shape(
                op,
                format!("length of {what}"),
                format!(
                    "{} ([outer, axis, inner] = {})",
                    self.len(),
                    fmt_shape(&self.shape())
                ),
                len,
            ));
        }
        Ok(())
    }

    /// Minimum number of slabs per rayon task (about 4K elements a task).
    fn min_slabs(&self) -> usize {
        (4096 / (self.axis_len * self.inner).max(1)).max(1)
    }
}

/// Per-thread scratch for the strided (`inner > 1`) case, one entry per line
/// of the slab: the running max, the f64 sum, and an f32 factor derived from
/// the sum (`1/sum`, `ln sum` or the backward dot product).
#[derive(Default)]
struct Scratch {
    max: Vec<f32>,
    sum: Vec<f64>,
    factor: Vec<f32>,
}

impl Scratch {
    fn reset(&mut self, inner: usize, max: f32) {
        self.max.clear();
        self.max.resize(inner, max);
        self.sum.clear();
        self.sum.resize(inner, 0.0);
        self.factor.clear();
    }
}

/// Whether the forward output is probabilities or log-probabilities.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Softmax,
    LogSoftmax,
}

/// Partial sums and maxima are kept in this many lanes (one vector of
/// AVX2), combined in lane order at the end of the line.
const LANES: usize = 8;

/// The maximum of `x`, NaN ignored (as `f32::max` does), in lanes so that
/// it vectorises.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let max = |a: f32, b: f32| if b > a { b } else { a };
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = max(*a, v);
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| max(m, v))
}

crate::multiversion! {
    /// One slab `[axis_len, inner]` of the forward pass, compiled for the
    /// SIMD level in use.
    fn forward_slab(out: &mut [f32], x: &[f32], g: &SoftmaxGeometry, kind: Kind, s: &mut Scratch) {
        let inner = g.inner;
        if inner == 1 {
            // Contiguous line: out = e^(x − m) first, then scaled (softmax) or
            // overwritten with the log-probabilities.
            let m = max_of(x);
            for (o, &v) in out.iter_mut().zip(x) {
                *o = vmath::exp(v - m);
            }
            let sum = vmath::sum_f64(out, out, |e, _| e as f64);
            match kind {
                Kind::Softmax => {
                    let inv = (1.0 / sum) as f32;
                    out.iter_mut().for_each(|o| *o *= inv);
                }
                Kind::LogSoftmax => {
                    let log_sum = sum.ln() as f32;
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = (v - m) - log_sum;
                    }
                }
            }
            return;
        }
        // Strided lines: walk the axis row by row, all `inner` lines at once.
        s.reset(inner, f32::NEG_INFINITY);
        for row in x.chunks_exact(inner) {
            for (m, &v) in s.max.iter_mut().zip(row) {
                *m = if v > *m { v } else { *m };
            }
        }
        for (orow, row) in out.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
            for (((o, &v), &m), sum) in orow.iter_mut().zip(row).zip(&s.max).zip(&mut s.sum) {
                let e = vmath::exp(v - m);
                *sum += e as f64;
                *o = e;
            }
        }
        match kind {
            Kind::Softmax => {
                s.factor.extend(s.sum.iter().map(|&t| (1.0 / t) as f32));
                for orow in out.chunks_exact_mut(inner) {
                    for (o, &i) in orow.iter_mut().zip(&s.factor) {
                        *o *= i;
                    }
                }
            }
            Kind::LogSoftmax => {
                s.factor.extend(s.sum.iter().map(|&t| t.ln() as f32));
                for (orow, row) in out.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
                    for (((o, &v), &m), &l) in orow.iter_mut().zip(row).zip(&s.max).zip(&s.factor) {
                        *o = (v - m) - l;
                    }
                }
            }
        }
    }
}

fn forward(
    op: &'static str,
    out: &mut [f32],
    x: &[f32],
    g: &SoftmaxGeometry,
    kind: Kind,
) -> Result<()> {
    g.check(op, "out", out.len())?;
    g.check(op, "x", x.len())?;
    if g.is_empty() {
        return Ok(());
    }
    let slab = g.axis_len * g.inner;
    out.par_chunks_mut(slab)
        .zip(x.par_chunks(slab))
        .with_min_len(g.min_slabs())
        .for_each_init(Scratch::default, |s, (o, x)| forward_slab(o, x, g, kind, s));
    Ok(())
}

crate::multiversion! {
    /// One slab of the backward pass, compiled for the SIMD level in use.
    /// `out` is the forward output (probabilities or log-probabilities).
    fn backward_slab(
        grad_in: &mut [f32],
        grad_out: &[f32],
        out: &[f32],
        g: &SoftmaxGeometry,
        kind: Kind,
        s: &mut Scratch,
    ) {
        let inner = g.inner;
        if inner == 1 {
            // Contiguous line: one dot product, then one element-wise pass.
            match kind {
                Kind::Softmax => {
                    let dot = vmath::sum_f64(grad_out, out, |gv, y| gv as f64 * y as f64) as f32;
                    for ((d, &gv), &y) in grad_in.iter_mut().zip(grad_out).zip(out) {
                        *d = y * (gv - dot);
                    }
                }
                Kind::LogSoftmax => {
                    let sum = vmath::sum_f64(grad_out, grad_out, |gv, _| gv as f64) as f32;
                    for ((d, &gv), &y) in grad_in.iter_mut().zip(grad_out).zip(out) {
                        *d = gv - vmath::exp(y) * sum;
                    }
                }
            }
            return;
        }
        // Per line: Σ g·y (softmax) or Σ g (log-softmax), in f64.
        s.reset(inner, 0.0);
        for (grow, yrow) in grad_out.chunks_exact(inner).zip(out.chunks_exact(inner)) {
            for ((sum, &gv), &y) in s.sum.iter_mut().zip(grow).zip(yrow) {
                *sum += match kind {
                    Kind::Softmax => gv as f64 * y as f64,
                    Kind::LogSoftmax => gv as f64,
                };
            }
        }
        s.factor.extend(s.sum.iter().map(|&t| t as f32));
        for ((drow, grow), yrow) in grad_in
            .chunks_exact_mut(inner)
            .zip(grad_out.chunks_exact(inner))
            .zip(out.chunks_exact(inner))
        {
            for (((d, &gv), &y), &dot) in drow.iter_mut().zip(grow).zip(yrow).zip(&s.factor) {
                *d = match kind {
                    Kind::Softmax => y * (gv - dot),
                    Kind::LogSoftmax => gv - vmath::exp(y) * dot,
                };
            }
        }
    }
}

fn backward(
    op: &'static str,
    grad_in: &mut [f32],
    grad_out: &[f32],
    out: &[f32],
    g: &SoftmaxGeometry,
    kind: Kind,
) -> Result<()> {
    g.check(op, "grad_in", grad_in.len())?;
    g.check(op, "grad_out", grad_out.len())?;
    g.check(op, "out", out.len())?;
    if g.is_empty() {
        return Ok(());
    }
    let slab = g.axis_len * g.inner;
    grad_in
        .par_chunks_mut(slab)
        .zip(grad_out.par_chunks(slab))
        .zip(out.par_chunks(slab))
        .with_min_len(g.min_slabs())
        .for_each_init(Scratch::default, |s, ((d, go), y)| {
            backward_slab(d, go, y, g, kind, s)
        });
    Ok(())
}

/// Softmax forward along the middle axis of `g`: `out` and `x` are
/// `[outer, axis_len, inner]`; `out` is overwritten.
pub fn softmax_forward(out: &mut [f32], x: &[f32], g: &SoftmaxGeometry) -> Result<()> {
    forward("softmax_forward", out, x, g, Kind::Softmax)
}

/// Softmax backward from the forward **output** `out`:
/// `grad_in = out · (grad_out − Σ_axis grad_out · out)`; `grad_in` is
/// overwritten.
pub fn softmax_backward(
    grad_in: &mut [f32],
    grad_out: &[f32],
    out: &[f32],
    g: &SoftmaxGeometry,
) -> Result<()> {
    backward("softmax_backward", grad_in, grad_out, out, g, Kind::Softmax)
}

/// Log-softmax forward along the middle axis of `g`; `out` is overwritten.
pub fn log_softmax_forward(out: &mut [f32], x: &[f32], g: &SoftmaxGeometry) -> Result<()> {
    forward("log_softmax_forward", out, x, g, Kind::LogSoftmax)
}

/// Log-softmax backward from the forward **output** `out`:
/// `grad_in = grad_out − exp(out) · Σ_axis grad_out`; `grad_in` is
/// overwritten.
pub fn log_softmax_backward(
    grad_in: &mut [f32],
    grad_out: &[f32],
    out: &[f32],
    g: &SoftmaxGeometry,
) -> Result<()> {
    backward(
        "log_softmax_backward",
        grad_in,
        grad_out,
        out,
        g,
        Kind::LogSoftmax,
    )
}

/// Softmax of a tensor along `axis` (PyTorch's `torch.softmax(x, dim=axis)`);
/// errors if `axis` is not an axis of `x`.
pub fn softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    let g = SoftmaxGeometry::new(x.shape(), axis)?;
    let mut out = Tensor::zeros(x.shape());
    softmax_forward(out.as_slice_mut(), x.as_slice(), &g)?;
    Ok(out)
}

/// Log-softmax of a tensor along `axis` (PyTorch's
/// `torch.log_softmax(x, dim=axis)`); errors if `axis` is not an axis of `x`.
pub fn log_softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    let g = SoftmaxGeometry::new(x.shape(), axis)?;
    let mut out = Tensor::zeros(x.shape());
    log_softmax_forward(out.as_slice_mut(), x.as_slice(), &g)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_gradient, project, projection, GradCheck};
    use crate::kernels::test_util::assert_deterministic;
    use crate::rng::Rng;

    /// Softmax and log-softmax by explicit multi-index loops over a 3-D
    /// tensor, in f64.
    fn naive(x: &Tensor, axis: usize) -> (Vec<f32>, Vec<f32>) {
        let s = x.shape().to_vec();
        let mut sm = vec![0.0f32; x.len()];
        let mut lsm = vec![0.0f32; x.len()];
        let flat = |i: [usize; 3]| (i[0] * s[1] + i[1]) * s[2] + i[2];
        let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
        for p in 0..s[others[0]] {
            for q in 0..s[others[1]] {
                let idx = |k: usize| {
                    let mut i = [0; 3];
                    i[others[0]] = p;
                    i[others[1]] = q;
                    i[axis] = k;
                    flat(i)
                };
                let vals: Vec<f64> = (0..s[axis]).map(|k| x.as_slice()[idx(k)] as f64).collect();
                let m = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = vals.iter().map(|v| (v - m).exp()).sum();
                for (k, v) in vals.iter().enumerate() {
                    sm[idx(k)] = ((v - m).exp() / z) as f32;
                    lsm[idx(k)] = (v - m - z.ln()) as f32;
                }
            }
        }
        (sm, lsm)
    }

    #[test]
    fn forward_matches_naive_loops_on_every_axis() {
        let mut rng = Rng::seed_from(1);
        let x = Tensor::randn(&[3, 5, 4], 0.0, 3.0, &mut rng);
        for axis in 0..3 {
            let (sm, lsm) = naive(&x, axis);
            let y = softmax(&x, axis).unwrap();
            let l = log_softmax(&x, axis).unwrap();
            for i in 0..x.len() {
                assert!(
                    (y.as_slice()[i] - sm[i]).abs() <= 1e-6,
                    "axis {axis} element {i}"
                );
                assert!(
                    (l.as_slice()[i] - lsm[i]).abs() <= 1e-5 * (1.0 + lsm[i].abs()),
                    "axis {axis} element {i}"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_on_every_axis() {
        let mut rng = Rng::seed_from(2);
        let shape = [3, 4, 5];
        let x = Tensor::randn(&shape, 0.0, 1.5, &mut rng).into_vec();
        let r = projection(x.len(), 3);
        for axis in 0..3 {
            let g = SoftmaxGeometry::new(&shape, axis).unwrap();
            type Fwd = fn(&mut [f32], &[f32], &SoftmaxGeometry) -> Result<()>;
            type Bwd = fn(&mut [f32], &[f32], &[f32], &SoftmaxGeometry) -> Result<()>;
            let ops: [(&str, Fwd, Bwd); 2] = [
                ("softmax", softmax_forward, softmax_backward),
                ("log_softmax", log_softmax_forward, log_softmax_backward),
            ];
            for (name, fwd, bwd) in ops {
                let mut y = vec![0.0; x.len()];
                fwd(&mut y, &x, &g).unwrap();
                let mut grad = vec![f32::NAN; x.len()];
                bwd(&mut grad, &r, &y, &g).unwrap();
                let loss = |xp: &[f32]| {
                    let mut o = vec![0.0; xp.len()];
                    fwd(&mut o, xp, &g).unwrap();
                    project(&o, &r)
                };
                check_gradient(loss, &x, &grad, GradCheck::default())
                    .unwrap_or_else(|e| panic!("{name} axis {axis}: {e}"));
            }
        }
    }

    #[test]
    fn extreme_inputs_stay_finite_and_exact() {
        let x = Tensor::from_vec(&[3], vec![1000.0, 0.0, -1000.0]).unwrap();
        let y = softmax(&x, 0).unwrap();
        assert!(y.as_slice().iter().all(|v| v.is_finite()));
        assert!((y.sum() - 1.0).abs() < 1e-7);
        let l = log_softmax(&Tensor::from_vec(&[2], vec![1000.0, 0.0]).unwrap(), 0).unwrap();
        assert_eq!(l.as_slice(), &[0.0, -1000.0]);
        // Strided path too: the same values along axis 0 of a [2, 3] tensor.
        let x = Tensor::from_vec(&[2, 3], vec![1000., -1000., 5., 0., 1000., 5.]).unwrap();
        let l = log_softmax(&x, 0).unwrap();
        assert_eq!(l.as_slice()[..2], [0.0, -2000.0]);
        assert_eq!(l.as_slice()[3..5], [-1000.0, 0.0]);
        assert!((l.as_slice()[2] - (-std::f32::consts::LN_2)).abs() < 1e-7);
        // Softmax rows of a wide random tensor sum to 1.
        let mut rng = Rng::seed_from(4);
        let x = Tensor::randn(&[7, 1000], 0.0, 50.0, &mut rng);
        let y = softmax(&x, 1).unwrap();
        for row in y.as_slice().chunks(1000) {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0).abs() < 1e-5, "{s}");
        }
    }

    #[test]
    fn bad_axis_and_lengths_are_errors() {
        let x = Tensor::zeros(&[2, 3, 4]);
        let e = softmax(&x, 3).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("axis"), "{e}");
        assert!(log_softmax(&x, 7).is_err());
        assert!(softmax(&Tensor::scalar(1.0), 0).is_err());
        let g = SoftmaxGeometry::new(&[2, 3, 4], 1).unwrap();
        let mut out = vec![0.0; 23];
        let e = softmax_forward(&mut out, x.as_slice(), &g)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("23"), "{e}");
        let mut gi = vec![0.0; 24];
        assert!(softmax_backward(&mut gi, &[0.0; 24], &[0.0; 20], &g).is_err());
        assert!(log_softmax_backward(&mut gi, &[0.0; 2], &[0.0; 24], &g).is_err());
        // Empty axes are fine and do nothing.
        assert_eq!(softmax(&Tensor::zeros(&[2, 0]), 1).unwrap().len(), 0);
    }

    #[test]
    fn parallel_results_are_bit_identical() {
        let mut rng = Rng::seed_from(5);
        let x = Tensor::randn(&[64, 10, 300], 0.0, 2.0, &mut rng);
        let r = projection(x.len(), 6);
        let run = || {
            let mut bits = Vec::new();
            for axis in [1, 2] {
                let g = SoftmaxGeometry::new(x.shape(), axis).unwrap();
                let mut y = vec![0.0; x.len()];
                softmax_forward(&mut y, x.as_slice(), &g).unwrap();
                let mut d = vec![0.0; x.len()];
                softmax_backward(&mut d, &r, &y, &g).unwrap();
                let mut l = vec![0.0; x.len()];
                log_softmax_forward(&mut l, x.as_slice(), &g).unwrap();
                let mut dl = vec![0.0; x.len()];
                log_softmax_backward(&mut dl, &r, &l, &g).unwrap();
                for v in [y, d, l, dl] {
                    bits.extend(v.iter().map(|f| f.to_bits()));
                }
            }
            bits
        };
        assert_deterministic(run);
    }
}
