//! `convnet show features`: the feature maps of one image after every
//! convolution and pooling layer of a model, a row per layer.

use std::path::Path;

use convnet_datasets::{DatasetKind, ImageSource, Split};
use convnet_layers::Layer;
use convnet_tensor::Tensor;

use super::canvas::{grey, min_max, text_width, Anchor, Canvas};
use crate::app::data::{ensure_data, load_split};
use crate::app::eval::{load_with_weights, ModelWithWeights};
use crate::app::prepare::{prepare_image, Preprocess};
use crate::app::{AppError, Result};

/// The layer types whose outputs are drawn: convolutions and poolings.
pub const DRAWN_LAYERS: &[&str] = &["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"];

/// The output of one layer for one image.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    /// The layer's state-dict prefix (`conv1`, `features.3`).
    pub name: String,
    /// Its type (`Conv2d`, `MaxPool2d`).
    pub kind: &'static str,
    /// Its output, `[1, channels, height, width]`.
    pub output: Tensor,
}

/// Runs `model` on `input` (`[1, C, H, W]`, prepared as the model expects)
/// and keeps the output of every convolution and pooling layer
/// ([`DRAWN_LAYERS`]) it runs, in order ([`Layer::infer_traced`]: the
/// layers of nested `Sequential`s are seen one by one, a residual block as a
/// whole).
pub fn feature_maps(model: &dyn Layer, input: &Tensor) -> Result<Vec<FeatureMap>> {
    let mut maps = Vec::new();
    model.infer_traced("", input, &mut |name, kind, out| {
        if DRAWN_LAYERS.contains(&kind) && out.ndim() == 4 {
            maps.push(FeatureMap {
                name: name.to_string(),
                kind,
                output: out.clone(),
            });
        }
    })?;
    Ok(maps)
}

/// Draws `input` (`[1, C, H, W]`) and the feature `maps` to the PNG
/// `output`: a row per layer labelled with its name, type and shape, at most
/// `max_channels` maps per row, each map normalised to its own range (black
/// to white). A 3-channel input is drawn in colour.
pub fn feature_maps_picture(
    input: &Tensor,
    maps: &[FeatureMap],
    title: &str,
    max_channels: usize,
    output: &Path,
) -> Result<()> {
    if max_channels == 0 {
        return Err(AppError::Usage("--channels must be >= 1".into()));
    }
    let mut rows: Vec<(String, String, &Tensor)> = vec![("input".into(), String::new(), input)];
    for m in maps {
        rows.push((m.name.clone(), m.kind.to_string(), &m.output));
    }
    struct Row<'a> {
        lines: [String; 3],
        t: &'a Tensor,
        dims: [usize; 4],
        scale: u32,
        shown: usize,
        /// An RGB input, drawn as one colour tile.
        colour: bool,
    }
    let mut laid = Vec::new();
    for (i, (name, kind, t)) in rows.into_iter().enumerate() {
        let dims = t
            .dims4("feature maps")
            .map_err(|e| AppError::Usage(format!("{name}: {e}")))?;
        let [_, c, h, w] = dims;
        let colour = i == 0 && c == 3;
        let shown = if colour { 1 } else { c.min(max_channels) };
        let scale = ((56.0 / h.max(w).max(1) as f64).round() as u32).clamp(1, 12);
        let more = if shown < c && !colour {
            format!(" ({shown} shown)")
        } else {
            String::new()
        };
        laid.push(Row {
            lines: [name, kind, format!("{c}x{h}x{w}{more}")],
            t,
            dims,
            scale,
            shown,
            colour,
        });
    }
    let gap = 4u32;
    let label_w = 20
        + laid
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| text_width(l, 13.0)))
            .max()
            .unwrap_or(0);
    let row_h = |r: &Row| (r.dims[2] as u32 * r.scale).max(48) + 2 * gap;
    let row_w = |r: &Row| r.shown as u32 * (r.dims[3] as u32 * r.scale + gap);
    let top = 44u32;
    let width = (label_w + laid.iter().map(row_w).max().unwrap_or(0) + 12)
        .max(text_width(title, 18.0) + 24);
    let height = top + laid.iter().map(row_h).sum::<u32>() + 8;
    let mut canvas = Canvas::new(output, width, height)?;
    canvas.text(title, (10, 10), 18.0, Anchor::TopLeft)?;
    let mut y = top;
    for r in &laid {
        let [_, _, h, w] = r.dims;
        for (k, line) in r.lines.iter().enumerate() {
            canvas.text(line, (10, y + 2 + 15 * k as u32), 13.0, Anchor::TopLeft)?;
        }
        let data = r.t.as_slice();
        let plane = h * w;
        let (tw, th) = (w as u32 * r.scale, h as u32 * r.scale);
        for ch in 0..r.shown {
            let x = label_w + ch as u32 * (tw + gap);
            if r.colour {
                let (lo, hi) = min_max(data);
                canvas.tile((x, y), (w, h), r.scale, |p| {
                    let g = |k: usize| grey(data[k * plane + p], lo, hi)[0];
                    [g(0), g(1), g(2)]
                });
            } else {
                let map = &data[ch * plane..(ch + 1) * plane];
                let (lo, hi) = min_max(map);
                canvas.tile((x, y), (w, h), r.scale, |p| grey(map[p], lo, hi));
            }
            canvas.frame(x, y, tw, th);
        }
        y += row_h(r);
    }
    canvas.save()
}

/// The image whose feature maps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureInput<'a> {
    /// A PNG or JPEG file, prepared as `convnet predict` prepares it.
    Image(&'a Path),
    /// Image `N` of the test split of the checkpoint's dataset (MNIST or
    /// Fashion-MNIST).
    Index(usize),
}

/// Where `convnet show features` finds its model and data.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeaturesOptions<'a> {
    /// The zoo model of a PyTorch or safetensors file (a convnet checkpoint
    /// names its own).
    pub model: Option<&'a str>,
    /// The dataset of `--index` and of the preparation of a greyscale
    /// image (default: the checkpoint's).
    pub dataset: Option<DatasetKind>,
    /// The data folder (as `convnet train --data-dir`).
    pub data_dir: Option<&'a Path>,
    /// Never download the dataset.
    pub offline: bool,
    /// Maps drawn per layer; 0 means [`DEFAULT_CHANNELS`].
    pub max_channels: usize,
}

/// Maps drawn per layer unless told otherwise.
pub const DEFAULT_CHANNELS: usize = 8;

/// The model's input for `input` (`[1, C, H, W]`) and a few words saying
/// which image it is.
fn model_input(
    loaded: &ModelWithWeights,
    input: FeatureInput<'_>,
    opts: &FeaturesOptions<'_>,
) -> Result<(Tensor, String)> {
    let cfg = &loaded.config;
    let (c, side) = (cfg.in_channels, cfg.image_size);
    let imagenet = crate::app::imagenet::imagenet_preprocess(loaded.name.trim_end_matches("_aux"))
        .filter(|_| c == 3 && cfg.num_classes == 1000);
    let pipeline = loaded.eval_pipeline()?;
    let index_needs_idx = || {
        AppError::Usage(format!(
            "--index reads MNIST and Fashion-MNIST test images, and `{}` takes {c}x{side}x{side} \
             inputs: give an image file with --image",
            loaded.name
        ))
    };
    if let Some(p) = imagenet {
        let FeatureInput::Image(path) = input else {
            return Err(index_needs_idx());
        };
        let x = crate::app::imagenet::load_imagenet_image(path, &p)?;
        return Ok((x, path.display().to_string()));
    }
    if let Some(mut pipeline) = pipeline {
        let FeatureInput::Image(path) = input else {
            return Err(index_needs_idx());
        };
        if pipeline.output_size().is_none() {
            pipeline.transforms.insert(
                0,
                convnet_datasets::Transform::Resize(convnet_datasets::ResizeTo::Exact {
                    height: side,
                    width: side,
                }),
            );
        }
        let img = crate::app::prepare::decode_image(path)?;
        let raw = convnet_datasets::RawImage::from_dynamic(&img, c)?;
        let (values, shape) = pipeline.apply(&raw, &mut convnet_tensor::Rng::seed_from(0))?;
        let x = Tensor::from_vec(&[1, shape[0], shape[1], shape[2]], values)
            .map_err(|e| AppError::Usage(format!("{}: {e}", path.display())))?;
        return Ok((x, path.display().to_string()));
    }
    if c != 1 {
        return Err(AppError::Usage(format!(
            "`{}` takes {c}-channel inputs but the file does not say how its images are \
             prepared (a checkpoint written by `convnet train` does)",
            loaded.name
        )));
    }
    let kind = opts.dataset.or(loaded.dataset);
    let (pixels, what) = match input {
        FeatureInput::Image(path) => {
            let prepared = prepare_image(path, side as u32, Preprocess::for_dataset(kind))?;
            (prepared.pixels, path.display().to_string())
        }
        FeatureInput::Index(i) => {
            let kind = kind.ok_or_else(|| {
                AppError::Usage(
                    "the checkpoint does not say which dataset it was trained on: pass --dataset"
                        .into(),
                )
            })?;
            if side != convnet_datasets::IMAGE_SIDE {
                return Err(index_needs_idx());
            }
            let dir = ensure_data(kind, opts.data_dir, opts.offline)?;
            let test = load_split(kind, Split::Test, &dir, None)?;
            if i >= test.len() {
                return Err(AppError::Usage(format!(
                    "--index {i}: the {} test set has {} images (0 to {})",
                    kind.title(),
                    test.len(),
                    test.len() - 1
                )));
            }
            let img = ImageSource::image(&test, i)?;
            let label = test.label(i);
            let pixels = img.pixels.iter().map(|&b| b as f32 / 255.0).collect();
            (
                pixels,
                format!(
                    "{} test image {i} ({})",
                    kind.title(),
                    super::class_label(kind, label)
                ),
            )
        }
    };
    let (mean, std) = loaded.grey_mean_std(kind);
    let values = pixels.iter().map(|v| (v - mean) / std).collect();
    let x = Tensor::from_vec(&[1, 1, side, side], values)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    Ok((x, what))
}

/// `convnet show features`: draws the feature maps of `input` through the
/// model of `checkpoint` to the PNG `output` ([`feature_maps`],
/// [`feature_maps_picture`]); returns the names of the layers drawn.
pub fn show_features(
    checkpoint: &Path,
    input: FeatureInput<'_>,
    opts: &FeaturesOptions<'_>,
    output: &Path,
) -> Result<Vec<String>> {
    let mut inputs = vec![checkpoint];
    if let FeatureInput::Image(p) = input {
        inputs.push(p);
    }
    convnet_train::fsutil::check_output(output, &inputs)?;
    let loaded = load_with_weights(opts.model, checkpoint)?;
    let (x, what) = model_input(&loaded, input, opts)?;
    let maps = feature_maps(&*loaded.model, &x)?;
    if maps.is_empty() {
        return Err(AppError::Usage(format!(
            "`{}` runs no convolution or pooling layer that can be shown one by one",
            loaded.name
        )));
    }
    let channels = if opts.max_channels == 0 {
        DEFAULT_CHANNELS
    } else {
        opts.max_channels
    };
    let title = format!("Feature maps of {} for {what}", loaded.name);
    feature_maps_picture(&x, &maps, &title, channels, output)?;
    Ok(maps.into_iter().map(|m| m.name).collect())
}
