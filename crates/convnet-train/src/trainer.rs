//! The training loop: epochs over a batch source, evaluation after each epoch,
//! callbacks, checkpoints, and exact resume.

use std::path::PathBuf;
use std::time::Instant;

use convnet_layers::memory::Usage;
use convnet_layers::Layer;
use serde::{Deserialize, Serialize};

use crate::callback::{BatchReport, Callback};
use crate::checkpoint::{Checkpoint, ModelInfo, TrainState};
use crate::clip::clip_grad_norm;
use crate::defaults;
use crate::distributed::{Communicator, Distributed};
use crate::error::{Result, TrainError};
use crate::history::{EpochRecord, History};
use crate::loss::training_loss;
use crate::metrics::topk_correct;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::{LrSchedule, ScheduleKind};

pub(crate) use crate::eval::{eval_sums, refuse_if_too_big_batch};
pub use crate::eval::{evaluate, EvalReport};
pub use convnet_datasets::Batch;

/// Anything that yields the batches of an epoch.
///
/// For exact resume, the batches of epoch `e` must be a pure function of the
/// source's seed and `e` (the datasets crate's loader shuffles that way).
pub trait BatchSource: Sync {
    /// Samples per epoch.
    fn num_samples(&self) -> usize;
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// The batches of epoch `epoch` (0-based), in order.
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;
}

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to train (in total, counting resumed ones).
    pub epochs: usize,
    /// Optimizer and its base learning rate.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule after warm-up.
    pub schedule: ScheduleKind,
    /// Linear warm-up steps; `None`: [`defaults::warmup_steps`] of the
    /// run's length (5% of its steps, at most 200). Old checkpoints, which
    /// stored a number, read back as `Some`.
    pub warmup_steps: Option<usize>,
    /// Clip gradients to this global norm.
    pub clip_grad_norm: Option<f32>,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f32,
}

impl Default for TrainConfig {
    /// The [`defaults`]: 10 epochs of SGD (lr 0.05, momentum 0.9, Nesterov,
    /// weight decay 5e-4) with cosine annealing after a linear warm-up that
    /// scales with the run ([`defaults::warmup_steps`]: 5% of the steps, at
    /// most 200).
    ///
    /// ```
    /// use convnet_train::TrainConfig;
    /// let config = TrainConfig::default();
    /// assert_eq!(config.warmup_steps, None);
    /// assert_eq!(config.warmup_for(10 * 938), 200); // 10 epochs of MNIST, batches of 64
    /// assert_eq!(config.warmup_for(3 * 10), 1); // 3 epochs of 10 batches
    /// ```
    fn default() -> Self {
        TrainConfig {
            epochs: defaults::EPOCHS,
            optimizer: OptimizerConfig::Sgd {
                lr: defaults::SGD_LR,
                momentum: defaults::MOMENTUM,
                nesterov: defaults::NESTEROV,
                weight_decay: defaults::WEIGHT_DECAY,
            },
            schedule: defaults::SCHEDULE,
            warmup_steps: None,
            clip_grad_norm: None,
            label_smoothing: defaults::LABEL_SMOOTHING,
        }
    }
}

impl TrainConfig {
    /// The warm-up steps of a run of `total_steps` optimizer steps: the
    /// given [`TrainConfig::warmup_steps`], else [`defaults::warmup_steps`].
    pub fn warmup_for(&self, total_steps: usize) -> usize {
        self.warmup_steps
            .unwrap_or_else(|| defaults::warmup_steps(total_steps))
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::Config("epochs must be >= 1".into()));
        }
        self.optimizer.validate()?;
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(TrainError::Config(format!(
                    "gradient clipping norm must be > 0, got {c}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::Config(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            )));
        }
        // The schedule's own checks, with placeholder sizes.
        LrSchedule::new(self.optimizer.lr(), self.schedule, self.warmup_for(1), 1, 1)?;
        Ok(())
    }
}

/// Where and how the trainer saves a checkpoint after every epoch.
#[derive(Debug, Clone)]
pub struct CheckpointTarget {
    /// The checkpoint file (replaced atomically after each epoch).
    pub path: PathBuf,
    /// Model name, configuration and class names stored in the header.
    pub info: ModelInfo,
    /// Settings of the calling program to store for resuming (JSON).
    pub run_settings: String,
}

/// Trains a model: epochs of forward, cross-entropy, backward, optional
/// clipping and an optimizer step at the scheduled learning rate; then an
/// evaluation, a history record, a checkpoint and the callbacks.
///
/// The same seed (weights, loader, dropout) and thread count give the same
/// weights bit for bit, including across a stop and a [`Trainer::resume`].
///
/// ```
/// use convnet_layers::{Layer, Linear, LinearConfig};
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_train::{Batch, BatchSource, OptimizerConfig, Result, ScheduleKind,
///                     TrainConfig, Trainer};
///
/// /// Two classes: the sign of the first feature.
/// struct Signs;
/// impl BatchSource for Signs {
///     fn num_samples(&self) -> usize { 64 }
///     fn num_batches(&self) -> usize { 4 }
///     fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
///         let mut rng = Rng::seed_from(epoch as u64);
///         Box::new((0..4).map(move |_| {
///             let images = Tensor::randn(&[16, 2], 0.0, 1.0, &mut rng);
///             let labels = images.as_slice().chunks(2).map(|r| usize::from(r[0] > 0.0)).collect();
///             Ok(Batch::new(images, labels))
///         }))
///     }
/// }
///
/// let model = Linear::new(LinearConfig::new(2, 2), &mut Rng::seed_from(0))?;
/// let config = TrainConfig {
///     epochs: 20,
///     optimizer: OptimizerConfig::sgd(0.5, 0.9),
///     schedule: ScheduleKind::Constant,
///     ..TrainConfig::default()
/// };
/// // The trainer owns the model while it trains...
/// let mut trainer = Trainer::new(model, config, 2)?;
/// let history = trainer.fit(&Signs, Some(&Signs))?;
/// assert_eq!(history.records.len(), 20);
/// assert!(history.last().unwrap().test_accuracy.unwrap() > 0.9);
/// // ...and gives it back.
/// let model: Linear = trainer.into_model();
/// assert_eq!(model.num_params(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The model is any [`Layer`] by value: a concrete type (then
/// [`Trainer::into_model`] gives it back with its type) or a
/// `Box<dyn Layer>` (a zoo model). To keep using a model you own
/// elsewhere, hand it over and take it back with [`Trainer::into_model`].
pub struct Trainer<M: Layer = Box<dyn Layer>> {
    model: M,
    config: TrainConfig,
    optimizer: Optimizer,
    epochs_done: usize,
    global_step: u64,
    history: History,
    callbacks: Vec<Box<dyn Callback>>,
    checkpoint: Option<CheckpointTarget>,
    num_classes: usize,
    /// Names of the frozen parameters, in visiting order.
    frozen: Vec<String>,
    /// Data-parallel training ([`Trainer::distribute`]).
    distributed: Option<Distributed>,
}

impl<M: Layer> Trainer<M> {
    /// A trainer that owns `model`, whose output is `[N, num_classes]`
    /// logits.
    pub fn new(model: M, config: TrainConfig, num_classes: usize) -> Result<Self> {
        config.validate()?;
        if num_classes == 0 {
            return Err(TrainError::Config("num_classes must be >= 1".into()));
        }
        let optimizer = Optimizer::new(config.optimizer.clone(), &model)?;
        Ok(Trainer {
            model,
            config,
            optimizer,
            epochs_done: 0,
            global_step: 0,
            history: History::default(),
            callbacks: Vec::new(),
            checkpoint: None,
            num_classes,
            frozen: Vec::new(),
            distributed: None,
        })
    }

    /// Freezes the parameters whose PyTorch-style name `frozen` accepts
    /// (`|k| !k.starts_with("fc.")` trains ResNet's head only) and unfreezes
    /// the others; returns how many parameter tensors are frozen.
    ///
    /// A frozen parameter is never changed: the optimizer skips it (no
    /// update, no weight decay, no momentum, no buffers in its state), and
    /// gradient clipping does not count it. The model is told through
    /// [`Layer::set_frozen`]: BatchNorm layers whose parameters are frozen
    /// run in inference mode (their running statistics are used and stay
    /// unchanged: Keras's behaviour for `trainable = False`, where PyTorch's
    /// `requires_grad_(False)` alone would keep updating them), a
    /// BatchNorm without parameters does so as soon as anything is frozen,
    /// and a `Sequential` model skips the backward pass through its frozen
    /// leading layers. So a frozen backbone's tensors, buffers included,
    /// stay bit-identical.
    ///
    /// The setting is saved in checkpoints ([`TrainState::frozen`]) and
    /// restored by [`Trainer::resume`]. Freezing every parameter is an
    /// error (nothing would train).
    pub fn freeze(&mut self, frozen: &dyn Fn(&str) -> bool) -> Result<usize> {
        let (mut names, mut total) = (Vec::new(), 0usize);
        self.model.visit_params("", &mut |name, _| {
            total += 1;
            if frozen(name) {
                names.push(name.to_string());
            }
        });
        if total > 0 && names.len() == total {
            return Err(TrainError::Config(format!(
                "every one of the model's {total} parameter tensors is frozen: nothing would train"
            )));
        }
        self.apply_frozen(names);
        Ok(self.frozen.len())
    }

    /// Names of the frozen parameters ([`Trainer::freeze`]), in visiting
    /// order; empty when everything trains.
    pub fn frozen(&self) -> &[String] {
        &self.frozen
    }

    /// Freezes exactly the parameters `names` (the model and the optimizer).
    fn apply_frozen(&mut self, names: Vec<String>) {
        let frozen: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut trainable = std::collections::HashSet::new();
        self.model.visit_params("", &mut |name, _| {
            if !frozen.contains(name) {
                trainable.insert(name.to_string());
            }
        });
        if frozen.is_empty() {
            self.model.set_frozen("", &|_| false);
        } else {
            // Every key that is not a trainable parameter is frozen: buffers
            // of parameter-free BatchNorm layers included.
            self.model.set_frozen("", &|k| !trainable.contains(k));
        }
        self.optimizer.set_frozen(&|k| frozen.contains(k));
        self.frozen = names;
    }

    /// Trains data-parallel over `comm` ([`crate::distributed`]): this rank
    /// trains on its shard of every global batch, gradients and counters are
    /// summed over the ranks, evaluations are sharded, and only rank 0
    /// writes the checkpoint. Add callbacks that write or print on rank 0
    /// only ([`Trainer::rank`]).
    pub fn distribute(&mut self, comm: Box<dyn Communicator>) {
        self.distributed = Some(Distributed::new(comm));
    }

    /// This process's rank (0 unless [`Trainer::distribute`]d).
    pub fn rank(&self) -> usize {
        self.distributed.as_ref().map_or(0, |d| d.comm().rank())
    }

    /// Evaluates the model on `data` ([`evaluate`]; sharded over the ranks
    /// and summed when [`Trainer::distribute`]d).
    pub fn evaluate(&self, data: &dyn BatchSource) -> Result<EvalReport> {
        match &self.distributed {
            Some(d) => d.evaluate(&self.model, data, self.num_classes),
            None => evaluate(&self.model, data, self.num_classes),
        }
    }

    /// Adds a callback (called in the order added).
    pub fn add_callback(&mut self, callback: Box<dyn Callback>) {
        self.callbacks.push(callback);
    }

    /// Saves a checkpoint after every epoch.
    pub fn checkpoint_to(&mut self, target: CheckpointTarget) {
        self.checkpoint = Some(target);
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Sets the total number of epochs (e.g. to extend a resumed run).
    pub fn set_epochs(&mut self, epochs: usize) -> Result<()> {
        if epochs == 0 {
            return Err(TrainError::Config("epochs must be >= 1".into()));
        }
        self.config.epochs = epochs;
        Ok(())
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, to change (weights loaded by hand, a layer replaced
    /// before training). The optimizer's state was built for its parameter
    /// names and shapes when the trainer was made: keep them.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Ends training and gives the model back, with its trained weights.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The state to save in a checkpoint.
    pub fn train_state(&self, run_settings: &str) -> Result<TrainState> {
        Ok(TrainState {
            epochs_done: self.epochs_done,
            global_step: self.global_step,
            optimizer: self.optimizer.state().clone(),
            config: serde_json::to_string(&self.config)
                .map_err(|e| TrainError::invalid("Trainer::train_state", e.to_string()))?,
            run_settings: run_settings.to_string(),
            threads: rayon::current_num_threads(),
            history: self.history.clone(),
            frozen: self.frozen.clone(),
        })
    }

    /// The run configuration stored in a checkpoint's training state.
    pub fn config_from_state(state: &TrainState) -> Result<TrainConfig> {
        serde_json::from_str(&state.config).map_err(|e| {
            TrainError::Mismatch(format!("the checkpoint's training configuration: {e}"))
        })
    }

    /// Restores the model (weights, buffers, generators) and the training
    /// state (optimizer, step, epochs done, history) from a checkpoint made by
    /// this trainer's configuration; training continues at the next epoch.
    /// The frozen parameters are the checkpoint's ([`TrainState::frozen`]),
    /// whatever [`Trainer::freeze`] said before.
    pub fn resume(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let state = checkpoint.payload.train.as_ref().ok_or_else(|| {
            TrainError::Mismatch(
                "the checkpoint holds weights only (no optimizer state): it cannot resume a run"
                    .into(),
            )
        })?;
        let saved = Self::config_from_state(state)?;
        if self.config.epochs < state.epochs_done {
            return Err(TrainError::Config(format!(
                "the run asks for {} epochs, but the checkpoint has already done {}",
                self.config.epochs, state.epochs_done
            )));
        }
        if saved.optimizer.kind() != self.config.optimizer.kind() {
            return Err(TrainError::Mismatch(format!(
                "the checkpoint was trained with `{}`, this run uses `{}`",
                saved.optimizer.kind(),
                self.config.optimizer.kind()
            )));
        }
        checkpoint.apply_to(&mut self.model)?;
        self.apply_frozen(state.frozen.clone());
        self.optimizer.load_state(state.optimizer.clone())?;
        self.epochs_done = state.epochs_done;
        self.global_step = state.global_step;
        self.history = state.history.clone();
        Ok(())
    }

    /// Trains until `config.epochs` epochs are done, evaluating on `test`
    /// after each, and returns the history.
    ///
    /// A non-finite loss stops training with [`TrainError::NonFiniteLoss`]
    /// naming the epoch and batch, a non-finite test loss with
    /// [`TrainError::NonFiniteTestLoss`] before that epoch is checkpointed:
    /// the checkpoint left is the last one whose evaluation was finite.
    pub fn fit(
        &mut self,
        train: &dyn BatchSource,
        test: Option<&dyn BatchSource>,
    ) -> Result<&History> {
        self.fit_until(train, test, self.config.epochs)
    }

    /// Like [`Trainer::fit`], but stops after epoch `until` (at most
    /// `config.epochs`), as if the run had been interrupted there: the
    /// schedule is still the one of the whole run, so resuming from the
    /// checkpoint later continues it exactly.
    pub fn fit_until(
        &mut self,
        train: &dyn BatchSource,
        test: Option<&dyn BatchSource>,
        until: usize,
    ) -> Result<&History> {
        if until == 0 {
            return Err(TrainError::Config(
                "stopping after epoch 0 trains nothing: stop after epoch 1 or later".into(),
            ));
        }
        let steps_per_epoch = train.num_batches();
        if steps_per_epoch == 0 {
            return Err(TrainError::Data(
                "the training set yields no batch (is it smaller than one batch?)".into(),
            ));
        }
        let warmup = self
            .config
            .warmup_for(steps_per_epoch.saturating_mul(self.config.epochs));
        let schedule = LrSchedule::new(
            self.config.optimizer.lr(),
            self.config.schedule,
            warmup,
            steps_per_epoch,
            self.config.epochs,
        )?;
        if let Some(d) = &self.distributed {
            d.check_start(&self.model, train)?;
        }
        let epochs = self.config.epochs;
        while self.epochs_done < epochs.min(until) {
            let epoch = self.epochs_done + 1;
            for cb in &mut self.callbacks {
                cb.on_epoch_start(epoch, epochs, steps_per_epoch)?;
            }
            let start = Instant::now();
            let (mut loss_sum, mut correct, mut seen, mut batches) =
                (0.0f64, 0usize, 0usize, 0usize);
            let mut lr = schedule.lr_at(self.global_step as usize);
            for (index, batch) in train.batches(epoch - 1).enumerate() {
                let batch = batch?;
                let global = batch.labels.len();
                let batch = match &self.distributed {
                    Some(d) => d.shard(batch)?,
                    None => batch,
                };
                let local = batch.labels.len();
                if index == 0 && local > 0 {
                    // Shapes only: a batch the machine cannot hold is an
                    // error, not an abort in the middle of the forward pass.
                    let usage = Usage::Training {
                        optimizer_slots: self.config.optimizer.buffers(),
                    };
                    refuse_if_too_big_batch(&self.model, batch.images.shape(), usage, "training")?;
                }
                // The batch's images are ours: layers that can reuse their
                // memory do (`forward_owned`).
                self.model.zero_grad();
                let (mut loss, mut batch_correct) = (0.0, 0);
                if local > 0 {
                    let logits = self.model.forward_owned(batch.images)?;
                    // The main loss plus the weighted losses of auxiliary
                    // heads (GoogLeNet's), each with its gradient.
                    let out = training_loss(
                        &self.model,
                        &logits,
                        &batch.labels,
                        self.config.label_smoothing,
                    )?;
                    (loss, batch_correct) = (out.loss, topk_correct(&logits, &batch.labels, 1)?);
                    // Nobody needs the gradient of the images.
                    if loss.is_finite() {
                        self.model
                            .backward_params_with_aux(&out.grad, &out.grad_aux)?;
                    }
                }
                if let Some(d) = &mut self.distributed {
                    (loss, batch_correct) =
                        d.reduce_step(&mut self.model, loss, batch_correct, local, global)?;
                }
                if !loss.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        epoch,
                        batch: index + 1,
                        loss,
                    });
                }
                correct += batch_correct;
                seen += global;
                loss_sum += loss as f64;
                batches += 1;
                if let Some(max_norm) = self.config.clip_grad_norm {
                    if !self.frozen.is_empty() {
                        // Frozen gradients the backward pass computed on
                        // its way do not count in the norm.
                        let (optimizer, mut index) = (&self.optimizer, 0);
                        self.model.visit_params_mut("", &mut |_, p| {
                            if optimizer.is_frozen(index) {
                                p.zero_grad();
                            }
                            index += 1;
                        });
                    }
                    clip_grad_norm(&mut self.model, max_norm)?;
                }
                lr = schedule.lr_at(self.global_step as usize);
                self.optimizer.step(&mut self.model, lr)?;
                self.global_step += 1;
                if !self.callbacks.is_empty() {
                    let elapsed = start.elapsed().as_secs_f64();
                    let report = BatchReport {
                        epoch,
                        epochs,
                        batch: index + 1,
                        batches: steps_per_epoch,
                        loss: loss_sum / batches as f64,
                        accuracy: correct as f64 / seen as f64,
                        images_per_second: seen as f64 / elapsed.max(1e-9),
                        elapsed,
                        eta: elapsed / (index + 1) as f64
                            * steps_per_epoch.saturating_sub(index + 1) as f64,
                        lr,
                    };
                    for cb in &mut self.callbacks {
                        cb.on_batch_end(&report)?;
                    }
                }
            }
            if batches == 0 {
                return Err(TrainError::Data(format!("epoch {epoch} yielded no batch")));
            }
            let train_seconds = start.elapsed().as_secs_f64();
            for cb in &mut self.callbacks {
                cb.on_eval_start(epoch)?;
            }
            if let Some(d) = &self.distributed {
                d.end_epoch(&mut self.model, epoch)?;
            }
            let eval = match test {
                Some(t) => Some(self.evaluate(t)?),
                None => None,
            };
            // A diverged model is not checkpointed: the file on disk stays
            // the last one whose evaluation was finite.
            if let Some(e) = eval.as_ref().filter(|e| !e.loss.is_finite()) {
                return Err(TrainError::NonFiniteTestLoss {
                    epoch,
                    loss: e.loss,
                });
            }
            let record = EpochRecord {
                epoch,
                train_loss: loss_sum / batches as f64,
                train_accuracy: correct as f64 / seen as f64,
                test_loss: eval.as_ref().map(|e| e.loss),
                test_accuracy: eval.as_ref().map(|e| e.accuracy),
                test_top5: eval.as_ref().map(|e| e.top5),
                lr: lr as f64,
                train_seconds,
                eval_seconds: eval.as_ref().map(|e| e.seconds).unwrap_or(0.0),
                images_per_second: seen as f64 / train_seconds.max(1e-9),
            };
            self.history.records.push(record.clone());
            self.epochs_done = epoch;
            if let Some(target) = self.checkpoint.as_ref().filter(|_| self.rank() == 0) {
                let state = self.train_state(&target.run_settings)?;
                let ck = Checkpoint::capture(&mut self.model, &target.info, epoch, Some(state));
                ck.save(&target.path)?;
            }
            for cb in &mut self.callbacks {
                cb.on_epoch_end(&record, eval.as_ref(), &self.history)?;
            }
        }
        Ok(&self.history)
    }
}

#[cfg(test)]
mod tests;
