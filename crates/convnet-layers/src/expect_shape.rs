//! Expect shape: the identity, for inputs of one shape only.
//!
//! PyTorch equivalent: the `torch._assert(h == self.image_size, ...)` of
//! torchvision's `VisionTransformer._process_input`. Shapes: any matching
//! shape -> the same.

use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache};

const NAME: &str = "ExpectShape";

/// Passes its input through unchanged if it has the expected shape, and
/// errors otherwise: a model whose later layers would accept a wrong input
/// silently (a ViT's patch embedding accepts a 32×32 image on a model
/// learned for 28×28, dropping the last pixels) states what it was built
/// for. `None` accepts any size on that axis (the batch).
///
/// PyTorch equivalent: `torch._assert(x.shape[...] == ..., message)`.
///
/// # Shapes
///
/// - input: the expected shape
/// - output: the same
///
/// ```
/// use convnet_layers::{ExpectShape, Layer};
/// use convnet_tensor::Tensor;
///
/// let check = ExpectShape::new(&[None, Some(1), Some(28), Some(28)])
///     .because("the position embedding is learned for this size");
/// assert!(check.infer(&Tensor::zeros(&[2, 1, 28, 28])).is_ok());
/// let e = check.infer(&Tensor::zeros(&[2, 1, 32, 32])).unwrap_err().to_string();
/// assert!(e.contains("[N, 1, 28, 28]") && e.contains("learned"), "{e}");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ExpectShape {
    dims: Vec<Option<usize>>,
    reason: String,
    /// The shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl ExpectShape {
    /// Accepts inputs of `dims.len()` axes whose sizes equal the given
    /// ones (`None`: any size).
    pub fn new(dims: &[Option<usize>]) -> Self {
        ExpectShape {
            dims: dims.to_vec(),
            reason: String::new(),
            cache: None,
        }
    }

    /// Adds why that shape is required to the error message.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    fn check(&self, shape: &[usize]) -> Result<()> {
        let ok = shape.len() == self.dims.len()
            && self
                .dims
                .iter()
                .zip(shape)
                .all(|(d, &s)| d.is_none_or(|d| d == s));
        if ok {
            return Ok(());
        }
        let dims: Vec<String> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(d) => d.to_string(),
                None if i == 0 => "N".to_string(),
                None => "_".to_string(),
            })
            .collect();
        let mut expected = format!("[{}]", dims.join(", "));
        if !self.reason.is_empty() {
            expected = format!("{expected} ({})", self.reason);
        }
        Err(LayerError::input_shape(NAME, expected, shape))
    }
}

impl Layer for ExpectShape {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x.shape())?;
        Ok(x.clone())
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.forward_owned(x.clone())
    }

    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        self.check(x.shape())?;
        self.cache = Some(x.shape().to_vec());
        Ok(x)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(s) = &self.cache {
            check_grad(NAME, grad_out, s)?;
        }
        take_cache(&mut self.cache, NAME)?;
        Ok(grad_out.clone())
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(ExpectShape {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn gradient_is_the_identity() {
        check_layer(&mut ExpectShape::new(&[None, Some(3)]), &random(&[2, 3], 1));
    }

    #[test]
    fn errors() {
        let mut e = ExpectShape::new(&[None, Some(3), None]);
        assert!(e.output_shape(&[5, 3, 7]).is_ok());
        let msg = e.infer(&Tensor::zeros(&[2, 4, 1])).unwrap_err().to_string();
        assert!(msg.contains("[N, 3, _]"), "{msg}");
        assert!(e.output_shape(&[2, 3]).is_err());
        assert!(e.backward(&Tensor::zeros(&[2, 3, 1])).is_err());
        e.forward(&Tensor::zeros(&[2, 3, 1])).unwrap();
        assert!(e.backward(&Tensor::zeros(&[2, 3, 2])).is_err());
    }
}
