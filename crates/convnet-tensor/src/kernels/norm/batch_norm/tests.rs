//! Tests of the BatchNorm kernels.

use super::*;
use crate::gradcheck::{project, projection};
use crate::kernels::test_util::{assert_close, assert_deterministic, bits, gradcheck};
use crate::rng::Rng;

/// Training forward by the textbook formula, in f64.
fn naive_train(x: &[f32], w: &[f32], b: &[f32], s: [usize; 4], eps: f64) -> Vec<f64> {
    let [n, c, h, wd] = s;
    let m = (n * h * wd) as f64;
    let idx = |i: usize, ch: usize, j: usize| (i * c + ch) * h * wd + j;
    let mut out = vec![0.0; x.len()];
    for ch in 0..c {
        let mut mean = 0.0;
        for i in 0..n {
            for j in 0..h * wd {
                mean += x[idx(i, ch, j)] as f64 / m;
            }
        }
        let mut var = 0.0;
        for i in 0..n {
            for j in 0..h * wd {
                var += (x[idx(i, ch, j)] as f64 - mean).powi(2) / m;
            }
        }
        for i in 0..n {
            for j in 0..h * wd {
                out[idx(i, ch, j)] = (x[idx(i, ch, j)] as f64 - mean) / (var + eps).sqrt()
                    * w[ch] as f64
                    + b[ch] as f64;
            }
        }
    }
    out
}

struct Setup {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
}

fn setup(shape: [usize; 4], seed: u64) -> Setup {
    let mut rng = Rng::seed_from(seed);
    let c = shape[1];
    Setup {
        // An offset mean checks that the variance does not cancel.
        x: Tensor::randn(&shape, 3.0, 2.0, &mut rng).into_vec(),
        w: Tensor::randn(&[c], 1.0, 0.5, &mut rng).into_vec(),
        b: Tensor::randn(&[c], 0.0, 0.5, &mut rng).into_vec(),
    }
}

/// Runs the training forward and returns (out, mean, invstd, unbiased var).
fn train(x: &[f32], w: &[f32], b: &[f32], shape: [usize; 4]) -> [Vec<f32>; 4] {
    let c = shape[1];
    let mut out = vec![0.0; x.len()];
    let (mut m, mut s, mut v) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
    batch_norm2d_forward_train(&mut out, &mut m, &mut s, &mut v, x, w, b, shape, 1e-5).unwrap();
    [out, m, s, v]
}

#[test]
fn train_forward_matches_naive_formula() {
    for shape in [[3, 2, 5, 4], [1, 3, 7, 3], [4, 5, 1, 1]] {
        let Setup { x, w, b } = setup(shape, 1);
        let [out, mean, invstd, uvar] = train(&x, &w, &b, shape);
        assert_close(&out, &naive_train(&x, &w, &b, shape, 1e-5), 2e-5, "out");
        // Saved statistics agree with the output they produced.
        let m = (shape[0] * shape[2] * shape[3]) as f64;
        for ch in 0..shape[1] {
            let vals: Vec<f64> = channel(&x, shape, ch).map(|&v| v as f64).collect();
            let mu = vals.iter().sum::<f64>() / m;
            let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m;
            assert!((mean[ch] as f64 - mu).abs() < 1e-5);
            assert!((invstd[ch] as f64 - 1.0 / (var + 1e-5).sqrt()).abs() < 1e-5);
            assert!((uvar[ch] as f64 - var * m / (m - 1.0)).abs() < 1e-4 * var);
        }
    }
}

#[test]
fn inference_formula_on_a_hand_computed_example() {
    // Two channels, x = [[1, 2], [3, 4]] (one image, 1x2 planes):
    // channel 0: mean 1, var 4, weight 2, bias 0.5 -> (x-1)/2*2+0.5 = [0.5, 1.5]
    // channel 1: mean 2, var 0.25, weight 1, bias -1 -> (x-2)/0.5-1 = [1, 3]
    let x = [1.0, 2.0, 3.0, 4.0];
    let mut out = [0.0; 4];
    batch_norm2d_forward_infer(
        &mut out,
        &x,
        &[1.0, 2.0],
        &[4.0, 0.25],
        &[2.0, 1.0],
        &[0.5, -1.0],
        [1, 2, 1, 2],
        0.0,
    )
    .unwrap();
    assert_eq!(out, [0.5, 1.5, 1.0, 3.0]);
    // With eps = 1e-5: the divisor is √(var + eps).
    batch_norm2d_forward_infer(
        &mut out,
        &x,
        &[1.0, 2.0],
        &[4.0, 0.25],
        &[2.0, 1.0],
        &[0.5, -1.0],
        [1, 2, 1, 2],
        1e-5,
    )
    .unwrap();
    let k0 = 2.0 / (4.0f64 + 1e-5).sqrt();
    let k1 = 1.0 / (0.25f64 + 1e-5).sqrt();
    assert_close(
        &out,
        &[0.5, k0 + 0.5, k1 - 1.0, 2.0 * k1 - 1.0],
        1e-7,
        "eps",
    );
}

#[test]
fn running_stats_update_as_pytorch() {
    // momentum 0.1: running = 0.9 running + 0.1 batch (variance unbiased).
    let x = [1.0, 3.0, 5.0, 7.0]; // one channel, 4 values: mean 4, biased var 5, unbiased 20/3
    let [_, m, _, v] = train(&x, &[1.0], &[0.0], [2, 1, 1, 2]);
    assert_eq!(m, [4.0]);
    assert!((v[0] - 20.0 / 3.0).abs() < 1e-6);
    let (mut rm, mut rv) = ([0.0], [1.0]);
    batch_norm_update_running_stats(&mut rm, &mut rv, &m, &v, 0.1).unwrap();
    assert!((rm[0] - 0.4).abs() < 1e-7);
    assert!((rv[0] - (0.9 + 2.0 / 3.0)).abs() < 1e-6);
    assert!(batch_norm_update_running_stats(&mut rm, &mut rv, &m, &v, 1.5).is_err());
    assert!(batch_norm_update_running_stats(&mut rm, &mut rv, &[1.0, 2.0], &v, 0.1).is_err());
}

#[test]
fn backward_matches_finite_differences() {
    for (i, shape) in [[3, 2, 3, 4], [1, 3, 5, 2], [6, 2, 1, 1]]
        .into_iter()
        .enumerate()
    {
        let Setup { x, w, b } = setup(shape, 10 + i as u64);
        let c = shape[1];
        let r = projection(x.len(), i as u64);
        let [_, mean, invstd, _] = train(&x, &w, &b, shape);
        let mut gx = vec![f32::NAN; x.len()];
        // Parameter gradients accumulate onto what is there.
        let (mut gw, mut gb) = (vec![1.0; c], vec![-2.0; c]);
        batch_norm2d_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &mean, &invstd, shape)
            .unwrap();
        gw.iter_mut().for_each(|v| *v -= 1.0);
        gb.iter_mut().for_each(|v| *v += 2.0);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| project(&train(x, w, b, shape)[0], &r);
        gradcheck(&format!("{shape:?} input"), |p| loss(p, &w, &b), &x, &gx);
        gradcheck(&format!("{shape:?} weight"), |p| loss(&x, p, &b), &w, &gw);
        gradcheck(&format!("{shape:?} bias"), |p| loss(&x, &w, p), &b, &gb);
    }
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let shape = [2, 3, 4, 4];
    let x = vec![0.5; 96];
    let (mut out, mut m, mut s, mut v) = (vec![0.0; 96], [0.0; 3], [0.0; 3], [0.0; 3]);
    let e = batch_norm2d_forward_train(
        &mut out, &mut m, &mut s, &mut v, &x, &[1.0; 2], &[0.0; 3], shape, 1e-5,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("weight") && e.contains("[3]"), "{e}");
    let e = batch_norm2d_forward_train(
        &mut out,
        &mut m,
        &mut s,
        &mut v,
        &x[1..],
        &[1.0; 3],
        &[0.0; 3],
        shape,
        1e-5,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("input") && e.contains("[2, 3, 4, 4]"), "{e}");
    // One value per channel cannot be normalised with batch statistics.
    let e = batch_norm2d_forward_train(
        &mut out[..3],
        &mut m,
        &mut s,
        &mut v,
        &x[..3],
        &[1.0; 3],
        &[0.0; 3],
        [1, 3, 1, 1],
        1e-5,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("more than 1 value") && e.contains("[1, 3, 1, 1]"),
        "{e}"
    );
    assert!(batch_norm2d_forward_train(
        &mut out,
        &mut m,
        &mut s,
        &mut v,
        &x,
        &[1.0; 3],
        &[0.0; 3],
        shape,
        f32::NAN,
    )
    .is_err());
    let (mut gx, mut gw, mut gb) = (vec![0.0; 96], [0.0; 3], [0.0; 3]);
    let e = batch_norm2d_backward(
        &mut gx,
        &mut gw,
        &mut gb,
        &x[..95],
        &x,
        &[1.0; 3],
        &m,
        &s,
        shape,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("grad_out"), "{e}");
    assert!(batch_norm2d_forward_infer(
        &mut out, &x, &[0.0; 4], &[1.0; 3], &[1.0; 3], &[0.0; 3], shape, 1e-5
    )
    .is_err());
    let t = Tensor::zeros(&[3]);
    assert!(batch_norm2d_infer(&Tensor::zeros(&[2, 3]), &t, &t, &t, &t, 1e-5).is_err());
}

#[test]
fn parallel_results_are_bit_identical() {
    let shape = [8, 32, 12, 12];
    let Setup { x, w, b } = setup(shape, 20);
    let r = projection(x.len(), 21);
    let run = || {
        let [out, m, s, v] = train(&x, &w, &b, shape);
        let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; 32], vec![0.0; 32]);
        batch_norm2d_backward(&mut gx, &mut gw, &mut gb, &r, &x, &w, &m, &s, shape).unwrap();
        [out, m, s, v, gx, gw, gb]
            .iter()
            .map(|t| bits(t))
            .collect::<Vec<_>>()
    };
    assert_deterministic(run);
}

#[test]
fn inplace_pass_and_scale_give_the_inference_bits() {
    let shape = [2, 3, 4, 5];
    let Setup { x, w, b } = setup(shape, 4);
    let mut rng = Rng::seed_from(5);
    let mean = Tensor::randn(&[3], 0.5, 1.0, &mut rng).into_vec();
    let var = Tensor::rand_uniform(&[3], 0.1, 4.0, &mut rng).into_vec();
    let mut want = vec![0.0; x.len()];
    batch_norm2d_forward_infer(&mut want, &x, &mean, &var, &w, &b, shape, 1e-3).unwrap();
    let mut scale = vec![0.0; 3];
    batch_norm_infer_scale(&mut scale, &var, &w, 1e-3).unwrap();
    for relu in [false, true] {
        let mut y = x.clone();
        batch_norm2d_infer_inplace(&mut y, &mean, &scale, &b, shape, relu).unwrap();
        let want: Vec<f32> = want
            .iter()
            .map(|&v| if relu { v.max(0.0) } else { v })
            .collect();
        assert_eq!(bits(&y), bits(&want), "relu {relu}");
        assert!(!relu || y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
    }
    // Wrong lengths and a bad eps are errors naming what is wrong.
    let e = batch_norm_infer_scale(&mut scale, &var[..2], &w, 1e-3).unwrap_err();
    assert!(e.to_string().contains("running_var"), "{e}");
    assert!(batch_norm_infer_scale(&mut scale, &var, &w, -1.0).is_err());
    let e =
        batch_norm2d_infer_inplace(&mut want[1..], &mean, &scale, &b, shape, false).unwrap_err();
    assert!(e.to_string().contains("[2, 3, 4, 5]"), "{e}");
}
