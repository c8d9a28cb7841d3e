//! `convnet show mistakes`: the test images a model gets most wrong, each
//! with its true and predicted class.

use std::path::Path;

use convnet_datasets::{Dataset, DatasetKind, ImageSource, Split};
use convnet_layers::Layer;
use convnet_tensor::Tensor;

use super::canvas::{grey, text_width, Anchor, Canvas};
use super::class_label;
use crate::app::data::{ensure_data, load_split};
use crate::app::eval::load_with_weights;
use crate::app::predict::softmax;
use crate::app::{AppError, Result};

/// A test image the model classifies wrongly.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    /// Its index in the test split.
    pub index: usize,
    /// Its true class.
    pub label: usize,
    /// The class the model predicts.
    pub predicted: usize,
    /// The probability the model gives its prediction.
    pub predicted_probability: f32,
    /// The probability the model gives the true class.
    pub true_probability: f32,
}

impl Mistake {
    /// The cross-entropy of the image, `-ln p(true class)`: the ranking key.
    pub fn loss(&self) -> f32 {
        -self.true_probability.max(f32::MIN_POSITIVE).ln()
    }
}

/// The images per batch of the search.
const BATCH: usize = 250;

/// Runs `model` on every image of `test` (normalised with `mean` and `std`)
/// and returns the `count` misclassified images with the highest loss
/// (lowest probability of the true class), worst first.
pub fn find_mistakes(
    model: &dyn Layer,
    test: &Dataset,
    (mean, std): (f32, f32),
    count: usize,
) -> Result<Vec<Mistake>> {
    let images = test.images();
    let per_image = convnet_datasets::IMAGE_SIDE * convnet_datasets::IMAGE_SIDE;
    let side = convnet_datasets::IMAGE_SIDE;
    let mut found = Vec::new();
    for start in (0..test.len()).step_by(BATCH) {
        let end = (start + BATCH).min(test.len());
        let pixels = &images.as_slice()[start * per_image..end * per_image];
        let x = Tensor::from_vec(
            &[end - start, 1, side, side],
            pixels.iter().map(|v| (v - mean) / std).collect(),
        )
        .map_err(|e| AppError::Usage(e.to_string()))?;
        let logits = model.infer(&x)?;
        let classes = logits.shape().get(1).copied().unwrap_or(0);
        if logits.ndim() != 2 || classes < 2 {
            return Err(AppError::Usage(format!(
                "the model outputs {:?}, not [N, classes]",
                logits.shape()
            )));
        }
        for (row, logit) in logits.as_slice().chunks(classes).enumerate() {
            let index = start + row;
            let label = test.label(index);
            let probs = softmax(logit);
            let (predicted, &p) = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("at least two classes");
            if predicted != label {
                found.push(Mistake {
                    index,
                    label,
                    predicted,
                    predicted_probability: p,
                    true_probability: probs.get(label).copied().unwrap_or(0.0),
                });
            }
        }
    }
    // Worst first; ties by index, so the picture does not depend on the sort.
    found.sort_by(|a, b| {
        a.true_probability
            .total_cmp(&b.true_probability)
            .then(a.index.cmp(&b.index))
    });
    found.truncate(count);
    Ok(found)
}

/// Draws `mistakes` (images of `test`) to the PNG `output`: a grid of
/// images, each labelled with its index, its true class, the predicted class
/// and the predicted probability.
pub fn mistakes_picture(
    test: &Dataset,
    kind: DatasetKind,
    mistakes: &[Mistake],
    title: &str,
    output: &Path,
) -> Result<()> {
    let scale = 3u32;
    let tile = convnet_datasets::IMAGE_SIDE as u32 * scale;
    let lines = |m: &Mistake| {
        [
            format!("#{}", m.index),
            format!("true: {}", class_label(kind, m.label)),
            format!("pred: {}", class_label(kind, m.predicted)),
            format!(
                "p = {:.1}% (true {:.1}%)",
                100.0 * m.predicted_probability,
                100.0 * m.true_probability
            ),
        ]
    };
    let cell_w = mistakes
        .iter()
        .flat_map(|m| lines(m).map(|l| text_width(&l, 11.0)))
        .max()
        .unwrap_or(0)
        .max(tile)
        + 14;
    let cell_h = tile + 4 * 14 + 12;
    let cols = mistakes.len().clamp(1, 6);
    let rows = mistakes.len().div_ceil(cols).max(1);
    let top = 44u32;
    let width = (cols as u32 * cell_w + 16).max(text_width(title, 18.0) + 24);
    let height = top + rows as u32 * cell_h + 8;
    let mut canvas = Canvas::new(output, width, height)?;
    canvas.text(title, (10, 10), 18.0, Anchor::TopLeft)?;
    if mistakes.is_empty() {
        canvas.text(
            "no mistake: every image is classified correctly",
            (10, top + 10),
            14.0,
            Anchor::TopLeft,
        )?;
    }
    for (k, m) in mistakes.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        let (x, y) = (12 + c as u32 * cell_w, top + r as u32 * cell_h);
        let img = ImageSource::image(test, m.index)?;
        canvas.tile((x, y), (img.width, img.height), scale, |p| {
            grey(img.pixels[p] as f32, 0.0, 255.0)
        });
        canvas.frame(x, y, tile, tile);
        for (i, line) in lines(m).iter().enumerate() {
            let color = match i {
                1 => [0, 110, 0],
                2 => [190, 0, 0],
                _ => [0, 0, 0],
            };
            canvas.colored_text(
                line,
                (x, y + tile + 4 + 14 * i as u32),
                11.0,
                Anchor::TopLeft,
                color,
            )?;
        }
    }
    canvas.save()
}

/// What `convnet show mistakes` is asked.
#[derive(Debug, Clone, Copy)]
pub struct MistakesOptions<'a> {
    /// The zoo model of a PyTorch or safetensors file (a convnet checkpoint
    /// names its own).
    pub model: Option<&'a str>,
    /// The dataset (default: the checkpoint's).
    pub dataset: Option<DatasetKind>,
    /// The data folder (as `convnet train --data-dir`).
    pub data_dir: Option<&'a Path>,
    /// Never download the dataset.
    pub offline: bool,
    /// How many mistakes to draw.
    pub count: usize,
    /// Search only the first `limit` test images.
    pub limit: Option<usize>,
}

/// The most mistakes a picture shows.
pub const MAX_COUNT: usize = 60;

/// `convnet show mistakes`: finds the `count` test images the model of
/// `checkpoint` gets most wrong ([`find_mistakes`]) and draws them to the
/// PNG `output` ([`mistakes_picture`]). Returns them, worst first.
pub fn show_mistakes(
    checkpoint: &Path,
    opts: &MistakesOptions<'_>,
    output: &Path,
) -> Result<Vec<Mistake>> {
    if opts.count == 0 || opts.count > MAX_COUNT {
        return Err(AppError::Usage(format!(
            "--count {}: give 1 to {MAX_COUNT} images",
            opts.count
        )));
    }
    convnet_train::fsutil::check_output(output, &[checkpoint])?;
    let loaded = load_with_weights(opts.model, checkpoint)?;
    let kind = opts.dataset.or(loaded.dataset).ok_or_else(|| {
        AppError::Usage(format!(
            "{} does not say which dataset it was trained on: pass --dataset",
            checkpoint.display()
        ))
    })?;
    let cfg = &loaded.config;
    if cfg.in_channels != 1 || cfg.image_size != convnet_datasets::IMAGE_SIDE {
        return Err(AppError::Usage(format!(
            "`{}` takes {}x{}x{} inputs: the mistakes are searched in MNIST and Fashion-MNIST \
             (1x28x28)",
            loaded.name, cfg.in_channels, cfg.image_size, cfg.image_size
        )));
    }
    let dir = ensure_data(kind, opts.data_dir, opts.offline)?;
    let test = load_split(kind, Split::Test, &dir, opts.limit)?;
    let mean_std = loaded.grey_mean_std(Some(kind));
    let mistakes = find_mistakes(&*loaded.model, &test, mean_std, opts.count)?;
    let title = format!(
        "The {} test images {} gets most wrong (of {})",
        mistakes.len(),
        loaded.name,
        test.len()
    );
    mistakes_picture(&test, kind, &mistakes, &title, output)?;
    Ok(mistakes)
}
