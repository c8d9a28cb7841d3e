//! `convnet eval`: a checkpoint's accuracy and confusion matrix on a test set.

use std::path::Path;

use convnet_datasets::{DatasetKind, DatasetSpec, Pipeline, Split};
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

/// A zoo model with weights from any file convnet reads, and what the file
/// says about it.
#[derive(Debug)]
pub struct ModelWithWeights {
    /// The zoo name.
    pub name: String,
    /// The model, weights loaded.
    pub model: Box<dyn Layer>,
    /// Its configuration.
    pub config: ModelConfig,
    /// The dataset a convnet checkpoint was trained on.
    pub dataset: Option<DatasetKind>,
    /// The epoch a convnet checkpoint was saved at.
    pub epoch: Option<usize>,
    /// The class names the file records (a convnet checkpoint), else empty.
    pub class_names: Vec<String>,
    /// How a convnet checkpoint's inputs are prepared (written since
    /// checkpoint format 2).
    pub preprocessing: Option<convnet_train::Preprocessing>,
    /// Any dataset a convnet checkpoint names (CIFAR and folders too).
    pub spec: Option<DatasetSpec>,
    /// The settings of the run that wrote a convnet checkpoint (JSON).
    pub run_settings: Option<String>,
}

impl ModelWithWeights {
    /// The normalisation (mean, std) of a greyscale model's inputs: the
    /// checkpoint's own (format 2), else `dataset`'s, else none (0, 1).
    pub fn grey_mean_std(&self, dataset: Option<DatasetKind>) -> (f32, f32) {
        self.preprocessing
            .as_ref()
            .and_then(|p| match (p.mean.as_slice(), p.std.as_slice()) {
                ([m], [s]) => Some((*m, *s)),
                _ => None,
            })
            .or(dataset.map(DatasetKind::mean_std))
            .unwrap_or((0.0, 1.0))
    }

    /// The evaluation pipeline the checkpoint records (CIFAR and image
    /// folders), if any.
    pub fn eval_pipeline(&self) -> Result<Option<Pipeline>> {
        match self
            .preprocessing
            .as_ref()
            .map(|p| p.eval_pipeline.as_str())
        {
            None | Some("") => Ok(None),
            Some(json) => serde_json::from_str(json).map(Some).map_err(|e| {
                AppError::Usage(format!(
                    "the checkpoint's evaluation pipeline does not parse: {e}"
                ))
            }),
        }
    }
}

/// Builds a zoo model with the weights of `path`: a convnet checkpoint
/// (the model it names unless `model` is given), or a PyTorch/safetensors
/// state dict for zoo model `model`, loaded strictly.
pub fn load_with_weights(model: Option<&str>, path: &Path) -> Result<ModelWithWeights> {
    let is_checkpoint =
        convnet_weights::detect_file(path)? == convnet_weights::FileKind::ConvnetCheckpoint;
    if is_checkpoint {
        let loaded = load_model(path)?;
        let named = &loaded.checkpoint.header.model;
        if model.is_none_or(|m| m == named) {
            let h = &loaded.checkpoint.header;
            return Ok(ModelWithWeights {
                name: h.model.clone(),
                dataset: checkpoint_dataset(&loaded.checkpoint),
                epoch: Some(h.epoch),
                class_names: h.class_names.clone(),
                preprocessing: h.preprocessing.clone(),
                spec: h.dataset.parse().ok(),
                run_settings: loaded
                    .checkpoint
                    .payload
                    .train
                    .as_ref()
                    .map(|t| t.run_settings.clone()),
                model: loaded.model,
                config: loaded.config,
            });
        }
    }
    let wm = super::weights::build_with_weights(
        model,
        path,
        None,
        convnet_weights::LoadMode::Strict,
        0,
    )?;
    Ok(ModelWithWeights {
        name: wm.name,
        model: wm.model,
        config: wm.config,
        dataset: None,
        epoch: None,
        class_names: wm.file.class_names,
        preprocessing: None,
        spec: None,
        run_settings: None,
    })
}

/// The class names to report: the checkpoint's (they are the model's
/// outputs), else the dataset's. A checkpoint whose number of classes is
/// not the dataset's is an error naming both.
fn eval_class_names(
    loaded: &ModelWithWeights,
    kind: DatasetKind,
    checkpoint: &Path,
) -> Result<Vec<String>> {
    let dataset: Vec<String> = kind.class_names().iter().map(|s| s.to_string()).collect();
    if loaded.class_names.is_empty() {
        return Ok(dataset);
    }
    if loaded.class_names.len() != dataset.len() {
        return Err(AppError::Usage(format!(
            "{} has {} classes ({}), the {} test set has {}: evaluate it on the dataset it was \
             trained on",
            checkpoint.display(),
            loaded.class_names.len(),
            preview(&loaded.class_names),
            kind.title(),
            dataset.len()
        )));
    }
    Ok(loaded.class_names.clone())
}

/// The first few names of a list, for messages.
fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    let more = if names.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    format!("{}{more}", shown.join(", "))
}

/// The dataset a checkpoint was trained on, if it names one.
pub fn checkpoint_dataset(ck: &Checkpoint) -> Option<DatasetKind> {
    ck.header.dataset.parse().ok()
}

/// Evaluates a checkpoint (or any weight file, with `model`) on the test
/// split of `dataset` (default: the one it was trained on); prints accuracy,
/// top-5, per-class accuracy and the confusion matrix, and draws the heat
/// map to `plot_path` if given.
#[allow(clippy::too_many_arguments)]
pub fn run_eval(
    checkpoint: &Path,
    model: Option<&str>,
    dataset: Option<DatasetSpec>,
    data_dir: Option<&Path>,
    offline: bool,
    batch_size: usize,
    limit: Option<usize>,
    plot_path: Option<&Path>,
) -> Result<EvalReport> {
    if batch_size == 0 {
        return Err(AppError::Usage("--batch-size must be >= 1".into()));
    }
    if let Some(p) = plot_path {
        // Before the evaluation: a refused path should not cost its minutes.
        convnet_train::fsutil::check_output(p, &[checkpoint])?;
    }
    let loaded = load_with_weights(model, checkpoint)?;
    let Some(spec) = dataset.or(loaded.spec.clone()) else {
        return Err(AppError::Usage(format!(
            "{} does not say which dataset it was trained on: pass --dataset",
            checkpoint.display()
        )));
    };
    let (report, n, classes) = if let Some(kind) = spec.idx_kind() {
        let dir = ensure_data(kind, data_dir, offline)?;
        if let Some(p) = plot_path {
            // Nor onto the test set just read.
            let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            let mut inputs: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
            inputs.push(checkpoint);
            convnet_train::fsutil::check_output(p, &inputs)?;
        }
        let test = load_split(kind, Split::Test, &dir, limit)?;
        let n = test.len();
        let loader = test_loader(test, batch_size)?;
        let classes = eval_class_names(&loaded, kind, checkpoint)?;
        (evaluate(&loaded.model, &loader, classes.len())?, n, classes)
    } else {
        let pipeline = loaded.eval_pipeline()?.ok_or_else(|| {
            AppError::Usage(format!(
                "{} does not record how its images were prepared (a checkpoint written by \
                 `convnet train` on {} does): it cannot be evaluated on {}",
                checkpoint.display(),
                spec,
                spec.title()
            ))
        })?;
        // A folder without train/ and val/ is split as the run split it.
        let split = loaded
            .run_settings
            .as_deref()
            .and_then(|s| serde_json::from_str::<super::train::TrainOptions>(s).ok())
            .map(|o| (o.val_fraction, o.seed));
        let (loader, _origin) = super::sources::open_eval_data(
            &spec, data_dir, offline, pipeline, batch_size, limit, split,
        )?;
        if let Some(p) = plot_path {
            let mut inputs: Vec<&Path> = vec![checkpoint];
            if let DatasetSpec::Folder(root) = &spec {
                inputs.push(root);
            }
            convnet_train::fsutil::check_output(p, &inputs)?;
        }
        let classes = loader.source().class_names().to_vec();
        if !loaded.class_names.is_empty() && loaded.class_names.len() != classes.len() {
            return Err(AppError::Usage(format!(
                "{} has {} classes ({}), {} has {}: evaluate it on the data it was trained on",
                checkpoint.display(),
                loaded.class_names.len(),
                preview(&loaded.class_names),
                spec.title(),
                classes.len()
            )));
        }
        let n = loader.len();
        (evaluate(&loaded.model, &loader, classes.len())?, n, classes)
    };
    let epoch = loaded
        .epoch
        .map(|e| format!(", epoch {e}"))
        .unwrap_or_default();
    crate::outln!(
        "{} ({}{epoch}) on the {} test set ({} images):",
        loaded.name,
        checkpoint.display(),
        spec.title(),
        n
    )?;
    crate::outln!(
        "accuracy {:.2}% ({} / {}), top-5 {:.2}%, loss {:.4}, {:.1} s",
        100.0 * report.accuracy,
        report.confusion.correct(),
        report.samples,
        100.0 * report.top5,
        report.loss,
        report.seconds
    )?;
    crate::outln!("\nconfusion matrix (rows: true class, columns: predicted class):")?;
    crate::out!("{}", report.confusion.render(&classes))?;
    if let Some(p) = plot_path {
        plot::plot_confusion(
            &report.confusion,
            &classes,
            &format!("{} on {} test set", loaded.name, spec.title()),
            p,
        )?;
        crate::outln!("heat map written to {}", p.display())?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(class_names: &[&str]) -> ModelWithWeights {
        let config = ModelConfig::mnist();
        ModelWithWeights {
            name: "lenet1".into(),
            model: convnet_zoo::build("lenet1", &config, &mut convnet_tensor::Rng::seed_from(0))
                .unwrap(),
            config,
            dataset: Some(DatasetKind::Mnist),
            epoch: Some(1),
            class_names: class_names.iter().map(|s| s.to_string()).collect(),
            preprocessing: None,
            spec: Some(DatasetSpec::Mnist),
            run_settings: None,
        }
    }

    #[test]
    fn class_names_come_from_the_checkpoint_else_the_dataset() {
        let p = Path::new("run/checkpoint.ckpt");
        let names: Vec<String> = (0..10).map(|i| format!("class {i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let got = eval_class_names(&loaded(&refs), DatasetKind::FashionMnist, p).unwrap();
        assert_eq!(got, names, "the checkpoint's names, not Fashion-MNIST's");
        let got = eval_class_names(&loaded(&[]), DatasetKind::FashionMnist, p).unwrap();
        assert_eq!(got[0], DatasetKind::FashionMnist.class_names()[0]);
        let e = eval_class_names(&loaded(&["cat", "dog"]), DatasetKind::Mnist, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run/checkpoint.ckpt has 2 classes (cat, dog)") && e.contains("has 10"),
            "{e}"
        );
    }
}
