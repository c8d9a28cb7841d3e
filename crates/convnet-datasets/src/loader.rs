//! Batches for training and evaluation: seeded per-epoch shuffling,
//! drop-last, normalisation and augmentation, optionally prepared ahead on a
//! background thread.
//!
//! Epoch `e` is a pure function of `(seed, e)`: its order comes from
//! `Rng::seed_from(seed).fork(e).fork(0)` and the augmentation of the image
//! at position `p` of the epoch from `...fork(e).fork(1).fork(p)`. A run
//! resumed at epoch `k` therefore sees exactly the batches an uninterrupted
//! run would, whatever the prefetching.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use convnet_tensor::{Rng, Tensor};

use crate::augment::Augment;
use crate::dataset::{Dataset, IMAGE_PIXELS};
use crate::error::{DatasetError, Result};
use crate::kind::IMAGE_SIDE;

/// How pixel values are normalised: `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Normalize {
    /// Pixels stay in [0, 1].
    None,
    /// The dataset's usual constants ([`crate::DatasetKind::mean_std`]):
    /// MNIST 0.1307 / 0.3081, Fashion-MNIST 0.2860 / 0.3530.
    #[default]
    Dataset,
    /// Mean and standard deviation computed over this loader's images (do
    /// it on the training set, then pass the values to the test loader as
    /// `Custom`: [`DataLoader::normalization`] gives them).
    Computed,
    /// Given values.
    Custom {
        /// Subtracted from each pixel.
        mean: f32,
        /// Divides each pixel after the subtraction; must be > 0.
        std: f32,
    },
}

/// How a [`DataLoader`] makes batches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoaderConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Shuffle the order at every epoch (seeded).
    pub shuffle: bool,
    /// Drop the last batch if it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffles and augmentations.
    pub seed: u64,
    /// Pixel normalisation.
    pub normalize: Normalize,
    /// Augmentations (training only).
    pub augment: Augment,
    /// Batches prepared ahead on a background thread while the caller trains
    /// on the current one; 0 prepares each batch when asked for.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    /// Batches of 64 in file order, the dataset's normalisation, no
    /// augmentation, no prefetching.
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: false,
            drop_last: false,
            seed: 0,
            normalize: Normalize::Dataset,
            augment: Augment::NONE,
            prefetch: 0,
        }
    }
}

impl LoaderConfig {
    /// For training: shuffled with `seed`, normalised, no augmentation (set
    /// `augment` to add some).
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            seed,
            ..LoaderConfig::default()
        }
    }

    /// For evaluation: file order, every image, normalised.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            ..LoaderConfig::default()
        }
    }
}

/// A batch of images and their class labels: what both loaders make and
/// what the trainer consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[B, C, H, W]` images (augmented, transformed and normalised by the
    /// loader), or `[B, D]` features.
    pub images: Tensor,
    /// `B` class indices.
    pub labels: Vec<usize>,
    /// Index in the dataset or image source of each image; empty when the
    /// batch comes from elsewhere ([`Batch::new`]).
    pub indices: Vec<usize>,
}

impl Batch {
    /// A batch of `images` and their `labels`, from no dataset (`indices`
    /// empty): what a custom data source (the trainer's `BatchSource`) yields.
    ///
    /// ```
    /// use convnet_datasets::Batch;
    /// use convnet_tensor::Tensor;
    /// let batch = Batch::new(Tensor::zeros(&[2, 1, 4, 4]), vec![0, 1]);
    /// assert_eq!(batch.len(), 2);
    /// ```
    pub fn new(images: Tensor, labels: Vec<usize>) -> Self {
        Batch {
            images,
            labels,
            indices: Vec::new(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Makes the batches of a dataset, epoch by epoch.
///
/// ```
/// use convnet_datasets::{Augment, Dataset, DataLoader, DatasetKind, LoaderConfig, Split};
/// use convnet_tensor::Tensor;
///
/// let images = Tensor::full(&[10, 1, 28, 28], 0.5);
/// let ds = Dataset::from_parts(DatasetKind::FashionMnist, Split::Train, images, vec![3; 10])?;
/// let config = LoaderConfig {
///     augment: Augment { translate: 2, hflip: true },
///     drop_last: true,
///     ..LoaderConfig::train(4, 42)
/// };
/// let loader = DataLoader::new(ds, config)?;
/// assert_eq!(loader.num_batches(), 2); // 10 images, batches of 4, last one dropped
/// let batches: Vec<_> = loader.epoch(0).collect();
/// assert_eq!(batches[0].images.shape(), &[4, 1, 28, 28]);
/// // Epoch 0 is the same every time it is asked for.
/// assert_eq!(loader.epoch(0).next().unwrap(), batches[0]);
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DataLoader {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    norm: Option<(f32, f32)>,
}

impl DataLoader {
    /// A loader over `dataset` (a `Dataset` or an `Arc<Dataset>`). Errors on
    /// a batch size of 0, an augmentation that does not suit the dataset
    /// (horizontal flip on MNIST), or a normalisation with std <= 0.
    pub fn new(dataset: impl Into<Arc<Dataset>>, config: LoaderConfig) -> Result<Self> {
        let dataset = dataset.into();
        if config.batch_size == 0 {
            return Err(DatasetError::Config("batch size must be at least 1".into()));
        }
        config.augment.validate(dataset.kind)?;
        let norm = match config.normalize {
            Normalize::None => None,
            Normalize::Dataset => Some(dataset.kind.mean_std()),
            Normalize::Computed => {
                let (mean, std) = dataset.pixel_mean_std();
                Some((mean as f32, std as f32))
            }
            Normalize::Custom { mean, std } => Some((mean, std)),
        };
        if let Some((mean, std)) = norm {
            if !(std > 0.0 && std.is_finite() && mean.is_finite()) {
                return Err(DatasetError::Config(format!(
                    "normalisation needs a finite mean and a standard deviation > 0, got mean \
                     {mean} and std {std}"
                )));
            }
        }
        Ok(DataLoader {
            dataset,
            config,
            norm,
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The `(mean, std)` applied to pixels, `None` without normalisation.
    pub fn normalization(&self) -> Option<(f32, f32)> {
        self.norm
    }

    /// Images per epoch (all of them, or fewer with `drop_last`).
    pub fn len(&self) -> usize {
        epoch_len(
            self.dataset.len(),
            self.config.batch_size,
            self.config.drop_last,
        )
    }

    /// `true` if an epoch has no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.len().div_ceil(self.config.batch_size)
    }

    /// The order in which epoch `epoch` visits the dataset's indices.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(
            self.dataset.len(),
            self.config.shuffle,
            self.config.seed,
            epoch,
        )
    }

    fn maker(&self, epoch: usize) -> BatchMaker {
        BatchMaker {
            dataset: Arc::clone(&self.dataset),
            order: self.order(epoch),
            batch_size: self.config.batch_size,
            augment: self.config.augment,
            aug_rng: epoch_rng(self.config.seed, epoch).fork(1),
            norm: self.norm,
        }
    }

    /// The batches of epoch `epoch` (`0`-based), in order.
    pub fn epoch(&self, epoch: usize) -> Epoch {
        Epoch(Batches::new(
            self.maker(epoch),
            self.num_batches(),
            self.config.prefetch,
            "convnet-batches",
        ))
    }

    /// Batch `index` of epoch `epoch`, on its own (the same as the
    /// `index`-th item of [`DataLoader::epoch`]).
    pub fn batch(&self, epoch: usize, index: usize) -> Result<Batch> {
        if index >= self.num_batches() {
            return Err(DatasetError::Config(format!(
                "batch {index} does not exist: an epoch has {} batches",
                self.num_batches()
            )));
        }
        Ok(self.maker(epoch).make(index))
    }
}

/// The generator of epoch `epoch`: its order comes from `.fork(0)`, the
/// augmentation of the image at position `p` from `.fork(1).fork(p)`.
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> Rng {
    Rng::seed_from(seed).fork(epoch as u64)
}

/// Images an epoch over `n` images visits: all of them, or with
/// `drop_last` only the whole batches of `batch_size` (what both loaders
/// report as their `len`).
pub(crate) fn epoch_len(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n / batch_size * batch_size
    } else {
        n
    }
}

/// The order in which epoch `epoch` visits `len` items: `0..len`, shuffled
/// with `epoch_rng(seed, epoch).fork(0)` if `shuffle`. Shared by every
/// loader, so that they visit a dataset in the same order for a seed.
pub(crate) fn epoch_order(len: usize, shuffle: bool, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        epoch_rng(seed, epoch).fork(0).shuffle(&mut order);
    }
    order
}

/// Everything needed to make any batch of one epoch.
struct BatchMaker {
    dataset: Arc<Dataset>,
    order: Vec<usize>,
    batch_size: usize,
    augment: Augment,
    aug_rng: Rng,
    norm: Option<(f32, f32)>,
}

impl BatchMaker {
    /// Batch `index` (must exist).
    fn make(&self, index: usize) -> Batch {
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let mut pixels = vec![0f32; indices.len() * IMAGE_PIXELS];
        // The dataset's image, before augmentation.
        let mut src = [0f32; IMAGE_PIXELS];
        for (j, (out, &idx)) in pixels
            .chunks_exact_mut(IMAGE_PIXELS)
            .zip(&indices)
            .enumerate()
        {
            if self.augment.is_identity() {
                self.dataset
                    .image_into(idx, out)
                    .expect("the order holds indices of the dataset");
            } else {
                self.dataset
                    .image_into(idx, &mut src)
                    .expect("the order holds indices of the dataset");
                let mut rng = self.aug_rng.fork((start + j) as u64);
                self.augment.apply(out, &src, &mut rng);
            }
            if let Some((mean, std)) = self.norm {
                for v in out.iter_mut() {
                    *v = (*v - mean) / std;
                }
            }
        }
        let labels = indices
            .iter()
            .map(|&i| usize::from(self.dataset.labels[i]))
            .collect();
        let images = Tensor::from_vec(&[indices.len(), 1, IMAGE_SIDE, IMAGE_SIDE], pixels)
            .expect("batch pixels match their shape by construction");
        Batch {
            images,
            labels,
            indices,
        }
    }
}

impl MakeBatch for BatchMaker {
    type Item = Batch;

    fn make(&self, index: usize) -> Batch {
        BatchMaker::make(self, index)
    }
}

/// The batches of one epoch, in order. Owns what it needs (the dataset is
/// shared through an `Arc`), so it can outlive the loader.
#[derive(Debug)]
pub struct Epoch(Batches<BatchMaker>);

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.0.left();
        (left, Some(left))
    }
}

impl ExactSizeIterator for Epoch {}

/// What makes the batches of one epoch, by index: each loader has one, and
/// [`Batches`] runs it (ahead on a thread or on demand).
pub(crate) trait MakeBatch: Send + Sync + 'static {
    /// A batch, or the result of making one.
    type Item: Send + 'static;

    /// Batch `index` (it exists).
    fn make(&self, index: usize) -> Self::Item;

    /// Whether `item` ends the epoch (a failure): nothing is made after it.
    fn ends_epoch(_item: &Self::Item) -> bool {
        false
    }
}

/// The batches of one epoch, in order, made by a [`MakeBatch`] on the
/// calling thread, or up to `depth` ahead on a background thread.
pub(crate) struct Batches<M: MakeBatch> {
    maker: Arc<M>,
    next: usize,
    num_batches: usize,
    prefetch: Option<Prefetch<M::Item>>,
}

impl<M: MakeBatch> std::fmt::Debug for Batches<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("next", &self.next)
            .field("num_batches", &self.num_batches)
            .field("prefetch", &self.prefetch.is_some())
            .finish()
    }
}

impl<M: MakeBatch> Batches<M> {
    /// The `num_batches` batches of `maker`, prefetched `depth` ahead on a
    /// thread called `thread` (none when `depth` is 0 or there is only one
    /// batch).
    pub(crate) fn new(maker: M, num_batches: usize, depth: usize, thread: &str) -> Self {
        let maker = Arc::new(maker);
        let prefetch = (depth > 0 && num_batches > 1)
            .then(|| Prefetch::start(Arc::clone(&maker), num_batches, depth, thread));
        Batches {
            maker,
            next: 0,
            num_batches,
            prefetch,
        }
    }

    /// Batches not yet yielded (at most: a failure ends the epoch early).
    pub(crate) fn left(&self) -> usize {
        self.num_batches - self.next
    }
}

impl<M: MakeBatch> Iterator for Batches<M> {
    type Item = M::Item;

    fn next(&mut self) -> Option<M::Item> {
        if self.next >= self.num_batches {
            return None;
        }
        let batch = match &self.prefetch {
            // The producer makes the batches in the same order; if it died,
            // fall back to making the batch here.
            Some(p) => p
                .receiver
                .as_ref()
                .and_then(|r| r.recv().ok())
                .unwrap_or_else(|| self.maker.make(self.next)),
            None => self.maker.make(self.next),
        };
        self.next = if M::ends_epoch(&batch) {
            self.num_batches
        } else {
            self.next + 1
        };
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left()))
    }
}

/// A background thread making the batches of an epoch ahead of the
/// consumer, at most `depth` of them waiting.
struct Prefetch<T> {
    receiver: Option<Receiver<T>>,
    handle: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetch<T> {
    fn start<M: MakeBatch<Item = T>>(
        maker: Arc<M>,
        num_batches: usize,
        depth: usize,
        thread: &str,
    ) -> Self {
        let (sender, receiver) = sync_channel(depth);
        let handle = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                for index in 0..num_batches {
                    let batch = maker.make(index);
                    let last = M::ends_epoch(&batch);
                    if sender.send(batch).is_err() || last {
                        break; // the epoch was dropped, or ends here
                    }
                }
            })
            .ok();
        Prefetch {
            receiver: handle.as_ref().map(|_| receiver),
            handle,
        }
    }
}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        // Closing the channel first unblocks a producer waiting to send.
        self.receiver.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests;
