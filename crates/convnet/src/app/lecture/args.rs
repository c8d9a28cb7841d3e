//! The flags of `convnet lecture` and what the command does with them.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::annex::{measure_annex, AnnexOptions};
use super::train::{lenet_options, train_lenets};
use super::{
    create_report_dir, recompute, render_text, titles, write_report_with, Figure, Lecture,
};
use crate::app::train::SEED;
use crate::app::{AppError, ProgressMode, Result};

/// Default epochs of `--train`: a few, so that it takes minutes.
pub const TRAIN_EPOCHS: usize = 3;

/// Progress display of `--train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressFlag {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Plain,
    /// One line per epoch.
    Quiet,
}

/// `convnet lecture`: recompute every number of the lecture.
#[derive(Args, Debug, Clone)]
pub struct LectureArgs {
    /// Also train LeNet-1, LeNet-4 and LeNet-5 on MNIST and print the
    /// lecture's error rates (1.7 / 1.1 / 0.95%) beside the measured ones.
    #[arg(long)]
    pub train: bool,
    /// Epochs per LeNet with --train.
    #[arg(long, default_value_t = TRAIN_EPOCHS, requires = "train")]
    pub epochs: usize,
    /// Seed of the weights and shuffling with --train.
    #[arg(long, default_value_t = SEED, requires = "train")]
    pub seed: u64,
    /// Data folder holding mnist/ (default: $CONVNET_DATA, else ./data).
    #[arg(long, requires = "train")]
    pub data_dir: Option<PathBuf>,
    /// Never download MNIST.
    #[arg(long, requires = "train")]
    pub offline: bool,
    /// Train on the first N MNIST training images only.
    #[arg(long, requires = "train")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N MNIST test images only.
    #[arg(long, requires = "train")]
    pub limit_test: Option<usize>,
    /// Progress display of --train.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressFlag,
    /// Also measure the annex's table: ConvNeXt-T/S/B against Swin-T/S/B,
    /// parameters and images/s at 224×224 on this machine (a minute or
    /// more).
    #[arg(long)]
    pub annex: bool,
    /// Images per timed batch with --annex.
    #[arg(long, default_value_t = 2, requires = "annex")]
    pub annex_batch: usize,
    /// Timed runs per model with --annex (after one warm-up run).
    #[arg(long, default_value_t = 2, requires = "annex")]
    pub annex_runs: usize,
    /// Write an HTML report (index.html and its PNG figures) into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Runs `convnet lecture`: recomputes, trains and measures as asked,
/// prints everything, writes the report; an error (after all that) if a
/// recomputed number disagrees with the code's own expectation.
pub fn run_command(args: &LectureArgs) -> Result<Lecture> {
    let mut lecture = recompute()?;
    if args.train {
        let mut opts = lenet_options(args.epochs);
        opts.seed = args.seed;
        opts.data_dir = args.data_dir.clone();
        opts.offline = args.offline;
        opts.limit_train = args.limit_train;
        opts.limit_test = args.limit_test;
        opts.progress = match args.progress {
            ProgressFlag::Auto => ProgressMode::Auto,
            ProgressFlag::Plain => ProgressMode::Plain,
            ProgressFlag::Quiet => ProgressMode::Quiet,
        };
        lecture.training = Some(train_lenets(&opts)?);
    }
    if args.annex {
        lecture.annex = Some(measure_annex(&AnnexOptions {
            batch_size: args.annex_batch,
            runs: args.annex_runs,
            ..AnnexOptions::default()
        })?);
    }
    crate::out!("{}", render_text(&lecture))?;
    if let Some(dir) = &args.report {
        create_report_dir(dir)?;
        let extra = show_figures(dir, args.data_dir.as_deref())?;
        let page = write_report_with(&lecture, dir, extra)?;
        crate::outln!("report written to {}", page.display())?;
    }
    check_outcome(&lecture)?;
    Ok(lecture)
}

/// The report's pictures drawn by `convnet show`: the ReLU and GELU curves
/// (the annex's figure) and, when MNIST and Fashion-MNIST are found where
/// `convnet train` looks (never downloaded for a report), a grid of each
/// dataset's test images per class, labelled as the lecture labels them.
pub fn show_figures(dir: &Path, data_dir: Option<&Path>) -> Result<Vec<Figure>> {
    use crate::app::show::{activation_curves, dataset_samples, SamplesOptions};
    use convnet_datasets::{find_dataset, DatasetKind};
    activation_curves(&dir.join("activations.png"))?;
    let mut figures = vec![Figure {
        file: "activations.png".into(),
        caption: "ReLU and GELU, computed by the crate's ReLU and GELU layers (convnet show \
                  activations)"
            .into(),
        section: titles::GELU.into(),
    }];
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        let Ok(found) = find_dataset(kind, data_dir) else {
            continue;
        };
        let file = format!("samples-{}.png", kind.name());
        dataset_samples(kind, &found, &SamplesOptions::default(), &dir.join(&file))?;
        figures.push(Figure {
            file,
            caption: format!(
                "{}: the first test images of each class (convnet show samples)",
                kind.title()
            ),
            section: "Les jeux de données : MNIST et Fashion-MNIST".into(),
        });
    }
    Ok(figures)
}

/// An error listing the checks that disagree, if any: what makes
/// `convnet lecture` exit non-zero. Lecture slips are not failures.
pub fn check_outcome(lecture: &Lecture) -> Result<()> {
    let failures = lecture.failures();
    if failures.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = failures
        .iter()
        .map(|c| {
            format!(
                "{} (line {}): {}",
                c.what,
                c.source.line,
                c.verdict.explanation().unwrap_or("")
            )
        })
        .collect();
    Err(AppError::Usage(format!(
        "{} recomputed number(s) disagree with the code's own expectations: {}",
        failures.len(),
        list.join("; ")
    )))
}
