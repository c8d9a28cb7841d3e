//! Shifted-window multi-head self-attention with relative position bias:
//! the attention of the Swin Transformer (Liu et al., 2021), forward and
//! backward.
//!
//! PyTorch equivalent: `torchvision.models.swin_transformer.
//! ShiftedWindowAttention(dim, window_size, shift_size, num_heads)` (v1,
//! without dropout). Shapes: `[N, H, W, C]` (channels last) -> the same.
//!
//! # The computation
//!
//! The map is padded with zeros at the bottom and right to multiples of
//! the window `[wh, ww]`, rolled by `(−sh, −sw)` (no shift on an axis where
//! one window covers the padded map), and cut into windows of `T = wh·ww`
//! tokens ([`windows`]). In every window, with `H` heads of width
//! `d = C / H`:
//!
//! ```text
//! [Q | K | V] = x · qkv.weightᵀ + qkv.bias                       [T, 3C]
//! for every head h (columns h·d .. (h+1)·d of Q, K, V):
//!     S = Q_h · K_hᵀ / √d + B_h + M                               [T, T]
//!     P = softmax(S) along each row
//!     O_h = P · V_h                                               [T, d]
//! y = [O_0 | ... | O_{H-1}] · proj.weightᵀ + proj.bias            [T, C]
//! ```
//!
//! `B_h[i, j] = relative_position_bias_table[index[i·T + j], h]`, the
//! learned bias of the offset between tokens `i` and `j`; `M` is 0, or,
//! for shifted windows, −100 between tokens from different regions of the
//! rolled map (they are not neighbours in the image). The windows are then
//! put back, rolled back and cropped. Padding tokens take part in the
//! attention (as zeros before `qkv`), as in torchvision.
//!
//! Backward, per window and head, from `dO`: `dV = Pᵀ·dO`, `dP = dO·Vᵀ`,
//! `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = dS·K/√d`, `dK = dSᵀ·Q/√d`, and
//! the table's gradient gathers `Σ dS` over windows and images by index.
//! The attention kernels are [`crate::MultiheadAttention`]'s, the bias and
//! masks added to the scores of each `(window, head)` pair: the pairs run
//! in parallel (rayon, no shared accumulator) and the sums over windows in
//! a fixed order. Results do not depend on the thread count.

mod windows;

use convnet_tensor::{Rng, Tensor};
use rayon::prelude::*;

use crate::attention::{
    attention_forward, heads_backward, merge_heads, split_heads, without_cache,
};
use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::linear::{Linear, LinearConfig};
use crate::param::{join, Param};
use crate::util::{check_grad, kernel, take_cache, tensor};

pub(crate) use windows::WindowGeometry;

const NAME: &str = "ShiftedWindowAttention";

/// Configuration of a [`ShiftedWindowAttention`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftedWindowAttentionConfig {
    /// Channels `C` of the map (`dim`).
    pub dim: usize,
    /// Number of heads `H`; must divide `dim`.
    pub num_heads: usize,
    /// Window height and width (`[7, 7]` in Swin).
    pub window_size: (usize, usize),
    /// Cyclic shift per axis, smaller than the window (`[0, 0]` on even
    /// blocks of Swin, half the window on odd ones).
    pub shift_size: (usize, usize),
}

impl ShiftedWindowAttentionConfig {
    /// `num_heads` heads over `dim` channels, square windows of side
    /// `window`, no shift.
    pub fn new(dim: usize, num_heads: usize, window: usize) -> Self {
        ShiftedWindowAttentionConfig {
            dim,
            num_heads,
            window_size: (window, window),
            shift_size: (0, 0),
        }
    }

    /// The cyclic shift, the same on both axes.
    pub fn shift(mut self, shift: usize) -> Self {
        self.shift_size = (shift, shift);
        self
    }

    /// Rows of the relative position bias table, `(2·wh − 1)·(2·ww − 1)`.
    pub fn table_rows(&self) -> usize {
        let (wh, ww) = self.window_size;
        (2 * wh).saturating_sub(1) * (2 * ww).saturating_sub(1)
    }

    /// Errors on zero sizes, a head count that does not divide `dim`, or
    /// a shift not smaller than the window.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(LayerError::config(NAME, msg));
        let (wh, ww) = self.window_size;
        let (sh, sw) = self.shift_size;
        if self.dim == 0 || self.num_heads == 0 || wh == 0 || ww == 0 {
            return bad(format!(
                "dim ({}), num_heads ({}) and window_size ({wh}, {ww}) must be >= 1",
                self.dim, self.num_heads
            ));
        }
        if self.dim % self.num_heads != 0 {
            return bad(format!(
                "dim ({}) must be divisible by num_heads ({})",
                self.dim, self.num_heads
            ));
        }
        if sh >= wh || sw >= ww {
            return bad(format!(
                "shift_size ({sh}, {sw}) must be smaller than window_size ({wh}, {ww})"
            ));
        }
        Ok(())
    }
}

/// Window attention of the Swin Transformer: multi-head self-attention
/// inside (shifted) windows of a channels-last map, with a learned bias
/// per relative offset and head.
///
/// Parameters and buffer, as torchvision names them:
/// `relative_position_bias_table` (`[(2wh−1)(2ww−1), H]`, truncated normal
/// of std 0.02), the buffer `relative_position_index` (`[T·T]`, integers
/// stored as `f32`), `qkv.weight` (`[3C, C]`), `qkv.bias`, `proj.weight`
/// (`[C, C]`), `proj.bias` (PyTorch's default Linear init).
///
/// # Shapes
///
/// - input: `[N, H, W, C]`, any `H, W >= 1` (padded to windows inside)
/// - output: `[N, H, W, C]`
///
/// ```
/// use convnet_layers::{Layer, ShiftedWindowAttention, ShiftedWindowAttentionConfig};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let cfg = ShiftedWindowAttentionConfig::new(8, 2, 3).shift(1);
/// let mut attn = ShiftedWindowAttention::new(cfg, &mut rng)?;
/// let keys: Vec<String> = attn.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["relative_position_bias_table", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]);
/// assert_eq!(attn.num_params(), 25 * 2 + 4 * 8 * 8 + 4 * 8);
///
/// let x = Tensor::randn(&[2, 5, 7, 8], 0.0, 1.0, &mut rng); // padded to 6×9 inside
/// let y = attn.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 5, 7, 8]);
/// assert_eq!(attn.backward(&y)?.shape(), x.shape());
/// assert!(attn.infer(&Tensor::zeros(&[2, 5, 7, 6])).is_err()); // wrong channels
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct ShiftedWindowAttention {
    /// The packed Q, K, V projection, `[3C, C]`.
    pub qkv: Linear,
    /// The output projection, `[C, C]`.
    pub proj: Linear,
    /// The learned bias of every relative offset and head,
    /// `[(2wh−1)(2ww−1), H]`.
    pub relative_position_bias_table: Param,
    /// Row of the table of every token pair, `[T·T]` (a buffer).
    relative_position_index: Tensor,
    config: ShiftedWindowAttentionConfig,
    cache: Option<SwaCache>,
}

/// What `forward` keeps for `backward` (the projections cache their own
/// inputs).
#[derive(Debug)]
struct SwaCache {
    /// The input shape `[N, H, W, C]`.
    shape: Vec<usize>,
    geometry: WindowGeometry,
    /// Q, K, V split by head: `[N·windows, H, 3, T, d]`.
    heads: Vec<f32>,
    /// Attention weights after the softmax: `[N·windows, H, T, T]`.
    probs: Vec<f32>,
}

impl ShiftedWindowAttention {
    /// A layer initialised as torchvision does (projections with PyTorch's
    /// default, the table from a normal of std 0.02 truncated to ±2).
    pub fn new(config: ShiftedWindowAttentionConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let c = config.dim;
        let qkv = Linear::new(LinearConfig::new(c, 3 * c), rng)?;
        let proj = Linear::new(LinearConfig::new(c, c), rng)?;
        let rows = config.table_rows();
        let table: Vec<f32> = (0..rows * config.num_heads)
            .map(|_| loop {
                let v = 0.02 * rng.normal();
                if v.abs() <= 2.0 {
                    break v;
                }
            })
            .collect();
        Self::from_parts(config, qkv, proj, tensor(&[rows, config.num_heads], table))
    }

    /// A layer with the given projections (`qkv`: `C → 3C`, `proj`:
    /// `C → C`) and bias table (`[(2wh−1)(2ww−1), H]`); the index is
    /// computed from the window.
    pub fn from_parts(
        config: ShiftedWindowAttentionConfig,
        qkv: Linear,
        proj: Linear,
        relative_position_bias_table: Tensor,
    ) -> Result<Self> {
        config.validate()?;
        let c = config.dim;
        for (what, l, shape) in [("qkv", &qkv, [3 * c, c]), ("proj", &proj, [c, c])] {
            if l.weight.shape() != shape {
                return Err(LayerError::config(
                    NAME,
                    format!(
                        "{what}.weight must be {shape:?}, got {:?}",
                        l.weight.shape()
                    ),
                ));
            }
        }
        let table_shape = [config.table_rows(), config.num_heads];
        if relative_position_bias_table.shape() != table_shape {
            return Err(LayerError::config(
                NAME,
                format!(
                    "relative_position_bias_table must be {table_shape:?}, got {:?}",
                    relative_position_bias_table.shape()
                ),
            ));
        }
        let (wh, ww) = config.window_size;
        let index: Vec<f32> = windows::relative_position_index(wh, ww)
            .into_iter()
            .map(|i| i as f32)
            .collect();
        Ok(ShiftedWindowAttention {
            qkv,
            proj,
            relative_position_bias_table: Param::new(relative_position_bias_table),
            relative_position_index: tensor(&[index.len()], index),
            config,
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ShiftedWindowAttentionConfig {
        &self.config
    }

    /// Multiply-adds of one forward pass on `[n, h, w, C]`: per token of
    /// the padded map, the projections (`4·C²`) and the two attention
    /// products (`2·T·C`).
    pub fn forward_macs(&self, n: usize, h: usize, w: usize) -> usize {
        let g = self.geometry(h, w);
        let c = self.config.dim;
        n * g.ph * g.pw * (4 * c * c + 2 * g.tokens() * c)
    }

    fn geometry(&self, h: usize, w: usize) -> WindowGeometry {
        WindowGeometry::new(h, w, self.config.window_size, self.config.shift_size)
    }

    /// Errors unless the shape is `[N, H, W, C]` with `H, W >= 1`.
    fn check(&self, shape: &[usize]) -> Result<[usize; 3]> {
        let c = self.config.dim;
        match shape {
            &[n, h, w, cc] if cc == c && h > 0 && w > 0 => Ok([n, h, w]),
            _ => Err(LayerError::input_shape(
                NAME,
                format!("[N, H, W, {c}]"),
                shape,
            )),
        }
    }

    /// The bias of every head and token pair, `[H, T, T]`, from the table
    /// and the index buffer (an index that is not a row of the table, after
    /// loading a bad buffer, is an error).
    fn bias(&self) -> Result<Vec<f32>> {
        let heads = self.config.num_heads;
        let table = self.relative_position_bias_table.value.as_slice();
        let index = self.relative_position_index.as_slice();
        let rows = table.len() / heads;
        let mut bias = vec![0.0f32; heads * index.len()];
        for (tt, &i) in index.iter().enumerate() {
            let row = valid_row(i, rows)?;
            for h in 0..heads {
                bias[h * index.len() + tt] = table[row * heads + h];
            }
        }
        Ok(bias)
    }

    /// Attention inside the windows of `win` (`[B, T, C]`, `B = N·windows`)
    /// through the `qkv` projection already applied (`qkv`, `[B, T, 3C]`):
    /// the concatenated head outputs `[B, T, C]`, the heads and the
    /// weights.
    fn attend(&self, qkv: &Tensor, g: &WindowGeometry) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
        let (c, h) = (self.config.dim, self.config.num_heads);
        let (t, hd) = (g.tokens(), c / h);
        let b = qkv.shape()[0];
        let heads = split_heads(qkv.as_slice(), b, t, h, hd);
        let bias = self.bias()?;
        let mask = g.mask();
        let mut out = vec![0.0f32; b * h * t * hd];
        let mut probs = vec![0.0f32; b * h * t * t];
        // Pair i is window (i / h) mod windows of its image, head i mod h.
        let (tt, windows) = (t * t, g.windows());
        let add = |i: usize, s: &mut [f32]| {
            let head = i % h;
            s.copy_from_slice(&bias[head * tt..(head + 1) * tt]);
            if let Some(mask) = &mask {
                let w = (i / h) % windows;
                let m = &mask[w * tt..(w + 1) * tt];
                s.iter_mut().zip(m).for_each(|(a, &b)| *a += b);
            }
        };
        kernel(
            NAME,
            attention_forward(&mut out, &mut probs, &heads, None, Some(&add), t, hd),
        )?;
        let ctx = tensor(&[b, t, c], merge_heads(&out, b, t, h, hd));
        Ok((ctx, heads, probs))
    }

    /// The windows of `x` (`[N, H, W, C]`) as `[N·windows, T, C]`.
    fn partition(&self, x: &Tensor, g: &WindowGeometry, sources: &[Option<usize>]) -> Tensor {
        let (n, c) = (x.shape()[0], self.config.dim);
        let data = windows::move_rows(x.as_slice(), sources, n, g.h * g.w, c, true);
        tensor(&[n * g.windows(), g.tokens(), c], data)
    }

    /// Windows (`[N·windows, T, C]`) back to the map `[N, H, W, C]`.
    fn merge(&self, win: &Tensor, g: &WindowGeometry, sources: &[Option<usize>]) -> Tensor {
        let c = self.config.dim;
        let n = win.shape()[0] / g.windows();
        let data = windows::move_rows(win.as_slice(), sources, n, g.h * g.w, c, false);
        tensor(&[n, g.h, g.w, c], data)
    }
}

/// A row of the bias table from an index value, or an error.
fn valid_row(i: f32, rows: usize) -> Result<usize> {
    if i >= 0.0 && i.fract() == 0.0 && (i as usize) < rows {
        Ok(i as usize)
    } else {
        Err(LayerError::config(
            NAME,
            format!("relative_position_index holds {i}, not a row of the {rows}-row bias table"),
        ))
    }
}

impl Layer for ShiftedWindowAttention {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let [_, h, w] = self.check(x.shape())?;
        let g = self.geometry(h, w);
        let sources = g.sources();
        let qkv = self.qkv.infer(&self.partition(x, &g, &sources))?;
        let (ctx, _, _) = self.attend(&qkv, &g)?;
        Ok(self.merge(&self.proj.infer(&ctx)?, &g, &sources))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let [_, h, w] = self.check(x.shape())?;
        let g = self.geometry(h, w);
        let sources = g.sources();
        let win = self.partition(x, &g, &sources);
        let qkv = self.qkv.forward(&win)?;
        let (ctx, heads, probs) = self.attend(&qkv, &g)?;
        let projected = self.proj.forward(&ctx)?;
        let y = self.merge(&projected, &g, &sources);
        self.cache = Some(SwaCache {
            shape: x.shape().to_vec(),
            geometry: g,
            heads,
            probs,
        });
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(c) = &self.cache {
            check_grad(NAME, grad_out, &c.shape)?;
        }
        let cache = take_cache(&mut self.cache, NAME)?;
        let g = cache.geometry;
        let sources = g.sources();
        let (c, h) = (self.config.dim, self.config.num_heads);
        let (t, hd) = (g.tokens(), c / h);
        let b = cache.shape[0] * g.windows();
        let d_win_out = self.partition(grad_out, &g, &sources);
        let d_ctx = self.proj.backward(&d_win_out)?;
        let (d_qkv, d_scores) = kernel(
            NAME,
            heads_backward(
                d_ctx.as_slice(),
                &cache.heads,
                &cache.probs,
                None,
                [b, t, h, hd],
            ),
        )?;
        self.accumulate_table_grad(&d_scores, h, t)?;
        let d_qkv = tensor(&[b, t, 3 * c], d_qkv);
        let d_win = self.qkv.backward(&d_qkv)?;
        Ok(self.merge(&d_win, &g, &sources))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        let table = &self.relative_position_bias_table;
        visit_param(prefix, "relative_position_bias_table", table, f);
        self.qkv.visit_params(&join(prefix, "qkv"), f);
        self.proj.visit_params(&join(prefix, "proj"), f);
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        let table = &mut self.relative_position_bias_table;
        visit_param_mut(prefix, "relative_position_bias_table", table, f);
        self.qkv.visit_params_mut(&join(prefix, "qkv"), f);
        self.proj.visit_params_mut(&join(prefix, "proj"), f);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(
            &join(prefix, "relative_position_index"),
            &self.relative_position_index,
        )
    }

    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(
            &join(prefix, "relative_position_index"),
            &mut self.relative_position_index,
        )
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(ShiftedWindowAttention {
            qkv: without_cache(&self.qkv),
            proj: without_cache(&self.proj),
            relative_position_bias_table: self.relative_position_bias_table.clone(),
            relative_position_index: self.relative_position_index.clone(),
            config: self.config,
            cache: None,
        }))
    }
}

impl ShiftedWindowAttention {
    /// Adds the gradient of the bias table from the score gradients
    /// `d_scores` (`[B, H, T, T]`): `Σ_b dS[b, h, i, j]` goes to row
    /// `index[i·T + j]`, column `h`.
    fn accumulate_table_grad(&mut self, d_scores: &[f32], heads: usize, t: usize) -> Result<()> {
        let tt = t * t;
        // [H, T·T], summed over windows and images in order, heads in parallel.
        let mut d_bias = vec![0.0f32; heads * tt];
        d_bias.par_chunks_mut(tt).enumerate().for_each(|(h, acc)| {
            for chunk in d_scores.chunks_exact(heads * tt) {
                let ds = &chunk[h * tt..(h + 1) * tt];
                acc.iter_mut().zip(ds).for_each(|(a, &d)| *a += d);
            }
        });
        let table = &mut self.relative_position_bias_table;
        let rows = table.len() / heads;
        let grad = table.grad.as_slice_mut();
        for (pair, &i) in self.relative_position_index.as_slice().iter().enumerate() {
            let row = valid_row(i, rows)?;
            for h in 0..heads {
                grad[row * heads + h] += d_bias[h * tt + pair];
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
