//! # convnet-layers
//!
//! The [`Layer`] contract and every layer of convnet.
//!
//! Backward passes **overwrite** (return) the input gradient and
//! **accumulate** parameter gradients. Parameter names are PyTorch
//! `state_dict` keys.

#![warn(missing_docs)]

mod adaptive_avg_pool2d;
mod avg_pool2d;
mod batch_norm2d;
pub mod containers;
mod conv2d;
mod dropout;
mod elementwise;
pub mod error;
mod flatten;
mod gelu;
mod identity;
pub mod layer;
mod layer_norm;
mod layer_norm2d;
mod layer_scale;
mod linear;
mod max_pool2d;
pub mod param;
mod permute;
mod relu;
mod sigmoid;
mod softmax;
pub mod summary;
mod tanh;
#[cfg(test)]
mod testing;
mod util;

pub use adaptive_avg_pool2d::AdaptiveAvgPool2d;
pub use avg_pool2d::AvgPool2d;
pub use batch_norm2d::{BatchNorm2d, BatchNorm2dConfig};
pub use containers::{Add, Concat, Residual, Sequential};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use error::{LayerError, Result};
pub use flatten::Flatten;
pub use gelu::GELU;
pub use identity::Identity;
pub use layer::{visit_param, visit_param_mut, Layer};
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use layer_norm2d::LayerNorm2d;
pub use layer_scale::{LayerScale, ScaleAxis};
pub use linear::{Linear, LinearConfig};
pub use max_pool2d::{MaxPool2d, Pool2dConfig};
pub use param::{join, Param};
pub use permute::Permute;
pub use relu::ReLU;
pub use sigmoid::Sigmoid;
pub use softmax::Softmax;
pub use summary::{summary, Summary, SummaryRow};
pub use tanh::Tanh;
pub use util::IntoPair;
