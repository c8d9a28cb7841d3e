//! Multi-head self-attention over tokens, forward and backward.
//!
//! PyTorch equivalent: `torch.nn.MultiheadAttention(embed_dim, num_heads,
//! dropout=p, batch_first=True)` called as `attn(x, x, x,
//! need_weights=False)` (ViT's `self_attention`). Shapes: `[N, T, D]` ->
//! `[N, T, D]`.
//!
//! # The computation
//!
//! With `H` heads of width `d = D / H`:
//!
//! ```text
//! [Q | K | V] = x · in_proj_weightᵀ + in_proj_bias          [N, T, 3D]
//! for every sample n and head h (columns h·d .. (h+1)·d of Q, K, V):
//!     S = Q_h · K_hᵀ / √d                                     [T, T]
//!     P = softmax(S) along each row (the keys)                [T, T]
//!     O_h = (P ⊙ M) · V_h     (M: attention dropout mask)     [T, d]
//! y = [O_0 | ... | O_{H-1}] · out_proj.weightᵀ + out_proj.bias [N, T, D]
//! ```
//!
//! and, backward, per `(n, h)` from `dO_h`:
//!
//! ```text
//! dV = (P ⊙ M)ᵀ · dO      dP = (dO · Vᵀ) ⊙ M      dS = P ⊙ (dP − rowsum(dP ⊙ P))
//! dQ = dS · K / √d        dK = dSᵀ · Q / √d
//! ```
//!
//! The `(n, h)` pairs run in parallel (rayon, one task per pair, no shared
//! accumulator); the projections are [`Linear`] layers, whose reductions
//! have a fixed order. Results do not depend on the thread count.

use convnet_tensor::init::{pytorch_default_weight, xavier_uniform};
use convnet_tensor::{Rng, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::linear::Linear;
use crate::param::{join, Param};
use crate::util::{check_grad, kernel, take_cache, tensor};

pub(crate) use kernels::{attention_forward, heads_backward, merge_heads, split_heads};

const NAME: &str = "MultiheadAttention";

/// Configuration of a [`MultiheadAttention`] layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Token width `D` (`embed_dim`).
    pub embed_dim: usize,
    /// Number of heads `H`; must divide `embed_dim`.
    pub num_heads: usize,
    /// Dropout probability on the attention weights, in `[0, 1)` (PyTorch's
    /// `dropout`, torchvision ViT's `attention_dropout`; default 0).
    pub dropout: f32,
}

impl MultiheadAttentionConfig {
    /// `num_heads` heads over tokens of width `embed_dim`, no dropout.
    pub fn new(embed_dim: usize, num_heads: usize) -> Self {
        MultiheadAttentionConfig {
            embed_dim,
            num_heads,
            dropout: 0.0,
        }
    }

    /// The attention dropout probability.
    pub fn dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }

    /// Width of one head, `embed_dim / num_heads`.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads.max(1)
    }

    /// Errors on zero sizes, a head count that does not divide `embed_dim`,
    /// or a dropout outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let (d, h) = (self.embed_dim, self.num_heads);
        if d == 0 || h == 0 {
            return Err(LayerError::config(
                NAME,
                format!("embed_dim ({d}) and num_heads ({h}) must be >= 1"),
            ));
        }
        if d % h != 0 {
            return Err(LayerError::config(
                NAME,
                format!("embed_dim ({d}) must be divisible by num_heads ({h})"),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LayerError::config(
                NAME,
                format!("dropout must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }
}

/// Multi-head scaled dot-product self-attention, `softmax(QKᵀ/√d)·V` per
/// head, with PyTorch's packed input projection.
///
/// Parameters, as `nn.MultiheadAttention` names them: `in_proj_weight`
/// (`[3D, D]`, the rows of Q, then K, then V; Xavier-uniform),
/// `in_proj_bias` (`[3D]`, zeros), `out_proj.weight` (`[D, D]`, PyTorch's
/// default Linear init) and `out_proj.bias` (`[D]`, zeros).
///
/// In [`Layer::forward`] the attention weights are dropped with probability
/// `dropout` (inverted dropout, masks from the layer's own seeded generator,
/// visited by [`Layer::visit_rngs_mut`]); [`Layer::infer`] never drops.
///
/// PyTorch equivalent: `torch.nn.MultiheadAttention(D, H, dropout,
/// batch_first=True)` applied as self-attention (`query = key = value = x`),
/// without masks.
///
/// # Shapes
///
/// - input: `[N, T, D]` (batch, tokens, features)
/// - output: `[N, T, D]`
///
/// ```
/// use convnet_layers::{Layer, MultiheadAttention, MultiheadAttentionConfig};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let mut attn = MultiheadAttention::new(MultiheadAttentionConfig::new(8, 2), &mut rng)?;
/// let shapes = attn.param_shapes();
/// assert_eq!(shapes[0], ("in_proj_weight".to_string(), vec![24, 8]));
/// assert_eq!(shapes[3], ("out_proj.bias".to_string(), vec![8]));
/// assert_eq!(attn.num_params(), 4 * 8 * 8 + 4 * 8);
///
/// let x = Tensor::randn(&[2, 5, 8], 0.0, 1.0, &mut rng);
/// let y = attn.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 5, 8]);
/// assert_eq!(attn.backward(&Tensor::ones(&[2, 5, 8]))?.shape(), &[2, 5, 8]);
///
/// assert!(attn.infer(&Tensor::zeros(&[2, 5, 6])).is_err()); // wrong width
/// assert!(MultiheadAttention::new(MultiheadAttentionConfig::new(8, 3), &mut rng).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MultiheadAttention {
    /// The packed Q, K, V projection: `weight` is `in_proj_weight`
    /// (`[3D, D]`), `bias` is `in_proj_bias` (`[3D]`).
    pub in_proj: Linear,
    /// The output projection (`out_proj.weight` `[D, D]`, `out_proj.bias`).
    pub out_proj: Linear,
    config: MultiheadAttentionConfig,
    rng: Rng,
    cache: Option<AttentionCache>,
}

/// What `forward` keeps for `backward` (the projections cache their own
/// inputs).
#[derive(Debug, Clone)]
struct AttentionCache {
    /// Batch and tokens of the input.
    n: usize,
    t: usize,
    /// Q, K, V split by head: `[N, H, 3, T, d]`.
    heads: Vec<f32>,
    /// The attention weights after the softmax, before dropout:
    /// `[N, H, T, T]`.
    probs: Vec<f32>,
    /// The dropout multipliers (`0` or `1/(1−p)`), `[N, H, T, T]`, if the
    /// layer drops.
    mask: Option<Vec<f32>>,
}

impl MultiheadAttention {
    /// A layer initialised as PyTorch does, its dropout generator seeded from
    /// `rng`. Errors on an invalid configuration.
    pub fn new(config: MultiheadAttentionConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let d = config.embed_dim;
        let in_w = xavier_uniform(&[3 * d, d], rng);
        let out_w = pytorch_default_weight(&[d, d], rng);
        let seed = rng.next_u64();
        Self::from_tensors(
            config,
            in_w,
            Tensor::zeros(&[3 * d]),
            out_w,
            Tensor::zeros(&[d]),
            seed,
        )
    }

    /// A layer with the given weights (`in_proj_weight` `[3D, D]`,
    /// `in_proj_bias` `[3D]`, `out_proj.weight` `[D, D]`, `out_proj.bias`
    /// `[D]`) and a dropout generator seeded with `seed`.
    pub fn from_tensors(
        config: MultiheadAttentionConfig,
        in_proj_weight: Tensor,
        in_proj_bias: Tensor,
        out_proj_weight: Tensor,
        out_proj_bias: Tensor,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let d = config.embed_dim;
        for (what, t, shape) in [
            ("in_proj_weight", &in_proj_weight, vec![3 * d, d]),
            ("in_proj_bias", &in_proj_bias, vec![3 * d]),
            ("out_proj.weight", &out_proj_weight, vec![d, d]),
            ("out_proj.bias", &out_proj_bias, vec![d]),
        ] {
            if t.shape() != shape.as_slice() {
                return Err(LayerError::config(
                    NAME,
                    format!("{what} must be {shape:?}, got {:?}", t.shape()),
                ));
            }
        }
        Ok(MultiheadAttention {
            in_proj: Linear::from_tensors(in_proj_weight, Some(in_proj_bias))?,
            out_proj: Linear::from_tensors(out_proj_weight, Some(out_proj_bias))?,
            config,
            rng: Rng::seed_from(seed),
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MultiheadAttentionConfig {
        &self.config
    }

    /// Multiply-adds of one forward pass for `n` samples of `t` tokens: the
    /// two projections (`4·t·D²`) and the two attention products
    /// (`QKᵀ` and `P·V`, `2·t²·D`), per sample.
    pub fn forward_macs(&self, n: usize, t: usize) -> usize {
        let d = self.config.embed_dim;
        n * (4 * t * d * d + 2 * t * t * d)
    }

    /// Errors unless the shape is `[N, T, D]`; returns `(N, T)`.
    fn check(&self, shape: &[usize]) -> Result<(usize, usize)> {
        let d = self.config.embed_dim;
        match shape {
            &[n, t, dd] if dd == d => Ok((n, t)),
            _ => Err(LayerError::input_shape(NAME, format!("[N, T, {d}]"), shape)),
        }
    }

    /// The attention proper, from the packed projections `qkv` (`[N, T,
    /// 3D]`) to the concatenated head outputs (`[N, T, D]`); returns them
    /// with the cache `backward` needs.
    fn attend(
        &self,
        qkv: &Tensor,
        n: usize,
        t: usize,
        mask: Option<Vec<f32>>,
    ) -> Result<(Tensor, AttentionCache)> {
        let (d, h) = (self.config.embed_dim, self.config.num_heads);
        let hd = d / h;
        let heads = split_heads(qkv.as_slice(), n, t, h, hd);
        let mut out = vec![0.0f32; n * h * t * hd];
        let mut probs = vec![0.0f32; n * h * t * t];
        kernel(
            NAME,
            attention_forward(&mut out, &mut probs, &heads, mask.as_deref(), None, t, hd),
        )?;
        let ctx = tensor(&[n, t, d], merge_heads(&out, n, t, h, hd));
        Ok((
            ctx,
            AttentionCache {
                n,
                t,
                heads,
                probs,
                mask,
            },
        ))
    }

    /// The dropout multipliers for `len` attention weights, or `None`.
    fn draw_mask(&mut self, len: usize) -> Option<Vec<f32>> {
        let p = self.config.dropout;
        (p > 0.0).then(|| {
            let keep = 1.0 / (1.0 - p);
            (0..len)
                .map(|_| if self.rng.next_f32() < p { 0.0 } else { keep })
                .collect()
        })
    }
}

impl Layer for MultiheadAttention {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let (n, t) = self.check(x.shape())?;
        let qkv = self.in_proj.infer(x)?;
        let (ctx, _) = self.attend(&qkv, n, t, None)?;
        self.out_proj.infer(&ctx)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, t) = self.check(x.shape())?;
        let qkv = self.in_proj.forward(x)?;
        let mask = self.draw_mask(n * self.config.num_heads * t * t);
        let (ctx, cache) = self.attend(&qkv, n, t, mask)?;
        let y = self.out_proj.forward(&ctx)?;
        self.cache = Some(cache);
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let d = self.config.embed_dim;
        if let Some(c) = &self.cache {
            check_grad(NAME, grad_out, &[c.n, c.t, d])?;
        }
        let c = take_cache(&mut self.cache, NAME)?;
        let (h, t) = (self.config.num_heads, c.t);
        let hd = d / h;
        // dctx [N, T, D] -> per head [N, H, T, d]
        let d_ctx = self.out_proj.backward(grad_out)?;
        let (d_qkv, _) = kernel(
            NAME,
            heads_backward(
                d_ctx.as_slice(),
                &c.heads,
                &c.probs,
                c.mask.as_deref(),
                [c.n, t, h, hd],
            ),
        )?;
        let d_qkv = tensor(&[c.n, t, 3 * d], d_qkv);
        self.in_proj.backward(&d_qkv)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, "in_proj_weight", &self.in_proj.weight, f);
        if let Some(b) = &self.in_proj.bias {
            visit_param(prefix, "in_proj_bias", b, f);
        }
        self.out_proj.visit_params(&join(prefix, "out_proj"), f);
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, "in_proj_weight", &mut self.in_proj.weight, f);
        if let Some(b) = &mut self.in_proj.bias {
            visit_param_mut(prefix, "in_proj_bias", b, f);
        }
        self.out_proj.visit_params_mut(&join(prefix, "out_proj"), f);
    }

    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        f(prefix, &mut self.rng)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(MultiheadAttention {
            in_proj: without_cache(&self.in_proj),
            out_proj: without_cache(&self.out_proj),
            config: self.config,
            rng: self.rng.clone(),
            cache: None,
        }))
    }
}

/// A copy of a projection (values and gradients) without its cached input.
pub(crate) fn without_cache(l: &Linear) -> Linear {
    let mut c = Linear::from_tensors(
        l.weight.value.clone(),
        l.bias.as_ref().map(|b| b.value.clone()),
    )
    .expect("shapes of an existing layer");
    c.weight = l.weight.clone();
    c.bias = l.bias.clone();
    c
}

mod kernels;
#[cfg(test)]
mod tests;
