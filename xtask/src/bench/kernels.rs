//! The kernel rows: forward and backward of the convolutions that dominate
//! the zoo's networks, and of the dense layers that dominate them at batch 1
//! (memory bound: their GFLOP/s is half the GB/s of weights read), and the
//! element-wise and row-wise kernels around them in ConvNeXt and ViT (GELU,
//! LayerNorm, softmax; their "flops" count one per element, so GFLOP/s reads
//! as G elements/s).

use anyhow::Context;
use convnet::layers::{Layer, Linear};
use convnet::tensor::kernels::activation::{gelu_backward, gelu_forward};
use convnet::tensor::kernels::conv2d::{conv2d_backward, conv2d_forward};
use convnet::tensor::kernels::norm::{
    layer_norm_backward, layer_norm_channels_first_backward, layer_norm_channels_first_forward,
    layer_norm_forward,
};
use convnet::tensor::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxGeometry};
use convnet::tensor::{Conv2dGeometry, Rng, Tensor};

use super::measure::{measure, Reps};
use super::row::{Kind, Row};

/// A convolution to measure.
struct ConvCase {
    name: &'static str,
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    size: usize,
    kernel: usize,
    padding: usize,
    groups: usize,
}

/// The layers of the zoo that dominate their networks' time.
const CONV_CASES: &[ConvCase] = &[
    ConvCase {
        name: "lenet5.conv1",
        batch: 64,
        in_channels: 1,
        out_channels: 6,
        size: 28,
        kernel: 5,
        padding: 2,
        groups: 1,
    },
    ConvCase {
        name: "lenet5.conv2",
        batch: 64,
        in_channels: 6,
        out_channels: 16,
        size: 14,
        kernel: 5,
        padding: 0,
        groups: 1,
    },
    ConvCase {
        name: "resnet.3x3",
        batch: 8,
        in_channels: 64,
        out_channels: 64,
        size: 56,
        kernel: 3,
        padding: 1,
        groups: 1,
    },
    ConvCase {
        name: "resnet.1x1",
        batch: 8,
        in_channels: 256,
        out_channels: 64,
        size: 56,
        kernel: 1,
        padding: 0,
        groups: 1,
    },
    ConvCase {
        name: "convnext.dw7x7",
        batch: 8,
        in_channels: 96,
        out_channels: 96,
        size: 56,
        kernel: 7,
        padding: 3,
        groups: 96,
    },
];

/// A dense layer to measure at a small batch.
struct LinearCase {
    name: &'static str,
    batch: usize,
    in_features: usize,
    out_features: usize,
}

/// The classifiers' largest layers at batch 1: a matrix-vector product
/// streaming the weights (151 and 411 MB).
const LINEAR_CASES: &[LinearCase] = &[
    LinearCase {
        name: "alexnet.fc6",
        batch: 1,
        in_features: 9216,
        out_features: 4096,
    },
    LinearCase {
        name: "vgg16.fc6",
        batch: 1,
        in_features: 25088,
        out_features: 4096,
    },
];

/// An element-wise or row-wise kernel of ConvNeXt-T or ViT-B/16 at batch
/// 16, on the shape it sees in the network.
#[derive(Clone, Copy)]
enum RowWise {
    /// GELU over `[batch, positions, channels]`.
    Gelu,
    /// LayerNorm over the last axis of `[batch·positions, channels]`.
    LayerNorm,
    /// Channels-first LayerNorm over `[batch, channels, positions]`.
    LayerNorm2d,
    /// Softmax along the last axis of `[batch·positions, channels]`.
    Softmax,
}

/// A row-wise case: `batch` images of `positions × channels` values.
struct RowWiseCase {
    name: &'static str,
    op: RowWise,
    batch: usize,
    positions: usize,
    channels: usize,
}

/// ConvNeXt-T stage 1 (56×56 positions; GELU after the 96→384 expansion,
/// the blocks' LayerNorm over 96 channels, the stem's channels-first one)
/// and ViT-B/16's attention probabilities (12 heads of 197×197).
const ROW_WISE_CASES: &[RowWiseCase] = &[
    RowWiseCase {
        name: "convnext.gelu",
        op: RowWise::Gelu,
        batch: 16,
        positions: 3136,
        channels: 384,
    },
    RowWiseCase {
        name: "convnext.layernorm",
        op: RowWise::LayerNorm,
        batch: 16,
        positions: 3136,
        channels: 96,
    },
    RowWiseCase {
        name: "convnext.layernorm2d",
        op: RowWise::LayerNorm2d,
        batch: 16,
        positions: 3136,
        channels: 96,
    },
    RowWiseCase {
        name: "vit.softmax",
        op: RowWise::Softmax,
        batch: 16,
        positions: 12 * 197,
        channels: 197,
    },
];

/// The kernel case names, in table order (each is measured in its own
/// process): the conv cases, then the dense ones, then the row-wise ones.
pub fn case_names() -> Vec<&'static str> {
    let conv = CONV_CASES.iter().map(|c| c.name);
    conv.chain(LINEAR_CASES.iter().map(|c| c.name))
        .chain(ROW_WISE_CASES.iter().map(|c| c.name))
        .collect()
}

impl ConvCase {
    fn geometry(&self) -> anyhow::Result<Conv2dGeometry> {
        Ok(Conv2dGeometry::new(
            &[self.batch, self.in_channels, self.size, self.size],
            &[
                self.out_channels,
                self.in_channels / self.groups,
                self.kernel,
                self.kernel,
            ],
            (1, 1),
            (self.padding, self.padding),
            (1, 1),
            self.groups,
        )?)
    }

    fn shape(&self) -> String {
        let g = if self.groups > 1 {
            format!(" g{}", self.groups)
        } else {
            String::new()
        };
        format!(
            "{}->{} {}x{} k{} p{}{g}",
            self.in_channels, self.out_channels, self.size, self.size, self.kernel, self.padding
        )
    }
}

/// The forward and backward (input + weight gradients) rows of the kernel
/// case named `case` (a conv or a dense case).
pub fn conv_rows(case: &str, reps: Reps) -> anyhow::Result<Vec<Row>> {
    if let Some(case) = LINEAR_CASES.iter().find(|c| c.name == case) {
        return linear_rows(case, reps);
    }
    if let Some(case) = ROW_WISE_CASES.iter().find(|c| c.name == case) {
        return row_wise_rows(case, reps);
    }
    let case = CONV_CASES
        .iter()
        .find(|c| c.name == case)
        .with_context(|| {
            format!(
                "no conv case named `{case}` (cases: {})",
                case_names().join(", ")
            )
        })?;
    let g = case.geometry()?;
    let mut rng = Rng::seed_from(7);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect() };
    let numel = |s: [usize; 4]| s.iter().product::<usize>();
    let x = random(numel(g.input_shape()));
    let w = random(numel(g.weight_shape()));
    let b = random(g.out_channels);
    let dy = random(numel(g.output_shape()));
    let mut y = vec![0.0; dy.len()];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];

    let forward = measure(reps, || {
        conv2d_forward(&mut y, &x, &w, Some(&b), &g)?;
        Ok(())
    })?;
    let backward = measure(reps, || {
        conv2d_backward(Some(&mut dx), Some(&mut dw), None, &dy, &x, &w, &g)?;
        Ok(())
    })?;
    let flops = g.forward_flops();
    let row = |kind, t, flops| Row::new(case.name, kind, case.batch, case.shape(), t, flops);
    Ok(vec![
        row(Kind::Forward, forward, flops),
        row(Kind::Backward, backward, 2.0 * flops),
    ])
}

/// The forward and backward rows of a dense case, through the `Linear`
/// layer (bias included; backward: weight, bias and input gradients).
fn linear_rows(case: &LinearCase, reps: Reps) -> anyhow::Result<Vec<Row>> {
    let (inp, out) = (case.in_features, case.out_features);
    let mut rng = Rng::seed_from(7);
    let weight = Tensor::randn(&[out, inp], 0.0, 0.01, &mut rng);
    let bias = Tensor::randn(&[out], 0.0, 0.01, &mut rng);
    let mut fc = Linear::from_tensors(weight, Some(bias))?;
    let x = Tensor::randn(&[case.batch, inp], 0.0, 1.0, &mut rng);
    let dy = Tensor::randn(&[case.batch, out], 0.0, 1.0, &mut rng);
    let forward = measure(reps, || {
        fc.infer(&x)?;
        Ok(())
    })?;
    let backward = measure(reps, || {
        fc.forward(&x)?;
        fc.backward(&dy)?;
        Ok(())
    })?;
    let flops = 2.0 * (case.batch * inp * out) as f64;
    let megabytes = (inp * out * 4) as f64 / 1e6;
    let shape = format!("{inp}->{out} ({megabytes:.0} MB)");
    let row = |kind, t, flops| Row::new(case.name, kind, case.batch, shape.clone(), t, flops);
    // The backward row times a forward too: 3 products of the same size.
    Ok(vec![
        row(Kind::Forward, forward, flops),
        row(Kind::Backward, backward, 3.0 * flops),
    ])
}

/// The forward and backward rows of a row-wise case (backward: the input
/// gradient, and the weight and bias gradients of the LayerNorms).
fn row_wise_rows(case: &RowWiseCase, reps: Reps) -> anyhow::Result<Vec<Row>> {
    let (n, p, c) = (case.batch, case.positions, case.channels);
    let len = n * p * c;
    let mut rng = Rng::seed_from(7);
    let mut random = |len: usize, std: f32| Tensor::randn(&[len], 0.0, std, &mut rng).into_vec();
    let x = random(len, 2.0);
    let dy = random(len, 1.0);
    let (w, b) = (random(c, 1.0), random(c, 1.0));
    let (mut y, mut dx) = (vec![0.0; len], vec![0.0; len]);
    let (mut dw, mut db) = (vec![0.0; c], vec![0.0; c]);
    let (mut mean, mut invstd) = (vec![0.0; n * p], vec![0.0; n * p]);
    let shape4 = [n, c, p, 1];
    let softmax_geom = SoftmaxGeometry::new(&[n * p, c], 1)?;
    let forward = measure(reps, || {
        match case.op {
            RowWise::Gelu => gelu_forward(&mut y, &x)?,
            RowWise::LayerNorm => {
                layer_norm_forward(&mut y, &mut mean, &mut invstd, &x, &w, &b, n * p, c, 1e-6)?
            }
            RowWise::LayerNorm2d => layer_norm_channels_first_forward(
                &mut y,
                &mut mean,
                &mut invstd,
                &x,
                &w,
                &b,
                shape4,
                1e-6,
            )?,
            RowWise::Softmax => softmax_forward(&mut y, &x, &softmax_geom)?,
        }
        Ok(())
    })?;
    let backward = measure(reps, || {
        match case.op {
            RowWise::Gelu => gelu_backward(&mut dx, &dy, &x)?,
            RowWise::LayerNorm => layer_norm_backward(
                &mut dx,
                &mut dw,
                &mut db,
                &dy,
                &x,
                &w,
                &mean,
                &invstd,
                n * p,
                c,
            )?,
            RowWise::LayerNorm2d => layer_norm_channels_first_backward(
                &mut dx, &mut dw, &mut db, &dy, &x, &w, &mean, &invstd, shape4,
            )?,
            RowWise::Softmax => softmax_backward(&mut dx, &dy, &y, &softmax_geom)?,
        }
        Ok(())
    })?;
    let shape = format!("{n}x{p}x{c}");
    let row = |kind, t| Row::new(case.name, kind, n, shape.clone(), t, len as f64);
    Ok(vec![
        row(Kind::Forward, forward),
        row(Kind::Backward, backward),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_gives_its_forward_and_backward_rows() {
        let reps = Reps {
            warmup: 0,
            min: 1,
            max: 1,
            budget_s: 0.0,
        };
        let rows = conv_rows("lenet5.conv2", reps).unwrap();
        let kinds: Vec<Kind> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Forward, Kind::Backward]);
        // 64 images, 16 maps of 10x10, 6x5x5 multiply-adds each.
        let flops = 2.0 * 64.0 * 16.0 * 100.0 * 150.0;
        assert_eq!((rows[0].flops, rows[1].flops), (flops, 2.0 * flops));
        assert_eq!(rows[0].shape, "6->16 14x14 k5 p0");
        assert_eq!(rows[0].batch, 64);
        let rows = conv_rows("alexnet.fc6", reps).unwrap();
        assert_eq!(rows[0].shape, "9216->4096 (151 MB)");
        assert_eq!(rows[0].flops, 2.0 * 9216.0 * 4096.0);
        assert_eq!(
            (rows[0].kind, rows[1].kind),
            (Kind::Forward, Kind::Backward)
        );
        assert!(case_names().contains(&"vgg16.fc6"));
        assert!(case_names().contains(&"convnext.gelu"));
        let e = conv_rows("resnet.5x5", reps).unwrap_err().to_string();
        assert!(
            e.contains("no conv case named `resnet.5x5`") && e.contains("resnet.3x3"),
            "{e}"
        );
    }
}
