//! 2-D convolution (cross-correlation, as PyTorch's `torch.nn.functional.conv2d`),
//! forward and backward, with stride, zero padding, dilation and groups.
//!
//! # Shapes
//!
//! - input `[N, C, H, W]`, weight `[O, C/groups, KH, KW]` (OIHW), bias `[O]`,
//!   output `[N, O, OH, OW]`, all row-major; the output size comes from
//!   [`Conv2dGeometry`].
//!
//! ```text
//! out[n, o, oh, ow] = bias[o] + Σ_{c in group(o), ki, kj}
//!     weight[o, c − first(o), ki, kj] · input[n, c, oh·sh + ki·dh − ph, ow·sw + kj·dw − pw]
//! ```
//!
//! # Strategies
//!
//! - **Depthwise** (`C/groups == 1`: ConvNeXt's 7×7, and any single-channel
//!   input such as LeNet-5's first layer): direct, register-blocked loops
//!   over zero-padded planes, parallel over `(image, channel)` planes
//!   (`depthwise.rs`).
//! - **1×1, stride 1, no padding** (ResNet's bottlenecks): the input image is
//!   already the column matrix; one sgemm per image and group.
//! - **Stride 1** (3×3 and 5×5 layers): im2col over the *padded grid*, where
//!   every patch row is one contiguous run of the padded image, then sgemm;
//!   small images share one product (`padded.rs`).
//! - **3×3, stride 1, one group, at least 32 input and output channels and
//!   enough output tiles in the call** (VGG, ResNet), forward only:
//!   Winograd F(4×4, 3×3) up to 64 channels, F(2×2, 3×3) above
//!   (`winograd/`).
//! - **Everything else**: im2col row by row of a band of output rows +
//!   sgemm (`im2col.rs`, `lowered.rs`).
//!
//! The lowered strategies run one task per image (or block of small images)
//! when the batch is at least the thread count, and split the work inside
//! each image otherwise.
//!
//! The weight gradient sums over images in a fixed order (per-thread partial
//! sums of fixed chunks of the batch, added in chunk order), so a given
//! thread count gives bit-identical results from run to run.
//!
//! # Speed
//!
//! `cargo xtask bench` measures the kernels against the machine's sgemm. On a
//! 2-core AMD EPYC (Zen 5, AVX-512), per core: ResNet's 3×3 (64 channels,
//! 56×56) runs at about 80% of sgemm forward and 70% backward, its 1×1
//! (256 → 64) at 75% and 65%, ConvNeXt's depthwise 7×7 at 45% and 33%.

mod depthwise;
mod im2col;
mod layout;
mod lowered;
mod padded;
mod scratch;
#[cfg(test)]
mod tests;
mod winograd;

use crate::error::{fmt_shape, Result, TensorError};
use crate::geometry::Conv2dGeometry;
use crate::tensor::Tensor;

use lowered::Dims;

/// Checks that `g` is a geometry [`Conv2dGeometry::new`] would build (its
/// fields are public) and that every slice has the length its shape needs.
fn check(
    op: &'static str,
    g: &Conv2dGeometry,
    slices: &[(&str, Option<usize>, [usize; 4])],
    bias: Option<(&str, usize)>,
) -> Result<()> {
    let rebuilt = Conv2dGeometry::new(
        &g.input_shape(),
        &g.weight_shape(),
        (g.stride_h, g.stride_w),
        (g.pad_h, g.pad_w),
        (g.dilation_h, g.dilation_w),
        g.groups,
    )?;
    if rebuilt != *g {
        return Err(TensorError::invalid(
            op,
            format!(
                "inconsistent geometry: output {} but input {} and weight {} give {}",
                fmt_shape(&g.output_shape()),
                fmt_shape(&g.input_shape()),
                fmt_shape(&g.weight_shape()),
                fmt_shape(&rebuilt.output_shape()),
            ),
        ));
    }
    let shapes = || {
        format!(
            " (input {}, weight {}, output {})",
            fmt_shape(&g.input_shape()),
            fmt_shape(&g.weight_shape()),
            fmt_shape(&g.output_shape())
        )
    };
    for &(name, len, shape) in slices {
        let needed: usize = shape.iter().product();
        if let Some(len) = len {
            if len != needed {
                return Err(TensorError::shape(
                    op,
                    format!("length of {name}"),
                    format!("{needed} ({name} {})", fmt_shape(&shape)),
                    format!("{len}{}", shapes()),
                ));
            }
        }
    }
    if let Some((name, len)) = bias {
        if len != g.out_channels {
            return Err(TensorError::shape(
                op,
                format!("length of {name}"),
                format!("{} ({name} [{}])", g.out_channels, g.out_channels),
                format!("{len}{}", shapes()),
            ));
        }
    }
    Ok(())
}

/// Whether the depthwise direct loops apply: one input channel per group.
fn is_depthwise(g: &Conv2dGeometry) -> bool {
    g.in_channels == g.groups && g.in_channels > 0
}

/// Forward pass: `out [N, O, OH, OW] = conv(input [N, C, H, W], weight
/// [O, C/groups, KH, KW]) + bias [O]`.
///
/// `out` is overwritten. Errors (naming the shapes) when a slice length does
/// not match the geometry.
///
/// ```
/// use convnet_tensor::kernels::conv2d::conv2d_forward;
/// use convnet_tensor::Conv2dGeometry;
/// // The lecture's example: a 4x4 image and a 2x2 filter, stride 1, give 3x3.
/// let input = [2., -1., -1., 3., -2., 1., 2., -1., 0., 0., 2., 3., 2., -1., -3., 2.];
/// let weight = [-1., 2., 0., 1.];
/// let g = Conv2dGeometry::new(&[1, 1, 4, 4], &[1, 1, 2, 2], (1, 1), (0, 0), (1, 1), 1)?;
/// let mut out = [0.0; 9];
/// conv2d_forward(&mut out, &input, &weight, None, &g)?;
/// assert_eq!(out, [-3., 1., 6., 4., 5., -1., -1., 1., 6.]);
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn conv2d_forward(
    out: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
) -> Result<()> {
    check(
        "conv2d_forward",
        g,
        &[
            ("out", Some(out.len()), g.output_shape()),
            ("input", Some(input.len()), g.input_shape()),
            ("weight", Some(weight.len()), g.weight_shape()),
        ],
        bias.map(|b| ("bias", b.len())),
    )?;
    let d = Dims::new(g);
    if d.out_img == 0 || g.batch == 0 {
        return Ok(());
    }
    if d.in_img == 0 {
        // No input channels (or an empty image seen only through padding):
        // the output is the bias.
        for (row, o) in out.chunks_exact_mut(d.ohw).zip((0..g.out_channels).cycle()) {
            row.fill(bias.map_or(0.0, |b| b[o]));
        }
        return Ok(());
    }
    if is_depthwise(g) {
        depthwise::forward(out, input, weight, bias, g);
    } else if let Some(plan) = winograd::Plan::choose(g) {
        winograd::forward(out, input, weight, bias, g, &plan);
    } else {
        lowered::forward(out, input, weight, bias, &d);
    }
    Ok(())
}

/// Backward pass: from `grad_out` (`[N, O, OH, OW]`), the `input` and the
/// `weight` of the forward pass, computes the input gradient (overwritten)
/// and **accumulates** (`+=`) the weight and bias gradients, each only if
/// asked for (`Some`).
///
/// Errors (naming the shapes) when a slice length does not match the geometry.
///
/// ```
/// use convnet_tensor::kernels::conv2d::conv2d_backward;
/// use convnet_tensor::Conv2dGeometry;
/// // y = w · x for a 1x1 convolution of one pixel: dL/dx = w · dy, dL/dw = x · dy.
/// let g = Conv2dGeometry::new(&[1, 1, 1, 1], &[1, 1, 1, 1], (1, 1), (0, 0), (1, 1), 1)?;
/// let (mut gx, mut gw, mut gb) = ([0.0], [10.0], [0.0]);
/// conv2d_backward(Some(&mut gx), Some(&mut gw), Some(&mut gb), &[2.0], &[3.0], &[5.0], &g)?;
/// assert_eq!((gx, gw, gb), ([10.0], [16.0], [2.0])); // gw accumulated onto 10
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn conv2d_backward(
    grad_input: Option<&mut [f32]>,
    grad_weight: Option<&mut [f32]>,
    grad_bias: Option<&mut [f32]>,
    grad_out: &[f32],
    input: &[f32],
    weight: &[f32],
    g: &Conv2dGeometry,
) -> Result<()> {
    check(
        "conv2d_backward",
        g,
        &[
            (
                "grad_input",
                grad_input.as_ref().map(|s| s.len()),
                g.input_shape(),
            ),
            (
                "grad_weight",
                grad_weight.as_ref().map(|s| s.len()),
                g.weight_shape(),
            ),
            ("grad_out", Some(grad_out.len()), g.output_shape()),
            ("input", Some(input.len()), g.input_shape()),
            ("weight", Some(weight.len()), g.weight_shape()),
        ],
        grad_bias.as_ref().map(|b| ("grad_bias", b.len())),
    )?;
    let d = Dims::new(g);
    if let Some(grad_bias) = grad_bias {
        bias_grad(grad_bias, grad_out, &d);
    }
    if d.in_img == 0 || g.batch == 0 {
        // Nothing flows into an empty input, and no weight sees a value.
        return Ok(());
    }
    if d.out_img == 0 {
        if let Some(grad_input) = grad_input {
            grad_input.fill(0.0);
        }
        return Ok(());
    }
    if is_depthwise(g) {
        depthwise::backward(grad_input, grad_weight, grad_out, input, weight, g);
    } else {
        lowered::backward(grad_input, grad_weight, grad_out, input, weight, &d);
    }
    Ok(())
}

/// `db[o] += Σ_{n, p} dy[n, o, p]`, each channel summed in a fixed order
/// (images in order, eight interleaved partial sums within a plane).
fn bias_grad(db: &mut [f32], dy: &[f32], d: &Dims) {
    use rayon::prelude::*;
    let (o_n, ohw, batch) = (d.g.out_channels, d.ohw, d.g.batch);
    db.par_iter_mut().enumerate().for_each(|(o, db)| {
        let mut total = 0.0f32;
        for n in 0..batch {
            let plane = &dy[(n * o_n + o) * ohw..][..ohw];
            let mut lanes = [0.0f32; 8];
            let mut blocks = plane.chunks_exact(8);
            for blk in &mut blocks {
                for (l, &v) in lanes.iter_mut().zip(blk) {
                    *l += v;
                }
            }
            let tail: f32 = blocks.remainder().iter().sum();
            total += lanes.iter().sum::<f32>() + tail;
        }
        *db += total;
    });
}

/// Convolution of tensors: checks the shapes with [`Conv2dGeometry::new`],
/// allocates the output and runs [`conv2d_forward`].
///
/// `input` is `[N, C, H, W]`, `weight` `[O, C/groups, KH, KW]`, `bias` `[O]`;
/// `stride`, `padding` and `dilation` are `(vertical, horizontal)`.
/// PyTorch equivalent: `torch.nn.functional.conv2d(input, weight, bias, stride,
/// padding, dilation, groups)`.
///
/// ```
/// use convnet_tensor::kernels::conv2d::conv2d;
/// use convnet_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed_from(0);
/// let x = Tensor::randn(&[2, 3, 32, 32], 0.0, 1.0, &mut rng);
/// let w = Tensor::randn(&[8, 3, 3, 3], 0.0, 0.1, &mut rng);
/// let y = conv2d(&x, &w, None, (2, 2), (1, 1), (1, 1), 1)?;
/// assert_eq!(y.shape(), &[2, 8, 16, 16]);
/// assert!(conv2d(&x, &Tensor::zeros(&[8, 2, 3, 3]), None, (1, 1), (0, 0), (1, 1), 1).is_err());
/// # Ok::<(), convnet_tensor::TensorError>(())
/// ```
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<Tensor> {
    let g = Conv2dGeometry::new(
        input.shape(),
        weight.shape(),
        stride,
        padding,
        dilation,
        groups,
    )?;
    if let Some(b) = bias {
        b.expect_shape("conv2d bias", &[g.out_channels])?;
    }
    let mut out = Tensor::zeros(&g.output_shape());
    conv2d_forward(
        out.as_slice_mut(),
        input.as_slice(),
        weight.as_slice(),
        bias.map(Tensor::as_slice),
        &g,
    )?;
    Ok(out)
}
