//! LeNet-5 (LeCun et al., 1998) as the lecture draws it.
//!
//! ```text
//! input 1×28×28
//! conv1  6@5×5, padding 2  -> 6×28×28   (156 parameters)
//! act, pool 2×2            -> 6×14×14
//! conv2 16@5×5             -> 16×10×10  (2,416)
//! act, pool 2×2            -> 16×5×5
//! flatten                  -> 400
//! fc1 400 -> 120, act      (48,120)
//! fc2 120 -> 84, act       (10,164)
//! fc3 84 -> 10             (850)        total 61,706
//! ```
//!
//! The default ("modern") flavour uses ReLU and max-pooling; the `1998`
//! variant uses tanh and average pooling as the paper's network did (without
//! its sparse C3 connections and RBF output, which no framework keeps).
//! Parameter names match a PyTorch module with attributes `conv1`, `conv2`,
//! `fc1`, `fc2`, `fc3` (`conv1.weight`, `fc3.bias`), as in the reference
//! script `shared/bench/torch_lenet.py`.

use convnet_layers::{
    AvgPool2d, Conv2d, Conv2dConfig, Flatten, Layer, Linear, LinearConfig, MaxPool2d, Pool2dConfig,
    ReLU, Sequential, Tanh,
};
use convnet_tensor::{conv_output_size, pool_output_size, Rng};

use crate::error::{Result, ZooError};
use crate::{ModelConfig, ModelEntry};

/// The registry name.
pub const NAME: &str = "lenet5";

/// The variants: `modern` (ReLU, max-pooling; the default) and `1998` (tanh,
/// average pooling).
pub const VARIANTS: &[&str] = &["modern", "1998"];

/// LeNet-5's registry entry.
pub const ENTRY: ModelEntry = ModelEntry {
    name: NAME,
    description: "LeNet-5 (LeCun 1998): 2 conv + 3 dense layers, 61,706 parameters on 1x28x28",
    variants: VARIANTS,
    default_config: ModelConfig::mnist,
    builder: build_boxed,
};

/// The activation and pooling of LeNet-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// ReLU and max-pooling (the default, as in most modern courses).
    Modern,
    /// tanh and average pooling, as the 1998 paper.
    Classic1998,
}

impl Flavour {
    /// From a [`ModelConfig::variant`] (`None` is `Modern`).
    pub fn from_variant(variant: Option<&str>) -> Result<Self> {
        match variant {
            None | Some("modern") => Ok(Flavour::Modern),
            Some("1998") => Ok(Flavour::Classic1998),
            Some(other) => Err(ZooError::config(
                NAME,
                format!(
                    "unknown variant `{other}`: valid variants are {}",
                    VARIANTS.join(", ")
                ),
            )),
        }
    }
}

/// Builds LeNet-5 for `config` (`in_channels` grey or colour channels,
/// `image_size`×`image_size` inputs, `num_classes` outputs). Padding 2 keeps
/// 28×28 inputs at 28×28 after the first convolution, as the lecture does;
/// the flatten size follows from the input size (400 for 28×28 and 32×32
/// with padding 2 gives 576).
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::{lenet::lenet5, ModelConfig};
///
/// let mut rng = Rng::seed_from(0);
/// let model = lenet5(&ModelConfig::mnist(), &mut rng)?;
/// assert_eq!(model.num_params(), 61_706);
/// let y = model.infer(&Tensor::zeros(&[2, 1, 28, 28]))?;
/// assert_eq!(y.shape(), &[2, 10]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn lenet5(config: &ModelConfig, rng: &mut Rng) -> Result<Sequential> {
    let flavour = Flavour::from_variant(config.variant.as_deref())?;
    config.check(NAME)?;
    let bad = |msg: String| ZooError::config(NAME, msg);
    // Spatial sizes through the network (the geometry functions own the
    // arithmetic and say why a size does not fit).
    let s = config.image_size;
    let s = conv_output_size(s, 5, 2, 1, 1).map_err(|e| bad(format!("conv1: {e}")))?;
    let s = pool_output_size(s, 2, 0, 2, 1, false).map_err(|e| bad(format!("pool1: {e}")))?;
    let s = conv_output_size(s, 5, 0, 1, 1).map_err(|e| bad(format!("conv2: {e}")))?;
    let s = pool_output_size(s, 2, 0, 2, 1, false).map_err(|e| bad(format!("pool2: {e}")))?;
    let flat = 16 * s * s;

    let act = |flavour| -> Box<dyn Layer> {
        match flavour {
            Flavour::Modern => Box::new(ReLU::new()),
            Flavour::Classic1998 => Box::new(Tanh::new()),
        }
    };
    let pool = |flavour| -> Result<Box<dyn Layer>> {
        let cfg = Pool2dConfig::new(2).stride(2);
        Ok(match flavour {
            Flavour::Modern => Box::new(MaxPool2d::new(cfg)?),
            Flavour::Classic1998 => Box::new(AvgPool2d::new(cfg)?),
        })
    };
    let conv1 = Conv2d::new(Conv2dConfig::new(config.in_channels, 6, 5).padding(2), rng)?;
    let conv2 = Conv2d::new(Conv2dConfig::new(6, 16, 5), rng)?;
    let fc1 = Linear::new(LinearConfig::new(flat, 120), rng)?;
    let fc2 = Linear::new(LinearConfig::new(120, 84), rng)?;
    let fc3 = Linear::new(LinearConfig::new(84, config.num_classes), rng)?;
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", Box::new(conv1)),
        ("act1", act(flavour)),
        ("pool1", pool(flavour)?),
        ("conv2", Box::new(conv2)),
        ("act2", act(flavour)),
        ("pool2", pool(flavour)?),
        ("flatten", Box::new(Flatten::new())),
        ("fc1", Box::new(fc1)),
        ("act3", act(flavour)),
        ("fc2", Box::new(fc2)),
        ("act4", act(flavour)),
        ("fc3", Box::new(fc3)),
    ];
    Ok(Sequential::named(layers)?)
}

fn build_boxed(config: &ModelConfig, rng: &mut Rng) -> Result<Box<dyn Layer>> {
    Ok(Box::new(lenet5(config, rng)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_layers::summary;
    use convnet_tensor::Tensor;

    #[test]
    fn lecture_parameter_count_and_shapes() {
        let mut rng = Rng::seed_from(1);
        let m = lenet5(&ModelConfig::mnist(), &mut rng).unwrap();
        assert_eq!(m.num_params(), 61_706);
        let shapes = m.param_shapes();
        let expected = [
            ("conv1.weight", vec![6, 1, 5, 5]),
            ("conv1.bias", vec![6]),
            ("conv2.weight", vec![16, 6, 5, 5]),
            ("conv2.bias", vec![16]),
            ("fc1.weight", vec![120, 400]),
            ("fc1.bias", vec![120]),
            ("fc2.weight", vec![84, 120]),
            ("fc2.bias", vec![84]),
            ("fc3.weight", vec![10, 84]),
            ("fc3.bias", vec![10]),
        ];
        assert_eq!(shapes.len(), expected.len());
        for ((name, shape), (en, es)) in shapes.iter().zip(expected.iter()) {
            assert_eq!((name.as_str(), shape), (*en, es));
        }
        let s = summary(&m, &[1, 1, 28, 28]).unwrap();
        // The lecture's shapes, layer after layer (activations keep them).
        let mut flow = s.shape_flow();
        flow.dedup();
        let expected: Vec<Vec<usize>> = vec![
            vec![6, 28, 28],
            vec![6, 14, 14],
            vec![16, 10, 10],
            vec![16, 5, 5],
            vec![400],
            vec![120],
            vec![84],
            vec![10],
        ];
        assert_eq!(flow, expected);
    }

    #[test]
    fn the_1998_flavour_uses_tanh_and_average_pooling() {
        let mut rng = Rng::seed_from(1);
        let cfg = ModelConfig {
            variant: Some("1998".into()),
            ..ModelConfig::mnist()
        };
        let m = lenet5(&cfg, &mut rng).unwrap();
        assert_eq!(m.num_params(), 61_706);
        let types: Vec<&str> = m.children().map(|(_, l)| l.type_name()).collect();
        assert!(
            types.contains(&"Tanh") && types.contains(&"AvgPool2d"),
            "{types:?}"
        );
        assert!(!types.contains(&"ReLU") && !types.contains(&"MaxPool2d"));
        let e = lenet5(
            &ModelConfig {
                variant: Some("1989".into()),
                ..ModelConfig::mnist()
            },
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1989") && e.contains("modern, 1998"), "{e}");
    }

    #[test]
    fn other_input_sizes_and_errors() {
        let mut rng = Rng::seed_from(1);
        let cfg = ModelConfig {
            in_channels: 3,
            image_size: 32,
            num_classes: 5,
            variant: None,
        };
        let m = lenet5(&cfg, &mut rng).unwrap();
        assert_eq!(
            m.infer(&Tensor::zeros(&[1, 3, 32, 32])).unwrap().shape(),
            &[1, 5]
        );
        let tiny = ModelConfig {
            image_size: 4,
            ..ModelConfig::mnist()
        };
        let e = lenet5(&tiny, &mut rng).unwrap_err().to_string();
        assert!(e.contains("lenet5"), "{e}");
    }

    #[test]
    fn a_training_step_moves_every_parameter() {
        let mut rng = Rng::seed_from(2);
        let mut m = lenet5(&ModelConfig::mnist(), &mut rng).unwrap();
        let x = Tensor::randn(&[4, 1, 28, 28], 0.0, 1.0, &mut rng);
        let y = m.forward(&x).unwrap();
        m.backward(&Tensor::ones(y.shape())).unwrap();
        m.visit_params("", &mut |name, p| {
            assert!(
                p.grad.as_slice().iter().any(|&g| g != 0.0),
                "{name} has a zero gradient"
            )
        });
    }
}
