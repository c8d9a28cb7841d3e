//! AlexNet (Krizhevsky et al., 2012), exactly as torchvision builds it
//! (the single-GPU "one weird trick" widths 64-192-384-256-256).
//!
//! ```text
//! input 3×224×224
//! features.0   conv 64@11×11, stride 4, padding 2  -> 64×55×55   (23,296)
//! features.1-2 ReLU, max-pool 3×3 stride 2          -> 64×27×27
//! features.3   conv 192@5×5, padding 2             -> 192×27×27  (307,392)
//! features.4-5 ReLU, max-pool 3×3 stride 2          -> 192×13×13
//! features.6   conv 384@3×3, padding 1, ReLU       -> 384×13×13  (663,936)
//! features.8   conv 256@3×3, padding 1, ReLU       -> 256×13×13  (884,992)
//! features.10  conv 256@3×3, padding 1, ReLU       -> 256×13×13  (590,080)
//! features.12  max-pool 3×3 stride 2                -> 256×6×6
//! avgpool      adaptive average pool to 6×6         -> 256×6×6
//! flatten                                           -> 9216
//! classifier.0-2  dropout, linear 9216 -> 4096, ReLU   (37,752,832)
//! classifier.3-5  dropout, linear 4096 -> 4096, ReLU   (16,781,312)
//! classifier.6    linear 4096 -> 1000                  (4,097,000)
//!                                                total 61,100,840
//! ```
//!
//! 5 convolutions and 3 linear layers: the lecture's "8 layers". PyTorch
//! equivalent: `torchvision.models.alexnet()`; the parameter names are its
//! `state_dict` keys (`features.0.weight`, `classifier.6.bias`), and the
//! weights are initialised as torchvision does (PyTorch's defaults). The
//! `flatten` child has no parameters and stands for the `torch.flatten(x, 1)`
//! of torchvision's `forward`.

use convnet_layers::{
    AdaptiveAvgPool2d, Conv2dConfig, Dropout, Flatten, Layer, LinearConfig, MaxPool2d,
    Pool2dConfig, ReLU, Sequential,
};
use convnet_tensor::Rng;

use crate::builder::{
    build_checked, check_dropout, check_sizes, conv, linear, ConvInit, LinearInit,
};
use crate::error::Result;
use crate::{ModelConfig, ModelEntry};

/// The registry name.
pub const NAME: &str = "alexnet";

/// AlexNet's registry entry.
pub const ENTRY: ModelEntry = ModelEntry {
    name: NAME,
    description: "AlexNet (Krizhevsky 2012), torchvision layout: 5 conv + 3 linear, dropout 0.5",
    variants: &[],
    default_config: ModelConfig::imagenet,
    builder: build_entry,
};

/// AlexNet's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AlexNetConfig {
    /// Input channels (3).
    pub in_channels: usize,
    /// Output classes (1000).
    pub num_classes: usize,
    /// Dropout probability before the first two linear layers (0.5).
    pub dropout: f32,
}

impl Default for AlexNetConfig {
    /// torchvision's: 3 channels, 1000 classes, dropout 0.5.
    fn default() -> Self {
        AlexNetConfig {
            in_channels: 3,
            num_classes: 1000,
            dropout: 0.5,
        }
    }
}

impl AlexNetConfig {
    /// Checks the sizes and the dropout probability.
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            NAME,
            &[
                ("in_channels", self.in_channels),
                ("num_classes", self.num_classes),
            ],
        )?;
        check_dropout(NAME, "dropout", self.dropout)
    }
}

/// Builds AlexNet with torchvision's layout and initialisation. Inputs must
/// be at least 63×63 (three max-pools after a stride-4 convolution); the
/// adaptive average pool makes any larger size give 256×6×6 features.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::alexnet::{alexnet, AlexNetConfig};
///
/// let config = AlexNetConfig { num_classes: 10, ..AlexNetConfig::default() };
/// let net = alexnet(&config, &mut Rng::seed_from(0))?;
/// assert_eq!(net.output_shape(&[1, 3, 224, 224])?, vec![1, 10]);
/// let keys: Vec<String> = net.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys.first().map(String::as_str), Some("features.0.weight"));
/// assert_eq!(keys.last().map(String::as_str), Some("classifier.6.bias"));
/// let y = net.infer(&Tensor::zeros(&[1, 3, 64, 64]))?;
/// assert_eq!(y.shape(), &[1, 10]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn alexnet(config: &AlexNetConfig, rng: &mut Rng) -> Result<Sequential> {
    config.validate()?;
    let c = |i, o, k, s, p, rng: &mut Rng| -> Result<Box<dyn Layer>> {
        let cfg = Conv2dConfig::new(i, o, k).stride(s).padding(p);
        Ok(Box::new(conv(cfg, ConvInit::Default, rng)?))
    };
    let pool = || -> Result<Box<dyn Layer>> {
        Ok(Box::new(MaxPool2d::new(Pool2dConfig::new(3).stride(2))?))
    };
    let relu = || -> Box<dyn Layer> { Box::new(ReLU::new()) };
    let features = Sequential::new(vec![
        c(config.in_channels, 64, 11, 4, 2, rng)?,
        relu(),
        pool()?,
        c(64, 192, 5, 1, 2, rng)?,
        relu(),
        pool()?,
        c(192, 384, 3, 1, 1, rng)?,
        relu(),
        c(384, 256, 3, 1, 1, rng)?,
        relu(),
        c(256, 256, 3, 1, 1, rng)?,
        relu(),
        pool()?,
    ]);
    let fc = |i, o, rng: &mut Rng| -> Result<Box<dyn Layer>> {
        Ok(Box::new(linear(
            LinearConfig::new(i, o),
            LinearInit::Default,
            rng,
        )?))
    };
    let classifier = Sequential::new(vec![
        Box::new(Dropout::new(config.dropout, rng)?),
        fc(256 * 6 * 6, 4096, rng)?,
        relu(),
        Box::new(Dropout::new(config.dropout, rng)?),
        fc(4096, 4096, rng)?,
        relu(),
        fc(4096, config.num_classes, rng)?,
    ]);
    Ok(Sequential::named(vec![
        ("features", Box::new(features) as Box<dyn Layer>),
        ("avgpool", Box::new(AdaptiveAvgPool2d::new(6)?)),
        ("flatten", Box::new(Flatten::new())),
        ("classifier", Box::new(classifier)),
    ])?)
}

fn build_entry(config: &ModelConfig, rng: &mut Rng) -> Result<Box<dyn Layer>> {
    let cfg = AlexNetConfig {
        in_channels: config.in_channels,
        num_classes: config.num_classes,
        ..AlexNetConfig::default()
    };
    build_checked(NAME, config, || alexnet(&cfg, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZooError;

    #[test]
    fn bad_configs_and_inputs_are_errors() {
        let mut rng = Rng::seed_from(0);
        let bad = AlexNetConfig {
            dropout: 1.0,
            ..AlexNetConfig::default()
        };
        let e = alexnet(&bad, &mut rng).unwrap_err().to_string();
        assert!(e.contains("alexnet") && e.contains("dropout"), "{e}");
        let e = build_entry(&ModelConfig::mnist(), &mut rng).unwrap_err();
        assert!(matches!(e, ZooError::Config { .. }), "{e}");
        assert!(e.to_string().contains("1x28x28"), "{e}");
        let with_variant = ModelConfig {
            variant: Some("v2".into()),
            ..ModelConfig::imagenet()
        };
        assert!(build_entry(&with_variant, &mut rng).is_err());
    }
}
