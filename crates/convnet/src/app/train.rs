//! `convnet train`: a whole training run and its output folder.

use std::path::{Path, PathBuf};

use convnet_datasets::{Augment, DatasetSpec};
use convnet_tensor::Rng;
use convnet_train::distributed::Communicator;
use convnet_train::progress::thousands;
use convnet_train::{
    defaults, plot, Callback, Checkpoint, CheckpointTarget, EvalReport, History, HistoryWriter,
    ModelInfo, OptimizerConfig, OptimizerKind, Preprocessing, ProgressPrinter, ScheduleKind,
    TrainConfig, TrainError, Trainer,
};
use convnet_zoo::ModelConfig;
use serde::{Deserialize, Serialize};

use super::sources::{open_run_data, DataRequest};
use super::{AppError, ProgressMode, Result};

/// The file names inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.ckpt";

/// `convnet train`'s training batch size unless `--batch-size` says
/// otherwise (the trainer's own defaults are in [`convnet_train::defaults`]).
pub const BATCH_SIZE: usize = 64;

/// `convnet train`'s evaluation batch size.
pub const EVAL_BATCH_SIZE: usize = 1000;

/// `convnet train`'s seed of the weights, shuffling, dropout and
/// augmentation.
pub const SEED: u64 = 42;

/// Fraction of an image folder held out for validation when it has no
/// `train/` and `val/` folders.
pub const VAL_FRACTION: f64 = 0.1;

/// What [`load_initial_weights`] did.
#[derive(Debug, Clone)]
pub struct InitialWeights {
    /// The report of the loading (the head's keys excluded when it was
    /// re-initialised).
    pub report: convnet_weights::LoadReport,
    /// The head's keys that kept their fresh initialisation because the
    /// weights' head has another number of classes (or none).
    pub reinitialised_head: Vec<String>,
}

/// Loads initial weights into a freshly built model (fine-tuning) and prints
/// what was loaded.
///
/// The classifier head ([`convnet_zoo::head_keys`] for `num_classes`) is
/// re-initialised when the weights' head has another shape (another number
/// of classes) or is absent: the model keeps its fresh head, and the keys
/// are listed. Every other key must match in name and shape (strict), unless
/// `non_strict`: then what does not fit also keeps its initialisation and is
/// reported.
pub fn load_initial_weights(
    model: &mut dyn convnet_layers::Layer,
    path: &Path,
    non_strict: bool,
    num_classes: usize,
) -> Result<InitialWeights> {
    let file = super::weights::read_weights(path)?;
    let mut state = file.state;
    let shapes: std::collections::HashMap<String, Vec<usize>> =
        convnet_weights::model_shapes(model).into_iter().collect();
    let mut reinitialised_head = Vec::new();
    let mut weights_classes = None;
    for key in convnet_zoo::head_keys(model, num_classes) {
        let fits = match state.get(&key) {
            Some(t) => {
                if key.ends_with("weight") && weights_classes.is_none() {
                    weights_classes = t.shape().first().copied();
                }
                Some(t.shape()) == shapes.get(&key).map(Vec::as_slice)
            }
            None => false,
        };
        if !fits {
            state.remove(&key);
            reinitialised_head.push(key);
        }
    }
    let report = state.check(model);
    let head_missing = |k: &str| reinitialised_head.iter().any(|h| h == k);
    let other_problems = !report.unexpected.is_empty()
        || !report.mismatched.is_empty()
        || report.missing.iter().any(|(k, _)| !head_missing(k));
    if other_problems && !non_strict {
        let mut shown = report.clone();
        shown.missing.retain(|(k, _)| !head_missing(k));
        return Err(AppError::Usage(format!(
            "{}: {shown}\n(give --weights-non-strict to load what fits and re-initialise the rest)",
            path.display()
        )));
    }
    let report = state
        .load_into(model, convnet_weights::LoadMode::NonStrict)
        .map_err(|e| AppError::Usage(format!("{}: {e}", path.display())))?;
    println!(
        "initial weights: {} tensors loaded from {} ({} file)",
        report.loaded.len(),
        path.display(),
        file.kind.name()
    );
    if !reinitialised_head.is_empty() {
        let had = match weights_classes {
            Some(k) => format!("the weights' head has {k} classes"),
            None => "the weights have no head".to_string(),
        };
        println!(
            "re-initialised head ({had}, this model {num_classes}): {}",
            reinitialised_head.join(", ")
        );
    }
    if other_problems {
        println!("{report}");
        let fresh: Vec<&str> = report
            .not_loaded()
            .into_iter()
            .filter(|k| !head_missing(k))
            .collect();
        if !fresh.is_empty() {
            println!(
                "re-initialised (trained from scratch): {}",
                fresh.join(", ")
            );
        }
    }
    Ok(InitialWeights {
        report,
        reinitialised_head,
    })
}

/// Everything that defines a training run. Saved in the checkpoint, so that
/// `--resume` continues with the same settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Zoo model name.
    pub model: String,
    /// Model variant (`1998` for LeNet-5's tanh + average pooling).
    pub variant: Option<String>,
    /// Dataset: MNIST, Fashion-MNIST, CIFAR-10/100 or an image folder.
    pub dataset: DatasetSpec,
    /// Data folder (`--data-dir`), else `$CONVNET_DATA`, else `./data`.
    pub data_dir: Option<PathBuf>,
    /// Never download.
    pub offline: bool,
    /// Epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: OptimizerKind,
    /// Base learning rate (`None`: [`OptimizerKind::default_lr`], 0.05 for
    /// SGD, 0.001 for Adam/AdamW).
    pub lr: Option<f32>,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay (L2 for SGD/Adam, decoupled for AdamW).
    pub weight_decay: f32,
    /// Learning-rate schedule after warm-up.
    pub schedule: ScheduleKind,
    /// Linear warm-up steps (`None`: [`defaults::warmup_steps`], 5% of the
    /// run's steps, at most 200).
    pub warmup_steps: Option<usize>,
    /// Gradient clipping by global norm.
    pub clip_grad_norm: Option<f32>,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Random translation of training images by up to this many pixels.
    pub translate: usize,
    /// Random horizontal flips (Fashion-MNIST only).
    pub hflip: bool,
    /// Seed of the weights, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Output folder; `None`: `<runs_dir>/<model>-<dataset>-<time>`.
    pub out_dir: Option<PathBuf>,
    /// Parent of the automatic output folders.
    pub runs_dir: PathBuf,
    /// Train on the first N training images only.
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    pub limit_test: Option<usize>,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Progress display.
    pub progress: ProgressMode,
    /// Stop after this epoch as if interrupted (the schedule stays the one of
    /// `epochs`; `--resume` continues exactly).
    #[serde(default)]
    pub stop_after: Option<usize>,
    /// Initial weights (fine-tuning): a PyTorch, safetensors or convnet
    /// checkpoint file loaded into the model before the first step.
    #[serde(default)]
    pub weights: Option<PathBuf>,
    /// Load the initial weights non-strictly: tensors whose key or shape do
    /// not match the model (a head of another size) keep their fresh
    /// initialisation, and are reported.
    #[serde(default)]
    pub weights_non_strict: bool,
    /// Train the classifier head only ([`convnet_zoo::head_keys`]): every
    /// other parameter is frozen (BatchNorm statistics included, see
    /// [`convnet_train::Trainer::freeze`]). Needs `weights`: a frozen
    /// random backbone is no fine-tuning. A resumed run takes the frozen
    /// parameters from its checkpoint.
    #[serde(default)]
    pub freeze_backbone: bool,
    /// Input side for CIFAR and image folders (`None`: 32 for CIFAR, the
    /// model's usual size for folders); MNIST and Fashion-MNIST are 28.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Fraction of an image folder without `train/` and `val/` folders held
    /// out for validation (per class, seeded by `seed`).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Leave out unreadable images of a folder (each reported) instead of
    /// refusing the folder.
    #[serde(default)]
    pub skip_bad_images: bool,
    /// CIFAR and folders: train on torchvision's RandomResizedCrop instead
    /// of the whole (resized) image.
    #[serde(default)]
    pub random_resized_crop: bool,
    /// CIFAR and folders: ColorJitter (brightness, contrast, saturation,
    /// hue) of training images.
    #[serde(default)]
    pub color_jitter: Option<[f64; 4]>,
    /// CIFAR and folders: per-channel normalisation means (`None`: CIFAR's
    /// constants, or computed from a folder's training images).
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviations, with `mean`.
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    /// Start a new run in a folder that holds another run's checkpoint,
    /// replacing it (`--overwrite`). Not a setting of the run: never saved.
    #[serde(skip)]
    pub overwrite: bool,
}

impl TrainOptions {
    /// The defaults of `convnet train` for a model and a dataset: the
    /// trainer's [`defaults`] (10 epochs of SGD with Nesterov momentum 0.9,
    /// lr 0.05 with a warm-up of 5% of the steps, at most 200, and cosine
    /// annealing, weight decay 5e-4), batches of [`BATCH_SIZE`]; light
    /// augmentation: random 1-pixel shifts on MNIST (99.43% against about
    /// 99.3% without), random horizontal flips on Fashion-MNIST (91.2%; shifts
    /// cost it 0.4 points in 10 epochs); seed 42.
    pub fn new(model: &str, dataset: impl Into<DatasetSpec>) -> Self {
        let dataset = dataset.into();
        // Shifts help digits; flips suit clothes, objects and photos.
        let (translate, hflip) = match &dataset {
            DatasetSpec::Mnist => (1, false),
            DatasetSpec::FashionMnist => (0, true),
            DatasetSpec::Cifar10 | DatasetSpec::Cifar100 => (4, true),
            DatasetSpec::Folder(_) => (0, true),
        };
        TrainOptions {
            model: model.to_string(),
            variant: None,
            dataset,
            data_dir: None,
            offline: false,
            epochs: defaults::EPOCHS,
            batch_size: BATCH_SIZE,
            optimizer: OptimizerKind::default(),
            lr: None,
            momentum: defaults::MOMENTUM,
            nesterov: defaults::NESTEROV,
            weight_decay: defaults::WEIGHT_DECAY,
            schedule: defaults::SCHEDULE,
            warmup_steps: None,
            clip_grad_norm: None,
            label_smoothing: defaults::LABEL_SMOOTHING,
            translate,
            hflip,
            image_size: None,
            val_fraction: VAL_FRACTION,
            skip_bad_images: false,
            random_resized_crop: false,
            color_jitter: None,
            mean: None,
            std: None,
            seed: SEED,
            out_dir: None,
            runs_dir: PathBuf::from("runs"),
            weights: None,
            weights_non_strict: false,
            freeze_backbone: false,
            limit_train: None,
            limit_test: None,
            eval_batch_size: EVAL_BATCH_SIZE,
            progress: ProgressMode::Auto,
            stop_after: None,
            overwrite: false,
        }
    }

    /// The optimizer configuration these options describe.
    pub fn optimizer_config(&self) -> Result<OptimizerConfig> {
        let lr = self.lr.unwrap_or(self.optimizer.default_lr());
        let config = match self.optimizer {
            OptimizerKind::Sgd => OptimizerConfig::Sgd {
                lr,
                momentum: self.momentum,
                nesterov: self.nesterov && self.momentum > 0.0,
                weight_decay: self.weight_decay,
            },
            OptimizerKind::Adam => OptimizerConfig::adam(lr).with_weight_decay(self.weight_decay),
            OptimizerKind::AdamW => OptimizerConfig::adamw(lr, self.weight_decay),
        };
        config.validate()?;
        Ok(config)
    }

    /// The trainer's configuration.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let config = TrainConfig {
            epochs: self.epochs,
            optimizer: self.optimizer_config()?,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            clip_grad_norm: self.clip_grad_norm,
            label_smoothing: self.label_smoothing,
        };
        config.validate()?;
        Ok(config)
    }

    /// The model configuration for the dataset.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            variant: self.variant.clone(),
            ..ModelConfig::mnist()
        }
    }

    /// Checks every option before anything runs.
    pub fn validate(&self) -> Result<()> {
        let entry = convnet_zoo::entry(&self.model)?;
        if let Some(v) = &self.variant {
            if !entry.variants.contains(&v.as_str()) {
                return Err(AppError::Usage(if entry.variants.is_empty() {
                    format!("{} has no variants (got --variant {v})", entry.name)
                } else {
                    format!(
                        "unknown variant `{v}` of {}: valid variants are {}",
                        entry.name,
                        entry.variants.join(", ")
                    )
                }));
            }
        }
        if self.stop_after == Some(0) {
            return Err(AppError::Usage(
                "--stop-after-epoch 0 trains nothing: give 1 or more".into(),
            ));
        }
        if self.freeze_backbone && self.weights.is_none() {
            return Err(AppError::Usage(
                "--freeze-backbone trains the head on top of trained weights: give --weights FILE \
                 (a frozen, randomly initialised backbone learns nothing)"
                    .into(),
            ));
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(AppError::Usage("batch sizes must be >= 1".into()));
        }
        if let Some(kind) = self.dataset.idx_kind() {
            Augment {
                translate: self.translate,
                hflip: self.hflip,
            }
            .validate(kind)?;
        }
        let extras = self.random_resized_crop
            || self.color_jitter.is_some()
            || self.mean.is_some()
            || self.image_size.is_some();
        if extras && self.dataset.idx_kind().is_some() {
            return Err(AppError::Usage(format!(
                "--image-size, --random-resized-crop, --color-jitter, --mean and --std are for \
                 CIFAR and image folders; {} uses --translate and --hflip",
                self.dataset.title()
            )));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(AppError::Usage(format!(
                "--val-fraction must be in [0, 1), got {}",
                self.val_fraction
            )));
        }
        self.train_config()?;
        Ok(())
    }
}

fn default_val_fraction() -> f64 {
    VAL_FRACTION
}

/// What a run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The run folder.
    pub out_dir: PathBuf,
    /// The checkpoint of the last epoch.
    pub checkpoint: PathBuf,
    /// Per-epoch figures.
    pub history: History,
    /// The final evaluation on the test set.
    pub eval: EvalReport,
    /// Every file written, for the final message.
    pub files: Vec<PathBuf>,
}

/// `YYYYMMDD-HHMMSS` in UTC, for run folder names.
pub fn timestamp() -> String {
    crate::tensor::format::utc_timestamp(std::time::SystemTime::now())
}

/// `1 epoch`, `2 epochs`.
fn epochs_text(n: usize) -> String {
    if n == 1 {
        "1 epoch".into()
    } else {
        format!("{n} epochs")
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(dir) {
        if !meta.is_dir() {
            return Err(AppError::Usage(format!(
                "{}: the output folder is {}, not a folder",
                dir.display(),
                convnet_tensor::fileio::describe(&meta.file_type())
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| AppError::io(dir, e))
}

/// Options of a resumed run: the saved ones, with `epochs` replaced if given
/// (it may not be below the epochs already done).
pub fn resume_options(checkpoint: &Checkpoint, epochs: Option<usize>) -> Result<TrainOptions> {
    let state = checkpoint.payload.train.as_ref().ok_or_else(|| {
        AppError::Usage(
            "this checkpoint holds weights only (no training state): it cannot be resumed".into(),
        )
    })?;
    let mut opts: TrainOptions = serde_json::from_str(&state.run_settings).map_err(|e| {
        AppError::Usage(format!(
            "this checkpoint was not written by `convnet train` (its run settings do not parse: \
             {e})"
        ))
    })?;
    if let Some(e) = epochs {
        if e < state.epochs_done {
            return Err(AppError::Usage(format!(
                "--epochs {e} is below the {} epochs this checkpoint has already done",
                state.epochs_done
            )));
        }
        opts.epochs = e;
    }
    opts.stop_after = None;
    opts.overwrite = false;
    Ok(opts)
}

/// Prepares a run folder for writing: creates it, locks it against other
/// runs (the lock is released when the returned guard is dropped, see
/// [`convnet_train::fsutil::FolderLock`] for stale locks), removes the
/// temporary files a killed run left, and, for a new run (`resuming` false),
/// refuses a folder that holds another run's checkpoint unless `overwrite`.
pub fn prepare_run_folder(
    out_dir: &Path,
    resuming: bool,
    overwrite: bool,
) -> Result<convnet_train::fsutil::FolderLock> {
    create_dir(out_dir)?;
    let lock = convnet_train::fsutil::FolderLock::acquire(out_dir)?;
    let removed = convnet_train::fsutil::remove_temporaries(out_dir)?;
    if !removed.is_empty() {
        println!(
            "removed {} temporary file(s) left by an interrupted run in {}",
            removed.len(),
            out_dir.display()
        );
    }
    let checkpoint = out_dir.join(CHECKPOINT_FILE);
    if !resuming && overwrite && checkpoint.exists() {
        // The old run's checkpoint must not pass for this run's.
        std::fs::remove_file(&checkpoint).map_err(|e| AppError::io(&checkpoint, e))?;
    }
    if !resuming && !overwrite && checkpoint.exists() {
        let what = match Checkpoint::read_header(&checkpoint) {
            Ok(h) => format!(
                "a checkpoint of another run ({}, epoch {})",
                h.model, h.epoch
            ),
            Err(_) => "a checkpoint of another run".to_string(),
        };
        return Err(AppError::Usage(format!(
            "{} holds {what}: give --resume {} to continue it, --overwrite to replace it, or \
             another --out-dir",
            out_dir.display(),
            checkpoint.display()
        )));
    }
    Ok(lock)
}

/// Runs `convnet train`: finds (or downloads) the dataset, builds the model,
/// trains with progress, evaluates after each epoch, writes the checkpoint,
/// the history (CSV, JSON), the curves and the confusion matrix (text and
/// PNG) into the run folder, and returns what it did.
///
/// With `resume`, the model, optimizer, schedule position and generators are
/// restored from the checkpoint and training goes on from the next epoch in
/// the checkpoint's folder; with the same thread count the final weights are
/// bit-identical to an uninterrupted run's.
pub fn run_train(opts: &TrainOptions, resume: Option<&Path>) -> Result<TrainOutcome> {
    run_train_on(opts, resume, None)
}

/// [`run_train`] as one rank of a data-parallel job over `comm` (`None`:
/// alone): every rank trains on its shard of each global batch of
/// `opts.batch_size`; rank 0 alone prints, locks and writes the run folder
/// (the others return an outcome without files).
pub fn run_train_on(
    opts: &TrainOptions,
    resume: Option<&Path>,
    comm: Option<Box<dyn Communicator>>,
) -> Result<TrainOutcome> {
    opts.validate()?;
    let checkpoint = match resume {
        Some(path) => Some(Checkpoint::load(path)?),
        None => None,
    };
    let out_dir = match (resume, &opts.out_dir) {
        (Some(path), _) => path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        (None, Some(dir)) => dir.clone(),
        (None, None) => opts.runs_dir.join(format!(
            "{}-{}-{}",
            opts.model,
            opts.dataset.name(),
            timestamp()
        )),
    };
    if let (Some(stop), Some(ck)) = (opts.stop_after, &checkpoint) {
        if stop <= ck.header.epoch {
            return Err(AppError::Usage(format!(
                "--stop-after-epoch {stop}: the checkpoint has already done {} epochs",
                ck.header.epoch
            )));
        }
    }
    // The data first: a missing dataset leaves no run folder behind.
    let entry = convnet_zoo::entry(&opts.model)?;
    let data = open_run_data(&DataRequest {
        spec: &opts.dataset,
        data_dir: opts.data_dir.as_deref(),
        offline: opts.offline,
        batch_size: opts.batch_size,
        eval_batch_size: opts.eval_batch_size,
        seed: opts.seed,
        translate: opts.translate,
        hflip: opts.hflip,
        image_size: opts.image_size,
        model_image_size: (entry.default_config)().image_size,
        limit_train: opts.limit_train,
        limit_test: opts.limit_test,
        val_fraction: opts.val_fraction,
        skip_bad_images: opts.skip_bad_images,
        random_resized_crop: opts.random_resized_crop,
        color_jitter: opts.color_jitter,
        normalize: opts.mean.clone().zip(opts.std.clone()),
    })?;
    let leader = comm.as_ref().is_none_or(|c| c.rank() == 0);
    let created = leader && !out_dir.exists();
    // Held until the run ends, whichever way.
    let lock = match leader {
        true => Some(prepare_run_folder(
            &out_dir,
            resume.is_some(),
            opts.overwrite,
        )?),
        false => None,
    };
    let result = train_in_folder(opts, resume, checkpoint, data, &out_dir, comm);
    if result.is_err() && created {
        // A run that failed before its first checkpoint leaves no folder.
        drop(lock);
        let _ = std::fs::remove_dir(&out_dir);
    }
    result
}

/// The part of [`run_train`] that runs in the locked run folder.
fn train_in_folder(
    opts: &TrainOptions,
    resume: Option<&Path>,
    checkpoint: Option<Checkpoint>,
    data: super::sources::RunData,
    out_dir: &Path,
    comm: Option<Box<dyn Communicator>>,
) -> Result<TrainOutcome> {
    let out_dir = out_dir.to_path_buf();
    let ranks = comm.as_ref().map_or(1, |c| c.size());
    let leader = comm.as_ref().is_none_or(|c| c.rank() == 0);
    // Rank 0 alone speaks.
    macro_rules! println {
        ($($arg:tt)*) => { if leader { std::println!($($arg)*) } };
    }
    let (n_train, n_test) = (data.n_train, data.n_test);
    let (loader, test) = (data.train, data.test);
    let class_names = data.class_names.clone();
    let model_config = ModelConfig {
        num_classes: class_names.len(),
        in_channels: data.in_channels,
        image_size: data.image_size,
        ..opts.model_config()
    };
    let mut rng = Rng::seed_from(opts.seed);
    let mut model = convnet_zoo::build(&opts.model, &model_config, &mut rng)?;
    if let (Some(path), None) = (&opts.weights, &checkpoint) {
        load_initial_weights(
            model.as_mut(),
            path,
            opts.weights_non_strict,
            model_config.num_classes,
        )?;
    }
    let head = convnet_zoo::head_keys(model.as_ref(), model_config.num_classes);
    let info = ModelInfo {
        model: opts.model.clone(),
        model_config: serde_json::to_string(&model_config)
            .map_err(|e| AppError::Usage(e.to_string()))?,
        dataset: opts.dataset.to_string(),
        class_names: class_names.clone(),
        preprocessing: Some(Preprocessing {
            in_channels: model_config.in_channels,
            image_size: model_config.image_size,
            mean: data.mean.clone(),
            std: data.std.clone(),
            eval_pipeline: match &data.eval_pipeline {
                Some(p) => serde_json::to_string(p).map_err(|e| AppError::Usage(e.to_string()))?,
                None => String::new(),
            },
        }),
    };
    let checkpoint_path = out_dir.join(CHECKPOINT_FILE);
    let settings = serde_json::to_string(opts).map_err(|e| AppError::Usage(e.to_string()))?;
    let threads = rayon::current_num_threads();
    let title = format!(
        "{} on {} (seed {}, batch {}, {})",
        opts.model,
        opts.dataset.title(),
        opts.seed,
        opts.batch_size,
        opts.optimizer
    );

    let mut trainer = Trainer::new(model, opts.train_config()?, class_names.len())?;
    if let Some(comm) = comm {
        trainer.distribute(comm);
    }
    if opts.freeze_backbone && checkpoint.is_none() {
        if head.is_empty() {
            return Err(AppError::Usage(format!(
                "--freeze-backbone: {} has no linear layer with {} outputs to train as its head",
                opts.model, model_config.num_classes
            )));
        }
        trainer.freeze(&|k| !head.iter().any(|h| h == k))?;
    }
    if !trainer.frozen().is_empty() {
        let (mut trained, mut total) = (0usize, 0usize);
        let frozen = trainer.frozen();
        trainer.model().visit_params("", &mut |k, p| {
            total += p.len();
            if !frozen.iter().any(|f| f == k) {
                trained += p.len();
            }
        });
        println!(
            "frozen backbone: training {} of {} parameters ({})",
            thousands(trained as f64),
            thousands(total as f64),
            head.join(", ")
        );
    }
    if let Some(ck) = &checkpoint {
        if ck.header.model != opts.model {
            return Err(AppError::Usage(format!(
                "the checkpoint holds `{}`, not `{}`",
                ck.header.model, opts.model
            )));
        }
        trainer.resume(ck)?;
        let saved_threads = ck
            .payload
            .train
            .as_ref()
            .map(|t| t.threads)
            .unwrap_or(threads);
        println!(
            "resuming {} from epoch {} of {} ({})",
            opts.model,
            trainer.epochs_done(),
            opts.epochs,
            resume.map(|p| p.display().to_string()).unwrap_or_default()
        );
        if saved_threads != threads {
            println!(
                "note: the run used {saved_threads} threads, this one {threads}: the result is \
                 as good but not bit-identical to an uninterrupted run (use --threads \
                 {saved_threads} for that)"
            );
        }
    }
    println!(
        "training {} ({} parameters) on {} ({} training / {} test images from {}) for {}, \
         batch {}, {} threads, seed {}",
        opts.model,
        thousands(trainer.model().num_params() as f64),
        opts.dataset.title(),
        thousands(n_train as f64),
        thousands(n_test as f64),
        data.origin,
        epochs_text(opts.epochs),
        opts.batch_size,
        threads,
        opts.seed
    );
    if ranks > 1 {
        println!(
            "distributed over {ranks} ranks: shards of about {} images per rank and step, {} \
             threads each, {} bytes of gradients summed per step",
            opts.batch_size.div_ceil(ranks),
            threads,
            thousands(4.0 * trainer.model().num_params() as f64)
        );
    }
    println!("output folder: {}", out_dir.display());
    trainer.checkpoint_to(CheckpointTarget {
        path: checkpoint_path.clone(),
        info: info.clone(),
        run_settings: settings,
    });
    let progress: Box<dyn Callback> = Box::new(match opts.progress {
        ProgressMode::Auto => ProgressPrinter::auto(),
        ProgressMode::Plain => ProgressPrinter::plain(Box::new(std::io::stdout())),
        ProgressMode::Quiet => ProgressPrinter::quiet(),
    });
    let writer = HistoryWriter::new(&out_dir, title.clone());
    if leader {
        trainer.add_callback(progress);
        trainer.add_callback(Box::new(writer.clone()));
    }
    if let Err(e) = trainer.fit_until(
        &*loader,
        Some(&*test),
        opts.stop_after.unwrap_or(opts.epochs),
    ) {
        if leader
            && matches!(
                e,
                TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteTestLoss { .. }
            )
        {
            match Checkpoint::read_header(&checkpoint_path) {
                Ok(h) => eprintln!(
                    "the checkpoint kept is {} (epoch {}, its evaluation was finite)",
                    checkpoint_path.display(),
                    h.epoch
                ),
                Err(_) => eprintln!("no checkpoint was saved (no epoch evaluated finite)"),
            }
        }
        return Err(e.into());
    }
    let history = trainer.history().clone();
    // Final evaluation: the confusion matrix, as text and as a heat map.
    let eval = trainer.evaluate(&*test)?;
    drop(trainer);
    if !leader {
        return Ok(TrainOutcome {
            out_dir,
            checkpoint: checkpoint_path,
            history,
            eval,
            files: Vec::new(),
        });
    }
    writer.write(&history)?;

    let confusion_txt = out_dir.join("confusion.txt");
    let confusion_png = out_dir.join("confusion.png");
    let table = eval.confusion.render(&class_names);
    convnet_train::fsutil::write_atomic(&confusion_txt, table.as_bytes())?;
    plot::plot_confusion(
        &eval.confusion,
        &class_names,
        &format!("{} on {} test set", opts.model, opts.dataset.title()),
        &confusion_png,
    )?;
    println!("\nconfusion matrix on the test set (rows: true class, columns: predicted):");
    print!("{table}");
    let total_train: f64 = history.records.iter().map(|r| r.train_seconds).sum();
    println!(
        "\nfinal test accuracy {:.2}% (top-5 {:.2}%, loss {:.4}) after {} ({:.0} s of \
         training)",
        100.0 * eval.accuracy,
        100.0 * eval.top5,
        eval.loss,
        epochs_text(history.records.len()),
        total_train
    );
    let files = vec![
        checkpoint_path.clone(),
        writer.csv_path(),
        writer.json_path(),
        writer.plot_path(),
        confusion_txt,
        confusion_png,
    ];
    println!("wrote {}:", out_dir.display());
    for f in &files {
        println!("  {}", f.display());
    }
    Ok(TrainOutcome {
        out_dir,
        checkpoint: checkpoint_path,
        history,
        eval,
        files,
    })
}

#[cfg(test)]
mod tests;
