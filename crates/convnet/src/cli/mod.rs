//! The command line: clap's definitions of every command and their
//! dispatch to [`convnet::app`]. `convnet train`'s many flags are in
//! [`train`].

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

mod train;

use train::train_options;
pub(crate) use train::TrainArgs;

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
pub(crate) struct Cli {
    /// Worker threads for the compute kernels (default: all cores, or
    /// $RAYON_NUM_THREADS). More than 4 per core only slows the kernels down:
    /// such a count is capped at 4 per core, with a warning.
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) threads: Option<u64>,
    /// The compute kernels' instruction set: baseline, avx2 or avx512
    /// [default: the widest this CPU has, or $CONVNET_SIMD]. A level the CPU
    /// lacks is refused.
    #[arg(long, global = true, env = "CONVNET_SIMD", value_name = "LEVEL")]
    pub(crate) simd: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
pub(crate) struct DownloadArgs {
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
pub(crate) enum DataCommand {
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
pub(crate) enum WeightsCommand {
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
pub(crate) struct InferArgs {
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
pub(crate) enum PreprocessArg {
    /// MNIST's recipe for handwritten digits.
    Digit,
    /// The whole image resized.
    Whole,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ProgressArg {
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
pub(crate) struct Floats(Vec<f32>);

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
pub(crate) struct EvalArgs {
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
pub(crate) struct SummaryArgs {
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
pub(crate) struct PredictArgs {
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

pub(crate) fn run(cli: Cli, job: Option<&app::distributed::Job>) -> anyhow::Result<()> {
    // A cap on memory that does not parse is said now, not ignored.
    convnet::tensor::memory::memory_limit_from_env().map_err(anyhow::Error::msg)?;
    if let Some(name) = &cli.simd {
        name.parse()
            .and_then(convnet::tensor::simd::set_level)
            .context("--simd (or CONVNET_SIMD)")?;
    }
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
