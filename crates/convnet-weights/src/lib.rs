//! # convnet-weights
//!
//! Trained weights in and out of convnet: a [`StateDict`] (ordered PyTorch
//! key → tensor) is the exchange unit between a model and any file.
//!
//! - PyTorch `.pth`/`.pt` files written by `torch.save(model.state_dict())`
//!   are read without Python and without executing pickled code;
//! - safetensors files are read and written;
//! - numpy `.npy` files hold single tensors (inputs, outputs, feature maps):
//!   [`npy`] reads versions 1.0 to 3.0 with float, integer and bool dtypes and writes `<f4`.

mod error;

pub use error::{Result, WeightsError};
mod dtype;
pub mod npy;
mod state_dict;

pub use dtype::{to_f32, DType};
pub use state_dict::{
    model_shapes, natural_cmp, Entry, LoadMode, LoadReport, ShapeMismatch, StateDict,
};
