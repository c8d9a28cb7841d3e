//! The sgemm peak and the conv2d kernel table.

use convnet::tensor::kernels::conv2d::{conv2d_backward, conv2d_forward};
use convnet::tensor::kernels::gemm::{gemm_parallel, Trans};
use convnet::tensor::{Conv2dGeometry, Rng};

use super::{measure, print_table_title, Kind, Options, Peak, Reps, Row, Table};

/// Size of the sgemm peak measurement.
const PEAK_N: usize = 512;

/// GFLOP/s of `gemm_parallel` on `PEAK_N`³ with all threads: best and median.
pub fn sgemm_peak(reps: Reps) -> Peak {
    let n = PEAK_N;
    let mut rng = Rng::seed_from(1);
    let a: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut c = vec![0.0f32; n * n];
    let reps = Reps {
        min: reps.min.max(10),
        ..reps
    };
    let t = measure(reps, || {
        gemm_parallel(&mut c, &a, Trans::No, &b, Trans::No, n, n, n, 1.0, 0.0)
            .expect("sgemm sizes");
    });
    let flops = 2.0 * (n * n * n) as f64;
    Peak {
        n,
        best_gflops: flops / t.min_s / 1e9,
        median_gflops: flops / t.median_s / 1e9,
    }
}

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

/// The conv case names, in table order (each is measured in its own process).
pub fn case_names() -> Vec<&'static str> {
    CONV_CASES.iter().map(|c| c.name).collect()
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

/// Forward and backward (input + weight gradients) of each conv case.
pub fn conv2d_table(
    opts: &Options,
    reps: Reps,
    peak: &Peak,
    mut on_row: impl FnMut(&Row),
) -> anyhow::Result<Table> {
    let title = "conv2d kernels (forward; backward = input + weight gradients)";
    let mut table = Table {
        title: title.to_string(),
        rows: Vec::new(),
    };
    let cases: Vec<&ConvCase> = CONV_CASES.iter().filter(|c| opts.selects(c.name)).collect();
    if cases.is_empty() {
        return Ok(table);
    }
    print_table_title(title);
    for case in cases {
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

        let t = measure(reps, || {
            conv2d_forward(&mut y, &x, &w, Some(&b), &g).expect("conv2d_forward");
        });
        let flops = g.forward_flops();
        let row = Row::new(
            case.name,
            Kind::Forward,
            case.batch,
            case.shape(),
            t,
            flops,
            peak,
        );
        on_row(&row);
        table.rows.push(row);

        let t = measure(reps, || {
            conv2d_backward(Some(&mut dx), Some(&mut dw), None, &dy, &x, &w, &g)
                .expect("conv2d_backward");
        });
        let row = Row::new(
            case.name,
            Kind::Backward,
            case.batch,
            case.shape(),
            t,
            2.0 * flops,
            peak,
        );
        on_row(&row);
        table.rows.push(row);
    }
    Ok(table)
}
