//! Classification metrics: top-k accuracy, per-class accuracy and the
//! confusion matrix.

use std::fmt::Write as _;

use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::loss::check_logits;

/// How many rows of `logits` (`[N, C]`) have their label among the `k`
/// highest scores. Ties are broken by the lower class index, as a stable sort
/// would, so the count never depends on luck. A row with a NaN score
/// anywhere has no ranking and is never counted correct (a diverged model
/// must not score 100%).
///
/// ```
/// use convnet_tensor::Tensor;
/// use convnet_train::metrics::topk_correct;
/// let logits = Tensor::from_vec(&[2, 3], vec![0.1, 0.7, 0.2, 0.5, 0.3, 0.2]).unwrap();
/// assert_eq!(topk_correct(&logits, &[1, 2], 1).unwrap(), 1); // row 0 right, row 1 wrong
/// assert_eq!(topk_correct(&logits, &[1, 2], 3).unwrap(), 2);
/// ```
pub fn topk_correct(logits: &Tensor, labels: &[usize], k: usize) -> Result<usize> {
    let (_, c) = check_logits("topk_correct", logits, labels)?;
    if k == 0 {
        return Err(TrainError::invalid("topk_correct", "k must be >= 1"));
    }
    Ok(logits
        .as_slice()
        .chunks_exact(c)
        .zip(labels)
        .filter(|(row, &label)| {
            if row.iter().any(|v| v.is_nan()) {
                return false;
            }
            let x = row[label];
            // Classes ranked before the label: higher scores, or equal scores
            // at a lower index.
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| v > x || (v == x && j < label))
                .count();
            ahead < k
        })
        .count())
}

/// A confusion matrix: `count(t, p)` is the number of samples of true class
/// `t` predicted as `p`. Samples whose logits hold a NaN have no prediction:
/// they are counted apart ([`ConfusionMatrix::unpredicted`]), in the totals
/// and as wrong, never on the diagonal.
///
/// ```
/// use convnet_train::metrics::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(2);
/// m.add(0, 0);
/// m.add(0, 1);
/// m.add(1, 1);
/// assert_eq!(m.total(), 3);
/// assert!((m.accuracy() - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(m.per_class_accuracy(), vec![Some(0.5), Some(1.0)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
    /// Per true class, the samples without a prediction (NaN logits).
    #[serde(default)]
    unpredicted: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
            unpredicted: vec![0; classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Counts one sample. Out-of-range classes are ignored in release builds
    /// (callers check labels first); `debug_assert!`ed.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        debug_assert!(truth < self.classes && predicted < self.classes);
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }

    /// Counts a sample of class `truth` that has no prediction (its logits
    /// hold a NaN): it counts as wrong.
    pub fn add_unpredicted(&mut self, truth: usize) {
        debug_assert!(truth < self.classes);
        if self.unpredicted.len() != self.classes {
            self.unpredicted.resize(self.classes, 0);
        }
        if let Some(n) = self.unpredicted.get_mut(truth) {
            *n += 1;
        }
    }

    /// The raw counts, the matrix's then the unpredicted ones per class: what
    /// a distributed evaluation sums over the ranks.
    pub(crate) fn counts_mut(&mut self) -> (&mut [u64], &mut [u64]) {
        self.unpredicted.resize(self.classes, 0);
        (&mut self.counts, &mut self.unpredicted)
    }

    /// Samples of class `truth` without a prediction (NaN logits).
    pub fn unpredicted(&self, truth: usize) -> u64 {
        self.unpredicted.get(truth).copied().unwrap_or(0)
    }

    /// All samples without a prediction (NaN logits).
    pub fn total_unpredicted(&self) -> u64 {
        self.unpredicted.iter().sum()
    }

    /// Counts a batch: the prediction of each row is its arg-max; a row
    /// holding a NaN has none and counts as wrong.
    pub fn add_batch(&mut self, logits: &Tensor, labels: &[usize]) -> Result<()> {
        let (_, c) = check_logits("ConfusionMatrix::add_batch", logits, labels)?;
        if c != self.classes {
            return Err(TrainError::invalid(
                "ConfusionMatrix::add_batch",
                format!("logits have {c} classes, the matrix {}", self.classes),
            ));
        }
        let rows = logits.as_slice().chunks_exact(c);
        for ((p, &t), row) in logits.argmax_last().into_iter().zip(labels).zip(rows) {
            if row.iter().any(|v| v.is_nan()) {
                self.add_unpredicted(t);
            } else {
                self.add(t, p);
            }
        }
        Ok(())
    }

    /// Adds another matrix of the same size.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        debug_assert_eq!(self.classes, other.classes);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for t in 0..other.classes {
            for _ in 0..other.unpredicted(t) {
                self.add_unpredicted(t);
            }
        }
    }

    /// Samples of class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// All samples counted, with those without a prediction.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.total_unpredicted()
    }

    /// Correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|i| self.count(i, i)).sum()
    }

    /// Fraction of correct predictions (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.correct() as f64 / total as f64
        }
    }

    /// Per-class accuracy (recall): correct / samples of that class, `None`
    /// for a class without samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|t| {
                let row: u64 =
                    (0..self.classes).map(|p| self.count(t, p)).sum::<u64>() + self.unpredicted(t);
                (row > 0).then(|| self.count(t, t) as f64 / row as f64)
            })
            .collect()
    }

    /// A text table: one row per true class, one column per predicted class,
    /// then the class's accuracy. `class_names` may be shorter than the
    /// number of classes (missing names print as the index).
    pub fn render(&self, class_names: &[String]) -> String {
        let name = |i: usize| class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
        let label_width = (0..self.classes)
            .map(|i| name(i).len())
            .max()
            .unwrap_or(1)
            .max(10);
        let max_count = self.counts.iter().copied().max().unwrap_or(0);
        let cell = max_count.to_string().len().max(4);
        let mut s = String::new();
        let _ = write!(s, "{:>label_width$} |", "true \\ pred");
        for p in 0..self.classes {
            let short: String = name(p).chars().take(cell).collect();
            let _ = write!(s, " {short:>cell$}");
        }
        let _ = writeln!(s, " | accuracy");
        let _ = writeln!(
            s,
            "{}",
            "-".repeat(label_width + 2 + (cell + 1) * self.classes + 11)
        );
        for (t, acc) in self.per_class_accuracy().into_iter().enumerate() {
            let _ = write!(s, "{:>label_width$} |", name(t));
            for p in 0..self.classes {
                let _ = write!(s, " {:>cell$}", self.count(t, p));
            }
            match acc {
                Some(a) => {
                    let _ = writeln!(s, " | {:>7.2}%", 100.0 * a);
                }
                None => {
                    let _ = writeln!(s, " |       -");
                }
            }
        }
        let none = self.total_unpredicted();
        if none > 0 {
            let _ = writeln!(
                s,
                "{none} sample(s) had NaN logits: no prediction, counted as wrong"
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_handles_ties_and_bad_input() {
        // All equal: the label is ranked by its index.
        let x = Tensor::zeros(&[1, 4]);
        assert_eq!(topk_correct(&x, &[0], 1).unwrap(), 1);
        assert_eq!(topk_correct(&x, &[3], 1).unwrap(), 0);
        assert_eq!(topk_correct(&x, &[3], 4).unwrap(), 1);
        assert!(topk_correct(&x, &[0], 0).is_err());
        assert!(topk_correct(&x, &[4], 1).is_err());
        let nan = Tensor::from_vec(&[1, 2], vec![f32::NAN, 1.0]).unwrap();
        assert_eq!(topk_correct(&nan, &[0], 1).unwrap(), 0);
    }

    #[test]
    fn nan_logits_never_count_as_correct() {
        // All NaN: used to rank every label first (100% accuracy).
        let all_nan = Tensor::from_vec(&[2, 3], vec![f32::NAN; 6]).unwrap();
        assert_eq!(topk_correct(&all_nan, &[0, 2], 1).unwrap(), 0);
        assert_eq!(topk_correct(&all_nan, &[0, 2], 3).unwrap(), 0);
        // One NaN beside a winning label: no ranking either.
        let one_nan = Tensor::from_vec(&[1, 3], vec![5.0, f32::NAN, 1.0]).unwrap();
        assert_eq!(topk_correct(&one_nan, &[0], 1).unwrap(), 0);
        let mut m = ConfusionMatrix::new(3);
        m.add_batch(&all_nan, &[0, 2]).unwrap();
        m.add_batch(&one_nan, &[0]).unwrap();
        assert_eq!(m.correct(), 0);
        assert_eq!(m.total(), 3);
        assert_eq!(m.total_unpredicted(), 3);
        assert_eq!(m.accuracy(), 0.0);
        assert_eq!(m.per_class_accuracy(), vec![Some(0.0), None, Some(0.0)]);
        assert!(m.render(&[]).contains("3 sample(s) had NaN logits"));
        let mut merged = ConfusionMatrix::new(3);
        merged.merge(&m);
        assert_eq!(merged.total_unpredicted(), 3);
    }

    #[test]
    fn confusion_matrix_counts_and_renders() {
        let logits = Tensor::from_vec(&[3, 3], vec![1., 0., 0., 0., 0., 1., 0., 0., 1.]).unwrap();
        let mut m = ConfusionMatrix::new(3);
        m.add_batch(&logits, &[0, 1, 2]).unwrap();
        assert_eq!(m.count(1, 2), 1);
        assert_eq!(m.correct(), 2);
        assert_eq!(
            m.per_class_accuracy(),
            vec![Some(1.0), Some(0.0), Some(1.0)]
        );
        let names: Vec<String> = ["zero", "one", "two"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = m.render(&names);
        assert!(
            text.contains("one") && text.contains("100.00%") && text.contains("0.00%"),
            "{text}"
        );
        let mut m2 = ConfusionMatrix::new(3);
        m2.merge(&m);
        m2.merge(&m);
        assert_eq!(m2.total(), 6);
        assert!(m.add_batch(&Tensor::zeros(&[1, 2]), &[0]).is_err());
        assert_eq!(
            ConfusionMatrix::new(2).per_class_accuracy(),
            vec![None, None]
        );
    }
}
