//! # convnet-layers
//!
//! The [`Layer`] contract and every layer of convnet.
//!
//! Backward passes **overwrite** (return) the input gradient and
//! **accumulate** parameter gradients. Parameter names are PyTorch
//! `state_dict` keys.

#![warn(missing_docs)]

pub mod containers;
mod dropout;
pub mod error;
mod flatten;
mod identity;
pub mod layer;
mod linear;
pub mod param;
pub mod summary;
#[cfg(test)]
mod testing;
mod util;

pub use containers::{Add, Concat, Residual, Sequential};
pub use dropout::Dropout;
pub use error::{LayerError, Result};
pub use flatten::Flatten;
pub use identity::Identity;
pub use layer::{visit_param, visit_param_mut, Layer};
pub use linear::{Linear, LinearConfig};
pub use param::{join, Param};
pub use summary::{summary, Summary, SummaryRow};
