//! The Swin Transformer (Liu et al., "Swin Transformer: Hierarchical
//! Vision Transformer using Shifted Windows", 2021), as torchvision builds
//! its v1 models.
//!
//! ```text
//! features.0   patch embedding: Conv2d(C_in, E, k = s = 4), Permute to NHWC, LayerNorm(E)
//! features.1   stage 1: depths[0] × SwinTransformerBlock(E, heads[0])
//! features.2   PatchMerging(E): 2×2 neighbours -> LayerNorm(4E) -> Linear(4E, 2E, no bias)
//! features.3   stage 2: depths[1] × SwinTransformerBlock(2E, heads[1])
//! ...          (a patch merging between every two stages)
//! norm         LayerNorm(8E)
//! permute      Permute to NCHW
//! avgpool      AdaptiveAvgPool2d(1)
//! flatten      Flatten(1)
//! head         Linear(8E, classes)
//!
//! SwinTransformerBlock(d):
//!   x = x + stochastic_depth(attn(norm1(x)))     attn: shifted-window attention,
//!   x = x + stochastic_depth(mlp(norm2(x)))            window 7, shift 0 (even blocks)
//!   mlp: Linear(d, 4d), GELU, Dropout, Linear(4d, d), Dropout    or 3 (odd blocks)
//! ```
//!
//! | variant | torchvision | E | depths | heads | drop path | parameters |
//! |---|---|---|---|---|---|---|
//! | [`SwinConfig::t`] | `swin_t` | 96 | 2, 2, 6, 2 | 3, 6, 12, 24 | 0.2 | 28,288,354 |
//! | [`SwinConfig::s`] | `swin_s` | 96 | 2, 2, 18, 2 | 3, 6, 12, 24 | 0.3 | 49,606,258 |
//! | [`SwinConfig::b`] | `swin_b` | 128 | 2, 2, 18, 2 | 4, 8, 16, 32 | 0.5 | 87,768,224 |
//!
//! The maps are padded to multiples of the window inside the attention
//! and patch merging pads odd sizes, so any input of at least 4×4 pixels
//! goes through (28×28 MNIST: stages of 7×7, 4×4, 2×2, 1×1 in windows of
//! one padded 7×7 window, without shift). The drop-path probability grows
//! linearly with the block index, from 0 to the variant's value for the
//! last block. Parameter and buffer names, shapes and order are
//! torchvision's `state_dict` (`features.1.0.attn.relative_position_bias_table`,
//! `features.1.0.attn.relative_position_index`, `features.2.reduction.weight`,
//! ...). Weights are initialised as torchvision does: every linear layer
//! from a normal of std 0.02 truncated to ±2 with zero bias, the patch
//! convolution with PyTorch's default, bias tables of std 0.02, LayerNorms
//! one and zero.
//!
//! Each block's two residual branches have a stochastic depth layer of
//! their own (torchvision applies one module twice): the second is named
//! `stochastic_depth_mlp`, so that every generator has its own name in a
//! checkpoint. Neither has parameters; the `state_dict` is unchanged.

use convnet_layers::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, DropMode, Dropout, Flatten, LayerNorm, Linear,
    PatchMerging, Permute, Residual, Sequential, ShiftedWindowAttention,
    ShiftedWindowAttentionConfig, StochasticDepth, GELU,
};
use convnet_tensor::{Rng, Tensor};

use crate::builder::{entry, linear_drop_path, no_variant, trunc_normal};
use crate::error::{Result, ZooError};
use crate::ModelConfig;

/// The configuration of a Swin Transformer (v1).
#[derive(Debug, Clone, PartialEq)]
pub struct SwinConfig {
    /// Input channels (3 in torchvision).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Side of the patches of the embedding convolution (4).
    pub patch_size: usize,
    /// Width `E` of the first stage; stage `i` has `E · 2^i` channels.
    pub embed_dim: usize,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage; each must divide its stage's width.
    pub num_heads: Vec<usize>,
    /// Side of the attention windows (7); odd blocks shift by half of it.
    pub window_size: usize,
    /// Hidden width of the MLPs relative to the block's width (4).
    pub mlp_ratio: usize,
    /// Drop-path probability of the last block (the others grow linearly
    /// from 0), in `[0, 1]`.
    pub stochastic_depth_prob: f32,
}

impl SwinConfig {
    fn imagenet(embed_dim: usize, depths: [usize; 4], heads: [usize; 4], sd: f32) -> Self {
        SwinConfig {
            in_channels: 3,
            num_classes: 1000,
            patch_size: 4,
            embed_dim,
            depths: depths.to_vec(),
            num_heads: heads.to_vec(),
            window_size: 7,
            mlp_ratio: 4,
            stochastic_depth_prob: sd,
        }
    }

    /// Swin-T, torchvision's `swin_t`: 28,288,354 parameters.
    pub fn t() -> Self {
        Self::imagenet(96, [2, 2, 6, 2], [3, 6, 12, 24], 0.2)
    }

    /// Swin-S, torchvision's `swin_s`: 49,606,258 parameters.
    pub fn s() -> Self {
        Self::imagenet(96, [2, 2, 18, 2], [3, 6, 12, 24], 0.3)
    }

    /// Swin-B, torchvision's `swin_b`: 87,768,224 parameters.
    pub fn b() -> Self {
        Self::imagenet(128, [2, 2, 18, 2], [4, 8, 16, 32], 0.5)
    }

    /// Width of stage `i`, `E · 2^i`.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    /// Errors on zero sizes, lists of different lengths, head counts that
    /// do not divide their stage's width, or a probability outside
    /// `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ZooError::config("Swin", msg));
        for (what, v) in [
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("patch_size", self.patch_size),
            ("embed_dim", self.embed_dim),
            ("window_size", self.window_size),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if v == 0 {
                return bad(format!("{what} must be >= 1"));
            }
        }
        if self.depths.is_empty() || self.depths.len() != self.num_heads.len() {
            return bad(format!(
                "depths ({:?}) and num_heads ({:?}) must list the same number (>= 1) of stages",
                self.depths, self.num_heads
            ));
        }
        if self.depths.len() > 12 || self.depths.contains(&0) {
            return bad(format!(
                "every stage needs a depth >= 1, and at most 12 stages (depths {:?})",
                self.depths
            ));
        }
        for (i, &h) in self.num_heads.iter().enumerate() {
            let d = self.stage_dim(i);
            if h == 0 || d % h != 0 {
                return bad(format!(
                    "stage {} has {h} heads, which must divide its width {d}",
                    i + 1
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.stochastic_depth_prob) {
            return bad(format!(
                "stochastic_depth_prob must be in [0, 1], got {}",
                self.stochastic_depth_prob
            ));
        }
        Ok(())
    }

    /// The drop-path probability of every block, in order: torchvision's
    /// `p · block_id / (blocks − 1)` (0 for a single block).
    pub fn drop_path_probs(&self) -> Vec<f32> {
        linear_drop_path(&self.depths, self.stochastic_depth_prob)
    }

    /// The side of each stage's map for `image_size`×`image_size` inputs
    /// (the patch embedding, then `⌈s/2⌉` per patch merging), or an error
    /// if the image is smaller than one patch.
    pub fn stage_sizes(&self, image_size: usize) -> Result<Vec<usize>> {
        if image_size < self.patch_size {
            return Err(ZooError::config(
                "Swin",
                format!(
                    "a {image_size}x{image_size} input is smaller than one {p}x{p} patch",
                    p = self.patch_size
                ),
            ));
        }
        let mut s = image_size / self.patch_size;
        let mut sizes = vec![s];
        for _ in 1..self.depths.len() {
            s = s.div_ceil(2);
            sizes.push(s);
        }
        Ok(sizes)
    }
}

/// A linear layer as torchvision's Swin initialises every one: normal of
/// std 0.02 truncated to ±2, zero bias.
fn linear(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Result<Linear> {
    let weight = trunc_normal(&[out_features, in_features], 0.02, 2.0, rng);
    Ok(Linear::from_tensors(
        weight,
        bias.then(|| Tensor::zeros(&[out_features])),
    )?)
}

/// One Swin Transformer block, torchvision's `SwinTransformerBlock`:
/// `x + stochastic_depth(attn(norm1(x)))`, then
/// `x + stochastic_depth(mlp(norm2(x)))`, on a channels-last map.
///
/// A [`Sequential`] of two [`Residual`]s merged into its namespace, so its
/// keys are `norm1.weight`, `norm1.bias`, `attn.relative_position_bias_table`,
/// `attn.qkv.weight`, ..., `norm2.weight`, `mlp.0.weight`, ...,
/// `mlp.3.bias` (and the buffer `attn.relative_position_index`), as
/// torchvision's.
///
/// # Shapes
///
/// - input: `[N, H, W, dim]`
/// - output: the same
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::swin::swin_block;
///
/// let mut rng = Rng::seed_from(0);
/// let mut block = swin_block(8, 2, 3, 1, 4, 0.1, &mut rng)?;
/// let keys: Vec<String> = block.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys[..3], ["norm1.weight", "norm1.bias", "attn.relative_position_bias_table"]);
/// assert_eq!(keys[keys.len() - 1], "mlp.3.bias");
/// let x = Tensor::randn(&[2, 5, 4, 8], 0.0, 1.0, &mut rng);
/// assert_eq!(block.forward(&x)?.shape(), &[2, 5, 4, 8]);
/// assert_eq!(block.backward(&x)?.shape(), &[2, 5, 4, 8]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn swin_block(
    dim: usize,
    num_heads: usize,
    window: usize,
    shift: usize,
    mlp_ratio: usize,
    stochastic_depth_prob: f32,
    rng: &mut Rng,
) -> Result<Sequential> {
    let mut attn = ShiftedWindowAttention::new(
        ShiftedWindowAttentionConfig::new(dim, num_heads, window).shift(shift),
        rng,
    )?;
    attn.qkv = linear(dim, 3 * dim, true, rng)?;
    attn.proj = linear(dim, dim, true, rng)?;
    let attention_branch = Sequential::default()
        .with_named("norm1", LayerNorm::new(dim)?)?
        .with_named("attn", attn)?
        .with_named(
            "stochastic_depth",
            StochasticDepth::new(stochastic_depth_prob, DropMode::Row, rng)?,
        )?;
    let hidden = mlp_ratio * dim;
    let mlp = Sequential::default()
        .with(linear(dim, hidden, true, rng)?)
        .with(GELU::new())
        .with(Dropout::new(0.0, rng)?)
        .with(linear(hidden, dim, true, rng)?)
        .with(Dropout::new(0.0, rng)?);
    let mlp_branch = Sequential::default()
        .with_named("norm2", LayerNorm::new(dim)?)?
        .with_named("mlp", mlp)?
        .with_named(
            "stochastic_depth_mlp",
            StochasticDepth::new(stochastic_depth_prob, DropMode::Row, rng)?,
        )?;
    Ok(Sequential::default()
        .with_named("", Residual::new(Box::new(attention_branch), None)?)?
        .with_named("", Residual::new(Box::new(mlp_branch), None)?)?)
}

/// Builds a Swin Transformer: a [`Sequential`] with children `features`,
/// `norm`, `permute`, `avgpool`, `flatten` and `head`, as torchvision's
/// `SwinTransformer` module.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::swin::{swin, SwinConfig};
///
/// let mut rng = Rng::seed_from(0);
/// let cfg = SwinConfig { embed_dim: 8, depths: vec![2, 1], num_heads: vec![2, 2], ..SwinConfig::t() };
/// let mut model = swin(&cfg, &mut rng)?;
/// let shapes = model.param_shapes();
/// assert_eq!(shapes[0], ("features.0.0.weight".to_string(), vec![8, 3, 4, 4]));
/// assert_eq!(shapes[2], ("features.0.2.weight".to_string(), vec![8]));
/// let x = Tensor::randn(&[2, 3, 36, 36], 0.0, 1.0, &mut rng);
/// assert_eq!(model.forward(&x)?.shape(), &[2, 1000]);
/// assert_eq!(model.backward(&Tensor::ones(&[2, 1000]))?.shape(), x.shape());
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn swin(config: &SwinConfig, rng: &mut Rng) -> Result<Sequential> {
    config.validate()?;
    let (p, e) = (config.patch_size, config.embed_dim);
    let mut features = Sequential::default().with(
        Sequential::default()
            .with(Conv2d::new(
                Conv2dConfig::new(config.in_channels, e, p).stride(p),
                rng,
            )?)
            .with(Permute::new(&[0, 2, 3, 1])?)
            .with(LayerNorm::new(e)?),
    );
    let mut drop_path = config.drop_path_probs().into_iter();
    let window = config.window_size;
    for (stage, (&depth, &heads)) in config.depths.iter().zip(&config.num_heads).enumerate() {
        let dim = config.stage_dim(stage);
        let mut blocks = Sequential::default();
        for i in 0..depth {
            let shift = if i % 2 == 0 { 0 } else { window / 2 };
            let sd = drop_path.next().expect("one probability per block");
            blocks = blocks.with(swin_block(
                dim,
                heads,
                window,
                shift,
                config.mlp_ratio,
                sd,
                rng,
            )?);
        }
        features = features.with(blocks);
        if stage + 1 < config.depths.len() {
            let mut merge = PatchMerging::new(dim, rng)?;
            merge.reduction = linear(4 * dim, 2 * dim, false, rng)?;
            features = features.with(merge);
        }
    }
    let last = config.stage_dim(config.depths.len() - 1);
    Ok(Sequential::default()
        .with_named("features", features)?
        .with_named("norm", LayerNorm::new(last)?)?
        .with_named("permute", Permute::new(&[0, 3, 1, 2])?)?
        .with_named("avgpool", AdaptiveAvgPool2d::new(1)?)?
        .with_named("flatten", Flatten::new())?
        .with_named("head", linear(last, config.num_classes, true, rng)?)?)
}

/// The Swin configuration a registry entry builds for `model`: the named
/// variant with the input channels and classes of `model`, after checking
/// that its images hold at least one patch.
fn from_model_config(name: &str, base: SwinConfig, model: &ModelConfig) -> Result<SwinConfig> {
    model.check(name)?;
    no_variant(name, model)?;
    let config = SwinConfig {
        in_channels: model.in_channels,
        num_classes: model.num_classes,
        ..base
    };
    config
        .stage_sizes(model.image_size)
        .map_err(|e| ZooError::config(name, e.to_string()))?;
    Ok(config)
}

/// The registry entry of variant `$variant` (`SwinConfig::$variant`).
macro_rules! swin_entry {
    ($const:ident, $name:literal, $variant:ident, $desc:literal) => {
        entry!($const, $name, ModelConfig::imagenet, $desc, |model, rng| {
            let config = from_model_config($name, SwinConfig::$variant(), model)?;
            Ok(Box::new(swin(&config, rng)?))
        });
    };
}

swin_entry!(
    T,
    "swin_t",
    t,
    "Swin-T (Liu 2021), torchvision swin_t: embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7, 28,288,354 parameters on 3x224x224"
);
swin_entry!(
    S,
    "swin_s",
    s,
    "Swin-S, torchvision swin_s: embed 96, depths 2-2-18-2, heads 3-6-12-24, window 7, 49,606,258 parameters"
);
swin_entry!(
    B,
    "swin_b",
    b,
    "Swin-B, torchvision swin_b: embed 128, depths 2-2-18-2, heads 4-8-16-32, window 7, 87,768,224 parameters"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_path_and_stage_sizes() {
        let p = SwinConfig::t().drop_path_probs();
        assert_eq!(p.len(), 12);
        assert_eq!((p[0], p[11]), (0.0, 0.2));
        assert!((p[5] - 0.2 * 5.0 / 11.0).abs() < 1e-7);
        assert_eq!(SwinConfig::s().drop_path_probs()[23], 0.3);
        assert_eq!(SwinConfig::b().drop_path_probs()[23], 0.5);
        assert_eq!(SwinConfig::t().stage_sizes(224).unwrap(), [56, 28, 14, 7]);
        assert_eq!(SwinConfig::t().stage_sizes(28).unwrap(), [7, 4, 2, 1]);
        assert_eq!(SwinConfig::t().stage_sizes(4).unwrap(), [1, 1, 1, 1]);
        let e = SwinConfig::t().stage_sizes(3).unwrap_err().to_string();
        assert!(e.contains("3x3") && e.contains("4x4 patch"), "{e}");
    }

    #[test]
    fn config_errors() {
        let ok = SwinConfig::t();
        for bad in [
            SwinConfig {
                depths: vec![],
                num_heads: vec![],
                ..ok.clone()
            },
            SwinConfig {
                depths: vec![2, 2],
                ..ok.clone()
            },
            SwinConfig {
                depths: vec![2, 0, 2, 2],
                ..ok.clone()
            },
            SwinConfig {
                num_heads: vec![3, 6, 12, 25],
                ..ok.clone()
            },
            SwinConfig {
                window_size: 0,
                ..ok.clone()
            },
            SwinConfig {
                patch_size: 0,
                ..ok.clone()
            },
            SwinConfig {
                stochastic_depth_prob: -0.1,
                ..ok.clone()
            },
        ] {
            let e = swin(&bad, &mut Rng::seed_from(0)).unwrap_err();
            assert!(matches!(e, ZooError::Config { .. }), "{bad:?}: {e}");
        }
        let e = SwinConfig {
            num_heads: vec![3, 6, 12, 25],
            ..ok
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("stage 4 has 25 heads") && e.contains("768"),
            "{e}"
        );
    }
}
