//! What the examples share: a few images of a dataset, found (or
//! downloaded, verified) the way the `convnet` command finds them
//! (`$CONVNET_DATA`, `./data`, ...), and a folder for their outputs.

#![allow(dead_code)] // each example uses part of it

use std::path::PathBuf;

use convnet::app::data::{ensure_data, load_split};
use convnet::datasets::{DataLoader, Dataset, DatasetKind, LoaderConfig, Split};
use convnet::tensor::Rng;
use convnet::train::{TrainConfig, Trainer};
use convnet::zoo::ModelConfig;

/// The first `n` images of `split` of `kind`.
pub fn first_images(kind: DatasetKind, split: Split, n: usize) -> convnet::app::Result<Dataset> {
    let dir = ensure_data(kind, None, false)?;
    load_split(kind, split, &dir, Some(n))
}

/// A folder for the examples' files, in the system's temporary folder.
pub fn out_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("convnet-examples");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A loader over the first `n` images of `split` of `kind`: shuffled with
/// seed 0 for training, in file order for testing.
pub fn loader(
    kind: DatasetKind,
    split: Split,
    n: usize,
    batch_size: usize,
) -> Result<DataLoader, Box<dyn std::error::Error>> {
    let data = first_images(kind, split, n)?;
    let config = match split {
        Split::Train => LoaderConfig::train(batch_size, 0),
        Split::Test => LoaderConfig::eval(batch_size),
    };
    Ok(DataLoader::new(data, config)?)
}

/// LeNet-5 trained for one epoch on 2,000 MNIST images (about 90% test
/// accuracy, a second or two), saved with its zoo name: the checkpoint's
/// path.
pub fn quick_lenet5() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let config = ModelConfig::mnist();
    let digits = loader(DatasetKind::Mnist, Split::Train, 2_000, 32)?;
    let model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(1))?;
    let run = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, run, config.num_classes)?;
    trainer.fit(&digits, None)?;
    let path = out_dir()?.join("lenet5-mnist.ckpt");
    convnet::save_zoo(trainer.model().as_ref(), "lenet5", &config, &path)?;
    Ok(path)
}
