//! Element-wise activations, forward and backward: ReLU, Sigmoid, Tanh, GELU
//! (exact) and GELU with the tanh approximation.
//!
//! | activation | forward | backward needs | derivative |
//! |---|---|---|---|
//! | ReLU | `max(x, 0)` | output `y` | `1` where `y > 0`, else `0` |
//! | Sigmoid | `σ(x) = 1 / (1 + e^−x)` | output `y` | `y·(1 − y)` |
//! | Tanh | `tanh x` | output `y` | `1 − y²` |
//! | GELU | `x·Φ(x) = ½x·(1 + erf(x/√2))` | input `x` | `Φ(x) + x·φ(x)` |
//! | GELU (tanh) | `½x·(1 + tanh(√(2/π)·(x + 0.044715x³)))` | input `x` | see [`gelu_tanh_backward`] |
//!
//! `Φ` and `φ` are the standard normal CDF and density. "GELU (tanh)" is
//! PyTorch's `GELU(approximate='tanh')`. ReLU's derivative at 0 is taken as
//! 0, as PyTorch does. NaN inputs give NaN outputs.
//!
//! Every function checks that its slices have the same length. Large slices
//! are split into fixed chunks over rayon's pool; the work is element-wise,
//! so results never depend on the number of threads.
//!
//! ```
//! use convnet_tensor::kernels::activation::Activation;
//! let x = [-1.0f32, 0.0, 2.0];
//! let mut y = [0.0; 3];
//! Activation::Relu.forward(&mut y, &x)?;
//! assert_eq!(y, [0.0, 0.0, 2.0]);
//! let mut grad_in = [0.0; 3];
//! // ReLU's backward reads the output (`Activation::Relu.saves()`).
//! Activation::Relu.backward(&mut grad_in, &[1.0, 1.0, 1.0], &y)?;
//! assert_eq!(grad_in, [0.0, 0.0, 1.0]);
//! # Ok::<(), convnet_tensor::TensorError>(())
//! ```

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// Elements per rayon task; slices up to this length run on the calling
/// thread.
const CHUNK: usize = 1 << 14;

/// `1/√2`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1/√(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
/// `√(2/π)`, the tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const GELU_TANH_CUBIC: f32 = 0.044_715;

fn check_same_len(
    op: &'static str,
    what: &str,
    got: usize,
    reference: &str,
    expected: usize,
) -> Result<()> {
    if got != expected {
        return Err(TensorError::shape(
            op,
            format!("length of {what}"),
            format!("{expected} (the length of {reference})"),
            got,
        ));
    }
    Ok(())
}

/// `out[i] = f(x[i])`, in parallel chunks for long slices.
fn map_unary(
    op: &'static str,
    out: &mut [f32],
    x: &[f32],
    f: impl Fn(f32) -> f32 + Sync,
) -> Result<()> {
    check_same_len(op, "out", out.len(), "x", x.len())?;
    let run = |out: &mut [f32], x: &[f32]| unary_chunk(out, x, &f);
    if x.len() <= CHUNK {
        run(out, x);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| run(o, x));
    }
    Ok(())
}

/// `grad_in[i] = f(grad_out[i], saved[i])`, in parallel chunks for long
/// slices.
fn map_binary(
    op: &'static str,
    grad_in: &mut [f32],
    grad_out: &[f32],
    saved: &[f32],
    saved_name: &str,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    check_same_len(op, "grad_in", grad_in.len(), saved_name, saved.len())?;
    check_same_len(op, "grad_out", grad_out.len(), saved_name, saved.len())?;
    let run = |gi: &mut [f32], go: &[f32], s: &[f32]| binary_chunk(gi, go, s, &f);
    if saved.len() <= CHUNK {
        run(grad_in, grad_out, saved);
    } else {
        grad_in
            .par_chunks_mut(CHUNK)
            .zip(grad_out.par_chunks(CHUNK))
            .zip(saved.par_chunks(CHUNK))
            .for_each(|((gi, go), s)| run(gi, go, s));
    }
    Ok(())
}

crate::multiversion! {
    /// `out[i] = f(x[i])` over one chunk, compiled for the SIMD level in use.
    fn unary_chunk<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: &F) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
    }
}

crate::multiversion! {
    /// `gi[i] = f(go[i], s[i])` over one chunk, compiled for the SIMD level
    /// in use.
    fn binary_chunk<F: Fn(f32, f32) -> f32>(gi: &mut [f32], go: &[f32], s: &[f32], f: &F) {
        for ((d, &g), &v) in gi.iter_mut().zip(go).zip(s) {
            *d = f(g, v);
        }
    }
}

crate::multiversion! {
    /// `x[i] = f(x[i])` over one chunk, compiled for the SIMD level in use.
    fn inplace_chunk<F: Fn(f32) -> f32>(x: &mut [f32], f: &F) {
        for v in x.iter_mut() {
            *v = f(*v);
        }
    }
}

// ---------------------------------------------------------------- scalars

/// The activations and their derivatives on one value.
mod scalar {
    use super::{FRAC_1_SQRT_2, FRAC_1_SQRT_2PI, GELU_TANH_CUBIC, SQRT_2_OVER_PI};

    /// ReLU of one value; NaN stays NaN (a comparison with NaN is false).
    #[inline]
    pub fn relu(x: f32) -> f32 {
        if x < 0.0 {
            0.0
        } else {
            x
        }
    }

    #[inline]
    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    /// `Φ(x)`, the standard normal CDF, through `erfc` so that the far negative
    /// tail keeps its relative precision.
    #[inline]
    pub fn normal_cdf(x: f32) -> f32 {
        0.5 * libm::erfcf(-x * FRAC_1_SQRT_2)
    }

    #[inline]
    pub fn gelu(x: f32) -> f32 {
        x * normal_cdf(x)
    }

    #[inline]
    pub fn gelu_grad(x: f32) -> f32 {
        normal_cdf(x) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
    }

    #[inline]
    /// `½x·(1 + tanh u)`, computed as `x·σ(2u)` (the same function:
    /// `½(1 + tanh u) = σ(2u)`), which needs one `exp` instead of a `tanh`
    /// and has no cancellation in either tail.
    pub fn gelu_tanh(x: f32) -> f32 {
        let u = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }

    #[inline]
    /// With `s = σ(2u) = ½(1 + tanh u)`: `½(1 − tanh² u) = 2s(1 − s)`, so
    /// the derivative `½(1 + tanh u) + ½x(1 − tanh² u)·u′` is
    /// `s + 2x·s(1 − s)·u′`.
    pub fn gelu_tanh_grad(x: f32) -> f32 {
        let x2 = x * x;
        let u = SQRT_2_OVER_PI * x * (1.0 + GELU_TANH_CUBIC * x2);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * x2);
        let s = 1.0 / (1.0 + (-2.0 * u).exp());
        s + 2.0 * x * s * (1.0 - s) * du
    }
}

// ---------------------------------------------------------------- kernels

/// ReLU forward: `out = max(x, 0)`.
pub fn relu_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary("relu_forward", out, x, scalar::relu)
}

/// ReLU backward from the forward **output** `out`: `grad_in = grad_out`
/// where `out > 0`, else 0. `grad_in` is overwritten.
pub fn relu_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary("relu_backward", grad_in, grad_out, out, "out", |g, y| {
        if y > 0.0 {
            g
        } else {
            0.0
        }
    })
}

/// Sigmoid forward: `out = 1 / (1 + e^−x)`.
pub fn sigmoid_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary("sigmoid_forward", out, x, scalar::sigmoid)
}

/// Sigmoid backward from the forward **output** `out`:
/// `grad_in = grad_out · out · (1 − out)`. `grad_in` is overwritten.
pub fn sigmoid_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary("sigmoid_backward", grad_in, grad_out, out, "out", |g, y| {
        g * y * (1.0 - y)
    })
}

/// Tanh forward: `out = tanh x`.
pub fn tanh_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary("tanh_forward", out, x, f32::tanh)
}

/// Tanh backward from the forward **output** `out`:
/// `grad_in = grad_out · (1 − out²)`. `grad_in` is overwritten.
pub fn tanh_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary("tanh_backward", grad_in, grad_out, out, "out", |g, y| {
        g * (1.0 - y * y)
    })
}

/// Exact GELU forward: `out = x·Φ(x) = ½x·(1 + erf(x/√2))`.
pub fn gelu_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary("gelu_forward", out, x, scalar::gelu)
}

/// Exact GELU backward from the forward **input** `x`:
/// `grad_in = grad_out · (Φ(x) + x·φ(x))`. `grad_in` is overwritten.
pub fn gelu_backward(grad_in: &mut [f32], grad_out: &[f32], x: &[f32]) -> Result<()> {
    map_binary("gelu_backward", grad_in, grad_out, x, "x", |g, v| {
        g * scalar::gelu_grad(v)
    })
}

/// GELU with the tanh approximation (PyTorch's `approximate='tanh'`):
/// `out = ½x·(1 + tanh(u))`, `u = √(2/π)·(x + 0.044715x³)`.
pub fn gelu_tanh_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary("gelu_tanh_forward", out, x, scalar::gelu_tanh)
}

/// Backward of [`gelu_tanh_forward`] from the forward **input** `x`:
/// with `t = tanh(u)`, `grad_in = grad_out · (½(1 + t) + ½x·(1 − t²)·u′)`,
/// `u′ = √(2/π)·(1 + 3·0.044715x²)`. `grad_in` is overwritten.
pub fn gelu_tanh_backward(grad_in: &mut [f32], grad_out: &[f32], x: &[f32]) -> Result<()> {
    map_binary("gelu_tanh_backward", grad_in, grad_out, x, "x", |g, v| {
        g * scalar::gelu_tanh_grad(v)
    })
}

// ---------------------------------------------------------------- dispatch

/// Which forward tensor an activation's backward pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The forward input `x` (GELU and its tanh approximation).
    Input,
    /// The forward output `y` (ReLU, Sigmoid, Tanh); such an activation can
    /// run in place and keep only its output.
    Output,
}

/// An element-wise activation function, dispatching to the kernels above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// Exact GELU, `x·Φ(x)` (PyTorch's `GELU()`).
    Gelu,
    /// GELU, tanh approximation (PyTorch's `GELU(approximate='tanh')`).
    GeluTanh,
}

impl Activation {
    /// The PyTorch module name (`"ReLU"`, `"Sigmoid"`, `"Tanh"`, `"GELU"`;
    /// the tanh approximation is `"GELU"` too, with an argument).
    pub fn type_name(self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Gelu | Activation::GeluTanh => "GELU",
        }
    }

    /// Which tensor [`Activation::backward`] needs: the forward input or
    /// the forward output.
    pub fn saves(self) -> Saved {
        match self {
            Activation::Relu | Activation::Sigmoid | Activation::Tanh => Saved::Output,
            Activation::Gelu | Activation::GeluTanh => Saved::Input,
        }
    }

    /// `out = f(x)`; errors if the lengths differ.
    pub fn forward(self, out: &mut [f32], x: &[f32]) -> Result<()> {
        match self {
            Activation::Relu => relu_forward(out, x),
            Activation::Sigmoid => sigmoid_forward(out, x),
            Activation::Tanh => tanh_forward(out, x),
            Activation::Gelu => gelu_forward(out, x),
            Activation::GeluTanh => gelu_tanh_forward(out, x),
        }
    }

    /// `x = f(x)` in place (no length to check, no allocation).
    pub fn forward_inplace(self, x: &mut [f32]) {
        fn apply(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
            if x.len() <= CHUNK {
                inplace_chunk(x, &f);
            } else {
                x.par_chunks_mut(CHUNK).for_each(|c| inplace_chunk(c, &f));
            }
        }
        match self {
            Activation::Relu => apply(x, scalar::relu),
            Activation::Sigmoid => apply(x, scalar::sigmoid),
            Activation::Tanh => apply(x, f32::tanh),
            Activation::Gelu => apply(x, scalar::gelu),
            Activation::GeluTanh => apply(x, scalar::gelu_tanh),
        }
    }

    /// `grad_in = grad_out · f′`, with `saved` the forward input or output
    /// as [`Activation::saves`] says. `grad_in` is overwritten; errors if the
    /// lengths differ.
    pub fn backward(self, grad_in: &mut [f32], grad_out: &[f32], saved: &[f32]) -> Result<()> {
        match self {
            Activation::Relu => relu_backward(grad_in, grad_out, saved),
            Activation::Sigmoid => sigmoid_backward(grad_in, grad_out, saved),
            Activation::Tanh => tanh_backward(grad_in, grad_out, saved),
            Activation::Gelu => gelu_backward(grad_in, grad_out, saved),
            Activation::GeluTanh => gelu_tanh_backward(grad_in, grad_out, saved),
        }
    }

    /// `f(x)` as a new tensor of the same shape.
    ///
    /// ```
    /// use convnet_tensor::{kernels::activation::Activation, Tensor};
    /// let x = Tensor::from_vec(&[3], vec![-1.0, 0.0, 1.0])?;
    /// let y = Activation::Gelu.apply(&x);
    /// assert!((y.as_slice()[2] - 0.841_344_7).abs() < 1e-6);
    /// # Ok::<(), convnet_tensor::TensorError>(())
    /// ```
    pub fn apply(self, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        self.forward_inplace(y.as_slice_mut());
        y
    }
}

/// ReLU of a tensor of any shape (PyTorch's `F.relu`).
pub fn relu(x: &Tensor) -> Tensor {
    Activation::Relu.apply(x)
}

/// Sigmoid of a tensor of any shape (PyTorch's `torch.sigmoid`).
pub fn sigmoid(x: &Tensor) -> Tensor {
    Activation::Sigmoid.apply(x)
}

/// Tanh of a tensor of any shape (PyTorch's `torch.tanh`).
pub fn tanh(x: &Tensor) -> Tensor {
    Activation::Tanh.apply(x)
}

/// Exact GELU of a tensor of any shape (PyTorch's `F.gelu`).
pub fn gelu(x: &Tensor) -> Tensor {
    Activation::Gelu.apply(x)
}

/// Tanh-approximated GELU of a tensor of any shape (PyTorch's
/// `F.gelu(x, approximate='tanh')`).
pub fn gelu_tanh(x: &Tensor) -> Tensor {
    Activation::GeluTanh.apply(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_gradient, project, projection, GradCheck};
    use crate::kernels::test_util::assert_deterministic;
    use crate::rng::Rng;

    const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
    ];

    /// Reference values computed independently in f64: the CDF by numerical
    /// integration of the density (Simpson's rule), not through erf.
    fn reference(a: Activation, x: f64) -> f64 {
        match a {
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => {
                // Φ(x) = ½ + ∫₀ˣ φ, by Simpson's rule with 2000 intervals.
                let n = 2000;
                let h = x / n as f64;
                let phi = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let mut s = phi(0.0) + phi(x);
                for i in 1..n {
                    s += phi(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
                }
                x * (0.5 + s * h / 3.0)
            }
            Activation::GeluTanh => {
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                0.5 * x * (1.0 + u.tanh())
            }
        }
    }

    #[test]
    fn forward_matches_reference_on_random_inputs() {
        let mut rng = Rng::seed_from(1);
        let x: Vec<f32> = (0..500).map(|_| rng.uniform(-6.0, 6.0)).collect();
        for a in ALL {
            let mut y = vec![0.0; x.len()];
            a.forward(&mut y, &x).unwrap();
            for (&v, &got) in x.iter().zip(&y) {
                let want = reference(a, v as f64);
                assert!(
                    (got as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                    "{a:?}({v}) = {got}, want {want}"
                );
            }
            // In place and tensor-level agree with the slice kernel.
            let mut z = x.clone();
            a.forward_inplace(&mut z);
            assert_eq!(z, y);
        }
    }

    #[test]
    fn known_values() {
        let one = |a: Activation, x: f32| {
            let mut y = [0.0];
            a.forward(&mut y, &[x]).unwrap();
            y[0]
        };
        assert!((one(Activation::Gelu, 1.0) - 0.841_344_7).abs() < 1e-7);
        assert!((one(Activation::GeluTanh, 1.0) - 0.841_192).abs() < 1e-7);
        assert_eq!(one(Activation::Sigmoid, 0.0), 0.5);
        assert_eq!(one(Activation::Relu, -3.0), 0.0);
        assert_eq!(one(Activation::Tanh, 0.0), 0.0);
        // Saturation is finite and exact at the ends.
        assert_eq!(one(Activation::Sigmoid, -1000.0), 0.0);
        assert_eq!(one(Activation::Sigmoid, 1000.0), 1.0);
        assert_eq!(one(Activation::Gelu, 1000.0), 1000.0);
        assert_eq!(one(Activation::Gelu, -1000.0), 0.0);
        assert_eq!(one(Activation::GeluTanh, -1000.0), 0.0);
        // The negative tail of GELU keeps its relative precision:
        // GELU(-5) = -5·Φ(-5) = -1.4332579e-6.
        let g = one(Activation::Gelu, -5.0);
        assert!((g / -1.433_257_9e-6 - 1.0).abs() < 1e-5, "{g}");
        assert!(one(Activation::Relu, f32::NAN).is_nan());
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng::seed_from(2);
        // Avoid |x| < eps for ReLU's kink.
        let x: Vec<f32> = (0..200)
            .map(|_| {
                let v = rng.uniform(-4.0, 4.0);
                if v.abs() < 0.05 {
                    v + 0.1
                } else {
                    v
                }
            })
            .collect();
        let r = projection(x.len(), 3);
        for a in ALL {
            let mut y = vec![0.0; x.len()];
            a.forward(&mut y, &x).unwrap();
            let saved = match a.saves() {
                Saved::Input => &x,
                Saved::Output => &y,
            };
            let mut grad = vec![f32::NAN; x.len()];
            a.backward(&mut grad, &r, saved).unwrap();
            let loss = |xp: &[f32]| {
                let mut o = vec![0.0; xp.len()];
                a.forward(&mut o, xp).unwrap();
                project(&o, &r)
            };
            check_gradient(loss, &x, &grad, GradCheck::default())
                .unwrap_or_else(|e| panic!("{a:?}: {e}"));
        }
    }

    #[test]
    fn lecture_relu() {
        let conv = Tensor::from_vec(&[3, 3], vec![-3., 1., 6., 4., 5., -1., -1., 1., 6.]).unwrap();
        let y = relu(&conv);
        assert_eq!(y.as_slice(), &[0., 1., 6., 4., 5., 0., 0., 1., 6.]);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut out = [0.0; 3];
        let e = relu_forward(&mut out, &[1.0; 4]).unwrap_err().to_string();
        assert!(
            e.contains("relu_forward") && e.contains('4') && e.contains('3'),
            "{e}"
        );
        let mut g = [0.0; 4];
        let e = Activation::Gelu
            .backward(&mut g, &[1.0; 3], &[1.0; 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("grad_out"), "{e}");
        assert!(Activation::Tanh
            .backward(&mut g, &[1.0; 4], &[1.0; 5])
            .is_err());
    }

    #[test]
    fn parallel_results_are_bit_identical() {
        let mut rng = Rng::seed_from(4);
        let n = 5 * CHUNK + 123;
        let x: Vec<f32> = (0..n).map(|_| rng.uniform(-5.0, 5.0)).collect();
        let r = projection(n, 5);
        let run = || {
            let mut all = Vec::new();
            for a in ALL {
                let mut y = vec![0.0; n];
                a.forward(&mut y, &x).unwrap();
                let saved = if a.saves() == Saved::Input { &x } else { &y };
                let mut g = vec![0.0; n];
                a.backward(&mut g, &r, saved).unwrap();
                all.extend(y.iter().chain(&g).map(|v| v.to_bits()));
            }
            all
        };
        assert_deterministic(run);
        // The chunked path agrees with element-by-element evaluation.
        let mut y = vec![0.0; n];
        gelu_forward(&mut y, &x).unwrap();
        assert!(y
            .iter()
            .zip(&x)
            .all(|(&a, &b)| a.to_bits() == scalar::gelu(b).to_bits()));
    }
}
