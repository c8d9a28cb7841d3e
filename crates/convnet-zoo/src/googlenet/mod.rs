//! GoogLeNet / Inception v1 (Szegedy et al., 2014), exactly as torchvision
//! builds it, with its auxiliary classifiers.
//!
//! ```text
//! conv1 7×7/2, 64 -> maxpool1 3×3/2 -> conv2 1×1, 64 -> conv3 3×3, 192 -> maxpool2   192×28×28
//! inception3a (256), inception3b (480) -> maxpool3                                 480×14×14
//! inception4a (512) ──> aux1 (training only)
//! inception4b (512), inception4c (512), inception4d (528) ──> aux2 (training only)
//! inception4e (832) -> maxpool4 2×2/2                                              832×7×7
//! inception5a (832), inception5b (1024) -> avgpool -> flatten -> dropout 0.2 -> fc
//! ```
//!
//! Every convolution is a `BasicConv2d`: convolution without bias (`conv`),
//! BatchNorm with eps 0.001 (`bn`), ReLU. Max-pools use `ceil_mode`.
//!
//! An **inception module** runs four branches on the same input and
//! concatenates their outputs on the channel axis: `branch1` a 1×1
//! convolution; `branch2` a 1×1 reduction then a 3×3; `branch3` a 1×1
//! reduction then the "5×5" convolution; `branch4` a 3×3 max-pool (stride
//! 1) then a 1×1 projection.
//!
//! **Which "5×5"**: torchvision's `branch3` uses a 3×3 convolution (a known
//! bug of its port, kept so that its pretrained weights load; pytorch/vision
//! issue 906). The default here follows **torchvision** (3×3), so that
//! weights can be exchanged; the `paper` variant ([`Branch3::Paper5x5`])
//! uses the paper's 5×5 (padding 2), with the same names and 380,928 more
//! parameters.
//!
//! | configuration                          | parameters  |
//! |----------------------------------------|-------------|
//! | torchvision, without auxiliary heads   | 6,624,904   |
//! | torchvision, with auxiliary heads      | 13,004,888  |
//! | paper (5×5), without auxiliary heads   | 7,005,832   |
//!
//! **Auxiliary classifiers** (`aux1` after `inception4a`, `aux2` after
//! `inception4d`): adaptive average pool to 4×4, `conv` (`BasicConv2d`,
//! 128 channels), flatten, `fc1` (2048 -> 1024), ReLU, dropout 0.7, `fc2`.
//! They run only in training ([`Layer::forward`]); [`Layer::infer`] skips
//! them. The paper adds their losses to the main loss with weight 0.3
//! ([`AUX_LOSS_WEIGHT`]), and so does `convnet_train`'s `Trainer` (and
//! `convnet train --model googlenet_aux`): after `forward` it reads them
//! through [`Layer::aux_outputs`] and passes the gradients of the weighted
//! auxiliary losses to [`Layer::backward_params_with_aux`]
//! ([`GoogLeNet::aux_logits`] and [`GoogLeNet::backward_with_aux`] are the
//! same by hand). The plain [`Layer::backward`] trains the main path only
//! and leaves the auxiliary heads' gradients untouched. Evaluation
//! ([`Layer::infer`]) reads the main head only.
//!
//! PyTorch equivalent: `torchvision.models.GoogLeNet(aux_logits=...,
//! init_weights=True)`; parameter names are its `state_dict` keys
//! (`conv1.conv.weight`, `inception3a.branch1.conv.weight`,
//! `inception3a.branch2.1.bn.running_mean`, `aux1.conv.conv.weight`,
//! `aux2.fc2.bias`, `fc.weight`), in its order (the auxiliary heads after
//! `inception5b`, before `fc`); initialisation as torchvision's
//! (`trunc_normal_(std=0.01, a=-2, b=2)` for convolution and linear weights,
//! BatchNorm 1 and 0).

use convnet_layers::{
    join, AdaptiveAvgPool2d, Concat, Conv2dConfig, Dropout, Flatten, Layer, LayerError,
    LinearConfig, MaxPool2d, Pool2dConfig, ReLU, Sequential, SummaryRow,
};
use convnet_tensor::{Rng, Tensor};

use crate::builder::{
    batch_norm, check_dropout, check_input, check_sizes, conv, linear, ConvInit, LinearInit,
};
use crate::error::{Result, ZooError};
use crate::{ModelConfig, ModelEntry};

mod network;
pub use network::GoogLeNet;

/// Weight of each auxiliary classifier's loss in the training loss
/// (Szegedy et al.: "their loss gets added to the total loss of the network
/// with a discount weight (the losses of the auxiliary classifiers were
/// weighted by 0.3)").
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

/// The registry name of GoogLeNet without auxiliary classifiers.
pub const NAME: &str = "googlenet";

/// The registry name of GoogLeNet with its auxiliary classifiers.
pub const NAME_AUX: &str = "googlenet_aux";

/// The variants: `torchvision` (3×3 convolution in `branch3`, the default)
/// and `paper` (5×5).
pub const VARIANTS: &[&str] = &["torchvision", "paper"];

/// GoogLeNet without auxiliary classifiers (as torchvision's pretrained
/// model): 6,624,904 parameters.
pub const ENTRY: ModelEntry = ModelEntry {
    name: NAME,
    description: "GoogLeNet / Inception v1 (Szegedy 2014), torchvision layout, no auxiliary heads",
    variants: VARIANTS,
    default_config: ModelConfig::imagenet,
    builder: |config, rng| build_registry(NAME, false, config, rng),
};

/// GoogLeNet with its two auxiliary classifiers: 13,004,888 parameters.
pub const ENTRY_AUX: ModelEntry = ModelEntry {
    name: NAME_AUX,
    description: "GoogLeNet with its two auxiliary classifiers (active in training only)",
    variants: VARIANTS,
    default_config: ModelConfig::imagenet,
    builder: |config, rng| build_registry(NAME_AUX, true, config, rng),
};

/// The convolution of an inception module's third branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Branch3 {
    /// 3×3, padding 1: torchvision's (weights exchangeable with it).
    #[default]
    Torchvision3x3,
    /// 5×5, padding 2: the paper's.
    Paper5x5,
}

impl Branch3 {
    /// From a [`ModelConfig::variant`] (`None` is torchvision's).
    pub fn from_variant(model: &str, variant: Option<&str>) -> Result<Self> {
        match variant {
            None | Some("torchvision") => Ok(Branch3::Torchvision3x3),
            Some("paper") => Ok(Branch3::Paper5x5),
            Some(other) => Err(ZooError::config(
                model,
                format!(
                    "unknown variant `{other}`: valid variants are {}",
                    VARIANTS.join(", ")
                ),
            )),
        }
    }

    /// Kernel size and padding.
    fn kernel(self) -> (usize, usize) {
        match self {
            Branch3::Torchvision3x3 => (3, 1),
            Branch3::Paper5x5 => (5, 2),
        }
    }
}

/// The output widths of an inception module's branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InceptionWidths {
    /// `branch1`: 1×1 convolution.
    pub ch1x1: usize,
    /// `branch2`: 1×1 reduction ...
    pub ch3x3red: usize,
    /// ... then 3×3 convolution.
    pub ch3x3: usize,
    /// `branch3`: 1×1 reduction ...
    pub ch5x5red: usize,
    /// ... then the "5×5" convolution (see [`Branch3`]).
    pub ch5x5: usize,
    /// `branch4`: 1×1 projection after the max-pool.
    pub pool_proj: usize,
}

impl InceptionWidths {
    /// Output channels: `ch1x1 + ch3x3 + ch5x5 + pool_proj`.
    pub fn out_channels(&self) -> usize {
        self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj
    }
}

const fn widths(w: [usize; 6]) -> InceptionWidths {
    InceptionWidths {
        ch1x1: w[0],
        ch3x3red: w[1],
        ch3x3: w[2],
        ch5x5red: w[3],
        ch5x5: w[4],
        pool_proj: w[5],
    }
}

/// The nine inception modules of GoogLeNet (Table 1 of the paper), in order.
pub const INCEPTION_MODULES: [(&str, InceptionWidths); 9] = [
    ("inception3a", widths([64, 96, 128, 16, 32, 32])),
    ("inception3b", widths([128, 128, 192, 32, 96, 64])),
    ("inception4a", widths([192, 96, 208, 16, 48, 64])),
    ("inception4b", widths([160, 112, 224, 24, 64, 64])),
    ("inception4c", widths([128, 128, 256, 24, 64, 64])),
    ("inception4d", widths([112, 144, 288, 32, 64, 64])),
    ("inception4e", widths([256, 160, 320, 32, 128, 128])),
    ("inception5a", widths([256, 160, 320, 32, 128, 128])),
    ("inception5b", widths([384, 192, 384, 48, 128, 128])),
];

/// torchvision's `BasicConv2d`: `conv` (no bias, truncated-normal weights of
/// std 0.01), `bn` (eps 0.001), ReLU.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::Rng;
/// use convnet_zoo::googlenet::basic_conv2d;
///
/// let c = basic_conv2d(3, 64, 7, 2, 3, &mut Rng::seed_from(0))?;
/// let keys: Vec<String> = c.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["conv.weight", "bn.weight", "bn.bias"]);
/// assert_eq!(c.output_shape(&[1, 3, 224, 224])?, vec![1, 64, 112, 112]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn basic_conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    rng: &mut Rng,
) -> Result<Sequential> {
    let cfg = Conv2dConfig::new(in_channels, out_channels, kernel_size)
        .stride(stride)
        .padding(padding)
        .bias(false);
    Ok(Sequential::named(vec![
        (
            "conv",
            Box::new(conv(cfg, ConvInit::TruncNormal(0.01), rng)?) as Box<dyn Layer>,
        ),
        ("bn", Box::new(batch_norm(out_channels, 1e-3)?)),
        ("relu", Box::new(ReLU::new())),
    ])?)
}

/// An inception module: branches `branch1` ... `branch4` concatenated on
/// the channel axis (see the module docs); `[N, in_channels, H, W]` ->
/// `[N, widths.out_channels(), H, W]`.
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::Rng;
/// use convnet_zoo::googlenet::{inception, Branch3, INCEPTION_MODULES};
///
/// let (name, widths) = INCEPTION_MODULES[0];
/// assert_eq!(name, "inception3a");
/// let m = inception(192, widths, Branch3::Torchvision3x3, &mut Rng::seed_from(0))?;
/// assert_eq!(m.output_shape(&[1, 192, 28, 28])?, vec![1, 256, 28, 28]);
/// assert_eq!(m.param_shapes()[0].0, "branch1.conv.weight");
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn inception(
    in_channels: usize,
    widths: InceptionWidths,
    branch3: Branch3,
    rng: &mut Rng,
) -> Result<Concat> {
    let w = widths;
    let (k5, p5) = branch3.kernel();
    let branch1 = basic_conv2d(in_channels, w.ch1x1, 1, 1, 0, rng)?;
    let branch2 = Sequential::new(vec![
        Box::new(basic_conv2d(in_channels, w.ch3x3red, 1, 1, 0, rng)?),
        Box::new(basic_conv2d(w.ch3x3red, w.ch3x3, 3, 1, 1, rng)?),
    ]);
    let branch3 = Sequential::new(vec![
        Box::new(basic_conv2d(in_channels, w.ch5x5red, 1, 1, 0, rng)?),
        Box::new(basic_conv2d(w.ch5x5red, w.ch5x5, k5, 1, p5, rng)?),
    ]);
    let pool = MaxPool2d::new(Pool2dConfig::new(3).stride(1).padding(1).ceil_mode(true))?;
    let branch4 = Sequential::new(vec![
        Box::new(pool),
        Box::new(basic_conv2d(in_channels, w.pool_proj, 1, 1, 0, rng)?),
    ]);
    Ok(Concat::named(vec![
        ("branch1", Box::new(branch1) as Box<dyn Layer>),
        ("branch2", Box::new(branch2)),
        ("branch3", Box::new(branch3)),
        ("branch4", Box::new(branch4)),
    ])?)
}

/// An auxiliary classifier (torchvision's `InceptionAux`): `avgpool`
/// (adaptive, 4×4), `conv` (`BasicConv2d` to 128 channels), `flatten`,
/// `fc1` (2048 -> 1024), `relu`, `dropout`, `fc2` (1024 -> `num_classes`).
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::Rng;
/// use convnet_zoo::googlenet::inception_aux;
///
/// let aux = inception_aux(512, 1000, 0.7, &mut Rng::seed_from(0))?;
/// // conv 65,536 + bn 256 + fc1 2,098,176 + fc2 1,025,000
/// assert_eq!(aux.num_params(), 3_188_968);
/// assert_eq!(aux.output_shape(&[1, 512, 14, 14])?, vec![1, 1000]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn inception_aux(
    in_channels: usize,
    num_classes: usize,
    dropout: f32,
    rng: &mut Rng,
) -> Result<Sequential> {
    let fc = |i, o, rng: &mut Rng| -> Result<Box<dyn Layer>> {
        Ok(Box::new(linear(
            LinearConfig::new(i, o),
            LinearInit::TruncNormal(0.01),
            rng,
        )?))
    };
    Ok(Sequential::named(vec![
        (
            "avgpool",
            Box::new(AdaptiveAvgPool2d::new(4)?) as Box<dyn Layer>,
        ),
        (
            "conv",
            Box::new(basic_conv2d(in_channels, 128, 1, 1, 0, rng)?),
        ),
        ("flatten", Box::new(Flatten::new())),
        ("fc1", fc(128 * 4 * 4, 1024, rng)?),
        ("relu", Box::new(ReLU::new())),
        ("dropout", Box::new(Dropout::new(dropout, rng)?)),
        ("fc2", fc(1024, num_classes, rng)?),
    ])?)
}

/// GoogLeNet's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogLeNetConfig {
    /// Input channels (3).
    pub in_channels: usize,
    /// Output classes (1000).
    pub num_classes: usize,
    /// With the two auxiliary classifiers (torchvision's `aux_logits`).
    pub aux_logits: bool,
    /// Dropout before `fc` (0.2).
    pub dropout: f32,
    /// Dropout inside the auxiliary classifiers (0.7).
    pub aux_dropout: f32,
    /// The convolution of the inception modules' third branch.
    pub branch3: Branch3,
}

impl Default for GoogLeNetConfig {
    /// torchvision's: 3 channels, 1000 classes, no auxiliary classifiers
    /// (as its pretrained model), dropout 0.2 and 0.7, 3×3 `branch3`.
    fn default() -> Self {
        GoogLeNetConfig {
            in_channels: 3,
            num_classes: 1000,
            aux_logits: false,
            dropout: 0.2,
            aux_dropout: 0.7,
            branch3: Branch3::Torchvision3x3,
        }
    }
}

impl GoogLeNetConfig {
    /// Checks the sizes and dropout probabilities.
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            NAME,
            &[
                ("in_channels", self.in_channels),
                ("num_classes", self.num_classes),
            ],
        )?;
        check_dropout(NAME, "dropout", self.dropout)?;
        check_dropout(NAME, "aux_dropout", self.aux_dropout)
    }
}

fn build_registry(
    name: &str,
    aux_logits: bool,
    config: &ModelConfig,
    rng: &mut Rng,
) -> Result<Box<dyn Layer>> {
    let branch3 = Branch3::from_variant(name, config.variant.as_deref())?;
    config.check(name)?;
    let net = GoogLeNet::new(
        &GoogLeNetConfig {
            in_channels: config.in_channels,
            num_classes: config.num_classes,
            aux_logits,
            branch3,
            ..GoogLeNetConfig::default()
        },
        rng,
    )?;
    check_input(name, &net, config)?;
    Ok(Box::new(net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_and_errors() {
        assert_eq!(
            Branch3::from_variant(NAME, None).unwrap(),
            Branch3::Torchvision3x3
        );
        assert_eq!(
            Branch3::from_variant(NAME, Some("paper")).unwrap(),
            Branch3::Paper5x5
        );
        let e = Branch3::from_variant(NAME, Some("v3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("v3") && e.contains("torchvision, paper"), "{e}");
        let bad = GoogLeNetConfig {
            aux_dropout: -0.1,
            ..GoogLeNetConfig::default()
        };
        let e = GoogLeNet::new(&bad, &mut Rng::seed_from(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("aux_dropout"), "{e}");
    }

    #[test]
    fn module_widths_chain() {
        // Each module's input is the previous one's output (192 at first).
        let inputs = [192, 256, 480, 512, 512, 512, 528, 832, 832];
        let mut prev = None;
        for ((_, w), &i) in INCEPTION_MODULES.iter().zip(&inputs) {
            if let Some(p) = prev {
                assert_eq!(p, i);
            }
            prev = Some(w.out_channels());
        }
        assert_eq!(prev, Some(1024));
    }
}
