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
//! The final LayerNorm is applied to the class token only ([`vit`]).

use convnet_layers::{
    ClassToken, Conv2d, Conv2dConfig, Dropout, ExpectShape, Flatten, LayerNorm, LayerNormConfig,
    Linear, MultiheadAttention, MultiheadAttentionConfig, Permute, PositionEmbedding, Residual,
    SelectToken, Sequential, Wrapped, GELU,
};
use convnet_tensor::init::{normal, xavier_uniform};
use convnet_tensor::{Rng, Tensor};

use crate::builder::{entry, no_variant};
use crate::convnext::trunc_normal;
use crate::error::{Result, ZooError};
use crate::ModelConfig;

/// Epsilon of every LayerNorm of the ViT.
const LN_EPS: f32 = 1e-6;

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
    let attention_branch = Sequential::default()
        .with_named("ln_1", layer_norm(d)?)?
        .with_named("self_attention", attention)?
        .with_named("dropout", Dropout::new(config.dropout, rng)?)?;
    let mlp = Sequential::default()
        .with(mlp_linear(d, config.mlp_dim, rng)?)
        .with(GELU::new())
        .with(Dropout::new(config.dropout, rng)?)
        .with(mlp_linear(config.mlp_dim, d, rng)?)
        .with(Dropout::new(config.dropout, rng)?);
    let mlp_branch = Sequential::default()
        .with_named("ln_2", layer_norm(d)?)?
        .with_named("mlp", mlp)?;
    Ok(Sequential::default()
        .with_named("", Residual::new(Box::new(attention_branch), None)?)?
        .with_named("", Residual::new(Box::new(mlp_branch), None)?)?)
}

/// Builds a Vision Transformer: patch embedding, class token, learned
/// position embedding, pre-norm encoder blocks, final LayerNorm and linear
/// head, initialised as torchvision's: a [`Sequential`] whose parameters are
/// torchvision's `state_dict`.
///
/// ```text
/// ""        Wrapped: class_token prepended to          [N, C, S, S] -> [N, T, D]
///           conv_proj, Flatten(2), Permute(0, 2, 1)     (image size checked first)
/// encoder   pos_embedding, dropout, layers, SelectToken(0), ln
/// heads     head: Linear(D, classes)
/// ```
///
/// The final LayerNorm is applied to the class token only: LayerNorm works
/// token by token, so the logits and every gradient are those of
/// torchvision's "normalise every token, then keep the first".
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
/// use convnet_zoo::vit::{vit, ViTConfig};
///
/// let mut rng = Rng::seed_from(0);
/// let mut model = vit(&ViTConfig::tiny28(), &mut rng)?;
/// assert_eq!(model.num_params(), 139_018);
/// let shapes = model.param_shapes();
/// assert_eq!(shapes[0], ("class_token".to_string(), vec![1, 1, 64]));
/// assert_eq!(shapes[3], ("encoder.pos_embedding".to_string(), vec![1, 17, 64]));
/// let x = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut rng);
/// let y = model.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 10]);
/// assert_eq!(model.backward(&y)?.shape(), x.shape());
/// assert!(model.infer(&Tensor::zeros(&[2, 1, 32, 32])).is_err()); // not the trained size
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn vit(config: &ViTConfig, rng: &mut Rng) -> Result<Sequential> {
    config.validate()?;
    let (c, d, p, s) = (
        config.in_channels,
        config.hidden_dim,
        config.patch_size,
        config.image_size,
    );
    let mut conv_proj = Conv2d::new(Conv2dConfig::new(c, d, p).stride(p), rng)?;
    conv_proj.weight.value = trunc_normal(
        conv_proj.weight.shape(),
        (1.0 / (c * p * p) as f32).sqrt(),
        rng,
    );
    if let Some(b) = &mut conv_proj.bias {
        b.value.fill(0.0);
    }
    let patches = Sequential::default()
        .with_named(
            "",
            ExpectShape::new(&[None, Some(c), Some(s), Some(s)])
                .because("the position embedding is learned for this size"),
        )?
        .with_named("conv_proj", conv_proj)?
        .with_named("", Flatten::with_dims(2, -1)?)?
        .with_named("", Permute::new(&[0, 2, 1])?)?;
    let pos_embedding = normal(&[1, config.seq_length(), d], 0.0, 0.02, rng);
    let mut encoder = Sequential::default()
        .with_named("", PositionEmbedding::from_tensor(pos_embedding)?)?
        .with_named("dropout", Dropout::new(config.dropout, rng)?)?;
    let mut layers = Sequential::default();
    for i in 0..config.num_layers {
        layers = layers.with_named(format!("encoder_layer_{i}"), encoder_block(config, rng)?)?;
    }
    encoder = encoder
        .with_named("layers", layers)?
        .with_named("", SelectToken::new(0))?
        .with_named("ln", layer_norm(d)?)?;
    let head = Linear::from_tensors(
        Tensor::zeros(&[config.num_classes, d]),
        Some(Tensor::zeros(&[config.num_classes])),
    )?;
    Ok(Sequential::default()
        .with_named("", Wrapped::new("", patches, ClassToken::new(d)?))?
        .with_named("encoder", encoder)?
        .with_named("heads", Sequential::default().with_named("head", head)?)?)
}

/// The ViT configuration a registry entry builds for `model`: the named
/// variant with the input channels, image size and classes of `model`.
fn from_model_config(name: &str, base: ViTConfig, model: &ModelConfig) -> Result<ViTConfig> {
    model.check(name)?;
    no_variant(name, model)?;
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

/// The registry entry of variant `$variant` (`ViTConfig::$variant`).
macro_rules! vit_entry {
    ($const:ident, $name:literal, $variant:ident, $default:expr, $desc:literal) => {
        entry!($const, $name, $default, $desc, |model, rng| {
            let config = from_model_config($name, ViTConfig::$variant(), model)?;
            Ok(Box::new(vit(&config, rng)?))
        });
    };
}

vit_entry!(
    B_16,
    "vit_b_16",
    b_16,
    ModelConfig::imagenet,
    "ViT-B/16 (Dosovitskiy 2021), torchvision vit_b_16: D 768, 12 blocks of 12 heads, 86,567,656 parameters on 3x224x224"
);
vit_entry!(
    S_16,
    "vit_s_16",
    s_16,
    ModelConfig::imagenet,
    "ViT-S/16 (DeiT-S sizes): D 384, 12 blocks of 6 heads, 22,050,664 parameters"
);
vit_entry!(
    TI_16,
    "vit_ti_16",
    ti_16,
    ModelConfig::imagenet,
    "ViT-Ti/16 (DeiT-Ti sizes): D 192, 12 blocks of 3 heads, 5,717,416 parameters"
);
vit_entry!(
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
            let e = vit(&bad, &mut Rng::seed_from(0)).unwrap_err();
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
