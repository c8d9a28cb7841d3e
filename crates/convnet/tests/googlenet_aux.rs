//! GoogLeNet as the lecture describes it: `googlenet_aux` trains its two
//! auxiliary classifiers with their losses weighted 0.3, through the same
//! `Trainer` every model uses, and evaluation reads the main head only.

use std::collections::BTreeMap;

use convnet::layers::Layer;
use convnet::tensor::{Rng, Tensor};
use convnet::train::loss::{cross_entropy, training_loss};
use convnet::train::{
    evaluate, Batch, BatchSource, OptimizerConfig, Result, ScheduleKind, TrainConfig, Trainer,
};
use convnet::zoo::googlenet::AUX_LOSS_WEIGHT;
use convnet::zoo::{build, ModelConfig};

const CLASSES: usize = 3;

/// Two batches of 4 random 1×32×32 images per epoch (32×32 is about the
/// smallest input GoogLeNet's four max-pools accept).
struct RandomImages;

impl BatchSource for RandomImages {
    fn num_samples(&self) -> usize {
        8
    }
    fn num_batches(&self) -> usize {
        2
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let mut rng = Rng::seed_from(10 + epoch as u64);
        Box::new((0..2).map(move |b| {
            let images = Tensor::randn(&[4, 1, 32, 32], 0.0, 1.0, &mut rng);
            let labels = (0..4).map(|i| (i + b) % CLASSES).collect();
            Ok(Batch::new(images, labels))
        }))
    }
}

fn config() -> ModelConfig {
    ModelConfig {
        in_channels: 1,
        image_size: 32,
        num_classes: CLASSES,
        variant: None,
    }
}

fn params(model: &dyn Layer) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    model.visit_params("", &mut |name, p| {
        out.insert(name.to_string(), p.value.as_slice().to_vec());
    });
    out
}

/// Trains `name` for one epoch of two SGD steps without weight decay (so a
/// parameter changes only if it received a gradient) and returns the
/// parameters before and after, and the trained model.
fn train(name: &str) -> (BTreeMap<String, Vec<f32>>, Box<dyn Layer>) {
    let model = build(name, &config(), &mut Rng::seed_from(1)).unwrap();
    let before = params(model.as_ref());
    let train_config = TrainConfig {
        epochs: 1,
        optimizer: OptimizerConfig::sgd(0.05, 0.0),
        schedule: ScheduleKind::Constant,
        warmup_steps: Some(0),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, train_config, CLASSES).unwrap();
    let history = trainer.fit(&RandomImages, Some(&RandomImages)).unwrap();
    assert!(history.last().unwrap().train_loss.is_finite());
    (before, trainer.into_model())
}

fn changed(before: &BTreeMap<String, Vec<f32>>, after: &dyn Layer, prefix: &str) -> Vec<String> {
    let after = params(after);
    before
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .filter(|(k, v)| after[k.as_str()] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn the_trainer_trains_the_auxiliary_heads_of_googlenet_aux() {
    let (before, model) = train("googlenet_aux");
    for head in ["aux1.", "aux2."] {
        let n = before.keys().filter(|k| k.starts_with(head)).count();
        assert_eq!(n, 7, "{head}: conv (no bias), bn (2), fc1 (2), fc2 (2)");
        let moved = changed(&before, model.as_ref(), head);
        // Every weight of the head received a gradient and moved.
        for key in ["conv.conv.weight", "fc1.weight", "fc2.weight", "fc2.bias"] {
            let key = format!("{head}{key}");
            assert!(moved.contains(&key), "{key} did not change: {moved:?}");
        }
    }
    // The main path trains too.
    assert!(changed(&before, model.as_ref(), "fc.").len() == 2);
}

#[test]
fn googlenet_without_aux_heads_trains_the_main_path_alone() {
    let (before, model) = train("googlenet");
    assert!(before.keys().all(|k| !k.starts_with("aux")));
    assert_eq!(changed(&before, model.as_ref(), "fc.").len(), 2);
}

#[test]
fn the_training_loss_adds_each_auxiliary_loss_weighted_0_3() {
    let mut model = build("googlenet_aux", &config(), &mut Rng::seed_from(2)).unwrap();
    let x = Tensor::randn(&[3, 1, 32, 32], 0.0, 1.0, &mut Rng::seed_from(3));
    let labels = [0, 1, 2];
    let logits = model.forward(&x).unwrap();
    let out = training_loss(&model, &logits, &labels, 0.0).unwrap();
    let aux = model.aux_outputs();
    assert_eq!(
        aux.iter().map(|a| (a.name, a.weight)).collect::<Vec<_>>(),
        [("aux1", AUX_LOSS_WEIGHT), ("aux2", AUX_LOSS_WEIGHT)]
    );
    let main = cross_entropy(&logits, &labels, 0.0).unwrap();
    let (l1, l2) = (
        cross_entropy(aux[0].logits, &labels, 0.0).unwrap(),
        cross_entropy(aux[1].logits, &labels, 0.0).unwrap(),
    );
    assert_eq!(out.main_loss, main.loss);
    let expected = main.loss + 0.3 * l1.loss + 0.3 * l2.loss;
    assert!(
        (out.loss - expected).abs() < 1e-6,
        "{} vs {expected}",
        out.loss
    );
    assert!(out.loss > main.loss);
    assert_eq!(out.grad, main.grad);
    for (g, l) in out.grad_aux.iter().zip([&l1, &l2]) {
        for (a, b) in g.as_slice().iter().zip(l.grad.as_slice()) {
            assert!((a - 0.3 * b).abs() < 1e-7);
        }
    }
    // One auxiliary gradient instead of two is refused, not half-used.
    model.forward(&x).unwrap();
    let e = model
        .backward_params_with_aux(&out.grad, &out.grad_aux[..1])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 auxiliary gradients expected"), "{e}");
}

#[test]
fn evaluation_reads_the_main_head_only() {
    let model = build("googlenet_aux", &config(), &mut Rng::seed_from(4)).unwrap();
    // The same main-path weights without the auxiliary heads.
    let mut plain = build("googlenet", &config(), &mut Rng::seed_from(5)).unwrap();
    let weights = params(model.as_ref());
    plain.visit_params_mut("", &mut |name, p| {
        p.value.as_slice_mut().copy_from_slice(&weights[name]);
    });
    let a = evaluate(model.as_ref(), &RandomImages, CLASSES).unwrap();
    let b = evaluate(plain.as_ref(), &RandomImages, CLASSES).unwrap();
    assert_eq!((a.loss, a.accuracy), (b.loss, b.accuracy));
    // A model whose forward produced no auxiliary outputs has none.
    assert!(model.aux_outputs().is_empty());
}
