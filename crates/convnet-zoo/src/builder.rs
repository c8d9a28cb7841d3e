//! Helpers shared by the CNN builders (AlexNet, VGG, GoogLeNet, ResNet and
//! the small 28×28 variants): torchvision's weight initialisation schemes,
//! computed fast and deterministically, and the checks every builder makes.
//!
//! Initialising the ImageNet models means drawing up to 143 million normal
//! samples (VGG-19); one Box–Muller transform in `f64` per value would take
//! seconds. [`normal`] uses the ziggurat method (one 64-bit draw per value
//! almost always) in parallel chunks of [`CHUNK`] values, chunk `i` from its
//! own generator forked from one draw of the caller's generator: the result
//! depends on the seed only, never on the number of threads. [`uniform`]
//! does the same for PyTorch's default (uniform) initialisation.

use convnet_layers::{
    BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Layer, Linear, LinearConfig,
};
use convnet_tensor::init::{fans, pytorch_default_bias};
use convnet_tensor::{Rng, Tensor};
use rayon::prelude::*;

use crate::error::{Result, ZooError};
use crate::ModelConfig;

/// Values per independently seeded chunk of [`normal`] and [`trunc_normal`].
pub const CHUNK: usize = 1 << 16;

/// The ziggurat of the standard normal density `f(x) = exp(-x²/2)`
/// (Marsaglia & Tsang, 2000): 128 layers of equal area `V`, the base layer
/// holding the tail beyond `R`. `edge[i]` is the right end of layer `i`
/// (`edge[0] = V / f(R)` is the base layer's virtual width, `edge[1] = R`,
/// `edge[128] = 0`); `height[i] = f(edge[i])`.
struct Ziggurat {
    edge: [f64; 129],
    height: [f64; 129],
}

const ZIGGURAT_R: f64 = 3.442_619_855_899;
const ZIGGURAT_V: f64 = 9.912_563_035_262_17e-3;

fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn ziggurat() -> &'static Ziggurat {
    static TABLE: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut edge = [0.0; 129];
        edge[0] = ZIGGURAT_V / density(ZIGGURAT_R);
        edge[1] = ZIGGURAT_R;
        for i in 1..127 {
            // Layer i has area V: edge[i] * (f(edge[i+1]) - f(edge[i])) = V.
            edge[i + 1] = (-2.0 * (ZIGGURAT_V / edge[i] + density(edge[i])).ln()).sqrt();
        }
        edge[128] = 0.0;
        let mut height = [0.0; 129];
        for (h, &x) in height.iter_mut().zip(&edge) {
            *h = density(x);
        }
        Ziggurat { edge, height }
    })
}

/// One standard normal sample: one 64-bit draw in ~99% of the cases.
fn standard_normal(z: &Ziggurat, rng: &mut Rng) -> f64 {
    loop {
        let bits = rng.next_u64();
        let layer = (bits & 127) as usize;
        // 53 high bits: uniform in [-1, 1).
        let u = 2.0 * ((bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) - 1.0;
        let x = u * z.edge[layer];
        if x.abs() < z.edge[layer + 1] {
            return x; // inside the rectangle under the next layer
        }
        if layer == 0 {
            // The tail beyond R (Marsaglia, 1964).
            loop {
                let a = -(1.0 - rng.next_f64()).ln() / ZIGGURAT_R;
                let b = -(1.0 - rng.next_f64()).ln();
                if 2.0 * b > a * a {
                    return if u < 0.0 {
                        -(ZIGGURAT_R + a)
                    } else {
                        ZIGGURAT_R + a
                    };
                }
            }
        }
        // The wedge between the density and the rectangle's corner.
        let (lo, hi) = (z.height[layer], z.height[layer + 1]);
        if lo + rng.next_f64() * (hi - lo) < density(x) {
            return x;
        }
    }
}

/// Fills `out` with `mean + std * z`, `z` standard normal, resampling any `z`
/// outside `[-bound, bound]` (no truncation for `bound = ∞`).
fn fill_normal(out: &mut [f32], mean: f32, std: f32, bound: f32, rng: &mut Rng) {
    let z = ziggurat();
    let bound = bound as f64;
    for v in out.iter_mut() {
        let x = loop {
            let x = standard_normal(z, rng);
            if x.abs() <= bound {
                break x;
            }
        };
        *v = mean + std * x as f32;
    }
}

/// Uniform samples in `[-bound, bound)`, in parallel chunks as [`normal`];
/// advances `rng` by one draw.
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let base = Rng::seed_from(rng.next_u64());
    let mut data = vec![0.0f32; n];
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut r = base.fork(i as u64);
            for v in chunk {
                *v = r.uniform(-bound, bound);
            }
        });
    Tensor::from_vec(shape, data).expect("sizes agree")
}

fn chunked_normal(shape: &[usize], mean: f32, std: f32, bound: f32, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let base = Rng::seed_from(rng.next_u64());
    let mut data = vec![0.0f32; n];
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| fill_normal(chunk, mean, std, bound, &mut base.fork(i as u64)));
    Tensor::from_vec(shape, data).expect("sizes agree")
}

/// Normal samples with the given mean and standard deviation; advances `rng`
/// by one draw whatever the size.
pub fn normal(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
    chunked_normal(shape, mean, std, f32::INFINITY, rng)
}

/// Normal samples `N(0, std²)` truncated to `[-bound, bound]` (an absolute
/// bound, as `torch.nn.init.trunc_normal_(w, std=std, a=-bound, b=bound)`),
/// by resampling; advances `rng` by one draw.
pub fn trunc_normal(shape: &[usize], std: f32, bound: f32, rng: &mut Rng) -> Tensor {
    chunked_normal(shape, 0.0, std, bound / std, rng)
}

/// How a convolution's weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConvInit {
    /// PyTorch's default (`kaiming_uniform_(a=√5)`, uniform bias): AlexNet.
    Default,
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, zero bias:
    /// torchvision's VGG and ResNet.
    KaimingFanOut,
    /// `trunc_normal_(std, a=-2, b=2)`, default bias: torchvision's GoogLeNet
    /// (std 0.01).
    TruncNormal(f32),
}

/// How a linear layer's weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinearInit {
    /// PyTorch's default: AlexNet, ResNet's `fc`.
    Default,
    /// `normal_(0, std)`, zero bias: VGG's classifier (std 0.01).
    Normal(f32),
    /// `trunc_normal_(std, a=-2, b=2)`, default bias: GoogLeNet.
    TruncNormal(f32),
}

/// PyTorch's default bound for weights and biases: `1 / sqrt(fan_in)`
/// (`kaiming_uniform_(a=√5)` reduces to it).
fn default_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in.max(1) as f32).sqrt()
}

/// A convolution initialised as `init` says.
pub fn conv(config: Conv2dConfig, init: ConvInit, rng: &mut Rng) -> Result<Conv2d> {
    config.validate()?;
    let shape = config.weight_shape();
    let (fan_in, fan_out) = fans(&shape);
    let (weight, bias) = match init {
        ConvInit::Default => (
            uniform(&shape, default_bound(fan_in), rng),
            uniform(&[config.out_channels], default_bound(fan_in), rng),
        ),
        ConvInit::KaimingFanOut => (
            normal(&shape, 0.0, (2.0 / fan_out.max(1) as f32).sqrt(), rng),
            Tensor::zeros(&[config.out_channels]),
        ),
        ConvInit::TruncNormal(std) => {
            let w = trunc_normal(&shape, std, 2.0, rng);
            (w, pytorch_default_bias(config.out_channels, fan_in, rng))
        }
    };
    let bias = config.bias.then_some(bias);
    Ok(Conv2d::from_tensors(config, weight, bias)?)
}

/// A linear layer initialised as `init` says.
pub fn linear(config: LinearConfig, init: LinearInit, rng: &mut Rng) -> Result<Linear> {
    let LinearConfig {
        in_features,
        out_features,
        bias,
    } = config;
    if in_features == 0 || out_features == 0 {
        // Linear::new reports zero sizes.
        return Ok(Linear::new(config, rng)?);
    }
    let shape = [out_features, in_features];
    convnet_layers::param::check_param_size("Linear", &shape)?;
    let (weight, b) = match init {
        LinearInit::Default => (
            uniform(&shape, default_bound(in_features), rng),
            uniform(&[out_features], default_bound(in_features), rng),
        ),
        LinearInit::Normal(std) => (
            normal(&shape, 0.0, std, rng),
            Tensor::zeros(&[out_features]),
        ),
        LinearInit::TruncNormal(std) => {
            let w = trunc_normal(&shape, std, 2.0, rng);
            (w, pytorch_default_bias(out_features, in_features, rng))
        }
    };
    Ok(Linear::from_tensors(weight, bias.then_some(b))?)
}

/// A BatchNorm2d with weight 1 and bias 0 (PyTorch's default, which
/// torchvision's models also set explicitly) and the given epsilon.
pub fn batch_norm(channels: usize, eps: f32) -> Result<BatchNorm2d> {
    Ok(BatchNorm2d::with_config(
        BatchNorm2dConfig::new(channels).eps(eps),
    )?)
}

/// Rejects a variant for a model that has none.
pub fn no_variant(model: &str, config: &ModelConfig) -> Result<()> {
    match &config.variant {
        None => Ok(()),
        Some(v) => Err(ZooError::config(
            model,
            format!("unknown variant `{v}`: this model has no variants"),
        )),
    }
}

/// Builds a registry model without variants: checks that `config` names no
/// variant and has sizes this program accepts, builds the network with
/// `build` and checks that `config`'s input goes through it.
pub fn build_checked<L: Layer + 'static>(
    model: &str,
    config: &ModelConfig,
    build: impl FnOnce() -> Result<L>,
) -> Result<Box<dyn Layer>> {
    no_variant(model, config)?;
    config.check(model)?;
    let net = build()?;
    check_input(model, &net, config)?;
    Ok(Box::new(net))
}

/// Checks that `config`'s input goes through `net` and gives one score per
/// class, naming the model and the input size otherwise.
pub fn check_input(model: &str, net: &dyn Layer, config: &ModelConfig) -> Result<()> {
    let input = config.input_shape(1);
    match net.output_shape(&input) {
        Ok(out) if out == [1, config.num_classes] => Ok(()),
        Ok(out) => Err(ZooError::config(
            model,
            format!(
                "a {input:?} input gives {out:?}, not [1, {}]",
                config.num_classes
            ),
        )),
        Err(e) => Err(ZooError::config(
            model,
            format!(
                "{}x{}x{} inputs do not fit the network: {e}",
                config.in_channels, config.image_size, config.image_size
            ),
        )),
    }
}

/// The drop-path (stochastic depth) probability of each of the
/// `Σ depths` blocks of a network, in order: torchvision's
/// `p · block_id / (blocks − 1)`, growing linearly from 0 to `p` (0 for a
/// single block). ConvNeXt and Swin use it.
pub fn linear_drop_path(depths: &[usize], p: f32) -> Vec<f32> {
    let total: usize = depths.iter().sum();
    (0..total)
        .map(|i| {
            if total > 1 {
                p * i as f32 / (total - 1) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Checks that a dropout probability is in `[0, 1)`.
pub fn check_dropout(model: &str, what: &str, p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(ZooError::config(
            model,
            format!("{what} must be in [0, 1), got {p}"),
        ))
    }
}

/// Checks that sizes are at least 1.
pub fn check_sizes(model: &str, sizes: &[(&str, usize)]) -> Result<()> {
    for (what, v) in sizes {
        if *v == 0 {
            return Err(ZooError::config(model, format!("{what} must be >= 1")));
        }
    }
    Ok(())
}

/// A registry entry without variants: `entry!(CONST, "name",
/// default_config, "description", |config, rng| ...)`.
macro_rules! entry {
    ($const:ident, $name:literal, $default:expr, $desc:literal, $build:expr) => {
        #[doc = concat!("Registry entry `", $name, "`: ", $desc, ".")]
        pub const $const: $crate::ModelEntry = $crate::ModelEntry {
            name: $name,
            description: $desc,
            variants: &[],
            default_config: $default,
            builder: $build,
        };
    };
}
pub(crate) use entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_moments_and_determinism_across_thread_counts() {
        let shape = [3 * CHUNK + 17];
        let a = normal(&shape, 1.0, 2.0, &mut Rng::seed_from(5));
        let n = a.len() as f64;
        let mean = a.sum() / n;
        let var = a
            .as_slice()
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "{}", var.sqrt());
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = single.install(|| normal(&shape, 1.0, 2.0, &mut Rng::seed_from(5)));
        assert_eq!(a, b);
        let c = normal(&shape, 1.0, 2.0, &mut Rng::seed_from(6));
        assert_ne!(a, c);
        // Each draw advances the caller's generator once.
        let mut r = Rng::seed_from(5);
        let _ = normal(&[4], 0.0, 1.0, &mut r);
        let mut s = Rng::seed_from(5);
        s.next_u64();
        assert_eq!(r, s);
    }

    #[test]
    fn truncation_bounds_every_value() {
        let t = trunc_normal(&[20_000], 1.0, 0.5, &mut Rng::seed_from(1));
        assert!(t.as_slice().iter().all(|v| v.abs() <= 0.5));
        assert!(t.as_slice().iter().any(|v| v.abs() > 0.45));
    }

    #[test]
    fn torchvision_initialisations() {
        let mut rng = Rng::seed_from(0);
        let c = conv(
            Conv2dConfig::new(16, 32, 3),
            ConvInit::KaimingFanOut,
            &mut rng,
        )
        .unwrap();
        let w = &c.weight.value;
        let std =
            (w.as_slice().iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64).sqrt();
        let expected = (2.0f64 / (32.0 * 9.0)).sqrt();
        assert!((std / expected - 1.0).abs() < 0.05, "{std} vs {expected}");
        assert!(c
            .bias
            .as_ref()
            .unwrap()
            .value
            .as_slice()
            .iter()
            .all(|&b| b == 0.0));
        let l = linear(
            LinearConfig::new(300, 200),
            LinearInit::Normal(0.01),
            &mut rng,
        )
        .unwrap();
        assert!(l.weight.value.as_slice().iter().all(|v| v.abs() < 0.07));
        let g = conv(
            Conv2dConfig::new(4, 4, 1).bias(false),
            ConvInit::TruncNormal(0.01),
            &mut rng,
        )
        .unwrap();
        assert!(g.bias.is_none());
        assert!(conv(
            Conv2dConfig::new(4, 4, 1).groups(3),
            ConvInit::KaimingFanOut,
            &mut rng
        )
        .is_err());
        assert!(linear(LinearConfig::new(0, 4), LinearInit::Normal(0.01), &mut rng).is_err());
    }
}
