//! Select token: one token of every sequence (the class token).
//!
//! PyTorch equivalent: `x[:, 0]` in torchvision's `VisionTransformer`.
//! Shapes: `[N, T, ...]` -> `[N, ...]`.

use convnet_tensor::{numel, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache, tensor};

const NAME: &str = "SelectToken";

/// Keeps token `index` of every sequence and drops the others: the ViT's
/// head reads the class token only. Its backward sends the gradient to that
/// token and zero to the others.
///
/// PyTorch equivalent: `x[:, index]`.
///
/// # Shapes
///
/// - input: `[N, T, ...]` with `T > index`
/// - output: `[N, ...]`
///
/// ```
/// use convnet_layers::{Layer, SelectToken};
/// use convnet_tensor::Tensor;
///
/// let mut first = SelectToken::new(0);
/// let x = Tensor::from_vec(&[1, 3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(first.forward(&x)?.as_slice(), &[1.0, 2.0]);
/// let gx = first.backward(&Tensor::ones(&[1, 2]))?;
/// assert_eq!(gx.as_slice(), &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SelectToken {
    index: usize,
    /// The input shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl SelectToken {
    /// Keeps token `index` (0 for the class token).
    pub fn new(index: usize) -> Self {
        SelectToken { index, cache: None }
    }

    /// The kept token.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Errors unless the input has a token axis longer than `index`;
    /// returns the output shape.
    fn check(&self, shape: &[usize]) -> Result<Vec<usize>> {
        if shape.len() < 2 || shape[1] <= self.index {
            return Err(LayerError::input_shape(
                NAME,
                format!("[N, T, ...] with T > {}", self.index),
                shape,
            ));
        }
        let mut out = shape.to_vec();
        out.remove(1);
        Ok(out)
    }
}

impl Layer for SelectToken {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.check(x.shape())?;
        let (t, inner) = (x.shape()[1], numel(&x.shape()[2..]));
        let at = self.index * inner;
        let mut y = Vec::with_capacity(numel(&out));
        for sample in x.as_slice().chunks_exact(t * inner) {
            y.extend_from_slice(&sample[at..at + inner]);
        }
        Ok(tensor(&out, y))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.infer(x)?;
        self.cache = Some(x.shape().to_vec());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(s) = &self.cache {
            check_grad(NAME, grad_out, &self.check(s)?)?;
        }
        let shape = take_cache(&mut self.cache, NAME)?;
        let (t, inner) = (shape[1], numel(&shape[2..]));
        let at = self.index * inner;
        let mut gx = vec![0.0f32; numel(&shape)];
        for (sample, g) in gx
            .chunks_exact_mut(t * inner)
            .zip(grad_out.as_slice().chunks_exact(inner))
        {
            sample[at..at + inner].copy_from_slice(g);
        }
        Ok(tensor(&shape, gx))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(SelectToken::new(self.index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn gradient() {
        check_layer(&mut SelectToken::new(0), &random(&[2, 4, 3], 1));
        check_layer(&mut SelectToken::new(2), &random(&[2, 3, 2, 2], 2));
    }

    #[test]
    fn errors() {
        let mut s = SelectToken::new(3);
        assert!(s.infer(&Tensor::zeros(&[2, 3, 4])).is_err());
        assert!(s.output_shape(&[2]).is_err());
        assert_eq!(s.output_shape(&[2, 4, 5]).unwrap(), [2, 5]);
        assert!(s.backward(&Tensor::zeros(&[2, 5])).is_err());
        s.forward(&Tensor::zeros(&[2, 4, 5])).unwrap();
        assert!(s.backward(&Tensor::zeros(&[2, 4])).is_err());
    }
}
