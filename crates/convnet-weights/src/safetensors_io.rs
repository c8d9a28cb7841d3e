//! safetensors files (through the `safetensors` crate), read and written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use convnet_tensor::Tensor;
use safetensors::{Dtype, SafeTensors, View};

use crate::dtype::{to_f32, DType};
use crate::error::{Result, WeightsError};
use crate::fsutil::write_atomic;
use crate::state_dict::StateDict;

fn dtype_of(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U16 => DType::U16,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// Parses safetensors bytes into a state dict (every tensor converted to
/// `f32`; entries sorted by key, numbers as numbers). `path` names the
/// source in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<StateDict> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| WeightsError::format(path, format!("not a valid safetensors file: {e}")))?;
    let mut sd = StateDict::new();
    for (name, view) in st.iter() {
        let dtype = dtype_of(view.dtype()).ok_or_else(|| {
            WeightsError::format(
                path,
                format!(
                    "tensor `{name}` has element type {:?}, which convnet does not read \
                     (it reads F64, F32, F16, BF16 and integer types)",
                    view.dtype()
                ),
            )
        })?;
        let data = to_f32(view.data(), dtype);
        let tensor = Tensor::from_vec(view.shape(), data)
            .map_err(|e| WeightsError::format(path, format!("tensor `{name}`: {e}")))?;
        sd.insert(name, tensor, dtype)
            .map_err(|e| WeightsError::format(path, e.to_string()))?;
    }
    sd.sort_natural();
    Ok(sd)
}

/// Reads a safetensors file (a regular file only).
pub fn read(path: &Path) -> Result<StateDict> {
    let bytes = crate::fsutil::read_input(path)?;
    from_bytes(&bytes, path)
}

/// One tensor as safetensors sees it: `num_batches_tracked` counters are
/// written as `I64`, as PyTorch keeps them; everything else as `F32`.
struct F32View<'a> {
    tensor: &'a Tensor,
    as_i64: bool,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        if self.as_i64 {
            Dtype::I64
        } else {
            Dtype::F32
        }
    }
    fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if self.as_i64 {
            Cow::Owned(
                self.tensor
                    .as_slice()
                    .iter()
                    .flat_map(|&v| (v as i64).to_le_bytes())
                    .collect(),
            )
        } else {
            Cow::Owned(
                self.tensor
                    .as_slice()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )
        }
    }
    fn data_len(&self) -> usize {
        self.tensor.len() * if self.as_i64 { 8 } else { 4 }
    }
}

/// Encodes a state dict as safetensors bytes, with optional string metadata
/// (the `__metadata__` of the format).
pub fn to_bytes(sd: &StateDict, metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    let views = sd.iter().map(|e| {
        (
            e.name.clone(),
            F32View {
                tensor: &e.tensor,
                as_i64: e.name.ends_with("num_batches_tracked"),
            },
        )
    });
    safetensors::serialize(views, metadata).map_err(|e| WeightsError::Tensor {
        key: "<safetensors>".into(),
        msg: e.to_string(),
    })
}

/// Writes a state dict as a safetensors file, atomically (a temporary file
/// renamed over `path`: a crash leaves the old file or the new one).
pub fn write(path: &Path, sd: &StateDict, metadata: Option<HashMap<String, String>>) -> Result<()> {
    let bytes = to_bytes(sd, metadata)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateDict {
        let mut sd = StateDict::new();
        sd.insert("layer.10.w", Tensor::arange(&[2, 3]), DType::F32)
            .unwrap();
        sd.insert("layer.9.w", Tensor::full(&[1], -1.5), DType::F32)
            .unwrap();
        sd.insert("bn.num_batches_tracked", Tensor::scalar(7.0), DType::F32)
            .unwrap();
        sd
    }

    #[test]
    fn round_trip_sorts_naturally_and_keeps_counters_integer() {
        let bytes = to_bytes(&sample(), None).unwrap();
        let back = from_bytes(&bytes, Path::new("x")).unwrap();
        let keys: Vec<_> = back.keys().collect();
        assert_eq!(keys, ["bn.num_batches_tracked", "layer.9.w", "layer.10.w"]);
        assert_eq!(
            back.entry("bn.num_batches_tracked").unwrap().dtype,
            DType::I64
        );
        assert_eq!(
            back.get("bn.num_batches_tracked").unwrap().as_slice(),
            [7.0]
        );
        assert_eq!(back.get("layer.10.w").unwrap(), &Tensor::arange(&[2, 3]));
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors_naming_the_file() {
        let bytes = to_bytes(&sample(), None).unwrap();
        for cut in [0, 4, 8, 20, bytes.len() - 1] {
            let e = from_bytes(&bytes[..cut], Path::new("w.safetensors")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("w.safetensors: not a valid safetensors file"),
                "{msg}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(from_bytes(&long, Path::new("w")).is_err());
    }

    #[test]
    fn huge_header_length_fails_without_allocating() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(from_bytes(&bytes, Path::new("w")).is_err());
    }
}
