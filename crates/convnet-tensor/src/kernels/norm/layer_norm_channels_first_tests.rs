//! Tests of the channels-first LayerNorm kernels.
use super::*;
use crate::gradcheck::{project, projection};
use crate::kernels::norm::layer_norm_forward;
use crate::kernels::test_util::{assert_close, assert_deterministic, bits, gradcheck};
use crate::rng::Rng;

fn forward(x: &[f32], w: &[f32], b: &[f32], shape: [usize; 4]) -> [Vec<f32>; 3] {
    let pos = shape[0] * shape[2] * shape[3];
    let mut out = vec![0.0; x.len()];
    let (mut m, mut s) = (vec![0.0; pos], vec![0.0; pos]);
    layer_norm_channels_first_forward(&mut out, &mut m, &mut s, x, w, b, shape, 1e-6).unwrap();
    [out, m, s]
}

fn random(shape: [usize; 4], seed: u64) -> [Vec<f32>; 3] {
    let mut rng = Rng::seed_from(seed);
    [
        Tensor::randn(&shape, 1.0, 2.0, &mut rng).into_vec(),
        Tensor::randn(&[shape[1]], 1.0, 0.5, &mut rng).into_vec(),
        Tensor::randn(&[shape[1]], 0.0, 0.5, &mut rng).into_vec(),
    ]
}

/// NCHW -> NHWC, so that the last-axis LayerNorm applies.
fn to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                out[(i * h * w + p) * c + ch] = x[(i * c + ch) * h * w + p];
            }
        }
    }
    out
}

#[test]
fn forward_matches_naive_formula_and_last_axis_layer_norm() {
    for shape in [[2, 3, 4, 5], [1, 8, 3, 3], [3, 1, 2, 2]] {
        let [x, w, b] = random(shape, 1);
        let [out, mean, _] = forward(&x, &w, &b, shape);
        let [n, c, h, wd] = shape;
        let p = h * wd;
        let mut want = vec![0.0f64; x.len()];
        for i in 0..n {
            for q in 0..p {
                let vals: Vec<f64> = (0..c).map(|ch| x[(i * c + ch) * p + q] as f64).collect();
                let mu = vals.iter().sum::<f64>() / c as f64;
                let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / c as f64;
                assert!((mean[i * p + q] as f64 - mu).abs() < 1e-6);
                for ch in 0..c {
                    want[(i * c + ch) * p + q] =
                        (vals[ch] - mu) / (var + 1e-6).sqrt() * w[ch] as f64 + b[ch] as f64;
                }
            }
        }
        assert_close(&out, &want, 2e-5, &format!("{shape:?}"));
        // Same as the last-axis LayerNorm of the NHWC permutation.
        let rows = n * p;
        let mut nhwc = vec![0.0; x.len()];
        let (mut m, mut s) = (vec![0.0; rows], vec![0.0; rows]);
        layer_norm_forward(
            &mut nhwc,
            &mut m,
            &mut s,
            &to_nhwc(&x, shape),
            &w,
            &b,
            rows,
            c,
            1e-6,
        )
        .unwrap();
        let got = to_nhwc(&out, shape);
        assert!(got.iter().zip(&nhwc).all(|(a, b)| (a - b).abs() < 1e-5));
    }
}

#[test]
fn backward_matches_finite_differences() {
    for (i, shape) in [[2, 3, 2, 3], [1, 5, 1, 4], [3, 2, 1, 1]]
        .into_iter()
        .enumerate()
    {
        let [x, w, b] = random(shape, 10 + i as u64);
        let c = shape[1];
        let r = projection(x.len(), i as u64);
        let [_, m, s] = forward(&x, &w, &b, shape);
        let mut gx = vec![f32::NAN; x.len()];
        let (mut gw, mut gb) = (vec![1.0; c], vec![1.0; c]);
        layer_norm_channels_first_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, shape)
            .unwrap();
        gw.iter_mut().for_each(|v| *v -= 1.0);
        gb.iter_mut().for_each(|v| *v -= 1.0);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| project(&forward(x, w, b, shape)[0], &r);
        gradcheck(&format!("{shape:?} input"), |p| loss(p, &w, &b), &x, &gx);
        gradcheck(&format!("{shape:?} weight"), |p| loss(&x, p, &b), &w, &gw);
        gradcheck(&format!("{shape:?} bias"), |p| loss(&x, &w, p), &b, &gb);
    }
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let shape = [2, 3, 2, 2];
    let x = vec![0.0; 24];
    let (mut out, mut m, mut s) = (vec![0.0; 24], vec![0.0; 8], vec![0.0; 8]);
    let e = layer_norm_channels_first_forward(
        &mut out, &mut m, &mut s, &x, &[1.0; 3], &[0.0; 2], shape, 1e-6,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bias") && e.contains("[3]"), "{e}");
    let e = layer_norm_channels_first_forward(
        &mut out,
        &mut m[..4],
        &mut s,
        &x,
        &[1.0; 3],
        &[0.0; 3],
        shape,
        1e-6,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("save_mean") && e.contains("[2, 2, 2]"), "{e}");
    let (mut gw, mut gb) = (vec![0.0; 3], vec![0.0; 3]);
    let e = layer_norm_channels_first_backward(
        &mut out,
        &mut gw,
        &mut gb,
        &x,
        &x[..20],
        &[1.0; 3],
        &m,
        &s,
        shape,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("input") && e.contains("[2, 3, 2, 2]"), "{e}");
    let t = Tensor::ones(&[3]);
    assert!(layer_norm_channels_first(&Tensor::zeros(&[2, 3, 4]), &t, &t, 1e-6).is_err());
    let e = layer_norm_channels_first(&Tensor::zeros(&[1, 0, 2, 2]), &t, &t, 1e-6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 0, 2, 2]"), "{e}");
}

/// The bits of the forward outputs and of every gradient for `shape`
/// (random inputs from `seed`).
fn all_bits(shape: [usize; 4], seed: u64) -> Vec<Vec<u32>> {
    let [x, w, b] = random(shape, seed);
    let r = projection(x.len(), seed + 1);
    let c = shape[1];
    let [out, m, s] = forward(&x, &w, &b, shape);
    let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    layer_norm_channels_first_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, shape)
        .unwrap();
    [out, m, s, gx, gw, gb].iter().map(|t| bits(t)).collect()
}

#[test]
fn parallel_results_are_bit_identical() {
    assert_deterministic(|| all_bits([6, 24, 10, 10], 20));
}

/// Two images: one task per image on one thread, blocks of positions on
/// three (fewer images than threads); the same bits either way.
#[test]
fn per_image_and_split_paths_give_the_same_bits() {
    let run = || all_bits([2, 24, 30, 30], 30);
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    assert_eq!(pool(1).install(run), pool(3).install(run));
}
