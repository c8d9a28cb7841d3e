//! Inference-time fusion of `Conv2d → BatchNorm2d [→ ReLU]`.
//!
//! In inference BatchNorm is a per-channel affine map with its running
//! statistics, `bn(y)_o = (y_o − mean_o)·s_o + β_o` with
//! `s_o = γ_o / √(var_o + ε)`, so it folds into the convolution before it:
//! either into the weights and bias (`w'_o = w_o·s_o`,
//! `b'_o = (b_o − mean_o)·s_o + β_o`) or as one in-place pass over the
//! convolution's output, ReLU included. Either way the BatchNorm's (and the
//! ReLU's) output tensors are never allocated. [`crate::Sequential::infer`]
//! uses it; `forward` (training) never does.

use convnet_tensor::kernels::conv2d::conv2d_forward;
use convnet_tensor::kernels::norm::batch_norm2d_infer_inplace;
use convnet_tensor::Tensor;
use rayon::prelude::*;

use crate::batch_norm2d::BatchNorm2d;
use crate::containers::Child;
use crate::conv2d::Conv2d;
use crate::error::Result;
use crate::util::{kernel, tensor};

/// The part a layer can play in inference-time fusion, as
/// [`crate::Layer::fusion_role`] tells it: containers look for
/// `Conv2d → BatchNorm2d [→ ReLU]` runs and for a ReLU after a residual sum
/// by asking their children, never by type names.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum FusionRole<'a> {
    /// A convolution, into which a BatchNorm after it can fold.
    Conv2d(&'a Conv2d),
    /// A BatchNorm, which folds into the convolution before it.
    BatchNorm2d(&'a BatchNorm2d),
    /// A ReLU, which runs in the same pass as the operation before it.
    ReLU,
}

/// Whether `layer` is a ReLU that can run in the pass before it.
pub(crate) fn is_relu(layer: &dyn crate::Layer) -> bool {
    matches!(layer.fusion_role(), Some(FusionRole::ReLU))
}

/// If `children` starts with a `Conv2d` followed by a `BatchNorm2d` over its
/// output channels (and optionally a `ReLU`), runs them fused on `x` and
/// returns how many children were consumed with the result; `None` if the
/// pattern does not match (the caller then runs the children one by one).
pub(crate) fn infer_conv_bn(children: &[Child], x: &Tensor) -> Option<(usize, Result<Tensor>)> {
    let [(conv_name, conv), (_, bn), rest @ ..] = children else {
        return None;
    };
    let (Some(FusionRole::Conv2d(conv)), Some(FusionRole::BatchNorm2d(bn))) =
        (conv.fusion_role(), bn.fusion_role())
    else {
        return None;
    };
    if bn.config().num_features != conv.config().out_channels {
        return None;
    }
    let relu = rest.first().is_some_and(|(_, l)| is_relu(l.as_ref()));
    let used = 2 + usize::from(relu);
    Some((
        used,
        conv_bn_relu(conv, bn, x, relu).map_err(|e| e.in_child(conv_name)),
    ))
}

/// `relu?(bn(conv(x)))` in inference mode, without intermediate tensors.
fn conv_bn_relu(conv: &Conv2d, bn: &BatchNorm2d, x: &Tensor, relu: bool) -> Result<Tensor> {
    const NAME: &str = "Conv2d";
    let g = conv.geometry(x.shape())?;
    let out_shape = g.output_shape();
    let out_len: usize = out_shape.iter().product();
    // bn(y)_o = (y_o − mean_o)·scale_o + shift_o, as BatchNorm2d::infer.
    let (scale, shift) = bn.infer_scale_shift()?;
    let mean = bn.running_mean.as_slice();
    let weight = conv.weight.value.as_slice();
    let conv_bias = conv.bias.as_ref().map(|b| b.value.as_slice());
    let mut y = vec![0.0f32; out_len];
    // Folding into the weights costs a pass over them; the in-place pass over
    // the output is needed anyway for the ReLU. Fold only when it replaces a
    // pass over a larger output.
    if !relu && weight.len() < out_len {
        let per_filter = weight.len() / scale.len();
        let mut w = weight.to_vec();
        w.par_chunks_mut(per_filter.max(1))
            .zip(&scale)
            .for_each(|(f, &s)| f.iter_mut().for_each(|v| *v *= s));
        let b: Vec<f32> = (0..scale.len())
            .map(|o| (conv_bias.map_or(0.0, |b| b[o]) - mean[o]) * scale[o] + shift[o])
            .collect();
        kernel(NAME, conv2d_forward(&mut y, x.as_slice(), &w, Some(&b), &g))?;
    } else {
        kernel(
            NAME,
            conv2d_forward(&mut y, x.as_slice(), weight, conv_bias, &g),
        )?;
        kernel(
            "BatchNorm2d",
            batch_norm2d_infer_inplace(&mut y, mean, &scale, &shift, out_shape, relu),
        )?;
    }
    Ok(tensor(&out_shape, y))
}

/// `acc += x`, then `acc = max(acc, 0)` if `relu`, in parallel chunks:
/// a residual connection's addition and activation in one in-place pass.
pub(crate) fn add_relu_into(acc: &mut [f32], x: &[f32], relu: bool) {
    debug_assert_eq!(acc.len(), x.len());
    const CHUNK: usize = 1 << 14;
    acc.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(a, x)| {
            if relu {
                a.iter_mut()
                    .zip(x)
                    .for_each(|(a, &b)| *a = (*a + b).max(0.0));
            } else {
                a.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
            }
        });
}

#[cfg(test)]
mod tests {
    use convnet_tensor::Rng;

    use crate::testing::random;
    use crate::{
        BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, FusionRole, Layer, ReLU, Residual,
        Sequential,
    };

    /// A BatchNorm with non-trivial running statistics and affine map.
    fn bn(c: usize, seed: u64) -> BatchNorm2d {
        let mut bn = BatchNorm2d::with_config(BatchNorm2dConfig::new(c).eps(1e-3)).unwrap();
        let mut rng = Rng::seed_from(seed);
        let u = |rng: &mut Rng, lo: f32, hi: f32| {
            Tensor::rand_uniform(&[c], lo, hi, rng).as_slice().to_vec()
        };
        bn.running_mean
            .as_slice_mut()
            .copy_from_slice(&u(&mut rng, -1.0, 1.0));
        bn.running_var
            .as_slice_mut()
            .copy_from_slice(&u(&mut rng, 0.2, 3.0));
        let (w, b) = (u(&mut rng, 0.5, 2.0), u(&mut rng, -0.5, 0.5));
        bn.weight
            .as_mut()
            .unwrap()
            .value
            .as_slice_mut()
            .copy_from_slice(&w);
        bn.bias
            .as_mut()
            .unwrap()
            .value
            .as_slice_mut()
            .copy_from_slice(&b);
        bn
    }

    use convnet_tensor::Tensor;

    /// The children's `infer`, one after the other (no fusion).
    fn unfused(net: &Sequential, x: &Tensor) -> Tensor {
        net.children()
            .fold(x.clone(), |x, (_, c)| c.infer(&x).unwrap())
    }

    fn assert_close(a: &Tensor, b: &Tensor) {
        assert_eq!(a.shape(), b.shape());
        let scale = b.as_slice().iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (&p, &q)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
            assert!((p - q).abs() <= 1e-5 * scale, "{i}: {p} vs {q}");
        }
    }

    fn conv(cfg: Conv2dConfig, seed: u64) -> Conv2d {
        Conv2d::new(cfg, &mut Rng::seed_from(seed)).unwrap()
    }

    #[test]
    fn conv_bn_relu_equals_the_unfused_chain() {
        // Relu (in-place pass), no ReLU with small weights (folded into the
        // weights), no ReLU with large weights (in-place pass), with and
        // without conv bias, strided, non-affine BatchNorm.
        for (relu, cin, cout, hw, stride, bias) in [
            (true, 3, 8, 9, 1, false),
            (false, 3, 8, 9, 1, true),
            (false, 16, 32, 3, 2, false),
            (true, 16, 32, 3, 2, true),
        ] {
            let cfg = Conv2dConfig::new(cin, cout, 3)
                .stride(stride)
                .padding(1)
                .bias(bias);
            let mut net = Sequential::default().with(conv(cfg, 1)).with(bn(cout, 2));
            if relu {
                net.push(Box::new(ReLU::new()));
            }
            let x = random(&[2, cin, hw, hw], 3);
            let fused = net.infer(&x).unwrap();
            assert_close(&fused, &unfused(&net, &x));
            let folded = !relu && cout * cin * 9 < fused.len();
            if !folded {
                // The in-place pass gives BatchNorm2d::infer's (and ReLU's) bits.
                assert_eq!(fused, unfused(&net, &x));
            }
            if relu {
                assert!(fused.as_slice().iter().all(|&v| v >= 0.0));
                assert!(fused.as_slice().iter().any(|&v| v > 0.0));
            }
        }
        let plain = BatchNorm2d::with_config(BatchNorm2dConfig::new(4).affine(false)).unwrap();
        let net = Sequential::default()
            .with(conv(Conv2dConfig::new(2, 4, 3), 4))
            .with(plain)
            .with(ReLU::new());
        let x = random(&[1, 2, 6, 6], 5);
        assert_close(&net.infer(&x).unwrap(), &unfused(&net, &x));
    }

    #[test]
    fn fusion_roles_are_typed_and_seen_through_boxes() {
        let conv: Box<dyn Layer> = Box::new(conv(Conv2dConfig::new(2, 3, 1), 1));
        let bn: Box<dyn Layer> = Box::new(bn(3, 2));
        let relu: Box<dyn Layer> = Box::new(ReLU::new());
        assert!(
            matches!(conv.fusion_role(), Some(FusionRole::Conv2d(c)) if c.config().out_channels == 3)
        );
        assert!(matches!(bn.fusion_role(), Some(FusionRole::BatchNorm2d(_))));
        assert!(matches!(relu.fusion_role(), Some(FusionRole::ReLU)));
        for other in [
            Box::new(crate::GELU::new()) as Box<dyn Layer>,
            Box::new(crate::Sigmoid::new()),
            Box::new(Sequential::default()),
        ] {
            assert!(other.fusion_role().is_none(), "{}", other.type_name());
        }
        // A Residual with another activation applies it after the sum.
        let body = Sequential::default().with(conv_same(3, 4));
        let block = Residual::new(Box::new(body), None)
            .unwrap()
            .with_activation(Box::new(crate::Sigmoid::new()));
        let x = random(&[1, 3, 4, 4], 6);
        let y = block.infer(&x).unwrap();
        assert!(y.as_slice().iter().all(|&v| v > 0.0 && v < 1.0));
    }

    fn conv_same(c: usize, seed: u64) -> Conv2d {
        conv(Conv2dConfig::new(c, c, 3).padding(1), seed)
    }

    #[test]
    fn basic_block_equals_the_unfused_block_and_forward_is_unchanged() {
        let body = Sequential::named(vec![
            (
                "conv1",
                Box::new(conv(
                    Conv2dConfig::new(4, 8, 3).stride(2).padding(1).bias(false),
                    1,
                )) as Box<dyn Layer>,
            ),
            ("bn1", Box::new(bn(8, 2))),
            ("relu1", Box::new(ReLU::new())),
            (
                "conv2",
                Box::new(conv(Conv2dConfig::new(8, 8, 3).padding(1).bias(false), 3)),
            ),
            ("bn2", Box::new(bn(8, 4))),
        ])
        .unwrap();
        let down = Sequential::default()
            .with(conv(Conv2dConfig::new(4, 8, 1).stride(2).bias(false), 5))
            .with(bn(8, 6));
        let x = random(&[2, 4, 8, 8], 7);
        // The unfused reference, child by child.
        let s = unfused(&down, &x);
        let mut r = unfused(&body, &x);
        r.as_slice_mut()
            .iter_mut()
            .zip(s.as_slice())
            .for_each(|(a, b)| *a = (*a + b).max(0.0));
        let mut block = Residual::new(Box::new(body), Some(Box::new(down)))
            .unwrap()
            .with_activation(Box::new(ReLU::new()));
        assert_close(&block.infer(&x).unwrap(), &r);
        // Training mode never fuses: forward matches the children's forwards
        // (batch statistics, running statistics updated).
        let mut seq = Sequential::default()
            .with(conv(Conv2dConfig::new(4, 6, 3), 8))
            .with(bn(6, 9))
            .with(ReLU::new());
        let mut parts = seq.try_clone().unwrap();
        let y = seq.forward(&x).unwrap();
        let mut z = x.clone();
        for (_, c) in parts.children_mut() {
            z = c.forward(&z).unwrap();
        }
        assert_eq!(y, z);
        let mut stats = (Vec::new(), Vec::new());
        seq.visit_buffers("", &mut |_, t| stats.0.push(t.clone()));
        parts.visit_buffers("", &mut |_, t| stats.1.push(t.clone()));
        assert_eq!(stats.0, stats.1);
        assert!(block.forward(&x).is_ok());
        // Channels that do not match are no pattern: errors name
        // the child as before.
        let bad = Sequential::default()
            .with(conv(Conv2dConfig::new(4, 6, 3), 8))
            .with(bn(5, 9));
        let e = bad.infer(&x).unwrap_err();
        assert_eq!(e.layer(), "1 (BatchNorm2d)");
        let e = seq.infer(&random(&[2, 3, 8, 8], 1)).unwrap_err();
        assert_eq!(e.layer(), "0 (Conv2d)");
    }
}
