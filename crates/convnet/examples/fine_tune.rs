//! Fine-tuning a zoo model's head: LeNet-5 trained on digits (MNIST) gets a
//! new head trained on clothes (Fashion-MNIST), its backbone frozen.
//!
//! ```text
//! cargo run --release -p convnet --example fine_tune [-- WEIGHTS]
//! ```
//!
//! WEIGHTS is a LeNet-5 checkpoint or safetensors file (`convnet train`
//! writes one); without it, LeNet-5 is first trained for one epoch on 2,000
//! MNIST images. The head is then trained for 2 epochs on 2,000
//! Fashion-MNIST images (seconds in all).

mod common;

use convnet::app::train::load_initial_weights;
use convnet::datasets::{DatasetKind, Split};
use convnet::layers::Layer;
use convnet::tensor::Rng;
use convnet::train::{evaluate, OptimizerConfig, TrainConfig, Trainer};
use convnet::zoo::{head_keys, ModelConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ModelConfig::mnist(); // 1x28x28 inputs, 10 classes
                                       // Pretrained weights: given, or made here.
    let weights = match std::env::args_os().nth(1) {
        Some(path) => path.into(),
        None => common::quick_lenet5()?,
    };

    // A fresh LeNet-5 with those weights (a head of another size would keep
    // its fresh initialisation), its backbone frozen.
    let mut model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(2))?;
    load_initial_weights(model.as_mut(), &weights, false, config.num_classes)?;
    let head = head_keys(model.as_ref(), config.num_classes);
    let clothes = common::loader(DatasetKind::FashionMnist, Split::Train, 2_000, 32)?;
    let test = common::loader(DatasetKind::FashionMnist, Split::Test, 1_000, 500)?;
    let before = evaluate(&model, &test, 10)?.accuracy;

    let train_config = TrainConfig {
        epochs: 2,
        optimizer: OptimizerConfig::adam(3e-3),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, train_config, 10)?;
    let frozen = trainer.freeze(&|name| !head.contains(&name.to_string()))?;
    trainer.fit(&clothes, None)?;
    let model = trainer.into_model();
    let after = evaluate(&model, &test, 10)?.accuracy;
    println!(
        "trained the head ({}) with {frozen} tensors frozen: Fashion-MNIST test accuracy {:.1}% \
         -> {:.1}% ({} parameters in all)",
        head.join(", "),
        100.0 * before,
        100.0 * after,
        model.num_params()
    );
    // A linear head on digit features: far from a whole network's 85%,
    // far above the digit head's chance level.
    if after < before + 0.1 {
        return Err("the head did not learn".into());
    }
    Ok(())
}
