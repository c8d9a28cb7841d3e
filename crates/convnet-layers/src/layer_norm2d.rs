//! Channels-first layer normalisation of `[N, C, H, W]`: each pixel is
//! normalised over its channels.
//!
//! PyTorch equivalent: torchvision's `LayerNorm2d` (ConvNeXt's stem and
//! downsampling layers), i.e. `LayerNorm(C)` applied to the NHWC permutation.
//! Shapes: `[N, C, H, W]` -> the same.

use convnet_tensor::kernels::norm::{
    layer_norm_channels_first_backward, layer_norm_channels_first_forward,
};
use convnet_tensor::Result as TensorResult;

use crate::error::Result;
use crate::layer_norm::{Norm, NormAxis};
use crate::util::nchw;

/// Layer normalisation over the channel axis of an NCHW tensor: at every
/// `(n, h, w)`, the `C` values are normalised by their mean and (biased)
/// variance, then scaled and shifted per channel:
/// `y[n, c, h, w] = (x − μ_{n,h,w}) / sqrt(σ²_{n,h,w} + eps) · weight_c + bias_c`.
/// No permutation is needed: the kernel works on NCHW directly.
///
/// Parameters `weight` (ones) and `bias` (zeros), `[C]` each.
///
/// PyTorch equivalent: torchvision's `torchvision.models.convnext.LayerNorm2d`
/// (and timm's `LayerNorm2d`).
///
/// # Shapes
///
/// - input: `[N, C, H, W]`
/// - output: the same
///
/// ```
/// use convnet_layers::{Layer, LayerNorm2d, LayerNormConfig};
/// use convnet_tensor::Tensor;
///
/// let mut ln = LayerNorm2d::with_config(LayerNormConfig::new(3).eps(1e-6))?;
/// let x = Tensor::arange(&[2, 3, 4, 4]);
/// let y = ln.forward(&x)?;
/// // Each pixel's 3 channels (p, p + 16, p + 32) become (-1.22, 0, 1.22).
/// assert!((y.at(&[0, 0, 1, 1]) + 1.224_744_9).abs() < 1e-4);
/// assert!(y.at(&[1, 1, 3, 2]).abs() < 1e-5);
/// assert_eq!(ln.backward(&Tensor::ones(&[2, 3, 4, 4]))?.shape(), x.shape());
/// assert!(ln.infer(&Tensor::zeros(&[2, 4, 4, 3])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
pub type LayerNorm2d = Norm<ChannelsFirst>;

/// Normalisation over the channels of NCHW data: [`LayerNorm2d`].
#[derive(Debug, Clone, Copy)]
pub struct ChannelsFirst;

impl NormAxis for ChannelsFirst {
    const NAME: &'static str = "LayerNorm2d";
    /// `[N, C, H, W]`.
    type Geometry = [usize; 4];

    fn geometry(shape: &[usize], channels: usize) -> Result<[usize; 4]> {
        nchw(Self::NAME, shape, Some(channels))
    }

    fn groups([n, _, h, w]: [usize; 4]) -> usize {
        n * h * w
    }

    fn forward(
        out: &mut [f32],
        mean: &mut [f32],
        invstd: &mut [f32],
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        shape: [usize; 4],
        eps: f32,
    ) -> TensorResult<()> {
        layer_norm_channels_first_forward(out, mean, invstd, x, weight, bias, shape, eps)
    }

    fn backward(
        grad_in: &mut [f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
        grad_out: &[f32],
        x: &[f32],
        weight: &[f32],
        mean: &[f32],
        invstd: &[f32],
        shape: [usize; 4],
    ) -> TensorResult<()> {
        layer_norm_channels_first_backward(
            grad_in,
            grad_weight,
            grad_bias,
            grad_out,
            x,
            weight,
            mean,
            invstd,
            shape,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::{Layer, LayerNorm};
    use convnet_tensor::{Rng, Tensor};

    fn perturbed(c: usize, seed: u64) -> LayerNorm2d {
        let mut ln = LayerNorm2d::new(c).unwrap();
        let mut rng = Rng::seed_from(seed);
        ln.affine.weight.as_mut().unwrap().value = Tensor::rand_uniform(&[c], 0.5, 1.5, &mut rng);
        ln.affine.bias.as_mut().unwrap().value = Tensor::rand_uniform(&[c], -0.5, 0.5, &mut rng);
        ln
    }

    #[test]
    fn gradient() {
        check_layer(&mut perturbed(3, 0), &random(&[2, 3, 2, 3], 1));
    }

    #[test]
    fn equals_layer_norm_on_the_nhwc_permutation() {
        let x = random(&[2, 3, 2, 2], 4);
        let ln2d = perturbed(3, 5);
        let mut ln = LayerNorm::new(3).unwrap();
        ln.affine = ln2d.affine.clone();
        let y = ln2d.infer(&x).unwrap();
        let nhwc = Tensor::from_array(x.view().permuted_axes(vec![0, 2, 3, 1]).to_owned());
        let z = ln.infer(&nhwc).unwrap();
        let back = Tensor::from_array(z.view().permuted_axes(vec![0, 3, 1, 2]).to_owned());
        assert!(y.allclose(&back, 1e-5, 1e-6));
    }

    #[test]
    fn errors() {
        let mut ln = LayerNorm2d::new(3).unwrap();
        for bad in [vec![2, 3], vec![2, 4, 2, 2], vec![2, 3, 2]] {
            let e = ln.infer(&Tensor::zeros(&bad)).unwrap_err();
            assert!(e.to_string().contains("LayerNorm2d"), "{e}");
        }
        assert!(LayerNorm2d::new(0).is_err());
        assert!(ln.backward(&Tensor::zeros(&[1, 3, 1, 1])).is_err());
    }
}
