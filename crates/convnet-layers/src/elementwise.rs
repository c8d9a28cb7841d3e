//! The machinery shared by the element-wise activation layers ([`crate::ReLU`],
//! [`crate::Sigmoid`], [`crate::Tanh`], [`crate::GELU`]): they call the
//! kernels of `convnet_tensor::kernels::activation` and cache the tensor the
//! backward pass reads (the output for ReLU, Sigmoid and Tanh, the input for
//! GELU).

use convnet_tensor::kernels::activation::{Activation, Saved};
use convnet_tensor::Tensor;

use crate::error::Result;
use crate::util::{check_grad, kernel, take_cache};

/// An activation function and the cache of its last `forward`.
#[derive(Debug, Clone)]
pub(crate) struct ElementWise {
    pub(crate) act: Activation,
    /// The forward input or output, as `act.saves()` says.
    cache: Option<Tensor>,
}

impl ElementWise {
    pub(crate) fn new(act: Activation) -> Self {
        ElementWise { act, cache: None }
    }

    pub(crate) fn infer(&self, x: &Tensor) -> Tensor {
        self.act.apply(x)
    }

    pub(crate) fn forward(&mut self, x: &Tensor) -> Tensor {
        let y = self.act.apply(x);
        self.cache = Some(match self.act.saves() {
            Saved::Input => x.clone(),
            Saved::Output => y.clone(),
        });
        y
    }

    /// [`ElementWise::forward`] in place on an owned input: one copy (the
    /// cache) instead of two.
    pub(crate) fn forward_owned(&mut self, mut x: Tensor) -> Tensor {
        match self.act.saves() {
            Saved::Input => {
                let y = self.act.apply(&x);
                self.cache = Some(x);
                y
            }
            Saved::Output => {
                self.act.forward_inplace(x.as_slice_mut());
                self.cache = Some(x.clone());
                x
            }
        }
    }

    pub(crate) fn backward(&mut self, layer: &str, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(saved) = &self.cache {
            check_grad(layer, grad_out, saved.shape())?;
        }
        let saved = take_cache(&mut self.cache, layer)?;
        let mut grad_in = Tensor::zeros(saved.shape());
        kernel(
            layer,
            self.act.backward(
                grad_in.as_slice_mut(),
                grad_out.as_slice(),
                saved.as_slice(),
            ),
        )?;
        Ok(grad_in)
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

            fn output_shape(&self, input_shape: &[usize]) -> $crate::error::Result<Vec<usize>> {
                Ok(input_shape.to_vec())
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
