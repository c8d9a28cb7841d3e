//! # convnet-weights
//!
//! Trained weights in and out of convnet: a [`StateDict`] (ordered PyTorch
//! key → tensor) is the exchange unit between a model and any file.
//!
//! - PyTorch `.pth`/`.pt` files written by `torch.save(model.state_dict())`
//!   are read without Python and without executing pickled code;
//! - safetensors files are read and written;
//! - numpy `.npy` files hold single tensors (inputs, outputs, feature maps).

mod error;

pub use error::{Result, WeightsError};
mod dtype;
mod state_dict;

pub use dtype::{to_f32, DType};
pub use state_dict::{
    model_shapes, natural_cmp, Entry, LoadMode, LoadReport, ShapeMismatch, StateDict,
};
mod fsutil;
pub mod pth;
pub mod safetensors_io;

pub use fsutil::write_atomic;
mod detect;

pub use detect::{detect, detect_file, read_state_dict, FileKind, CHECKPOINT_MAGIC};
pub mod npy;
