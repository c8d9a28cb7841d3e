//! Data-parallel training: every process (rank) holds the model, trains on
//! its contiguous shard of each global batch, and the gradients are summed
//! over the ranks before the optimizer step, so that every rank takes the
//! same step as one process running the whole batch would (up to the order
//! of the floating-point sums).
//!
//! The ranks talk through a [`Communicator`]: [`Single`] (one process, always
//! available) or, with the `mpi` cargo feature, `mpi::MpiCommunicator` (any
//! MPI library, launched by `mpirun`). [`Trainer::distribute`] hands one to
//! the trainer.
//!
//! What the trainer does with it, per step: rank `r` of `N` takes rows
//! [`shard_range`]`(B, r, N)` of the global batch of `B` samples, runs forward
//! and backward on them, scales its gradients by `n_r / B`
//! ([`gradient_weight`]: the gradient of the global batch's mean loss is
//! `Σ_r (n_r / B) · ∇(mean loss of shard r)`), and the scaled gradients are
//! summed by allreduce in buckets of [`BUCKET_FLOATS`] values; the loss and
//! accuracy counters are summed too. BatchNorm uses the statistics of its
//! rank's shard (PyTorch DDP's default); the running statistics are averaged
//! over the ranks after each epoch, before the (sharded) evaluation. After
//! each epoch the ranks compare a checksum of their weights: a difference is
//! a [`TrainError::Distributed`] error naming the epoch.
//!
//! [`Trainer::distribute`]: crate::Trainer::distribute

use std::ops::Range;
use std::time::Instant;

use convnet_layers::Layer;
use convnet_tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::trainer::{eval_sums, Batch, BatchSource, EvalReport};

#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(test)]
mod tests;

/// How values are combined by [`Communicator::allreduce_u64`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum over the ranks.
    Sum,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

/// The collective operations data-parallel training needs. Every rank calls
/// them in the same order with buffers of the same length; the results are
/// the same on every rank.
pub trait Communicator {
    /// This process's index, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` with their element-wise sum over the ranks.
    fn allreduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` with their element-wise sum over the ranks.
    fn allreduce_sum_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Replaces `values` with their element-wise `op` over the ranks.
    fn allreduce_u64(&self, values: &mut [u64], op: ReduceOp) -> Result<()>;
    /// Replaces `values` with rank `root`'s.
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()>;
    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;
}

/// One process alone: every collective operation leaves the values as they
/// are.
///
/// ```
/// use convnet_train::distributed::{Communicator, Single};
/// let mut v = [1.0f32, 2.0];
/// Single.allreduce_sum_f32(&mut v).unwrap();
/// assert_eq!((Single.rank(), Single.size(), v), (0, 1, [1.0, 2.0]));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_sum_f32(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn allreduce_sum_f64(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn allreduce_u64(&self, _values: &mut [u64], _op: ReduceOp) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _values: &mut [f32], root: usize) -> Result<()> {
        if root != 0 {
            return Err(TrainError::Distributed(format!(
                "broadcast from rank {root} in a run of 1 process"
            )));
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// Values per allreduce of gradients: 2^20 `f32`s, 4 MB.
pub const BUCKET_FLOATS: usize = 1 << 20;

/// The rows of a batch of `len` samples that rank `rank` of `size` takes:
/// contiguous, in rank order, sizes differing by at most one (shard `r`
/// starts at `⌊r·len/size⌋`). A shard is empty when `len < size` leaves
/// it nothing.
///
/// ```
/// use convnet_train::distributed::shard_range;
/// assert_eq!(shard_range(64, 0, 2), 0..32);
/// assert_eq!(shard_range(64, 1, 2), 32..64);
/// assert_eq!(shard_range(5, 1, 3), 1..3);
/// ```
pub fn shard_range(len: usize, rank: usize, size: usize) -> Range<usize> {
    debug_assert!(rank < size);
    let start = |r: usize| ((r as u128 * len as u128) / size as u128) as usize;
    start(rank)..start(rank + 1)
}

/// The factor rank gradients are scaled by before they are summed: the
/// shard's share of the global batch, `local / global` (0 for an empty
/// global batch). Each rank's gradient is that of its shard's mean loss;
/// these shares make the sum the gradient of the global batch's mean loss.
///
/// ```
/// use convnet_train::distributed::gradient_weight;
/// assert_eq!(gradient_weight(32, 64), 0.5);
/// assert_eq!(gradient_weight(0, 1), 0.0);
/// ```
pub fn gradient_weight(local: usize, global: usize) -> f32 {
    if global == 0 {
        0.0
    } else {
        (local as f64 / global as f64) as f32
    }
}

/// Rows `range` of `batch` (images, labels and indices).
pub fn shard_batch(batch: Batch, range: Range<usize>) -> Result<Batch> {
    let n = batch.labels.len();
    if range.start == 0 && range.end == n {
        return Ok(batch);
    }
    if range.start > range.end || range.end > n {
        return Err(TrainError::invalid(
            "shard_batch",
            format!("rows {range:?} of a batch of {n}"),
        ));
    }
    let shape = batch.images.shape();
    let row: usize = shape[1..].iter().product();
    let mut sub_shape = shape.to_vec();
    sub_shape[0] = range.len();
    let data = batch.images.as_slice()[range.start * row..range.end * row].to_vec();
    let images = Tensor::from_vec(&sub_shape, data)?;
    let indices = batch.indices.get(range.clone()).map(<[usize]>::to_vec);
    Ok(Batch {
        images,
        labels: batch.labels[range].to_vec(),
        indices: indices.unwrap_or_default(),
    })
}

/// A 64-bit FNV-1a checksum of the model's parameters and buffers (their
/// bits, in visiting order): equal on every rank while they are in step.
pub fn weights_checksum(model: &dyn Layer) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |t: &Tensor| {
        for v in t.as_slice() {
            for byte in v.to_bits().to_le_bytes() {
                hash = (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    };
    model.visit_params("", &mut |_, p| feed(&p.value));
    model.visit_buffers("", &mut |_, b| feed(b));
    hash
}

/// The trainer's side of data-parallel training: the communicator and the
/// buffer gradients are gathered into.
pub struct Distributed {
    comm: Box<dyn Communicator>,
    flat: Vec<f32>,
}

impl Distributed {
    /// Training over `comm`.
    pub fn new(comm: Box<dyn Communicator>) -> Self {
        Distributed {
            comm,
            flat: Vec::new(),
        }
    }

    /// The communicator.
    pub fn comm(&self) -> &dyn Communicator {
        &*self.comm
    }

    /// This rank's shard of a global batch.
    pub fn shard(&self, batch: Batch) -> Result<Batch> {
        let range = shard_range(batch.labels.len(), self.comm.rank(), self.comm.size());
        shard_batch(batch, range)
    }

    /// An error unless every rank holds a value equal to `value`.
    fn agree(&self, value: u64, what: &str) -> Result<()> {
        let (mut min, mut max) = ([value], [value]);
        self.comm.allreduce_u64(&mut min, ReduceOp::Min)?;
        self.comm.allreduce_u64(&mut max, ReduceOp::Max)?;
        if min != max {
            return Err(TrainError::Distributed(format!(
                "{what} (rank {} has {value:#x}; the ranks hold values from {:#x} to {:#x})",
                self.comm.rank(),
                min[0],
                max[0]
            )));
        }
        Ok(())
    }

    /// Checks, before training, that every rank has the same weights and
    /// the same data (same number of batches and samples), as the same
    /// settings and seed give.
    pub fn check_start(&self, model: &dyn Layer, train: &dyn BatchSource) -> Result<()> {
        let what = "the ranks start from different weights: run every rank with the same \
                    settings, seed and checkpoint";
        self.agree(weights_checksum(model), what)?;
        let data = (train.num_samples() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(train.num_batches() as u64);
        self.agree(
            data,
            "the ranks see different training sets (samples, batches)",
        )
    }

    /// After the backward pass of a step on this rank's `local` of the
    /// `global` samples: scales the gradients by [`gradient_weight`] and sums
    /// them over the ranks, in buckets of [`BUCKET_FLOATS`]; sums the
    /// counters `loss · local` and `correct`. Returns the global batch's
    /// mean loss and correct count.
    pub fn reduce_step(
        &mut self,
        model: &mut dyn Layer,
        loss: f32,
        correct: usize,
        local: usize,
        global: usize,
    ) -> Result<(f32, usize)> {
        let weight = gradient_weight(local, global);
        self.flat.clear();
        model.visit_params("", &mut |_, p| self.flat.extend(p.grad.as_slice()));
        if weight != 1.0 {
            self.flat.iter_mut().for_each(|g| *g *= weight);
        }
        sum_in_buckets(self.comm.as_ref(), &mut self.flat)?;
        let mut offset = 0;
        model.visit_params_mut("", &mut |_, p| {
            let n = p.grad.len();
            p.grad
                .as_slice_mut()
                .copy_from_slice(&self.flat[offset..offset + n]);
            offset += n;
        });
        let loss_sum = if local == 0 {
            0.0
        } else {
            loss as f64 * local as f64
        };
        let mut counters = [loss_sum, correct as f64];
        self.comm.allreduce_sum_f64(&mut counters)?;
        let mean = counters[0] / global.max(1) as f64;
        Ok((mean as f32, counters[1] as usize))
    }

    /// After an epoch: averages the buffers (BatchNorm's running statistics,
    /// computed on each rank's shards) over the ranks, then checks that
    /// every rank holds the same weights.
    pub fn end_epoch(&self, model: &mut dyn Layer, epoch: usize) -> Result<()> {
        let size = self.comm.size();
        if size > 1 {
            let mut flat = Vec::new();
            model.visit_buffers("", &mut |_, b| flat.extend(b.as_slice()));
            sum_in_buckets(self.comm.as_ref(), &mut flat)?;
            let mut offset = 0;
            model.visit_buffers_mut("", &mut |_, b| {
                let n = b.len();
                for (v, s) in b.as_slice_mut().iter_mut().zip(&flat[offset..offset + n]) {
                    *v = s / size as f32;
                }
                offset += n;
            });
        }
        self.agree(
            weights_checksum(model),
            &format!("the ranks' weights diverged at epoch {epoch}"),
        )
    }

    /// Evaluates `model` on this rank's shards of `data`'s batches and sums
    /// the counts over the ranks: every rank gets the report of the whole
    /// set.
    pub fn evaluate(
        &self,
        model: &dyn Layer,
        data: &dyn BatchSource,
        num_classes: usize,
    ) -> Result<EvalReport> {
        let start = Instant::now();
        let shards = Sharded {
            inner: data,
            rank: self.comm.rank(),
            size: self.comm.size(),
        };
        let mut sums = eval_sums(model, &shards, num_classes)?;
        let mut loss = [sums.loss_sum];
        self.comm.allreduce_sum_f64(&mut loss)?;
        sums.loss_sum = loss[0];
        let mut counts = [sums.top1 as u64, sums.top5 as u64, sums.samples as u64];
        self.comm.allreduce_u64(&mut counts, ReduceOp::Sum)?;
        (sums.top1, sums.top5, sums.samples) =
            (counts[0] as usize, counts[1] as usize, counts[2] as usize);
        let (matrix, unpredicted) = sums.confusion.counts_mut();
        self.comm.allreduce_u64(matrix, ReduceOp::Sum)?;
        self.comm.allreduce_u64(unpredicted, ReduceOp::Sum)?;
        sums.report(start)
    }
}

/// Sums `values` over the ranks in place, in buckets of [`BUCKET_FLOATS`].
fn sum_in_buckets(comm: &dyn Communicator, values: &mut [f32]) -> Result<()> {
    for bucket in values.chunks_mut(BUCKET_FLOATS) {
        comm.allreduce_sum_f32(bucket)?;
    }
    Ok(())
}

/// This rank's non-empty shards of another source's batches.
struct Sharded<'a> {
    inner: &'a dyn BatchSource,
    rank: usize,
    size: usize,
}

impl BatchSource for Sharded<'_> {
    fn num_samples(&self) -> usize {
        self.inner.num_samples()
    }
    fn num_batches(&self) -> usize {
        self.inner.num_batches()
    }
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(
            self.inner
                .batches(epoch)
                .map(|b| {
                    b.and_then(|b| {
                        let range = shard_range(b.labels.len(), self.rank, self.size);
                        shard_batch(b, range)
                    })
                })
                .filter(|b| !matches!(b, Ok(b) if b.labels.is_empty())),
        )
    }
}
