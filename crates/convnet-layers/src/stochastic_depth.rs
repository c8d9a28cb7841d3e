//! Stochastic depth ("drop path"): in training, drops a residual branch for
//! whole samples (or for the whole batch) and rescales the survivors.
//!
//! PyTorch equivalent: `torchvision.ops.StochasticDepth(p, mode)` (ConvNeXt's
//! blocks use `mode="row"`). Shapes: any `[N, ...]` -> the same.

use convnet_tensor::{Rng, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::util::{check_grad, take_cache, tensor};

const NAME: &str = "StochasticDepth";

/// What [`StochasticDepth`] drops together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropMode {
    /// One draw per sample (axis 0): torchvision's `"row"`.
    Row,
    /// One draw for the whole batch: torchvision's `"batch"`.
    Batch,
}

/// Stochastic depth (Huang et al., 2016), applied to the output of a
/// residual branch before it is added to the shortcut.
///
/// In [`Layer::forward`], each sample ([`DropMode::Row`]) or the whole batch
/// ([`DropMode::Batch`]) is kept with probability `1 − p` and then scaled by
/// `1 / (1 − p)`, or zeroed; with `p = 1` everything is zeroed (as
/// torchvision). [`Layer::infer`] is the identity, and so is `forward` when
/// `p = 0` (without drawing from the generator). The generator is seeded at
/// construction and visited by [`Layer::visit_rngs_mut`].
///
/// PyTorch equivalent: `torchvision.ops.StochasticDepth(p, mode)`.
///
/// # Shapes
///
/// - input: `[N, ...]` (at least one axis)
/// - output: the same
///
/// ```
/// use convnet_layers::{DropMode, Layer, StochasticDepth};
/// use convnet_tensor::Tensor;
///
/// let mut sd = StochasticDepth::with_seed(0.5, DropMode::Row, 7)?;
/// let x = Tensor::ones(&[64, 3, 2, 2]);
/// let y = sd.forward(&x)?;
/// // Every sample is all zeros or all 2 = 1 / (1 - 0.5).
/// for sample in y.as_slice().chunks(12) {
///     assert!(sample.iter().all(|&v| v == sample[0]) && (sample[0] == 0.0 || sample[0] == 2.0));
/// }
/// assert_eq!(sd.backward(&x)?, y); // the same mask
/// assert_eq!(sd.infer(&x)?, x);
/// assert!(StochasticDepth::with_seed(1.5, DropMode::Row, 0).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct StochasticDepth {
    p: f32,
    mode: DropMode,
    rng: Rng,
    /// The input shape of the last `forward` and its per-sample factors
    /// (`0` or `1 / (1 − p)`).
    cache: Option<(Vec<usize>, Vec<f32>)>,
}

impl Clone for StochasticDepth {
    /// A copy with the same probability, mode and generator state, without
    /// the cache of the last `forward`.
    fn clone(&self) -> Self {
        StochasticDepth {
            p: self.p,
            mode: self.mode,
            rng: self.rng.clone(),
            cache: None,
        }
    }
}

impl StochasticDepth {
    /// Drop probability `p` in `[0, 1]`, the generator seeded from the next
    /// value of `rng`.
    pub fn new(p: f32, mode: DropMode, rng: &mut Rng) -> Result<Self> {
        Self::with_seed(p, mode, rng.next_u64())
    }

    /// Drop probability `p` in `[0, 1]` and a generator seeded with `seed`.
    pub fn with_seed(p: f32, mode: DropMode, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(LayerError::config(
                NAME,
                format!("p must be in [0, 1], got {p}"),
            ));
        }
        Ok(StochasticDepth {
            p,
            mode,
            rng: Rng::seed_from(seed),
            cache: None,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Row or batch mode.
    pub fn mode(&self) -> DropMode {
        self.mode
    }

    /// The scale of one draw: `1 / (1 − p)` if kept, `0` if dropped.
    fn draw(&mut self) -> f32 {
        let survival = 1.0 - self.p as f64;
        if self.rng.bernoulli(survival) {
            (1.0 / survival) as f32
        } else {
            0.0
        }
    }

    fn check(shape: &[usize]) -> Result<usize> {
        match shape.first() {
            Some(&n) => Ok(n),
            None => Err(LayerError::input_shape(NAME, "[N, ...]", shape)),
        }
    }
}

/// `out[i, ...] = x[i, ...] · factors[i]`.
fn scale_rows(x: &[f32], factors: &[f32]) -> Vec<f32> {
    if factors.is_empty() {
        return x.to_vec();
    }
    let per_row = x.len() / factors.len();
    let mut out = x.to_vec();
    if per_row == 0 {
        return out;
    }
    for (row, &f) in out.chunks_exact_mut(per_row).zip(factors) {
        row.iter_mut().for_each(|v| *v *= f);
    }
    out
}

impl Layer for StochasticDepth {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Self::check(x.shape())?;
        Ok(x.clone())
    }

    fn infer_owned(&self, x: Tensor) -> Result<Tensor> {
        Self::check(x.shape())?;
        Ok(x)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let n = Self::check(x.shape())?;
        let factors = if self.p == 0.0 {
            vec![1.0; n]
        } else {
            match self.mode {
                DropMode::Row => (0..n).map(|_| self.draw()).collect(),
                DropMode::Batch => vec![self.draw(); n],
            }
        };
        let y = scale_rows(x.as_slice(), &factors);
        self.cache = Some((x.shape().to_vec(), factors));
        Ok(tensor(x.shape(), y))
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some((shape, _)) = &self.cache {
            check_grad(NAME, grad_out, shape)?;
        }
        let (shape, factors) = take_cache(&mut self.cache, NAME)?;
        Ok(tensor(&shape, scale_rows(grad_out.as_slice(), &factors)))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Self::check(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        f(prefix, &mut self.rng)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn gradient_with_a_fixed_draw() {
        for mode in [DropMode::Row, DropMode::Batch] {
            let mut sd = StochasticDepth::with_seed(0.4, mode, 3).unwrap();
            check_layer(&mut sd, &random(&[6, 2, 3], 0));
        }
    }

    #[test]
    fn rows_are_dropped_at_rate_p_and_rescaled() {
        let mut sd = StochasticDepth::with_seed(0.3, DropMode::Row, 11).unwrap();
        let x = Tensor::ones(&[20_000, 2]);
        let y = sd.forward(&x).unwrap();
        let rows: Vec<&[f32]> = y.as_slice().chunks(2).collect();
        assert!(rows.iter().all(|r| r[0] == r[1]), "a row is dropped whole");
        let dropped = rows.iter().filter(|r| r[0] == 0.0).count() as f64 / 20_000.0;
        assert!((dropped - 0.3).abs() < 0.015, "{dropped}");
        let kept = rows.iter().find(|r| r[0] != 0.0).unwrap()[0];
        assert!((kept - 1.0 / 0.7).abs() < 1e-6);
        assert!((y.mean() - 1.0).abs() < 0.03, "the expectation is kept");
        // Batch mode: one draw for everyone.
        let mut b = StochasticDepth::with_seed(0.5, DropMode::Batch, 1).unwrap();
        for _ in 0..10 {
            let y = b.forward(&x).unwrap();
            let first = y.as_slice()[0];
            assert!(y.as_slice().iter().all(|&v| v == first));
        }
    }

    #[test]
    fn edge_probabilities_seeds_and_errors() {
        let x = random(&[4, 3], 2);
        let mut zero = StochasticDepth::with_seed(0.0, DropMode::Row, 5).unwrap();
        let before = zero.rng.clone();
        assert_eq!(zero.forward(&x).unwrap(), x);
        assert_eq!(zero.rng, before, "p = 0 draws nothing");
        let mut one = StochasticDepth::with_seed(1.0, DropMode::Row, 5).unwrap();
        assert!(one
            .forward(&x)
            .unwrap()
            .as_slice()
            .iter()
            .all(|&v| v == 0.0));
        let mut a = StochasticDepth::with_seed(0.5, DropMode::Row, 9).unwrap();
        let mut b = StochasticDepth::with_seed(0.5, DropMode::Row, 9).unwrap();
        let big = Tensor::ones(&[64, 2]);
        assert_eq!(a.forward(&big).unwrap(), b.forward(&big).unwrap());
        let mut names = Vec::new();
        a.visit_rngs_mut("features.1.0.stochastic_depth", &mut |n, _| {
            names.push(n.to_string())
        });
        assert_eq!(names, ["features.1.0.stochastic_depth"]);
        for p in [-0.1, 1.1, f32::NAN] {
            assert!(
                StochasticDepth::with_seed(p, DropMode::Row, 0).is_err(),
                "{p}"
            );
        }
        assert!(a.infer(&Tensor::scalar(1.0)).is_err());
        let mut c = StochasticDepth::with_seed(0.5, DropMode::Row, 0).unwrap();
        assert!(matches!(c.backward(&x), Err(LayerError::NoCache { .. })));
        c.forward(&x).unwrap();
        assert!(c.backward(&random(&[4, 2], 0)).is_err());
    }
}
