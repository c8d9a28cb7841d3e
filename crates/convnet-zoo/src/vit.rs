//! The Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16
//! Words", 2021), as torchvision builds it, plus a small variant for
//! 1×28×28 images.
//!
//! ```text
//! conv_proj              Conv2d(C, D, k = s = P): one D-vector per P×P patch
//!                        [N, D, S/P, S/P] -> tokens [N, (S/P)², D]
//! class_token            [1, 1, D], prepended         -> [N, T, D], T = (S/P)² + 1
//! encoder.pos_embedding  [1, T, D], added
//! encoder.dropout
//! encoder.layers.encoder_layer_i, i < L (pre-norm blocks):
//!     x = x + dropout(self_attention(ln_1(x)))
//!     x = x + mlp(ln_2(x))        mlp: Linear(D, M), GELU, Dropout, Linear(M, D), Dropout
//! encoder.ln             LayerNorm(D, eps 1e-6)
//! heads.head             Linear(D, classes) on the class token
//! ```
//!
//! | variant | name | D | L | heads | M | parameters (224×224) |
//! |---|---|---|---|---|---|---|
//! | [`ViTConfig::b_16`] | `vit_b_16` (torchvision) | 768 | 12 | 12 | 3072 | 86,567,656 |
//! | [`ViTConfig::s_16`] | `vit_s_16` (timm / DeiT-S sizes) | 384 | 12 | 6 | 1536 | 22,050,664 |
//! | [`ViTConfig::ti_16`] | `vit_ti_16` (timm / DeiT-Ti sizes) | 192 | 12 | 3 | 768 | 5,717,416 |
//! | [`ViTConfig::tiny28`] | `vit_tiny28` (1×28×28, 7×7 patches, T = 17) | 64 | 4 | 4 | 128 | 139,018 |
//!
//! Parameter names, shapes and order are torchvision's `state_dict`
//! (`class_token`, `conv_proj.weight`, `encoder.pos_embedding`,
//! `encoder.layers.encoder_layer_0.self_attention.in_proj_weight`, ...,
//! `heads.head.bias`); ViT-Ti and ViT-S use torchvision's module with the
//! DeiT sizes. Weights are initialised as torchvision does: `conv_proj`
//! from a truncated normal of std `1/sqrt(fan_in)`, zero class token, position
//! embedding from a normal of std 0.02, attention as `nn.MultiheadAttention`,
//! MLP weights Xavier-uniform with biases of std 1e-6, and a zero head.
//!
//! The final LayerNorm is applied to the class token only: LayerNorm works
//! token by token, so the logits and every gradient are those of
//! torchvision's "normalise every token, then keep the first".

use convnet_layers::{
    join, Conv2d, Conv2dConfig, Dropout, Layer, LayerError, LayerNorm, LayerNormConfig, Linear,
    MultiheadAttention, MultiheadAttentionConfig, Param, Residual, Sequential, SummaryRow, GELU,
};
use convnet_tensor::init::{normal, xavier_uniform};
use convnet_tensor::{Rng, Tensor};

use crate::convnext::trunc_normal;
use crate::error::{Result, ZooError};
use crate::{ModelConfig, ModelEntry};

/// Epsilon of every LayerNorm of the ViT.
const LN_EPS: f32 = 1e-6;

const NAME: &str = "VisionTransformer";

/// The configuration of a Vision Transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct ViTConfig {
    /// Input height and width `S` (the position embedding is learned for
    /// exactly this size).
    pub image_size: usize,
    /// Patch height and width `P`; must divide `image_size`.
    pub patch_size: usize,
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Token width `D` (`hidden_dim`).
    pub hidden_dim: usize,
    /// Number of encoder blocks `L`.
    pub num_layers: usize,
    /// Attention heads; must divide `hidden_dim`.
    pub num_heads: usize,
    /// Hidden width `M` of each block's MLP.
    pub mlp_dim: usize,
    /// Dropout after the position embedding, the attention and inside the
    /// MLPs, in `[0, 1)` (torchvision's default 0).
    pub dropout: f32,
    /// Dropout on the attention weights, in `[0, 1)` (default 0).
    pub attention_dropout: f32,
}

impl ViTConfig {
    fn imagenet_16(hidden_dim: usize, num_heads: usize) -> Self {
        ViTConfig {
            image_size: 224,
            patch_size: 16,
            in_channels: 3,
            num_classes: 1000,
            hidden_dim,
            num_layers: 12,
            num_heads,
            mlp_dim: 4 * hidden_dim,
            dropout: 0.0,
            attention_dropout: 0.0,
        }
    }

    /// ViT-B/16, torchvision's `vit_b_16`: 86,567,656 parameters.
    pub fn b_16() -> Self {
        Self::imagenet_16(768, 12)
    }

    /// ViT-S/16 (DeiT-S sizes: D = 384, 6 heads): 22,050,664 parameters.
    pub fn s_16() -> Self {
        Self::imagenet_16(384, 6)
    }

    /// ViT-Ti/16 (DeiT-Ti sizes: D = 192, 3 heads): 5,717,416 parameters.
    pub fn ti_16() -> Self {
        Self::imagenet_16(192, 3)
    }

    /// A small ViT for 1×28×28 images and 10 classes: 7×7 patches (16
    /// tokens and the class token), D = 64, 4 blocks of 4 heads, MLP width
    /// 128; 139,018 parameters.
    pub fn tiny28() -> Self {
        ViTConfig {
            image_size: 28,
            patch_size: 7,
            in_channels: 1,
            num_classes: 10,
            hidden_dim: 64,
            num_layers: 4,
            num_heads: 4,
            mlp_dim: 128,
            dropout: 0.0,
            attention_dropout: 0.0,
        }
    }

    /// Patches per side, `S / P`.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Tokens per image, class token included: `(S / P)² + 1`.
    pub fn seq_length(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    /// Errors on zero sizes, a patch size that does not divide the image, a
    /// head count that does not divide `hidden_dim`, or a dropout outside
    /// `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ZooError::config("ViT", msg));
        for (what, v) in [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("hidden_dim", self.hidden_dim),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("mlp_dim", self.mlp_dim),
        ] {
            if v == 0 {
                return bad(format!("{what} must be >= 1"));
            }
        }
        if self.image_size % self.patch_size != 0 {
            return bad(format!(
                "patch_size ({}) must divide image_size ({})",
                self.patch_size, self.image_size
            ));
        }
        if self.hidden_dim % self.num_heads != 0 {
            return bad(format!(
                "num_heads ({}) must divide hidden_dim ({})",
                self.num_heads, self.hidden_dim
            ));
        }
        for (what, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{what} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }
}

fn boxed(l: impl Layer + 'static) -> Box<dyn Layer> {
    Box::new(l)
}

fn layer_norm(dim: usize) -> Result<LayerNorm> {
    Ok(LayerNorm::with_config(
        LayerNormConfig::new(dim).eps(LN_EPS),
    )?)
}

/// An MLP linear layer as torchvision's `MLPBlock` initialises it:
/// Xavier-uniform weight, bias of std 1e-6.
fn mlp_linear(in_features: usize, out_features: usize, rng: &mut Rng) -> Result<Linear> {
    let weight = xavier_uniform(&[out_features, in_features], rng);
    let bias = normal(&[out_features], 0.0, 1e-6, rng);
    Ok(Linear::from_tensors(weight, Some(bias))?)
}

/// One pre-norm encoder block, torchvision's `EncoderBlock`:
/// `x + dropout(self_attention(ln_1(x)))`, then `x + mlp(ln_2(x))`.
///
/// It is a composition: a [`Sequential`] of two [`Residual`]s merged into its
/// namespace, so its keys are `ln_1.weight`, `self_attention.in_proj_weight`,
/// `self_attention.out_proj.weight`, `ln_2.weight`, `mlp.0.weight`,
/// `mlp.3.weight`, ... as torchvision's.
///
/// # Shapes
///
/// - input: `[N, T, D]`
/// - output: the same
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::vit::{encoder_block, ViTConfig};
///
/// let mut rng = Rng::seed_from(0);
/// let cfg = ViTConfig { hidden_dim: 8, num_heads: 2, mlp_dim: 16, ..ViTConfig::tiny28() };
/// let mut block = encoder_block(&cfg, &mut rng)?;
/// let keys: Vec<String> = block.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys[..4], ["ln_1.weight", "ln_1.bias", "self_attention.in_proj_weight", "self_attention.in_proj_bias"]);
/// assert_eq!(keys[keys.len() - 1], "mlp.3.bias");
/// let x = Tensor::randn(&[2, 5, 8], 0.0, 1.0, &mut rng);
/// assert_eq!(block.forward(&x)?.shape(), &[2, 5, 8]);
/// assert_eq!(block.backward(&x)?.shape(), &[2, 5, 8]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn encoder_block(config: &ViTConfig, rng: &mut Rng) -> Result<Sequential> {
    let d = config.hidden_dim;
    let attention = MultiheadAttention::new(
        MultiheadAttentionConfig::new(d, config.num_heads).dropout(config.attention_dropout),
        rng,
    )?;
    let attention_branch = Sequential::named(vec![
        ("ln_1", boxed(layer_norm(d)?)),
        ("self_attention", boxed(attention)),
        ("dropout", boxed(Dropout::new(config.dropout, rng)?)),
    ])?;
    let mlp = Sequential::new(vec![
        boxed(mlp_linear(d, config.mlp_dim, rng)?),
        boxed(GELU::new()),
        boxed(Dropout::new(config.dropout, rng)?),
        boxed(mlp_linear(config.mlp_dim, d, rng)?),
        boxed(Dropout::new(config.dropout, rng)?),
    ]);
    let mlp_branch = Sequential::named(vec![("ln_2", boxed(layer_norm(d)?)), ("mlp", boxed(mlp))])?;
    Ok(Sequential::named(vec![
        ("", boxed(Residual::new(boxed(attention_branch), None)?)),
        ("", boxed(Residual::new(boxed(mlp_branch), None)?)),
    ])?)
}

/// The Vision Transformer: patch embedding, class token, learned position
/// embedding, pre-norm encoder blocks, final LayerNorm and linear head.
///
/// PyTorch equivalent: `torchvision.models.VisionTransformer` (without the
/// optional `pre_logits` representation layer, which none of torchvision's
/// named models uses).
///
/// # Shapes
///
/// - input: `[N, C, S, S]`, exactly the configured `image_size`
/// - output: `[N, num_classes]`
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::vit::{ViTConfig, VisionTransformer};
///
/// let mut rng = Rng::seed_from(0);
/// let mut vit = VisionTransformer::new(&ViTConfig::tiny28(), &mut rng)?;
/// assert_eq!(vit.num_params(), 139_018);
/// let shapes = vit.param_shapes();
/// assert_eq!(shapes[0], ("class_token".to_string(), vec![1, 1, 64]));
/// assert_eq!(shapes[3], ("encoder.pos_embedding".to_string(), vec![1, 17, 64]));
/// let x = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut rng);
/// let y = vit.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 10]);
/// assert_eq!(vit.backward(&y)?.shape(), x.shape());
/// assert!(vit.infer(&Tensor::zeros(&[2, 1, 32, 32])).is_err()); // not the trained size
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
#[derive(Debug)]
pub struct VisionTransformer {
    /// `[1, 1, D]`, prepended to the patch tokens.
    pub class_token: Param,
    /// The patch embedding, `Conv2d(C, D, P, stride P)`.
    pub conv_proj: Conv2d,
    /// `[1, T, D]`, added to the tokens.
    pub pos_embedding: Param,
    dropout: Dropout,
    /// The encoder blocks, named `encoder_layer_0`, ...
    layers: Sequential,
    /// The final LayerNorm (`encoder.ln`).
    ln: LayerNorm,
    /// `heads.head`.
    heads: Sequential,
    config: ViTConfig,
    /// The batch size of the last `forward`.
    cache: Option<usize>,
}

impl VisionTransformer {
    /// A ViT initialised as torchvision's.
    pub fn new(config: &ViTConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let (d, p) = (config.hidden_dim, config.patch_size);
        let mut conv_proj =
            Conv2d::new(Conv2dConfig::new(config.in_channels, d, p).stride(p), rng)?;
        let fan_in = config.in_channels * p * p;
        conv_proj.weight.value =
            trunc_normal(conv_proj.weight.shape(), (1.0 / fan_in as f32).sqrt(), rng);
        if let Some(b) = &mut conv_proj.bias {
            b.value.fill(0.0);
        }
        let t = config.seq_length();
        let pos_embedding = normal(&[1, t, d], 0.0, 0.02, rng);
        let dropout = Dropout::new(config.dropout, rng)?;
        let mut layers = Sequential::default();
        for i in 0..config.num_layers {
            layers.push_named(
                format!("encoder_layer_{i}"),
                boxed(encoder_block(config, rng)?),
            )?;
        }
        let head = Linear::from_tensors(
            Tensor::zeros(&[config.num_classes, d]),
            Some(Tensor::zeros(&[config.num_classes])),
        )?;
        Ok(VisionTransformer {
            class_token: Param::new(Tensor::zeros(&[1, 1, d])),
            conv_proj,
            pos_embedding: Param::new(pos_embedding),
            dropout,
            layers,
            ln: layer_norm(d)?,
            heads: Sequential::named(vec![("head", boxed(head))])?,
            config: config.clone(),
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ViTConfig {
        &self.config
    }

    /// The encoder blocks.
    pub fn layers(&self) -> &Sequential {
        &self.layers
    }

    /// Errors unless the input is `[N, C, S, S]` as configured; returns `N`.
    fn check(&self, shape: &[usize]) -> convnet_layers::Result<usize> {
        let c = &self.config;
        match shape {
            &[n, ch, h, w] if ch == c.in_channels && h == c.image_size && w == c.image_size => {
                Ok(n)
            }
            _ => Err(LayerError::input_shape(
                NAME,
                format!(
                    "[N, {}, {}, {}] (the position embedding is learned for this size)",
                    c.in_channels, c.image_size, c.image_size
                ),
                shape,
            )),
        }
    }

    /// Patch features `[N, D, g, g]` -> tokens `[N, T, D]`: the class token
    /// first, then the patches in row-major order, plus the position
    /// embedding.
    fn tokens(&self, patches: &Tensor, n: usize) -> Tensor {
        let (d, t) = (self.config.hidden_dim, self.config.seq_length());
        let g2 = t - 1;
        let (p, cls, pos) = (
            patches.as_slice(),
            self.class_token.value.as_slice(),
            self.pos_embedding.value.as_slice(),
        );
        let mut out = vec![0.0f32; n * t * d];
        for (s, sample) in out.chunks_exact_mut(t * d).enumerate() {
            sample[..d].copy_from_slice(cls);
            let src = &p[s * d * g2..(s + 1) * d * g2];
            for (c, plane) in src.chunks_exact(g2).enumerate() {
                for (i, &v) in plane.iter().enumerate() {
                    sample[(1 + i) * d + c] = v;
                }
            }
            for (v, &e) in sample.iter_mut().zip(pos) {
                *v += e;
            }
        }
        Tensor::from_vec(&[n, t, d], out).expect("sizes agree")
    }

    /// The class token of each sample: `[N, T, D]` -> `[N, D]`.
    fn first_token(x: &Tensor) -> Tensor {
        let (n, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let mut out = Vec::with_capacity(n * d);
        for sample in x.as_slice().chunks_exact(t * d) {
            out.extend_from_slice(&sample[..d]);
        }
        Tensor::from_vec(&[n, d], out).expect("sizes agree")
    }

    /// Runs the encoder blocks, the final norm and the head in inference
    /// mode.
    fn infer_from_tokens(&self, tokens: &Tensor) -> convnet_layers::Result<Tensor> {
        let x = self
            .layers
            .infer(tokens)
            .map_err(|e| e.in_child("encoder.layers"))?;
        let cls = self
            .ln
            .infer(&Self::first_token(&x))
            .map_err(|e| e.in_child("encoder.ln"))?;
        self.heads.infer(&cls).map_err(|e| e.in_child("heads"))
    }
}

impl Layer for VisionTransformer {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> convnet_layers::Result<Tensor> {
        let n = self.check(x.shape())?;
        let patches = self
            .conv_proj
            .infer(x)
            .map_err(|e| e.in_child("conv_proj"))?;
        self.infer_from_tokens(&self.tokens(&patches, n))
    }

    fn forward(&mut self, x: &Tensor) -> convnet_layers::Result<Tensor> {
        let n = self.check(x.shape())?;
        let patches = self
            .conv_proj
            .forward(x)
            .map_err(|e| e.in_child("conv_proj"))?;
        let tokens = self.tokens(&patches, n);
        let tokens = self
            .dropout
            .forward(&tokens)
            .map_err(|e| e.in_child("encoder.dropout"))?;
        let x = self
            .layers
            .forward(&tokens)
            .map_err(|e| e.in_child("encoder.layers"))?;
        let cls = self
            .ln
            .forward(&Self::first_token(&x))
            .map_err(|e| e.in_child("encoder.ln"))?;
        let y = self.heads.forward(&cls).map_err(|e| e.in_child("heads"))?;
        self.cache = Some(n);
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> convnet_layers::Result<Tensor> {
        let n = self.cache.ok_or_else(|| LayerError::no_cache(NAME))?;
        let c = &self.config;
        let (d, t, g) = (c.hidden_dim, c.seq_length(), c.grid());
        if grad_out.shape() != [n, c.num_classes] {
            return Err(LayerError::input_shape(
                NAME,
                format!(
                    "a gradient of the last output's shape [{n}, {}]",
                    c.num_classes
                ),
                grad_out.shape(),
            ));
        }
        self.cache = None;
        let g_cls = self
            .heads
            .backward(grad_out)
            .map_err(|e| e.in_child("heads"))?;
        let g_cls = self
            .ln
            .backward(&g_cls)
            .map_err(|e| e.in_child("encoder.ln"))?;
        // Only the class token reaches the head.
        let mut g_x = vec![0.0f32; n * t * d];
        for (sample, row) in g_x
            .chunks_exact_mut(t * d)
            .zip(g_cls.as_slice().chunks_exact(d))
        {
            sample[..d].copy_from_slice(row);
        }
        let g_x = Tensor::from_vec(&[n, t, d], g_x).expect("sizes agree");
        let g_tokens = self
            .layers
            .backward(&g_x)
            .map_err(|e| e.in_child("encoder.layers"))?;
        let g_tokens = self
            .dropout
            .backward(&g_tokens)
            .map_err(|e| e.in_child("encoder.dropout"))?;
        // Position embedding and class token: sums over the batch, in order.
        let g_pos = self.pos_embedding.grad.as_slice_mut();
        let g_cls_token = self.class_token.grad.as_slice_mut();
        let mut g_patches = vec![0.0f32; n * d * g * g];
        for (s, sample) in g_tokens.as_slice().chunks_exact(t * d).enumerate() {
            for (acc, &v) in g_pos.iter_mut().zip(sample) {
                *acc += v;
            }
            for (acc, &v) in g_cls_token.iter_mut().zip(&sample[..d]) {
                *acc += v;
            }
            let dst = &mut g_patches[s * d * g * g..(s + 1) * d * g * g];
            for (i, token) in sample[d..].chunks_exact(d).enumerate() {
                for (ch, &v) in token.iter().enumerate() {
                    dst[ch * g * g + i] = v;
                }
            }
        }
        let g_patches = Tensor::from_vec(&[n, d, g, g], g_patches).expect("sizes agree");
        self.conv_proj
            .backward(&g_patches)
            .map_err(|e| e.in_child("conv_proj"))
    }

    fn output_shape(&self, input_shape: &[usize]) -> convnet_layers::Result<Vec<usize>> {
        let n = self.check(input_shape)?;
        Ok(vec![n, self.config.num_classes])
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&join(prefix, "class_token"), &self.class_token);
        self.conv_proj.visit_params(&join(prefix, "conv_proj"), f);
        f(&join(prefix, "encoder.pos_embedding"), &self.pos_embedding);
        self.layers.visit_params(&join(prefix, "encoder.layers"), f);
        self.ln.visit_params(&join(prefix, "encoder.ln"), f);
        self.heads.visit_params(&join(prefix, "heads"), f);
    }

    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        self.conv_proj
            .set_frozen(&join(prefix, "conv_proj"), frozen);
        self.layers
            .set_frozen(&join(prefix, "encoder.layers"), frozen);
        self.ln.set_frozen(&join(prefix, "encoder.ln"), frozen);
        self.heads.set_frozen(&join(prefix, "heads"), frozen);
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join(prefix, "class_token"), &mut self.class_token);
        self.conv_proj
            .visit_params_mut(&join(prefix, "conv_proj"), f);
        f(
            &join(prefix, "encoder.pos_embedding"),
            &mut self.pos_embedding,
        );
        self.layers
            .visit_params_mut(&join(prefix, "encoder.layers"), f);
        self.ln.visit_params_mut(&join(prefix, "encoder.ln"), f);
        self.heads.visit_params_mut(&join(prefix, "heads"), f);
    }

    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        self.dropout
            .visit_rngs_mut(&join(prefix, "encoder.dropout"), f);
        self.layers
            .visit_rngs_mut(&join(prefix, "encoder.layers"), f);
    }

    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> convnet_layers::Result<Vec<usize>> {
        let out = self.output_shape(input_shape)?;
        let (n, c) = (input_shape[0], &self.config);
        let (d, t, g) = (c.hidden_dim, c.seq_length(), c.grid());
        rows.push(SummaryRow {
            name: name.to_string(),
            type_name: NAME.to_string(),
            depth,
            output_shape: out.clone(),
            params: self.num_params(),
            leaf: false,
        });
        let patches =
            self.conv_proj
                .summarize(&join(name, "conv_proj"), input_shape, depth + 1, rows)?;
        debug_assert_eq!(patches, [n, d, g, g]);
        // The token assembly: class token and position embedding.
        rows.push(SummaryRow {
            name: join(name, "class_token + encoder.pos_embedding"),
            type_name: "Tokens".to_string(),
            depth: depth + 1,
            output_shape: vec![n, t, d],
            params: self.class_token.len() + self.pos_embedding.len(),
            leaf: true,
        });
        self.dropout
            .summarize(&join(name, "encoder.dropout"), &[n, t, d], depth + 1, rows)?;
        self.layers
            .summarize(&join(name, "encoder.layers"), &[n, t, d], depth + 1, rows)?;
        self.ln
            .summarize(&join(name, "encoder.ln"), &[n, d], depth + 1, rows)?;
        self.heads
            .summarize(&join(name, "heads"), &[n, d], depth + 1, rows)?;
        Ok(out)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        let mut conv_proj = Conv2d::from_tensors(
            *self.conv_proj.config(),
            self.conv_proj.weight.value.clone(),
            self.conv_proj.bias.as_ref().map(|b| b.value.clone()),
        )
        .ok()?;
        conv_proj.weight = self.conv_proj.weight.clone();
        conv_proj.bias = self.conv_proj.bias.clone();
        let mut ln = layer_norm(self.config.hidden_dim).ok()?;
        let mut values = Vec::new();
        self.ln.visit_params("", &mut |_, p| values.push(p.clone()));
        let mut i = 0;
        ln.visit_params_mut("", &mut |_, p| {
            *p = values[i].clone();
            i += 1;
        });
        Some(Box::new(VisionTransformer {
            class_token: self.class_token.clone(),
            conv_proj,
            pos_embedding: self.pos_embedding.clone(),
            dropout: self.dropout.clone(),
            layers: self.layers.try_clone().ok()?,
            ln,
            heads: self.heads.try_clone().ok()?,
            config: self.config.clone(),
            cache: None,
        }))
    }
}

/// The ViT configuration a registry entry builds for `model`: the named
/// variant with the input channels, image size and classes of `model`.
fn from_model_config(name: &str, base: ViTConfig, model: &ModelConfig) -> Result<ViTConfig> {
    model.check(name)?;
    if let Some(v) = &model.variant {
        return Err(ZooError::config(
            name,
            format!("unknown variant `{v}`: this model has no variants"),
        ));
    }
    let config = ViTConfig {
        in_channels: model.in_channels,
        image_size: model.image_size,
        num_classes: model.num_classes,
        ..base
    };
    config
        .validate()
        .map_err(|e| ZooError::config(name, e.to_string()))?;
    Ok(config)
}

macro_rules! entry {
    ($const:ident, $name:literal, $variant:ident, $default:expr, $desc:literal) => {
        #[doc = concat!("Registry entry `", $name, "`.")]
        pub const $const: ModelEntry = ModelEntry {
            name: $name,
            description: $desc,
            variants: &[],
            default_config: $default,
            builder: |model, rng| {
                let config = from_model_config($name, ViTConfig::$variant(), model)?;
                Ok(Box::new(VisionTransformer::new(&config, rng)?))
            },
        };
    };
}

entry!(
    B_16,
    "vit_b_16",
    b_16,
    ModelConfig::imagenet,
    "ViT-B/16 (Dosovitskiy 2021), torchvision vit_b_16: D 768, 12 blocks of 12 heads, 86,567,656 parameters on 3x224x224"
);
entry!(
    S_16,
    "vit_s_16",
    s_16,
    ModelConfig::imagenet,
    "ViT-S/16 (DeiT-S sizes): D 384, 12 blocks of 6 heads, 22,050,664 parameters"
);
entry!(
    TI_16,
    "vit_ti_16",
    ti_16,
    ModelConfig::imagenet,
    "ViT-Ti/16 (DeiT-Ti sizes): D 192, 12 blocks of 3 heads, 5,717,416 parameters"
);
entry!(
    TINY28,
    "vit_tiny28",
    tiny28,
    ModelConfig::mnist,
    "small ViT for 1x28x28: 7x7 patches (16 tokens + class token), D 64, 4 blocks of 4 heads, 139,018 parameters"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors() {
        let ok = ViTConfig::tiny28();
        assert_eq!((ok.grid(), ok.seq_length()), (4, 17));
        assert_eq!(ViTConfig::b_16().seq_length(), 197);
        for bad in [
            ViTConfig {
                patch_size: 5,
                ..ok.clone()
            },
            ViTConfig {
                patch_size: 0,
                ..ok.clone()
            },
            ViTConfig {
                num_heads: 3,
                ..ok.clone()
            },
            ViTConfig {
                num_layers: 0,
                ..ok.clone()
            },
            ViTConfig {
                dropout: 1.0,
                ..ok.clone()
            },
            ViTConfig {
                attention_dropout: -0.5,
                ..ok.clone()
            },
        ] {
            let e = VisionTransformer::new(&bad, &mut Rng::seed_from(0)).unwrap_err();
            assert!(matches!(e, ZooError::Config { .. }), "{bad:?}: {e}");
        }
        let e = ViTConfig {
            patch_size: 5,
            ..ok
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("patch_size (5) must divide image_size (28)"),
            "{e}"
        );
    }
}
