//! Learning-rate schedules: constant, step decay and cosine annealing, each
//! with an optional linear warm-up.
//!
//! A schedule is a pure function of the global step, so resuming a run only
//! needs the step counter (saved in the checkpoint).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The shape of the schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs
    /// (`torch.optim.lr_scheduler.StepLR`, stepped once per epoch).
    Step {
        /// Epochs between decays.
        every_epochs: usize,
        /// Decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate down to `min_lr` at the last step
    /// (`CosineAnnealingLR` stepped once per batch).
    Cosine {
        /// The final learning rate.
        min_lr: f32,
    },
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleKind::Constant => write!(f, "constant"),
            ScheduleKind::Step {
                every_epochs,
                gamma,
            } => write!(f, "step:{every_epochs}:{gamma}"),
            ScheduleKind::Cosine { min_lr } if *min_lr == 0.0 => write!(f, "cosine"),
            ScheduleKind::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
        }
    }
}

impl FromStr for ScheduleKind {
    type Err = TrainError;

    /// Parses `constant`, `step:EVERY_EPOCHS:GAMMA` (e.g. `step:3:0.1`),
    /// `cosine` or `cosine:MIN_LR`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            TrainError::Config(format!(
                "unknown schedule `{s}`: expected `constant`, `step:EVERY_EPOCHS:GAMMA` \
                 (e.g. step:3:0.1), `cosine` or `cosine:MIN_LR`"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let kind = match parts.as_slice() {
            ["constant"] => ScheduleKind::Constant,
            ["cosine"] => ScheduleKind::Cosine { min_lr: 0.0 },
            ["cosine", min] => ScheduleKind::Cosine {
                min_lr: min.parse().map_err(|_| bad())?,
            },
            ["step", every, gamma] => ScheduleKind::Step {
                every_epochs: every.parse().map_err(|_| bad())?,
                gamma: gamma.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        Ok(kind)
    }
}

/// A learning-rate schedule over a whole run.
///
/// ```
/// use convnet_train::schedule::{LrSchedule, ScheduleKind};
/// // 10 epochs of 100 steps, 50 warm-up steps, then cosine down to 0.
/// let s = LrSchedule::new(0.1, ScheduleKind::Cosine { min_lr: 0.0 }, 50, 100, 10).unwrap();
/// assert!((s.lr_at(0) - 0.002).abs() < 1e-7);    // warm-up: 0.1 · 1/50
/// assert!((s.lr_at(49) - 0.1).abs() < 1e-7);     // end of warm-up
/// assert!(s.lr_at(999) < 1e-3);                  // end of the run
/// let step: ScheduleKind = "step:3:0.1".parse().unwrap();
/// let s = LrSchedule::new(0.1, step, 0, 100, 10).unwrap();
/// assert!((s.lr_at(300) - 0.01).abs() < 1e-7);   // epoch 3 starts the first decay
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The learning rate after warm-up (the optimizer's).
    pub base_lr: f32,
    /// The shape after warm-up.
    pub kind: ScheduleKind,
    /// Steps of linear warm-up from `base_lr / warmup_steps` to `base_lr`.
    pub warmup_steps: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Epochs of the whole run.
    pub epochs: usize,
}

impl LrSchedule {
    /// A checked schedule.
    pub fn new(
        base_lr: f32,
        kind: ScheduleKind,
        warmup_steps: usize,
        steps_per_epoch: usize,
        epochs: usize,
    ) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr > 0.0) {
            return Err(TrainError::Config(format!(
                "learning rate must be > 0, got {base_lr}"
            )));
        }
        if steps_per_epoch == 0 || epochs == 0 {
            return Err(TrainError::Config(format!(
                "schedule: needs at least one step and one epoch (got {steps_per_epoch} steps \
                 per epoch, {epochs} epochs)"
            )));
        }
        match kind {
            ScheduleKind::Constant => {}
            ScheduleKind::Step {
                every_epochs,
                gamma,
            } => {
                if every_epochs == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(TrainError::Config(format!(
                        "step schedule: needs every_epochs >= 1 and gamma in (0, 1], got \
                         {every_epochs} and {gamma}"
                    )));
                }
            }
            ScheduleKind::Cosine { min_lr } => {
                if !(min_lr >= 0.0 && min_lr <= base_lr) {
                    return Err(TrainError::Config(format!(
                        "cosine schedule: min_lr must be in [0, {base_lr}], got {min_lr}"
                    )));
                }
            }
        }
        Ok(LrSchedule {
            base_lr,
            kind,
            warmup_steps,
            steps_per_epoch,
            epochs,
        })
    }

    /// Total number of steps of the run.
    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch * self.epochs
    }

    /// The learning rate of global step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / self.steps_per_epoch;
                self.base_lr * gamma.powi((epoch / every_epochs) as i32)
            }
            ScheduleKind::Cosine { min_lr } => {
                let span = self.total_steps().saturating_sub(self.warmup_steps).max(1);
                let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                (min_lr as f64 + (self.base_lr - min_lr) as f64 * cos) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_goes_from_base_to_min_monotonically() {
        let s = LrSchedule::new(0.1, ScheduleKind::Cosine { min_lr: 0.001 }, 0, 10, 5).unwrap();
        assert_eq!(s.lr_at(0), 0.1);
        let mid = s.lr_at(25);
        assert!((mid - 0.0505).abs() < 1e-6, "{mid}");
        let mut prev = f32::INFINITY;
        for step in 0..50 {
            let lr = s.lr_at(step);
            assert!(lr <= prev && lr >= 0.001);
            prev = lr;
        }
        assert!((s.lr_at(50) - 0.001).abs() < 1e-7);
    }

    #[test]
    fn warmup_is_linear_then_constant() {
        let s = LrSchedule::new(1.0, ScheduleKind::Constant, 4, 10, 1).unwrap();
        let lrs: Vec<f32> = (0..6).map(|i| s.lr_at(i)).collect();
        assert_eq!(lrs, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn step_decays_per_epoch() {
        let s = LrSchedule::new(1.0, "step:2:0.5".parse().unwrap(), 0, 10, 6).unwrap();
        assert_eq!(s.lr_at(19), 1.0);
        assert_eq!(s.lr_at(20), 0.5);
        assert_eq!(s.lr_at(45), 0.25);
    }

    #[test]
    fn parsing_and_validation() {
        for text in ["constant", "cosine", "cosine:0.001", "step:3:0.1"] {
            let k: ScheduleKind = text.parse().unwrap();
            assert_eq!(k.to_string(), text);
        }
        let e = "linear".parse::<ScheduleKind>().unwrap_err().to_string();
        assert!(e.contains("`linear`") && e.contains("cosine"), "{e}");
        assert!("step:x:0.1".parse::<ScheduleKind>().is_err());
        assert!(LrSchedule::new(0.0, ScheduleKind::Constant, 0, 1, 1).is_err());
        assert!(LrSchedule::new(0.1, ScheduleKind::Constant, 0, 0, 1).is_err());
        assert!(LrSchedule::new(0.1, "step:0:0.1".parse().unwrap(), 0, 1, 1).is_err());
        assert!(LrSchedule::new(0.1, ScheduleKind::Cosine { min_lr: 0.5 }, 0, 1, 1).is_err());
    }
}
