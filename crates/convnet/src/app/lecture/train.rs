//! `convnet lecture --train`: LeNet-1, LeNet-4 and LeNet-5 trained on MNIST
//! with `convnet train`'s defaults, beside the lecture's table of error
//! rates (line 285).

use std::fmt::Write;
use std::time::Instant;

use convnet_datasets::DatasetSpec;
use convnet_tensor::Rng;
use convnet_train::progress::thousands;
use convnet_train::{evaluate, Callback, ProgressPrinter, Trainer};

use super::super::sources::open_run_data;
use super::super::train::TrainOptions;
use crate::app::{ProgressMode, Result};

/// The lecture's table (line 287-289): zoo name, the lecture's name, its
/// error rate on MNIST in percent.
pub const LECTURE_ERROR_RATES: [(&str, &str, f64); 3] = [
    ("lenet1", "LeNet (1989)", 1.70),
    ("lenet4", "LeNet-4", 1.10),
    ("lenet5", "LeNet-5 (1998)", 0.95),
];

/// One trained LeNet beside the lecture's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainResult {
    /// Zoo name.
    pub model: String,
    /// The lecture's name for it.
    pub title: String,
    /// Its parameters.
    pub params: usize,
    /// The lecture's error rate on MNIST's test set, in percent.
    pub lecture_error: f64,
    /// The measured error rate on the test images used, in percent.
    pub measured_error: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training images used.
    pub train_images: usize,
    /// Test images used.
    pub test_images: usize,
    /// Seconds of training and evaluation.
    pub seconds: f64,
}

/// Trains the three LeNets of the lecture's table on MNIST (found, or
/// downloaded unless offline, as `convnet train` does) and measures their
/// test error. Each model starts from the same seed and sees the same
/// batches. `opts` are a `convnet train` run's (its model and output
/// folder are not used): [`lenet_options`] gives the defaults (SGD with
/// Nesterov momentum, cosine schedule, 1-pixel shifts).
pub fn train_lenets(opts: &TrainOptions) -> Result<Vec<TrainResult>> {
    opts.validate()?;
    // LeNets read 28×28 MNIST: nothing to resize, crop or jitter.
    let data = open_run_data(&opts.data_request(28))?;
    let classes = data.class_names.len();
    let config = convnet_zoo::ModelConfig {
        num_classes: classes,
        ..opts.model_config()
    };
    let mut results = Vec::new();
    for (name, title, lecture_error) in LECTURE_ERROR_RATES {
        let model = convnet_zoo::build(name, &config, &mut Rng::seed_from(opts.seed))?;
        let params = model.num_params();
        println!(
            "training {name} ({} parameters) on {} MNIST images from {} for {} epoch(s), seed {}, \
             {} threads",
            thousands(params as f64),
            thousands(data.n_train as f64),
            data.origin,
            opts.epochs,
            opts.seed,
            rayon::current_num_threads()
        );
        let start = Instant::now();
        let mut trainer = Trainer::new(model, opts.train_config()?, classes)?;
        let progress: Box<dyn Callback> = Box::new(match opts.progress {
            ProgressMode::Auto => ProgressPrinter::auto(),
            ProgressMode::Plain => ProgressPrinter::plain(Box::new(std::io::stdout())),
            ProgressMode::Quiet => ProgressPrinter::quiet(),
        });
        trainer.add_callback(progress);
        trainer.fit(&*data.train, Some(&*data.test))?;
        let model = trainer.into_model();
        let eval = evaluate(model.as_ref(), &*data.test, classes)?;
        results.push(TrainResult {
            model: name.to_string(),
            title: title.to_string(),
            params,
            lecture_error,
            measured_error: 100.0 * (1.0 - eval.accuracy),
            epochs: opts.epochs,
            train_images: data.n_train,
            test_images: data.n_test,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(results)
}

/// `convnet train`'s defaults on MNIST, for `epochs` epochs.
pub fn lenet_options(epochs: usize) -> TrainOptions {
    TrainOptions {
        epochs,
        ..TrainOptions::new("lenet5", DatasetSpec::Mnist)
    }
}

/// The lecture's table beside the measured errors.
pub fn render_table(rows: &[TrainResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Taux d'erreur sur MNIST (line 285): the lecture's table beside LeNets trained here"
    );
    let _ = writeln!(
        out,
        "  {:<16} {:>10}  {:>9}  {:>9}  {:>6}  {:>8}",
        "model", "parameters", "lecture", "measured", "epochs", "seconds"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<16} {:>10}  {:>8.2}%  {:>8.2}%  {:>6}  {:>8.0}",
            r.title,
            thousands(r.params as f64),
            r.lecture_error,
            r.measured_error,
            r.epochs,
            r.seconds
        );
    }
    if let Some(r) = rows.first() {
        let _ = writeln!(
            out,
            "  ({} training / {} test images; the lecture's rates are the papers', after many \
             more epochs)",
            thousands(r.train_images as f64),
            thousands(r.test_images as f64)
        );
    }
    out
}
