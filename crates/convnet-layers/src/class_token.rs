//! Class token: a learned token prepended to a sequence of tokens.
//!
//! PyTorch equivalent: the `class_token` of torchvision's
//! `VisionTransformer` (`torch.cat([class_token.expand(n, -1, -1), x],
//! dim=1)`). Shapes: `[N, T, D]` -> `[N, T + 1, D]`.

use convnet_tensor::Tensor;

use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::param::Param;
use crate::util::{check_grad, take_cache, tensor};

const NAME: &str = "ClassToken";

/// Prepends a learned token (`[1, 1, D]`) to every sequence of the batch:
/// the token the ViT's head reads after the encoder.
///
/// The parameter is named `class_token` (torchvision);
/// [`ClassToken::with_param_name`] renames it (timm's `cls_token`). It
/// starts at zero, as in torchvision.
///
/// PyTorch equivalent: `torch.cat([self.class_token.expand(n, -1, -1), x],
/// dim=1)` in torchvision's `VisionTransformer.forward`.
///
/// # Shapes
///
/// - input: `[N, T, D]`
/// - output: `[N, T + 1, D]`, token 0 being the class token
///
/// ```
/// use convnet_layers::{ClassToken, Layer};
/// use convnet_tensor::Tensor;
///
/// let mut cls = ClassToken::new(2)?;
/// cls.token.value = Tensor::from_vec(&[1, 1, 2], vec![7.0, 8.0])?;
/// let y = cls.forward(&Tensor::ones(&[3, 4, 2]))?;
/// assert_eq!(y.shape(), &[3, 5, 2]);
/// assert_eq!(&y.as_slice()[..4], &[7.0, 8.0, 1.0, 1.0]);
/// let gx = cls.backward(&Tensor::ones(&[3, 5, 2]))?;
/// assert_eq!(gx.shape(), &[3, 4, 2]);
/// assert_eq!(cls.token.grad.as_slice(), &[3.0, 3.0]); // summed over the batch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClassToken {
    /// `[1, 1, D]`.
    pub token: Param,
    param_name: String,
    /// The input shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl ClassToken {
    /// A zero class token of width `dim`.
    pub fn new(dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(LayerError::config(NAME, "dim must be >= 1, got 0"));
        }
        Ok(ClassToken {
            token: Param::new(Tensor::zeros(&[1, 1, dim])),
            param_name: "class_token".to_string(),
            cache: None,
        })
    }

    /// Renames the parameter (default `class_token`).
    pub fn with_param_name(mut self, name: impl Into<String>) -> Self {
        self.param_name = name.into();
        self
    }

    /// Errors unless the input is `[N, T, D]`; returns `(n, t, d)`.
    fn check(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        let d = self.token.shape()[2];
        match *shape {
            [n, t, dd] if dd == d => Ok((n, t, d)),
            _ => Err(LayerError::input_shape(NAME, format!("[N, T, {d}]"), shape)),
        }
    }
}

impl Layer for ClassToken {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let (n, t, d) = self.check(x.shape())?;
        let mut y = Vec::with_capacity(n * (t + 1) * d);
        for sample in x.as_slice().chunks_exact(t * d) {
            y.extend_from_slice(self.token.value.as_slice());
            y.extend_from_slice(sample);
        }
        Ok(tensor(&[n, t + 1, d], y))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.infer(x)?;
        self.cache = Some(x.shape().to_vec());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(s) = &self.cache {
            check_grad(NAME, grad_out, &[s[0], s[1] + 1, s[2]])?;
        }
        let shape = take_cache(&mut self.cache, NAME)?;
        let (t, d) = (shape[1], shape[2]);
        let g_token = self.token.grad.as_slice_mut();
        let mut gx = Vec::with_capacity(grad_out.len() - shape[0] * d);
        for sample in grad_out.as_slice().chunks_exact((t + 1) * d) {
            for (acc, &g) in g_token.iter_mut().zip(&sample[..d]) {
                *acc += g;
            }
            gx.extend_from_slice(&sample[d..]);
        }
        Ok(tensor(&shape, gx))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (n, t, d) = self.check(input_shape)?;
        Ok(vec![n, t + 1, d])
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, &self.param_name, &self.token, f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, &self.param_name, &mut self.token, f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(ClassToken {
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
        let mut cls = ClassToken::new(3).unwrap();
        cls.token.value = random(&[1, 1, 3], 1);
        check_layer(&mut cls, &random(&[2, 4, 3], 2));
    }

    #[test]
    fn errors_and_names() {
        assert!(ClassToken::new(0).is_err());
        let mut cls = ClassToken::new(3).unwrap().with_param_name("cls_token");
        assert_eq!(
            cls.param_shapes(),
            [("cls_token".to_string(), vec![1, 1, 3])]
        );
        let e = cls.infer(&Tensor::zeros(&[2, 4, 5])).unwrap_err();
        assert!(e.to_string().contains("[N, T, 3]"), "{e}");
        assert!(cls.output_shape(&[2, 3]).is_err());
        assert!(cls.backward(&Tensor::zeros(&[2, 5, 3])).is_err());
        cls.forward(&Tensor::zeros(&[2, 4, 3])).unwrap();
        assert!(cls.backward(&Tensor::zeros(&[2, 4, 3])).is_err());
    }
}
