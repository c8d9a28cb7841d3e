//! Identity: returns its input unchanged.
//!
//! PyTorch equivalent: `torch.nn.Identity()`. Shapes: any -> the same.

use convnet_tensor::Tensor;

use crate::error::Result;
use crate::layer::Layer;
use crate::util::{check_grad, take_cache};

const NAME: &str = "Identity";

/// Returns its input unchanged (a placeholder, e.g. a classifier head removed
/// for feature extraction).
///
/// PyTorch equivalent: `torch.nn.Identity`.
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Identity, Layer};
/// use convnet_tensor::Tensor;
/// let mut id = Identity::new();
/// let x = Tensor::arange(&[2, 3]);
/// assert_eq!(id.forward(&x)?, x);
/// assert_eq!(id.backward(&x)?, x);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The shape of the last `forward`'s input.
    cache: Option<Vec<usize>>,
}

impl Identity {
    /// The identity layer.
    pub fn new() -> Self {
        Identity { cache: None }
    }
}

impl Layer for Identity {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }

    fn infer_owned(&self, x: Tensor) -> Result<Tensor> {
        Ok(x)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.cache = Some(x.shape().to_vec());
        Ok(x.clone())
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(shape) = &self.cache {
            check_grad(NAME, grad_out, shape)?;
        }
        take_cache(&mut self.cache, NAME)?;
        Ok(grad_out.clone())
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Identity::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::LayerError;

    #[test]
    fn gradient_and_errors() {
        let mut id = Identity::new();
        assert!(matches!(
            id.backward(&Tensor::zeros(&[1])),
            Err(LayerError::NoCache { .. })
        ));
        check_layer(&mut id, &random(&[2, 3, 4], 0));
        id.forward(&Tensor::zeros(&[2])).unwrap();
        assert!(id.backward(&Tensor::zeros(&[3])).is_err());
        let x = random(&[3, 2], 1);
        assert_eq!(id.infer(&x).unwrap(), id.forward(&x).unwrap());
    }
}
