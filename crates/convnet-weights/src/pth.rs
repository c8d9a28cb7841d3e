//! PyTorch `.pth`/`.pt` files written by `torch.save`, read without Python.
//!
//! The pickle inside is parsed by the `pytorch-reader` crate, which builds
//! tensors and plain containers and never executes pickled code. On top of
//! it this module refuses any file that holds something else than tensors,
//! numbers, strings and containers (a pickled model class, a call to an
//! arbitrary function): such a file is not a state dict, and loading it in
//! Python would run code.

use std::path::Path;

use convnet_tensor::Tensor;
use pytorch_reader::{PickleValue, PytorchReader};

use crate::dtype::{to_f32, DType};
use crate::error::{Result, WeightsError};
use crate::state_dict::StateDict;

/// The keys under which training scripts commonly nest a state dict
/// (`torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)`).
pub const NESTING_KEYS: [&str; 3] = ["state_dict", "model", "model_state_dict"];

/// Python types a state dict file may hold besides plain values: tensors
/// and what describes them.
const ALLOWED_TYPES: [&str; 6] = [
    "torch.Tensor",
    "torch.nn.parameter.Parameter",
    "torch.TypedStorage",
    "torch.UntypedStorage",
    "torch.Size",
    "torch.device",
];

fn dtype_of(d: pytorch_reader::DType) -> DType {
    use pytorch_reader::DType as P;
    match d {
        P::F64 => DType::F64,
        P::F32 => DType::F32,
        P::F16 => DType::F16,
        P::BF16 => DType::BF16,
        P::I64 => DType::I64,
        P::I32 => DType::I32,
        P::I16 => DType::I16,
        P::I8 => DType::I8,
        P::U64 => DType::U64,
        P::U32 => DType::U32,
        P::U16 => DType::U16,
        P::U8 => DType::U8,
        P::Bool => DType::Bool,
    }
}

/// Finds a value of a type outside [`ALLOWED_TYPES`], with its dotted path.
fn find_foreign(v: &PickleValue, path: &mut Vec<String>) -> Option<(String, String)> {
    match v {
        PickleValue::Unsupported(t) if ALLOWED_TYPES.contains(&t.as_str()) => None,
        PickleValue::Unsupported(t) if t.starts_with("torch.") && is_dtype_name(t) => None,
        PickleValue::Unsupported(t) => Some((path.join("."), t.clone())),
        PickleValue::List(items) => items.iter().enumerate().find_map(|(i, x)| {
            path.push(i.to_string());
            let r = find_foreign(x, path);
            path.pop();
            r
        }),
        PickleValue::Dict(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|k| {
                path.push(k.clone());
                let r = find_foreign(&map[k], path);
                path.pop();
                r
            })
        }
        _ => None,
    }
}

/// `torch.float32`, `torch.int64`, ...: element types, harmless.
fn is_dtype_name(t: &str) -> bool {
    let name = &t["torch.".len()..];
    [
        "float", "double", "half", "bfloat16", "int", "uint", "long", "short", "bool",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// A dictionary of tensors, besides the `_metadata` PyTorch attaches to a
/// state dict (module versions).
fn is_state_dict(map: &std::collections::HashMap<String, PickleValue>) -> bool {
    let mut tensors = 0;
    for (k, v) in map {
        if is_tensor(v) {
            tensors += 1;
        } else if k != "_metadata" {
            return false;
        }
    }
    tensors > 0
}

fn is_tensor(v: &PickleValue) -> bool {
    matches!(v, PickleValue::Unsupported(t) if t == "torch.Tensor" || t == "torch.nn.parameter.Parameter")
}

/// Where the state dict sits in the file: `None` for the whole file, or the
/// nesting key.
fn locate_state_dict(root: &PickleValue, path: &Path) -> Result<Option<&'static str>> {
    let PickleValue::Dict(map) = root else {
        return Err(WeightsError::format(
            path,
            "the file holds no dictionary of tensors (expected what \
             `torch.save(model.state_dict(), path)` writes)",
        ));
    };
    if is_state_dict(map) {
        return Ok(None);
    }
    for key in NESTING_KEYS {
        if let Some(PickleValue::Dict(inner)) = map.get(key) {
            if is_state_dict(inner) {
                return Ok(Some(key));
            }
        }
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let shown: Vec<&&String> = keys.iter().take(8).collect();
    let more = if keys.len() > shown.len() {
        format!(" and {} more", keys.len() - shown.len())
    } else {
        String::new()
    };
    // Every value a dictionary, none a tensor: the attributes of pickled
    // modules (`torch.save(model)`), whose classes Python would import and run.
    let pickled_modules = map.values().all(|v| matches!(v, PickleValue::Dict(_)));
    if pickled_modules {
        return Err(WeightsError::Refused {
            path: path.to_path_buf(),
            msg: format!(
                "the file holds pickled modules (keys {shown:?}{more}), as \
                 `torch.save(model)` writes, not a state dict: their classes are not \
                 imported and nothing is executed; save `model.state_dict()` instead"
            ),
        });
    }
    Err(WeightsError::format(
        path,
        format!(
            "no state dict found: the top-level dictionary (keys {shown:?}{more}) does not \
             map names to tensors, and none of {NESTING_KEYS:?} holds such a dictionary"
        ),
    ))
}

fn reader_error(path: &Path, e: pytorch_reader::PytorchError) -> WeightsError {
    use pytorch_reader::{PickleError, PytorchError};
    match &e {
        // The pickle names a callable the reader does not build (a class,
        // a function): code, refused.
        PytorchError::Pickle(PickleError::UnsupportedType(_)) => WeightsError::Refused {
            path: path.to_path_buf(),
            msg: format!(
                "the pickle inside calls something else than PyTorch's tensor \
                 constructors and is not executed ({e})"
            ),
        },
        _ => WeightsError::format(path, format!("not a readable PyTorch file: {e}")),
    }
}

/// Reads a PyTorch file written by `torch.save(model.state_dict(), path)`,
/// or a dictionary nesting it under one of [`NESTING_KEYS`]. Every tensor is
/// converted to `f32`; entries are sorted by key, numbers as numbers.
///
/// A file holding anything but tensors and containers (a whole pickled
/// model, an object of any other class, code) is refused with
/// [`WeightsError::Refused`].
pub fn read(path: &Path) -> Result<StateDict> {
    crate::fsutil::check_regular(path)?;
    let root = PytorchReader::read_pickle_data(path, None).map_err(|e| reader_error(path, e))?;
    if let Some((at, ty)) = find_foreign(&root, &mut Vec::new()) {
        let at = if at.is_empty() {
            "the file itself".to_string()
        } else {
            format!("`{at}`")
        };
        return Err(WeightsError::Refused {
            path: path.to_path_buf(),
            msg: format!(
                "{at} is a pickled Python object of type `{ty}`; only tensors, numbers, \
                 strings and containers are read, and nothing is executed (save \
                 `model.state_dict()` rather than the model)"
            ),
        });
    }
    let key = locate_state_dict(&root, path)?;
    let reader = match key {
        None => PytorchReader::new(path),
        Some(k) => PytorchReader::with_top_level_key(path, k),
    }
    .map_err(|e| reader_error(path, e))?;
    let mut sd = StateDict::new();
    let mut tensors: Vec<_> = reader.tensors().iter().collect();
    tensors.sort_by(|a, b| crate::natural_cmp(a.0, b.0));
    for (name, t) in tensors {
        let dtype = dtype_of(t.dtype());
        let bytes = t
            .read()
            .map_err(|e| WeightsError::format(path, format!("tensor `{name}`: {e}")))?;
        let data = to_f32(&bytes, dtype);
        let tensor = Tensor::from_vec(t.shape(), data)
            .map_err(|e| WeightsError::format(path, format!("tensor `{name}`: {e}")))?;
        sd.insert(name.clone(), tensor, dtype)
            .map_err(|e| WeightsError::format(path, e.to_string()))?;
    }
    Ok(sd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pytorch_reader::{PickleError, PytorchError};

    #[test]
    fn the_reader_errors_are_sorted_by_variant() {
        let path = Path::new("model.pth");
        // A callable the reader does not build: refused as code.
        let e = PytorchError::Pickle(PickleError::UnsupportedType("os.system".into()));
        assert!(matches!(
            reader_error(path, e),
            WeightsError::Refused { .. }
        ));
        // A corrupt byte says "unsupported pickle feature" in its text, but
        // it is a damaged file, not code.
        let e = PytorchError::Pickle(PickleError::InvalidOpCode(0xff));
        let e = reader_error(path, e);
        assert!(matches!(e, WeightsError::Format { .. }), "{e}");
        assert!(e.to_string().contains("model.pth"), "{e}");
    }
}
