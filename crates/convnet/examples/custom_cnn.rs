//! A custom CNN, defined, trained, summarised and saved in a few lines.
//!
//! ```text
//! cargo run --release -p convnet --example custom_cnn
//! ```
//!
//! Trains on the first 2,000 MNIST training images for 2 epochs (a few
//! seconds) and evaluates on 1,000 test images; MNIST is found as the
//! `convnet` command finds it (`$CONVNET_DATA`, `./data`, ...) or
//! downloaded and verified.

mod common;

use convnet::datasets::{DataLoader, DatasetKind, LoaderConfig, Split};
use convnet::layers::{
    summary, Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, MaxPool2d, Pool2dConfig, ReLU,
    Sequential,
};
use convnet::tensor::Rng;
use convnet::train::{evaluate, OptimizerConfig, ProgressPrinter, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The model: two 3x3 convolutions with max-pooling, then a linear head.
    let mut rng = Rng::seed_from(0);
    let model = Sequential::default()
        .with(Conv2d::new(
            Conv2dConfig::new(1, 8, 3).padding(1),
            &mut rng,
        )?) // [N, 8, 28, 28]
        .with(ReLU::new())
        .with(MaxPool2d::new(Pool2dConfig::new(2))?) // [N, 8, 14, 14]
        .with(Conv2d::new(
            Conv2dConfig::new(8, 16, 3).padding(1),
            &mut rng,
        )?) // [N, 16, 14, 14]
        .with(ReLU::new())
        .with(MaxPool2d::new(Pool2dConfig::new(2))?) // [N, 16, 7, 7]
        .with(Flatten::new()) // [N, 784]
        .with(Linear::new(LinearConfig::new(16 * 7 * 7, 10), &mut rng)?); // [N, 10]

    // The data: normalised, shuffled each epoch with a seed.
    let train = common::first_images(DatasetKind::Mnist, Split::Train, 2_000)?;
    let test = common::first_images(DatasetKind::Mnist, Split::Test, 1_000)?;
    let train = DataLoader::new(train, LoaderConfig::train(32, 0))?;
    let test = DataLoader::new(test, LoaderConfig::eval(500))?;

    // Training: Adam for 2 epochs; the warm-up scales with the run's length.
    let config = TrainConfig {
        epochs: 2,
        optimizer: OptimizerConfig::adam(2e-3),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config, 10)?;
    trainer.add_callback(Box::new(ProgressPrinter::plain(
        Box::new(std::io::stdout()),
    )));
    trainer.fit(&train, Some(&test))?;
    let model = trainer.into_model(); // the trained model, back in our hands

    println!("{}", summary(&model, &[1, 1, 28, 28])?);
    let report = evaluate(&model, &test, 10)?;
    println!(
        "test accuracy {:.1}% on {} images",
        100.0 * report.accuracy,
        report.samples
    );
    let path = common::out_dir()?.join("custom_cnn.ckpt");
    convnet::save(&model, &path)?;
    println!("saved {}", path.display());
    if report.accuracy < 0.6 {
        return Err(format!("the model did not learn: {:.1}%", 100.0 * report.accuracy).into());
    }
    Ok(())
}
