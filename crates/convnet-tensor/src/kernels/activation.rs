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

/// An element-wise function, as a type: the chunk loops call `apply`
/// statically, so that the `#[inline(always)]` body is compiled into each
/// SIMD level's copy of the loop and vectorised there (through a closure or
/// a function pointer, the compiler kept a call per element).
trait Unary: Sync {
    /// `f(x)`.
    fn apply(x: f32) -> f32;
}

/// A backward function of `(grad_out, saved)`, as a type (see [`Unary`]).
trait Binary: Sync {
    /// `grad_in` from `grad_out` and the saved forward value.
    fn apply(g: f32, s: f32) -> f32;
}

/// `out[i] = U(x[i])`, in parallel chunks for long slices.
fn map_unary<U: Unary>(op: &'static str, out: &mut [f32], x: &[f32]) -> Result<()> {
    check_same_len(op, "out", out.len(), "x", x.len())?;
    if x.len() <= CHUNK {
        unary_chunk::<U>(out, x);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| unary_chunk::<U>(o, x));
    }
    Ok(())
}

/// `grad_in[i] = B(grad_out[i], saved[i])`, in parallel chunks for long
/// slices.
fn map_binary<B: Binary>(
    op: &'static str,
    grad_in: &mut [f32],
    grad_out: &[f32],
    saved: &[f32],
    saved_name: &str,
) -> Result<()> {
    check_same_len(op, "grad_in", grad_in.len(), saved_name, saved.len())?;
    check_same_len(op, "grad_out", grad_out.len(), saved_name, saved.len())?;
    if saved.len() <= CHUNK {
        binary_chunk::<B>(grad_in, grad_out, saved);
    } else {
        grad_in
            .par_chunks_mut(CHUNK)
            .zip(grad_out.par_chunks(CHUNK))
            .zip(saved.par_chunks(CHUNK))
            .for_each(|((gi, go), s)| binary_chunk::<B>(gi, go, s));
    }
    Ok(())
}

/// `x[i] = U(x[i])` in place, in parallel chunks for long slices.
fn map_inplace<U: Unary>(x: &mut [f32]) {
    if x.len() <= CHUNK {
        inplace_chunk::<U>(x);
    } else {
        x.par_chunks_mut(CHUNK).for_each(inplace_chunk::<U>);
    }
}

crate::multiversion! {
    /// `out[i] = U(x[i])` over one chunk, compiled for the SIMD level in use.
    fn unary_chunk<U: Unary>(out: &mut [f32], x: &[f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = U::apply(v);
        }
    }
}

crate::multiversion! {
    /// `gi[i] = B(go[i], s[i])` over one chunk, compiled for the SIMD level
    /// in use.
    fn binary_chunk<B: Binary>(gi: &mut [f32], go: &[f32], s: &[f32]) {
        for ((d, &g), &v) in gi.iter_mut().zip(go).zip(s) {
            *d = B::apply(g, v);
        }
    }
}

crate::multiversion! {
    /// `x[i] = U(x[i])` over one chunk, compiled for the SIMD level in use.
    fn inplace_chunk<U: Unary>(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = U::apply(*v);
        }
    }
}

/// Defines a unit type implementing [`Unary`] or [`Binary`] with an
/// `#[inline(always)]` body.
macro_rules! elementwise {
    ($(#[$doc:meta])* $name:ident: Unary |$x:ident| $body:expr) => {
        $(#[$doc])*
        struct $name;
        impl Unary for $name {
            #[inline(always)]
            fn apply($x: f32) -> f32 {
                $body
            }
        }
    };
    ($(#[$doc:meta])* $name:ident: Binary |$g:ident, $s:ident| $body:expr) => {
        $(#[$doc])*
        struct $name;
        impl Binary for $name {
            #[inline(always)]
            fn apply($g: f32, $s: f32) -> f32 {
                $body
            }
        }
    };
}

elementwise!(/// ReLU.
    Relu: Unary |x| scalar::relu(x));
elementwise!(/// ReLU's backward from the output.
    ReluGrad: Binary |g, y| if y > 0.0 { g } else { 0.0 });
elementwise!(/// Sigmoid.
    Sigmoid: Unary |x| scalar::sigmoid(x));
elementwise!(/// Sigmoid's backward from the output.
    SigmoidGrad: Binary |g, y| g * y * (1.0 - y));
elementwise!(/// Tanh (the library's, scalar).
    Tanh: Unary |x| x.tanh());
elementwise!(/// Tanh's backward from the output.
    TanhGrad: Binary |g, y| g * (1.0 - y * y));
elementwise!(/// Exact GELU.
    Gelu: Unary |x| scalar::gelu(x));
elementwise!(/// Exact GELU's backward from the input.
    GeluGrad: Binary |g, x| g * scalar::gelu_grad(x));
elementwise!(/// GELU, tanh approximation.
    GeluTanh: Unary |x| scalar::gelu_tanh(x));
elementwise!(/// The tanh approximation's backward from the input.
    GeluTanhGrad: Binary |g, x| g * scalar::gelu_tanh_grad(x));

// ---------------------------------------------------------------- scalars

/// The activations and their derivatives on one value, written with
/// [`vmath`](super::vmath) (no library calls) so that the chunk loops
/// vectorise.
mod scalar {
    use super::{GELU_TANH_CUBIC, SQRT_2_OVER_PI};
    use crate::kernels::vmath;

    /// ReLU of one value; NaN stays NaN (a comparison with NaN is false).
    #[inline(always)]
    pub fn relu(x: f32) -> f32 {
        if x < 0.0 {
            0.0
        } else {
            x
        }
    }

    #[inline(always)]
    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + vmath::exp(-x))
    }

    /// `x·Φ(x)`; `Φ` keeps its relative precision in the far negative tail.
    #[inline(always)]
    pub fn gelu(x: f32) -> f32 {
        x * vmath::normal_cdf_pdf(x).0
    }

    /// `Φ(x) + x·φ(x)`.
    #[inline(always)]
    pub fn gelu_grad(x: f32) -> f32 {
        let (cdf, pdf) = vmath::normal_cdf_pdf(x);
        cdf + x * pdf
    }

    #[inline(always)]
    /// `½x·(1 + tanh u)`, computed as `x·σ(2u)` (the same function:
    /// `½(1 + tanh u) = σ(2u)`), which needs one `exp` instead of a `tanh`
    /// and has no cancellation in either tail.
    pub fn gelu_tanh(x: f32) -> f32 {
        let u = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
        x / (1.0 + vmath::exp(-2.0 * u))
    }

    #[inline(always)]
    /// With `s = σ(2u) = ½(1 + tanh u)`: `½(1 − tanh² u) = 2s(1 − s)`, so
    /// the derivative `½(1 + tanh u) + ½x(1 − tanh² u)·u′` is
    /// `s + 2x·s(1 − s)·u′`.
    pub fn gelu_tanh_grad(x: f32) -> f32 {
        let x2 = x * x;
        let u = SQRT_2_OVER_PI * x * (1.0 + GELU_TANH_CUBIC * x2);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * x2);
        let s = 1.0 / (1.0 + vmath::exp(-2.0 * u));
        s + 2.0 * x * s * (1.0 - s) * du
    }
}

// ---------------------------------------------------------------- kernels

/// ReLU forward: `out = max(x, 0)`.
pub fn relu_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary::<Relu>("relu_forward", out, x)
}

/// ReLU backward from the forward **output** `out`: `grad_in = grad_out`
/// where `out > 0`, else 0. `grad_in` is overwritten.
pub fn relu_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary::<ReluGrad>("relu_backward", grad_in, grad_out, out, "out")
}

/// Sigmoid forward: `out = 1 / (1 + e^−x)`.
pub fn sigmoid_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary::<Sigmoid>("sigmoid_forward", out, x)
}

/// Sigmoid backward from the forward **output** `out`:
/// `grad_in = grad_out · out · (1 − out)`. `grad_in` is overwritten.
pub fn sigmoid_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary::<SigmoidGrad>("sigmoid_backward", grad_in, grad_out, out, "out")
}

/// Tanh forward: `out = tanh x`.
pub fn tanh_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary::<Tanh>("tanh_forward", out, x)
}

/// Tanh backward from the forward **output** `out`:
/// `grad_in = grad_out · (1 − out²)`. `grad_in` is overwritten.
pub fn tanh_backward(grad_in: &mut [f32], grad_out: &[f32], out: &[f32]) -> Result<()> {
    map_binary::<TanhGrad>("tanh_backward", grad_in, grad_out, out, "out")
}

/// Exact GELU forward: `out = x·Φ(x) = ½x·(1 + erf(x/√2))`.
pub fn gelu_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary::<Gelu>("gelu_forward", out, x)
}

/// Exact GELU backward from the forward **input** `x`:
/// `grad_in = grad_out · (Φ(x) + x·φ(x))`. `grad_in` is overwritten.
pub fn gelu_backward(grad_in: &mut [f32], grad_out: &[f32], x: &[f32]) -> Result<()> {
    map_binary::<GeluGrad>("gelu_backward", grad_in, grad_out, x, "x")
}

/// GELU with the tanh approximation (PyTorch's `approximate='tanh'`):
/// `out = ½x·(1 + tanh(u))`, `u = √(2/π)·(x + 0.044715x³)`.
pub fn gelu_tanh_forward(out: &mut [f32], x: &[f32]) -> Result<()> {
    map_unary::<GeluTanh>("gelu_tanh_forward", out, x)
}

/// Backward of [`gelu_tanh_forward`] from the forward **input** `x`:
/// with `t = tanh(u)`, `grad_in = grad_out · (½(1 + t) + ½x·(1 − t²)·u′)`,
/// `u′ = √(2/π)·(1 + 3·0.044715x²)`. `grad_in` is overwritten.
pub fn gelu_tanh_backward(grad_in: &mut [f32], grad_out: &[f32], x: &[f32]) -> Result<()> {
    map_binary::<GeluTanhGrad>("gelu_tanh_backward", grad_in, grad_out, x, "x")
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
        match self {
            Activation::Relu => map_inplace::<Relu>(x),
            Activation::Sigmoid => map_inplace::<Sigmoid>(x),
            Activation::Tanh => map_inplace::<Tanh>(x),
            Activation::Gelu => map_inplace::<Gelu>(x),
            Activation::GeluTanh => map_inplace::<GeluTanh>(x),
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
#[path = "activation_tests.rs"]
mod tests;
