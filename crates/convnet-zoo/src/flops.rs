//! The arithmetic cost of a model: multiply-adds (MACs) and FLOPs of one
//! forward pass, counted from its summary.
//!
//! **What is counted**: the multiply-adds of the weights of every `Conv2d`
//! and `Linear` layer, `weight elements × output positions` (a convolution
//! with weight `[C_out, C_in/groups, KH, KW]` and output `[N, C_out, OH, OW]`
//! does `C_out · C_in/groups · KH · KW · N · OH · OW`; a linear layer with
//! weight `[out, in]` and output `[N, ..., out]` does `out · in` per output
//! row). A `MultiheadAttention` layer on `[N, T, D]` tokens does its
//! projections' weights (`in_proj_weight`, `out_proj.weight`) per token plus
//! the two `T × T` products `QKᵀ` and `A·V`: `N · (T · 4D² + 2 · T² · D)`.
//! A `ShiftedWindowAttention` layer (Swin) on `[N, H, W, C]` does, per
//! token of the map padded to whole windows of `T` tokens, its projections
//! (`qkv.weight`, `proj.weight`: `4C²`) and its share of the two window
//! products (`2·T·C`); a `PatchMerging` layer does its `reduction.weight`
//! per output pixel.
//! Biases, normalisation, activations, softmax, pooling and additions are
//! left out: they are a fraction of a percent of the work. This is the
//! convention of fvcore, which computed the "GFLOPS" column of torchvision's
//! model tables (those figures are MACs: ResNet-50's 4.09 is
//! [`macs`] / 10⁹ here). [`flops`] is twice [`macs`] (one multiply and one
//! add), the FLOPs of `cargo xtask bench`'s throughput figures.
//!
//! The count walks [`convnet_layers::summary()`] rows, so it sees inside every
//! container that reports its children, and reads each layer's weight shape
//! through its parameter names (`<row name>.weight`; for attention, every
//! matrix under `<row name>.`). A layer whose weight cannot be found that
//! way (a custom container naming its children differently) is counted with
//! all its parameters, bias included.

use convnet_layers::{join, summary, Layer, Result};
use convnet_tensor::numel;

/// Multiply-adds of one forward pass of `model` on an input of shape
/// `input_shape` (batch axis included), counting `Conv2d` and `Linear`
/// weights only (see the module docs), or the error the model gives for
/// that input.
///
/// ```
/// use convnet_layers::{Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, Sequential};
/// use convnet_tensor::Rng;
/// use convnet_zoo::flops::{flops, macs};
///
/// let mut rng = Rng::seed_from(0);
/// let net = Sequential::default()
///     .with(Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng)?) // 6·25 per pixel
///     .with(Flatten::new())
///     .with(Linear::new(LinearConfig::new(6 * 28 * 28, 10), &mut rng)?);
/// let expected = 6 * 25 * 28 * 28 + 6 * 28 * 28 * 10;
/// assert_eq!(macs(&net, &[1, 1, 28, 28])?, expected);
/// assert_eq!(macs(&net, &[4, 1, 28, 28])?, 4 * expected);
/// assert_eq!(flops(&net, &[1, 1, 28, 28])?, 2 * expected);
///
/// // Self-attention over 5 tokens of width 8: 4·8² per token, 2·5²·8 per image.
/// use convnet_layers::{MultiheadAttention, MultiheadAttentionConfig};
/// let attn = MultiheadAttention::new(MultiheadAttentionConfig::new(8, 2), &mut rng)?;
/// assert_eq!(macs(&attn, &[3, 5, 8])?, 3 * (5 * 4 * 64 + 2 * 25 * 8));
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
pub fn macs(model: &dyn Layer, input_shape: &[usize]) -> Result<u64> {
    let s = summary(model, input_shape)?;
    let weights = model.param_shapes();
    let weight_len = |row_name: &str| -> Option<usize> {
        let key = if row_name.is_empty() {
            "weight".to_string()
        } else {
            format!("{row_name}.weight")
        };
        weights
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, shape)| numel(shape))
    };
    // Matrices (two axes or more) under a layer's prefix: its weights.
    let matrices_under = |row_name: &str| -> usize {
        let prefix = format!("{row_name}.");
        weights
            .iter()
            .filter(|(k, shape)| {
                shape.len() >= 2 && (row_name.is_empty() || k.starts_with(&prefix))
            })
            .map(|(_, shape)| numel(shape))
            .sum()
    };
    let mut buffers: Vec<(String, usize)> = Vec::new();
    model.visit_buffers("", &mut |k, b| buffers.push((k.to_string(), b.len())));
    let mut total = 0u64;
    for row in s.rows.iter().filter(|r| r.leaf) {
        if row.type_name == "ShiftedWindowAttention" && row.output_shape.len() == 4 {
            let [n, h, w, c] = [
                row.output_shape[0],
                row.output_shape[1],
                row.output_shape[2],
                row.output_shape[3],
            ];
            let projections = ["qkv", "proj"]
                .iter()
                .filter_map(|l| weight_len(&join(&row.name, l)))
                .sum::<usize>();
            let tokens = window_tokens(&buffers, &row.name);
            let side = (tokens as f64).sqrt().round() as usize;
            let padded = |s: usize| s.div_ceil(side.max(1)) * side.max(1);
            let positions = (n * padded(h) * padded(w)) as u64;
            total += positions * (projections + 2 * tokens * c) as u64;
            continue;
        }
        if row.type_name == "PatchMerging" && !row.output_shape.is_empty() {
            let out = *row.output_shape.last().unwrap_or(&1);
            let positions = numel(&row.output_shape) / out.max(1);
            let weight = weight_len(&join(&row.name, "reduction")).unwrap_or(row.params);
            total += (weight * positions) as u64;
            continue;
        }
        if row.type_name == "MultiheadAttention" && row.output_shape.len() == 3 {
            // [N, T, D]: projections per token, then QKᵀ and A·V per image.
            let [n, t, d] = [
                row.output_shape[0],
                row.output_shape[1],
                row.output_shape[2],
            ];
            let projections = matrices_under(&row.name) as u64 * (n * t) as u64;
            total += projections + 2 * (n * t * t * d) as u64;
            continue;
        }
        let positions = match row.type_name.as_str() {
            // [N, C_out, OH, OW]: every output pixel of every image.
            "Conv2d" if row.output_shape.len() == 4 => {
                row.output_shape[0] * row.output_shape[2] * row.output_shape[3]
            }
            // [N, ..., out]: every output row.
            "Linear" if !row.output_shape.is_empty() => {
                numel(&row.output_shape) / row.output_shape.last().copied().unwrap_or(1).max(1)
            }
            _ => continue,
        };
        let weight = weight_len(&row.name).unwrap_or(row.params);
        total += weight as u64 * positions as u64;
    }
    Ok(total)
}

/// Tokens per window of the Swin attention layer `row_name`: the square
/// root of its `relative_position_index` length (`T·T` entries).
fn window_tokens(buffers: &[(String, usize)], row_name: &str) -> usize {
    let key = join(row_name, "relative_position_index");
    buffers
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, len)| (*len as f64).sqrt().round() as usize)
        .unwrap_or(0)
}

/// FLOPs of one forward pass: `2 ×` [`macs`].
pub fn flops(model: &dyn Layer, input_shape: &[usize]) -> Result<u64> {
    Ok(2 * macs(model, input_shape)?)
}
