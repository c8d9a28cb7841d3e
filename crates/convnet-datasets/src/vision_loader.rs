//! Batches `[B, C, H, W]` from any [`ImageSource`] through a transform
//! [`Pipeline`]: the images of a batch are decoded and transformed in
//! parallel (rayon), and batches are prepared ahead on a background thread
//! while the caller trains on the current one.
//!
//! Epoch `e` is a pure function of `(seed, e)`, exactly as for
//! [`crate::DataLoader`]: the order is the same function of
//! `(seed, e, len)` (`Rng::seed_from(seed).fork(e).fork(0)`), and the
//! transforms of the image at position `p` of the epoch draw from
//! `...fork(e).fork(1).fork(p)`. A run resumed at epoch `k` sees the batches
//! an uninterrupted run would, whatever the prefetching and thread count.
//!
//! Memory is bounded by the batches in flight, never by the dataset: at
//! most `prefetch` finished batches wait in the channel, one is being made
//! by the background thread and one is held by the caller; the optional
//! decoded-image cache ([`ImageCache`]) never holds more than its byte
//! budget. A source such as [`crate::ImageFolder`] keeps only paths.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use convnet_tensor::{Rng, Tensor};
use rayon::prelude::*;

use crate::error::{DatasetError, Result};
use crate::folder::{open_split, FolderOptions, FolderSplit, SkippedFile};
use crate::loader::{epoch_len, epoch_order, epoch_rng, Batch, Batches, MakeBatch};
use crate::source::{ImageSource, RawImage};
use crate::transforms::Pipeline;

/// How a [`VisionLoader`] makes batches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisionConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Shuffle the order at every epoch (seeded).
    pub shuffle: bool,
    /// Drop the last batch if it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffles and random transforms.
    pub seed: u64,
    /// Batches prepared ahead on a background thread; 0 makes each batch
    /// when asked for.
    pub prefetch: usize,
    /// Bytes of decoded images kept between epochs (0: none). Worth it when
    /// the decoded dataset fits: decoding is then done once.
    pub cache_bytes: usize,
}

impl VisionConfig {
    /// For training: shuffled with `seed`, 2 batches prefetched, no cache.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        VisionConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed,
            prefetch: 2,
            cache_bytes: 0,
        }
    }

    /// For evaluation: the source's order, every image, 2 batches
    /// prefetched.
    pub fn eval(batch_size: usize) -> Self {
        VisionConfig {
            shuffle: false,
            ..VisionConfig::train(batch_size, 0)
        }
    }
}

/// Decoded images kept up to a byte budget; the oldest are evicted first
/// (FIFO). An image larger than the budget is never kept.
#[derive(Debug)]
pub struct ImageCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    images: HashMap<usize, Arc<RawImage>>,
    queue: VecDeque<usize>,
    bytes: usize,
}

impl ImageCache {
    /// An empty cache of at most `budget` bytes of pixels.
    pub fn new(budget: usize) -> Self {
        ImageCache {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock leaves a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Image `index` if kept.
    pub fn get(&self, index: usize) -> Option<Arc<RawImage>> {
        self.lock().images.get(&index).cloned()
    }

    /// Keeps image `index`, evicting the oldest images until it fits;
    /// returns `false` (and keeps nothing) if it is larger than the budget.
    pub fn insert(&self, index: usize, image: Arc<RawImage>) -> bool {
        let size = image.byte_len();
        if size > self.budget {
            return false;
        }
        let mut inner = self.lock();
        if inner.images.contains_key(&index) {
            return true;
        }
        while inner.bytes + size > self.budget {
            let Some(old) = inner.queue.pop_front() else {
                break;
            };
            if let Some(img) = inner.images.remove(&old) {
                inner.bytes -= img.byte_len();
            }
        }
        inner.bytes += size;
        inner.queue.push_back(index);
        inner.images.insert(index, image);
        true
    }

    /// Bytes of pixels kept (never more than [`ImageCache::budget`]).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Images kept.
    pub fn len(&self) -> usize {
        self.lock().images.len()
    }

    /// `true` if nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// Makes the batches of an [`ImageSource`], epoch by epoch.
///
/// ```
/// use std::sync::Arc;
/// use convnet_datasets::{Dataset, DatasetKind, Pipeline, Split, Transform, VisionConfig,
///                        VisionLoader};
/// use convnet_tensor::Tensor;
///
/// let ds = Dataset::from_parts(DatasetKind::FashionMnist, Split::Train,
///                              Tensor::full(&[10, 1, 28, 28], 0.5), vec![3; 10])?;
/// let pipeline = Pipeline {
///     transforms: vec![Transform::RandomCrop { height: 24, width: 24, padding: 0 }],
///     ..Pipeline::normalize(vec![0.286], vec![0.353])
/// };
/// let loader = VisionLoader::new(Arc::new(ds), pipeline, VisionConfig::train(4, 42))?;
/// let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>()?;
/// assert_eq!(batches.len(), 3);
/// assert_eq!(batches[0].images.shape(), &[4, 1, 24, 24]);
/// assert_eq!(loader.epoch(0).next().unwrap()?, batches[0]); // a pure function of (seed, epoch)
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct VisionLoader {
    source: Arc<dyn ImageSource>,
    pipeline: Arc<Pipeline>,
    config: VisionConfig,
    cache: Option<Arc<ImageCache>>,
}

impl VisionLoader {
    /// A loader over `source`. Errors on a batch size of 0 or a pipeline
    /// that does not suit the source's channels ([`Pipeline::validate`]).
    pub fn new(
        source: Arc<dyn ImageSource>,
        pipeline: Pipeline,
        config: VisionConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DatasetError::Config("batch size must be at least 1".into()));
        }
        pipeline.validate(source.channels())?;
        let cache = (config.cache_bytes > 0).then(|| Arc::new(ImageCache::new(config.cache_bytes)));
        Ok(VisionLoader {
            source,
            pipeline: Arc::new(pipeline),
            config,
            cache,
        })
    }

    /// The source.
    pub fn source(&self) -> &Arc<dyn ImageSource> {
        &self.source
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// The decoded-image cache, if any.
    pub fn cache(&self) -> Option<&ImageCache> {
        self.cache.as_deref()
    }

    /// Images per epoch (all of them, or fewer with `drop_last`).
    pub fn len(&self) -> usize {
        epoch_len(
            self.source.len(),
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

    /// The order in which epoch `epoch` visits the source's indices (the
    /// same as [`crate::DataLoader::order`] for the same length and seed).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(
            self.source.len(),
            self.config.shuffle,
            self.config.seed,
            epoch,
        )
    }

    fn maker(&self, epoch: usize) -> BatchMaker {
        BatchMaker {
            source: Arc::clone(&self.source),
            pipeline: Arc::clone(&self.pipeline),
            order: self.order(epoch),
            batch_size: self.config.batch_size,
            rng: epoch_rng(self.config.seed, epoch).fork(1),
            cache: self.cache.clone(),
        }
    }

    /// The batches of epoch `epoch` (`0`-based), in order. The first error
    /// (an image that cannot be decoded, named) ends the epoch.
    pub fn epoch(&self, epoch: usize) -> VisionEpoch {
        VisionEpoch(Batches::new(
            self.maker(epoch),
            self.num_batches(),
            self.config.prefetch,
            "convnet-vision-batches",
        ))
    }

    /// Batch `index` of epoch `epoch` on its own (the same as the `index`-th
    /// item of [`VisionLoader::epoch`]).
    pub fn batch(&self, epoch: usize, index: usize) -> Result<Batch> {
        if index >= self.num_batches() {
            return Err(DatasetError::Config(format!(
                "batch {index} does not exist: an epoch has {} batches",
                self.num_batches()
            )));
        }
        self.maker(epoch).make(index)
    }
}

/// Everything needed to make any batch of one epoch.
struct BatchMaker {
    source: Arc<dyn ImageSource>,
    pipeline: Arc<Pipeline>,
    order: Vec<usize>,
    batch_size: usize,
    rng: Rng,
    cache: Option<Arc<ImageCache>>,
}

impl BatchMaker {
    /// Image `index` of the source, from the cache if kept there.
    fn image(&self, index: usize) -> Result<Arc<RawImage>> {
        if let Some(img) = self.cache.as_ref().and_then(|c| c.get(index)) {
            return Ok(img);
        }
        let img = Arc::new(self.source.image(index)?);
        if let Some(cache) = &self.cache {
            cache.insert(index, Arc::clone(&img));
        }
        Ok(img)
    }

    /// Batch `index` (must exist).
    fn make(&self, index: usize) -> Result<Batch> {
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let images: Vec<(Vec<f32>, [usize; 3])> = indices
            .par_iter()
            .enumerate()
            .map(|(j, &i)| {
                let img = self.image(i)?;
                let mut rng = self.rng.fork((start + j) as u64);
                self.pipeline.apply(&img, &mut rng).map_err(|e| {
                    DatasetError::image(PathBuf::from(self.source.describe(i)), e.to_string())
                })
            })
            .collect::<Result<_>>()?;
        let shape = images.first().map(|(_, s)| *s).unwrap_or([0; 3]);
        if let Some(j) = images.iter().position(|(_, s)| *s != shape) {
            let [c, h, w] = images[j].1;
            return Err(DatasetError::image(
                PathBuf::from(self.source.describe(indices[j])),
                format!(
                    "transformed to {c}x{h}x{w}, but {} became {}x{}x{}: the images of a batch \
                     must have one size (end the pipeline with a Resize to an exact size, a \
                     CenterCrop or a RandomResizedCrop)",
                    self.source.describe(indices[0]),
                    shape[0],
                    shape[1],
                    shape[2]
                ),
            ));
        }
        let mut pixels = Vec::with_capacity(images.len() * shape.iter().product::<usize>());
        for (values, _) in &images {
            pixels.extend_from_slice(values);
        }
        let images = Tensor::from_vec(&[indices.len(), shape[0], shape[1], shape[2]], pixels)?;
        let labels = indices.iter().map(|&i| self.source.label(i)).collect();
        Ok(Batch {
            images,
            labels,
            indices,
        })
    }
}

impl MakeBatch for BatchMaker {
    type Item = Result<Batch>;

    fn make(&self, index: usize) -> Result<Batch> {
        BatchMaker::make(self, index)
    }

    fn ends_epoch(batch: &Result<Batch>) -> bool {
        batch.is_err()
    }
}

/// The batches of one epoch, in order; ends after the first error.
#[derive(Debug)]
pub struct VisionEpoch(Batches<BatchMaker>);

impl Iterator for VisionEpoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// Everything a command needs to train on an image folder.
#[derive(Debug, Clone)]
pub struct FolderData {
    /// Training batches (shuffled, through the training pipeline).
    pub train: VisionLoader,
    /// Validation batches (in order, through the evaluation pipeline), if
    /// the split gives validation images.
    pub val: Option<VisionLoader>,
    /// The class names, by label.
    pub class_names: Vec<String>,
    /// The channels of the images (1 or 3).
    pub channels: usize,
    /// Files left out ([`crate::OnError::Skip`]), training then validation.
    pub skipped: Vec<SkippedFile>,
    /// Where the images came from, for people.
    pub description: String,
}

/// Opens the image folder `root` split as `split` says and makes its
/// loaders: training batches through `train_pipeline`, shuffled with `seed`;
/// validation batches through `eval_pipeline`, in order.
pub fn folder_loaders(
    root: &Path,
    split: FolderSplit,
    options: FolderOptions,
    train_pipeline: Pipeline,
    eval_pipeline: Pipeline,
    batch_size: usize,
    seed: u64,
) -> Result<FolderData> {
    let splits = open_split(root, split, options)?;
    let class_names = splits.train.class_names().to_vec();
    let channels = splits.train.channels();
    let mut skipped = splits.train.skipped().to_vec();
    let train = VisionLoader::new(
        Arc::new(splits.train),
        train_pipeline,
        VisionConfig::train(batch_size, seed),
    )?;
    let val = match splits.val {
        Some(val) => {
            skipped.extend_from_slice(val.skipped());
            Some(VisionLoader::new(
                Arc::new(val),
                eval_pipeline,
                VisionConfig::eval(batch_size),
            )?)
        }
        None => None,
    };
    Ok(FolderData {
        train,
        val,
        class_names,
        channels,
        skipped,
        description: splits.description,
    })
}

#[cfg(test)]
mod tests;
