//! Loss functions: cross-entropy from logits and mean squared error, and
//! the training loss of a model with auxiliary heads ([`training_loss`]).
//!
//! Each returns the scalar loss (the mean over the batch, as PyTorch's default
//! `reduction="mean"`) together with its gradient with respect to the input,
//! ready for `model.backward`.

use convnet_layers::Layer;
use convnet_tensor::Tensor;

use crate::error::{Result, TrainError};

/// A loss value and the gradient of that loss with respect to the predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The mean loss over the batch.
    pub loss: f32,
    /// `d loss / d input`, shaped like the input.
    pub grad: Tensor,
}

/// Cross-entropy of `logits` (`[N, C]`, unnormalised scores) against class
/// indices `labels` (`N` values in `0..C`), averaged over the batch.
///
/// Computed with a numerically stable log-softmax (the row maximum is
/// subtracted before exponentiating), so large logits never overflow.
/// With `label_smoothing = ε > 0` the target is `(1 − ε)·onehot + ε/C`, as
/// PyTorch's `F.cross_entropy(logits, labels, label_smoothing=ε)`.
///
/// The gradient is `(softmax(logits) − target) / N`.
///
/// ```
/// use convnet_tensor::Tensor;
/// use convnet_train::loss::cross_entropy;
/// let logits = Tensor::from_vec(&[2, 3], vec![2.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
/// let out = cross_entropy(&logits, &[0, 2], 0.0).unwrap();
/// // row 0: -log(e²/(e²+2)), row 1: -log(1/3)
/// let expected = ((1.0 + 2.0 * (-2.0f32).exp()).ln() + 3.0f32.ln()) / 2.0;
/// assert!((out.loss - expected).abs() < 1e-6);
/// assert_eq!(out.grad.shape(), &[2, 3]);
/// assert!(cross_entropy(&logits, &[0, 3], 0.0).is_err()); // label out of range
/// ```
pub fn cross_entropy(
    logits: &Tensor,
    labels: &[usize],
    label_smoothing: f32,
) -> Result<LossOutput> {
    let (n, c) = check_logits("cross_entropy", logits, labels)?;
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(TrainError::invalid(
            "cross_entropy",
            format!("label_smoothing must be in [0, 1), got {label_smoothing}"),
        ));
    }
    let mut grad = Tensor::zeros(&[n, c]);
    let inv_n = 1.0 / n as f32;
    let off = label_smoothing / c as f32;
    let on = 1.0 - label_smoothing + off;
    let mut total = 0.0f64;
    for ((row, g), &label) in logits
        .as_slice()
        .chunks_exact(c)
        .zip(grad.as_slice_mut().chunks_exact_mut(c))
        .zip(labels)
    {
        // log_softmax(x)_j = x_j - max - log Σ exp(x_k - max)
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (gj, &x) in g.iter_mut().zip(row) {
            let e = (x - max).exp();
            *gj = e;
            sum += e;
        }
        let log_sum = sum.ln();
        let inv_sum = 1.0 / sum;
        // loss_row = -Σ_j q_j log p_j
        let mut row_loss = 0.0f32;
        for (j, (gj, &x)) in g.iter_mut().zip(row).enumerate() {
            let log_p = x - max - log_sum;
            let q = if j == label { on } else { off };
            if q != 0.0 {
                row_loss -= q * log_p;
            }
            *gj = (*gj * inv_sum - q) * inv_n;
        }
        total += row_loss as f64;
    }
    Ok(LossOutput {
        loss: (total / n as f64) as f32,
        grad,
    })
}

/// Mean squared error `mean((pred − target)²)` over every element, and its
/// gradient `2 (pred − target) / numel`, as PyTorch's `F.mse_loss`.
///
/// ```
/// use convnet_tensor::Tensor;
/// use convnet_train::loss::mse;
/// let p = Tensor::from_vec(&[2], vec![1.0, 3.0]).unwrap();
/// let t = Tensor::from_vec(&[2], vec![0.0, 1.0]).unwrap();
/// let out = mse(&p, &t).unwrap();
/// assert_eq!(out.loss, 2.5);
/// assert_eq!(out.grad.as_slice(), &[1.0, 2.0]);
/// ```
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<LossOutput> {
    if pred.shape() != target.shape() {
        return Err(TrainError::invalid(
            "mse",
            format!(
                "prediction shape {:?} and target shape {:?} differ",
                pred.shape(),
                target.shape()
            ),
        ));
    }
    if pred.is_empty() {
        return Err(TrainError::invalid("mse", "empty input"));
    }
    let scale = 2.0 / pred.len() as f32;
    let mut grad = Tensor::zeros(pred.shape());
    let mut total = 0.0f64;
    for ((g, &p), &t) in grad
        .as_slice_mut()
        .iter_mut()
        .zip(pred.as_slice())
        .zip(target.as_slice())
    {
        let d = p - t;
        total += (d as f64) * (d as f64);
        *g = scale * d;
    }
    Ok(LossOutput {
        loss: (total / pred.len() as f64) as f32,
        grad,
    })
}

/// Checks that `logits` is `[N, C]` with `N = labels.len() > 0`, `C > 0` and
/// every label in `0..C`; returns `(N, C)`.
pub(crate) fn check_logits(
    op: &'static str,
    logits: &Tensor,
    labels: &[usize],
) -> Result<(usize, usize)> {
    let shape = logits.shape();
    if shape.len() != 2 {
        return Err(TrainError::invalid(
            op,
            format!("logits must be [N, C], got shape {shape:?}"),
        ));
    }
    let (n, c) = (shape[0], shape[1]);
    if n == 0 || c == 0 {
        return Err(TrainError::invalid(
            op,
            format!("empty logits (shape {shape:?})"),
        ));
    }
    if labels.len() != n {
        return Err(TrainError::invalid(
            op,
            format!("{} labels for {n} rows of logits", labels.len()),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
        return Err(TrainError::invalid(
            op,
            format!("label {l} (row {i}) is out of range for {c} classes"),
        ));
    }
    Ok((n, c))
}

/// The training loss of a model's last `forward`: its gradient with
/// respect to the main output and to each auxiliary output.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingLoss {
    /// `L(logits) + Σ wᵢ·L(auxᵢ)`: the main loss plus each auxiliary
    /// output's loss times its weight (torchvision's reference training
    /// script reports this sum for GoogLeNet too).
    pub loss: f32,
    /// The main output's cross-entropy alone (what evaluation measures).
    pub main_loss: f32,
    /// `d loss / d logits`.
    pub grad: Tensor,
    /// `d loss / d auxᵢ` (already multiplied by `wᵢ`), in the order of
    /// [`Layer::aux_outputs`]; empty for a model without auxiliary heads.
    pub grad_aux: Vec<Tensor>,
}

/// The cross-entropy training loss of `model`'s last `forward`, whose main
/// output was `logits`: the main loss plus the weighted losses of the
/// model's auxiliary outputs ([`Layer::aux_outputs`], GoogLeNet's `aux1`
/// and `aux2` with weight 0.3), with every gradient, ready for
/// [`Layer::backward_params_with_aux`].
///
/// ```
/// use convnet_layers::{Layer, Linear, LinearConfig};
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_train::loss::{cross_entropy, training_loss};
/// let mut model = Linear::new(LinearConfig::new(4, 3), &mut Rng::seed_from(0)).unwrap();
/// let logits = model.forward(&Tensor::ones(&[2, 4])).unwrap();
/// // A model without auxiliary heads: plain cross-entropy.
/// let out = training_loss(&model, &logits, &[0, 2], 0.0).unwrap();
/// assert_eq!(out.loss, cross_entropy(&logits, &[0, 2], 0.0).unwrap().loss);
/// assert!(out.grad_aux.is_empty());
/// model.backward_params_with_aux(&out.grad, &out.grad_aux).unwrap();
/// ```
pub fn training_loss<M: Layer + ?Sized>(
    model: &M,
    logits: &Tensor,
    labels: &[usize],
    label_smoothing: f32,
) -> Result<TrainingLoss> {
    let main = cross_entropy(logits, labels, label_smoothing)?;
    let mut loss = main.loss;
    let mut grad_aux = Vec::new();
    for aux in model.aux_outputs() {
        let mut out = cross_entropy(aux.logits, labels, label_smoothing).map_err(|e| {
            TrainError::invalid(
                "training_loss",
                format!("auxiliary output `{}`: {e}", aux.name),
            )
        })?;
        loss += aux.weight * out.loss;
        out.grad
            .as_slice_mut()
            .iter_mut()
            .for_each(|g| *g *= aux.weight);
        grad_aux.push(out.grad);
    }
    Ok(TrainingLoss {
        loss,
        main_loss: main.loss,
        grad: main.grad,
        grad_aux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_tensor::gradcheck::{check_gradient, GradCheck};
    use convnet_tensor::Rng;

    fn reference_ce(logits: &[f32], c: usize, labels: &[usize], eps: f64) -> f64 {
        // Straightforward f64 computation, no max trick.
        let n = labels.len();
        let mut total = 0.0;
        for (row, &l) in logits.chunks(c).zip(labels) {
            let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
            for (j, &x) in row.iter().enumerate() {
                let q = if j == l {
                    1.0 - eps + eps / c as f64
                } else {
                    eps / c as f64
                };
                total -= q * ((x as f64) - z.ln());
            }
        }
        total / n as f64
    }

    #[test]
    fn cross_entropy_matches_reference_and_gradcheck() {
        let mut rng = Rng::seed_from(3);
        for &eps in &[0.0f32, 0.1] {
            let x = Tensor::randn(&[4, 5], 0.0, 2.0, &mut rng);
            let labels = [0, 4, 2, 2];
            let out = cross_entropy(&x, &labels, eps).unwrap();
            let r = reference_ce(x.as_slice(), 5, &labels, eps as f64);
            assert!((out.loss as f64 - r).abs() < 1e-5, "{} vs {r}", out.loss);
            check_gradient(
                |v| reference_ce(v, 5, &labels, eps as f64),
                x.as_slice(),
                out.grad.as_slice(),
                GradCheck::default(),
            )
            .unwrap();
            // Each gradient row sums to zero (softmax and target both sum to 1).
            for row in out.grad.as_slice().chunks(5) {
                assert!(row.iter().sum::<f32>().abs() < 1e-6);
            }
        }
    }

    #[test]
    fn cross_entropy_is_stable_for_huge_logits() {
        let x = Tensor::from_vec(&[1, 3], vec![1000.0, -1000.0, 0.0]).unwrap();
        let out = cross_entropy(&x, &[0], 0.0).unwrap();
        assert!(out.loss.is_finite() && out.loss.abs() < 1e-6);
        let out = cross_entropy(&x, &[1], 0.0).unwrap();
        assert!((out.loss - 2000.0).abs() < 1e-2, "{}", out.loss);
        assert!(out.grad.as_slice().iter().all(|g| g.is_finite()));
    }

    #[test]
    fn cross_entropy_rejects_bad_input() {
        let x = Tensor::zeros(&[2, 3]);
        let e = cross_entropy(&x, &[0], 0.0).unwrap_err().to_string();
        assert!(e.contains("1 labels for 2 rows"), "{e}");
        let e = cross_entropy(&x, &[0, 7], 0.0).unwrap_err().to_string();
        assert!(e.contains("label 7"), "{e}");
        let e = cross_entropy(&Tensor::zeros(&[2, 3, 1]), &[0, 1], 0.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[N, C]"), "{e}");
        assert!(cross_entropy(&x, &[0, 1], 1.0).is_err());
    }

    #[test]
    fn mse_gradcheck_and_errors() {
        let mut rng = Rng::seed_from(4);
        let p = Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng);
        let t = Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng);
        let out = mse(&p, &t).unwrap();
        let tv = t.as_slice().to_vec();
        let f = |v: &[f32]| {
            v.iter()
                .zip(&tv)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / 12.0
        };
        assert!((out.loss as f64 - f(p.as_slice())).abs() < 1e-6);
        check_gradient(f, p.as_slice(), out.grad.as_slice(), GradCheck::default()).unwrap();
        assert!(mse(&p, &Tensor::zeros(&[4, 3])).is_err());
    }
}
