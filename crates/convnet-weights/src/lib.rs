//! # convnet-weights
//!
//! Trained weights in and out of convnet: a [`StateDict`] (ordered PyTorch
//! key → tensor) is the exchange unit between a model and any file, and the
//! zoo's keys are torchvision's, so nothing is ever renamed.
//!
//! - PyTorch `.pth`/`.pt` files written by `torch.save(model.state_dict())`
//!   ([`pth`]) are read without Python and without executing pickled code: a
//!   file holding anything but tensors and containers is refused;
//! - safetensors files ([`safetensors_io`]) are read and written;
//! - numpy `.npy` files ([`npy`]) hold single tensors (inputs, outputs,
//!   feature maps): versions 1.0 to 3.0 with float, integer and bool dtypes
//!   are read, `<f4` is written;
//! - files are told apart by content ([`detect_file`]), not by extension;
//! - element types F32, F16, BF16, F64 (and integers, for counters) convert
//!   to `f32` on load.
//!
//! Loading is strict by default: a missing key, an unexpected key or a shape
//! mismatch is one error listing every offending key.
//!
//! ```
//! use convnet_layers::{Layer, Linear, LinearConfig};
//! use convnet_tensor::Rng;
//! use convnet_weights::{safetensors_io, LoadMode, StateDict};
//!
//! let mut rng = Rng::seed_from(0);
//! let trained = Linear::new(LinearConfig::new(4, 3), &mut rng)?;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("head.safetensors");
//! safetensors_io::write(&path, &StateDict::from_model(&trained), None)?;
//!
//! // Loaded back into a fresh layer of the same shape: every key matches.
//! let sd = convnet_weights::read_state_dict(&path)?;
//! let mut fresh = Linear::new(LinearConfig::new(4, 3), &mut rng)?;
//! assert!(sd.load_into(&mut fresh, LoadMode::Strict)?.is_exact());
//!
//! // Into a head of another size: strict loading names the keys and shapes.
//! let mut other = Linear::new(LinearConfig::new(4, 10), &mut rng)?;
//! let err = sd.load_into(&mut other, LoadMode::Strict).unwrap_err();
//! assert!(err.to_string().contains("weight expected [10, 4], found [3, 4]"));
//! // Non-strict: what fits loads, the rest is reported (here: nothing fits).
//! let report = sd.load_into(&mut other, LoadMode::NonStrict)?;
//! assert_eq!(report.not_loaded(), ["weight", "bias"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod detect;
mod dtype;
mod error;
mod fsutil;
pub mod npy;
pub mod pth;
pub mod safetensors_io;
mod state_dict;

pub use detect::{detect, detect_file, read_state_dict, FileKind, CHECKPOINT_MAGIC};
pub use dtype::{to_f32, DType};
pub use error::{Result, WeightsError};
pub use fsutil::write_atomic;
pub use state_dict::{
    model_shapes, natural_cmp, Entry, LoadMode, LoadReport, ShapeMismatch, StateDict,
};
