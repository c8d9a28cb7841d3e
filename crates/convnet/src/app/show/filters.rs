//! `convnet show filters`: the learned filters of a convolution, one tile
//! per output channel, each normalised to its own range.

use std::path::Path;

use convnet_layers::{join, Layer};
use convnet_tensor::Tensor;

use super::canvas::{grey, min_max, text_width, Anchor, Canvas};
use crate::app::eval::load_with_weights;
use crate::app::{AppError, Result};

/// The most filters (output channels) a picture shows.
pub const MAX_FILTERS: usize = 64;

/// The most input channels a picture shows per filter.
pub const MAX_INPUT_CHANNELS: usize = 16;

/// The convolutions of `model` in visiting order: their state-dict prefix
/// (`conv1`, `features.0`) and weight `[out_channels, in_channels / groups,
/// kernel_height, kernel_width]`.
pub fn conv_layers(model: &dyn Layer) -> Vec<(String, Tensor)> {
    fn walk(layer: &dyn Layer, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        if layer.type_name() == "Conv2d" {
            let key = join(prefix, "weight");
            layer.visit_params(prefix, &mut |name, p| {
                if name == key && p.value.ndim() == 4 {
                    out.push((prefix.to_string(), p.value.clone()));
                }
            });
            return;
        }
        layer.visit_children(&mut |name, child| walk(child, &join(prefix, name), out));
    }
    let mut out = Vec::new();
    walk(model, "", &mut out);
    out
}

/// The weight of the convolution named `layer` in `model` (default: the
/// first one); an unknown name, or one that is not a convolution, is an
/// error listing the convolutions.
pub fn conv_weight(model: &dyn Layer, layer: Option<&str>) -> Result<(String, Tensor)> {
    let convs = conv_layers(model);
    let list = || {
        convs
            .iter()
            .map(|(n, w)| format!("{n} {:?}", w.shape()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if convs.is_empty() {
        return Err(AppError::Usage(format!(
            "the model ({}) has no convolution",
            model.type_name()
        )));
    }
    match layer {
        None => Ok(convs[0].clone()),
        Some(name) => convs
            .iter()
            .find(|(n, _)| n == name)
            .cloned()
            .ok_or_else(|| {
                AppError::Usage(format!(
                    "--layer {name}: not a convolution of the model; its convolutions are: {}",
                    list()
                ))
            }),
    }
}

/// Draws the filters `weight` (`[out, in, kh, kw]`) of the layer `name` to
/// the PNG `output`, under the title `title`:
///
/// - one input channel (or a depthwise convolution): a grey tile per filter;
/// - three input channels: a colour tile per filter (the channels as red,
///   green, blue);
/// - otherwise a row per filter and a column per input channel (the first
///   [`MAX_INPUT_CHANNELS`]).
///
/// Each filter is normalised to its own minimum (black) and maximum
/// (white); at most [`MAX_FILTERS`] filters are drawn.
pub fn filters_picture(name: &str, weight: &Tensor, title: &str, output: &Path) -> Result<()> {
    let [out_c, in_c, kh, kw] = weight
        .dims4("filters")
        .map_err(|e| AppError::Usage(format!("{name}: {e}")))?;
    if out_c == 0 || in_c == 0 || kh == 0 || kw == 0 {
        return Err(AppError::Usage(format!(
            "{name}: an empty weight {:?}",
            weight.shape()
        )));
    }
    let shown = out_c.min(MAX_FILTERS);
    let per_filter = in_c * kh * kw;
    let w = weight.as_slice();
    let filter = |o: usize| &w[o * per_filter..(o + 1) * per_filter];
    // Few filters (a first layer) are drawn larger.
    let target = if shown <= 16 && (in_c == 1 || in_c == 3) {
        80
    } else {
        48
    };
    let scale = (target / kh.max(kw)).clamp(1, 16) as u32;
    let (tw, th) = (kw as u32 * scale, kh as u32 * scale);
    let gap = 6u32;
    let top = 64u32;
    let note = format!(
        "{name}: weight {:?}{}; each filter from its minimum (black) to its maximum (white)",
        weight.shape(),
        if shown < out_c {
            format!(", the first {shown} of {out_c} filters")
        } else {
            String::new()
        }
    );
    let min_width = text_width(title, 18.0).max(text_width(&note, 13.0)) + 24;
    if in_c == 1 || in_c == 3 {
        // A grid of tiles, one per filter, numbered.
        let cols = (shown as f64).sqrt().ceil().max(1.0) as usize;
        let cols = cols.max(shown.min(8));
        let rows = shown.div_ceil(cols);
        let cell_h = th + gap + 16;
        let width = (20 + cols as u32 * (tw + gap)).max(min_width);
        let height = top + rows as u32 * cell_h + 8;
        let mut canvas = Canvas::new(output, width, height)?;
        canvas.text(title, (10, 10), 18.0, Anchor::TopLeft)?;
        canvas.text(&note, (10, 36), 13.0, Anchor::TopLeft)?;
        for o in 0..shown {
            let (r, c) = (o / cols, o % cols);
            let (x, y) = (12 + c as u32 * (tw + gap), top + r as u32 * cell_h);
            let f = filter(o);
            let (lo, hi) = min_max(f);
            let plane = kh * kw;
            canvas.tile((x, y), (kw, kh), scale, |p| {
                if in_c == 3 {
                    let ch = |k: usize| grey(f[k * plane + p], lo, hi)[0];
                    [ch(0), ch(1), ch(2)]
                } else {
                    grey(f[p], lo, hi)
                }
            });
            canvas.frame(x, y, tw, th);
            canvas.text(
                &o.to_string(),
                (x + tw / 2, y + th + 2),
                11.0,
                Anchor::TopCenter,
            )?;
        }
        return canvas.save();
    }
    // A row per filter, a column per input channel.
    let cols = in_c.min(MAX_INPUT_CHANNELS);
    let label_w = 64u32;
    let head = top + 16;
    let width = (label_w + cols as u32 * (tw + gap) + 12).max(min_width);
    let height = head + shown as u32 * (th + gap) + 8;
    let mut canvas = Canvas::new(output, width, height)?;
    canvas.text(title, (10, 10), 18.0, Anchor::TopLeft)?;
    canvas.text(&note, (10, 36), 13.0, Anchor::TopLeft)?;
    canvas.text("out \\ in", (10, top - 4), 11.0, Anchor::TopLeft)?;
    for i in 0..cols {
        let x = label_w + i as u32 * (tw + gap);
        canvas.text(
            &i.to_string(),
            (x + tw / 2, top - 4),
            11.0,
            Anchor::TopCenter,
        )?;
    }
    for o in 0..shown {
        let y = head + o as u32 * (th + gap);
        let f = filter(o);
        let (lo, hi) = min_max(f);
        canvas.text(&o.to_string(), (12, y + th / 2), 11.0, Anchor::MiddleLeft)?;
        for i in 0..cols {
            let x = label_w + i as u32 * (tw + gap);
            let plane = &f[i * kh * kw..(i + 1) * kh * kw];
            canvas.tile((x, y), (kw, kh), scale, |p| grey(plane[p], lo, hi));
            canvas.frame(x, y, tw, th);
        }
    }
    canvas.save()
}

/// `convnet show filters`: the filters of the convolution `layer` (default:
/// the first) of the model in `checkpoint` (a convnet checkpoint; with
/// `model`, also a PyTorch or safetensors file of that zoo model), drawn to
/// the PNG `output` ([`filters_picture`]). Returns the layer's name.
pub fn show_filters(
    checkpoint: &Path,
    model: Option<&str>,
    layer: Option<&str>,
    output: &Path,
) -> Result<String> {
    convnet_train::fsutil::check_output(output, &[checkpoint])?;
    let loaded = load_with_weights(model, checkpoint)?;
    let (name, weight) = conv_weight(&*loaded.model, layer)?;
    let epoch = loaded
        .epoch
        .map(|e| format!(", epoch {e}"))
        .unwrap_or_default();
    let title = format!("Filters of {} `{name}`{epoch}", loaded.name);
    filters_picture(&name, &weight, &title, output)?;
    Ok(name)
}
