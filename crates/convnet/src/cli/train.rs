//! `convnet train`'s flags, their conversion to [`TrainOptions`], and the
//! check of a resumed run's flags against the ones it was started with.

use super::*;

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// Model from the zoo (see `convnet zoo`) [default: lenet5].
    #[arg(long, value_parser = parse_model)]
    pub(crate) model: Option<String>,
    /// Model variant (lenet5: `modern` = ReLU + max-pooling, `1998` = tanh + average pooling).
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100 (downloaded on
    /// first use) or folder:PATH (an image folder, PATH/<class>/*.png, with
    /// train/ and val/ inside or split by --val-fraction) [default: mnist].
    #[arg(long, value_parser = parse_spec)]
    pub(crate) dataset: Option<DatasetSpec>,
    /// Input side for CIFAR and image folders: images are resized to it
    /// [default: 32 for CIFAR, the model's usual size for folders].
    #[arg(long)]
    pub(crate) image_size: Option<usize>,
    #[arg(long, help = format!(
        "Fraction of each class of an image folder without train/ and val/ held out for \
         validation (seeded by --seed) [default: {VAL_FRACTION}]"
    ))]
    pub(crate) val_fraction: Option<f64>,
    /// Leave out unreadable images of a folder (each is reported) instead of
    /// refusing the folder.
    #[arg(long)]
    pub(crate) skip_bad_images: bool,
    /// Data folder (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Never download; fail with instructions if the dataset is missing.
    #[arg(long)]
    pub(crate) offline: bool,
    // The defaults are shown, not applied, here: a flag left out keeps the
    // value of the run being resumed, or `TrainOptions::new`'s.
    #[arg(long, help = format!("Epochs [default: {EPOCHS}]"))]
    pub(crate) epochs: Option<usize>,
    #[arg(long, help = format!("Training batch size [default: {BATCH_SIZE}]"))]
    pub(crate) batch_size: Option<usize>,
    #[arg(long, value_enum, help = format!(
        "Optimizer [default: {}]", OptimizerKind::default()
    ))]
    pub(crate) optimizer: Option<OptimizerKind>,
    #[arg(long, help = format!(
        "Base learning rate [default: {SGD_LR} for sgd, {ADAM_LR} for adam/adamw]"
    ))]
    pub(crate) lr: Option<f32>,
    #[arg(long, help = format!("SGD momentum [default: {MOMENTUM}]"))]
    pub(crate) momentum: Option<f32>,
    /// Plain instead of Nesterov momentum.
    #[arg(long)]
    pub(crate) no_nesterov: bool,
    #[arg(long, help = format!("Weight decay [default: {WEIGHT_DECAY}]"))]
    pub(crate) weight_decay: Option<f32>,
    #[arg(long, value_parser = parse_schedule, help = format!(
        "Learning-rate schedule: constant, cosine, cosine:MIN_LR or step:EVERY_EPOCHS:GAMMA \
         [default: {SCHEDULE}]"
    ))]
    pub(crate) schedule: Option<ScheduleKind>,
    #[arg(long, help = format!(
        "Linear warm-up steps [default: {:.0}% of the run's steps, at most {MAX_WARMUP_STEPS}]",
        100.0 * WARMUP_SHARE
    ))]
    pub(crate) warmup_steps: Option<usize>,
    /// Clip gradients to this global L2 norm [default: off].
    #[arg(long)]
    pub(crate) clip_grad_norm: Option<f32>,
    #[arg(long, help = format!(
        "Label smoothing of the cross-entropy [default: {LABEL_SMOOTHING}]"
    ))]
    pub(crate) label_smoothing: Option<f32>,
    /// Random shifts of training images by up to N pixels (zero padding)
    /// [default: 1 on mnist, 4 on cifar, 0 otherwise].
    #[arg(long)]
    pub(crate) translate: Option<usize>,
    /// Random horizontal flips [default: off for mnist, on otherwise].
    #[arg(long, value_name = "BOOL")]
    pub(crate) hflip: Option<bool>,
    /// CIFAR and folders: train on random crops of 8-100% of each image's
    /// area and 3/4-4/3 aspect ratio, resized to --image-size
    /// (torchvision's RandomResizedCrop), instead of the whole image.
    #[arg(long)]
    pub(crate) random_resized_crop: bool,
    /// CIFAR and folders: random brightness, contrast, saturation and hue
    /// changes of training images, as torchvision's ColorJitter: B,C,S[,H]
    /// (e.g. 0.4,0.4,0.4 or 0.4,0.4,0.4,0.1).
    #[arg(long, value_name = "B,C,S[,H]", value_parser = parse_jitter)]
    pub(crate) color_jitter: Option<[f64; 4]>,
    /// CIFAR and folders: per-channel means for normalisation, comma
    /// separated (with --std) [default: CIFAR's usual constants; a folder's
    /// are computed from its training images, see `convnet data stats`].
    #[arg(long, value_name = "M[,M,M]", value_parser = parse_float_list, requires = "std")]
    pub(crate) mean: Option<Floats>,
    /// Per-channel standard deviations for normalisation (with --mean).
    #[arg(long, value_name = "S[,S,S]", value_parser = parse_float_list, requires = "mean")]
    pub(crate) std: Option<Floats>,
    #[arg(long, help = format!(
        "Seed of weights, shuffling, dropout and augmentation [default: {SEED}]"
    ))]
    pub(crate) seed: Option<u64>,
    /// Output folder [default: <runs-dir>/<model>-<dataset>-<time>]. Locked
    /// while a run uses it; a folder holding another run's checkpoint is
    /// refused unless --overwrite (or --resume).
    #[arg(long)]
    pub(crate) out_dir: Option<PathBuf>,
    /// Start a new run in an --out-dir that holds another run's checkpoint,
    /// replacing it.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) overwrite: bool,
    /// Parent folder of the run folders [default: runs].
    #[arg(long)]
    pub(crate) runs_dir: Option<PathBuf>,
    /// Train on N training images only (MNIST, Fashion-MNIST: the first N;
    /// CIFAR and folders: N spread evenly, so a folder keeps every class).
    #[arg(long)]
    pub(crate) limit_train: Option<usize>,
    /// Evaluate on N test images only (chosen as --limit-train's).
    #[arg(long)]
    pub(crate) limit_test: Option<usize>,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: ProgressArg,
    /// Stop after epoch K as if interrupted (resume later with --resume).
    #[arg(long, value_name = "K")]
    pub(crate) stop_after_epoch: Option<usize>,
    /// Resume a run from its checkpoint: its settings are reused, and flags
    /// that contradict them are an error; --epochs may extend it,
    /// --stop-after-epoch stop it again.
    #[arg(long, value_name = "CHECKPOINT")]
    pub(crate) resume: Option<PathBuf>,
    /// Initial weights (fine-tuning): .pth/.pt, .safetensors or a convnet checkpoint.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub(crate) weights: Option<PathBuf>,
    /// Load --weights non-strictly: what does not fit (a head of another size) is re-initialised and reported.
    #[arg(long, requires = "weights")]
    pub(crate) weights_non_strict: bool,
    /// Train the classifier head only (fc, classifier.6, heads.head...): the
    /// rest keeps the --weights values, BatchNorm statistics included. A
    /// head of another size than the dataset's classes is re-initialised
    /// anyway. A resumed run keeps the freezing of its checkpoint.
    #[arg(long, requires = "weights")]
    pub(crate) freeze_backbone: bool,
    /// Data-parallel training as one rank of an MPI job: `mpirun -np N
    /// convnet train --distributed ...`, every rank with the same flags.
    /// --batch-size is the global batch, split over the ranks; --threads
    /// applies per rank [default: the cores shared by the ranks of this
    /// machine]. Needs a build with `--features mpi`.
    #[arg(long)]
    pub(crate) distributed: bool,
    /// Synchronised BatchNorm statistics over the ranks: not implemented
    /// (refused; BatchNorm uses each rank's shard).
    #[arg(long, requires = "distributed")]
    pub(crate) sync_bn: bool,
}

/// The flags of `a` that contradict the settings `saved` of the run being
/// resumed from a checkpoint in `run_dir`, each with the run's value.
fn resume_conflicts(a: &TrainArgs, saved: &TrainOptions, run_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |flag: &str, given: Option<String>, kept: String| {
        if let Some(g) = given {
            if g != kept {
                out.push(format!("--{flag} {g} (the run has {kept})"));
            }
        }
    };
    fn show<T: ToString>(v: Option<T>) -> Option<String> {
        v.map(|v| v.to_string())
    }
    let saved_lr = saved
        .optimizer_config()
        .map(|c| c.lr().to_string())
        .unwrap_or_else(|_| "?".into());
    let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
    check("model", a.model.clone(), saved.model.clone());
    check(
        "variant",
        a.variant.clone(),
        or(saved.variant.clone(), "none"),
    );
    check(
        "dataset",
        a.dataset.as_ref().map(|d| d.to_string()),
        saved.dataset.to_string(),
    );
    check(
        "image-size",
        show(a.image_size),
        saved
            .image_size
            .map_or("the dataset's".to_string(), |v| v.to_string()),
    );
    check(
        "val-fraction",
        show(a.val_fraction),
        saved.val_fraction.to_string(),
    );
    check(
        "batch-size",
        show(a.batch_size),
        saved.batch_size.to_string(),
    );
    check("optimizer", show(a.optimizer), saved.optimizer.to_string());
    check("lr", show(a.lr), saved_lr);
    check("momentum", show(a.momentum), saved.momentum.to_string());
    check(
        "weight-decay",
        show(a.weight_decay),
        saved.weight_decay.to_string(),
    );
    check("schedule", show(a.schedule), saved.schedule.to_string());
    check(
        "warmup-steps",
        show(a.warmup_steps),
        or(show(saved.warmup_steps), "the automatic warm-up"),
    );
    check(
        "clip-grad-norm",
        show(a.clip_grad_norm),
        or(show(saved.clip_grad_norm), "none"),
    );
    check(
        "label-smoothing",
        show(a.label_smoothing),
        saved.label_smoothing.to_string(),
    );
    check("translate", show(a.translate), saved.translate.to_string());
    check("hflip", show(a.hflip), saved.hflip.to_string());
    check(
        "random-resized-crop",
        a.random_resized_crop.then(|| "true".to_string()),
        saved.random_resized_crop.to_string(),
    );
    let list = |v: &Option<Vec<f32>>| v.as_ref().map(|v| format!("{v:?}"));
    let default = || "the default".to_string();
    check(
        "color-jitter",
        a.color_jitter.map(|j| format!("{j:?}")),
        saved
            .color_jitter
            .map_or_else(default, |j| format!("{j:?}")),
    );
    let given = |v: &Option<Floats>| list(&v.clone().map(|f| f.0));
    check(
        "mean",
        given(&a.mean),
        list(&saved.mean).unwrap_or_else(default),
    );
    check(
        "std",
        given(&a.std),
        list(&saved.std).unwrap_or_else(default),
    );
    check("seed", show(a.seed), saved.seed.to_string());
    check(
        "limit-train",
        show(a.limit_train),
        or(show(saved.limit_train), "none"),
    );
    check(
        "limit-test",
        show(a.limit_test),
        or(show(saved.limit_test), "none"),
    );
    check(
        "runs-dir",
        a.runs_dir.as_ref().map(|p| p.display().to_string()),
        saved.runs_dir.display().to_string(),
    );
    if a.no_nesterov && saved.nesterov {
        out.push("--no-nesterov (the run has Nesterov momentum)".into());
    }
    if let Some(dir) = &a.out_dir {
        let same = match (dir.canonicalize(), run_dir.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        };
        if !same {
            out.push(format!(
                "--out-dir {} (the run's folder is {})",
                dir.display(),
                run_dir.display()
            ));
        }
    }
    out
}

pub(super) fn train_options(a: &TrainArgs) -> anyhow::Result<TrainOptions> {
    let mut o = match &a.resume {
        Some(path) => {
            let ck = Checkpoint::load(path)?;
            let mut o = app::train::resume_options(&ck, a.epochs)?;
            let run_dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let conflicts = resume_conflicts(a, &o, run_dir);
            if !conflicts.is_empty() {
                bail!(
                    "--resume continues a run with its own settings, and these flags contradict \
                     them: {} (drop them to resume, or start a new run)",
                    conflicts.join(", ")
                );
            }
            o.stop_after = a.stop_after_epoch;
            o
        }
        None => {
            let model = a.model.as_deref().unwrap_or("lenet5");
            let mut o = TrainOptions::new(model, a.dataset.clone().unwrap_or(DatasetSpec::Mnist));
            o.image_size = a.image_size;
            o.skip_bad_images = a.skip_bad_images;
            o.random_resized_crop = a.random_resized_crop;
            o.color_jitter = a.color_jitter;
            o.mean = a.mean.clone().map(|f| f.0);
            o.std = a.std.clone().map(|f| f.0);
            if let Some(v) = a.val_fraction {
                o.val_fraction = v;
            }
            o.variant = a.variant.clone();
            o.offline = a.offline;
            macro_rules! set {
                ($($field:ident),*) => { $( if let Some(v) = a.$field.clone() { o.$field = v; } )* };
            }
            set!(
                epochs,
                batch_size,
                optimizer,
                momentum,
                weight_decay,
                schedule,
                label_smoothing,
                translate,
                hflip,
                seed
            );
            o.lr = a.lr;
            o.warmup_steps = a.warmup_steps;
            o.clip_grad_norm = a.clip_grad_norm;
            o.nesterov = !a.no_nesterov;
            o.out_dir = a.out_dir.clone();
            if let Some(dir) = &a.runs_dir {
                o.runs_dir = dir.clone();
            }
            o.overwrite = a.overwrite;
            o.limit_train = a.limit_train;
            o.limit_test = a.limit_test;
            o.stop_after = a.stop_after_epoch;
            o.weights = a.weights.clone();
            o.weights_non_strict = a.weights_non_strict;
            o.freeze_backbone = a.freeze_backbone;
            o
        }
    };
    // Machine-specific settings may change on resume.
    if a.data_dir.is_some() {
        o.data_dir = a.data_dir.clone();
    }
    o.offline |= a.offline;
    o.progress = match a.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Plain => ProgressMode::Plain,
        ProgressArg::Quiet => ProgressMode::Quiet,
    };
    o.validate()?;
    Ok(o)
}
