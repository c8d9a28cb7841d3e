use super::*;
use crate::test_util::TinyNet;
use convnet_tensor::{Rng, Tensor};

/// Two Gaussian blobs per class in 6 dimensions; shuffled per epoch as a
/// pure function of (seed, epoch).
struct Blobs {
    x: Vec<f32>,
    y: Vec<usize>,
    dim: usize,
    batch: usize,
    seed: u64,
    shuffle: bool,
}

impl Blobs {
    fn new(n: usize, seed: u64, shuffle: bool) -> Self {
        let dim = 6;
        let mut rng = Rng::seed_from(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            for d in 0..dim {
                let center = if d % 3 == c { 2.0 } else { 0.0 };
                x.push(center + 0.7 * rng.normal());
            }
            y.push(c);
        }
        Blobs {
            x,
            y,
            dim,
            batch: 8,
            seed,
            shuffle,
        }
    }
}

impl BatchSource for Blobs {
    fn num_samples(&self) -> usize {
        self.y.len()
    }
    fn num_batches(&self) -> usize {
        self.y.len() / self.batch
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let mut order: Vec<usize> = (0..self.y.len()).collect();
        if self.shuffle {
            Rng::seed_from(self.seed)
                .fork(epoch as u64)
                .shuffle(&mut order);
        }
        Box::new((0..self.num_batches()).map(move |b| {
            let idx = &order[b * self.batch..(b + 1) * self.batch];
            let mut data = Vec::new();
            for &i in idx {
                data.extend_from_slice(&self.x[i * self.dim..(i + 1) * self.dim]);
            }
            Ok(Batch::new(
                Tensor::from_vec(&[idx.len(), self.dim], data)?,
                idx.iter().map(|&i| self.y[i]).collect(),
            ))
        }))
    }
}

/// One 1x4x4 image per batch.
struct OneImage;

impl BatchSource for OneImage {
    fn num_samples(&self) -> usize {
        1
    }
    fn num_batches(&self) -> usize {
        1
    }
    fn batches(&self, _epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(std::iter::once(Ok(Batch::new(
            Tensor::full(&[1, 1, 4, 4], 0.5),
            vec![0],
        ))))
    }
}

#[test]
fn a_batch_no_machine_can_hold_is_refused_before_the_forward_pass() {
    use convnet_layers::{Conv2d, Conv2dConfig, Sequential};
    // A 1x1 convolution with a padding of 300,000: a handful of weights,
    // but 3 planes of 600,004² outputs (4 TiB) for one 4x4 image.
    let conv = Conv2d::new(
        Conv2dConfig::new(1, 3, 1).padding(300_000),
        &mut Rng::seed_from(0),
    )
    .unwrap();
    let model = Sequential::default().with(conv);
    let mut trainer = Trainer::new(model, config(1), 3).unwrap();
    let e = trainer.fit(&OneImage, None).unwrap_err().to_string();
    assert!(
        e.contains("training on batches of shape [1, 1, 4, 4] would need at least")
            && e.contains("TiB"),
        "{e}"
    );
    assert_eq!(trainer.epochs_done(), 0);
    let e = evaluate(trainer.model(), &OneImage, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("evaluation on batches of shape [1, 1, 4, 4]"),
        "{e}"
    );
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
        },
        schedule: ScheduleKind::Cosine { min_lr: 0.0 },
        warmup_steps: Some(5),
        clip_grad_norm: Some(5.0),
        label_smoothing: 0.05,
    }
}

fn weights(model: &dyn Layer) -> Vec<f32> {
    let mut v = Vec::new();
    model.visit_params("", &mut |_, p| v.extend_from_slice(p.value.as_slice()));
    v
}

fn info() -> ModelInfo {
    ModelInfo {
        model: "tiny".into(),
        ..Default::default()
    }
}

/// A checkpoint after every epoch to `path`.
fn target(path: &std::path::Path) -> CheckpointTarget {
    CheckpointTarget {
        path: path.to_path_buf(),
        info: info(),
        run_settings: "{}".into(),
    }
}

/// `model` trained by `config` on `train` (no evaluation).
fn trained<M: Layer>(model: M, config: TrainConfig, train: &dyn BatchSource) -> M {
    let mut t = Trainer::new(model, config, 3).unwrap();
    t.fit(train, None).unwrap();
    t.into_model()
}

#[test]
fn learns_separable_blobs_and_records_history() {
    let (train, test) = (Blobs::new(240, 1, true), Blobs::new(64, 2, false));
    let model = TinyNet::new(6, 3, 7);
    let before = evaluate(&model, &test, 3).unwrap().accuracy;
    let mut trainer = Trainer::new(model, config(4), 3).unwrap();
    let history = trainer.fit(&train, Some(&test)).unwrap().clone();
    // The trained model, given back (no borrow outlives the trainer).
    let model = trainer.into_model();
    assert_eq!(history.records.len(), 4);
    let last = history.last().unwrap();
    assert!(
        last.test_accuracy.unwrap() > 0.9,
        "{last:?} (before: {before})"
    );
    assert!(last.train_loss < history.records[0].train_loss);
    assert_eq!(last.test_top5, Some(1.0)); // 3 classes: top-3
    let report = evaluate(&model, &test, 3).unwrap();
    assert_eq!(report.confusion.total(), 64);
    assert!((report.accuracy - last.test_accuracy.unwrap()).abs() < 1e-12);
}

#[test]
fn resume_after_epoch_k_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (Blobs::new(96, 3, true), Blobs::new(24, 4, false));
    // Uninterrupted: 4 epochs.
    let mut t = Trainer::new(TinyNet::new(6, 3, 11), config(4), 3).unwrap();
    t.fit(&train, Some(&test)).unwrap();
    let full = t.into_model();
    // Stopped after 2 epochs (a run configured for 4, killed), checkpointed.
    let path = dir.path().join("run.ckpt");
    {
        let mut t = Trainer::new(TinyNet::new(6, 3, 11), config(4), 3).unwrap();
        t.checkpoint_to(target(&path));
        // Stop after epoch 2 through a callback error, as a crash would.
        struct StopAfter(usize);
        impl Callback for StopAfter {
            fn on_epoch_end(
                &mut self,
                r: &EpochRecord,
                _: Option<&EvalReport>,
                _: &History,
            ) -> Result<()> {
                if r.epoch == self.0 {
                    return Err(TrainError::Data("stopped".into()));
                }
                Ok(())
            }
        }
        t.add_callback(Box::new(StopAfter(2)));
        assert!(t.fit(&train, Some(&test)).is_err());
    }
    // Resumed into a freshly initialised model with another seed.
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.header.epoch, 2);
    let mut t = Trainer::new(TinyNet::new(6, 3, 999), config(4), 3).unwrap();
    t.resume(&ck).unwrap();
    assert_eq!(t.epochs_done(), 2);
    let h = t.fit(&train, Some(&test)).unwrap().clone();
    assert_eq!(h.records.len(), 4);
    let resumed = t.into_model();
    assert_eq!(weights(&full), weights(&resumed), "bit-identical weights");
    // A different seed really gives other weights (the test can fail).
    let other = trained(TinyNet::new(6, 3, 12), config(4), &train);
    assert_ne!(weights(&full), weights(&other));
}

/// A small conv net with BatchNorm on 1×2×3 "images": children `0`
/// (conv), `1` (BatchNorm), `2`, `3`, and the head `4` (Linear).
fn conv_bn_net(seed: u64) -> convnet_layers::Sequential {
    use convnet_layers::{
        BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, ReLU, Sequential,
    };
    let mut rng = Rng::seed_from(seed);
    Sequential::default()
        .with(Conv2d::new(Conv2dConfig::new(1, 2, 3).padding(1), &mut rng).unwrap())
        .with(BatchNorm2d::new(2).unwrap())
        .with(ReLU::new())
        .with(Flatten::new())
        .with(Linear::new(LinearConfig::new(12, 3), &mut rng).unwrap())
}

/// The blobs as `[N, 1, 2, 3]` images.
struct Images(Blobs);
impl BatchSource for Images {
    fn num_samples(&self) -> usize {
        self.0.num_samples()
    }
    fn num_batches(&self) -> usize {
        self.0.num_batches()
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.0.batches(epoch).map(|b| {
            let b = b?;
            let n = b.labels.len();
            Ok(Batch::new(
                Tensor::from_vec(&[n, 1, 2, 3], b.images.as_slice().to_vec())?,
                b.labels,
            ))
        }))
    }
}

/// Every parameter and buffer, by name.
fn tensors(model: &dyn Layer) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    model.visit_params("", &mut |k, p| {
        v.push((k.to_string(), p.value.as_slice().to_vec()))
    });
    model.visit_buffers("", &mut |k, t| {
        v.push((k.to_string(), t.as_slice().to_vec()))
    });
    v
}

fn is_head(k: &str) -> bool {
    k.starts_with("4.")
}

#[test]
fn frozen_backbone_stays_bit_identical_and_the_head_learns() {
    let (train, test) = (
        Images(Blobs::new(96, 3, true)),
        Images(Blobs::new(24, 4, false)),
    );
    let model = conv_bn_net(5);
    let before = tensors(&model);
    let mut t = Trainer::new(model, config(3), 3).unwrap();
    assert_eq!(t.freeze(&|k| !is_head(k)).unwrap(), 4);
    assert_eq!(t.frozen(), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    let state = t.train_state("").unwrap();
    assert_eq!(state.frozen, t.frozen());
    let slots = &state.optimizer.slots;
    assert!(slots
        .iter()
        .all(|s| s.buffers.is_empty() != is_head(&s.name)));
    t.fit(&train, Some(&test)).unwrap();
    let after = tensors(t.model());
    assert_eq!(before.len(), after.len());
    for ((k, a), (_, b)) in before.iter().zip(&after) {
        if is_head(k) {
            assert_ne!(a, b, "{k} trained");
        } else {
            assert_eq!(a, b, "{k} frozen (BatchNorm statistics included)");
        }
    }
    // Unfrozen, the same run changes the backbone too (the test can fail).
    let free = trained(conv_bn_net(5), config(1), &train);
    let moved = tensors(&free);
    for ((k, a), (_, b)) in before.iter().zip(&moved) {
        assert_ne!(a, b, "{k} trains when nothing is frozen");
    }
    // Freezing everything leaves nothing to train.
    let mut t = Trainer::new(free, config(1), 3).unwrap();
    let e = t.freeze(&|_| true).unwrap_err().to_string();
    assert!(e.contains("nothing would train"), "{e}");
}

#[test]
fn resume_with_a_frozen_backbone_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (
        Images(Blobs::new(96, 3, true)),
        Images(Blobs::new(24, 4, false)),
    );
    let cfg = TrainConfig {
        clip_grad_norm: Some(0.5),
        ..config(4)
    };
    let mut t = Trainer::new(conv_bn_net(7), cfg.clone(), 3).unwrap();
    t.freeze(&|k| !is_head(k)).unwrap();
    t.fit(&train, Some(&test)).unwrap();
    let full = t.into_model();
    let path = dir.path().join("frozen.ckpt");
    let mut t = Trainer::new(conv_bn_net(7), cfg.clone(), 3).unwrap();
    t.freeze(&|k| !is_head(k)).unwrap();
    t.checkpoint_to(target(&path));
    t.fit_until(&train, Some(&test), 2).unwrap();
    drop(t);
    // Resumed into a model with other weights and nothing frozen: the
    // checkpoint brings the weights and the freezing.
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.payload.train.as_ref().unwrap().frozen.len(), 4);
    let mut t = Trainer::new(conv_bn_net(999), cfg, 3).unwrap();
    t.resume(&ck).unwrap();
    assert_eq!(t.frozen().len(), 4);
    t.fit(&train, Some(&test)).unwrap();
    let resumed = t.into_model();
    assert_eq!(tensors(&full), tensors(&resumed), "bit-identical");
    let start = tensors(&conv_bn_net(7));
    assert_eq!(
        start
            .iter()
            .filter(|(k, _)| !is_head(k))
            .collect::<Vec<_>>(),
        tensors(&resumed)
            .iter()
            .filter(|(k, _)| !is_head(k))
            .collect::<Vec<_>>(),
    );
}

#[test]
fn non_finite_loss_stops_with_epoch_and_batch_and_keeps_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let train = Blobs::new(96, 3, true);
    let mut t = Trainer::new(TinyNet::new(6, 3, 1), config(3), 3).unwrap();
    t.checkpoint_to(target(&path));
    t.set_epochs(1).unwrap();
    t.fit(&train, None).unwrap();
    let mut model = t.into_model();
    let good = std::fs::read(&path).unwrap();
    // Poison a weight: the next forward gives non-finite logits.
    model.visit_params_mut("", &mut |name, p| {
        if name == "bias" {
            p.value.as_slice_mut()[0] = f32::INFINITY;
        }
    });
    let mut t = Trainer::new(model, config(3), 3).unwrap();
    t.checkpoint_to(target(&path));
    let e = t.fit(&train, None).unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::NonFiniteLoss {
                epoch: 1,
                batch: 1,
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("epoch 1, batch 1"), "{msg}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the good checkpoint stays"
    );
}

#[test]
fn non_finite_test_loss_stops_and_keeps_last_finite_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let (train, test) = (Blobs::new(96, 3, true), Blobs::new(24, 4, false));
    let mut t = Trainer::new(TinyNet::new(6, 3, 1), config(3), 3).unwrap();
    t.checkpoint_to(target(&path));
    t.fit_until(&train, Some(&test), 1).unwrap();
    let model = t.into_model();
    let good = std::fs::read(&path).unwrap();
    // The test images are NaN: training stays finite, evaluation does not.
    struct NanImages<'a>(&'a Blobs);
    impl BatchSource for NanImages<'_> {
        fn num_samples(&self) -> usize {
            self.0.num_samples()
        }
        fn num_batches(&self) -> usize {
            self.0.num_batches()
        }
        fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
            Box::new(
                self.0
                    .batches(epoch)
                    .map(|b| b.map(|b| Batch::new(b.images.map(|_| f32::NAN), b.labels))),
            )
        }
    }
    let report = evaluate(&model, &NanImages(&test), 3).unwrap();
    assert_eq!(report.accuracy, 0.0, "NaN logits never count as correct");
    assert_eq!(report.top5, 0.0);
    assert!(!report.loss.is_finite());
    let ck = Checkpoint::load(&path).unwrap();
    let mut t = Trainer::new(model, config(3), 3).unwrap();
    t.resume(&ck).unwrap();
    t.checkpoint_to(target(&path));
    let e = t.fit(&train, Some(&NanImages(&test))).unwrap_err();
    assert!(
        matches!(e, TrainError::NonFiniteTestLoss { epoch: 2, .. }),
        "{e}"
    );
    assert_eq!(t.epochs_done(), 1);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "epoch 1's checkpoint stays"
    );
}

#[test]
fn resume_below_epochs_done_and_stop_at_zero_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let train = Blobs::new(48, 3, true);
    let mut t = Trainer::new(TinyNet::new(6, 3, 1), config(3), 3).unwrap();
    t.checkpoint_to(target(&path));
    let e = t.fit_until(&train, None, 0).unwrap_err().to_string();
    assert!(e.contains("epoch 0"), "{e}");
    t.fit_until(&train, None, 2).unwrap();
    let model = t.into_model();
    let ck = Checkpoint::load(&path).unwrap();
    let mut t = Trainer::new(model, config(1), 3).unwrap();
    let e = t.resume(&ck).unwrap_err().to_string();
    assert!(
        e.contains("1 epochs") && e.contains("already done 2"),
        "{e}"
    );
}

/// The learning rate of every step of a run of `config` on `train`.
fn step_lrs(config: TrainConfig, train: &dyn BatchSource) -> Vec<f32> {
    #[derive(Clone, Default)]
    struct Lrs(std::sync::Arc<std::sync::Mutex<Vec<f32>>>);
    impl Callback for Lrs {
        fn on_batch_end(&mut self, r: &BatchReport) -> Result<()> {
            self.0.lock().unwrap().push(r.lr);
            Ok(())
        }
    }
    let lrs = Lrs::default();
    let mut t = Trainer::new(TinyNet::new(6, 3, 1), config, 3).unwrap();
    t.add_callback(Box::new(lrs.clone()));
    t.fit(train, None).unwrap();
    let v = lrs.0.lock().unwrap().clone();
    v
}

#[test]
fn the_default_warm_up_scales_with_the_run() {
    // 4 epochs of 12 batches: 48 steps, an automatic warm-up of 2.
    let train = Blobs::new(96, 3, true);
    let auto = TrainConfig {
        schedule: ScheduleKind::Constant,
        warmup_steps: None,
        ..config(4)
    };
    assert_eq!(auto.warmup_for(48), 2);
    let lrs = step_lrs(auto.clone(), &train);
    assert_eq!(lrs.len(), 48);
    assert_eq!(lrs[0], 0.05, "{lrs:?}");
    assert!(lrs[1..].iter().all(|&lr| lr == 0.1), "{lrs:?}");
    // The fixed 200 steps of before would spend the whole run warming up.
    let fixed = step_lrs(
        TrainConfig {
            warmup_steps: Some(200),
            ..auto
        },
        &train,
    );
    assert!(fixed.iter().all(|&lr| lr < 0.025), "{fixed:?}");
    // A long run warms up for 200 steps at most.
    assert_eq!(TrainConfig::default().warmup_for(100_000), 200);
    assert_eq!(TrainConfig::default().warmup_for(1_000), 50);
}

#[test]
fn bad_configuration_and_weights_only_resume_are_errors() {
    let model = || TinyNet::new(6, 3, 1);
    let mut cfg = config(0);
    assert!(Trainer::new(model(), cfg.clone(), 3).is_err());
    cfg.epochs = 1;
    cfg.label_smoothing = 1.5;
    assert!(Trainer::new(model(), cfg.clone(), 3).is_err());
    cfg.label_smoothing = 0.0;
    let ck = Checkpoint::capture(&mut model(), &info(), 1, None);
    let mut t = Trainer::new(model(), cfg, 3).unwrap();
    let e = t.resume(&ck).unwrap_err().to_string();
    assert!(e.contains("weights only"), "{e}");
}
