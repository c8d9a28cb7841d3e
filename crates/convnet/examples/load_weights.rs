//! Saving and loading weights: a zoo model through a convnet checkpoint
//! (rebuilt by name), and through a safetensors file (into a model you
//! built), each checked to give the same outputs.
//!
//! ```text
//! cargo run --release -p convnet --example load_weights [-- CHECKPOINT]
//! ```
//!
//! With CHECKPOINT (written by `convnet train` or [`convnet::save_zoo`]),
//! the model it names is rebuilt, summarised and run on a blank image.

mod common;

use convnet::layers::{summary, Layer};
use convnet::tensor::{Rng, Tensor};
use convnet::weights::{safetensors_io, StateDict};
use convnet::zoo::ModelConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = std::env::args_os().nth(1) {
        let model = convnet::load(&path)?;
        println!("{}", summary(model.as_ref(), &[1, 1, 28, 28])?);
        return Ok(());
    }
    let dir = common::out_dir()?;
    let config = ModelConfig::mnist();
    let model = convnet::zoo::build("resnet20", &config, &mut Rng::seed_from(1))?;
    let x = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut Rng::seed_from(2));
    let expected = model.infer(&x)?;

    // 1. A convnet checkpoint: the model is rebuilt from the name it records.
    let checkpoint = dir.join("resnet20.ckpt");
    convnet::save_zoo(model.as_ref(), "resnet20", &config, &checkpoint)?;
    let rebuilt = convnet::load(&checkpoint)?;
    assert_eq!(rebuilt.infer(&x)?, expected);
    println!("{}: resnet20 rebuilt, same outputs", checkpoint.display());

    // 2. A safetensors file (PyTorch's key names), loaded into a model built
    //    here with other initial weights.
    let safetensors = dir.join("resnet20.safetensors");
    safetensors_io::write(&safetensors, &StateDict::from_model(model.as_ref()), None)?;
    let mut other = convnet::zoo::build("resnet20", &config, &mut Rng::seed_from(3))?;
    assert_ne!(other.infer(&x)?, expected);
    convnet::load_into(other.as_mut(), &safetensors)?;
    assert_eq!(other.infer(&x)?, expected);
    println!(
        "{}: {} parameters loaded into a fresh resnet20, same outputs",
        safetensors.display(),
        other.num_params()
    );

    // 3. Weights that do not fit are refused with the differences listed.
    let mut lenet = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(4))?;
    let refused = convnet::load_into(lenet.as_mut(), &checkpoint).unwrap_err();
    println!("loading resnet20's weights into lenet5 is refused:\n{refused}");
    Ok(())
}
