//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`.

use convnet_layers::Layer;

use crate::error::{Result, TrainError};

/// Scales every parameter gradient of `model` by `max_norm / norm` when the
/// global L2 norm `norm` of all gradients together exceeds `max_norm`, and
/// returns `norm` (before clipping). The norm is accumulated in f64 in the
/// model's visiting order, so it is the same on every run. A non-finite norm
/// is returned as is and nothing is scaled.
///
/// ```
/// use convnet_layers::{Layer, Param};
/// # use convnet_layers::{visit_param_mut, Result};
/// # use convnet_tensor::Tensor;
/// # #[derive(Debug)] struct W(Param);
/// # impl Layer for W {
/// #     fn type_name(&self) -> &'static str { "W" }
/// #     fn infer(&self, x: &Tensor) -> Result<Tensor> { Ok(x.clone()) }
/// #     fn forward(&mut self, x: &Tensor) -> Result<Tensor> { Ok(x.clone()) }
/// #     fn backward(&mut self, g: &Tensor) -> Result<Tensor> { Ok(g.clone()) }
/// #     fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> { Ok(s.to_vec()) }
/// #     fn visit_params(&self, _: &str, f: &mut dyn FnMut(&str, &Param)) { f("w", &self.0) }
/// #     fn visit_params_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, &mut Param)) {
/// #         visit_param_mut(p, "w", &mut self.0, f)
/// #     }
/// # }
/// use convnet_train::clip::clip_grad_norm;
/// let mut m = W(Param::new(Tensor::zeros(&[2])));
/// m.0.grad = Tensor::from_vec(&[2], vec![3.0, 4.0]).unwrap();
/// let norm = clip_grad_norm(&mut m, 1.0).unwrap();
/// assert_eq!(norm, 5.0);
/// assert!((m.0.grad.as_slice()[0] - 0.6).abs() < 1e-6);
/// ```
pub fn clip_grad_norm(model: &mut dyn Layer, max_norm: f32) -> Result<f32> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(TrainError::Config(format!(
            "gradient clipping: max_norm must be > 0, got {max_norm}"
        )));
    }
    let mut sq = 0.0f64;
    model.visit_params("", &mut |_, p| {
        sq += p
            .grad
            .as_slice()
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>();
    });
    let norm = sq.sqrt() as f32;
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        model.visit_params_mut("", &mut |_, p| {
            for g in p.grad.as_slice_mut() {
                *g *= scale;
            }
        });
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TinyModel;

    #[test]
    fn clips_only_above_the_threshold() {
        let mut m = TinyModel::new(&[4], 0.0);
        m.visit_params_mut("", &mut |_, p| p.grad.fill(1.0)); // norm 2
        assert_eq!(clip_grad_norm(&mut m, 5.0).unwrap(), 2.0);
        m.visit_params("", &mut |_, p| assert_eq!(p.grad.as_slice(), &[1.0; 4]));
        assert_eq!(clip_grad_norm(&mut m, 1.0).unwrap(), 2.0);
        let mut after = 0.0;
        m.visit_params("", &mut |_, p| {
            after = p.grad.as_slice().iter().map(|g| g * g).sum::<f32>()
        });
        assert!((after.sqrt() - 1.0).abs() < 1e-5, "{after}");
        assert!(clip_grad_norm(&mut m, 0.0).is_err());
    }
}
