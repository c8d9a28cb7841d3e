//! 2-D convolution (cross-correlation) with stride, zero padding, dilation,
//! groups and an optional bias.
//!
//! PyTorch equivalent: `torch.nn.Conv2d(in_channels, out_channels,
//! kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)`, weight
//! `[out_channels, in_channels / groups, KH, KW]` (OIHW). Shapes:
//! `[N, C_in, H, W]` -> `[N, C_out, OH, OW]`.

use convnet_tensor::init::{fans, pytorch_default_bias, pytorch_default_weight};
use convnet_tensor::kernels::conv2d::{conv2d_backward, conv2d_forward};
use convnet_tensor::{Conv2dGeometry, Rng, Tensor};

use crate::error::{LayerError, Result};
use crate::fused::FusionRole;
use crate::layer::{visit_weight_bias, visit_weight_bias_mut, Layer};
use crate::param::Param;
use crate::util::{kernel, nchw, take_cache_for, tensor, IntoPair};

const NAME: &str = "Conv2d";

/// Configuration of a [`Conv2d`], with PyTorch's names and defaults.
///
/// ```
/// use convnet_layers::Conv2dConfig;
/// // LeNet-5's first layer: 6 filters 5x5 with padding 2.
/// let c = Conv2dConfig::new(1, 6, 5).padding(2);
/// assert_eq!((c.stride, c.dilation, c.groups, c.bias), ((1, 1), (1, 1), 1, true));
/// // Struct update syntax works too.
/// let d = Conv2dConfig { in_channels: 3, out_channels: 64, kernel_size: (7, 7), ..Default::default() };
/// assert_eq!(d.padding, (0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels `C_in`.
    pub in_channels: usize,
    /// Output channels (filters) `C_out`.
    pub out_channels: usize,
    /// Filter `(height, width)`.
    pub kernel_size: (usize, usize),
    /// Step between windows (default 1).
    pub stride: (usize, usize),
    /// Zeros added on each side (default 0; `(k − 1) / 2` keeps the size of
    /// an odd `k` at stride 1).
    pub padding: (usize, usize),
    /// Spacing between filter taps (default 1).
    pub dilation: (usize, usize),
    /// Channel groups (default 1; `in_channels` for a depthwise convolution).
    pub groups: usize,
    /// Whether a learned bias is added (default `true`).
    pub bias: bool,
}

impl Default for Conv2dConfig {
    /// A 1→1 1×1 convolution with PyTorch's defaults for everything else.
    fn default() -> Self {
        Conv2dConfig {
            in_channels: 1,
            out_channels: 1,
            kernel_size: (1, 1),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2dConfig {
    /// `in_channels -> out_channels` with a `kernel_size` filter (a number
    /// for a square filter, or `(h, w)`), other settings at their defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl IntoPair) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            ..Default::default()
        }
    }

    /// The stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// The zero padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// The dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// The number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight shape `[out, in / groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels / self.groups.max(1),
            self.kernel_size.0,
            self.kernel_size.1,
        ]
    }

    /// Errors on zero channels, kernel, stride, dilation or groups, groups
    /// that do not divide both channel counts, or a weight of more than
    /// [`crate::param::MAX_PARAM_ELEMENTS`] elements.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        let err = |msg: String| Err(LayerError::config(NAME, msg));
        if c.in_channels == 0 || c.out_channels == 0 {
            return err(format!(
                "in_channels ({}) and out_channels ({}) must be >= 1",
                c.in_channels, c.out_channels
            ));
        }
        for (what, (h, w)) in [
            ("kernel_size", c.kernel_size),
            ("stride", c.stride),
            ("dilation", c.dilation),
        ] {
            if h == 0 || w == 0 {
                return err(format!("{what} ({h}, {w}) must be >= 1"));
            }
        }
        if c.groups == 0 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
            return err(format!(
                "groups ({}) must divide in_channels ({}) and out_channels ({})",
                c.groups, c.in_channels, c.out_channels
            ));
        }
        crate::param::check_param_size(NAME, &c.weight_shape())
    }
}

/// A 2-D convolution: each of the `out_channels` filters slides over the
/// (zero-padded) input and takes a dot product with every window, plus a
/// bias. Computed by the kernels of `convnet_tensor::kernels::conv2d`
/// (im2col + sgemm, direct loops for depthwise).
///
/// ```text
/// out[n, o, i, j] = bias[o] + Σ_{c ∈ group(o), p, q}
///     weight[o, c, p, q] · x[n, c, i·s_h + p·d_h − pad_h, j·s_w + q·d_w − pad_w]
/// ```
///
/// Parameters `weight` (`[out, in / groups, kh, kw]`) and `bias` (`[out]`),
/// initialised as PyTorch does (uniform on `±1/sqrt(fan_in)`,
/// `fan_in = in / groups · kh · kw`).
///
/// PyTorch equivalent: `torch.nn.Conv2d` (numeric padding, `padding_mode =
/// 'zeros'`).
///
/// # Shapes
///
/// - input: `[N, in_channels, H, W]`
/// - output: `[N, out_channels, OH, OW]` with
///   `OH = floor((H + 2·pad_h − d_h·(kh − 1) − 1) / s_h) + 1`, likewise `OW`
///   ([`Conv2dGeometry`])
///
/// ```
/// use convnet_layers::{Conv2d, Conv2dConfig, Layer};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let mut conv = Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng)?;
/// assert_eq!(conv.num_params(), 6 * 25 + 6);
/// let x = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut rng);
/// let y = conv.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 6, 28, 28]);
/// let gx = conv.backward(&Tensor::ones(&[2, 6, 28, 28]))?;
/// assert_eq!(gx.shape(), x.shape());
/// // A wrong channel count is an error naming the layer and both shapes.
/// let e = conv.infer(&Tensor::zeros(&[2, 3, 28, 28])).unwrap_err().to_string();
/// assert!(e.contains("Conv2d") && e.contains("[N, 1, H, W]") && e.contains("[2, 3, 28, 28]"));
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    config: Conv2dConfig,
    /// The input of the last `forward` and its geometry.
    cache: Option<(Tensor, Conv2dGeometry)>,
}

impl Conv2d {
    /// A convolution with PyTorch's default initialisation; errors on an
    /// invalid configuration.
    pub fn new(config: Conv2dConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let shape = config.weight_shape();
        let weight = pytorch_default_weight(&shape, rng);
        let bias = config.bias.then(|| {
            Param::new(pytorch_default_bias(
                config.out_channels,
                fans(&shape).0,
                rng,
            ))
        });
        Ok(Conv2d {
            weight: Param::new(weight),
            bias,
            config,
            cache: None,
        })
    }

    /// A convolution with given weight and bias (`config.bias` must say
    /// whether there is one); errors if a shape does not match the
    /// configuration.
    pub fn from_tensors(
        config: Conv2dConfig,
        weight: Tensor,
        bias: Option<Tensor>,
    ) -> Result<Self> {
        config.validate()?;
        if weight.shape() != config.weight_shape() {
            return Err(LayerError::config(
                NAME,
                format!(
                    "weight must be {:?}, got {:?}",
                    config.weight_shape(),
                    weight.shape()
                ),
            ));
        }
        match (&bias, config.bias) {
            (Some(b), true) if b.shape() == [config.out_channels] => {}
            (None, false) => {}
            _ => {
                return Err(LayerError::config(
                    NAME,
                    format!(
                        "bias must be {} (config.bias = {}), got {:?}",
                        if config.bias {
                            format!("[{}]", config.out_channels)
                        } else {
                            "absent".to_string()
                        },
                        config.bias,
                        bias.as_ref().map(|b| b.shape().to_vec())
                    ),
                ))
            }
        }
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            config,
            cache: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// The geometry for an input shape, or an error naming the layer and the
    /// shapes.
    pub fn geometry(&self, input_shape: &[usize]) -> Result<Conv2dGeometry> {
        nchw(NAME, input_shape, Some(self.config.in_channels))?;
        let c = &self.config;
        kernel(
            NAME,
            Conv2dGeometry::new(
                input_shape,
                self.weight.shape(),
                c.stride,
                c.padding,
                c.dilation,
                c.groups,
            ),
        )
    }

    fn compute(&self, x: &Tensor) -> Result<(Tensor, Conv2dGeometry)> {
        let g = self.geometry(x.shape())?;
        let out_shape = g.output_shape();
        let mut y = vec![0.0f32; out_shape.iter().product()];
        kernel(
            NAME,
            conv2d_forward(
                &mut y,
                x.as_slice(),
                self.weight.value.as_slice(),
                self.bias.as_ref().map(|b| b.value.as_slice()),
                &g,
            ),
        )?;
        Ok((tensor(&out_shape, y), g))
    }
}

impl Layer for Conv2d {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.compute(x)?.0)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (y, g) = self.compute(x)?;
        self.cache = Some((x.clone(), g));
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let (x, g) = take_cache_for(&mut self.cache, NAME, grad_out, |(_, g)| {
            g.output_shape().to_vec()
        })?;
        let mut grad_in = vec![0.0f32; x.len()];
        kernel(
            NAME,
            conv2d_backward(
                Some(&mut grad_in),
                Some(self.weight.grad.as_slice_mut()),
                self.bias.as_mut().map(|b| b.grad.as_slice_mut()),
                grad_out.as_slice(),
                x.as_slice(),
                self.weight.value.as_slice(),
                &g,
            ),
        )?;
        Ok(tensor(x.shape(), grad_in))
    }

    fn backward_params(&mut self, grad_out: &Tensor) -> Result<()> {
        let (x, g) = take_cache_for(&mut self.cache, NAME, grad_out, |(_, g)| {
            g.output_shape().to_vec()
        })?;
        kernel(
            NAME,
            conv2d_backward(
                None,
                Some(self.weight.grad.as_slice_mut()),
                self.bias.as_mut().map(|b| b.grad.as_slice_mut()),
                grad_out.as_slice(),
                x.as_slice(),
                self.weight.value.as_slice(),
                &g,
            ),
        )
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input_shape)?.output_shape().to_vec())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_weight_bias_mut(prefix, &mut self.weight, self.bias.as_mut(), f)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn fusion_role(&self) -> Option<FusionRole<'_>> {
        Some(FusionRole::Conv2d(self))
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Conv2d {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn the_lectures_4x4_example() {
        // A 4x4 image and a 2x2 filter, stride 1, no padding: a 3x3 output.
        let x = Tensor::from_vec(
            &[1, 1, 4, 4],
            vec![
                2., -1., -1., 3., -2., 1., 2., -1., 0., 0., 2., 3., 2., -1., -3., 2.,
            ],
        )
        .unwrap();
        let w = Tensor::from_vec(&[1, 1, 2, 2], vec![-1., 2., 0., 1.]).unwrap();
        let conv = Conv2d::from_tensors(Conv2dConfig::new(1, 1, 2).bias(false), w, None).unwrap();
        let y = conv.infer(&x).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(y.as_slice(), &[-3., 1., 6., 4., 5., -1., -1., 1., 6.]);
    }

    #[test]
    fn gradients_for_every_option() {
        let mut rng = Rng::seed_from(0);
        let cases = [
            Conv2dConfig::new(2, 3, 3),
            Conv2dConfig::new(2, 3, 3).padding(1).stride(2),
            Conv2dConfig::new(2, 2, (2, 3)).dilation((2, 1)).bias(false),
            Conv2dConfig::new(4, 6, 3).groups(2).padding(1),
            Conv2dConfig::new(3, 3, 3).groups(3).padding(1), // depthwise
            Conv2dConfig::new(3, 4, 1),                      // 1x1
        ];
        for cfg in cases {
            let mut conv = Conv2d::new(cfg, &mut rng).unwrap();
            let x = random(&[2, cfg.in_channels, 5, 6], 1);
            check_layer(&mut conv, &x);
            let mut names = Vec::new();
            conv.visit_params("features.0", &mut |n, p| {
                names.push((n.to_string(), p.shape().to_vec()))
            });
            assert_eq!(
                names[0],
                ("features.0.weight".to_string(), cfg.weight_shape().to_vec())
            );
            assert_eq!(names.len(), 1 + cfg.bias as usize);
        }
    }

    #[test]
    fn infer_equals_forward_and_default_init_bounds() {
        let mut rng = Rng::seed_from(2);
        let mut conv = Conv2d::new(Conv2dConfig::new(6, 16, 5), &mut rng).unwrap();
        let bound = 1.0 / (150f32).sqrt();
        assert!(conv
            .weight
            .value
            .as_slice()
            .iter()
            .all(|v| v.abs() <= bound));
        let x = random(&[2, 6, 14, 14], 3);
        assert_eq!(conv.infer(&x).unwrap(), conv.forward(&x).unwrap());
        assert_eq!(
            conv.output_shape(&[2, 6, 14, 14]).unwrap(),
            vec![2, 16, 10, 10]
        );
    }

    #[test]
    fn bad_configs_and_shapes_are_errors() {
        let mut rng = Rng::seed_from(0);
        for cfg in [
            Conv2dConfig::new(0, 3, 3),
            Conv2dConfig::new(3, 0, 3),
            Conv2dConfig::new(3, 3, 0),
            Conv2dConfig::new(3, 3, 3).stride(0),
            Conv2dConfig::new(3, 3, 3).dilation(0),
            Conv2dConfig::new(3, 3, 3).groups(2),
            Conv2dConfig::new(4, 3, 3).groups(2),
            Conv2dConfig::new(4, 4, 3).groups(0),
        ] {
            assert!(Conv2d::new(cfg, &mut rng).is_err(), "{cfg:?}");
        }
        let mut conv = Conv2d::new(Conv2dConfig::new(3, 4, 3), &mut rng).unwrap();
        for bad in [
            vec![3, 8, 8],
            vec![1, 2, 8, 8],
            vec![1, 3, 2, 8],
            vec![1, 3, 8, 8, 1],
        ] {
            let e = conv.infer(&Tensor::zeros(&bad)).unwrap_err();
            assert!(e.to_string().starts_with("Conv2d"), "{e}");
            assert!(conv.output_shape(&bad).is_err());
        }
        assert!(matches!(
            conv.backward(&Tensor::zeros(&[1, 4, 6, 6])),
            Err(LayerError::NoCache { .. })
        ));
        conv.forward(&Tensor::zeros(&[1, 3, 8, 8])).unwrap();
        assert!(conv.backward(&Tensor::zeros(&[1, 4, 5, 6])).is_err());
        let w = Tensor::zeros(&[4, 3, 3, 3]);
        assert!(Conv2d::from_tensors(Conv2dConfig::new(3, 4, 3), w.clone(), None).is_err());
        assert!(Conv2d::from_tensors(Conv2dConfig::new(3, 4, 2).bias(false), w, None).is_err());
    }
}
