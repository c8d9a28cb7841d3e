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

#![warn(missing_docs)]

pub mod app;

pub use convnet_datasets as datasets;
pub use convnet_layers as layers;
pub use convnet_tensor as tensor;
pub use convnet_train as train;
pub use convnet_weights as weights;
pub use convnet_zoo as zoo;
