//! Checkpoints: a model's weights, buffers and random generators, and
//! optionally everything needed to resume its training bit for bit.
//!
//! # File format (version 2)
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `CNVNCKPT` |
//! | 4 | format version, u32 little-endian |
//! | 8 + 4 | header length (u64 LE) and CRC-32 of the header bytes |
//! | 8 + 4 | payload length (u64 LE) and CRC-32 of the payload bytes |
//! | header length | [`CheckpointHeader`], bincode 2 (standard config, serde) |
//! | payload length | [`CheckpointPayload`], bincode 2 |
//!
//! The header (model name and configuration, parameter names and shapes) can
//! be read without decoding the payload. Lengths are checked against the file
//! size first (a truncated file says so), then each checksum (a flipped byte
//! says which part is corrupt). Files are written with
//! [`crate::fsutil::write_atomic`]: temporary file, `fsync`, rename.
//!
//! # Versions
//!
//! The version in the preamble says how the header and payload are
//! encoded. This code writes version 2 and reads versions 1 and 2:
//!
//! - 1: the first format;
//! - 2: the header ends with the input [`Preprocessing`] (optional) and
//!   the training state with the names of the frozen parameters
//!   ([`TrainState::frozen`]).
//!
//! A version-1 file is decoded with the version-1 layout (private copies of
//! the structs as they were) and converted: no preprocessing, nothing
//! frozen. A change to any encoded struct must bump [`FORMAT_VERSION`] and
//! keep the older layouts readable the same way.
//!
//! # Hostile files
//!
//! Sizes in a file are never trusted. Only regular files are read (a FIFO or
//! `/dev/zero` is refused before any read), and never more bytes than the
//! preamble announces. Each part is decoded with a bincode byte limit tied
//! to its real length ([`decode_limit`]): a string or sequence whose declared
//! length (say 2^40) cannot fit in the bytes that hold it is an error, not an
//! allocation that aborts the process.

use std::collections::BTreeMap;
use std::path::Path;

use convnet_layers::Layer;
use convnet_tensor::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::fsutil::write_atomic;
use crate::history::History;
use crate::optim::OptimizerState;

mod format;
mod v1;

pub use format::decode_limit;
use format::{
    bincode_config, check_crc, decode_error, decode_header, decode_limited, read_announced, split,
    HEADER_CORRUPT,
};

/// The first 8 bytes of every checkpoint file.
pub const MAGIC: &[u8; 8] = b"CNVNCKPT";
/// The format version this code writes (it reads this one and every older
/// one, see the module docs).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this code reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
const PREAMBLE: usize = 8 + 4 + 12 + 12;

/// A named tensor's name and shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// PyTorch-style key (`conv1.weight`).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// How images are prepared for the model: what `eval` and `predict` need to
/// feed it the way it was trained.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Input channels (1 greyscale, 3 RGB).
    pub in_channels: usize,
    /// Input height and width (square images).
    pub image_size: usize,
    /// Per-channel mean subtracted after scaling pixels to `[0, 1]`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after the mean.
    pub std: Vec<f32>,
    /// The evaluation pipeline (resize, crop, normalisation...) as JSON, in
    /// the datasets crate's format; empty when there is none beyond `mean`
    /// and `std` at `image_size`.
    pub eval_pipeline: String,
}

/// What a checkpoint holds, readable without decoding the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// The zoo name of the model (`lenet5`).
    pub model: String,
    /// The model's configuration, as JSON (the zoo's `ModelConfig`).
    pub model_config: String,
    /// The dataset the model was trained on (`mnist`), empty if unknown.
    pub dataset: String,
    /// The class names of that dataset, in label order.
    pub class_names: Vec<String>,
    /// Parameters, in the model's visiting order.
    pub params: Vec<TensorInfo>,
    /// Buffers (BatchNorm statistics...), in visiting order.
    pub buffers: Vec<TensorInfo>,
    /// Epochs completed when it was saved.
    pub epoch: usize,
    /// The program that wrote it (`convnet 0.1.0`).
    pub created_by: String,
    /// How inputs are prepared (absent in version-1 files).
    pub preprocessing: Option<Preprocessing>,
}

/// Everything a training run needs besides the model to resume exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken (the schedule's position).
    pub global_step: u64,
    /// Optimizer state (momenta, moments, step count).
    pub optimizer: OptimizerState,
    /// The run's configuration (the trainer's `TrainConfig`, as JSON).
    pub config: String,
    /// Free-form settings of the program that ran the training (for
    /// `convnet train --resume`: data folder, augmentation...), as JSON.
    pub run_settings: String,
    /// Rayon threads the run used (bit-identical resume needs the same count).
    pub threads: usize,
    /// The history so far.
    pub history: History,
    /// Names of the frozen parameters (`Trainer::freeze`), in visiting
    /// order; empty when everything trains (and in version-1 files).
    pub frozen: Vec<String>,
}

/// The weights and the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPayload {
    /// Parameter values, in header order.
    pub params: Vec<Vec<f32>>,
    /// Buffer values, in header order.
    pub buffers: Vec<Vec<f32>>,
    /// The model's random generators (Dropout...), by name.
    pub rngs: Vec<(String, Rng)>,
    /// Training state, absent in a weights-only checkpoint.
    pub train: Option<TrainState>,
}

/// A checkpoint in memory.
///
/// ```
/// use std::path::Path;
/// use convnet_layers::{Layer, Linear, LinearConfig};
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_train::{Checkpoint, ModelInfo};
///
/// let mut a = Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(1))?;
/// let info = ModelInfo { model: "linear".into(), ..Default::default() };
/// let bytes = Checkpoint::capture(&mut a, &info, 0, None).to_bytes()?;
///
/// let ck = Checkpoint::from_bytes(&bytes, Path::new("a.ckpt"))?;
/// let mut b = Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(2))?;
/// ck.apply_to(&mut b)?;
/// let x = Tensor::ones(&[1, 3]);
/// assert_eq!(a.infer(&x)?, b.infer(&x)?);
///
/// // Another architecture, a truncated file, a flipped byte: clear errors.
/// let mut wide = Linear::new(LinearConfig::new(4, 2), &mut Rng::seed_from(3))?;
/// assert!(ck.apply_to(&mut wide).unwrap_err().to_string().contains("[2, 3]"));
/// assert!(Checkpoint::from_bytes(&bytes[..40], Path::new("a.ckpt")).is_err());
/// let mut flipped = bytes.clone();
/// flipped[bytes.len() - 3] ^= 1;
/// assert!(Checkpoint::from_bytes(&flipped, Path::new("a.ckpt")).unwrap_err().to_string().contains("corrupt"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Metadata.
    pub header: CheckpointHeader,
    /// Weights and state.
    pub payload: CheckpointPayload,
}

/// Identifies a model in a checkpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelInfo {
    /// Zoo name.
    pub model: String,
    /// Configuration as JSON.
    pub model_config: String,
    /// Dataset name.
    pub dataset: String,
    /// Class names.
    pub class_names: Vec<String>,
    /// How inputs are prepared, if known.
    pub preprocessing: Option<Preprocessing>,
}

impl Checkpoint {
    /// Captures `model`'s parameters, buffers and generators (the generators
    /// are visited mutably but not changed).
    pub fn capture(
        model: &mut dyn Layer,
        info: &ModelInfo,
        epoch: usize,
        train: Option<TrainState>,
    ) -> Self {
        let mut ck = Self::capture_weights(model, info, epoch);
        model.visit_rngs_mut("", &mut |name, r| {
            ck.payload.rngs.push((name.to_string(), r.clone()))
        });
        ck.payload.train = train;
        ck
    }

    /// Captures `model`'s parameters and buffers only: what inference and
    /// fine-tuning need (no generators, no training state), from a shared
    /// reference.
    ///
    /// ```
    /// use convnet_layers::{Layer, Linear, LinearConfig};
    /// use convnet_tensor::Rng;
    /// use convnet_train::{Checkpoint, ModelInfo};
    ///
    /// let model = Linear::new(LinearConfig::new(4, 2), &mut Rng::seed_from(0))?;
    /// let ck = Checkpoint::capture_weights(&model, &ModelInfo::default(), 0);
    /// assert_eq!(ck.num_params(), model.num_params());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capture_weights(model: &dyn Layer, info: &ModelInfo, epoch: usize) -> Self {
        let mut params = Vec::new();
        let mut param_values = Vec::new();
        model.visit_params("", &mut |name, p| {
            params.push(TensorInfo {
                name: name.to_string(),
                shape: p.shape().to_vec(),
            });
            param_values.push(p.value.as_slice().to_vec());
        });
        let mut buffers = Vec::new();
        let mut buffer_values = Vec::new();
        model.visit_buffers("", &mut |name, t| {
            buffers.push(TensorInfo {
                name: name.to_string(),
                shape: t.shape().to_vec(),
            });
            buffer_values.push(t.as_slice().to_vec());
        });
        Checkpoint {
            header: CheckpointHeader {
                model: info.model.clone(),
                model_config: info.model_config.clone(),
                dataset: info.dataset.clone(),
                class_names: info.class_names.clone(),
                params,
                buffers,
                epoch,
                created_by: format!("convnet {}", env!("CARGO_PKG_VERSION")),
                preprocessing: info.preprocessing.clone(),
            },
            payload: CheckpointPayload {
                params: param_values,
                buffers: buffer_values,
                rngs: Vec::new(),
                train: None,
            },
        }
    }

    /// Number of trainable scalars stored.
    pub fn num_params(&self) -> usize {
        self.payload.params.iter().map(Vec::len).sum()
    }

    /// Copies the weights, buffers and generators into `model`, after checking
    /// that its parameter and buffer names and shapes are exactly the
    /// checkpoint's. On a mismatch nothing is changed and the error lists the
    /// differences.
    pub fn apply_to(&self, model: &mut dyn Layer) -> Result<()> {
        let mut params = Vec::new();
        model.visit_params("", &mut |name, p| {
            params.push(TensorInfo {
                name: name.to_string(),
                shape: p.shape().to_vec(),
            })
        });
        let mut buffers = Vec::new();
        model.visit_buffers("", &mut |name, t| {
            buffers.push(TensorInfo {
                name: name.to_string(),
                shape: t.shape().to_vec(),
            })
        });
        let mut problems = diff("parameter", &self.header.params, &params);
        problems.extend(diff("buffer", &self.header.buffers, &buffers));
        if !problems.is_empty() {
            let shown = problems.len().min(8);
            let more = if problems.len() > shown {
                format!("\n  ... and {} more", problems.len() - shown)
            } else {
                String::new()
            };
            return Err(TrainError::Mismatch(format!(
                "the checkpoint holds model `{}` ({} parameter tensors, {} scalars); the model \
                 it is loaded into has {} parameter tensors:\n  {}{more}",
                self.header.model,
                self.header.params.len(),
                self.num_params(),
                params.len(),
                problems[..shown].join("\n  ")
            )));
        }
        let mut i = 0;
        model.visit_params_mut("", &mut |_, p| {
            p.value
                .as_slice_mut()
                .copy_from_slice(&self.payload.params[i]);
            i += 1;
        });
        let mut i = 0;
        model.visit_buffers_mut("", &mut |_, t| {
            t.as_slice_mut().copy_from_slice(&self.payload.buffers[i]);
            i += 1;
        });
        let saved: BTreeMap<&str, &Rng> = self
            .payload
            .rngs
            .iter()
            .map(|(n, r)| (n.as_str(), r))
            .collect();
        model.visit_rngs_mut("", &mut |name, r| {
            if let Some(s) = saved.get(name) {
                *r = (*s).clone();
            }
        });
        Ok(())
    }

    /// The file's bytes (see the module docs for the layout).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let enc = |what: &str, e: bincode::error::EncodeError| {
            TrainError::invalid("Checkpoint::to_bytes", format!("encoding the {what}: {e}"))
        };
        let header = bincode::serde::encode_to_vec(&self.header, bincode_config())
            .map_err(|e| enc("header", e))?;
        let payload = bincode::serde::encode_to_vec(&self.payload, bincode_config())
            .map_err(|e| enc("payload", e))?;
        let mut out = Vec::with_capacity(PREAMBLE + header.len() + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses a checkpoint; `path` only names the file in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let (version, header, payload_bytes) = split(bytes, path)?;
        let header = decode_header(header, version, path)?;
        let err = |e| TrainError::checkpoint(path, decode_error("payload", payload_bytes.len(), e));
        let (payload, used) = if version == 1 {
            let (p, used): (v1::Payload, usize) = decode_limited(payload_bytes).map_err(err)?;
            (p.into(), used)
        } else {
            decode_limited::<CheckpointPayload>(payload_bytes).map_err(err)?
        };
        if used != payload_bytes.len() {
            return Err(TrainError::checkpoint(
                path,
                "the payload has bytes after its end".to_string(),
            ));
        }
        let ck = Checkpoint { header, payload };
        ck.check_consistency(path)?;
        Ok(ck)
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync,
    /// rename): a crash mid-save leaves the previous file intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads and verifies a checkpoint file. Anything but a regular file is
    /// refused, and no more bytes are read than the preamble announces, after
    /// checking that the file is exactly that long.
    pub fn load(path: &Path) -> Result<Self> {
        let (_, bytes) = read_announced(path, true)?;
        Self::from_bytes(&bytes, path)
    }

    /// Reads and verifies only the header of a checkpoint file: the
    /// preamble and the header are read, the payload is not.
    pub fn read_header(path: &Path) -> Result<CheckpointHeader> {
        let (preamble, bytes) = read_announced(path, false)?;
        let header = &bytes[PREAMBLE..];
        check_crc(header, preamble.header_crc, HEADER_CORRUPT, path)?;
        decode_header(header, preamble.version, path)
    }

    fn check_consistency(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(TrainError::checkpoint(path, msg));
        if self.header.params.len() != self.payload.params.len()
            || self.header.buffers.len() != self.payload.buffers.len()
        {
            return bad("the header and the payload list different tensors".into());
        }
        let infos = self.header.params.iter().chain(&self.header.buffers);
        let values = self.payload.params.iter().chain(&self.payload.buffers);
        for (info, v) in infos.zip(values) {
            let n: usize = info.shape.iter().product();
            if n != v.len() {
                return bad(format!(
                    "`{}` has shape {:?} ({n} values) but {} values are stored",
                    info.name,
                    info.shape,
                    v.len()
                ));
            }
        }
        Ok(())
    }
}

/// Lists the differences between the saved and the model's tensors.
fn diff(kind: &str, saved: &[TensorInfo], model: &[TensorInfo]) -> Vec<String> {
    let saved_map: BTreeMap<&str, &Vec<usize>> =
        saved.iter().map(|t| (t.name.as_str(), &t.shape)).collect();
    let model_map: BTreeMap<&str, &Vec<usize>> =
        model.iter().map(|t| (t.name.as_str(), &t.shape)).collect();
    let mut out = Vec::new();
    for t in model {
        match saved_map.get(t.name.as_str()) {
            None => out.push(format!(
                "{kind} `{}` {:?} is not in the checkpoint",
                t.name, t.shape
            )),
            Some(s) if **s != t.shape => out.push(format!(
                "{kind} `{}` has shape {:?} in the checkpoint and {:?} in the model",
                t.name, s, t.shape
            )),
            _ => {}
        }
    }
    for t in saved {
        if !model_map.contains_key(t.name.as_str()) {
            out.push(format!(
                "{kind} `{}` {:?} of the checkpoint is not in the model",
                t.name, t.shape
            ));
        }
    }
    if out.is_empty()
        && saved
            .iter()
            .map(|t| &t.name)
            .ne(model.iter().map(|t| &t.name))
    {
        out.push(format!("the {kind}s are the same but in another order"));
    }
    out
}

#[cfg(test)]
mod tests;
