//! Callbacks: how the training loop reports what it does.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::history::{EpochRecord, History};
use crate::plot::plot_history;
use crate::trainer::EvalReport;

/// Progress within an epoch, sent after every batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean loss of the epoch's batches so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Images trained on per second, this epoch so far.
    pub images_per_second: f64,
    /// Seconds since the epoch started.
    pub elapsed: f64,
    /// Estimated seconds left in the epoch.
    pub eta: f64,
    /// Learning rate of this step.
    pub lr: f32,
}

/// Hooks called by [`crate::Trainer::fit`]. Every method has an empty default.
pub trait Callback {
    /// Before the first batch of an epoch (`epoch` is 1-based).
    fn on_epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) -> Result<()> {
        Ok(())
    }

    /// After every optimizer step.
    fn on_batch_end(&mut self, _report: &BatchReport) -> Result<()> {
        Ok(())
    }

    /// After an epoch's training part, before its evaluation.
    fn on_eval_start(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// After an epoch and its evaluation; `history` already holds `record`
    /// (and the checkpoint, if any, is written).
    fn on_epoch_end(
        &mut self,
        _record: &EpochRecord,
        _eval: Option<&EvalReport>,
        _history: &History,
    ) -> Result<()> {
        Ok(())
    }
}

/// Writes `history.csv`, `history.json` and `curves.png` into a folder after
/// every epoch, so that an interrupted run still has its figures.
#[derive(Debug, Clone)]
pub struct HistoryWriter {
    dir: PathBuf,
    title: String,
}

impl HistoryWriter {
    /// Writes into `dir` (which must exist); `title` heads the plot.
    pub fn new(dir: impl Into<PathBuf>, title: impl Into<String>) -> Self {
        HistoryWriter {
            dir: dir.into(),
            title: title.into(),
        }
    }

    /// The CSV file's path.
    pub fn csv_path(&self) -> PathBuf {
        self.dir.join("history.csv")
    }

    /// The JSON file's path.
    pub fn json_path(&self) -> PathBuf {
        self.dir.join("history.json")
    }

    /// The plot's path.
    pub fn plot_path(&self) -> PathBuf {
        self.dir.join("curves.png")
    }

    /// Writes all three files now.
    pub fn write(&self, history: &History) -> Result<()> {
        history.save_csv(&self.csv_path())?;
        history.save_json(&self.json_path())?;
        plot_history(history, &self.title, &self.plot_path())
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Callback for HistoryWriter {
    fn on_epoch_end(
        &mut self,
        _record: &EpochRecord,
        _eval: Option<&EvalReport>,
        history: &History,
    ) -> Result<()> {
        self.write(history)
    }
}
