//! Dropout: in training, zeroes each element with probability `p` and scales
//! the others by `1 / (1 − p)` (inverted dropout); the identity in inference.
//!
//! PyTorch equivalent: `torch.nn.Dropout(p=0.5)`. Shapes: any -> the same.

use convnet_tensor::{Rng, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache, tensor};

const NAME: &str = "Dropout";

/// Inverted dropout with its own seeded generator.
///
/// In [`Layer::forward`] each element is kept with probability `1 − p` and
/// scaled by `1 / (1 − p)`, so that the expected output equals the input;
/// [`Layer::infer`] is the identity. The generator is seeded at construction
/// and visited by [`Layer::visit_rngs_mut`] under the layer's prefix, so a
/// checkpoint can save it and training can resume with the same masks.
///
/// PyTorch equivalent: `torch.nn.Dropout(p)` (AlexNet and VGG classifiers).
///
/// # Shapes
///
/// Any shape -> the same shape.
///
/// ```
/// use convnet_layers::{Dropout, Layer};
/// use convnet_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed_from(0);
/// let mut drop = Dropout::new(0.5, &mut rng)?;
/// let x = Tensor::ones(&[4, 100]);
/// let y = drop.forward(&x)?;
/// // every element is 0 or 1 / (1 - 0.5) = 2
/// assert!(y.as_slice().iter().all(|&v| v == 0.0 || v == 2.0));
/// assert_eq!(drop.infer(&x)?, x); // identity in inference
/// assert!(Dropout::new(1.0, &mut rng).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f32,
    rng: Rng,
    /// The multipliers (0 or `1 / (1 − p)`) of the last `forward`.
    cache: Option<Tensor>,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)`, its generator seeded from the
    /// next value of `rng`.
    pub fn new(p: f32, rng: &mut Rng) -> Result<Self> {
        Self::with_seed(p, rng.next_u64())
    }

    /// Dropout with probability `p` in `[0, 1)` and a generator seeded with
    /// `seed`.
    pub fn with_seed(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(LayerError::config(
                NAME,
                format!("p must be in [0, 1), got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            rng: Rng::seed_from(seed),
            cache: None,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Layer for Dropout {
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
        let scale = 1.0 / (1.0 - self.p);
        let p = self.p;
        let mask: Vec<f32> = (0..x.len())
            .map(|_| if self.rng.next_f32() < p { 0.0 } else { scale })
            .collect();
        let y: Vec<f32> = x.as_slice().iter().zip(&mask).map(|(a, m)| a * m).collect();
        self.cache = Some(tensor(x.shape(), mask));
        Ok(tensor(x.shape(), y))
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(mask) = &self.cache {
            check_grad(NAME, grad_out, mask.shape())?;
        }
        let mut mask = take_cache(&mut self.cache, NAME)?;
        for (m, g) in mask.as_slice_mut().iter_mut().zip(grad_out.as_slice()) {
            *m *= g;
        }
        Ok(mask)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        f(prefix, &mut self.rng)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Dropout {
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
    fn gradient_with_fixed_mask() {
        let mut d = Dropout::with_seed(0.3, 7).unwrap();
        check_layer(&mut d, &random(&[3, 4, 2], 0));
    }

    #[test]
    fn rate_seed_and_identity() {
        let mut a = Dropout::with_seed(0.25, 1).unwrap();
        let mut b = Dropout::with_seed(0.25, 1).unwrap();
        let x = Tensor::ones(&[10_000]);
        let ya = a.forward(&x).unwrap();
        assert_eq!(ya, b.forward(&x).unwrap(), "same seed, same mask");
        let dropped = ya.as_slice().iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        assert!((dropped - 0.25).abs() < 0.02, "{dropped}");
        assert!(
            (ya.mean() - 1.0).abs() < 0.03,
            "inverted scaling keeps the mean"
        );
        assert_ne!(ya, a.forward(&x).unwrap(), "the generator advances");
        assert_eq!(a.infer(&x).unwrap(), x);
        let mut names = Vec::new();
        a.visit_rngs_mut("classifier.0", &mut |n, _| names.push(n.to_string()));
        assert_eq!(names, ["classifier.0"]);
        let mut zero = Dropout::with_seed(0.0, 1).unwrap();
        assert_eq!(zero.forward(&x).unwrap(), x);
    }

    #[test]
    fn bad_config_and_no_cache() {
        for p in [-0.1, 1.0, 1.5, f32::NAN] {
            assert!(Dropout::with_seed(p, 0).is_err(), "{p}");
        }
        let mut d = Dropout::with_seed(0.5, 0).unwrap();
        assert!(d.backward(&Tensor::zeros(&[2])).is_err());
        d.forward(&Tensor::zeros(&[2])).unwrap();
        assert!(d.backward(&Tensor::zeros(&[3])).is_err());
    }
}
