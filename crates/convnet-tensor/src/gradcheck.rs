//! Finite-difference gradient checking, shared by every backward test of the
//! workspace.
//!
//! The scalar loss used is `L(x) = Σ out(x) · r` for a fixed random `r`, so its
//! gradient with respect to `out` is `r` and every output element matters. The
//! numeric derivative is the central difference `(L(x+ε) − L(x−ε)) / 2ε`,
//! accumulated in f64; an analytic value passes when
//! `|a − n| ≤ atol + rtol · max(|a|, |n|)`.

use crate::rng::Rng;

/// Tolerances of a gradient check.
#[derive(Debug, Clone, Copy)]
pub struct GradCheck {
    /// Perturbation ε.
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Default for GradCheck {
    /// ε = 1e-2, rtol = 1e-2, atol = 1e-3: tight enough that a wrong gradient
    /// (a missing term, a transposed index, an off-by-one window) fails,
    /// loose enough for f32 forward passes.
    fn default() -> Self {
        GradCheck {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
        }
    }
}

/// A random projection vector `r` for the loss `Σ out · r`.
pub fn projection(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seed_from(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// `Σ out · r` in f64.
pub fn project(out: &[f32], r: &[f32]) -> f64 {
    assert_eq!(out.len(), r.len(), "projection length");
    out.iter().zip(r).map(|(&o, &w)| o as f64 * w as f64).sum()
}

/// Checks `analytic` (the gradient of `loss` at `x`) against central finite
/// differences of `loss`, element by element. `loss` is called with perturbed
/// copies of `x`. Returns a message naming the worst element on failure.
///
/// ```
/// use convnet_tensor::gradcheck::{check_gradient, GradCheck};
/// // L(x) = Σ x², dL/dx = 2x
/// let x = [0.5f32, -1.0, 2.0];
/// let good = [1.0f32, -2.0, 4.0];
/// let loss = |v: &[f32]| v.iter().map(|&a| (a as f64) * (a as f64)).sum::<f64>();
/// assert!(check_gradient(loss, &x, &good, GradCheck::default()).is_ok());
/// let bad = [1.0f32, -2.0, 3.9];
/// assert!(check_gradient(loss, &x, &bad, GradCheck::default()).is_err());
/// ```
pub fn check_gradient(
    mut loss: impl FnMut(&[f32]) -> f64,
    x: &[f32],
    analytic: &[f32],
    cfg: GradCheck,
) -> Result<(), String> {
    if x.len() != analytic.len() {
        return Err(format!(
            "gradient has {} elements, input has {}",
            analytic.len(),
            x.len()
        ));
    }
    let mut xp = x.to_vec();
    let mut worst: Option<(usize, f64, f64, f64)> = None;
    for i in 0..x.len() {
        let orig = xp[i];
        xp[i] = (orig as f64 + cfg.eps) as f32;
        let up_step = xp[i] as f64 - orig as f64;
        let lp = loss(&xp);
        xp[i] = (orig as f64 - cfg.eps) as f32;
        let down_step = orig as f64 - xp[i] as f64;
        let lm = loss(&xp);
        xp[i] = orig;
        let numeric = (lp - lm) / (up_step + down_step);
        let a = analytic[i] as f64;
        let err = (a - numeric).abs();
        let allowed = cfg.atol + cfg.rtol * a.abs().max(numeric.abs());
        if err > allowed {
            let excess = err / allowed;
            if worst.is_none_or(|w| excess > w.3) {
                worst = Some((i, a, numeric, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, a, n, _)) => Err(format!(
            "gradient mismatch at element {i}: analytic {a:.6}, numeric {n:.6} (eps {}, rtol {}, atol {})",
            cfg.eps, cfg.rtol, cfg.atol
        )),
    }
}
