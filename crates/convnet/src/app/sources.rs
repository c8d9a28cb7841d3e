//! The data of `train` and `eval` for every [`DatasetSpec`]: MNIST and
//! Fashion-MNIST through the byte loader of the lecture's datasets, CIFAR
//! and image folders through the vision loader (parallel decoding,
//! torchvision-like transforms, batches prepared ahead of the step).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use convnet_datasets::{
    channel_stats, open_split, CifarDataset, DataLoader, DatasetSpec, FolderOptions, FolderSplit,
    ImageSource, LoadOptions, OnError, Pipeline, RawImage, ResizeTo, Split, Transform,
    VisionConfig, VisionLoader,
};
use convnet_train::BatchSource;

use super::data::{ensure_data, load_split, test_loader};
use super::{AppError, Result};

/// What the training and test batches are made of.
#[derive(Debug, Clone)]
pub struct DataRequest<'a> {
    /// The dataset.
    pub spec: &'a DatasetSpec,
    /// `--data-dir` (MNIST, Fashion-MNIST, CIFAR).
    pub data_dir: Option<&'a Path>,
    /// Never download.
    pub offline: bool,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Seed of the shuffles, augmentations and of a folder's split.
    pub seed: u64,
    /// Random shifts of up to this many pixels (zero padding).
    pub translate: usize,
    /// Random horizontal flips.
    pub hflip: bool,
    /// Side of the model's square input (CIFAR and folders are resized to
    /// it; `None`: the dataset's own, 32 for CIFAR, else the model's).
    pub image_size: Option<usize>,
    /// The model's default input side (for folders without `image_size`).
    pub model_image_size: usize,
    /// The first N training images only.
    pub limit_train: Option<usize>,
    /// The first N test images only.
    pub limit_test: Option<usize>,
    /// Fraction of a folder without `train/` and `val/` held out for
    /// validation.
    pub val_fraction: f64,
    /// Leave out unreadable images of a folder (reported) instead of
    /// refusing the folder.
    pub skip_bad_images: bool,
    /// Train on torchvision's RandomResizedCrop of each image.
    pub random_resized_crop: bool,
    /// ColorJitter of training images: brightness, contrast, saturation,
    /// hue.
    pub color_jitter: Option<[f64; 4]>,
    /// Per-channel mean and std given by the user.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
}

/// The batches of a run and what the model must look like for them.
pub struct RunData {
    /// Training batches (shuffled, augmented).
    pub train: Box<dyn BatchSource>,
    /// Test (or validation) batches, in order.
    pub test: Box<dyn BatchSource>,
    /// Class names, by label.
    pub class_names: Vec<String>,
    /// Input channels.
    pub in_channels: usize,
    /// Input side.
    pub image_size: usize,
    /// Per-channel normalisation.
    pub mean: Vec<f32>,
    /// Per-channel normalisation.
    pub std: Vec<f32>,
    /// The evaluation pipeline (for the checkpoint, so that `eval` and
    /// `predict` prepare images the same way); `None` for MNIST and
    /// Fashion-MNIST, whose preprocessing is known by name.
    pub eval_pipeline: Option<Pipeline>,
    /// Images per epoch.
    pub n_train: usize,
    /// Test images.
    pub n_test: usize,
    /// Where the images came from, for people.
    pub origin: String,
}

/// `n` images spread evenly over a source (image `k` is the source's
/// `k·len/n`): a limit that keeps every class of a folder sorted by class,
/// and the sample a folder's statistics are computed on.
#[derive(Debug)]
struct Spread {
    inner: Arc<dyn ImageSource>,
    n: usize,
}

impl Spread {
    fn index(&self, k: usize) -> usize {
        k * self.inner.len() / self.n
    }
}

impl ImageSource for Spread {
    fn len(&self) -> usize {
        self.n
    }
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(self.index(index))
    }
    fn channels(&self) -> usize {
        self.inner.channels()
    }
    fn image(&self, index: usize) -> convnet_datasets::Result<RawImage> {
        self.inner.image(self.index(index))
    }
    fn describe(&self, index: usize) -> String {
        self.inner.describe(self.index(index))
    }
}

/// At most `limit` images of `source`, spread over it.
fn limited(source: Arc<dyn ImageSource>, limit: Option<usize>) -> Arc<dyn ImageSource> {
    match limit {
        Some(n) if n < source.len() => Arc::new(Spread { inner: source, n }),
        _ => source,
    }
}

/// At most this many images are decoded to compute a folder's mean and
/// standard deviation.
const STATS_SAMPLE: usize = 5000;

/// The evaluation transforms of a folder: the shorter side resized to
/// `size`, then the centre `size`×`size` (torchvision's
/// `Resize(size), CenterCrop(size)`).
fn folder_eval_transforms(size: usize) -> Vec<Transform> {
    vec![
        Transform::Resize(ResizeTo::Shorter(size)),
        Transform::CenterCrop {
            height: size,
            width: size,
        },
    ]
}

/// The training transforms: `base` (what evaluation does to reach `size`)
/// or a random resized crop, then the augmentations asked for.
fn train_transforms(base: &[Transform], size: usize, req: &DataRequest<'_>) -> Vec<Transform> {
    let mut t = if req.random_resized_crop {
        vec![Transform::random_resized_crop(size, size)]
    } else {
        base.to_vec()
    };
    t.extend(augmentations(size, req.translate, req.hflip));
    if let Some([brightness, contrast, saturation, hue]) = req.color_jitter {
        t.push(Transform::ColorJitter {
            brightness,
            contrast,
            saturation,
            hue,
        });
    }
    t
}

/// The augmentations of a training pipeline.
fn augmentations(size: usize, translate: usize, hflip: bool) -> Vec<Transform> {
    let mut t = Vec::new();
    if translate > 0 {
        t.push(Transform::RandomCrop {
            height: size,
            width: size,
            padding: translate,
        });
    }
    if hflip {
        t.push(Transform::RandomHorizontalFlip { p: 0.5 });
    }
    t
}

/// Opens the data of a run.
pub fn open_run_data(req: &DataRequest<'_>) -> Result<RunData> {
    if let Some(kind) = req.spec.idx_kind() {
        if let Some(size) = req.image_size.filter(|&s| s != 28) {
            return Err(AppError::Usage(format!(
                "{} images are 28x28: --image-size {size} is for CIFAR and image folders",
                kind.title()
            )));
        }
        let data_dir = ensure_data(kind, req.data_dir, req.offline)?;
        let train_set = load_split(kind, Split::Train, &data_dir, req.limit_train)?;
        let test_set = load_split(kind, Split::Test, &data_dir, req.limit_test)?;
        let (n_train, n_test) = (train_set.len(), test_set.len());
        let train = DataLoader::new(
            train_set,
            convnet_datasets::LoaderConfig {
                drop_last: true,
                augment: convnet_datasets::Augment {
                    translate: req.translate,
                    hflip: req.hflip,
                },
                prefetch: 2,
                ..convnet_datasets::LoaderConfig::train(req.batch_size, req.seed)
            },
        )?;
        let test = test_loader(test_set, req.eval_batch_size)?;
        let (mean, std) = kind.mean_std();
        return Ok(RunData {
            train: Box::new(train),
            test: Box::new(test),
            class_names: kind.class_names().iter().map(|s| s.to_string()).collect(),
            in_channels: 1,
            image_size: 28,
            mean: vec![mean],
            std: vec![std],
            eval_pipeline: None,
            n_train,
            n_test,
            origin: data_dir.display().to_string(),
        });
    }
    let (train_src, test_src, origin, size, mean, std, eval_t, train_t) =
        if let Some(kind) = req.spec.cifar_kind() {
            let dir = ensure_cifar_dir(kind, req.data_dir, req.offline)?;
            let opts = LoadOptions::from_env();
            let train: Arc<dyn ImageSource> =
                Arc::new(CifarDataset::load_with(kind, Split::Train, &dir, &opts)?);
            let test: Arc<dyn ImageSource> =
                Arc::new(CifarDataset::load_with(kind, Split::Test, &dir, &opts)?);
            let size = req.image_size.unwrap_or(32);
            let resize = if size == 32 {
                vec![]
            } else {
                vec![Transform::Resize(ResizeTo::Exact {
                    height: size,
                    width: size,
                })]
            };
            let train_t = train_transforms(&resize, size, req);
            let (m, s) = kind.mean_std();
            (
                train,
                test,
                dir.display().to_string(),
                size,
                m.to_vec(),
                s.to_vec(),
                resize,
                train_t,
            )
        } else if let DatasetSpec::Folder(root) = req.spec {
            let options = FolderOptions {
                on_error: if req.skip_bad_images {
                    OnError::Skip
                } else {
                    OnError::Refuse
                },
                ..FolderOptions::default()
            };
            let split = FolderSplit::Detect {
                val_fraction: req.val_fraction,
                seed: req.seed,
            };
            let splits = open_split(root, split, options)?;
            for s in splits
                .train
                .skipped()
                .iter()
                .chain(splits.val.iter().flat_map(|v| v.skipped()))
            {
                eprintln!("skipped {}: {}", s.path.display(), s.reason);
            }
            let val = splits.val.ok_or_else(|| {
                AppError::Usage(format!("{} has no validation images", root.display()))
            })?;
            let train: Arc<dyn ImageSource> = Arc::new(splits.train);
            let size = req.image_size.unwrap_or(req.model_image_size);
            let sample = limited(train.clone(), Some(STATS_SAMPLE));
            let stats = channel_stats(sample.as_ref())?;
            let eval_t = folder_eval_transforms(size);
            let train_t = train_transforms(&eval_t, size, req);
            (
                train,
                Arc::new(val) as Arc<dyn ImageSource>,
                format!(
                    "{}; normalised with the mean {:?} and std {:?} of {} of its training images",
                    splits.description,
                    rounded(&stats.mean),
                    rounded(&stats.std),
                    stats.images
                ),
                size,
                stats.mean.iter().map(|&v| v as f32).collect(),
                stats
                    .std
                    .iter()
                    .map(|&v| (v as f32).max(1e-6))
                    .collect::<Vec<f32>>(),
                eval_t,
                train_t,
            )
        } else {
            unreachable!("every dataset is IDX, CIFAR or a folder")
        };
    let (mean, std) = match &req.normalize {
        Some((m, s)) => (m.clone(), s.clone()),
        None => (mean, std),
    };
    let train_src = limited(train_src, req.limit_train);
    let test_src = limited(test_src, req.limit_test);
    let in_channels = train_src.channels();
    let class_names = train_src.class_names().to_vec();
    let (n_train, n_test) = (train_src.len(), test_src.len());
    let eval_pipeline = Pipeline {
        transforms: eval_t,
        mean: mean.clone(),
        std: std.clone(),
    };
    let train_pipeline = Pipeline {
        transforms: train_t,
        mean: mean.clone(),
        std: std.clone(),
    };
    let train = VisionLoader::new(
        train_src,
        train_pipeline,
        VisionConfig {
            drop_last: true,
            ..VisionConfig::train(req.batch_size, req.seed)
        },
    )?;
    let test = VisionLoader::new(
        test_src,
        eval_pipeline.clone(),
        VisionConfig::eval(req.eval_batch_size),
    )?;
    Ok(RunData {
        train: Box::new(train),
        test: Box::new(test),
        class_names,
        in_channels,
        image_size: size,
        mean,
        std,
        eval_pipeline: Some(eval_pipeline),
        n_train,
        n_test,
        origin,
    })
}

/// The test batches of `spec` for a model trained with `pipeline` (from its
/// checkpoint): CIFAR's test split or a folder's validation images.
pub fn open_eval_data(
    spec: &DatasetSpec,
    data_dir: Option<&Path>,
    offline: bool,
    pipeline: Pipeline,
    batch_size: usize,
    limit: Option<usize>,
    split_seed: Option<(f64, u64)>,
) -> Result<(VisionLoader, String)> {
    let (source, origin): (Arc<dyn ImageSource>, String) = match spec {
        DatasetSpec::Cifar10 | DatasetSpec::Cifar100 => {
            let kind = spec.cifar_kind().expect("a CIFAR spec");
            let dir = ensure_cifar_dir(kind, data_dir, offline)?;
            let ds = CifarDataset::load_with(kind, Split::Test, &dir, &LoadOptions::from_env())?;
            (Arc::new(ds), dir.display().to_string())
        }
        DatasetSpec::Folder(root) => {
            let split = match split_seed {
                Some((val_fraction, seed)) => FolderSplit::Detect { val_fraction, seed },
                None => FolderSplit::Folders,
            };
            let splits = open_split(root, split, FolderOptions::default())?;
            let val = splits.val.ok_or_else(|| {
                AppError::Usage(format!("{} has no validation images", root.display()))
            })?;
            (Arc::new(val), splits.description)
        }
        other => {
            return Err(AppError::Usage(format!(
                "{} is evaluated through its IDX files, not a pipeline",
                other.title()
            )))
        }
    };
    let source = limited(source, limit);
    let loader = VisionLoader::new(source, pipeline, VisionConfig::eval(batch_size))?;
    Ok((loader, origin))
}

/// The folder holding CIFAR's files: found, else downloaded and verified
/// (unless `offline`).
fn ensure_cifar_dir(
    kind: convnet_datasets::CifarKind,
    data_dir: Option<&Path>,
    offline: bool,
) -> Result<PathBuf> {
    if let Some(dir) = convnet_datasets::cifar::find_cifar(kind, data_dir) {
        return Ok(dir);
    }
    let target = convnet_datasets::resolve_data_dir(data_dir);
    let opts = convnet_datasets::DownloadOptions {
        offline,
        ..Default::default()
    };
    let report = convnet_datasets::cifar::ensure_cifar(kind, &target, &opts)?;
    Ok(report.dir)
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1e4).round() / 1e4).collect()
}
