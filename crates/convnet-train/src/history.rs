//! Per-epoch training history, written as CSV and JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::fsutil::write_atomic;

/// The figures of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy (top-1, training mode) over the epoch.
    pub train_accuracy: f64,
    /// Test loss (inference mode), if a test set was given.
    pub test_loss: Option<f64>,
    /// Test top-1 accuracy.
    pub test_accuracy: Option<f64>,
    /// Test top-5 accuracy.
    pub test_top5: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall-clock seconds of the training part of the epoch.
    pub train_seconds: f64,
    /// Wall-clock seconds of the evaluation.
    pub eval_seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
}

/// Every epoch's record, in order.
///
/// ```
/// use convnet_train::history::{EpochRecord, History};
/// let mut h = History::default();
/// h.records.push(EpochRecord {
///     epoch: 1, train_loss: 0.5, train_accuracy: 0.9, test_loss: Some(0.3),
///     test_accuracy: Some(0.95), test_top5: Some(0.99), lr: 0.01,
///     train_seconds: 5.0, eval_seconds: 0.5, images_per_second: 12000.0,
/// });
/// let csv = h.to_csv();
/// assert!(csv.starts_with("epoch,train_loss"));
/// assert!(csv.lines().nth(1).unwrap().starts_with("1,0.5,"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per finished epoch.
    pub records: Vec<EpochRecord>,
}

impl History {
    /// The last record, if any.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.records.last()
    }

    /// The history as CSV, with a header line; missing test figures are empty
    /// fields.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "epoch,train_loss,train_accuracy,test_loss,test_accuracy,test_top5,lr,\
             train_seconds,eval_seconds,images_per_second\n",
        );
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.records {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{}",
                r.epoch,
                r.train_loss,
                r.train_accuracy,
                opt(r.test_loss),
                opt(r.test_accuracy),
                opt(r.test_top5),
                r.lr,
                r.train_seconds,
                r.eval_seconds,
                r.images_per_second
            );
        }
        s
    }

    /// The history as pretty-printed JSON (`{"records": [...]}`).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| TrainError::invalid("History::to_json", e.to_string()))
    }

    /// Reads a history written by [`History::save_json`].
    pub fn load_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            TrainError::invalid("History::load_json", format!("{}: {e}", path.display()))
        })
    }

    /// Writes the CSV form to `path` (atomically).
    pub fn save_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }

    /// Writes the JSON form to `path` (atomically).
    pub fn save_json(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0 / epoch as f64,
            train_accuracy: 0.5,
            test_loss: None,
            test_accuracy: Some(0.75),
            test_top5: None,
            lr: 0.1,
            train_seconds: 1.5,
            eval_seconds: 0.25,
            images_per_second: 1000.0,
        }
    }

    #[test]
    fn csv_and_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let h = History {
            records: vec![record(1), record(2)],
        };
        h.save_csv(&dir.path().join("h.csv")).unwrap();
        h.save_json(&dir.path().join("h.json")).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("h.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        assert_eq!(
            csv.lines().nth(2).unwrap(),
            "2,0.5,0.5,,0.75,,0.1,1.5,0.25,1000"
        );
        let back = History::load_json(&dir.path().join("h.json")).unwrap();
        assert_eq!(back, h);
        assert!(History::load_json(&dir.path().join("h.csv")).is_err());
    }
}
