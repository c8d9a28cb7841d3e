use super::*;
use crate::testing::{check_layer, pass_with_threads, random};

fn layer(d: usize, h: usize, p: f32, seed: u64) -> MultiheadAttention {
    let mut rng = Rng::seed_from(seed);
    let mut a =
        MultiheadAttention::new(MultiheadAttentionConfig::new(d, h).dropout(p), &mut rng).unwrap();
    // Non-zero biases, so that their gradients and their role are tested.
    for b in [
        a.in_proj.bias.as_mut().unwrap(),
        a.out_proj.bias.as_mut().unwrap(),
    ] {
        b.value = Tensor::randn(b.shape(), 0.0, 0.3, &mut rng);
    }
    a
}

/// Straightforward loops over samples, heads and tokens, in f64.
fn reference(a: &MultiheadAttention, x: &Tensor) -> Vec<f32> {
    let (n, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let h = a.config.num_heads;
    let hd = d / h;
    let w = a.in_proj.weight.value.as_slice();
    let b = a.in_proj.bias.as_ref().unwrap().value.as_slice();
    let wo = a.out_proj.weight.value.as_slice();
    let bo = a.out_proj.bias.as_ref().unwrap().value.as_slice();
    let xs = x.as_slice();
    // proj[s][tok][j] for j < 3D
    let proj = |s: usize, tok: usize, j: usize| -> f64 {
        let mut acc = b[j] as f64;
        for i in 0..d {
            acc += w[j * d + i] as f64 * xs[(s * t + tok) * d + i] as f64;
        }
        acc
    };
    let mut y = vec![0.0f32; n * t * d];
    for s in 0..n {
        let mut ctx = vec![0.0f64; t * d];
        for head in 0..h {
            for i in 0..t {
                let scores: Vec<f64> = (0..t)
                    .map(|j| {
                        (0..hd)
                            .map(|c| proj(s, i, head * hd + c) * proj(s, j, d + head * hd + c))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    ctx[i * d + head * hd + c] = (0..t)
                        .map(|j| e[j] / z * proj(s, j, 2 * d + head * hd + c))
                        .sum();
                }
            }
        }
        for i in 0..t {
            for o in 0..d {
                let mut acc = bo[o] as f64;
                for c in 0..d {
                    acc += wo[o * d + c] as f64 * ctx[i * d + c];
                }
                y[(s * t + i) * d + o] = acc as f32;
            }
        }
    }
    y
}

#[test]
fn matches_a_direct_implementation() {
    for (n, t, d, h) in [(1, 1, 4, 1), (2, 3, 4, 2), (2, 5, 6, 3), (1, 4, 8, 8)] {
        let a = layer(d, h, 0.0, 7);
        let x = random(&[n, t, d], 8);
        let want = Tensor::from_vec(&[n, t, d], reference(&a, &x)).unwrap();
        let got = a.infer(&x).unwrap();
        assert!(
            got.allclose(&want, 1e-4, 1e-5),
            "(n, t, d, h) = {:?}: max diff {}",
            (n, t, d, h),
            got.max_abs_diff(&want).unwrap()
        );
    }
}

#[test]
fn gradients_of_input_and_every_parameter() {
    check_layer(&mut layer(4, 2, 0.0, 1), &random(&[2, 3, 4], 2));
    check_layer(&mut layer(6, 3, 0.0, 3), &random(&[1, 4, 6], 4));
    check_layer(&mut layer(4, 1, 0.0, 5), &random(&[2, 2, 4], 6));
    // With attention dropout (check_layer replays the same mask).
    check_layer(&mut layer(4, 2, 0.3, 7), &random(&[2, 4, 4], 8));
}

#[test]
fn tokens_are_permutation_equivariant() {
    let a = layer(6, 2, 0.0, 11);
    let x = random(&[1, 4, 6], 12);
    let y = a.infer(&x).unwrap();
    // Swap tokens 0 and 2.
    let perm = [2, 1, 0, 3];
    let mut xp = vec![0.0; 24];
    for (i, &src) in perm.iter().enumerate() {
        xp[i * 6..(i + 1) * 6].copy_from_slice(&x.as_slice()[src * 6..(src + 1) * 6]);
    }
    let yp = a.infer(&Tensor::from_vec(&[1, 4, 6], xp).unwrap()).unwrap();
    for (i, &src) in perm.iter().enumerate() {
        for c in 0..6 {
            assert!((yp.at(&[0, i, c]) - y.at(&[0, src, c])).abs() < 1e-5);
        }
    }
}

#[test]
fn dropout_only_in_training_and_seeded() {
    let mut a = layer(8, 2, 0.5, 13);
    let mut b = layer(8, 2, 0.5, 13);
    let x = random(&[2, 6, 8], 14);
    let ya = a.forward(&x).unwrap();
    assert_eq!(ya, b.forward(&x).unwrap(), "same seed, same masks");
    assert_ne!(ya, a.infer(&x).unwrap(), "training drops weights");
    assert_eq!(
        a.infer(&x).unwrap(),
        layer(8, 2, 0.0, 13).infer(&x).unwrap()
    );
    let mut names = Vec::new();
    a.visit_rngs_mut("self_attention", &mut |n, _| names.push(n.to_string()));
    assert_eq!(names, ["self_attention"]);
}

#[test]
fn same_result_for_any_thread_count() {
    let mut a = layer(8, 4, 0.0, 15);
    let x = random(&[3, 7, 8], 16);
    assert_eq!(
        pass_with_threads(&mut a, &x, 1),
        pass_with_threads(&mut a, &x, 2)
    );
}

#[test]
fn config_and_shape_errors() {
    let mut rng = Rng::seed_from(0);
    for (d, h, p) in [
        (0, 1, 0.0),
        (4, 0, 0.0),
        (6, 4, 0.0),
        (4, 2, 1.0),
        (4, 2, -0.1),
    ] {
        let cfg = MultiheadAttentionConfig::new(d, h).dropout(p);
        let e = MultiheadAttention::new(cfg, &mut rng).unwrap_err();
        assert!(matches!(e, LayerError::Config { .. }), "{e}");
    }
    let e = MultiheadAttention::new(MultiheadAttentionConfig::new(6, 4), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("divisible"), "{e}");
    let cfg = MultiheadAttentionConfig::new(4, 2);
    assert!(MultiheadAttention::from_tensors(
        cfg,
        Tensor::zeros(&[12, 4]),
        Tensor::zeros(&[12]),
        Tensor::zeros(&[4, 5]),
        Tensor::zeros(&[4]),
        0
    )
    .is_err());
    let mut a = layer(4, 2, 0.0, 1);
    for bad in [&[2, 4][..], &[2, 3, 5], &[1, 2, 3, 4]] {
        assert!(a.infer(&Tensor::zeros(bad)).is_err(), "{bad:?}");
        assert!(a.output_shape(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        a.backward(&Tensor::zeros(&[2, 3, 4])),
        Err(LayerError::NoCache { .. })
    ));
    a.forward(&Tensor::zeros(&[2, 3, 4])).unwrap();
    assert!(a.backward(&Tensor::zeros(&[2, 4, 4])).is_err());
    assert_eq!(a.forward_macs(2, 3), 2 * (4 * 3 * 16 + 2 * 9 * 4));
}
