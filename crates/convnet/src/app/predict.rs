//! `convnet predict`: classify image files with a trained checkpoint.

use std::path::Path;

use convnet_datasets::DatasetKind;
use convnet_tensor::Tensor;

use super::eval::{checkpoint_dataset, load_model};
use super::imagenet;
use super::{AppError, Result};

/// An image prepared for a 28×28 greyscale model, and what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedImage {
    /// `side * side` pixels in [0, 1], light strokes on a dark background.
    pub pixels: Vec<f32>,
    /// The original width and height.
    pub original_size: (u32, u32),
    /// `true` if the image was inverted (it had a light background).
    pub inverted: bool,
}

/// Converts any PNG/JPEG image to what MNIST-style models expect: greyscale,
/// resized to `side`×`side`, light strokes on a dark background (an image
/// whose border is mostly light, like ink on paper, is inverted).
pub fn prepare_image(path: &Path, side: u32) -> Result<PreparedImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| AppError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| AppError::io(path, e))?
        .decode()
        .map_err(|e| AppError::Image {
            path: path.to_path_buf(),
            msg: format!("cannot decode the image (PNG and JPEG are supported): {e}"),
        })?;
    let original_size = (img.width(), img.height());
    let grey = img.to_luma8();
    let small = image::imageops::resize(&grey, side, side, image::imageops::FilterType::Triangle);
    let mut pixels: Vec<f32> = small.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    // The border's mean brightness tells the background.
    let s = side as usize;
    let border: Vec<f32> = (0..s)
        .flat_map(|i| {
            [
                pixels[i],
                pixels[(s - 1) * s + i],
                pixels[i * s],
                pixels[i * s + s - 1],
            ]
        })
        .collect();
    let inverted = border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    if inverted {
        for p in &mut pixels {
            *p = 1.0 - *p;
        }
    }
    Ok(PreparedImage {
        pixels,
        original_size,
        inverted,
    })
}

/// The predictions for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
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

/// Classifies each image with the checkpoint's model and prints the `top_k`
/// classes with their probabilities.
pub fn run_predict(
    checkpoint: &Path,
    images: &[impl AsRef<Path>],
    top_k: usize,
) -> Result<Vec<Prediction>> {
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
    let names = &loaded.checkpoint.header.class_names;
    let (mean, std) = kind.map(DatasetKind::mean_std).unwrap_or((0.0, 1.0));
    println!(
        "images are converted to {0}x{0} greyscale as {1} expects (light strokes on a dark \
         background), then normalised with mean {mean} and std {std}",
        cfg.image_size,
        kind.map(|k| k.title()).unwrap_or("the model")
    );
    let mut out = Vec::new();
    for path in images {
        let path = path.as_ref();
        let image = prepare_image(path, cfg.image_size as u32)?;
        let x: Vec<f32> = image.pixels.iter().map(|&p| (p - mean) / std).collect();
        let x = Tensor::from_vec(&[1, 1, cfg.image_size, cfg.image_size], x)
            .map_err(|e| AppError::Usage(e.to_string()))?;
        let logits = loaded.model.infer(&x)?;
        let probs = softmax(logits.as_slice());
        let top: Vec<(usize, String, f32)> = imagenet::top_k(&probs, top_k.max(1))
            .into_iter()
            .map(|(c, p)| (c, names.get(c).cloned().unwrap_or_else(|| c.to_string()), p))
            .collect();
        let (w, h) = image.original_size;
        println!(
            "{} ({w}x{h}{}):",
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
        out.push(Prediction { top, image });
    }
    Ok(out)
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
        let prep = prepare_image(&p, 28).unwrap();
        assert!(prep.inverted);
        assert_eq!(prep.pixels.len(), 784);
        assert_eq!(prep.original_size, (56, 56));
        // The bar is now bright, the background dark.
        assert!(prep.pixels[14 * 28 + 14] > 0.9);
        assert!(prep.pixels[14 * 28 + 2] < 0.1);
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        let e = prepare_image(&bad, 28).unwrap_err().to_string();
        assert!(e.contains("bad.png"), "{e}");
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1000.0, 0.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[2] && p[2] > p[1]);
    }
}
