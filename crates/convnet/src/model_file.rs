//! Saving and loading a model in one call.
//!
//! [`save`] writes any model's weights (parameters and buffers) to a
//! convnet checkpoint file, atomically: a crash mid-save leaves the previous
//! file whole. [`save_zoo`] also records the zoo name and configuration, so
//! that [`load`] can rebuild the model by itself. [`load_into`] fills a model
//! you built (a custom one, or a zoo model) from a convnet checkpoint, a
//! `.safetensors` file or a PyTorch `.pth`/`.pt` file, told apart by their
//! content.
//!
//! ```
//! use convnet::layers::{Flatten, Layer, Linear, LinearConfig, Sequential};
//! use convnet::tensor::{Rng, Tensor};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.ckpt");
//! let build = |seed| -> convnet::app::Result<Sequential> {
//!     Ok(Sequential::default()
//!         .with(Flatten::new())
//!         .with(Linear::new(LinearConfig::new(4, 3), &mut Rng::seed_from(seed))?))
//! };
//! let model = build(1)?;
//! convnet::save(&model, &path)?;
//!
//! let mut other = build(2)?; // another initialisation...
//! convnet::load_into(&mut other, &path)?; // ...now the saved weights
//! let x = Tensor::full(&[1, 1, 2, 2], 0.5);
//! assert_eq!(other.infer(&x)?, model.infer(&x)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use convnet_layers::Layer;
use convnet_train::{Checkpoint, ModelInfo};
use convnet_weights::{FileKind, LoadMode};
use convnet_zoo::ModelConfig;

use crate::app::{AppError, Result};

/// Writes the weights of `model` (parameters and buffers, under their
/// PyTorch-style names) to the convnet checkpoint `path`, atomically.
/// Load them back with [`load_into`]; for a zoo model, [`save_zoo`] lets
/// [`load`] rebuild it too.
pub fn save(model: &dyn Layer, path: impl AsRef<Path>) -> Result<()> {
    let ck = Checkpoint::capture_weights(model, &ModelInfo::default(), 0);
    Ok(ck.save(path.as_ref())?)
}

/// Writes zoo model `name` built with `config` (its weights, name and
/// configuration) to the convnet checkpoint `path`, atomically: [`load`]
/// rebuilds it, and `convnet eval`, `predict` and `summary --weights`
/// read it.
///
/// ```
/// use convnet::zoo::ModelConfig;
/// use convnet::tensor::Rng;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("lenet.ckpt");
/// let config = ModelConfig::mnist();
/// let model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(7))?;
/// convnet::save_zoo(model.as_ref(), "lenet5", &config, &path)?;
/// let back = convnet::load(&path)?;
/// assert_eq!(back.num_params(), model.num_params());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_zoo(
    model: &dyn Layer,
    name: &str,
    config: &ModelConfig,
    path: impl AsRef<Path>,
) -> Result<()> {
    // The name and configuration must describe this very model.
    let fresh = convnet_zoo::build(name, config, &mut convnet_tensor::Rng::seed_from(0))?;
    let (want, got) = (fresh.param_shapes(), model.param_shapes());
    if want != got {
        return Err(AppError::Usage(format!(
            "{}: not saved: the model is not zoo model `{name}` with this configuration \
             ({} parameter tensors, {} expected)",
            path.as_ref().display(),
            got.len(),
            want.len()
        )));
    }
    let info = ModelInfo {
        model: name.to_string(),
        model_config: serde_json::to_string(config).map_err(|e| {
            AppError::Usage(format!("the model configuration does not serialise: {e}"))
        })?,
        ..ModelInfo::default()
    };
    let ck = Checkpoint::capture_weights(model, &info, 0);
    Ok(ck.save(path.as_ref())?)
}

/// Rebuilds the zoo model a convnet checkpoint names (written by
/// [`save_zoo`] or `convnet train`) with its weights. A checkpoint of a
/// custom model ([`save`]) names none: build the model and use
/// [`load_into`].
pub fn load(path: impl AsRef<Path>) -> Result<Box<dyn Layer>> {
    let path = path.as_ref();
    let header = Checkpoint::read_header(path)?;
    if header.model.is_empty() {
        return Err(AppError::Usage(format!(
            "{}: this checkpoint holds the weights of a custom model (no zoo name): build the \
             model and call convnet::load_into(&mut model, path)",
            path.display()
        )));
    }
    Ok(crate::app::eval::load_model(path)?.model)
}

/// Loads the weights of `path` into `model`: a convnet checkpoint (names
/// and shapes must be exactly the model's), a `.safetensors` file or a
/// PyTorch `.pth`/`.pt` state dict (strict: every key of the model, no
/// other). On any mismatch the model is unchanged and the error lists the
/// differences.
pub fn load_into(model: &mut dyn Layer, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if convnet_weights::detect_file(path)? == FileKind::ConvnetCheckpoint {
        let ck = Checkpoint::load(path)?;
        return ck
            .apply_to(model)
            .map_err(|e| AppError::Usage(format!("{}: {e}", path.display())));
    }
    let file = crate::app::weights::read_weights(path)?;
    file.state
        .load_into(model, LoadMode::Strict)
        .map_err(|e| AppError::Usage(format!("{}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_layers::{Linear, LinearConfig};
    use convnet_tensor::Rng;

    fn linear(inputs: usize, seed: u64) -> Linear {
        Linear::new(LinearConfig::new(inputs, 2), &mut Rng::seed_from(seed)).unwrap()
    }

    fn values(model: &dyn Layer) -> Vec<f32> {
        let mut v = Vec::new();
        model.visit_params("", &mut |_, p| v.extend_from_slice(p.value.as_slice()));
        v
    }

    #[test]
    fn a_custom_model_round_trips_and_mismatches_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ckpt");
        let model = linear(3, 1);
        save(&model, &path).unwrap();
        let mut other = linear(3, 2);
        assert_ne!(values(&other), values(&model));
        load_into(&mut other, &path).unwrap();
        assert_eq!(values(&other), values(&model));
        // Another shape: refused, naming the file and the tensor.
        let mut wrong = linear(4, 2);
        let before = values(&wrong);
        let e = load_into(&mut wrong, &path).unwrap_err().to_string();
        assert!(e.contains("m.ckpt") && e.contains("`weight`"), "{e}");
        assert_eq!(values(&wrong), before, "unchanged");
        // No zoo name: `load` says what to do.
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("custom model") && e.contains("load_into"), "{e}");
        // A missing file is named.
        let e = load_into(&mut other, dir.path().join("none.ckpt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.ckpt"), "{e}");
    }

    #[test]
    fn a_zoo_model_is_rebuilt_and_save_zoo_checks_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lenet.ckpt");
        let config = ModelConfig::mnist();
        let model = convnet_zoo::build("lenet5", &config, &mut Rng::seed_from(3)).unwrap();
        save_zoo(model.as_ref(), "lenet5", &config, &path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(values(back.as_ref()), values(model.as_ref()));
        let e = save_zoo(&linear(3, 1), "lenet5", &config, dir.path().join("x.ckpt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not zoo model `lenet5`"), "{e}");
        assert!(!dir.path().join("x.ckpt").exists());
    }
}
