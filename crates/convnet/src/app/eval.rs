//! `convnet eval`: a checkpoint's accuracy and confusion matrix on a test set.

use std::path::Path;

use convnet_datasets::{DatasetKind, Split};
use convnet_layers::Layer;
use convnet_tensor::Rng;
use convnet_train::{evaluate, plot, Checkpoint, EvalReport};
use convnet_zoo::ModelConfig;

use super::data::{ensure_data, load_split, test_loader};
use super::{AppError, Result};

/// A model rebuilt from a checkpoint, with its metadata.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model, weights loaded.
    pub model: Box<dyn Layer>,
    /// The checkpoint it came from.
    pub checkpoint: Checkpoint,
    /// Its configuration.
    pub config: ModelConfig,
}

/// Reads a checkpoint, rebuilds its model from the zoo and loads the weights.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    let checkpoint = Checkpoint::load(path)?;
    let config: ModelConfig =
        serde_json::from_str(&checkpoint.header.model_config).map_err(|e| {
            AppError::Usage(format!(
                "{}: the model configuration in the header does not parse: {e}",
                path.display()
            ))
        })?;
    let mut model = convnet_zoo::build(&checkpoint.header.model, &config, &mut Rng::seed_from(0))?;
    checkpoint.apply_to(&mut model)?;
    Ok(LoadedModel {
        model,
        checkpoint,
        config,
    })
}

/// The dataset a checkpoint was trained on, if it names one.
pub fn checkpoint_dataset(ck: &Checkpoint) -> Option<DatasetKind> {
    ck.header.dataset.parse().ok()
}

/// Evaluates a checkpoint on the test split of `dataset` (default: the one
/// it was trained on); prints accuracy, top-5, per-class accuracy and the
/// confusion matrix, and draws the heat map to `plot_path` if given.
pub fn run_eval(
    checkpoint: &Path,
    dataset: Option<DatasetKind>,
    data_dir: Option<&Path>,
    offline: bool,
    batch_size: usize,
    limit: Option<usize>,
    plot_path: Option<&Path>,
) -> Result<EvalReport> {
    if batch_size == 0 {
        return Err(AppError::Usage("--batch-size must be >= 1".into()));
    }
    let loaded = load_model(checkpoint)?;
    let kind = match dataset.or_else(|| checkpoint_dataset(&loaded.checkpoint)) {
        Some(k) => k,
        None => {
            return Err(AppError::Usage(
                "the checkpoint does not say which dataset it was trained on: pass --dataset"
                    .into(),
            ))
        }
    };
    let dir = ensure_data(kind, data_dir, offline)?;
    let test = load_split(kind, Split::Test, &dir, limit)?;
    let n = test.len();
    let loader = test_loader(test, batch_size)?;
    let classes: Vec<String> = kind.class_names().iter().map(|s| s.to_string()).collect();
    let report = evaluate(&loaded.model, &loader, classes.len())?;
    let h = &loaded.checkpoint.header;
    println!(
        "{} ({}, epoch {}) on the {} test set ({} images):",
        h.model,
        checkpoint.display(),
        h.epoch,
        kind.title(),
        n
    );
    println!(
        "accuracy {:.2}% ({} / {}), top-5 {:.2}%, loss {:.4}, {:.1} s",
        100.0 * report.accuracy,
        report.confusion.correct(),
        report.samples,
        100.0 * report.top5,
        report.loss,
        report.seconds
    );
    println!("\nconfusion matrix (rows: true class, columns: predicted class):");
    print!("{}", report.confusion.render(&classes));
    if let Some(p) = plot_path {
        plot::plot_confusion(
            &report.confusion,
            &classes,
            &format!("{} on {} test set", h.model, kind.title()),
            p,
        )?;
        println!("heat map written to {}", p.display());
    }
    Ok(report)
}
