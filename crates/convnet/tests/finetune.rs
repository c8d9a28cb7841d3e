//! Fine-tuning with a frozen backbone, through the library: a zoo model
//! starts from a state dict whose head has another number of classes, the
//! head is re-initialised and trained alone, and every other tensor of the
//! state dict (BatchNorm statistics included) stays bit-identical.

use convnet::app::train::load_initial_weights;
use convnet::layers::Layer;
use convnet::tensor::{Rng, Tensor};
use convnet::train::{
    Batch, BatchSource, OptimizerConfig, Result, ScheduleKind, TrainConfig, Trainer,
};
use convnet::weights::StateDict;
use convnet::zoo::{build, head_keys, ModelConfig};

/// `n` random images of `shape` with labels `i % classes`, one batch per
/// epoch.
struct RandomImages {
    shape: [usize; 3],
    n: usize,
    classes: usize,
}

impl BatchSource for RandomImages {
    fn num_samples(&self) -> usize {
        self.n
    }
    fn num_batches(&self) -> usize {
        1
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let [c, h, w] = self.shape;
        let images = Tensor::randn(
            &[self.n, c, h, w],
            0.0,
            1.0,
            &mut Rng::seed_from(epoch as u64),
        );
        let labels = (0..self.n).map(|i| i % self.classes).collect();
        Box::new(std::iter::once(Ok(Batch::new(images, labels))))
    }
}

/// Builds `model` for `pretrained_classes`, gives its BatchNorm layers
/// non-trivial running statistics, saves its state dict as safetensors,
/// fine-tunes a `classes`-class model from it with the backbone frozen for
/// `epochs` steps, and checks what changed.
fn finetune_frozen(model: &str, input: [usize; 3], pretrained_classes: usize, classes: usize) {
    let [in_channels, image_size, _] = input;
    let pre_config = ModelConfig {
        in_channels,
        image_size,
        num_classes: pretrained_classes,
        variant: None,
    };
    let mut pre = build(model, &pre_config, &mut Rng::seed_from(1)).unwrap();
    let mut rng = Rng::seed_from(3);
    pre.visit_buffers_mut("", &mut |k, t| {
        if k.ends_with("running_mean") || k.ends_with("running_var") {
            for v in t.as_slice_mut() {
                *v = rng.uniform(0.5, 1.5);
            }
        }
    });
    let pretrained = StateDict::from_model(pre.as_ref());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pretrained.safetensors");
    convnet::weights::safetensors_io::write(&path, &pretrained, None).unwrap();

    let config = ModelConfig {
        num_classes: classes,
        ..pre_config
    };
    let mut net = build(model, &config, &mut Rng::seed_from(2)).unwrap();
    let loaded = load_initial_weights(net.as_mut(), &path, false, classes).unwrap();
    let head = head_keys(net.as_ref(), classes);
    assert!(!head.is_empty(), "{model}");
    assert_eq!(loaded.reinitialised_head, head, "{model}");
    let fresh_head = StateDict::from_model(net.as_ref());

    let train_config = TrainConfig {
        epochs: 1,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        },
        schedule: ScheduleKind::Constant,
        warmup_steps: Some(0),
        clip_grad_norm: Some(1.0),
        label_smoothing: 0.0,
    };
    let data = RandomImages {
        shape: input,
        n: 4,
        classes,
    };
    let mut trainer = Trainer::new(net, train_config, classes).unwrap();
    trainer.freeze(&|k| !head.iter().any(|h| h == k)).unwrap();
    trainer.fit(&data, None).unwrap();
    let net = trainer.into_model();

    let after = StateDict::from_model(net.as_ref());
    for e in after.iter() {
        let now = e.tensor.as_slice();
        if head.contains(&e.name) {
            let start = fresh_head.get(&e.name).unwrap().as_slice();
            assert_ne!(now, start, "{model}: head tensor {} trained", e.name);
        } else {
            let was = pretrained.get(&e.name).unwrap().as_slice();
            assert!(
                now.iter().zip(was).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{model}: {} changed",
                e.name
            );
        }
    }
}

#[test]
fn resnet20_head_of_another_size_trains_alone() {
    finetune_frozen("resnet20", [1, 28, 28], 7, 10);
}

#[test]
fn resnet18_at_32x32_head_of_another_size_trains_alone() {
    finetune_frozen("resnet18", [3, 32, 32], 1000, 4);
}

#[test]
fn lenet5_without_batch_norm_and_a_non_head_mismatch_is_an_error() {
    finetune_frozen("lenet5", [1, 28, 28], 3, 10);
    // Another backbone shape is not a head to re-initialise: an error
    // unless non-strict.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.safetensors");
    let wide = ModelConfig {
        in_channels: 3,
        ..ModelConfig::mnist()
    };
    let pre = build("lenet5", &wide, &mut Rng::seed_from(1)).unwrap();
    convnet::weights::safetensors_io::write(&path, &StateDict::from_model(pre.as_ref()), None)
        .unwrap();
    let mut net = build("lenet5", &ModelConfig::mnist(), &mut Rng::seed_from(2)).unwrap();
    let e = load_initial_weights(net.as_mut(), &path, false, 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv1.weight") && e.contains("--weights-non-strict"),
        "{e}"
    );
    let loaded = load_initial_weights(net.as_mut(), &path, true, 10).unwrap();
    assert!(loaded.reinitialised_head.is_empty());
    assert!(loaded.report.not_loaded().contains(&"conv1.weight"));
}
