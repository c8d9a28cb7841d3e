//! Weights in and out of the zoo: reading any weight file convnet knows
//! (PyTorch `.pth`/`.pt`, safetensors, a convnet checkpoint), building a zoo
//! model with them, `convnet weights inspect|convert` and `convnet infer`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use convnet_layers::Layer;
use convnet_tensor::{Rng, Tensor};
use convnet_train::progress::thousands;
use convnet_train::Checkpoint;
use convnet_weights::{detect_file, DType, FileKind, LoadMode, LoadReport, StateDict};
use convnet_zoo::ModelConfig;

use super::{AppError, Result};

/// Weights read from a file, with what the file says about its model.
#[derive(Debug, Clone)]
pub struct WeightsFile {
    /// What the file was (told by content).
    pub kind: FileKind,
    /// The tensors, converted to `f32`.
    pub state: StateDict,
    /// The zoo model a convnet checkpoint was made for.
    pub model: Option<String>,
    /// The model configuration a convnet checkpoint records.
    pub config: Option<ModelConfig>,
    /// The class names a convnet checkpoint records (empty otherwise).
    pub class_names: Vec<String>,
}

/// The state dict of a convnet checkpoint: its parameters and buffers under
/// their PyTorch keys.
pub fn checkpoint_state_dict(ck: &Checkpoint) -> Result<StateDict> {
    let mut sd = StateDict::new();
    let tensors = ck
        .header
        .params
        .iter()
        .zip(&ck.payload.params)
        .chain(ck.header.buffers.iter().zip(&ck.payload.buffers));
    for (info, values) in tensors {
        let t = Tensor::from_slice(&info.shape, values)
            .map_err(|e| AppError::Usage(format!("checkpoint tensor `{}`: {e}", info.name)))?;
        sd.insert(info.name.clone(), t, DType::F32)?;
    }
    Ok(sd)
}

/// Reads a PyTorch, safetensors or convnet checkpoint file (told apart by
/// content, not by extension).
pub fn read_weights(path: &Path) -> Result<WeightsFile> {
    let kind = detect_file(path)?;
    match kind {
        FileKind::ConvnetCheckpoint => {
            let ck = Checkpoint::load(path)?;
            let config = serde_json::from_str(&ck.header.model_config).ok();
            Ok(WeightsFile {
                kind,
                state: checkpoint_state_dict(&ck)?,
                model: Some(ck.header.model.clone()),
                config,
                class_names: ck.header.class_names.clone(),
            })
        }
        FileKind::Npy => Err(AppError::Usage(format!(
            "{}: this is a numpy .npy array (one tensor), not a file of weights",
            path.display()
        ))),
        FileKind::Safetensors | FileKind::Pytorch => Ok(WeightsFile {
            kind,
            state: convnet_weights::read_state_dict(path)?,
            model: None,
            config: None,
            class_names: Vec::new(),
        }),
    }
}

/// A zoo model with weights loaded, and the report of the loading.
#[derive(Debug)]
pub struct WeightedModel {
    /// The zoo name of the model built (`googlenet_aux` when the weights
    /// hold GoogLeNet's auxiliary heads).
    pub name: String,
    /// The model.
    pub model: Box<dyn Layer>,
    /// Its configuration (classes adapted to the weights' head).
    pub config: ModelConfig,
    /// What loaded and what did not.
    pub report: LoadReport,
    /// The file's content.
    pub file: WeightsFile,
}

/// The last parameter of `model` whose key the state dict also has with
/// another first dimension: the classifier's bias, whose length is the
/// number of classes the weights were trained for.
fn head_classes(model: &dyn Layer, sd: &StateDict, num_classes: usize) -> Option<usize> {
    let mut last_bias = None;
    model.visit_params("", &mut |name, p| {
        if name.ends_with("bias") && p.shape() == [num_classes] {
            last_bias = Some(name.to_string());
        }
    });
    let found = sd.get(&last_bias?)?;
    match found.shape() {
        [k] if *k != num_classes && *k > 0 => Some(*k),
        _ => None,
    }
}

/// Builds zoo model `model` (default: the one a checkpoint names) and loads
/// `weights` into it.
///
/// - The number of classes follows the weights' classifier (a state dict
///   with a 10-class head builds a 10-class model) unless `num_classes`
///   fixes it.
/// - GoogLeNet weights that carry the auxiliary heads (`aux1.*`, as
///   torchvision's pretrained file does) build `googlenet_aux`.
/// - `mode` is [`LoadMode::Strict`] (every key, no other, same shapes) or
///   [`LoadMode::NonStrict`] (load what matches, report the rest).
pub fn build_with_weights(
    model: Option<&str>,
    weights: &Path,
    num_classes: Option<usize>,
    mode: LoadMode,
    seed: u64,
) -> Result<WeightedModel> {
    let file = read_weights(weights)?;
    let mut name = match (model, &file.model) {
        (Some(m), _) => m.to_string(),
        (None, Some(m)) => m.clone(),
        (None, None) => {
            return Err(AppError::Usage(format!(
                "{}: a {} file does not say which model it is for: give --model",
                weights.display(),
                file.kind.name()
            )))
        }
    };
    if name == "googlenet" && file.state.get("aux1.conv.conv.weight").is_some() {
        name = "googlenet_aux".to_string();
    }
    let entry = convnet_zoo::entry(&name)?;
    let mut config = match (&file.config, &file.model) {
        (Some(c), Some(m)) if *m == name => c.clone(),
        _ => (entry.default_config)(),
    };
    let mut rng = Rng::seed_from(seed);
    let mut net = entry.build(&config, &mut rng)?;
    let classes = match num_classes {
        Some(k) => (k != config.num_classes).then_some(k),
        None => head_classes(&net, &file.state, config.num_classes),
    };
    if let Some(k) = classes {
        config.num_classes = k;
        net = entry.build(&config, &mut Rng::seed_from(seed))?;
    }
    let report = file
        .state
        .load_into(&mut net, mode)
        .map_err(|e| AppError::Usage(format!("{}: {e}", weights.display())))?;
    Ok(WeightedModel {
        name,
        model: net,
        config,
        report,
        file,
    })
}

/// `convnet weights inspect`: every key with its element type and shape,
/// the totals, and with `model` the strict report against that zoo model.
pub fn inspect(path: &Path, model: Option<&str>) -> Result<String> {
    let file = read_weights(path)?;
    let mut out = String::new();
    let width = file.state.keys().map(str::len).max().unwrap_or(3).max(3);
    let _ = writeln!(out, "{}: {} file", path.display(), file.kind.name());
    if let Some(m) = &file.model {
        let _ = writeln!(out, "model: {m}");
    }
    let _ = writeln!(
        out,
        "{:width$}  {:5}  {:>12}  shape",
        "key", "dtype", "elements"
    );
    let mut bytes = 0usize;
    let mut by_dtype: Vec<(DType, usize)> = Vec::new();
    for e in file.state.iter() {
        let n = e.tensor.len();
        bytes += n * e.dtype.size();
        match by_dtype.iter_mut().find(|(d, _)| *d == e.dtype) {
            Some((_, c)) => *c += 1,
            None => by_dtype.push((e.dtype, 1)),
        }
        let _ = writeln!(
            out,
            "{:width$}  {:5}  {:>12}  {:?}",
            e.name,
            e.dtype.name(),
            thousands(n as f64),
            e.tensor.shape()
        );
    }
    let types: Vec<String> = by_dtype.iter().map(|(d, c)| format!("{c} {d}")).collect();
    let _ = writeln!(
        out,
        "{} tensors ({}), {} elements, {} bytes of data",
        file.state.len(),
        types.join(", "),
        thousands(file.state.num_elements() as f64),
        thousands(bytes as f64)
    );
    if let Some(name) = model {
        let entry = convnet_zoo::entry(name)?;
        let mut config = (entry.default_config)();
        let net = entry.build(&config, &mut Rng::seed_from(0))?;
        if let Some(k) = head_classes(&net, &file.state, config.num_classes) {
            config.num_classes = k;
        }
        let net = entry.build(&config, &mut Rng::seed_from(0))?;
        let report = file.state.check(&net);
        let _ = writeln!(
            out,
            "against {name} ({} classes): {report}",
            config.num_classes
        );
    }
    Ok(out)
}

/// `convnet weights convert IN OUT`: any weight file convnet reads to
/// safetensors (`OUT` must end in `.safetensors`, and be a new path or a
/// regular file other than `IN`). Returns the number of tensors written.
pub fn convert(input: &Path, output: &Path) -> Result<usize> {
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "safetensors" {
        return Err(AppError::Usage(format!(
            "{}: convnet writes weights as safetensors: give an output ending in .safetensors \
             (PyTorch reads it with `safetensors.torch.load_file`)",
            output.display()
        )));
    }
    convnet_train::fsutil::check_output(output, &[input])?;
    let file = read_weights(input)?;
    let mut meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(m) = &file.model {
        meta.insert("convnet_model".to_string(), m.clone());
    }
    if let Some(c) = &file.config {
        if let Ok(json) = serde_json::to_string(c) {
            meta.insert("convnet_model_config".to_string(), json);
        }
    }
    if !file.class_names.is_empty() {
        meta.insert("class_names".to_string(), file.class_names.join("\n"));
    }
    convnet_weights::safetensors_io::write(output, &file.state, Some(meta))?;
    Ok(file.state.len())
}

/// `convnet infer`: model `model` with `weights`, in evaluation mode, on the
/// NCHW float32 batch of `input` (`.npy`); writes the logits to `output`
/// (`.npy`, float32; a new path or a regular file that is neither `input`
/// nor `weights`). Returns the logits' shape.
pub fn infer(
    model: Option<&str>,
    weights: &Path,
    input: &Path,
    output: &Path,
) -> Result<Vec<usize>> {
    convnet_train::fsutil::check_output(output, &[input, weights])?;
    let x = convnet_weights::npy::read(input)?;
    if x.ndim() != 4 {
        return Err(AppError::Usage(format!(
            "{}: the input must be an NCHW batch [N, C, H, W], got shape {:?}",
            input.display(),
            x.shape()
        )));
    }
    let wm = build_with_weights(model, weights, None, LoadMode::Strict, 0)?;
    // A shape the model refuses is reported by `infer` below, with context.
    convnet_layers::memory::refuse_if_too_big(
        &*wm.model,
        x.shape(),
        convnet_layers::memory::Usage::Inference,
        &format!(
            "{} on the input {:?} of {}",
            wm.name,
            x.shape(),
            input.display()
        ),
    )?;
    let logits = wm.model.infer(&x).map_err(|e| {
        AppError::Usage(format!(
            "{} on input {:?} from {}: {e}",
            wm.name,
            x.shape(),
            input.display()
        ))
    })?;
    convnet_weights::npy::write(output, &logits)?;
    Ok(logits.shape().to_vec())
}
