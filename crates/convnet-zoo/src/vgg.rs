//! VGG (Simonyan & Zisserman, 2014), exactly as torchvision builds it.
//!
//! Five stages of 3×3 convolutions (padding 1, each followed by a ReLU, or
//! by a BatchNorm and a ReLU in the `_bn` variants), each stage closed by a
//! 2×2 max-pool of stride 2; then an adaptive average pool to 7×7 and three
//! linear layers (25088 -> 4096 -> 4096 -> classes, ReLU and dropout 0.5
//! between them).
//!
//! | name  | convolutions per stage (widths 64, 128, 256, 512, 512) | weight layers | parameters  | with BatchNorm |
//! |-------|---------------------------------------------------------|---------------|-------------|----------------|
//! | VGG11 | 1, 1, 2, 2, 2 (configuration "A")                       | 8 + 3 = 11    | 132,863,336 | 132,868,840    |
//! | VGG13 | 2, 2, 2, 2, 2 ("B")                                     | 10 + 3 = 13   | 133,047,848 | 133,053,736    |
//! | VGG16 | 2, 2, 3, 3, 3 ("D")                                     | 13 + 3 = 16   | 138,357,544 | 138,365,992    |
//! | VGG19 | 2, 2, 4, 4, 4 ("E")                                     | 16 + 3 = 19   | 143,667,240 | 143,678,248    |
//!
//! PyTorch equivalent: `torchvision.models.vgg16()` (`vgg16_bn()`, ...):
//! children `features` (numbered as torchvision numbers them, so VGG16's
//! last convolution is `features.28`), `avgpool`, `classifier` (`0`, `3`,
//! `6` are the linear layers); initialisation as torchvision's
//! (`kaiming_normal_(fan_out)` convolutions with zero bias, `N(0, 0.01)`
//! linear weights with zero bias, BatchNorm 1 and 0). A parameterless
//! `flatten` child stands for `torch.flatten(x, 1)`.
//!
//! [`VggConfig`] also describes smaller VGG-style networks (other stage
//! widths, classifier width and pooled size): `vgg_small` of
//! [`crate::small`] is one.

use convnet_layers::{
    AdaptiveAvgPool2d, Conv2dConfig, Dropout, Flatten, Layer, LinearConfig, MaxPool2d,
    Pool2dConfig, ReLU, Sequential,
};
use convnet_tensor::Rng;

use crate::builder::{
    batch_norm, build_checked, check_dropout, check_sizes, conv, entry, linear, ConvInit,
    LinearInit,
};
use crate::error::{Result, ZooError};
use crate::ModelConfig;

/// VGG's configuration: the convolution widths stage by stage, BatchNorm or
/// not, and the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct VggConfig {
    /// The output channels of each 3×3 convolution, stage by stage; every
    /// stage ends with a 2×2 max-pool of stride 2.
    pub stages: Vec<Vec<usize>>,
    /// A BatchNorm2d after every convolution (the `_bn` variants).
    pub batch_norm: bool,
    /// Input channels (3).
    pub in_channels: usize,
    /// Output classes (1000).
    pub num_classes: usize,
    /// Side of the adaptive average pool before the classifier (7).
    pub pool_size: usize,
    /// Width of the two hidden linear layers (4096).
    pub hidden: usize,
    /// Dropout probability after each hidden linear layer (0.5).
    pub dropout: f32,
}

impl VggConfig {
    fn imagenet(convs_per_stage: [usize; 5]) -> Self {
        VggConfig {
            stages: convs_per_stage
                .iter()
                .zip([64, 128, 256, 512, 512])
                .map(|(&n, w)| vec![w; n])
                .collect(),
            batch_norm: false,
            in_channels: 3,
            num_classes: 1000,
            pool_size: 7,
            hidden: 4096,
            dropout: 0.5,
        }
    }

    /// VGG11 (configuration "A"): 8 convolutions, 132,863,336 parameters.
    pub fn vgg11() -> Self {
        Self::imagenet([1, 1, 2, 2, 2])
    }

    /// VGG13 ("B"): 10 convolutions, 133,047,848 parameters.
    pub fn vgg13() -> Self {
        Self::imagenet([2, 2, 2, 2, 2])
    }

    /// VGG16 ("D"): 13 convolutions, 138,357,544 parameters.
    pub fn vgg16() -> Self {
        Self::imagenet([2, 2, 3, 3, 3])
    }

    /// VGG19 ("E"): 16 convolutions, 143,667,240 parameters.
    pub fn vgg19() -> Self {
        Self::imagenet([2, 2, 4, 4, 4])
    }

    /// The same network with a BatchNorm after every convolution.
    pub fn with_batch_norm(mut self) -> Self {
        self.batch_norm = true;
        self
    }

    /// Convolutions plus the three linear layers: the number in the name.
    pub fn weight_layers(&self) -> usize {
        self.stages.iter().map(Vec::len).sum::<usize>() + 3
    }

    /// Checks every size and the dropout probability.
    pub fn validate(&self, model: &str) -> Result<()> {
        check_sizes(
            model,
            &[
                ("in_channels", self.in_channels),
                ("num_classes", self.num_classes),
                ("pool_size", self.pool_size),
                ("hidden", self.hidden),
                ("stages", self.stages.len()),
            ],
        )?;
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.is_empty() || s.contains(&0))
        {
            return Err(ZooError::config(
                model,
                format!("stage {i} must have at least one convolution, each of width >= 1"),
            ));
        }
        check_dropout(model, "dropout", self.dropout)
    }
}

/// Builds a VGG network (features, avgpool, flatten, classifier) with
/// torchvision's layout, names and initialisation.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::Rng;
/// use convnet_zoo::vgg::{vgg, VggConfig};
///
/// // A narrow VGG11 with BatchNorm, for 32×32 inputs and 10 classes.
/// let config = VggConfig {
///     stages: vec![vec![8], vec![16], vec![32, 32], vec![32, 32], vec![32, 32]],
///     num_classes: 10,
///     pool_size: 1,
///     hidden: 64,
///     ..VggConfig::vgg11().with_batch_norm()
/// };
/// let net = vgg(&config, &mut Rng::seed_from(0))?;
/// assert_eq!(net.output_shape(&[2, 3, 32, 32])?, vec![2, 10]);
/// let keys: Vec<String> = net.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys[0..3], ["features.0.weight", "features.0.bias", "features.1.weight"]);
/// assert_eq!(keys.last().map(String::as_str), Some("classifier.6.bias"));
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn vgg(config: &VggConfig, rng: &mut Rng) -> Result<Sequential> {
    build(config, "vgg", rng)
}

fn build(config: &VggConfig, model: &str, rng: &mut Rng) -> Result<Sequential> {
    config.validate(model)?;
    let mut features = Sequential::default();
    let mut channels = config.in_channels;
    for stage in &config.stages {
        for &width in stage {
            let cfg = Conv2dConfig::new(channels, width, 3).padding(1);
            features.push(Box::new(conv(cfg, ConvInit::KaimingFanOut, rng)?));
            if config.batch_norm {
                features.push(Box::new(batch_norm(width, 1e-5)?));
            }
            features.push(Box::new(ReLU::new()));
            channels = width;
        }
        features.push(Box::new(MaxPool2d::new(Pool2dConfig::new(2).stride(2))?));
    }
    let flat = channels * config.pool_size * config.pool_size;
    let fc = |i, o, rng: &mut Rng| -> Result<Box<dyn Layer>> {
        Ok(Box::new(linear(
            LinearConfig::new(i, o),
            LinearInit::Normal(0.01),
            rng,
        )?))
    };
    let classifier = Sequential::new(vec![
        fc(flat, config.hidden, rng)?,
        Box::new(ReLU::new()),
        Box::new(Dropout::new(config.dropout, rng)?),
        fc(config.hidden, config.hidden, rng)?,
        Box::new(ReLU::new()),
        Box::new(Dropout::new(config.dropout, rng)?),
        fc(config.hidden, config.num_classes, rng)?,
    ]);
    Ok(Sequential::named(vec![
        ("features", Box::new(features) as Box<dyn Layer>),
        (
            "avgpool",
            Box::new(AdaptiveAvgPool2d::new(config.pool_size)?),
        ),
        ("flatten", Box::new(Flatten::new())),
        ("classifier", Box::new(classifier)),
    ])?)
}

/// Builds registry model `name` from `config` (any input channels, classes
/// and input size of at least 32×32).
pub(crate) fn build_registry(
    name: &str,
    base: VggConfig,
    config: &ModelConfig,
    rng: &mut Rng,
) -> Result<Box<dyn Layer>> {
    let cfg = VggConfig {
        in_channels: config.in_channels,
        num_classes: config.num_classes,
        ..base
    };
    build_checked(name, config, || build(&cfg, name, rng))
}

macro_rules! vgg_entry {
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

vgg_entry!(
    VGG11,
    "vgg11",
    VggConfig::vgg11(),
    "VGG11 (Simonyan 2014, config A): 8 conv 3x3 + 3 linear"
);
vgg_entry!(
    VGG11_BN,
    "vgg11_bn",
    VggConfig::vgg11().with_batch_norm(),
    "VGG11 with BatchNorm after every convolution"
);
vgg_entry!(
    VGG13,
    "vgg13",
    VggConfig::vgg13(),
    "VGG13 (config B): 10 conv 3x3 + 3 linear"
);
vgg_entry!(
    VGG13_BN,
    "vgg13_bn",
    VggConfig::vgg13().with_batch_norm(),
    "VGG13 with BatchNorm after every convolution"
);
vgg_entry!(
    VGG16,
    "vgg16",
    VggConfig::vgg16(),
    "VGG16 (config D): 13 conv 3x3 + 3 linear"
);
vgg_entry!(
    VGG16_BN,
    "vgg16_bn",
    VggConfig::vgg16().with_batch_norm(),
    "VGG16 with BatchNorm after every convolution"
);
vgg_entry!(
    VGG19,
    "vgg19",
    VggConfig::vgg19(),
    "VGG19 (config E): 16 conv 3x3 + 3 linear"
);
vgg_entry!(
    VGG19_BN,
    "vgg19_bn",
    VggConfig::vgg19().with_batch_norm(),
    "VGG19 with BatchNorm after every convolution"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_layers_match_the_names() {
        assert_eq!(VggConfig::vgg11().weight_layers(), 11);
        assert_eq!(VggConfig::vgg13().weight_layers(), 13);
        assert_eq!(VggConfig::vgg16().weight_layers(), 16);
        assert_eq!(VggConfig::vgg19().weight_layers(), 19);
    }

    #[test]
    fn bad_configs_are_errors() {
        let mut rng = Rng::seed_from(0);
        let empty = VggConfig {
            stages: vec![vec![8], vec![]],
            ..VggConfig::vgg11()
        };
        let e = vgg(&empty, &mut rng).unwrap_err().to_string();
        assert!(e.contains("stage 1"), "{e}");
        let no_classes = VggConfig {
            num_classes: 0,
            ..VggConfig::vgg11()
        };
        assert!(vgg(&no_classes, &mut rng)
            .unwrap_err()
            .to_string()
            .contains("num_classes"));
        // 16×16 inputs vanish after four of VGG's five max-pools.
        let tiny = ModelConfig {
            image_size: 16,
            num_classes: 10,
            ..ModelConfig::imagenet()
        };
        let narrow = VggConfig {
            stages: vec![vec![2]; 5],
            hidden: 8,
            ..VggConfig::vgg11()
        };
        let e = build_registry("vgg11", narrow, &tiny, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vgg11") && e.contains("3x16x16"), "{e}");
    }
}
