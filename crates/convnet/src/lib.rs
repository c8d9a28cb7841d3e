//! # convnet
//!
//! Build, train, benchmark and run convolutional neural networks on the CPU.
//! This facade re-exports the workspace's crates under one name, and
//! [`app`] holds what the `convnet` command does (training runs, evaluation,
//! prediction, summaries) as library calls.
//!
//! ```
//! use convnet::tensor::conv_output_size;
//! assert_eq!(conv_output_size(28, 5, 2, 1, 1).unwrap(), 28);
//! ```
//!
//! # Using the library
//!
//! A model is a [`layers::Layer`] (a [`layers::Sequential`] of layers, or a
//! [`zoo`] model); a [`train::Trainer`] owns it while it trains and gives it
//! back ([`train::Trainer::into_model`]); [`save`], [`save_zoo`], [`load`]
//! and [`load_into`] write and read it in one call:
//!
//! ```
//! use convnet::layers::{Flatten, Layer, Linear, LinearConfig, Sequential};
//! use convnet::tensor::{Rng, Tensor};
//! use convnet::train::{Batch, BatchSource, Result, TrainConfig, Trainer};
//!
//! /// 2x2 images whose class is 1 when the top-left pixel is positive.
//! struct Pixels;
//! impl BatchSource for Pixels {
//!     fn num_samples(&self) -> usize { 64 }
//!     fn num_batches(&self) -> usize { 4 }
//!     fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
//!         let mut rng = Rng::seed_from(epoch as u64);
//!         Box::new((0..4).map(move |_| {
//!             let images = Tensor::randn(&[16, 1, 2, 2], 0.0, 1.0, &mut rng);
//!             let labels = images.as_slice().chunks(4).map(|p| usize::from(p[0] > 0.0)).collect();
//!             Ok(Batch::new(images, labels))
//!         }))
//!     }
//! }
//!
//! let model = Sequential::default()
//!     .with(Flatten::new())
//!     .with(Linear::new(LinearConfig::new(4, 2), &mut Rng::seed_from(0))?);
//! let config = TrainConfig { epochs: 5, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(model, config, 2)?;
//! trainer.fit(&Pixels, None)?;
//! let model = trainer.into_model();
//! println!("{}", convnet::layers::summary(&model, &[1, 1, 2, 2])?);
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("model.ckpt");
//! convnet::save(&model, &path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate's `examples/` folder holds runnable programs, each a few
//! seconds in release mode (`cargo run --release -p convnet --example
//! NAME`), all run by CI:
//!
//! - `custom_cnn`: a CNN defined with [`layers::Sequential`], trained on
//!   2,000 MNIST images, summarised and saved;
//! - `fine_tune`: LeNet-5's weights loaded into a fresh model, its backbone
//!   frozen and its head trained on Fashion-MNIST;
//! - `load_weights`: a zoo model saved and rebuilt ([`save_zoo`],
//!   [`load`]) and loaded from safetensors ([`load_into`]);
//! - `infer_image`: an image file classified ([`app::predict::predict`]).

#![warn(missing_docs)]

pub mod app;
mod model_file;

pub use model_file::{load, load_into, save, save_zoo};

pub use convnet_datasets as datasets;
pub use convnet_layers as layers;
pub use convnet_tensor as tensor;
pub use convnet_train as train;
pub use convnet_weights as weights;
pub use convnet_zoo as zoo;
