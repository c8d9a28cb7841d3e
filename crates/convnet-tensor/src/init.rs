//! Weight initialisers, with PyTorch's defaults.
//!
//! PyTorch initialises `Conv2d` and `Linear` weights with
//! `kaiming_uniform_(w, a = sqrt(5))`, which is the uniform law on
//! `±1/sqrt(fan_in)`, and their biases uniformly on `±1/sqrt(fan_in)`;
//! [`pytorch_default_weight`] and [`pytorch_default_bias`] do the same. `fan_in`
//! of a weight `[out, in, kh, kw]` (or `[out, in]`) is `in * kh * kw`.

use crate::rng::Rng;
use crate::tensor::Tensor;

/// `(fan_in, fan_out)` of a weight shape, as PyTorch computes them:
/// `[out, in, k...]` gives `(in * prod(k), out * prod(k))`; a 1-D shape gives
/// `(len, len)`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            (shape[1] * receptive, shape[0] * receptive)
        }
    }
}

/// Uniform on `[-bound, bound)`.
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, -bound, bound, rng)
}

/// Normal with the given mean and standard deviation.
pub fn normal(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, mean, std, rng)
}

/// Normal truncated to `[mean - 2 std, mean + 2 std]` by resampling (as
/// `timm`'s `trunc_normal_(std=0.02)` in ViT and ConvNeXt).
pub fn trunc_normal(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| loop {
            let z = rng.normal();
            if z.abs() <= 2.0 {
                break mean + std * z;
            }
        })
        .collect();
    Tensor::from_vec(shape, data).expect("sizes agree")
}

/// `kaiming_uniform_(a, mode="fan_in", nonlinearity="leaky_relu")`: uniform on
/// `±gain * sqrt(3 / fan_in)` with `gain = sqrt(2 / (1 + a²))`.
pub fn kaiming_uniform(shape: &[usize], a: f32, rng: &mut Rng) -> Tensor {
    let (fan_in, _) = fans(shape);
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = gain * (3.0 / fan_in.max(1) as f32).sqrt();
    uniform(shape, bound, rng)
}

/// Which fan `kaiming_normal` scales by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserves the variance of activations in the forward pass.
    FanIn,
    /// Preserves the variance of gradients in the backward pass (torchvision's
    /// ResNet and VGG use this).
    FanOut,
}

/// `kaiming_normal_(mode, nonlinearity="relu")`: normal with
/// `std = sqrt(2 / fan)`.
pub fn kaiming_normal(shape: &[usize], mode: FanMode, rng: &mut Rng) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    normal(shape, 0.0, (2.0 / fan.max(1) as f32).sqrt(), rng)
}

/// `xavier_uniform_`: uniform on `±sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fi, fo) = fans(shape);
    uniform(shape, (6.0 / (fi + fo).max(1) as f32).sqrt(), rng)
}

/// `xavier_normal_`: normal with `std = sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fi, fo) = fans(shape);
    normal(shape, 0.0, (2.0 / (fi + fo).max(1) as f32).sqrt(), rng)
}

/// PyTorch's default weight initialisation for `Conv2d` and `Linear`:
/// `kaiming_uniform_(a = sqrt(5))`, i.e. uniform on `±1/sqrt(fan_in)`.
pub fn pytorch_default_weight(shape: &[usize], rng: &mut Rng) -> Tensor {
    kaiming_uniform(shape, 5f32.sqrt(), rng)
}

/// PyTorch's default bias initialisation: uniform on `±1/sqrt(fan_in)`, where
/// `fan_in` is that of the layer's weight.
pub fn pytorch_default_bias(len: usize, fan_in: usize, rng: &mut Rng) -> Tensor {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f32).sqrt()
    } else {
        0.0
    };
    uniform(&[len], bound, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_match_pytorch() {
        assert_eq!(fans(&[6, 1, 5, 5]), (25, 150));
        assert_eq!(fans(&[120, 400]), (400, 120));
    }

    #[test]
    fn pytorch_default_bounds() {
        let mut rng = Rng::seed_from(0);
        let w = pytorch_default_weight(&[16, 6, 5, 5], &mut rng);
        let bound = 1.0 / 150f32.sqrt();
        let max = w.as_slice().iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound && max > 0.9 * bound, "max {max} bound {bound}");
        let b = pytorch_default_bias(16, 150, &mut rng);
        assert!(b.as_slice().iter().all(|v| v.abs() <= bound));
    }

    #[test]
    fn kaiming_normal_std() {
        let mut rng = Rng::seed_from(0);
        let w = kaiming_normal(&[64, 64, 3, 3], FanMode::FanOut, &mut rng);
        let std =
            (w.as_slice().iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64).sqrt();
        let expected = (2.0 / 576.0f64).sqrt();
        assert!((std / expected - 1.0).abs() < 0.03, "{std} vs {expected}");
        let t = trunc_normal(&[1000], 0.0, 0.02, &mut rng);
        assert!(t.as_slice().iter().all(|v| v.abs() <= 0.04));
    }
}
