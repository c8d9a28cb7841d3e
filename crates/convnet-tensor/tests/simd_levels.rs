//! Every SIMD level this CPU supports, forced in turn: the kernels give the
//! reference results at each, and the level is really switched (the FMA
//! levels round differently from the baseline).
//!
//! The level is global to the process, so this file is its own test binary
//! and its one test sets the levels in sequence.

use convnet_tensor::kernels::activation::{gelu_forward, relu_forward};
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
/// channels, 196 tiles), their input gradients, ReLU and GELU.
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
