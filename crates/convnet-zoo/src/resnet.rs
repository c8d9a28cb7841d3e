//! ResNet (He et al., 2015), exactly as torchvision builds it, plus the
//! narrow and small-input variants of the same family.
//!
//! ```text
//! conv1  7×7, 64, stride 2, padding 3 (no bias) -> bn1 -> relu   112×112
//! maxpool 3×3, stride 2, padding 1                                56×56
//! layer1 .. layer4: blocks of widths 64, 128, 256, 512; the first block
//!        of layer2..4 has stride 2                               56, 28, 14, 7
//! avgpool (adaptive, 1×1) -> flatten -> fc                        classes
//! ```
//!
//! | name      | block      | blocks per stage | weight layers       | parameters |
//! |-----------|------------|------------------|---------------------|------------|
//! | ResNet-18 | basic      | 2, 2, 2, 2       | 1 + 2·8 + 1 = 18    | 11,689,512 |
//! | ResNet-34 | basic      | 3, 4, 6, 3       | 1 + 2·16 + 1 = 34   | 21,797,672 |
//! | ResNet-50 | bottleneck | 3, 4, 6, 3       | 1 + 3·16 + 1 = 50   | 25,557,032 |
//! | ResNet-101| bottleneck | 3, 4, 23, 3      | 1 + 3·33 + 1 = 101  | 44,549,160 |
//! | ResNet-152| bottleneck | 3, 8, 36, 3      | 1 + 3·50 + 1 = 152  | 60,192,808 |
//!
//! - **Basic block** (`expansion` 1): `conv1` 3×3 (stride s) → `bn1` → ReLU →
//!   `conv2` 3×3 → `bn2`, plus the shortcut, then ReLU.
//! - **Bottleneck** (`expansion` 4, torchvision's "ResNet v1.5": the stride
//!   is on the 3×3): `conv1` 1×1 → `bn1` → ReLU → `conv2` 3×3 (stride s) →
//!   `bn2` → ReLU → `conv3` 1×1 to 4× the width → `bn3`, plus the shortcut,
//!   then ReLU.
//! - **Shortcut**: the identity, or when the shape changes (stride 2 or a
//!   different channel count) a projection `downsample` = 1×1 convolution
//!   (stride s, no bias) → BatchNorm.
//!
//! PyTorch equivalent: `torchvision.models.resnet50()` and its siblings;
//! parameter names are its `state_dict` keys (`layer1.0.downsample.1.weight`,
//! `layer4.2.bn3.running_var`, `fc.weight`), initialisation as torchvision's
//! (`kaiming_normal_(fan_out)` convolutions, BatchNorm 1 and 0, PyTorch's
//! default for `fc`; optionally `zero_init_residual`).
//!
//! [`Stem::Small`] replaces the 7×7 stride-2 convolution and the max-pool by
//! one 3×3 stride-1 convolution, for 28×28 or 32×32 inputs (as the CIFAR
//! ResNets of the paper, §4.2): see [`ResNetConfig::resnet18_small`] and
//! [`ResNetConfig::resnet20`].

use convnet_layers::{
    AdaptiveAvgPool2d, Conv2dConfig, Flatten, Layer, LinearConfig, MaxPool2d, Pool2dConfig, ReLU,
    Residual, Sequential,
};
use convnet_tensor::Rng;

use crate::builder::{
    batch_norm, build_checked, check_sizes, conv, entry, linear, ConvInit, LinearInit,
};
use crate::error::{Result, ZooError};
use crate::ModelConfig;

/// The residual block of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18, 34 and the CIFAR ResNets).
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand to 4× the width (ResNet-50, 101, 152).
    Bottleneck,
}

impl Block {
    /// Output channels over the stage width: 1 (basic) or 4 (bottleneck).
    pub fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }

    /// Convolutions on the main path of one block: 2 or 3.
    pub fn convs(self) -> usize {
        match self {
            Block::Basic => 2,
            Block::Bottleneck => 3,
        }
    }
}

/// The first layers of a ResNet, before `layer1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stem {
    /// torchvision's: 7×7 convolution of stride 2, padding 3, BatchNorm,
    /// ReLU, 3×3 max-pool of stride 2 (÷4 in size).
    ImageNet,
    /// 3×3 convolution of stride 1, padding 1, BatchNorm, ReLU, no pooling:
    /// for 28×28 and 32×32 inputs.
    Small,
}

/// A ResNet's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    /// The residual block.
    pub block: Block,
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet-18).
    pub layers: Vec<usize>,
    /// Width of each stage (`[64, 128, 256, 512]`); a stage outputs
    /// `width × expansion` channels. Stages after the first start with
    /// stride 2.
    pub widths: Vec<usize>,
    /// The stem.
    pub stem: Stem,
    /// Output channels of the stem convolution (64).
    pub stem_width: usize,
    /// Input channels (3).
    pub in_channels: usize,
    /// Output classes (1000).
    pub num_classes: usize,
    /// Initialise the last BatchNorm of every block to zero, so that every
    /// block starts as the identity (torchvision's `zero_init_residual`,
    /// off by default).
    pub zero_init_residual: bool,
}

impl ResNetConfig {
    fn imagenet(block: Block, layers: [usize; 4]) -> Self {
        ResNetConfig {
            block,
            layers: layers.to_vec(),
            widths: vec![64, 128, 256, 512],
            stem: Stem::ImageNet,
            stem_width: 64,
            in_channels: 3,
            num_classes: 1000,
            zero_init_residual: false,
        }
    }

    /// ResNet-18: basic blocks `[2, 2, 2, 2]`, 11,689,512 parameters.
    pub fn resnet18() -> Self {
        Self::imagenet(Block::Basic, [2, 2, 2, 2])
    }

    /// ResNet-34: basic blocks `[3, 4, 6, 3]`, 21,797,672 parameters.
    pub fn resnet34() -> Self {
        Self::imagenet(Block::Basic, [3, 4, 6, 3])
    }

    /// ResNet-50: bottlenecks `[3, 4, 6, 3]`, 25,557,032 parameters.
    pub fn resnet50() -> Self {
        Self::imagenet(Block::Bottleneck, [3, 4, 6, 3])
    }

    /// ResNet-101: bottlenecks `[3, 4, 23, 3]`, 44,549,160 parameters.
    pub fn resnet101() -> Self {
        Self::imagenet(Block::Bottleneck, [3, 4, 23, 3])
    }

    /// ResNet-152: bottlenecks `[3, 8, 36, 3]`, 60,192,808 parameters.
    pub fn resnet152() -> Self {
        Self::imagenet(Block::Bottleneck, [3, 8, 36, 3])
    }

    /// ResNet-18 at full width for 1×28×28 inputs and 10 classes: a 3×3
    /// stride-1 stem and no max-pool (stages at 28, 14, 7 and 4 pixels);
    /// 11,172,810 parameters.
    pub fn resnet18_small() -> Self {
        ResNetConfig {
            stem: Stem::Small,
            in_channels: 1,
            num_classes: 10,
            ..Self::resnet18()
        }
    }

    /// The CIFAR ResNet-20 of the paper (§4.2) for 1×28×28 inputs and 10
    /// classes: a 3×3 stem of 16 channels, three stages of three basic
    /// blocks of widths 16, 32, 64 (stages at 28, 14, 7 pixels), projection
    /// shortcuts where the shape changes (the paper's option B); 272,186
    /// parameters.
    pub fn resnet20() -> Self {
        ResNetConfig {
            block: Block::Basic,
            layers: vec![3, 3, 3],
            widths: vec![16, 32, 64],
            stem: Stem::Small,
            stem_width: 16,
            in_channels: 1,
            num_classes: 10,
            zero_init_residual: false,
        }
    }

    /// Convolutions and linear layers on the longest path: the stem, every
    /// block's main path, `fc` (18 for ResNet-18, 50 for ResNet-50).
    pub fn weight_layers(&self) -> usize {
        1 + self.block.convs() * self.layers.iter().sum::<usize>() + 1
    }

    /// Checks every size.
    pub fn validate(&self, model: &str) -> Result<()> {
        check_sizes(
            model,
            &[
                ("in_channels", self.in_channels),
                ("num_classes", self.num_classes),
                ("stem_width", self.stem_width),
                ("stages", self.layers.len()),
            ],
        )?;
        if self.layers.len() != self.widths.len() {
            return Err(ZooError::config(
                model,
                format!(
                    "{} stages of blocks but {} stage widths",
                    self.layers.len(),
                    self.widths.len()
                ),
            ));
        }
        if let Some(i) =
            (0..self.layers.len()).find(|&i| self.layers[i] == 0 || self.widths[i] == 0)
        {
            return Err(ZooError::config(
                model,
                format!(
                    "stage {} must have at least one block and a width >= 1",
                    i + 1
                ),
            ));
        }
        Ok(())
    }
}

fn conv_bn(
    name: &str,
    bn_name: &str,
    cfg: Conv2dConfig,
    rng: &mut Rng,
) -> Result<[(String, Box<dyn Layer>); 2]> {
    let width = cfg.out_channels;
    Ok([
        (
            name.to_string(),
            Box::new(conv(cfg.bias(false), ConvInit::KaimingFanOut, rng)?),
        ),
        (bn_name.to_string(), Box::new(batch_norm(width, 1e-5)?)),
    ])
}

/// The projection shortcut `downsample`: 1×1 convolution (stride `stride`,
/// no bias) and BatchNorm, children `0` and `1` as torchvision's.
fn downsample(
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    rng: &mut Rng,
) -> Result<Sequential> {
    let cfg = Conv2dConfig::new(in_channels, out_channels, 1)
        .stride(stride)
        .bias(false);
    Ok(Sequential::new(vec![
        Box::new(conv(cfg, ConvInit::KaimingFanOut, rng)?),
        Box::new(batch_norm(out_channels, 1e-5)?),
    ]))
}

/// Wraps a block body with its shortcut (a projection when the shape
/// changes) and the final ReLU.
fn residual(
    mut body: Vec<(String, Box<dyn Layer>)>,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    zero_init_last_bn: bool,
    rng: &mut Rng,
) -> Result<Residual> {
    let shortcut = if stride != 1 || in_channels != out_channels {
        Some(Box::new(downsample(in_channels, out_channels, stride, rng)?) as Box<dyn Layer>)
    } else {
        None
    };
    if zero_init_last_bn {
        // The last child of the body is its last BatchNorm.
        let (_, last) = body.last_mut().expect("a body");
        last.visit_params_mut("", &mut |name, p| {
            if name == "weight" {
                p.value.fill(0.0);
            }
        });
    }
    let body = Sequential::named(body)?;
    Ok(Residual::new(Box::new(body), shortcut)?
        .with_activation(Box::new(ReLU::new()))
        .with_names("", "downsample", "relu")?)
}

/// torchvision's `BasicBlock`: `conv1` 3×3 (stride `stride`) → `bn1` →
/// ReLU → `conv2` 3×3 → `bn2`, plus the identity or a projection
/// `downsample`, then ReLU. Output: `planes` channels.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::resnet::basic_block;
///
/// let mut rng = Rng::seed_from(0);
/// let mut block = basic_block(4, 8, 2, false, &mut rng)?;
/// let keys: Vec<String> = block.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys[0], "conv1.weight");
/// assert_eq!(keys[keys.len() - 1], "downsample.1.bias");
/// let x = Tensor::randn(&[2, 4, 8, 8], 0.0, 1.0, &mut rng);
/// assert_eq!(block.forward(&x)?.shape(), &[2, 8, 4, 4]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn basic_block(
    in_channels: usize,
    planes: usize,
    stride: usize,
    zero_init_residual: bool,
    rng: &mut Rng,
) -> Result<Residual> {
    let mut body = Vec::new();
    body.extend(conv_bn(
        "conv1",
        "bn1",
        Conv2dConfig::new(in_channels, planes, 3)
            .stride(stride)
            .padding(1),
        rng,
    )?);
    body.push(("relu1".to_string(), Box::new(ReLU::new()) as Box<dyn Layer>));
    body.extend(conv_bn(
        "conv2",
        "bn2",
        Conv2dConfig::new(planes, planes, 3).padding(1),
        rng,
    )?);
    residual(body, in_channels, planes, stride, zero_init_residual, rng)
}

/// torchvision's `Bottleneck` (ResNet v1.5): `conv1` 1×1 to `planes` →
/// `bn1` → ReLU → `conv2` 3×3 (stride `stride`) → `bn2` → ReLU → `conv3` 1×1
/// to `4 × planes` → `bn3`, plus the identity or a projection `downsample`,
/// then ReLU.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::Rng;
/// use convnet_zoo::resnet::bottleneck;
///
/// let block = bottleneck(64, 64, 1, false, &mut Rng::seed_from(0))?;
/// // layer1.0 of ResNet-50: 64 -> 256 channels, with a projection.
/// assert_eq!(block.num_params(), 75_008);
/// assert_eq!(block.output_shape(&[1, 64, 56, 56])?, vec![1, 256, 56, 56]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn bottleneck(
    in_channels: usize,
    planes: usize,
    stride: usize,
    zero_init_residual: bool,
    rng: &mut Rng,
) -> Result<Residual> {
    let out = planes * Block::Bottleneck.expansion();
    let mut body = Vec::new();
    body.extend(conv_bn(
        "conv1",
        "bn1",
        Conv2dConfig::new(in_channels, planes, 1),
        rng,
    )?);
    body.push(("relu1".to_string(), Box::new(ReLU::new()) as Box<dyn Layer>));
    body.extend(conv_bn(
        "conv2",
        "bn2",
        Conv2dConfig::new(planes, planes, 3)
            .stride(stride)
            .padding(1),
        rng,
    )?);
    body.push(("relu2".to_string(), Box::new(ReLU::new()) as Box<dyn Layer>));
    body.extend(conv_bn(
        "conv3",
        "bn3",
        Conv2dConfig::new(planes, out, 1),
        rng,
    )?);
    residual(body, in_channels, out, stride, zero_init_residual, rng)
}

/// Builds a ResNet: `conv1`, `bn1`, `relu`, `maxpool` (ImageNet stem only),
/// `layer1` ... `layerK` (each a `Sequential` of blocks `0`, `1`, ...),
/// `avgpool`, `flatten`, `fc`.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::resnet::{resnet, ResNetConfig};
///
/// let net = resnet(&ResNetConfig::resnet20(), &mut Rng::seed_from(0))?;
/// assert_eq!(net.num_params(), 272_186);
/// let y = net.infer(&Tensor::zeros(&[2, 1, 28, 28]))?;
/// assert_eq!(y.shape(), &[2, 10]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn resnet(config: &ResNetConfig, rng: &mut Rng) -> Result<Sequential> {
    build(config, "resnet", rng)
}

fn build(config: &ResNetConfig, model: &str, rng: &mut Rng) -> Result<Sequential> {
    config.validate(model)?;
    let stem_cfg = match config.stem {
        Stem::ImageNet => Conv2dConfig::new(config.in_channels, config.stem_width, 7)
            .stride(2)
            .padding(3),
        Stem::Small => Conv2dConfig::new(config.in_channels, config.stem_width, 3).padding(1),
    };
    let mut children: Vec<(String, Box<dyn Layer>)> =
        conv_bn("conv1", "bn1", stem_cfg, rng)?.into();
    children.push(("relu".into(), Box::new(ReLU::new())));
    if config.stem == Stem::ImageNet {
        let pool = MaxPool2d::new(Pool2dConfig::new(3).stride(2).padding(1))?;
        children.push(("maxpool".into(), Box::new(pool)));
    }
    let mut channels = config.stem_width;
    for (i, (&blocks, &width)) in config.layers.iter().zip(&config.widths).enumerate() {
        let mut stage = Sequential::default();
        for b in 0..blocks {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            let block = match config.block {
                Block::Basic => {
                    basic_block(channels, width, stride, config.zero_init_residual, rng)?
                }
                Block::Bottleneck => {
                    bottleneck(channels, width, stride, config.zero_init_residual, rng)?
                }
            };
            stage.push(Box::new(block));
            channels = width * config.block.expansion();
        }
        children.push((format!("layer{}", i + 1), Box::new(stage)));
    }
    children.push(("avgpool".into(), Box::new(AdaptiveAvgPool2d::new(1)?)));
    children.push(("flatten".into(), Box::new(Flatten::new())));
    let fc = linear(
        LinearConfig::new(channels, config.num_classes),
        LinearInit::Default,
        rng,
    )?;
    children.push(("fc".into(), Box::new(fc)));
    Ok(Sequential::named(children)?)
}

/// Builds registry model `name` from `base`, with the input channels and
/// classes of `config`.
pub(crate) fn build_registry(
    name: &str,
    base: ResNetConfig,
    config: &ModelConfig,
    rng: &mut Rng,
) -> Result<Box<dyn Layer>> {
    let cfg = ResNetConfig {
        in_channels: config.in_channels,
        num_classes: config.num_classes,
        ..base
    };
    build_checked(name, config, || build(&cfg, name, rng))
}

macro_rules! resnet_entry {
    ($entry:ident, $name:literal, $config:expr, $desc:literal) => {
        entry!(
            $entry,
            $name,
            ModelConfig::imagenet,
            $desc,
            |config, rng| { build_registry($name, $config, config, rng) }
        );
    };
}

resnet_entry!(
    RESNET18,
    "resnet18",
    ResNetConfig::resnet18(),
    "ResNet-18 (He 2015): basic blocks [2, 2, 2, 2]"
);
resnet_entry!(
    RESNET34,
    "resnet34",
    ResNetConfig::resnet34(),
    "ResNet-34: basic blocks [3, 4, 6, 3]"
);
resnet_entry!(
    RESNET50,
    "resnet50",
    ResNetConfig::resnet50(),
    "ResNet-50: bottleneck blocks [3, 4, 6, 3]"
);
resnet_entry!(
    RESNET101,
    "resnet101",
    ResNetConfig::resnet101(),
    "ResNet-101: bottleneck blocks [3, 4, 23, 3]"
);
resnet_entry!(
    RESNET152,
    "resnet152",
    ResNetConfig::resnet152(),
    "ResNet-152: bottleneck blocks [3, 8, 36, 3]"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_layers_match_the_names() {
        assert_eq!(ResNetConfig::resnet18().weight_layers(), 18);
        assert_eq!(ResNetConfig::resnet34().weight_layers(), 34);
        assert_eq!(ResNetConfig::resnet50().weight_layers(), 50);
        assert_eq!(ResNetConfig::resnet101().weight_layers(), 101);
        assert_eq!(ResNetConfig::resnet152().weight_layers(), 152);
        assert_eq!(ResNetConfig::resnet20().weight_layers(), 20);
    }

    #[test]
    fn zero_init_residual_zeroes_the_last_batch_norm_of_each_block() {
        let mut rng = Rng::seed_from(0);
        let cfg = ResNetConfig {
            zero_init_residual: true,
            ..ResNetConfig::resnet20()
        };
        let net = resnet(&cfg, &mut rng).unwrap();
        let mut zeroed = Vec::new();
        net.visit_params("", &mut |k, p| {
            if p.value.as_slice().iter().all(|&v| v == 0.0) && k.ends_with(".weight") {
                zeroed.push(k.to_string());
            }
        });
        assert_eq!(zeroed.len(), 9, "{zeroed:?}");
        assert!(
            zeroed.iter().all(|k| k.ends_with(".bn2.weight")),
            "{zeroed:?}"
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        let mut rng = Rng::seed_from(0);
        let e = resnet(
            &ResNetConfig {
                widths: vec![16, 32],
                ..ResNetConfig::resnet20()
            },
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("3 stages of blocks but 2 stage widths"), "{e}");
        let e = resnet(
            &ResNetConfig {
                layers: vec![3, 0, 3],
                ..ResNetConfig::resnet20()
            },
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("stage 2"), "{e}");
        let e = build_registry(
            "resnet20",
            ResNetConfig::resnet20(),
            &ModelConfig {
                variant: Some("x".into()),
                ..ModelConfig::mnist()
            },
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no variants"), "{e}");
    }
}
