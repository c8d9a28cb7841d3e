//! The `convnet` command: train, evaluate, inspect and run CNNs on the CPU.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use convnet::app::train::{BATCH_SIZE, EVAL_BATCH_SIZE, SEED, VAL_FRACTION};
use convnet::app::{self, train::TrainOptions, ProgressMode};
use convnet::datasets::{DatasetKind, DatasetSpec};
use convnet::train::defaults::{
    ADAM_LR, EPOCHS, LABEL_SMOOTHING, MAX_WARMUP_STEPS, MOMENTUM, SCHEDULE, SGD_LR, WARMUP_SHARE,
    WEIGHT_DECAY,
};
use convnet::train::{Checkpoint, OptimizerKind, ScheduleKind};
use convnet::zoo::ModelConfig;
use convnet::{out, outln};

#[derive(Parser, Debug)]
#[command(
    name = "convnet",
    version,
    about = "Build, train, evaluate and run convolutional neural networks on the CPU",
    after_help = "Main job: `convnet train` trains LeNet-5 on MNIST with the defaults \
                  (downloading MNIST on first use).\n\n\
                  Environment: CONVNET_MEMORY_LIMIT=8G caps the memory convnet plans for \
                  (models and batches that would need more are refused before they are \
                  allocated); CONVNET_DATA is the data folder."
)]
struct Cli {
    /// Worker threads for the compute kernels (default: all cores, or
    /// $RAYON_NUM_THREADS). More than 4 per core only slows the kernels down:
    /// such a count is capped at 4 per core, with a warning.
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model on a dataset; writes checkpoint, history and plots to a run folder.
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on a test set: accuracy and confusion matrix.
    Eval(EvalArgs),
    /// Print the layer table of a model.
    Summary(SummaryArgs),
    /// Classify PNG/JPEG images with a trained checkpoint.
    Predict(PredictArgs),
    /// List the models of the zoo with their parameter counts.
    Zoo,
    /// Run a model with trained weights on a float32 NCHW batch (.npy); write the logits (.npy).
    Infer(InferArgs),
    /// Inspect and convert weight files (PyTorch .pth/.pt, safetensors, convnet checkpoints).
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Export MNIST or Fashion-MNIST as an image folder; statistics of an image folder.
    #[command(subcommand)]
    Data(DataCommand),
    /// Download datasets, or import local copies offline (--from), verified as
    /// every load verifies them: mnist, fashion-mnist, cifar10, cifar100, all
    /// [default: all = mnist and fashion-mnist].
    Download(DownloadArgs),
    /// Recompute every number of the lecture beside its figures, with verdicts.
    ///
    /// Each number and worked example of the lecture, section by section,
    /// recomputed by the crates: agrees, LECTURE SLIP (flagged, explained)
    /// or DISAGREES (a bug: exit status 1). --train trains the LeNets of its
    /// table on MNIST, --annex times ConvNeXt against Swin, --report DIR
    /// writes an HTML page with pictures.
    Lecture(Box<app::lecture::LectureArgs>),
    /// Draw labelled PNG pictures: dataset samples, filters, feature maps,
    /// ReLU/GELU curves, a model's worst mistakes.
    #[command(subcommand)]
    Show(app::show::ShowCommand),
}

#[derive(Args, Debug)]
struct DownloadArgs {
    /// Datasets: mnist, fashion-mnist, cifar10, cifar100 or all.
    datasets: Vec<String>,
    /// Data folder to fill (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Import from this folder (the publisher's files, .gz or plain; for
    /// CIFAR the .tar.gz archive or a folder holding it) instead of
    /// downloading.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Never use the network: a dataset that is missing is an error saying
    /// how to import it.
    #[arg(long, conflicts_with = "from")]
    offline: bool,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Write a dataset as an image folder: DIR/{train,test}/<label>_<class>/<index>.png
    /// (8-bit greyscale PNG; `/` in class names becomes `_`, so Fashion-MNIST's
    /// T-shirt/top is 0_T-shirt_top). Written into a temporary folder renamed at the end.
    Export {
        /// mnist or fashion-mnist.
        #[arg(value_parser = parse_dataset)]
        dataset: DatasetKind,
        /// The folder to write (refused if it exists and is not empty, unless --overwrite).
        #[arg(long)]
        to: PathBuf,
        /// Data folder holding the IDX files (default: $CONVNET_DATA, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Never download; fail with instructions if the dataset is missing.
        #[arg(long)]
        offline: bool,
        /// Replace a non-empty --to folder (once the new one is complete).
        #[arg(long)]
        overwrite: bool,
    },
    /// Per-channel mean and std (pixels in [0, 1]) of an image folder's training
    /// images (FOLDER/train if it exists, else every image), for normalisation.
    Stats {
        /// folder:PATH or PATH.
        folder: String,
    },
}

#[derive(Subcommand, Debug)]
enum WeightsCommand {
    /// Keys, shapes, element types and total size; with --model, the strict report against it.
    Inspect {
        /// A .pth/.pt, .safetensors or convnet checkpoint file (told apart by content).
        file: PathBuf,
        /// Check the file against this zoo model.
        #[arg(long, value_parser = parse_model)]
        model: Option<String>,
    },
    /// Convert weights to safetensors (from .pth/.pt, safetensors or a convnet checkpoint).
    Convert {
        /// The weight file to read.
        input: PathBuf,
        /// The .safetensors file to write.
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
struct InferArgs {
    /// Zoo model [default: the one a convnet checkpoint names].
    #[arg(long, value_parser = parse_model)]
    model: Option<String>,
    /// Weights: .pth/.pt, .safetensors or a convnet checkpoint (loaded strictly).
    #[arg(long)]
    weights: PathBuf,
    /// Input batch: float32 .npy of shape [N, C, H, W].
    #[arg(long)]
    input: PathBuf,
    /// Where to write the logits (.npy, float32, [N, classes]).
    #[arg(long)]
    output: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PreprocessArg {
    /// MNIST's recipe for handwritten digits.
    Digit,
    /// The whole image resized.
    Whole,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProgressArg {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Plain,
    /// One line per epoch.
    Quiet,
}

fn parse_model(s: &str) -> Result<String, String> {
    convnet::zoo::entry(s)
        .map(|e| e.name.to_string())
        .map_err(|e| e.to_string())
}

/// A comma-separated list of numbers given to one flag.
#[derive(Debug, Clone, PartialEq)]
struct Floats(Vec<f32>);

fn parse_float_list(s: &str) -> Result<Floats, String> {
    parse_floats(s).map(Floats)
}

fn parse_floats(s: &str) -> Result<Vec<f32>, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("`{v}` in `{s}` is not a number"))
        })
        .collect()
}

fn parse_jitter(s: &str) -> Result<[f64; 4], String> {
    let v: Vec<f64> = parse_floats(s)?.into_iter().map(f64::from).collect();
    match v.as_slice() {
        [b, c, sat] => Ok([*b, *c, *sat, 0.0]),
        [b, c, sat, h] => Ok([*b, *c, *sat, *h]),
        _ => Err(format!(
            "--color-jitter takes 3 or 4 numbers B,C,S[,H], got {}",
            v.len()
        )),
    }
}

fn parse_spec(s: &str) -> Result<DatasetSpec, String> {
    s.parse()
        .map_err(|e: convnet::datasets::DatasetError| e.to_string())
}

fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse()
        .map_err(|e: convnet::datasets::DatasetError| e.to_string())
}

fn parse_schedule(s: &str) -> Result<ScheduleKind, String> {
    s.parse()
        .map_err(|e: convnet::train::TrainError| e.to_string())
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Model from the zoo (see `convnet zoo`) [default: lenet5].
    #[arg(long, value_parser = parse_model)]
    model: Option<String>,
    /// Model variant (lenet5: `modern` = ReLU + max-pooling, `1998` = tanh + average pooling).
    #[arg(long)]
    variant: Option<String>,
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100 (downloaded on
    /// first use) or folder:PATH (an image folder, PATH/<class>/*.png, with
    /// train/ and val/ inside or split by --val-fraction) [default: mnist].
    #[arg(long, value_parser = parse_spec)]
    dataset: Option<DatasetSpec>,
    /// Input side for CIFAR and image folders: images are resized to it
    /// [default: 32 for CIFAR, the model's usual size for folders].
    #[arg(long)]
    image_size: Option<usize>,
    #[arg(long, help = format!(
        "Fraction of each class of an image folder without train/ and val/ held out for \
         validation (seeded by --seed) [default: {VAL_FRACTION}]"
    ))]
    val_fraction: Option<f64>,
    /// Leave out unreadable images of a folder (each is reported) instead of
    /// refusing the folder.
    #[arg(long)]
    skip_bad_images: bool,
    /// Data folder (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download; fail with instructions if the dataset is missing.
    #[arg(long)]
    offline: bool,
    // The defaults are shown, not applied, here: a flag left out keeps the
    // value of the run being resumed, or `TrainOptions::new`'s.
    #[arg(long, help = format!("Epochs [default: {EPOCHS}]"))]
    epochs: Option<usize>,
    #[arg(long, help = format!("Training batch size [default: {BATCH_SIZE}]"))]
    batch_size: Option<usize>,
    #[arg(long, value_enum, help = format!(
        "Optimizer [default: {}]", OptimizerKind::default()
    ))]
    optimizer: Option<OptimizerKind>,
    #[arg(long, help = format!(
        "Base learning rate [default: {SGD_LR} for sgd, {ADAM_LR} for adam/adamw]"
    ))]
    lr: Option<f32>,
    #[arg(long, help = format!("SGD momentum [default: {MOMENTUM}]"))]
    momentum: Option<f32>,
    /// Plain instead of Nesterov momentum.
    #[arg(long)]
    no_nesterov: bool,
    #[arg(long, help = format!("Weight decay [default: {WEIGHT_DECAY}]"))]
    weight_decay: Option<f32>,
    #[arg(long, value_parser = parse_schedule, help = format!(
        "Learning-rate schedule: constant, cosine, cosine:MIN_LR or step:EVERY_EPOCHS:GAMMA \
         [default: {SCHEDULE}]"
    ))]
    schedule: Option<ScheduleKind>,
    #[arg(long, help = format!(
        "Linear warm-up steps [default: {:.0}% of the run's steps, at most {MAX_WARMUP_STEPS}]",
        100.0 * WARMUP_SHARE
    ))]
    warmup_steps: Option<usize>,
    /// Clip gradients to this global L2 norm [default: off].
    #[arg(long)]
    clip_grad_norm: Option<f32>,
    #[arg(long, help = format!(
        "Label smoothing of the cross-entropy [default: {LABEL_SMOOTHING}]"
    ))]
    label_smoothing: Option<f32>,
    /// Random shifts of training images by up to N pixels (zero padding)
    /// [default: 1 on mnist, 4 on cifar, 0 otherwise].
    #[arg(long)]
    translate: Option<usize>,
    /// Random horizontal flips [default: off for mnist, on otherwise].
    #[arg(long, value_name = "BOOL")]
    hflip: Option<bool>,
    /// CIFAR and folders: train on random crops of 8-100% of each image's
    /// area and 3/4-4/3 aspect ratio, resized to --image-size
    /// (torchvision's RandomResizedCrop), instead of the whole image.
    #[arg(long)]
    random_resized_crop: bool,
    /// CIFAR and folders: random brightness, contrast, saturation and hue
    /// changes of training images, as torchvision's ColorJitter: B,C,S[,H]
    /// (e.g. 0.4,0.4,0.4 or 0.4,0.4,0.4,0.1).
    #[arg(long, value_name = "B,C,S[,H]", value_parser = parse_jitter)]
    color_jitter: Option<[f64; 4]>,
    /// CIFAR and folders: per-channel means for normalisation, comma
    /// separated (with --std) [default: CIFAR's usual constants; a folder's
    /// are computed from its training images, see `convnet data stats`].
    #[arg(long, value_name = "M[,M,M]", value_parser = parse_float_list, requires = "std")]
    mean: Option<Floats>,
    /// Per-channel standard deviations for normalisation (with --mean).
    #[arg(long, value_name = "S[,S,S]", value_parser = parse_float_list, requires = "mean")]
    std: Option<Floats>,
    #[arg(long, help = format!(
        "Seed of weights, shuffling, dropout and augmentation [default: {SEED}]"
    ))]
    seed: Option<u64>,
    /// Output folder [default: <runs-dir>/<model>-<dataset>-<time>]. Locked
    /// while a run uses it; a folder holding another run's checkpoint is
    /// refused unless --overwrite (or --resume).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Start a new run in an --out-dir that holds another run's checkpoint,
    /// replacing it.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Parent folder of the run folders [default: runs].
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Train on N training images only (MNIST, Fashion-MNIST: the first N;
    /// CIFAR and folders: N spread evenly, so a folder keeps every class).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Evaluate on N test images only (chosen as --limit-train's).
    #[arg(long)]
    limit_test: Option<usize>,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,
    /// Stop after epoch K as if interrupted (resume later with --resume).
    #[arg(long, value_name = "K")]
    stop_after_epoch: Option<usize>,
    /// Resume a run from its checkpoint: its settings are reused, and flags
    /// that contradict them are an error; --epochs may extend it,
    /// --stop-after-epoch stop it again.
    #[arg(long, value_name = "CHECKPOINT")]
    resume: Option<PathBuf>,
    /// Initial weights (fine-tuning): .pth/.pt, .safetensors or a convnet checkpoint.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    weights: Option<PathBuf>,
    /// Load --weights non-strictly: what does not fit (a head of another size) is re-initialised and reported.
    #[arg(long, requires = "weights")]
    weights_non_strict: bool,
    /// Train the classifier head only (fc, classifier.6, heads.head...): the
    /// rest keeps the --weights values, BatchNorm statistics included. A
    /// head of another size than the dataset's classes is re-initialised
    /// anyway. A resumed run keeps the freezing of its checkpoint.
    #[arg(long, requires = "weights")]
    freeze_backbone: bool,
    /// Data-parallel training as one rank of an MPI job: `mpirun -np N
    /// convnet train --distributed ...`, every rank with the same flags.
    /// --batch-size is the global batch, split over the ranks; --threads
    /// applies per rank [default: the cores shared by the ranks of this
    /// machine]. Needs a build with `--features mpi`.
    #[arg(long)]
    distributed: bool,
    /// Synchronised BatchNorm statistics over the ranks: not implemented
    /// (refused; BatchNorm uses each rank's shard).
    #[arg(long, requires = "distributed")]
    sync_bn: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Checkpoint written by `convnet train`, or any weight file with --model
    /// (.pth/.pt, .safetensors).
    #[arg(long, visible_alias = "weights", value_name = "FILE")]
    checkpoint: PathBuf,
    /// Zoo model of the weights [default: the one the checkpoint names].
    #[arg(long, value_parser = parse_model)]
    model: Option<String>,
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100 or folder:PATH
    /// (its val/ or test/ images, or the run's held-out split) [default: the
    /// one the checkpoint was trained on].
    #[arg(long, value_parser = parse_spec)]
    dataset: Option<DatasetSpec>,
    /// Data folder (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download.
    #[arg(long)]
    offline: bool,
    /// Batch size.
    #[arg(long, default_value_t = EVAL_BATCH_SIZE)]
    batch_size: usize,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Also draw the confusion matrix as a PNG heat map.
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SummaryArgs {
    /// Model from the zoo (see `convnet zoo`).
    #[arg(value_parser = parse_model)]
    model: String,
    /// Model variant.
    #[arg(long)]
    variant: Option<String>,
    /// Input size (square) [default: the model's].
    #[arg(long)]
    image_size: Option<usize>,
    /// Input channels [default: the model's].
    #[arg(long)]
    in_channels: Option<usize>,
    /// Output classes [default: the model's].
    #[arg(long)]
    num_classes: Option<usize>,
    /// Load these weights (strictly) and report them with the table.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// Checkpoint written by `convnet train`, or any weight file with --model
    /// (.pth/.pt, .safetensors; e.g. torchvision's pretrained weights).
    #[arg(long, visible_alias = "weights", value_name = "FILE")]
    checkpoint: PathBuf,
    /// Zoo model of the weights [default: the one the checkpoint names].
    #[arg(long, value_parser = parse_model)]
    model: Option<String>,
    /// Dataset whose preprocessing and class names a 28x28 model uses
    /// [default: the checkpoint's].
    #[arg(long, value_parser = parse_dataset)]
    dataset: Option<DatasetKind>,
    /// How many classes to show per image [default: 5 for ImageNet models, 3 otherwise].
    #[arg(long)]
    top: Option<usize>,
    /// How a 28x28 model's images are prepared: `digit` (MNIST's recipe: ink
    /// cropped, fitted in 20x20, centred by mass) or `whole` (the whole image
    /// resized) [default: digit for MNIST, whole otherwise].
    #[arg(long, value_enum)]
    preprocess: Option<PreprocessArg>,
    /// PNG or JPEG images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
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

fn train_options(a: &TrainArgs) -> anyhow::Result<TrainOptions> {
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

fn run(cli: Cli, job: Option<&app::distributed::Job>) -> anyhow::Result<()> {
    // A cap on memory that does not parse is said now, not ignored.
    convnet::tensor::memory::memory_limit_from_env().map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The ranks of a job on one machine share its cores.
    let threads = cli
        .threads
        .or_else(|| job.map(|_| app::distributed::default_threads(cores) as u64));
    if let Some(n) = threads {
        let (n, warning) = app::cap_threads(n as usize, cores);
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("starting the thread pool")?;
    }
    match cli.command {
        Command::Train(a) => {
            let opts = train_options(&a)?;
            let comm = job.map(app::distributed::Job::communicator);
            app::train::run_train_on(&opts, a.resume.as_deref(), comm)?;
        }
        Command::Eval(a) => {
            app::eval::run_eval(
                &a.checkpoint,
                a.model.as_deref(),
                a.dataset,
                a.data_dir.as_deref(),
                a.offline,
                a.batch_size,
                a.limit,
                a.plot.as_deref(),
            )?;
        }
        Command::Summary(a) => {
            let entry = convnet::zoo::entry(&a.model)?;
            let mut cfg: ModelConfig = (entry.default_config)();
            cfg.variant = a.variant;
            if let Some(v) = a.image_size {
                cfg.image_size = v;
            }
            if let Some(v) = a.in_channels {
                cfg.in_channels = v;
            }
            if let Some(v) = a.num_classes {
                cfg.num_classes = v;
            }
            out!("{}", app::summary::model_summary(&a.model, Some(&cfg))?)?;
            if let Some(w) = &a.weights {
                let wm = app::weights::build_with_weights(
                    Some(&a.model),
                    w,
                    a.num_classes,
                    convnet::weights::LoadMode::Strict,
                    0,
                )?;
                outln!(
                    "weights: {} ({} file): {}",
                    w.display(),
                    wm.file.kind.name(),
                    wm.report
                )?;
            }
        }
        Command::Predict(a) => {
            let opts = app::predict::PredictOptions {
                weights: &a.checkpoint,
                model: a.model.as_deref(),
                dataset: a.dataset,
                top_k: a.top,
                preprocess: a.preprocess.map(|p| match p {
                    PreprocessArg::Digit => app::predict::Preprocess::Digit,
                    PreprocessArg::Whole => app::predict::Preprocess::WholeImage,
                }),
            };
            let report = app::predict::predict(&opts, &a.images)?;
            if !report.failures.is_empty() {
                bail!(
                    "{} of {} images could not be classified (see above)",
                    report.failures.len(),
                    a.images.len()
                );
            }
        }
        Command::Lecture(a) => {
            app::lecture::run_command(&a)?;
        }
        Command::Zoo => out!("{}", app::summary::zoo_table()?)?,
        Command::Download(a) => {
            let data_dir = convnet::datasets::resolve_data_dir(a.data_dir.as_deref());
            let opts = convnet::datasets::DownloadOptions {
                offline: a.offline,
                ..Default::default()
            };
            for report in
                app::data::fetch_datasets(&a.datasets, &data_dir, a.from.as_deref(), &opts)?
            {
                out!("{report}")?;
            }
        }
        Command::Infer(a) => {
            let shape = app::weights::infer(a.model.as_deref(), &a.weights, &a.input, &a.output)?;
            outln!("logits {shape:?} written to {}", a.output.display())?;
        }
        Command::Weights(WeightsCommand::Inspect { file, model }) => {
            out!("{}", app::weights::inspect(&file, model.as_deref())?)?;
        }
        Command::Data(DataCommand::Export {
            dataset,
            to,
            data_dir,
            offline,
            overwrite,
        }) => {
            let report =
                app::data::export_dataset(dataset, data_dir.as_deref(), offline, &to, overwrite)?;
            let counts: Vec<String> = report
                .counts
                .iter()
                .map(|(split, n)| format!("{n} {split}"))
                .collect();
            outln!(
                "{} written to {} as PNG files ({} images)",
                dataset.title(),
                report.dir.display(),
                counts.join(", ")
            )?;
        }
        Command::Data(DataCommand::Stats { folder }) => {
            out!("{}", app::data::folder_stats(&folder)?)?;
        }
        Command::Show(c) => outln!("{}", app::show::run_show(&c)?)?,
        Command::Weights(WeightsCommand::Convert { input, output }) => {
            let n = app::weights::convert(&input, &output)?;
            outln!("{n} tensors written to {}", output.display())?;
        }
    }
    Ok(())
}

/// The exit status when standard output is a pipe its reader closed: what a
/// shell reports for a program killed by SIGPIPE (128 + 13), without the
/// signal (which the standard library ignores and `unsafe` would restore).
const EXIT_BROKEN_PIPE: i32 = 141;

/// Turns the panic of a `println!` whose standard output failed (left in
/// library code, e.g. training progress lines) into what a failed
/// [`convnet::app::write_stdout`] does: a quiet exit on a broken pipe, a
/// one-line error otherwise. Every other panic keeps the default report.
fn stdout_failures_are_not_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // The standard library's message: "failed printing to stdout: {io error}".
        if let Some(cause) = msg.strip_prefix("failed printing to stdout: ") {
            if cause.starts_with("Broken pipe") {
                std::process::exit(EXIT_BROKEN_PIPE);
            }
            eprintln!("error: standard output: {cause}");
            std::process::exit(1);
        }
        default(info)
    }));
}

fn main() {
    stdout_failures_are_not_panics();
    let cli = Cli::parse();
    // `--distributed`: this process joins the MPI job (or learns why not).
    let job = match &cli.command {
        Command::Train(a) if a.sync_bn => {
            eprintln!("error: {}", app::distributed::sync_bn_refused());
            std::process::exit(1);
        }
        Command::Train(a) if a.distributed => match app::distributed::Job::start() {
            Ok(job) => Some(job),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    // Output still buffered is written now, so that its failure is reported.
    let result = run(cli, job.as_ref()).and_then(|()| {
        std::io::stdout()
            .flush()
            .map_err(|e| app::AppError::io("standard output", e).into())
    });
    if let Err(e) = result {
        let e: &(dyn std::error::Error + 'static) = &*e;
        if app::is_broken_pipe(e) {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        eprintln!("error: {}", app::error_message(e));
        if let Some(job) = &job {
            // The other ranks wait for this one: end them too.
            job.abort(1);
        }
        std::process::exit(1);
    }
}
