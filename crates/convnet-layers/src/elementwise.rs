//! The machinery shared by the element-wise activation layers ([`crate::ReLU`],
//! [`crate::Sigmoid`], [`crate::Tanh`], [`crate::GELU`]): they call the
//! kernels of `convnet_tensor::kernels::activation` and cache the tensor the
//! backward pass reads (the output for ReLU, Sigmoid and Tanh, the input for
//! GELU).

use convnet_tensor::kernels::activation::{Activation, Saved};
use convnet_tensor::Tensor;
use rayon::prelude::*;

use crate::error::Result;
use crate::util::{check_grad, kernel, take_cache};

/// What `forward` keeps for `backward`.
#[derive(Debug, Clone)]
enum Cache {
    /// The forward input or output, as `act.saves()` says.
    Saved(Tensor),
    /// ReLU: bit `i % 64` of word `i / 64` is set where output `i` is > 0,
    /// all its backward needs (1/32 of the output's memory, and no large
    /// allocation per step).
    Positive {
        /// Shape of the output.
        shape: Vec<usize>,
        /// One bit per element.
        bits: Vec<u64>,
    },
}

impl Cache {
    fn shape(&self) -> &[usize] {
        match self {
            Cache::Saved(t) => t.shape(),
            Cache::Positive { shape, .. } => shape,
        }
    }
}

/// 64-bit words of [`Cache::Positive`] per rayon task (16,384 elements).
const WORDS_PER_TASK: usize = 256;

/// The ReLU cache of output `y`.
fn positive_bits(y: &Tensor) -> Cache {
    let mut bits = vec![0u64; y.len().div_ceil(64)];
    bits.par_chunks_mut(WORDS_PER_TASK)
        .zip(y.as_slice().par_chunks(WORDS_PER_TASK * 64))
        .for_each(|(words, y)| {
            for (w, y) in words.iter_mut().zip(y.chunks(64)) {
                *w = y
                    .iter()
                    .enumerate()
                    .fold(0, |acc, (i, &v)| acc | (u64::from(v > 0.0) << i));
            }
        });
    Cache::Positive {
        shape: y.shape().to_vec(),
        bits,
    }
}

/// ReLU backward from [`positive_bits`]: `grad_in = grad_out` where the
/// output was > 0, else 0 (as `relu_backward` on the output).
fn relu_backward_bits(grad_in: &mut [f32], grad_out: &[f32], bits: &[u64]) {
    grad_in
        .par_chunks_mut(WORDS_PER_TASK * 64)
        .zip(grad_out.par_chunks(WORDS_PER_TASK * 64))
        .zip(bits.par_chunks(WORDS_PER_TASK))
        .for_each(|((gi, go), words)| {
            for ((gi, go), &w) in gi.chunks_mut(64).zip(go.chunks(64)).zip(words) {
                for (i, (x, &g)) in gi.iter_mut().zip(go).enumerate() {
                    *x = if (w >> i) & 1 == 1 { g } else { 0.0 };
                }
            }
        });
}

/// An activation function and the cache of its last `forward`.
#[derive(Debug, Clone)]
pub(crate) struct ElementWise {
    pub(crate) act: Activation,
    /// What the last `forward` kept for `backward`.
    cache: Option<Cache>,
}

impl ElementWise {
    pub(crate) fn new(act: Activation) -> Self {
        ElementWise { act, cache: None }
    }

    pub(crate) fn infer(&self, x: &Tensor) -> Tensor {
        self.act.apply(x)
    }

    /// [`ElementWise::infer`] in place on an owned input.
    pub(crate) fn infer_owned(&self, mut x: Tensor) -> Tensor {
        self.act.forward_inplace(x.as_slice_mut());
        x
    }

    pub(crate) fn forward(&mut self, x: &Tensor) -> Tensor {
        let y = self.act.apply(x);
        self.cache = Some(match (self.act, self.act.saves()) {
            (Activation::Relu, _) => positive_bits(&y),
            (_, Saved::Input) => Cache::Saved(x.clone()),
            (_, Saved::Output) => Cache::Saved(y.clone()),
        });
        y
    }

    /// [`ElementWise::forward`] in place on an owned input: at most one copy
    /// (the cache) instead of two.
    pub(crate) fn forward_owned(&mut self, mut x: Tensor) -> Tensor {
        match (self.act, self.act.saves()) {
            (_, Saved::Input) => {
                let y = self.act.apply(&x);
                self.cache = Some(Cache::Saved(x));
                y
            }
            (act, Saved::Output) => {
                act.forward_inplace(x.as_slice_mut());
                self.cache = Some(match act {
                    Activation::Relu => positive_bits(&x),
                    _ => Cache::Saved(x.clone()),
                });
                x
            }
        }
    }

    pub(crate) fn backward(&mut self, layer: &str, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(saved) = &self.cache {
            check_grad(layer, grad_out, saved.shape())?;
        }
        let cache = take_cache(&mut self.cache, layer)?;
        let mut grad_in = Tensor::zeros(cache.shape());
        match &cache {
            Cache::Saved(saved) => kernel(
                layer,
                self.act.backward(
                    grad_in.as_slice_mut(),
                    grad_out.as_slice(),
                    saved.as_slice(),
                ),
            )?,
            Cache::Positive { bits, .. } => {
                relu_backward_bits(grad_in.as_slice_mut(), grad_out.as_slice(), bits)
            }
        }
        Ok(grad_in)
    }

    /// A ReLU runs fused after a BatchNorm or a residual sum.
    pub(crate) fn fusion_role(&self) -> Option<crate::fused::FusionRole<'static>> {
        matches!(self.act, Activation::Relu).then_some(crate::fused::FusionRole::ReLU)
    }

    pub(crate) fn fresh(&self) -> Self {
        ElementWise::new(self.act)
    }
}

/// Implements [`crate::Layer`] for a struct with an `inner: ElementWise`
/// field and a `NAME` constant.
macro_rules! elementwise_layer {
    ($ty:ident) => {
        impl $crate::layer::Layer for $ty {
            fn type_name(&self) -> &'static str {
                NAME
            }

            fn infer(&self, x: &Tensor) -> $crate::error::Result<Tensor> {
                Ok(self.inner.infer(x))
            }

            fn forward(&mut self, x: &Tensor) -> $crate::error::Result<Tensor> {
                Ok(self.inner.forward(x))
            }

            fn backward(&mut self, grad_out: &Tensor) -> $crate::error::Result<Tensor> {
                self.inner.backward(NAME, grad_out)
            }

            fn forward_owned(&mut self, x: Tensor) -> $crate::error::Result<Tensor> {
                Ok(self.inner.forward_owned(x))
            }

            fn infer_owned(&self, x: Tensor) -> $crate::error::Result<Tensor> {
                Ok(self.inner.infer_owned(x))
            }

            fn output_shape(&self, input_shape: &[usize]) -> $crate::error::Result<Vec<usize>> {
                Ok(input_shape.to_vec())
            }

            fn fusion_role(&self) -> Option<$crate::fused::FusionRole<'_>> {
                self.inner.fusion_role()
            }

            fn clone_boxed(&self) -> Option<Box<dyn $crate::layer::Layer>> {
                Some(Box::new($ty {
                    inner: self.inner.fresh(),
                }))
            }
        }
    };
}

pub(crate) use elementwise_layer;

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_tensor::kernels::activation::relu_backward;

    #[test]
    fn relu_bit_cache_gives_the_kernels_backward() {
        // Lengths around the 64-bit word and the task size; zeros, negative
        // values and NaN (whose ReLU output is NaN, not > 0).
        for len in [1, 63, 64, 65, WORDS_PER_TASK * 64 + 3] {
            let mut x: Vec<f32> = (0..len).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
            x[len / 2] = f32::NAN;
            let x = Tensor::from_vec(&[len], x).unwrap();
            let grad_out =
                Tensor::from_vec(&[len], (0..len).map(|i| i as f32 + 1.0).collect()).unwrap();
            for owned in [false, true] {
                let mut layer = ElementWise::new(Activation::Relu);
                let y = if owned {
                    layer.forward_owned(x.clone())
                } else {
                    layer.forward(&x)
                };
                let mut want = vec![0.0; len];
                relu_backward(&mut want, grad_out.as_slice(), y.as_slice()).unwrap();
                let got = layer.backward("ReLU", &grad_out).unwrap();
                assert_eq!(got.as_slice(), &want[..], "len {len}, owned {owned}");
                if len > 1 {
                    assert!(got.as_slice().contains(&0.0));
                    assert!(got.as_slice().iter().any(|&g| g != 0.0));
                }
                assert!(layer.backward("ReLU", &grad_out).is_err());
            }
        }
    }
}
