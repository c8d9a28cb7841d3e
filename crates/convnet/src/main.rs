//! The `convnet` command: train, evaluate, inspect and run CNNs on the CPU.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use convnet::app::{self, train::TrainOptions, ProgressMode};
use convnet::datasets::DatasetKind;
use convnet::train::{Checkpoint, ScheduleKind};
use convnet::zoo::ModelConfig;
use convnet::{out, outln};

#[derive(Parser, Debug)]
#[command(
    name = "convnet",
    version,
    about = "Build, train, evaluate and run convolutional neural networks on the CPU",
    after_help = "Main job: `convnet train` trains LeNet-5 on MNIST with the defaults \
                  (downloading MNIST on first use)."
)]
struct Cli {
    /// Worker threads for the compute kernels (default: all cores, or
    /// $RAYON_NUM_THREADS).
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

fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse()
        .map_err(|e: convnet::datasets::DatasetError| e.to_string())
}

fn parse_schedule(s: &str) -> Result<ScheduleKind, String> {
    s.parse()
        .map_err(|e: convnet::train::TrainError| e.to_string())
}

fn parse_optimizer(s: &str) -> Result<String, String> {
    match s {
        "sgd" | "adam" | "adamw" => Ok(s.to_string()),
        _ => Err(format!(
            "unknown optimizer `{s}`: valid optimizers are sgd, adam, adamw"
        )),
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Model from the zoo (see `convnet zoo`).
    #[arg(long, default_value = "lenet5", value_parser = parse_model)]
    model: String,
    /// Model variant (lenet5: `modern` = ReLU + max-pooling, `1998` = tanh + average pooling).
    #[arg(long)]
    variant: Option<String>,
    /// Dataset: mnist or fashion-mnist (downloaded on first use).
    #[arg(long, default_value = "mnist", value_parser = parse_dataset)]
    dataset: DatasetKind,
    /// Data folder (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download; fail with instructions if the dataset is missing.
    #[arg(long)]
    offline: bool,
    /// Epochs [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimizer: sgd, adam or adamw [default: sgd].
    #[arg(long, value_parser = parse_optimizer)]
    optimizer: Option<String>,
    /// Base learning rate [default: 0.05 for sgd, 0.001 for adam/adamw].
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum [default: 0.9].
    #[arg(long)]
    momentum: Option<f32>,
    /// Plain instead of Nesterov momentum.
    #[arg(long)]
    no_nesterov: bool,
    /// Weight decay [default: 5e-4].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule: constant, cosine, cosine:MIN_LR or step:EVERY_EPOCHS:GAMMA [default: cosine].
    #[arg(long, value_parser = parse_schedule)]
    schedule: Option<ScheduleKind>,
    /// Linear warm-up steps [default: 200].
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Clip gradients to this global L2 norm [default: off].
    #[arg(long)]
    clip_grad_norm: Option<f32>,
    /// Label smoothing of the cross-entropy [default: 0].
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Random shifts of training images by up to N pixels [default: 1 on mnist, 0 on fashion-mnist].
    #[arg(long)]
    translate: Option<usize>,
    /// Random horizontal flips [default: on for fashion-mnist, off for mnist].
    #[arg(long, value_name = "BOOL")]
    hflip: Option<bool>,
    /// Seed of weights, shuffling, dropout and augmentation [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder [default: <runs-dir>/<model>-<dataset>-<time>].
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Parent folder of the run folders.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Train on the first N training images only.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,
    /// Stop after epoch K as if interrupted (resume later with --resume).
    #[arg(long, value_name = "K")]
    stop_after_epoch: Option<usize>,
    /// Resume a run from its checkpoint (its settings are reused; --epochs may extend it).
    #[arg(long, value_name = "CHECKPOINT")]
    resume: Option<PathBuf>,
    /// Initial weights (fine-tuning): .pth/.pt, .safetensors or a convnet checkpoint.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    weights: Option<PathBuf>,
    /// Load --weights non-strictly: what does not fit (a head of another size) is re-initialised and reported.
    #[arg(long, requires = "weights")]
    weights_non_strict: bool,
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
    /// Dataset [default: the one the checkpoint was trained on].
    #[arg(long, value_parser = parse_dataset)]
    dataset: Option<DatasetKind>,
    /// Data folder (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download.
    #[arg(long)]
    offline: bool,
    /// Batch size.
    #[arg(long, default_value_t = 1000)]
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

fn train_options(a: &TrainArgs) -> anyhow::Result<TrainOptions> {
    let mut o = match &a.resume {
        Some(path) => {
            let ck = Checkpoint::load(path)?;
            app::train::resume_options(&ck, a.epochs)?
        }
        None => {
            let mut o = TrainOptions::new(&a.model, a.dataset);
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
                warmup_steps,
                label_smoothing,
                translate,
                hflip,
                seed
            );
            o.lr = a.lr;
            o.clip_grad_norm = a.clip_grad_norm;
            o.nesterov = !a.no_nesterov;
            o.out_dir = a.out_dir.clone();
            o.runs_dir = a.runs_dir.clone();
            o.limit_train = a.limit_train;
            o.limit_test = a.limit_test;
            o.stop_after = a.stop_after_epoch;
            o.weights = a.weights.clone();
            o.weights_non_strict = a.weights_non_strict;
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

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("starting the thread pool")?;
    }
    match cli.command {
        Command::Train(a) => {
            let opts = train_options(&a)?;
            app::train::run_train(&opts, a.resume.as_deref())?;
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
        Command::Zoo => out!("{}", app::summary::zoo_table()?)?,
        Command::Infer(a) => {
            let shape = app::weights::infer(a.model.as_deref(), &a.weights, &a.input, &a.output)?;
            outln!("logits {shape:?} written to {}", a.output.display())?;
        }
        Command::Weights(WeightsCommand::Inspect { file, model }) => {
            out!("{}", app::weights::inspect(&file, model.as_deref())?)?;
        }
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
    // Output still buffered is written now, so that its failure is reported.
    let result = run(cli).and_then(|()| {
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
        std::process::exit(1);
    }
}
