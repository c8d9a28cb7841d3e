//! `convnet predict`: classify image files with a trained checkpoint.

use std::path::{Path, PathBuf};

use convnet_datasets::DatasetKind;
use convnet_tensor::Tensor;

use super::eval::{load_with_weights, ModelWithWeights};
pub use super::prepare::{prepare_image, InkBox, PreparedImage, Preprocess};
use super::{AppError, Result};

/// The predictions for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image file.
    pub path: PathBuf,
    /// The top classes, most probable first: (class index, name, probability).
    pub top: Vec<(usize, String, f32)>,
    /// How the image was prepared (28×28 models; `None` for ImageNet
    /// models, whose preprocessing is the same for every image).
    pub image: Option<PreparedImage>,
}

/// Softmax of one row of logits, computed stably.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// An image `predict` could not classify.
#[derive(Debug)]
pub struct PredictFailure {
    /// The image file.
    pub path: PathBuf,
    /// Why (the message names the file).
    pub error: AppError,
}

/// What `predict` made of its image files.
#[derive(Debug, Default)]
pub struct PredictReport {
    /// The images classified, in the order given.
    pub predictions: Vec<Prediction>,
    /// The images that could not be read, decoded or classified.
    pub failures: Vec<PredictFailure>,
}

/// What `convnet predict` is asked.
#[derive(Debug, Clone)]
pub struct PredictOptions<'a> {
    /// A convnet checkpoint, or a PyTorch/safetensors state dict (then
    /// `model` names the zoo model).
    pub weights: &'a Path,
    /// The zoo model of the weights (default: the one a checkpoint names).
    pub model: Option<&'a str>,
    /// The dataset whose preprocessing and class names apply to a
    /// 28×28 model (default: the checkpoint's).
    pub dataset: Option<DatasetKind>,
    /// How many classes to show per image (default: 5 for ImageNet models,
    /// 3 otherwise).
    pub top_k: Option<usize>,
    /// How a 28×28 model's images are prepared (default: the dataset's
    /// recipe, [`Preprocess::for_dataset`]).
    pub preprocess: Option<Preprocess>,
}

/// Classifies each image with the checkpoint's model and prints the `top_k`
/// classes with their probabilities. Images are prepared with the recipe of
/// the checkpoint's dataset ([`Preprocess::for_dataset`]: MNIST's digit
/// centring, or the whole image for Fashion-MNIST). An image that cannot be
/// read or classified is reported on stderr and in
/// [`PredictReport::failures`], and the others are still classified; only
/// a bad checkpoint or usage is an error.
pub fn run_predict(
    checkpoint: &Path,
    images: &[impl AsRef<Path>],
    top_k: usize,
) -> Result<PredictReport> {
    predict(
        &PredictOptions {
            weights: checkpoint,
            model: None,
            dataset: None,
            top_k: Some(top_k),
            preprocess: None,
        },
        images,
    )
}

/// `convnet predict`: classifies image files with a model and its weights.
///
/// - An ImageNet model of the zoo (3 channels, 1,000 classes: ResNet,
///   ConvNeXt, ViT, ...) gets the preprocessing of torchvision's weights for
///   that model ([`super::imagenet::imagenet_preprocess`]) and the ImageNet
///   class names.
/// - A 28×28 greyscale model gets its dataset's recipe (MNIST's digit
///   centring, or the whole image for Fashion-MNIST).
///
/// An image that cannot be read or classified is reported on stderr and in
/// [`PredictReport::failures`], and the others are still classified; only
/// bad weights or usage is an error.
pub fn predict(opts: &PredictOptions<'_>, images: &[impl AsRef<Path>]) -> Result<PredictReport> {
    if images.is_empty() {
        return Err(AppError::Usage("give at least one image file".into()));
    }
    if opts.top_k == Some(0) {
        return Err(AppError::Usage("--top must be >= 1".into()));
    }
    let loaded = load_with_weights(opts.model, opts.weights)?;
    let cfg = &loaded.config;
    // googlenet_aux is GoogLeNet with the auxiliary heads torchvision's
    // pretrained file carries (unused at inference).
    let imagenet = super::imagenet::imagenet_preprocess(loaded.name.trim_end_matches("_aux"))
        .filter(|_| cfg.in_channels == 3 && cfg.num_classes == 1000);
    if let Some(pre) = imagenet {
        return predict_imagenet(&loaded, &pre, opts.top_k.unwrap_or(5), images);
    }
    // Trained on CIFAR or an image folder: its own evaluation pipeline.
    if let Some(pipeline) = loaded.eval_pipeline()? {
        return predict_with_pipeline(&loaded, &pipeline, opts.top_k.unwrap_or(3), images);
    }
    if cfg.in_channels != 1 {
        return Err(AppError::Usage(format!(
            "`{}` expects {} input channels and {} classes; predict handles ImageNet models \
             of the zoo (3 channels, 1000 classes) and greyscale (1-channel) models",
            loaded.name, cfg.in_channels, cfg.num_classes
        )));
    }
    let top_k = opts.top_k.unwrap_or(3);
    let kind = opts.dataset.or(loaded.dataset);
    let preprocess = opts
        .preprocess
        .unwrap_or_else(|| Preprocess::for_dataset(kind));
    let names: Vec<String> = if loaded.class_names.is_empty() {
        kind.map(|k| k.class_names().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    } else {
        loaded.class_names.clone()
    };
    // The checkpoint's own normalisation first (format 2), else the dataset's.
    let (mean, std) = loaded.grey_mean_std(kind);
    crate::outln!(
        "images are prepared as {} expects: {} (light strokes on a dark background), then \
         normalised with mean {mean} and std {std}",
        kind.map(|k| k.title()).unwrap_or("the model"),
        preprocess.describe(cfg.image_size),
    )?;
    let mut report = PredictReport::default();
    for path in images {
        let path = path.as_ref();
        let prepared = prepare_image(path, cfg.image_size as u32, preprocess).and_then(|image| {
            classify_prepared(&*loaded.model, &image, cfg.image_size, mean, std)
                .map(|probs| (image, probs))
        });
        let (image, probs) = match prepared {
            Ok(v) => v,
            Err(error) => {
                report.fail(path, error);
                continue;
            }
        };
        let top = top_classes(&probs, top_k, |c| names.get(c).cloned());
        let (w, h) = image.original_size;
        let ink = image
            .ink_box
            .map(|b| format!(", ink {}x{} at ({}, {})", b.width, b.height, b.x, b.y))
            .unwrap_or_default();
        crate::outln!(
            "{} ({w}x{h}{}{ink}):",
            path.display(),
            if image.inverted { ", inverted" } else { "" }
        )?;
        print_top(&top)?;
        report.predictions.push(Prediction {
            path: path.to_path_buf(),
            top,
            image: Some(image),
        });
    }
    Ok(report)
}

/// Classifies images prepared by the evaluation pipeline a checkpoint
/// records (resize, centre crop, normalisation, as in training's
/// evaluation), with the checkpoint's class names.
fn predict_with_pipeline(
    loaded: &ModelWithWeights,
    pipeline: &convnet_datasets::Pipeline,
    top_k: usize,
    images: &[impl AsRef<Path>],
) -> Result<PredictReport> {
    let channels = loaded.config.in_channels;
    // Training data of one size (CIFAR) needs no resize; a photo does.
    let mut pipeline = pipeline.clone();
    if pipeline.output_size().is_none() {
        let side = loaded.config.image_size;
        pipeline.transforms.insert(
            0,
            convnet_datasets::Transform::Resize(convnet_datasets::ResizeTo::Exact {
                height: side,
                width: side,
            }),
        );
    }
    let pipeline = &pipeline;
    crate::outln!(
        "images are prepared as {} was trained: {} channel(s), {:?}, normalised with mean {:?} \
         and std {:?}",
        loaded.name,
        channels,
        pipeline.transforms,
        pipeline.mean,
        pipeline.std
    )?;
    let mut report = PredictReport::default();
    for path in images {
        let path = path.as_ref();
        let probs = (|| -> Result<(Vec<f32>, (usize, usize))> {
            let img = convnet_datasets::decode::decode_image(path)?;
            let raw = convnet_datasets::RawImage::from_dynamic(&img, channels)?;
            let size = (raw.width, raw.height);
            // The evaluation pipeline draws no random numbers.
            let (values, shape) = pipeline.apply(&raw, &mut convnet_tensor::Rng::seed_from(0))?;
            let x = Tensor::from_vec(&[1, shape[0], shape[1], shape[2]], values)
                .map_err(|e| AppError::Usage(e.to_string()))?;
            let logits = loaded.model.infer(&x)?;
            Ok((softmax(logits.as_slice()), size))
        })();
        let (probs, (w, h)) = match probs {
            Ok(v) => v,
            Err(error) => {
                report.fail(path, error);
                continue;
            }
        };
        let top = top_classes(&probs, top_k, |c| loaded.class_names.get(c).cloned());
        report.record(path, &format!("{} ({w}x{h})", path.display()), top)?;
    }
    Ok(report)
}

impl PredictReport {
    /// Prints `heading:` and the ranked classes of an image, and keeps them.
    fn record(&mut self, path: &Path, heading: &str, top: Vec<(usize, String, f32)>) -> Result<()> {
        crate::outln!("{heading}:")?;
        print_top(&top)?;
        self.predictions.push(Prediction {
            path: path.to_path_buf(),
            top,
            image: None,
        });
        Ok(())
    }

    fn fail(&mut self, path: &Path, error: AppError) {
        let msg = super::error_message(&error);
        if msg.contains(&*path.to_string_lossy()) {
            eprintln!("error: {msg}");
        } else {
            eprintln!("error: {}: {msg}", path.display());
        }
        self.failures.push(PredictFailure {
            path: path.to_path_buf(),
            error,
        });
    }
}

/// The `k` most probable classes, most probable first (ties by index):
/// (class index, name, probability). `name` gives a class's name, else its
/// index is shown.
fn top_classes(
    probs: &[f32],
    k: usize,
    name: impl Fn(usize) -> Option<String>,
) -> Vec<(usize, String, f32)> {
    super::imagenet::top_k(probs, k.max(1))
        .into_iter()
        .map(|(c, p)| (c, name(c).unwrap_or_else(|| c.to_string()), p))
        .collect()
}

fn print_top(top: &[(usize, String, f32)]) -> Result<()> {
    for (rank, (c, name, p)) in top.iter().enumerate() {
        let class = if *name == c.to_string() {
            String::new()
        } else {
            format!("(class {c})")
        };
        crate::outln!("  {}. {name:<24} {class:<11} {:6.2}%", rank + 1, 100.0 * p)?;
    }
    Ok(())
}

/// Classifies images with an ImageNet model: torchvision's preprocessing
/// for its weights, the 1,000 ImageNet class names.
fn predict_imagenet(
    loaded: &ModelWithWeights,
    pre: &super::imagenet::ImagenetPreprocess,
    top_k: usize,
    images: &[impl AsRef<Path>],
) -> Result<PredictReport> {
    let names = super::imagenet::imagenet_classes();
    crate::outln!(
        "images are prepared as torchvision's {} weights expect: {}",
        loaded.name,
        pre.describe()
    )?;
    let mut report = PredictReport::default();
    for path in images {
        let path = path.as_ref();
        let probs = super::imagenet::load_imagenet_image(path, pre).and_then(|x| {
            let logits = loaded.model.infer(&x)?;
            Ok(softmax(logits.as_slice()))
        });
        let probs = match probs {
            Ok(p) => p,
            Err(error) => {
                report.fail(path, error);
                continue;
            }
        };
        let top = top_classes(&probs, top_k, |c| names.get(c).map(|s| s.to_string()));
        report.record(path, &path.display().to_string(), top)?;
    }
    Ok(report)
}

/// The class probabilities of a prepared `side`×`side` image: its pixels
/// normalised with `mean` and `std`, through `model`, softmaxed.
pub fn classify_prepared(
    model: &dyn convnet_layers::Layer,
    image: &PreparedImage,
    side: usize,
    mean: f32,
    std: f32,
) -> Result<Vec<f32>> {
    let x: Vec<f32> = image.pixels.iter().map(|&p| (p - mean) / std).collect();
    let x = Tensor::from_vec(&[1, 1, side, side], x).map_err(|e| AppError::Usage(e.to_string()))?;
    let logits = model.infer(&x)?;
    Ok(softmax(logits.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_inverts_dark_on_light_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digit.png");
        // A 56x56 white image with a black vertical bar: ink on paper.
        let img = image::GrayImage::from_fn(56, 56, |x, _| {
            image::Luma([if (24..32).contains(&x) { 0 } else { 255 }])
        });
        img.save(&p).unwrap();
        let prep = prepare_image(&p, 28, Preprocess::WholeImage).unwrap();
        assert!(prep.inverted);
        assert_eq!(prep.pixels.len(), 784);
        assert_eq!(prep.original_size, (56, 56));
        // The bar is now bright, the background dark.
        assert!(prep.pixels[14 * 28 + 14] > 0.9);
        assert!(prep.pixels[14 * 28 + 2] < 0.1);
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        let e = prepare_image(&bad, 28, Preprocess::Digit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.png"), "{e}");
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1000.0, 0.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[2] && p[2] > p[1]);
    }
}
