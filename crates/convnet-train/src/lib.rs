//! # convnet-train
//!
//! Everything needed to train a convnet model:
//!
//! - [`loss`]: cross-entropy from logits (stable log-softmax, label
//!   smoothing) and MSE, each returning the loss and its gradient;
//! - [`optim`]: SGD (momentum, Nesterov, weight decay), Adam and AdamW over
//!   the model's named parameters, with serialisable state;
//! - [`schedule`]: constant, step and cosine learning rates with linear
//!   warm-up; [`clip`]: gradient clipping by global norm;
//! - [`Trainer`]: epochs over a [`BatchSource`], evaluation after each epoch,
//!   [`Callback`]s ([`ProgressPrinter`], [`HistoryWriter`]), checkpoints and
//!   bit-identical resume;
//! - [`distributed`]: data-parallel training over several processes (MPI
//!   with the `mpi` feature);
//! - [`metrics`]: top-1/top-5 accuracy, per-class accuracy, confusion matrix;
//! - [`checkpoint`]: the crash-safe, checksummed checkpoint format;
//! - [`history`] (CSV and JSON) and [`plot`] (PNG curves and confusion heat
//!   maps, pure Rust).
//!
//! ```
//! use convnet_tensor::Tensor;
//! use convnet_train::{loss::cross_entropy, metrics::topk_correct};
//! let logits = Tensor::from_vec(&[1, 3], vec![0.0, 3.0, 1.0]).unwrap();
//! let out = cross_entropy(&logits, &[1], 0.0).unwrap();
//! assert!(out.loss < 0.2);
//! assert_eq!(topk_correct(&logits, &[1], 1).unwrap(), 1);
//! ```

#![warn(missing_docs)]

pub mod callback;
pub mod checkpoint;
pub mod clip;
mod data;
pub mod defaults;
pub mod distributed;
pub mod error;
mod eval;
pub mod fsutil;
pub mod history;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod schedule;
pub mod trainer;

#[cfg(test)]
mod test_util;

pub use callback::{BatchReport, Callback, HistoryWriter};
pub use checkpoint::{Checkpoint, CheckpointHeader, ModelInfo, Preprocessing, TrainState};
pub use error::{Result, TrainError};
pub use history::{EpochRecord, History};
pub use metrics::ConfusionMatrix;
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind};
pub use progress::ProgressPrinter;
pub use schedule::{LrSchedule, ScheduleKind};
pub use trainer::{
    evaluate, Batch, BatchSource, CheckpointTarget, EvalReport, TrainConfig, Trainer,
};
