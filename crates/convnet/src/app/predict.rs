//! `convnet predict`: classify image files with a trained checkpoint.

use std::path::{Path, PathBuf};

use convnet_datasets::DatasetKind;
use convnet_tensor::Tensor;

use super::eval::{checkpoint_dataset, load_model};
pub use super::prepare::{prepare_image, InkBox, PreparedImage, Preprocess};
use super::{AppError, Result};

/// The predictions for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image file.
    pub path: PathBuf,
    /// The top classes, most probable first: (class index, name, probability).
    pub top: Vec<(usize, String, f32)>,
    /// How the image was prepared.
    pub image: PreparedImage,
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
    if images.is_empty() {
        return Err(AppError::Usage("give at least one image file".into()));
    }
    let loaded = load_model(checkpoint)?;
    let cfg = &loaded.config;
    if cfg.in_channels != 1 {
        return Err(AppError::Usage(format!(
            "`{}` expects {} input channels; predict handles greyscale (1-channel) models",
            loaded.checkpoint.header.model, cfg.in_channels
        )));
    }
    let kind = checkpoint_dataset(&loaded.checkpoint);
    let preprocess = Preprocess::for_dataset(kind);
    let names = &loaded.checkpoint.header.class_names;
    let (mean, std) = kind.map(DatasetKind::mean_std).unwrap_or((0.0, 1.0));
    println!(
        "images are prepared as {} expects: {} (light strokes on a dark background), then \
         normalised with mean {mean} and std {std}",
        kind.map(|k| k.title()).unwrap_or("the model"),
        preprocess.describe(cfg.image_size),
    );
    let mut report = PredictReport::default();
    for path in images {
        let path = path.as_ref();
        let image = match prepare_image(path, cfg.image_size as u32, preprocess) {
            Ok(image) => image,
            Err(error) => {
                eprintln!("error: {error}");
                report.failures.push(PredictFailure {
                    path: path.to_path_buf(),
                    error,
                });
                continue;
            }
        };
        let probs = match classify_prepared(&*loaded.model, &image, cfg.image_size, mean, std) {
            Ok(probs) => probs,
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                report.failures.push(PredictFailure {
                    path: path.to_path_buf(),
                    error,
                });
                continue;
            }
        };
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top: Vec<(usize, String, f32)> = order
            .into_iter()
            .take(top_k.max(1))
            .map(|c| {
                (
                    c,
                    names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    probs[c],
                )
            })
            .collect();
        let (w, h) = image.original_size;
        let ink = image
            .ink_box
            .map(|b| format!(", ink {}x{} at ({}, {})", b.width, b.height, b.x, b.y))
            .unwrap_or_default();
        println!(
            "{} ({w}x{h}{}{ink}):",
            path.display(),
            if image.inverted { ", inverted" } else { "" }
        );
        for (rank, (c, name, p)) in top.iter().enumerate() {
            let class = if *name == c.to_string() {
                String::new()
            } else {
                format!("(class {c})")
            };
            println!("  {}. {name:<12} {class:<10} {:6.2}%", rank + 1, 100.0 * p);
        }
        report.predictions.push(Prediction {
            path: path.to_path_buf(),
            top,
            image,
        });
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
