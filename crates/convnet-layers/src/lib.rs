//! # convnet-layers
//!
//! The [`Layer`] contract and every layer of convnet.
//!
//! Backward passes **overwrite** (return) the input gradient and
//! **accumulate** parameter gradients. Parameter names are PyTorch
//! `state_dict` keys.

#![warn(missing_docs)]

pub mod error;
pub mod layer;
pub mod param;
pub mod summary;

pub use error::{LayerError, Result};
pub use layer::{visit_param, visit_param_mut, Layer};
pub use param::{join, Param};
pub use summary::SummaryRow;
