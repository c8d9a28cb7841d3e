//! `convnet show samples`: a grid of dataset images, one row per class,
//! labelled as the lecture's figures are ("y = 4", "Veste / Coat").

use std::path::Path;

use convnet_datasets::{DatasetKind, ImageSource, Split};

use super::canvas::{grey, text_width, Anchor, Canvas};
use super::class_label;
use crate::app::data::load_split;
use crate::app::{AppError, Result};

/// What the samples picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplesOptions {
    /// Images per class (the first ones of the split, in file order).
    pub per_class: usize,
    /// The split they come from.
    pub split: Split,
    /// Screen pixels per image pixel.
    pub scale: u32,
}

impl Default for SamplesOptions {
    /// 8 test images per class, each pixel drawn 2×2.
    fn default() -> Self {
        SamplesOptions {
            per_class: 8,
            split: Split::Test,
            scale: 2,
        }
    }
}

/// The most images per class a picture shows.
pub const MAX_PER_CLASS: usize = 32;

/// Draws the first `per_class` images of each class of `kind`'s split to
/// the PNG `output`: one row per class, labelled with the label and the
/// class name (French and English for Fashion-MNIST, as the lecture's
/// figures). `dataset_dir` holds the dataset's four IDX files (what
/// [`convnet_datasets::find_dataset`] or [`crate::app::data::ensure_data`]
/// return); they are verified as for training.
pub fn dataset_samples(
    kind: DatasetKind,
    dataset_dir: &Path,
    options: &SamplesOptions,
    output: &Path,
) -> Result<()> {
    let n = options.per_class;
    if n == 0 || n > MAX_PER_CLASS {
        return Err(AppError::Usage(format!(
            "--per-class {n}: give 1 to {MAX_PER_CLASS} images per class"
        )));
    }
    if !(1..=8).contains(&options.scale) {
        return Err(AppError::Usage(format!(
            "scale {}: give 1 to 8 screen pixels per image pixel",
            options.scale
        )));
    }
    let data = load_split(kind, options.split, dataset_dir, None)?;
    let classes = data.class_names().len();
    // The first `n` images of each class, in file order.
    let mut chosen: Vec<Vec<usize>> = vec![Vec::new(); classes];
    let mut missing = classes;
    for i in 0..data.len() {
        let row = &mut chosen[data.label(i)];
        if row.len() < n {
            row.push(i);
            if row.len() == n {
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
    }

    let side = convnet_datasets::IMAGE_SIDE;
    let tile = side as u32 * options.scale;
    let gap = 4u32;
    let labels: Vec<String> = (0..classes)
        .map(|c| match class_label(kind, c) {
            name if name == c.to_string() => format!("y = {c}"),
            name => format!("y = {c}  {name}"),
        })
        .collect();
    let label_w = 16
        + labels
            .iter()
            .map(|l| text_width(l, 15.0))
            .max()
            .unwrap_or(0);
    let top = 44u32;
    let width = (label_w + n as u32 * (tile + gap) + 12).max(420);
    let height = top + classes as u32 * (tile + gap) + 8;
    let mut canvas = Canvas::new(output, width, height)?;
    canvas.text(
        &format!(
            "{}: the first {n} {} images of each class",
            kind.title(),
            options.split.name()
        ),
        (10, 10),
        18.0,
        Anchor::TopLeft,
    )?;
    for (class, indices) in chosen.iter().enumerate() {
        let y = top + class as u32 * (tile + gap);
        canvas.text(&labels[class], (10, y + tile / 2), 15.0, Anchor::MiddleLeft)?;
        for (k, &i) in indices.iter().enumerate() {
            let img = ImageSource::image(&data, i)?;
            let x = label_w + k as u32 * (tile + gap);
            canvas.tile((x, y), (img.width, img.height), options.scale, |p| {
                let v = img.pixels[p] as f32;
                grey(v, 0.0, 255.0)
            });
            canvas.frame(x, y, tile, tile);
        }
    }
    canvas.save()
}
