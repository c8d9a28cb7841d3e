use std::sync::{Arc, Barrier, Mutex};

use convnet_layers::{Layer, Linear, LinearConfig};
use convnet_tensor::{Rng, Tensor};

use super::*;
use crate::loss::cross_entropy;
use crate::{OptimizerConfig, ScheduleKind, TrainConfig, Trainer};

#[test]
fn shards_cover_the_batch_in_order_with_sizes_within_one() {
    for len in 0..40 {
        for size in 1..7 {
            let mut next = 0;
            let (mut smallest, mut largest) = (usize::MAX, 0);
            for rank in 0..size {
                let r = shard_range(len, rank, size);
                assert_eq!(r.start, next, "len {len} size {size} rank {rank}");
                next = r.end;
                smallest = smallest.min(r.len());
                largest = largest.max(r.len());
            }
            assert_eq!(next, len);
            assert!(largest - smallest <= 1, "len {len} size {size}");
        }
    }
    assert_eq!(shard_range(1, 0, 2), 0..0);
    assert_eq!(shard_range(1, 1, 2), 0..1);
}

#[test]
fn shard_batch_takes_rows_and_refuses_a_range_outside() {
    let images = Tensor::arange(&[4, 1, 2, 2]);
    let batch = Batch {
        images,
        labels: vec![0, 1, 2, 3],
        indices: vec![10, 11, 12, 13],
    };
    let part = shard_batch(batch.clone(), 1..3).unwrap();
    assert_eq!(part.images.shape(), &[2, 1, 2, 2]);
    assert_eq!(part.images.as_slice()[0], 4.0);
    assert_eq!(part.images.as_slice()[7], 11.0);
    assert_eq!((part.labels, part.indices), (vec![1, 2], vec![11, 12]));
    let empty = shard_batch(batch.clone(), 4..4).unwrap();
    assert_eq!(empty.images.shape(), &[0, 1, 2, 2]);
    let e = shard_batch(batch, 3..5).unwrap_err().to_string();
    assert!(e.contains("3..5") && e.contains("batch of 4"), "{e}");
}

/// The gradient of `model`'s mean cross-entropy on rows `range` of `x`.
fn gradient(model: &mut Linear, x: &Tensor, labels: &[usize], range: Range<usize>) -> Vec<f32> {
    let part = shard_batch(Batch::new(x.clone(), labels.to_vec()), range).unwrap();
    model.zero_grad();
    let logits = model.forward(&part.images).unwrap();
    let out = cross_entropy(&logits, &part.labels, 0.0).unwrap();
    model.backward_params(&out.grad).unwrap();
    let mut g = Vec::new();
    model.visit_params("", &mut |_, p| g.extend(p.grad.as_slice()));
    g
}

#[test]
fn weighted_shard_gradients_sum_to_the_global_batch_gradient() {
    let mut rng = Rng::seed_from(3);
    let mut model = Linear::new(LinearConfig::new(4, 3), &mut rng).unwrap();
    let x = Tensor::randn(&[7, 4], 0.0, 1.0, &mut rng);
    let labels = vec![0, 2, 1, 1, 0, 2, 2];
    let full = gradient(&mut model, &x, &labels, 0..7);
    let mut sum = vec![0.0f32; full.len()];
    for rank in 0..3 {
        let range = shard_range(7, rank, 3);
        let weight = gradient_weight(range.len(), 7);
        for (s, g) in sum.iter_mut().zip(gradient(&mut model, &x, &labels, range)) {
            *s += weight * g;
        }
    }
    for (a, b) in full.iter().zip(&sum) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // Unweighted, the shards' gradients would not sum to it.
    assert!(full.iter().any(|g| g.abs() > 1e-3));
}

#[test]
fn the_checksum_sees_any_change_of_a_weight() {
    let mut model = Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(1)).unwrap();
    let before = weights_checksum(&model);
    assert_eq!(before, weights_checksum(&model));
    model.visit_params_mut("", &mut |name, p| {
        if name == "bias" {
            p.value.as_slice_mut()[1] += 1e-7;
        }
    });
    assert_ne!(before, weights_checksum(&model));
}

/// The ranks of a job as threads of this process: each collective combines
/// the ranks' values under a lock, between barriers.
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

struct Shared {
    floats: Mutex<Vec<f64>>,
    integers: Mutex<Vec<u64>>,
    barrier: Barrier,
}

impl Threads {
    fn group(size: usize) -> Vec<Threads> {
        let shared = Arc::new(Shared {
            floats: Mutex::new(Vec::new()),
            integers: Mutex::new(Vec::new()),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| Threads {
                rank,
                size,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// Every rank's `values` combined by `op` in `acc`.
    fn reduce<T: Copy>(&self, acc: &Mutex<Vec<T>>, values: &mut [T], op: fn(T, T) -> T) {
        let barrier = &self.shared.barrier;
        if self.rank == 0 {
            acc.lock().unwrap().clear();
        }
        barrier.wait();
        {
            let mut acc = acc.lock().unwrap();
            if acc.is_empty() {
                acc.extend_from_slice(values);
            } else {
                for (a, v) in acc.iter_mut().zip(values.iter()) {
                    *a = op(*a, *v);
                }
            }
        }
        barrier.wait();
        values.copy_from_slice(&acc.lock().unwrap());
        barrier.wait();
    }

    fn reduce_f64(&self, values: &mut [f64]) {
        self.reduce(&self.shared.floats, values, |a, b| a + b);
    }
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn allreduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        self.reduce_f64(&mut wide);
        for (v, s) in values.iter_mut().zip(wide) {
            *v = s as f32;
        }
        Ok(())
    }
    fn allreduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.reduce_f64(values);
        Ok(())
    }
    fn allreduce_u64(&self, values: &mut [u64], op: ReduceOp) -> Result<()> {
        let op: fn(u64, u64) -> u64 = match op {
            ReduceOp::Sum => |a, b| a + b,
            ReduceOp::Min => |a, b| a.min(b),
            ReduceOp::Max => |a, b| a.max(b),
        };
        self.reduce(&self.shared.integers, values, op);
        Ok(())
    }
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        let mut mine: Vec<f64> = values
            .iter()
            .map(|&v| if self.rank == root { v as f64 } else { 0.0 })
            .collect();
        self.reduce_f64(&mut mine);
        for (v, s) in values.iter_mut().zip(mine) {
            *v = s as f32;
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

/// 25 samples of 3 features in batches of 10 (the last one of 5), labelled
/// by the sign of the first feature plus the second.
struct Points;

impl BatchSource for Points {
    fn num_samples(&self) -> usize {
        25
    }
    fn num_batches(&self) -> usize {
        3
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let mut rng = Rng::seed_from(100 + epoch as u64);
        Box::new([10, 10, 5].into_iter().map(move |n| {
            let images = Tensor::randn(&[n, 3], 0.0, 1.0, &mut rng);
            let labels = images
                .as_slice()
                .chunks(3)
                .map(|r| usize::from(r[0] + r[1] > 0.0))
                .collect();
            Ok(Batch::new(images, labels))
        }))
    }
}

/// Trains a linear model on [`Points`] for 3 epochs, over `comm` if any;
/// returns its weights and the history's (loss, accuracy, test accuracy).
fn train(comm: Option<Box<dyn Communicator>>) -> (Vec<f32>, Vec<(f64, f64, f64)>) {
    let model = Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(7)).unwrap();
    let config = TrainConfig {
        epochs: 3,
        optimizer: OptimizerConfig::sgd(0.3, 0.9),
        schedule: ScheduleKind::Constant,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config, 2).unwrap();
    if let Some(comm) = comm {
        trainer.distribute(comm);
    }
    let history = trainer.fit(&Points, Some(&Points)).unwrap();
    let records = history
        .records
        .iter()
        .map(|r| (r.train_loss, r.train_accuracy, r.test_accuracy.unwrap()))
        .collect();
    let mut weights = Vec::new();
    trainer
        .model()
        .visit_params("", &mut |_, p| weights.extend(p.value.as_slice()));
    (weights, records)
}

#[test]
fn one_rank_trains_bit_identically_to_no_communicator() {
    assert_eq!(train(Some(Box::new(Single))), train(None));
}

#[test]
fn three_ranks_train_as_one_process_up_to_rounding() {
    let (weights, records) = train(None);
    let ranks: Vec<_> = Threads::group(3)
        .into_iter()
        .map(|comm| std::thread::spawn(move || train(Some(Box::new(comm)))))
        .collect();
    let results: Vec<_> = ranks.into_iter().map(|t| t.join().unwrap()).collect();
    for (w, r) in &results {
        assert_eq!(w, &results[0].0, "every rank holds the same weights");
        for (a, b) in w.iter().zip(&weights) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for (a, b) in r.iter().zip(&records) {
            assert!((a.0 - b.0).abs() < 1e-5, "loss {} vs {}", a.0, b.0);
            assert_eq!((a.1, a.2), (b.1, b.2), "accuracies are counts");
        }
    }
    assert!(weights.iter().any(|w| w.abs() > 0.1), "it trained");
}

#[test]
fn ranks_whose_weights_differ_are_an_error_naming_the_epoch() {
    let ranks: Vec<_> = Threads::group(2)
        .into_iter()
        .map(|comm| {
            std::thread::spawn(move || {
                let seed = comm.rank as u64;
                let mut model =
                    Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(seed)).unwrap();
                let dist = Distributed::new(Box::new(comm));
                let start = dist.check_start(&model, &Points).unwrap_err().to_string();
                let end = dist.end_epoch(&mut model, 4).unwrap_err().to_string();
                (start, end)
            })
        })
        .collect();
    for t in ranks {
        let (start, end) = t.join().unwrap();
        assert!(start.contains("different weights"), "{start}");
        assert!(end.contains("diverged at epoch 4"), "{end}");
    }
}

#[test]
fn a_sharded_evaluation_counts_the_whole_set() {
    let model = Linear::new(LinearConfig::new(3, 2), &mut Rng::seed_from(2)).unwrap();
    let whole = crate::evaluate(&model, &Points, 2).unwrap();
    let ranks: Vec<_> = Threads::group(2)
        .into_iter()
        .map(|comm| {
            let model = model.clone();
            std::thread::spawn(move || {
                Distributed::new(Box::new(comm))
                    .evaluate(&model, &Points, 2)
                    .unwrap()
            })
        })
        .collect();
    for t in ranks {
        let r = t.join().unwrap();
        assert_eq!(
            (r.samples, r.accuracy, r.top5),
            (25, whole.accuracy, whole.top5)
        );
        assert_eq!(r.confusion, whole.confusion);
        assert!((r.loss - whole.loss).abs() < 1e-6);
    }
}
