//! Every SIMD level this CPU supports, forced in turn: the kernels give the
//! reference results at each, and the level is really switched (the FMA
//! levels round differently from the baseline).
//!
//! The level is global to the process, so this file is its own test binary
//! and its one test sets the levels in sequence.

use convnet_tensor::kernels::activation::{gelu_backward, gelu_forward, relu_forward};
use convnet_tensor::kernels::conv2d::{conv2d_backward, conv2d_forward};
use convnet_tensor::simd::{self, SimdLevel};
use convnet_tensor::{Conv2dGeometry, Rng};

/// `y = conv(x, w) + b` in f64, by definition.
fn naive_conv(x: &[f32], w: &[f32], b: &[f32], g: &Conv2dGeometry) -> Vec<f64> {
    let cg = g.in_channels / g.groups;
    let og = g.out_channels / g.groups;
    let mut y = Vec::with_capacity(g.output_shape().iter().product());
    for n in 0..g.batch {
        for (o, &bias) in b.iter().enumerate() {
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let mut acc = bias as f64;
                    for ci in 0..cg {
                        let c = (o / og) * cg + ci;
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                let ih = (oh * g.stride_h + ki * g.dilation_h) as isize
                                    - g.pad_h as isize;
                                let iw = (ow * g.stride_w + kj * g.dilation_w) as isize
                                    - g.pad_w as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih >= g.in_h as isize
                                    || iw >= g.in_w as isize
                                {
                                    continue;
                                }
                                let xi = ((n * g.in_channels + c) * g.in_h + ih as usize) * g.in_w
                                    + iw as usize;
                                let wi = ((o * cg + ci) * g.kernel_h + ki) * g.kernel_w + kj;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// What one level computes: a depthwise 7×7 (ConvNeXt), a strided depthwise
/// 3×3, a dense 3×3 conv (im2col, then Winograd F(4×4) and F(2×2): 32
/// channels, 196 tiles), their input gradients, ReLU and GELU, and the
/// row-wise kernels of [`row_wise_kernels`].
fn run_kernels() -> Vec<Vec<f32>> {
    let mut rng = Rng::seed_from(17);
    let cases = [
        // (shape, weight, stride, pad, groups)
        ([2, 4, 20, 37], [4, 1, 7, 7], 1, 3, 4),
        ([1, 3, 15, 18], [6, 1, 3, 3], 2, 1, 3),
        ([2, 5, 9, 11], [6, 5, 3, 3], 1, 1, 1),
        ([4, 32, 28, 28], [32, 32, 3, 3], 1, 1, 1),
        ([1, 32, 28, 28], [32, 32, 3, 3], 1, 1, 1),
    ];
    let mut outs = Vec::new();
    for (shape, wshape, s, p, groups) in cases {
        let g = Conv2dGeometry::new(&shape, &wshape, (s, s), (p, p), (1, 1), groups).unwrap();
        let x = random(shape.iter().product(), &mut rng);
        let w = random(wshape.iter().product(), &mut rng);
        let b = random(g.out_channels, &mut rng);
        let mut y = vec![f32::NAN; g.output_shape().iter().product()];
        conv2d_forward(&mut y, &x, &w, Some(&b), &g).unwrap();
        let want = naive_conv(&x, &w, &b, &g);
        for (i, (&a, &r)) in y.iter().zip(&want).enumerate() {
            assert!(
                (a as f64 - r).abs() <= 1e-4 * (1.0 + r.abs()),
                "level {}: conv {shape:?} element {i}: {a} vs {r}",
                simd::level()
            );
        }
        let dy = random(y.len(), &mut rng);
        let mut dx = vec![f32::NAN; x.len()];
        let mut dw = vec![0.0; w.len()];
        conv2d_backward(Some(&mut dx), Some(&mut dw), None, &dy, &x, &w, &g).unwrap();
        outs.extend([y, dx, dw]);
    }
    let x = random(10_000, &mut rng);
    let mut y = vec![0.0; x.len()];
    relu_forward(&mut y, &x).unwrap();
    assert!(y.iter().zip(&x).all(|(&y, &x)| y == x.max(0.0)));
    outs.push(y.clone());
    gelu_forward(&mut y, &x).unwrap();
    outs.push(y);
    outs.extend(row_wise_kernels(&mut rng));
    outs
}

/// `max |got − want| / (1 + |want|)`.
fn max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

/// GELU's gradient, softmax (contiguous and strided) with its backward,
/// and LayerNorm over the last axis and channels-first, forward and
/// backward, against f64 references.
fn row_wise_kernels(rng: &mut Rng) -> Vec<Vec<f32>> {
    use convnet_tensor::kernels::norm::{
        layer_norm_backward, layer_norm_channels_first_backward, layer_norm_channels_first_forward,
        layer_norm_forward,
    };
    use convnet_tensor::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxGeometry};
    let level = simd::level();
    let mut outs = Vec::new();
    // GELU's gradient over [-12, 12], the far tail included.
    let x: Vec<f32> = (0..4001).map(|i| -12.0 + i as f32 * 6e-3).collect();
    let mut d = vec![0.0; x.len()];
    gelu_backward(&mut d, &vec![1.0; x.len()], &x).unwrap();
    let want: Vec<f64> = x
        .iter()
        .map(|&v| {
            let v = v as f64;
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            0.5 * libm::erfc(-v / std::f64::consts::SQRT_2) + v * pdf
        })
        .collect();
    assert!(max_err(&d, &want) < 1e-6, "{level}: GELU gradient");
    outs.push(d);
    // Softmax of [rows, len] along both axes.
    let (rows, len) = (5, 197);
    let x: Vec<f32> = (0..rows * len).map(|_| rng.uniform(-8.0, 8.0)).collect();
    let dy: Vec<f32> = (0..rows * len).map(|_| rng.uniform(-1.0, 1.0)).collect();
    for axis in [1, 0] {
        let g = SoftmaxGeometry::new(&[rows, len], axis).unwrap();
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        softmax_forward(&mut y, &x, &g).unwrap();
        softmax_backward(&mut dx, &dy, &y, &g).unwrap();
        let (mut want_y, mut want_dx) = (vec![0.0f64; x.len()], vec![0.0f64; x.len()]);
        let (lines, n, stride) = if axis == 1 {
            (rows, len, 1)
        } else {
            (len, rows, len)
        };
        for line in 0..lines {
            let start = if axis == 1 { line * len } else { line };
            let at: Vec<usize> = (0..n).map(|k| start + k * stride).collect();
            let m = at.iter().map(|&i| x[i] as f64).fold(f64::MIN, f64::max);
            let z: f64 = at.iter().map(|&i| (x[i] as f64 - m).exp()).sum();
            at.iter()
                .for_each(|&i| want_y[i] = (x[i] as f64 - m).exp() / z);
            let dot: f64 = at.iter().map(|&i| dy[i] as f64 * want_y[i]).sum();
            at.iter()
                .for_each(|&i| want_dx[i] = want_y[i] * (dy[i] as f64 - dot));
        }
        assert!(max_err(&y, &want_y) < 1e-6, "{level}: softmax axis {axis}");
        assert!(
            max_err(&dx, &want_dx) < 1e-6,
            "{level}: softmax backward axis {axis}"
        );
        outs.extend([y, dx]);
    }
    // LayerNorm over the last axis, forward and backward, in f64.
    let (rows, dim) = (37, 96);
    let x: Vec<f32> = (0..rows * dim).map(|_| rng.uniform(-3.0, 5.0)).collect();
    let dy: Vec<f32> = (0..rows * dim).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w: Vec<f32> = (0..dim).map(|_| rng.uniform(0.5, 1.5)).collect();
    let b: Vec<f32> = (0..dim).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let (mut y, mut mean, mut invstd) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
    layer_norm_forward(&mut y, &mut mean, &mut invstd, &x, &w, &b, rows, dim, 1e-6).unwrap();
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; dim], vec![0.0; dim]);
    layer_norm_backward(
        &mut dx, &mut dw, &mut db, &dy, &x, &w, &mean, &invstd, rows, dim,
    )
    .unwrap();
    let (mut want_y, mut want_dx) = (vec![0.0f64; x.len()], vec![0.0f64; x.len()]);
    let (mut want_dw, mut want_db) = (vec![0.0f64; dim], vec![0.0f64; dim]);
    for r in 0..rows {
        let row =
            |v: &[f32]| -> Vec<f64> { v[r * dim..][..dim].iter().map(|&a| a as f64).collect() };
        let (xr, gr) = (row(&x), row(&dy));
        let mu = xr.iter().sum::<f64>() / dim as f64;
        let var = xr.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / dim as f64;
        let s = 1.0 / (var + 1e-6).sqrt();
        let xhat: Vec<f64> = xr.iter().map(|v| (v - mu) * s).collect();
        let gw: Vec<f64> = gr.iter().zip(&w).map(|(g, &w)| g * w as f64).collect();
        let m1 = gw.iter().sum::<f64>() / dim as f64;
        let m2 = gw.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / dim as f64;
        for d in 0..dim {
            want_y[r * dim + d] = xhat[d] * w[d] as f64 + b[d] as f64;
            want_dx[r * dim + d] = s * (gw[d] - m1 - xhat[d] * m2);
            want_dw[d] += gr[d] * xhat[d];
            want_db[d] += gr[d];
        }
    }
    assert!(max_err(&y, &want_y) < 2e-6, "{level}: layer_norm");
    assert!(
        max_err(&dx, &want_dx) < 1e-5,
        "{level}: layer_norm grad_input"
    );
    assert!(
        max_err(&dw, &want_dw) < 1e-5,
        "{level}: layer_norm grad_weight"
    );
    assert!(
        max_err(&db, &want_db) < 1e-5,
        "{level}: layer_norm grad_bias"
    );
    // Channels-first on the NCHW permutation of the same data (one image,
    // `rows` positions): the same numbers.
    let nchw = |v: &[f32]| -> Vec<f32> {
        (0..dim * rows)
            .map(|i| v[(i % rows) * dim + i / rows])
            .collect()
    };
    let shape = [1, dim, rows, 1];
    let (mut y2, mut mean2, mut invstd2) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
    let (xc, dyc) = (nchw(&x), nchw(&dy));
    layer_norm_channels_first_forward(&mut y2, &mut mean2, &mut invstd2, &xc, &w, &b, shape, 1e-6)
        .unwrap();
    let (mut dx2, mut dw2, mut db2) = (vec![0.0; x.len()], vec![0.0; dim], vec![0.0; dim]);
    layer_norm_channels_first_backward(
        &mut dx2, &mut dw2, &mut db2, &dyc, &xc, &w, &mean2, &invstd2, shape,
    )
    .unwrap();
    let permuted = |v: &[f64]| -> Vec<f64> {
        (0..dim * rows)
            .map(|i| v[(i % rows) * dim + i / rows])
            .collect()
    };
    assert!(
        max_err(&y2, &permuted(&want_y)) < 2e-6,
        "{level}: channels-first"
    );
    assert!(
        max_err(&dx2, &permuted(&want_dx)) < 1e-5,
        "{level}: channels-first grad_input"
    );
    assert!(
        max_err(&dw2, &want_dw) < 1e-5,
        "{level}: channels-first grad_weight"
    );
    assert!(
        max_err(&db2, &want_db) < 1e-5,
        "{level}: channels-first grad_bias"
    );
    outs.extend([y, dx, dw, db, y2, dx2, dw2, db2]);
    outs
}

#[test]
fn every_supported_level_gives_the_reference_results() {
    let levels = SimdLevel::supported();
    let mut results = Vec::new();
    for &level in &levels {
        simd::set_level(level).unwrap();
        assert_eq!(simd::level(), level);
        results.push(run_kernels());
    }
    let (base, rest) = results.split_first().unwrap();
    for (level, outs) in levels[1..].iter().zip(rest) {
        for (k, (a, b)) in base.iter().zip(outs).enumerate() {
            for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                    "{level} against baseline: output {k} element {i}: {b} vs {a}"
                );
            }
        }
        // The depthwise 7×7 rounds once per tap with FMA, twice without: if
        // every bit agreed, the level would not have been switched.
        assert_ne!(base[0], outs[0], "{level}: the same bits as the baseline");
    }
    // Back to the default; a level the CPU lacks is refused.
    simd::set_level(simd::detected()).unwrap();
    if let Some(&wider) = SimdLevel::ALL.iter().find(|&&l| l > simd::detected()) {
        assert!(simd::set_level(wider).is_err());
    }
}
