//! Position embedding: a learned tensor added to every sequence of tokens.
//!
//! PyTorch equivalent: `x + self.pos_embedding` in torchvision's ViT
//! `Encoder`. Shapes: `[N, T, D]` -> the same.

use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::param::Param;
use crate::util::{check_grad, take_cache};

const NAME: &str = "PositionEmbedding";

/// `y = x + pos`, `pos` (`[1, T, D]`) learned and broadcast over the batch:
/// a sequence of exactly `T` tokens of width `D` (the number of patches of
/// the image size the model is built for, plus the class token).
///
/// The parameter is named `pos_embedding` (torchvision);
/// [`PositionEmbedding::with_param_name`] renames it.
///
/// PyTorch equivalent: `input + self.pos_embedding` in torchvision's
/// `Encoder.forward`.
///
/// # Shapes
///
/// - input: `[N, T, D]`
/// - output: the same
///
/// ```
/// use convnet_layers::{Layer, PositionEmbedding};
/// use convnet_tensor::Tensor;
///
/// let pos = Tensor::from_vec(&[1, 2, 1], vec![10.0, 20.0])?;
/// let mut layer = PositionEmbedding::from_tensor(pos)?;
/// let y = layer.forward(&Tensor::ones(&[3, 2, 1]))?;
/// assert_eq!(y.as_slice(), &[11.0, 21.0, 11.0, 21.0, 11.0, 21.0]);
/// layer.backward(&Tensor::ones(&[3, 2, 1]))?;
/// assert_eq!(layer.pos.grad.as_slice(), &[3.0, 3.0]); // summed over the batch
/// assert!(layer.infer(&Tensor::ones(&[3, 5, 1])).is_err()); // learned for 2 tokens
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PositionEmbedding {
    /// `[1, T, D]`.
    pub pos: Param,
    param_name: String,
    /// The batch size of the last `forward`.
    cache: Option<usize>,
}

impl PositionEmbedding {
    /// A position embedding with the given initial value, `[1, T, D]`.
    pub fn from_tensor(pos: Tensor) -> Result<Self> {
        if !matches!(pos.shape(), [1, t, d] if *t > 0 && *d > 0) {
            return Err(LayerError::config(
                NAME,
                format!(
                    "the embedding must be [1, T, D] with T, D >= 1, got {:?}",
                    pos.shape()
                ),
            ));
        }
        Ok(PositionEmbedding {
            pos: Param::new(pos),
            param_name: "pos_embedding".to_string(),
            cache: None,
        })
    }

    /// Renames the parameter (default `pos_embedding`).
    pub fn with_param_name(mut self, name: impl Into<String>) -> Self {
        self.param_name = name.into();
        self
    }

    /// Errors unless the input is `[N, T, D]` as learned; returns `N`.
    fn check(&self, shape: &[usize]) -> Result<usize> {
        let (t, d) = (self.pos.shape()[1], self.pos.shape()[2]);
        match *shape {
            [n, tt, dd] if tt == t && dd == d => Ok(n),
            _ => Err(LayerError::input_shape(
                NAME,
                format!("[N, {t}, {d}] (the embedding is learned for {t} tokens)"),
                shape,
            )),
        }
    }

    fn add_into(&self, y: &mut [f32]) {
        let pos = self.pos.value.as_slice();
        for sample in y.chunks_exact_mut(pos.len()) {
            for (v, &p) in sample.iter_mut().zip(pos) {
                *v += p;
            }
        }
    }
}

impl Layer for PositionEmbedding {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x.shape())?;
        let mut y = x.clone();
        self.add_into(y.as_slice_mut());
        Ok(y)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.forward_owned(x.clone())
    }

    fn forward_owned(&mut self, mut x: Tensor) -> Result<Tensor> {
        let n = self.check(x.shape())?;
        self.add_into(x.as_slice_mut());
        self.cache = Some(n);
        Ok(x)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(n) = self.cache {
            let mut shape = self.pos.shape().to_vec();
            shape[0] = n;
            check_grad(NAME, grad_out, &shape)?;
        }
        take_cache(&mut self.cache, NAME)?;
        let g_pos = self.pos.grad.as_slice_mut();
        for sample in grad_out.as_slice().chunks_exact(g_pos.len()) {
            for (acc, &g) in g_pos.iter_mut().zip(sample) {
                *acc += g;
            }
        }
        Ok(grad_out.clone())
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, &self.param_name, &self.pos, f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, &self.param_name, &mut self.pos, f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(PositionEmbedding {
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
    fn gradient() {
        let mut layer = PositionEmbedding::from_tensor(random(&[1, 4, 3], 1)).unwrap();
        check_layer(&mut layer, &random(&[2, 4, 3], 2));
    }

    #[test]
    fn errors_and_names() {
        assert!(PositionEmbedding::from_tensor(Tensor::zeros(&[2, 4, 3])).is_err());
        assert!(PositionEmbedding::from_tensor(Tensor::zeros(&[1, 0, 3])).is_err());
        let mut layer = PositionEmbedding::from_tensor(Tensor::zeros(&[1, 4, 3]))
            .unwrap()
            .with_param_name("pos_embed");
        assert_eq!(
            layer.param_shapes(),
            [("pos_embed".to_string(), vec![1, 4, 3])]
        );
        let e = layer.infer(&Tensor::zeros(&[2, 5, 3])).unwrap_err();
        assert!(e.to_string().contains("[N, 4, 3]"), "{e}");
        assert!(layer.backward(&Tensor::zeros(&[2, 4, 3])).is_err());
        layer.forward(&Tensor::zeros(&[2, 4, 3])).unwrap();
        assert!(layer.backward(&Tensor::zeros(&[3, 4, 3])).is_err());
    }
}
