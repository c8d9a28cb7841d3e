//! # convnet-zoo
//!
//! The model zoo: the lecture's networks built from `convnet-layers`, with
//! torchvision's parameter names, behind one registry.
//!
//! ```
//! use convnet_layers::Layer;
//! use convnet_tensor::Rng;
//! use convnet_zoo::{build, model_names, ModelConfig};
//!
//! assert!(model_names().contains(&"lenet5"));
//! let mut rng = Rng::seed_from(42);
//! let model = build("lenet5", &ModelConfig::mnist(), &mut rng)?;
//! assert_eq!(model.num_params(), 61_706);
//! let err = build("lenet6", &ModelConfig::mnist(), &mut rng).unwrap_err();
//! assert!(err.to_string().contains("valid models are lenet5"));
//! # Ok::<(), convnet_zoo::ZooError>(())
//! ```
//!
//! # Adding a model
//!
//! Write `src/<model>.rs` with a builder and a `pub const ENTRY: ModelEntry`,
//! add `pub mod <model>;` here and `<model>::ENTRY` (one entry per name, e.g.
//! one per ResNet depth) to [`MODELS`]. `convnet summary`, `convnet train` and
//! `convnet zoo` pick it up from there.

#![warn(missing_docs)]

pub mod alexnet;
mod builder;
pub mod convnext;
pub mod depth;
pub mod error;
pub mod flops;
pub mod googlenet;
mod head;
pub mod lenet;
pub mod resnet;
pub mod small;
pub mod swin;
pub mod vgg;
pub mod vit;

use convnet_layers::Layer;
use convnet_tensor::Rng;
use serde::{Deserialize, Serialize};

pub use error::{Result, ZooError};
pub use head::head_keys;

/// The most input channels a configuration may ask for (hyperspectral
/// stacks have a few hundred).
pub const MAX_IN_CHANNELS: usize = 4096;
/// The largest input side a configuration may ask for, in pixels.
pub const MAX_IMAGE_SIZE: usize = 4096;
/// The most classes a configuration may ask for (ImageNet-21k has 21,841).
pub const MAX_NUM_CLASSES: usize = 1_000_000;

/// What a model is built for: its input and its classes. Each model reads
/// what it needs and rejects what it cannot do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Input channels (1 for MNIST, 3 for RGB).
    pub in_channels: usize,
    /// Input height and width (square images).
    pub image_size: usize,
    /// Number of output classes.
    pub num_classes: usize,
    /// A model-specific variant (`"1998"` for LeNet-5's tanh and average
    /// pooling flavour); `None` is the model's default.
    pub variant: Option<String>,
}

impl ModelConfig {
    /// 1×28×28 inputs, 10 classes: MNIST and Fashion-MNIST.
    pub fn mnist() -> Self {
        ModelConfig {
            in_channels: 1,
            image_size: 28,
            num_classes: 10,
            variant: None,
        }
    }

    /// 3×224×224 inputs, 1000 classes: ImageNet, as torchvision's models.
    pub fn imagenet() -> Self {
        ModelConfig {
            in_channels: 3,
            image_size: 224,
            num_classes: 1000,
            variant: None,
        }
    }

    /// The input shape for a batch of `n`: `[n, C, H, W]`.
    pub fn input_shape(&self, n: usize) -> Vec<usize> {
        vec![n, self.in_channels, self.image_size, self.image_size]
    }

    /// Checks the sizes every model needs: at least 1, and at most
    /// [`MAX_IN_CHANNELS`], [`MAX_IMAGE_SIZE`] and [`MAX_NUM_CLASSES`]. Every
    /// builder calls it first, so an absurd size (from a command line or a
    /// checkpoint) is an error naming the value and the limit, never an
    /// allocation that aborts the process. Within these bounds, a layer whose
    /// weight would still exceed
    /// [`convnet_layers::param::MAX_PARAM_ELEMENTS`] (a VGG head for a
    /// million classes) is refused by the layer before it allocates.
    pub fn check(&self, model: &str) -> Result<()> {
        for (what, v, max) in [
            ("in_channels", self.in_channels, MAX_IN_CHANNELS),
            ("image_size", self.image_size, MAX_IMAGE_SIZE),
            ("num_classes", self.num_classes, MAX_NUM_CLASSES),
        ] {
            if v == 0 {
                return Err(ZooError::config(model, format!("{what} must be >= 1")));
            }
            if v > max {
                return Err(ZooError::config(
                    model,
                    format!("{what} is {v}, more than the {max} this program accepts"),
                ));
            }
        }
        Ok(())
    }
}

/// A model of the registry.
#[derive(Debug, Clone, Copy)]
pub struct ModelEntry {
    /// The name users type (`lenet5`, `resnet18`).
    pub name: &'static str,
    /// One line for `convnet zoo`.
    pub description: &'static str,
    /// Accepted [`ModelConfig::variant`] values (the first is the default);
    /// empty if the model has none.
    pub variants: &'static [&'static str],
    /// The configuration the model is usually built with.
    pub default_config: fn() -> ModelConfig,
    /// Builds the model with freshly initialised weights (called through
    /// [`ModelEntry::build`], which bounds the memory it may take).
    pub(crate) builder: fn(&ModelConfig, &mut Rng) -> Result<Box<dyn Layer>>,
}

impl ModelEntry {
    /// Builds the model for `config` with weights initialised from `rng`.
    ///
    /// The configuration is checked first ([`ModelConfig::check`]), and the
    /// weights are counted as the layers are made: a model whose weights and
    /// their gradients would need more memory than the machine has available
    /// ([`convnet_layers::param::ParamBudget::from_available_memory`]) is an
    /// error before the weight that would exceed it is allocated.
    ///
    /// ```
    /// use convnet_tensor::Rng;
    /// use convnet_zoo::{entry, ModelConfig};
    ///
    /// let lenet = entry("lenet5")?.build(&ModelConfig::mnist(), &mut Rng::seed_from(0))?;
    /// assert_eq!(lenet.num_params(), 61_706);
    /// # Ok::<(), convnet_zoo::ZooError>(())
    /// ```
    pub fn build(&self, config: &ModelConfig, rng: &mut Rng) -> Result<Box<dyn Layer>> {
        let _budget = convnet_layers::param::ParamBudget::from_available_memory();
        (self.builder)(config, rng)
    }
}

/// Every model, in the order `convnet zoo` lists them.
pub const MODELS: &[ModelEntry] = &[
    lenet::ENTRY,
    small::LENET1,
    small::LENET4,
    alexnet::ENTRY,
    googlenet::ENTRY,
    googlenet::ENTRY_AUX,
    vgg::VGG11,
    vgg::VGG11_BN,
    vgg::VGG13,
    vgg::VGG13_BN,
    vgg::VGG16,
    vgg::VGG16_BN,
    vgg::VGG19,
    vgg::VGG19_BN,
    resnet::RESNET18,
    resnet::RESNET34,
    resnet::RESNET50,
    resnet::RESNET101,
    resnet::RESNET152,
    small::RESNET20,
    small::RESNET18_SMALL,
    small::VGG_SMALL,
    convnext::TINY,
    convnext::SMALL,
    convnext::BASE,
    convnext::TINY28,
    vit::B_16,
    vit::S_16,
    vit::TI_16,
    vit::TINY28,
    swin::T,
    swin::S,
    swin::B,
];

/// The registered names.
pub fn model_names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// The registry entry of `name`, or an error listing the valid names.
pub fn entry(name: &str) -> Result<&'static ModelEntry> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ZooError::UnknownModel {
            name: name.to_string(),
            valid: model_names().iter().map(|s| s.to_string()).collect(),
        })
}

/// Builds model `name` for `config`, weights initialised from `rng`.
pub fn build(name: &str, config: &ModelConfig, rng: &mut Rng) -> Result<Box<dyn Layer>> {
    entry(name)?.build(config, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_build_with_their_defaults_and_heads() {
        let names = model_names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate names: {names:?}");
        for m in MODELS {
            let cfg = (m.default_config)();
            let mut rng = Rng::seed_from(0);
            let model = m.build(&cfg, &mut rng).unwrap();
            let out = model.output_shape(&cfg.input_shape(1)).unwrap();
            assert_eq!(out, vec![1, cfg.num_classes], "{}", m.name);
            // The derived head is exactly the classifier.
            let head = head_keys(model.as_ref(), cfg.num_classes);
            assert_eq!(head, head::tests::expected(m.name), "{}", m.name);
        }
    }

    #[test]
    fn unknown_names_and_bad_configs_are_errors() {
        let e = entry("vgg99").unwrap_err();
        assert!(matches!(e, ZooError::UnknownModel { .. }));
        assert!(e.to_string().contains("lenet5"), "{e}");
        let mut cfg = ModelConfig::mnist();
        cfg.num_classes = 0;
        assert!(build("lenet5", &cfg, &mut Rng::seed_from(0)).is_err());
    }

    #[test]
    fn absurd_sizes_are_errors_naming_value_and_limit() {
        let mnist = ModelConfig::mnist();
        for (cfg, what) in [
            (
                ModelConfig {
                    num_classes: 1_000_000_000_000,
                    ..mnist.clone()
                },
                "num_classes is 1000000000000, more than the 1000000",
            ),
            (
                ModelConfig {
                    image_size: 100_000,
                    ..mnist.clone()
                },
                "image_size is 100000, more than the 4096",
            ),
            (
                ModelConfig {
                    in_channels: 1_000_000_000,
                    ..mnist.clone()
                },
                "in_channels is 1000000000, more than the 4096",
            ),
        ] {
            for m in MODELS {
                let e = m
                    .build(&cfg, &mut Rng::seed_from(0))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(m.name) && e.contains(what), "{}: {e}", m.name);
            }
        }
        // Within the bounds, a weight above 4 GiB of f32 is refused by its
        // layer before anything of that size is allocated: LeNet-5 on
        // 4096x4096 inputs flattens 16x1022x1022 features into 120 units.
        let big = ModelConfig {
            image_size: 4096,
            ..mnist.clone()
        };
        let e = build("lenet5", &big, &mut Rng::seed_from(0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[120, 16711744]") && e.contains("more than the 1073741824"),
            "{e}"
        );
    }

    #[test]
    fn the_whole_model_is_counted_against_the_budget_as_it_is_built() {
        use convnet_layers::param::ParamBudget;
        // LeNet-5's weight matrices: 150 + 2,400 + 48,000 + 10,080 + 840.
        let cfg = ModelConfig::mnist();
        let budget = ParamBudget::enter(61_000);
        let e = build("lenet5", &cfg, &mut Rng::seed_from(0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[10, 84]") && e.contains("61470 weight elements"),
            "the last layer crosses the budget: {e}"
        );
        drop(budget);
        let _budget = ParamBudget::enter(61_470);
        assert!(build("lenet5", &cfg, &mut Rng::seed_from(0)).is_ok());
        // The next model starts a budget of its own.
        drop(_budget);
        assert!(build("lenet5", &cfg, &mut Rng::seed_from(0)).is_ok());
    }
}
