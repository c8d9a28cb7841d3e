//! The default hyper-parameters of a training run, written once.
//!
//! [`TrainConfig::default`](crate::TrainConfig::default), the `convnet
//! train` command's options and its `--help` text all read them from here.

use crate::schedule::ScheduleKind;

/// Epochs of a run.
pub const EPOCHS: usize = 10;

/// Base learning rate of SGD.
pub const SGD_LR: f32 = 0.05;

/// Base learning rate of Adam and AdamW.
pub const ADAM_LR: f32 = 1e-3;

/// SGD momentum.
pub const MOMENTUM: f32 = 0.9;

/// SGD uses Nesterov momentum.
pub const NESTEROV: bool = true;

/// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
pub const WEIGHT_DECAY: f32 = 5e-4;

/// The learning-rate schedule after warm-up: cosine annealing to 0.
pub const SCHEDULE: ScheduleKind = ScheduleKind::Cosine { min_lr: 0.0 };

/// Label smoothing of the cross-entropy.
pub const LABEL_SMOOTHING: f32 = 0.0;

/// The longest automatic warm-up, in steps.
pub const MAX_WARMUP_STEPS: usize = 200;

/// The automatic warm-up lasts at most this share of the run's steps.
pub const WARMUP_SHARE: f64 = 0.05;

/// Steps of the automatic linear warm-up of a run of `total_steps`
/// optimizer steps: 5% of them ([`WARMUP_SHARE`], rounded down), at most
/// [`MAX_WARMUP_STEPS`]. A 10-epoch MNIST run (9,380 steps) warms up for 200
/// steps; a run of 100 steps for 5 instead of spending all of them below
/// the base learning rate.
///
/// ```
/// use convnet_train::defaults::warmup_steps;
/// assert_eq!(warmup_steps(9_380), 200);
/// assert_eq!(warmup_steps(100), 5);
/// assert_eq!(warmup_steps(10), 0);
/// ```
pub fn warmup_steps(total_steps: usize) -> usize {
    ((total_steps as f64 * WARMUP_SHARE) as usize).min(MAX_WARMUP_STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_scales_with_the_run_and_is_capped() {
        assert_eq!(warmup_steps(0), 0);
        assert_eq!(warmup_steps(19), 0);
        assert_eq!(warmup_steps(20), 1);
        assert_eq!(warmup_steps(1_000), 50);
        assert_eq!(warmup_steps(4_000), 200);
        assert_eq!(warmup_steps(4_020), 200);
        assert_eq!(warmup_steps(1_000_000), MAX_WARMUP_STEPS);
        // Never more than the run.
        for n in 0..500 {
            assert!(warmup_steps(n) <= n / 20, "{n}");
        }
    }
}
