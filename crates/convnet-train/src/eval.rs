//! Evaluation: a model in inference mode over every batch of a source, with
//! its loss, top-1 and top-5 accuracy and confusion matrix.

use std::time::Instant;

use convnet_layers::memory::{refuse_if_too_big, Usage};
use convnet_layers::Layer;

use crate::error::{Result, TrainError};
use crate::loss::cross_entropy;
use crate::metrics::{topk_correct, ConfusionMatrix};
use crate::trainer::BatchSource;

/// Results of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy (top-`C` when there are fewer than 5 classes).
    pub top5: f64,
    /// Predictions against labels.
    pub confusion: ConfusionMatrix,
    /// Samples evaluated.
    pub samples: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// An error if running `model` on batches of `shape` would need more memory
/// than the machine has ([`refuse_if_too_big`]).
pub(crate) fn refuse_if_too_big_batch(
    model: &dyn Layer,
    shape: &[usize],
    usage: Usage,
    what: &str,
) -> Result<()> {
    let what = format!("{what} on batches of shape {shape:?}");
    Ok(refuse_if_too_big(model, shape, usage, &what)?)
}

/// Evaluates `model` in inference mode on every batch of `data` (epoch 0's
/// order, which for a test loader is the file order).
pub fn evaluate(
    model: &dyn Layer,
    data: &dyn BatchSource,
    num_classes: usize,
) -> Result<EvalReport> {
    let start = Instant::now();
    eval_sums(model, data, num_classes)?.report(start)
}

/// The sums an evaluation ends with (summed over the ranks by a
/// distributed one).
pub(crate) struct EvalSums {
    pub(crate) loss_sum: f64,
    pub(crate) top1: usize,
    pub(crate) top5: usize,
    pub(crate) samples: usize,
    pub(crate) confusion: ConfusionMatrix,
}

/// Runs `model` in inference mode on every batch of `data`'s epoch 0.
pub(crate) fn eval_sums(
    model: &dyn Layer,
    data: &dyn BatchSource,
    num_classes: usize,
) -> Result<EvalSums> {
    let mut confusion = ConfusionMatrix::new(num_classes);
    let (mut loss_sum, mut top1, mut top5, mut samples) = (0.0f64, 0usize, 0usize, 0usize);
    for (index, batch) in data.batches(0).enumerate() {
        let batch = batch?;
        if index == 0 {
            refuse_if_too_big_batch(model, batch.images.shape(), Usage::Inference, "evaluation")?;
        }
        let logits = model.infer(&batch.images)?;
        if logits.shape().get(1) != Some(&num_classes) {
            return Err(TrainError::invalid(
                "evaluate",
                format!(
                    "the model outputs {:?}, expected [N, {num_classes}]",
                    logits.shape()
                ),
            ));
        }
        let n = batch.labels.len();
        loss_sum += cross_entropy(&logits, &batch.labels, 0.0)?.loss as f64 * n as f64;
        top1 += topk_correct(&logits, &batch.labels, 1)?;
        top5 += topk_correct(&logits, &batch.labels, 5.min(num_classes))?;
        confusion.add_batch(&logits, &batch.labels)?;
        samples += n;
    }
    Ok(EvalSums {
        loss_sum,
        top1,
        top5,
        samples,
        confusion,
    })
}

impl EvalSums {
    /// The report of an evaluation begun at `start`.
    pub(crate) fn report(self, start: Instant) -> Result<EvalReport> {
        let samples = self.samples;
        if samples == 0 {
            return Err(TrainError::Data("the evaluation set is empty".into()));
        }
        Ok(EvalReport {
            loss: self.loss_sum / samples as f64,
            accuracy: self.top1 as f64 / samples as f64,
            top5: self.top5 as f64 / samples as f64,
            confusion: self.confusion,
            samples,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
