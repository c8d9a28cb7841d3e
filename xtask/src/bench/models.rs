//! The model rows: one full training step of a zoo model on synthetic
//! data, real epochs of LeNet-5 on MNIST, and `infer()` of a zoo model at
//! its default input size on a batch of random images (the median time is
//! the latency of one batch; images/s is the batch over that time).
//!
//! Training uses PyTorch's reference settings (`../shared/bench/torch_lenet.py`):
//! cross-entropy, SGD with learning rate 0.01 and momentum 0.9 (no Nesterov,
//! no weight decay), a constant learning rate.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use convnet::datasets::{
    find_dataset, locate::find_dataset_in, DataLoader, Dataset, DatasetKind, LoaderConfig, Split,
};
use convnet::layers::Layer;
use convnet::tensor::format::thousands;
use convnet::tensor::{Rng, Tensor};
use convnet::train::loss::cross_entropy;
use convnet::train::{Optimizer, OptimizerConfig, ScheduleKind, TrainConfig, Trainer};
use convnet::zoo::{self, ModelConfig};

use super::measure::{measure, Reps, Timing};
use super::row::{Kind, Row};
use super::system::workspace_root;

/// Learning rate of the reference runs.
pub const LR: f32 = 0.01;
/// Momentum of the reference runs.
pub const MOMENTUM: f32 = 0.9;
/// Seed of weights, data and shuffling.
const SEED: u64 = 42;
/// Images per evaluation batch in the epoch row.
const EVAL_BATCH: usize = 1000;

/// A model of the zoo at its default configuration, seeded.
pub fn build_default(model: &str) -> anyhow::Result<(Box<dyn Layer>, ModelConfig)> {
    let entry = zoo::entry(model)?;
    let config = (entry.default_config)();
    let net = entry
        .build(&config, &mut Rng::seed_from(SEED))
        .with_context(|| format!("building {model}"))?;
    Ok((net, config))
}

/// `1x28x28`-style description of one input.
pub fn input_desc(config: &ModelConfig) -> String {
    format!(
        "{}x{}x{}",
        config.in_channels, config.image_size, config.image_size
    )
}

/// Useful FLOPs of one forward pass on `shape`, or 0 (with a warning on
/// stderr) if the model cannot count them.
pub fn forward_flops(model: &dyn Layer, name: &str, shape: &[usize]) -> f64 {
    match zoo::flops::flops(model, shape) {
        Ok(f) => f as f64,
        Err(e) => {
            eprintln!("warning: {name}: FLOPs not counted ({e}); GFLOP/s left out");
            0.0
        }
    }
}

/// Times one training step (forward, cross-entropy, backward, SGD step) of
/// `model` on a fixed batch of random images (fresh random labels at each
/// step), with the calls of
/// [`Trainer`]'s step (`forward_owned`, `backward_params`). GFLOP/s count
/// three forward passes per step (forward, and backward's input and weight
/// gradients), the usual convention.
pub fn train_step(row_name: &str, model: &str, batch: usize, reps: Reps) -> anyhow::Result<Row> {
    let (mut net, config) = build_default(model)?;
    let shape = config.input_shape(batch);
    let mut rng = Rng::seed_from(SEED + 1);
    let images = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
    let mut labels = vec![0usize; batch];
    let mut optimizer = Optimizer::new(OptimizerConfig::sgd(LR, MOMENTUM), &*net)?;
    let t = measure(reps, || {
        // As the trainer does: the batch is given away (a fresh tensor per
        // step, as the loader makes), and the model's input needs no
        // gradient (PyTorch's data tensors do not require one either).
        // Fresh labels every step: a fixed batch would be learnt by heart
        // within the repetitions, its gradients would shrink towards
        // denormal floats, and the step would no longer be a typical one.
        for l in labels.iter_mut() {
            *l = rng.below(config.num_classes);
        }
        let logits = net.forward_owned(images.clone())?;
        let loss = cross_entropy(&logits, &labels, 0.0)?;
        net.zero_grad();
        net.backward_params(&loss.grad)?;
        optimizer.step(&mut *net, LR)?;
        Ok(())
    })
    .with_context(|| format!("{row_name}: training step"))?;
    let flops = 3.0 * forward_flops(&*net, model, &shape);
    Ok(Row::new(
        row_name,
        Kind::Train,
        batch,
        input_desc(&config),
        t,
        flops,
    ))
}

/// The MNIST folder: `--data-dir` alone when given (never another folder
/// instead), else `$CONVNET_DATA`, `./data`, `/usr/share/datasets`, then
/// `../shared/datasets` beside the workspace.
pub fn find_mnist(flag: Option<&Path>) -> Option<PathBuf> {
    if flag.is_some() {
        return find_dataset(DatasetKind::Mnist, flag).ok();
    }
    find_dataset(DatasetKind::Mnist, None)
        .or_else(|_| {
            let shared = workspace_root().join("../shared/datasets");
            find_dataset_in(DatasetKind::Mnist, &[shared])
        })
        .ok()
}

/// Where [`find_mnist`] looked, for the note printed when it finds nothing.
pub const MNIST_PLACES: &str =
    "--data-dir if given, else $CONVNET_DATA, ./data, /usr/share/datasets and ../shared/datasets";

/// Epochs of real training on the 60,000 MNIST images (batch `batch`, last
/// partial batch dropped, shuffled, prefetching as `convnet train` does),
/// each followed by an evaluation on the 10,000 test images, as in a full
/// training run, so that the process's peak memory is a full run's. The
/// first `warmup` epochs are not timed; each further epoch is one run.
pub fn train_epoch(
    row_name: &str,
    model: &str,
    batch: usize,
    data_dir: Option<&Path>,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<Row> {
    let Some(dir) = find_mnist(data_dir) else {
        bail!("{row_name}: MNIST not found in {MNIST_PLACES} (get it with `cargo xtask download mnist`)");
    };
    let (net, config) = build_default(model)?;
    if (config.in_channels, config.image_size) != (1, 28) {
        bail!(
            "{row_name}: {model} takes {} images, MNIST is 1x28x28",
            input_desc(&config)
        );
    }
    let train = Dataset::load(DatasetKind::Mnist, Split::Train, &dir)?;
    let test = Dataset::load(DatasetKind::Mnist, Split::Test, &dir)?;
    let loader = DataLoader::new(
        train,
        LoaderConfig {
            drop_last: true,
            prefetch: 2,
            ..LoaderConfig::train(batch, SEED)
        },
    )?;
    let test_loader = DataLoader::new(test, LoaderConfig::eval(EVAL_BATCH))?;
    let images = loader.num_batches() * batch;
    let train_config = TrainConfig {
        epochs: warmup + runs,
        optimizer: OptimizerConfig::sgd(LR, MOMENTUM),
        schedule: ScheduleKind::Constant,
        warmup_steps: Some(0),
        clip_grad_norm: None,
        label_smoothing: 0.0,
    };
    let forward = forward_flops(&*net, model, &config.input_shape(1));
    let mut trainer = Trainer::new(net, train_config, config.num_classes)?;
    let history = trainer.fit(&loader, Some(&test_loader))?;
    let timed = &history.records[warmup..];
    let mut seconds: Vec<f64> = timed.iter().map(|r| r.train_seconds).collect();
    let accuracy = timed.last().and_then(|r| r.test_accuracy).unwrap_or(0.0);
    let t = Timing::from_runs(&mut seconds).context("no epoch was timed")?;
    let desc = format!(
        "MNIST {}, acc {:.1}%",
        thousands(images as u64),
        accuracy * 100.0
    );
    // One run is one epoch of `images` images.
    let mut row = Row::new(
        row_name,
        Kind::Train,
        batch,
        desc,
        t,
        3.0 * forward * images as f64,
    );
    row.images_per_s = Some(images as f64 / t.median_s);
    Ok(row)
}

/// Times `model.infer` on one batch of `batch` random images.
pub fn infer(row_name: &str, model: &str, batch: usize, reps: Reps) -> anyhow::Result<Row> {
    let (net, config) = build_default(model)?;
    let shape = config.input_shape(batch);
    let images = Tensor::randn(&shape, 0.0, 1.0, &mut Rng::seed_from(7));
    let t = measure(reps, || {
        let logits = net.infer(&images)?;
        debug_assert_eq!(logits.shape(), [batch, config.num_classes]);
        Ok(())
    })
    .with_context(|| format!("{row_name}: inference"))?;
    let flops = forward_flops(&*net, model, &shape);
    Ok(Row::new(
        row_name,
        Kind::Infer,
        batch,
        input_desc(&config),
        t,
        flops,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_training_step_row_counts_images_and_flops() {
        let reps = Reps {
            warmup: 1,
            min: 2,
            max: 2,
            budget_s: 0.0,
        };
        let row = train_step("train.lenet5.b4", "lenet5", 4, reps).unwrap();
        assert_eq!(
            (row.name.as_str(), row.kind, row.batch),
            ("train.lenet5.b4", Kind::Train, 4)
        );
        assert_eq!(row.shape, "1x28x28");
        assert_eq!(row.reps, 2);
        let ips = row.images_per_s.unwrap();
        assert!((ips - 4.0 / row.median_s).abs() < 1e-6 * ips);
        // LeNet-5's forward pass: 416,520 multiply-adds per image.
        assert_eq!(row.flops, 3.0 * 2.0 * 416_520.0 * 4.0);
    }

    #[test]
    fn epoch_rows_need_the_data_and_a_28x28_model() {
        let nowhere = Path::new("/nonexistent");
        if find_mnist(Some(nowhere)).is_none() {
            let msg = train_epoch("e", "lenet5", 64, Some(nowhere), 0, 1)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("MNIST not found"), "{msg}");
        } else {
            // The data is there: the model check comes before any training.
            let msg = train_epoch("e", "resnet18", 2, None, 0, 1)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("MNIST is 1x28x28"), "{msg}");
        }
    }

    #[test]
    fn an_inference_row_counts_images_and_flops() {
        let reps = Reps {
            warmup: 0,
            min: 3,
            max: 3,
            budget_s: 0.0,
        };
        let row = infer("infer.lenet5.b8", "lenet5", 8, reps).unwrap();
        assert_eq!((row.kind, row.batch, row.reps), (Kind::Infer, 8, 3));
        assert!(row.min_s <= row.median_s && row.median_s <= row.max_s);
        assert_eq!(row.flops, 2.0 * 416_520.0 * 8.0);
        assert!(infer("infer.lenet6.b1", "lenet6", 1, reps).is_err());
    }
}
