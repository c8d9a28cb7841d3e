//! Output-size arithmetic of sliding windows: one place that every kernel,
//! layer, summary and test asks.

use crate::error::{fmt_shape, Result, TensorError};

/// Output size of a sliding window along one axis, the lecture's formula with
/// dilation:
///
/// `out = floor((input + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`
///
/// Errors (never panics, never underflows) when the dilated kernel does not fit
/// in the padded input, or when `kernel`, `stride` or `dilation` is zero.
///
/// About "same" padding: with stride 1, the size is kept when
/// `2·padding = dilation·(kernel − 1)`, so a 3×3 filter needs padding **1** and a
/// 5×5 filter padding 2. (The lecture says a 3×3 filter with zero padding 2 keeps
/// the size: by the formula, padding 2 makes a 3×3 convolution *grow* the image
/// by 2 in each direction.)
///
/// ```
/// use convnet_tensor::conv_output_size;
/// assert_eq!(conv_output_size(25, 5, 0, 1, 1).unwrap(), 21); // the lecture's 25x25 with 5x5
/// assert_eq!(conv_output_size(28, 3, 1, 1, 1).unwrap(), 28); // 3x3 keeps the size with padding 1
/// assert_eq!(conv_output_size(28, 3, 2, 1, 1).unwrap(), 30); // ... and grows with padding 2
/// assert!(conv_output_size(2, 5, 0, 1, 1).is_err());
/// ```
pub fn conv_output_size(
    input: usize,
    kernel: usize,
    padding: usize,
    stride: usize,
    dilation: usize,
) -> Result<usize> {
    const OP: &str = "conv_output_size";
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err(TensorError::invalid(
            OP,
            format!("kernel ({kernel}), stride ({stride}) and dilation ({dilation}) must be >= 1"),
        ));
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + 2 * padding;
    if padded < span {
        return Err(TensorError::WindowTooLarge {
            op: OP,
            input,
            kernel,
            padding,
            dilation,
        });
    }
    Ok((padded - span) / stride + 1)
}

/// Output size of a pooling window along one axis, as PyTorch's `MaxPool2d` /
/// `AvgPool2d` compute it: [`conv_output_size`], or with `ceil_mode` the
/// division rounded up, except that the last window must start inside the
/// input or its left padding.
///
/// ```
/// use convnet_tensor::pool_output_size;
/// assert_eq!(pool_output_size(112, 3, 0, 2, 1, false).unwrap(), 55);
/// assert_eq!(pool_output_size(112, 3, 0, 2, 1, true).unwrap(), 56); // GoogLeNet
/// ```
pub fn pool_output_size(
    input: usize,
    kernel: usize,
    padding: usize,
    stride: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    let floor = conv_output_size(input, kernel, padding, stride, dilation)?;
    if !ceil_mode {
        return Ok(floor);
    }
    let span = dilation * (kernel - 1) + 1;
    let rem = input + 2 * padding - span;
    let mut out = rem.div_ceil(stride) + 1;
    // The last window must start inside the input or the left padding.
    if (out - 1) * stride >= input + padding {
        out -= 1;
    }
    Ok(out)
}

/// Geometry of a 2-D convolution: input `[N, C_in, H, W]`, weight
/// `[C_out, C_in / groups, KH, KW]` (OIHW, as PyTorch), output
/// `[N, C_out, OH, OW]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero padding on the top and bottom.
    pub pad_h: usize,
    /// Zero padding on the left and right.
    pub pad_w: usize,
    /// Vertical dilation.
    pub dilation_h: usize,
    /// Horizontal dilation.
    pub dilation_w: usize,
    /// Channel groups (1 = dense, `in_channels` = depthwise).
    pub groups: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Checks an input shape `[N, C, H, W]` against a weight shape
    /// `[O, C / groups, KH, KW]` and computes the output size. Errors name
    /// both shapes.
    pub fn new(
        input_shape: &[usize],
        weight_shape: &[usize],
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
    ) -> Result<Self> {
        const OP: &str = "conv2d";
        let ctx = || {
            format!(
                " (input {}, weight {})",
                fmt_shape(input_shape),
                fmt_shape(weight_shape)
            )
        };
        if input_shape.len() != 4 {
            return Err(TensorError::shape(
                OP,
                "input rank",
                "4 axes [N, C, H, W]",
                format!("{} axes{}", input_shape.len(), ctx()),
            ));
        }
        if weight_shape.len() != 4 {
            return Err(TensorError::shape(
                OP,
                "weight rank",
                "4 axes [C_out, C_in/groups, KH, KW]",
                format!("{} axes{}", weight_shape.len(), ctx()),
            ));
        }
        let [n, c, h, w] = [
            input_shape[0],
            input_shape[1],
            input_shape[2],
            input_shape[3],
        ];
        let [o, cg, kh, kw] = [
            weight_shape[0],
            weight_shape[1],
            weight_shape[2],
            weight_shape[3],
        ];
        if groups == 0 || c % groups != 0 || o % groups != 0 {
            return Err(TensorError::invalid(
                OP,
                format!(
                    "groups ({groups}) must divide both input channels ({c}) and output channels ({o}){}",
                    ctx()
                ),
            ));
        }
        if cg * groups != c {
            return Err(TensorError::shape(
                OP,
                "input channels",
                format!(
                    "{} (weight's {cg} per group x {groups} groups)",
                    cg * groups
                ),
                format!("{c}{}", ctx()),
            ));
        }
        let out_h = conv_output_size(h, kh, padding.0, stride.0, dilation.0)
            .map_err(|e| with_context(e, &ctx()))?;
        let out_w = conv_output_size(w, kw, padding.1, stride.1, dilation.1)
            .map_err(|e| with_context(e, &ctx()))?;
        Ok(Conv2dGeometry {
            batch: n,
            in_channels: c,
            in_h: h,
            in_w: w,
            out_channels: o,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_h: padding.0,
            pad_w: padding.1,
            dilation_h: dilation.0,
            dilation_w: dilation.1,
            groups,
            out_h,
            out_w,
        })
    }

    /// `[N, C_in, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// `[C_out, C_in / groups, KH, KW]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels / self.groups,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[N, C_out, OH, OW]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }

    /// Multiply-adds of the forward pass (one FMA = 2 FLOPs); the backward pass
    /// (input and weight gradients) does twice as many.
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.batch * self.out_channels * self.out_h * self.out_w) as f64
            * ((self.in_channels / self.groups) * self.kernel_h * self.kernel_w) as f64
    }
}

/// Geometry of a 2-D pooling window over `[N, C, H, W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Implicit padding on the top and bottom.
    pub pad_h: usize,
    /// Implicit padding on the left and right.
    pub pad_w: usize,
    /// Whether the output size was rounded up.
    pub ceil_mode: bool,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Pool2dGeometry {
    /// Checks an input shape `[N, C, H, W]` and computes the output size, as
    /// PyTorch does (padding must be at most half the kernel).
    pub fn new(
        input_shape: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        ceil_mode: bool,
    ) -> Result<Self> {
        const OP: &str = "pool2d";
        if input_shape.len() != 4 {
            return Err(TensorError::shape(
                OP,
                "input rank",
                "4 axes [N, C, H, W]",
                format!(
                    "{} axes (input {})",
                    input_shape.len(),
                    fmt_shape(input_shape)
                ),
            ));
        }
        if 2 * padding.0 > kernel.0 || 2 * padding.1 > kernel.1 {
            return Err(TensorError::invalid(
                OP,
                format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
            ));
        }
        let ctx = format!(" (input {})", fmt_shape(input_shape));
        let [n, c, h, w] = [
            input_shape[0],
            input_shape[1],
            input_shape[2],
            input_shape[3],
        ];
        let out_h = pool_output_size(h, kernel.0, padding.0, stride.0, 1, ceil_mode)
            .map_err(|e| with_context(e, &ctx))?;
        let out_w = pool_output_size(w, kernel.1, padding.1, stride.1, 1, ceil_mode)
            .map_err(|e| with_context(e, &ctx))?;
        Ok(Pool2dGeometry {
            batch: n,
            channels: c,
            in_h: h,
            in_w: w,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_h: padding.0,
            pad_w: padding.1,
            ceil_mode,
            out_h,
            out_w,
        })
    }

    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_h, self.in_w]
    }

    /// `[N, C, OH, OW]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.out_w]
    }
}

fn with_context(e: TensorError, ctx: &str) -> TensorError {
    match e {
        TensorError::InvalidArgument { op, msg } => TensorError::InvalidArgument {
            op,
            msg: format!("{msg}{ctx}"),
        },
        TensorError::WindowTooLarge { .. } => TensorError::invalid("conv2d", format!("{e}{ctx}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lecture_output_sizes() {
        // 25x25 image, 5x5 filter, stride 1, no padding -> 21x21.
        assert_eq!(conv_output_size(25, 5, 0, 1, 1).unwrap(), 21);
        // 4x4 input, 2x2 filter -> 3x3 (the worked example).
        assert_eq!(conv_output_size(4, 2, 0, 1, 1).unwrap(), 3);
        // 2x2 max-pooling, stride 2 on 4x4 -> 2x2.
        assert_eq!(pool_output_size(4, 2, 0, 2, 1, false).unwrap(), 2);
    }

    #[test]
    fn same_padding_truth() {
        // The lecture says padding 2 keeps the size with a 3x3 filter; the
        // formula says padding 1 does, and padding 2 keeps a 5x5 filter's size.
        for n in [5, 28, 224] {
            assert_eq!(conv_output_size(n, 3, 1, 1, 1).unwrap(), n);
            assert_eq!(conv_output_size(n, 3, 2, 1, 1).unwrap(), n + 2);
            assert_eq!(conv_output_size(n, 5, 2, 1, 1).unwrap(), n);
            // Dilation 2 of a 3x3 spans 5: padding 2 keeps the size.
            assert_eq!(conv_output_size(n, 3, 2, 1, 2).unwrap(), n);
        }
    }

    #[test]
    fn too_large_window_is_an_error_not_an_underflow() {
        let e = conv_output_size(3, 5, 0, 1, 1).unwrap_err();
        assert!(matches!(e, TensorError::WindowTooLarge { .. }));
        assert!(conv_output_size(3, 5, 1, 1, 1).is_ok());
        assert!(conv_output_size(3, 3, 0, 0, 1).is_err());
        assert!(conv_output_size(3, 2, 0, 1, 3).is_err());
    }

    #[test]
    fn pool_ceil_mode_matches_pytorch() {
        // torch: MaxPool2d(3, 2, ceil_mode=True) on 112 -> 56, on 56 -> 28, on 28 -> 14, 14 -> 7
        for (i, o) in [(112, 56), (56, 28), (28, 14), (14, 7)] {
            assert_eq!(pool_output_size(i, 3, 0, 2, 1, true).unwrap(), o);
        }
        // 14 with kernel 2 stride 2 ceil -> 7; 5 with k2 s2 ceil -> 3.
        assert_eq!(pool_output_size(14, 2, 0, 2, 1, true).unwrap(), 7);
        assert_eq!(pool_output_size(5, 2, 0, 2, 1, true).unwrap(), 3);
        // The last window may not start in the right padding: 6, k3 s3 p1 ceil -> 3
        // (floor gives 2; (3-1)*3 = 6 >= 6+1? no, so 3).
        assert_eq!(pool_output_size(6, 3, 1, 3, 1, true).unwrap(), 3);
        assert_eq!(pool_output_size(5, 2, 1, 2, 1, true).unwrap(), 3);
    }

    #[test]
    fn conv_geometry_errors_name_shapes() {
        let e = Conv2dGeometry::new(&[1, 3, 8, 8], &[4, 2, 3, 3], (1, 1), (0, 0), (1, 1), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[1, 3, 8, 8]") && e.contains("[4, 2, 3, 3]"),
            "{e}"
        );
        let e = Conv2dGeometry::new(&[1, 3, 8, 8], &[4, 1, 3, 3], (1, 1), (0, 0), (1, 1), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("groups"), "{e}");
        let e = Conv2dGeometry::new(&[1, 3, 2, 2], &[4, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not fit") && e.contains("[1, 3, 2, 2]"),
            "{e}"
        );
        let g =
            Conv2dGeometry::new(&[2, 4, 9, 7], &[6, 2, 3, 3], (2, 1), (1, 0), (1, 2), 2).unwrap();
        assert_eq!(g.output_shape(), [2, 6, 5, 3]);
    }
}
