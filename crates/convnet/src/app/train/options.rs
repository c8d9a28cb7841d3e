//! [`TrainOptions`]: everything that defines a training run, saved in the
//! checkpoint so that `--resume` continues with the same settings.

use super::*;

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

impl TrainOptions {
    /// The training and test data this run reads, for a model whose input
    /// is `model_image_size` pixels square by default.
    pub fn data_request(&self, model_image_size: usize) -> DataRequest<'_> {
        DataRequest {
            spec: &self.dataset,
            data_dir: self.data_dir.as_deref(),
            offline: self.offline,
            batch_size: self.batch_size,
            eval_batch_size: self.eval_batch_size,
            seed: self.seed,
            translate: self.translate,
            hflip: self.hflip,
            image_size: self.image_size,
            model_image_size,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            val_fraction: self.val_fraction,
            skip_bad_images: self.skip_bad_images,
            random_resized_crop: self.random_resized_crop,
            color_jitter: self.color_jitter,
            normalize: self.mean.clone().zip(self.std.clone()),
        }
    }
}
