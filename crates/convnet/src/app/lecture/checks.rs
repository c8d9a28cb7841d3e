//! The lecture's first sections recomputed: a filter's parameters, output
//! sizes (padding, stride), the 4×4 ∗ 2×2 worked example and its ReLU, max
//! pooling; and the annex's GELU.

use std::fmt::Display;

use convnet_layers::{Conv2d, Conv2dConfig, Layer, Linear, LinearConfig};
use convnet_tensor::kernels::activation::{gelu_forward, relu};
use convnet_tensor::kernels::conv2d::conv2d;
use convnet_tensor::kernels::pool::max_pool2d;
use convnet_tensor::{conv_output_size, Rng, Tensor};

use super::titles::{DIMENSION, EXAMPLE, GELU, IMAGE_AND_FILTER, PADDING, POOLING};
use super::{check, failed, src, stated, Check, Got, Said, Section, Stated};
use crate::app::Result;

/// The lecture's 4×4 input of the worked example (line 185).
pub const EXAMPLE_INPUT: [[f32; 4]; 4] = [
    [2., -1., -1., 3.],
    [-2., 1., 2., -1.],
    [0., 0., 2., 3.],
    [2., -1., -3., 2.],
];
/// The lecture's 2×2 filter (line 182).
pub const EXAMPLE_FILTER: [[f32; 2]; 2] = [[-1., 2.], [0., 1.]];
/// The convolution as the lecture's correction prints it (line 218).
pub const EXAMPLE_CONV: [[f32; 3]; 3] = [[-3., 1., 6.], [4., 5., -1.], [-1., 1., 6.]];
/// After ReLU, as the lecture prints it (line 224).
pub const EXAMPLE_RELU: [[f32; 3]; 3] = [[0., 1., 6.], [4., 5., 0.], [0., 1., 6.]];
/// The pooling example's input: 1..16 (line 262).
pub const POOL_INPUT: [[f32; 4]; 4] = [
    [1., 2., 3., 4.],
    [5., 6., 7., 8.],
    [9., 10., 11., 12.],
    [13., 14., 15., 16.],
];
/// Its 2×2 max-pooling with stride 2, as the lecture prints it (line 269).
pub const POOL_OUTPUT: [[f32; 2]; 2] = [[6., 8.], [14., 16.]];

/// [`check`], or [`failed`] when the recomputation itself failed.
pub(super) fn try_check<E: Display>(
    figure: Stated<'_>,
    expected: Got,
    computed: std::result::Result<Got, E>,
    slip: Option<&str>,
) -> Check {
    match computed {
        Ok(c) => check(figure, expected, c, slip),
        Err(e) => failed(figure, e),
    }
}

/// A kernel's error as the command's.
fn kernel(e: convnet_tensor::TensorError) -> crate::app::AppError {
    convnet_layers::LayerError::tensor("lecture", e).into()
}

/// A `[1, 1, rows, cols]` tensor of a matrix.
pub fn image<const W: usize>(rows: &[[f32; W]]) -> Result<Tensor> {
    let data: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(&[1, 1, rows.len(), W], data).map_err(kernel)
}

/// The rows of a `[1, 1, H, W]` tensor.
pub fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let w = *t.shape().last().unwrap_or(&1);
    t.as_slice().chunks(w.max(1)).map(<[f32]>::to_vec).collect()
}

fn mat<const W: usize>(m: &[[f32; W]]) -> Vec<Vec<f32>> {
    m.iter().map(|r| r.to_vec()).collect()
}

fn params(layer: std::result::Result<impl Layer, convnet_layers::LayerError>) -> Result<Got> {
    Ok(Got::Number(layer?.num_params() as f64))
}

/// The lecture's 4×4 ∗ 2×2 example, recomputed by the convolution kernel:
/// the convolution and its ReLU.
pub fn worked_example() -> Result<(Tensor, Tensor)> {
    let conv = conv2d(
        &image(&EXAMPLE_INPUT)?,
        &image(&EXAMPLE_FILTER)?,
        None,
        (1, 1),
        (0, 0),
        (1, 1),
        1,
    )
    .map_err(kernel)?;
    let activated = relu(&conv);
    Ok((conv, activated))
}

/// The pooling example, recomputed by the max-pooling kernel.
pub fn pooling_example() -> Result<Tensor> {
    max_pool2d(&image(&POOL_INPUT)?, (2, 2), (2, 2), (0, 0), false).map_err(kernel)
}

/// The sections up to pooling, in the lecture's order.
pub(super) fn first_sections() -> Result<Vec<Section>> {
    let mut rng = Rng::seed_from(0);
    let filter = try_check(
        stated(
            "parameters of one 5×5×3 filter, with its bias",
            src(IMAGE_AND_FILTER, 108),
            "5 × 5 + 1 = 26",
            Said::Exact(26.0),
        ),
        Got::Number(76.0),
        params(Conv2d::new(Conv2dConfig::new(3, 1, 5), &mut rng)),
        Some(
            "the filter is 5×5×3: it has 5 × 5 × 3 = 75 weights and a bias, 76 parameters; \
             5 × 5 + 1 = 26 forgets the 3 colour channels (26 is a 5×5 filter on a \
             one-channel image)",
        ),
    )
    .with_note("Conv2d(3 → 1, 5×5) built and its parameters counted");
    let dense = try_check(
        stated(
            "parameters of one dense neuron on the 25×25×3 image",
            src(IMAGE_AND_FILTER, 108),
            "626",
            Said::Exact(626.0),
        ),
        Got::Number(1876.0),
        params(Linear::new(LinearConfig::new(25 * 25 * 3, 1), &mut rng)),
        Some(
            "the image has 25 × 25 × 3 = 1,875 inputs: one neuron has 1,875 weights and a bias, \
             1,876 parameters; 626 = 25 × 25 + 1 counts one channel only",
        ),
    )
    .with_note("Linear(1875 → 1) built and its parameters counted");

    // A 7×7 image with a zero-padding of 2, as in the figure: 11×11.
    let padded = try_check(
        stated(
            "a 7×7 image with a zero-padding of 2",
            src(PADDING, 158),
            "11 × 11 (figure)",
            Said::Exact(11.0),
        ),
        Got::Number(11.0),
        conv_output_size(7, 1, 2, 1, 1).map(|n| Got::Number(n as f64)),
        None,
    )
    .with_note("conv_output_size(7, kernel 1, padding 2): a 1×1 window sees every padded pixel");
    let same = conv_shape(25, 3, 2, 1).map(|n| Got::Number(n as f64));
    let padding_slip = try_check(
        stated(
            "a 3×3 filter with zero-padding 2 keeps the size (25×25 in)",
            src(PADDING, 160),
            "25 × 25 (size kept)",
            Said::Exact(25.0),
        ),
        Got::Number(27.0),
        same,
        Some(
            "⌊(25 + 2·2 − 3)/1⌋ + 1 = 27: padding 2 makes a 3×3 convolution grow the image by 2; \
             padding 1 keeps a 3×3's size (padding 2 keeps a 5×5's)",
        ),
    )
    .with_note("the convolution kernel run on a 25×25 image; conv_output_size agrees");
    let same_one = try_check(
        stated(
            "… with padding 1 instead",
            src(PADDING, 160),
            "(size kept)",
            Said::Exact(25.0),
        ),
        Got::Number(25.0),
        conv_shape(25, 3, 1, 1).map(|n| Got::Number(n as f64)),
        None,
    );

    let sizes = [
        (
            "25×25 image, 5×5 filter, stride 1, no padding",
            166,
            "(21, 21)",
            25,
            5,
            0,
            1,
            21.0,
        ),
        (
            "4×4 image, 2×2 filter, stride 1 (the example)",
            179,
            "3 × 3",
            4,
            2,
            0,
            1,
            3.0,
        ),
        (
            "25×25 image, 5×5 filter, stride 2 (the formula)",
            168,
            "⌊(25 − 5)/2⌋ + 1 = 11",
            25,
            5,
            0,
            2,
            11.0,
        ),
        (
            "25×25 image, 5×5 filter, padding 2, stride 3 (the formula)",
            168,
            "⌊(25 + 4 − 5)/3⌋ + 1 = 9",
            25,
            5,
            2,
            3,
            9.0,
        ),
    ];
    let mut dimension = Vec::new();
    for (what, line, text, n, k, p, s, want) in sizes {
        dimension.push(
            try_check(
                stated(what, src(DIMENSION, line), text, Said::Exact(want)),
                Got::Number(want),
                conv_shape(n, k, p, s).map(|n| Got::Number(n as f64)),
                None,
            )
            .with_note("the convolution kernel's output, equal to conv_output_size's"),
        );
    }

    let example = match worked_example() {
        Ok((conv, activated)) => [
            (
                "4×4 input ∗ 2×2 filter [[-1, 2], [0, 1]], stride 1, no bias",
                218,
                "[[-3, 1, 6], [4, 5, -1], [-1, 1, 6]]",
                mat(&EXAMPLE_CONV),
                conv,
                "conv2d kernel (im2col + sgemm), as every Conv2d layer runs it",
            ),
            (
                "after ReLU",
                224,
                "[[0, 1, 6], [4, 5, 0], [0, 1, 6]]",
                mat(&EXAMPLE_RELU),
                activated,
                "relu kernel",
            ),
        ]
        .into_iter()
        .map(|(what, line, text, want, got, note)| {
            let figure = stated(what, src(EXAMPLE, line), text, Said::Matrix(want.clone()));
            check(figure, Got::Matrix(want), Got::Matrix(rows(&got)), None).with_note(note)
        })
        .collect(),
        Err(e) => vec![failed(
            stated(
                "4×4 input ∗ 2×2 filter",
                src(EXAMPLE, 218),
                "[[-3, 1, 6], [4, 5, -1], [-1, 1, 6]]",
                Said::Matrix(mat(&EXAMPLE_CONV)),
            ),
            e,
        )],
    };
    let pooling = try_check(
        stated(
            "2×2 max-pooling, stride 2, of the 4×4 image 1..16",
            src(POOLING, 269),
            "[[6, 8], [14, 16]]",
            Said::Matrix(mat(&POOL_OUTPUT)),
        ),
        Got::Matrix(mat(&POOL_OUTPUT)),
        pooling_example().map(|t| Got::Matrix(rows(&t))),
        None,
    )
    .with_note("max_pool2d kernel");

    Ok(vec![
        section(IMAGE_AND_FILTER, vec![filter, dense]),
        section(PADDING, vec![padded, padding_slip, same_one]),
        section(DIMENSION, dimension),
        section(EXAMPLE, example),
        section(POOLING, vec![pooling]),
    ])
}

pub(super) fn section(title: &str, checks: Vec<Check>) -> Section {
    Section {
        title: title.to_string(),
        checks,
    }
}

/// The side of the output of the convolution kernel run on an `n`×`n`
/// image with a `k`×`k` filter; an error if [`conv_output_size`] says
/// otherwise.
fn conv_shape(n: usize, k: usize, padding: usize, stride: usize) -> Result<usize> {
    let x = Tensor::zeros(&[1, 1, n, n]);
    let w = Tensor::zeros(&[1, 1, k, k]);
    let y = conv2d(
        &x,
        &w,
        None,
        (stride, stride),
        (padding, padding),
        (1, 1),
        1,
    )
    .map_err(kernel)?;
    let side = y.shape()[3];
    let formula = conv_output_size(n, k, padding, stride, 1).map_err(kernel)?;
    if side != formula {
        return Err(crate::app::AppError::Usage(format!(
            "the kernel gives {side}, conv_output_size {formula}"
        )));
    }
    Ok(side)
}

/// `x·Φ(x)` by the lecture's integral: the trapezoidal rule on the normal
/// density from −10 to `x`, independent of the kernel's `erfc`.
fn gelu_by_integral(x: f64) -> f64 {
    let steps = 20_000;
    let (a, h) = (-10.0, (x + 10.0) / steps as f64);
    let density = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut sum = 0.5 * (density(a) + density(x));
    for i in 1..steps {
        sum += density(a + i as f64 * h);
    }
    x * sum * h
}

/// The annex's GELU: the kernel against the lecture's formula, its
/// minimum (not monotone), its asymptotes (those of ReLU).
pub(super) fn gelu_section() -> Result<Section> {
    let xs: Vec<f32> = (0..=800).map(|i| -4.0 + i as f32 * 0.01).collect();
    let mut ys = vec![0.0f32; xs.len()];
    gelu_forward(&mut ys, &xs).map_err(kernel)?;
    let worst = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| (f64::from(y) - gelu_by_integral(f64::from(x))).abs())
        .fold(0.0f64, f64::max);
    let formula_ok = worst < 1e-5;
    let formula = check(
        stated(
            "GELU(x) = x·∫ φ(t) dt from −∞ to x",
            src(GELU, 467),
            "the formula",
            Said::Holds,
        ),
        Got::Holds(true, "matches".into()),
        Got::Holds(
            formula_ok,
            if formula_ok { "matches" } else { "differs" }.to_string(),
        ),
        None,
    )
    .with_note(format!(
        "the GELU kernel against the integral by the trapezoidal rule on [−4, 4]: largest \
         difference {worst:.1e}"
    ));
    let (i_min, y_min) =
        ys.iter().enumerate().fold(
            (0, f32::INFINITY),
            |m, (i, &y)| if y < m.1 { (i, y) } else { m },
        );
    let not_monotone = ys[0] > y_min && i_min > 0 && i_min + 1 < ys.len();
    let monotone = check(
        stated(
            "GELU is not monotone",
            src(GELU, 469),
            "pas monotone",
            Said::Holds,
        ),
        Got::Holds(true, "decreases, then increases".into()),
        Got::Holds(
            not_monotone,
            if not_monotone {
                "decreases, then increases"
            } else {
                "monotone"
            }
            .into(),
        ),
        None,
    )
    .with_note(format!("minimum {:.4} at x = {:.2}", y_min, xs[i_min]));
    let relu_like = (f64::from(ys[ys.len() - 1]) - 4.0).abs() < 1e-3 && ys[0].abs() < 1e-3;
    let asymptotes = check(
        stated(
            "GELU behaves as ReLU far from 0",
            src(GELU, 469),
            "comportement asymptotique similaire",
            Said::Holds,
        ),
        Got::Holds(true, "GELU(−4) ≈ 0, GELU(4) ≈ 4".into()),
        Got::Holds(
            relu_like,
            format!("GELU(−4) = {:.4}, GELU(4) = {:.4}", ys[0], ys[ys.len() - 1]),
        )
        .normalised(relu_like, "GELU(−4) ≈ 0, GELU(4) ≈ 4"),
        None,
    )
    .with_note(format!(
        "GELU(−4) = {:.5}, GELU(4) = {:.5}",
        ys[0],
        ys[ys.len() - 1]
    ));
    Ok(section(GELU, vec![formula, monotone, asymptotes]))
}

impl Got {
    /// A statement's value with a fixed description when it holds, so that
    /// it compares equal to the expectation.
    fn normalised(self, holds: bool, text: &str) -> Got {
        match self {
            Got::Holds(_, what) if !holds => Got::Holds(false, what),
            _ => Got::Holds(holds, text.to_string()),
        }
    }
}
