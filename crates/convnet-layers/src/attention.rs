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
use convnet_tensor::kernels::gemm::{gemm, Trans};
use convnet_tensor::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxGeometry};
use convnet_tensor::{Rng, Tensor};
use rayon::prelude::*;

use crate::error::{LayerError, Result};
use crate::layer::{visit_param, visit_param_mut, Layer};
use crate::linear::Linear;
use crate::param::{join, Param};
use crate::util::{check_grad, kernel, take_cache, tensor};

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

// ---------------------------------------------------------------------------
// Layout changes. `qkv` is [N, T, 3D] with Q in columns 0..D, K in D..2D and
// V in 2D..3D; head h owns columns h·d .. (h+1)·d of each. The kernels work
// on [N, H, 3, T, d] (one contiguous chunk per (sample, head)).
// ---------------------------------------------------------------------------

/// `[N, T, 3D]` -> `[N, H, 3, T, d]`.
pub(crate) fn split_heads(qkv: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; qkv.len()];
    for (nh, chunk) in out.chunks_exact_mut(3 * t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (which, part) in chunk.chunks_exact_mut(t * hd).enumerate() {
            for (tok, row) in part.chunks_exact_mut(hd).enumerate() {
                let src = (s * t + tok) * 3 * d + which * d + head * hd;
                row.copy_from_slice(&qkv[src..src + hd]);
            }
        }
    }
    debug_assert_eq!(out.len(), n * h * 3 * t * hd);
    out
}

/// `[N, H, 3, T, d]` -> `[N, T, 3D]` (the inverse of [`split_heads`]).
fn unsplit_heads(heads: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; heads.len()];
    for (nh, chunk) in heads.chunks_exact(3 * t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (which, part) in chunk.chunks_exact(t * hd).enumerate() {
            for (tok, row) in part.chunks_exact(hd).enumerate() {
                let dst = (s * t + tok) * 3 * d + which * d + head * hd;
                out[dst..dst + hd].copy_from_slice(row);
            }
        }
    }
    debug_assert_eq!(out.len(), n * t * 3 * d);
    out
}

/// `[N, H, T, d]` -> `[N, T, D]` (heads side by side).
pub(crate) fn merge_heads(o: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; o.len()];
    for (nh, chunk) in o.chunks_exact(t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (tok, row) in chunk.chunks_exact(hd).enumerate() {
            let dst = (s * t + tok) * d + head * hd;
            out[dst..dst + hd].copy_from_slice(row);
        }
    }
    debug_assert_eq!(out.len(), n * t * d);
    out
}

/// `[N, T, D]` -> `[N, H, T, d]` (the inverse of [`merge_heads`]).
fn split_ctx(ctx: &[f32], n: usize, t: usize, h: usize, hd: usize) -> Vec<f32> {
    let d = h * hd;
    let mut out = vec![0.0f32; ctx.len()];
    for (nh, chunk) in out.chunks_exact_mut(t * hd).enumerate() {
        let (s, head) = (nh / h, nh % h);
        for (tok, row) in chunk.chunks_exact_mut(hd).enumerate() {
            let src = (s * t + tok) * d + head * hd;
            row.copy_from_slice(&ctx[src..src + hd]);
        }
    }
    debug_assert_eq!(out.len(), n * t * d);
    out
}

// ---------------------------------------------------------------------------
// Kernels: one rayon task per (sample, head), each on its own chunks.
// ---------------------------------------------------------------------------

/// The backward pass of the attention proper, from the gradient of the
/// concatenated head outputs `d_ctx` (`[N, T, D]`) to the gradient of the
/// packed projections (`[N, T, 3D]`), with the gradient of the scores
/// (`[N, H, T, T]`); `heads`, `probs` and `mask` as saved by the forward
/// pass, `[n, t, h, hd]` the sizes.
pub(crate) fn heads_backward(
    d_ctx: &[f32],
    heads: &[f32],
    probs: &[f32],
    mask: Option<&[f32]>,
    [n, t, h, hd]: [usize; 4],
) -> convnet_tensor::Result<(Vec<f32>, Vec<f32>)> {
    let d_out = split_ctx(d_ctx, n, t, h, hd);
    let mut d_heads = vec![0.0f32; heads.len()];
    let mut d_scores = vec![0.0f32; probs.len()];
    attention_backward(
        &mut d_heads,
        &mut d_scores,
        &d_out,
        heads,
        probs,
        mask,
        [t, hd],
    )?;
    Ok((unsplit_heads(&d_heads, n, t, h, hd), d_scores))
}

/// What a kernel adds to the scaled scores `Q·Kᵀ/√d` of pair `i` (a
/// `[T, T]` slice, zeroed first) before the softmax: Swin's relative
/// position bias and shifted-window masks. `None` adds nothing.
pub(crate) type ScoreTerm<'a> = Option<&'a (dyn Fn(usize, &mut [f32]) + Sync)>;

/// Scaled dot-product attention of every `(sample, head)` pair `i`.
///
/// - `out`: `[NH, T, d]`, overwritten with `(P ⊙ M) · V`;
/// - `probs`: `[NH, T, T]`, overwritten with `P = softmax(Q·Kᵀ/√d + A_i)`,
///   `A_i` what `term` adds (0 without);
/// - `heads`: `[NH, 3, T, d]` (Q, K, V of each pair);
/// - `mask`: `[NH, T, T]` dropout multipliers, if any.
pub(crate) fn attention_forward(
    out: &mut [f32],
    probs: &mut [f32],
    heads: &[f32],
    mask: Option<&[f32]>,
    term: ScoreTerm,
    t: usize,
    hd: usize,
) -> convnet_tensor::Result<()> {
    let (tt, td) = (t * t, t * hd);
    let geom = SoftmaxGeometry::new(&[t, t], 1)?;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(td)
        .zip(probs.par_chunks_mut(tt))
        .zip(heads.par_chunks(3 * td))
        .enumerate()
        .try_for_each_init(
            || vec![0.0f32; tt],
            |scratch, (i, ((o, p), qkv))| {
                let (q, kv) = qkv.split_at(td);
                let (k, v) = kv.split_at(td);
                // S[T, T] = A_i + scale · Q[T, d] · K[T, d]ᵀ
                let beta = match term {
                    Some(add) => {
                        scratch.fill(0.0);
                        add(i, scratch);
                        1.0
                    }
                    None => 0.0,
                };
                gemm(scratch, q, Trans::No, k, Trans::Yes, t, t, hd, scale, beta)?;
                softmax_forward(p, scratch, &geom)?;
                let weights: &[f32] = match mask {
                    Some(m) => {
                        for ((s, &pv), &mv) in scratch.iter_mut().zip(p.iter()).zip(&m[i * tt..]) {
                            *s = pv * mv;
                        }
                        scratch
                    }
                    None => p,
                };
                // O[T, d] = W[T, T] · V[T, d]
                gemm(o, weights, Trans::No, v, Trans::No, t, hd, t, 1.0, 0.0)
            },
        )
}

/// The backward pass of [`attention_forward`].
///
/// - `d_heads`: `[NH, 3, T, d]`, overwritten with dQ, dK, dV;
/// - `d_scores`: `[NH, T, T]`, overwritten with dS, the gradient of the
///   scores (and so of what `term` added);
/// - `d_out`: `[NH, T, d]`, the gradient of `out`;
/// - `heads`, `probs`, `mask`: as saved by the forward pass;
/// - `[t, hd]`: tokens and head width.
fn attention_backward(
    d_heads: &mut [f32],
    d_scores: &mut [f32],
    d_out: &[f32],
    heads: &[f32],
    probs: &[f32],
    mask: Option<&[f32]>,
    [t, hd]: [usize; 2],
) -> convnet_tensor::Result<()> {
    let (tt, td) = (t * t, t * hd);
    let geom = SoftmaxGeometry::new(&[t, t], 1)?;
    let scale = 1.0 / (hd as f32).sqrt();
    d_heads
        .par_chunks_mut(3 * td)
        .zip(d_scores.par_chunks_mut(tt))
        .zip(d_out.par_chunks(td))
        .zip(heads.par_chunks(3 * td))
        .zip(probs.par_chunks(tt))
        .enumerate()
        .try_for_each_init(
            || vec![0.0f32; tt],
            |dp, (i, ((((dqkv, ds), d_o), qkv), p))| {
                let (q, kv) = qkv.split_at(td);
                let (k, v) = kv.split_at(td);
                let (dq, dkv) = dqkv.split_at_mut(td);
                let (dk, dv) = dkv.split_at_mut(td);
                let m = mask.map(|m| &m[i * tt..(i + 1) * tt]);
                // The weights used by the forward pass: P ⊙ M (kept in `ds`).
                let weights: &[f32] = match m {
                    Some(m) => {
                        for ((w, &pv), &mv) in ds.iter_mut().zip(p).zip(m) {
                            *w = pv * mv;
                        }
                        ds
                    }
                    None => p,
                };
                // dV[T, d] = Wᵀ[T, T] · dO[T, d]
                gemm(dv, weights, Trans::Yes, d_o, Trans::No, t, hd, t, 1.0, 0.0)?;
                // dW[T, T] = dO[T, d] · V[T, d]ᵀ, then dP = dW ⊙ M
                gemm(dp, d_o, Trans::No, v, Trans::Yes, t, t, hd, 1.0, 0.0)?;
                if let Some(m) = m {
                    dp.iter_mut().zip(m).for_each(|(g, &mv)| *g *= mv);
                }
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                softmax_backward(ds, dp, p, &geom)?;
                // dQ = scale · dS · K ; dK = scale · dSᵀ · Q
                gemm(dq, ds, Trans::No, k, Trans::No, t, hd, t, scale, 0.0)?;
                gemm(dk, ds, Trans::Yes, q, Trans::No, t, hd, t, scale, 0.0)
            },
        )
}

#[cfg(test)]
mod tests;
