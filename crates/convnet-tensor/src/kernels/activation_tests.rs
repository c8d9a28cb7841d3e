//! Tests of [`super`]: against f64 references, finite differences, and
//! parallel determinism.

use super::*;
use crate::gradcheck::{check_gradient, project, projection, GradCheck};
use crate::kernels::test_util::assert_deterministic;
use crate::rng::Rng;

const ALL: [Activation; 5] = [
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
    Activation::GeluTanh,
];

/// Reference values computed independently in f64: the CDF by numerical
/// integration of the density (Simpson's rule), not through erf.
fn reference(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => {
            // Φ(x) = ½ + ∫₀ˣ φ, by Simpson's rule with 2000 intervals.
            let n = 2000;
            let h = x / n as f64;
            let phi = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let mut s = phi(0.0) + phi(x);
            for i in 1..n {
                s += phi(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            x * (0.5 + s * h / 3.0)
        }
        Activation::GeluTanh => {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            0.5 * x * (1.0 + u.tanh())
        }
    }
}

#[test]
fn forward_matches_reference_on_random_inputs() {
    let mut rng = Rng::seed_from(1);
    let x: Vec<f32> = (0..500).map(|_| rng.uniform(-6.0, 6.0)).collect();
    for a in ALL {
        let mut y = vec![0.0; x.len()];
        a.forward(&mut y, &x).unwrap();
        for (&v, &got) in x.iter().zip(&y) {
            let want = reference(a, v as f64);
            assert!(
                (got as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                "{a:?}({v}) = {got}, want {want}"
            );
        }
        // In place and tensor-level agree with the slice kernel.
        let mut z = x.clone();
        a.forward_inplace(&mut z);
        assert_eq!(z, y);
    }
}

#[test]
fn known_values() {
    let one = |a: Activation, x: f32| {
        let mut y = [0.0];
        a.forward(&mut y, &[x]).unwrap();
        y[0]
    };
    assert!((one(Activation::Gelu, 1.0) - 0.841_344_7).abs() < 1e-7);
    assert!((one(Activation::GeluTanh, 1.0) - 0.841_192).abs() < 1e-7);
    assert_eq!(one(Activation::Sigmoid, 0.0), 0.5);
    assert_eq!(one(Activation::Relu, -3.0), 0.0);
    assert_eq!(one(Activation::Tanh, 0.0), 0.0);
    // Saturation is finite and exact at the ends.
    assert_eq!(one(Activation::Sigmoid, -1000.0), 0.0);
    assert_eq!(one(Activation::Sigmoid, 1000.0), 1.0);
    assert_eq!(one(Activation::Gelu, 1000.0), 1000.0);
    assert_eq!(one(Activation::Gelu, -1000.0), 0.0);
    assert_eq!(one(Activation::GeluTanh, -1000.0), 0.0);
    // The negative tail of GELU keeps its relative precision:
    // GELU(-5) = -5·Φ(-5) = -1.4332579e-6.
    let g = one(Activation::Gelu, -5.0);
    assert!((g / -1.433_257_9e-6 - 1.0).abs() < 1e-5, "{g}");
    assert!(one(Activation::Relu, f32::NAN).is_nan());
}

#[test]
fn gelu_and_its_gradient_match_f64_over_a_dense_sweep() {
    // Every 1e-3 on [-10, 10], then the far tail, where GELU keeps its
    // relative precision.
    let x: Vec<f32> = (0..=20_000)
        .map(|i| -10.0 + i as f32 * 1e-3)
        .chain([-11.0, -12.0, -12.5])
        .collect();
    let (mut y, mut d) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    gelu_forward(&mut y, &x).unwrap();
    gelu_backward(&mut d, &vec![1.0; x.len()], &x).unwrap();
    let (mut abs, mut rel, mut grad) = (0.0f64, 0.0f64, 0.0f64);
    for ((&v, &y), &d) in x.iter().zip(&y).zip(&d) {
        let v = v as f64;
        let cdf = 0.5 * libm::erfc(-v / std::f64::consts::SQRT_2);
        let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = v * cdf;
        abs = abs.max((y as f64 - want).abs());
        if want.abs() >= 1e-36 {
            rel = rel.max((y as f64 / want - 1.0).abs());
        }
        grad = grad.max((d as f64 - (cdf + v * pdf)).abs());
    }
    println!("GELU: max abs {abs:.2e}, max rel {rel:.2e}; gradient max abs {grad:.2e}");
    assert!(
        abs < 1e-6 && rel < 2e-6 && grad < 1e-6,
        "{abs:e} {rel:e} {grad:e}"
    );
    assert!(x.iter().zip(&y).all(|(&v, &y)| v >= 0.0 || y < 0.0));
    // NaN and ±∞.
    let mut y = [0.0; 3];
    gelu_forward(&mut y, &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]).unwrap();
    assert!(y[0].is_nan() && y[1] == f32::INFINITY, "{y:?}");
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::seed_from(2);
    // Avoid |x| < eps for ReLU's kink.
    let x: Vec<f32> = (0..200)
        .map(|_| {
            let v = rng.uniform(-4.0, 4.0);
            if v.abs() < 0.05 {
                v + 0.1
            } else {
                v
            }
        })
        .collect();
    let r = projection(x.len(), 3);
    for a in ALL {
        let mut y = vec![0.0; x.len()];
        a.forward(&mut y, &x).unwrap();
        let saved = match a.saves() {
            Saved::Input => &x,
            Saved::Output => &y,
        };
        let mut grad = vec![f32::NAN; x.len()];
        a.backward(&mut grad, &r, saved).unwrap();
        let loss = |xp: &[f32]| {
            let mut o = vec![0.0; xp.len()];
            a.forward(&mut o, xp).unwrap();
            project(&o, &r)
        };
        check_gradient(loss, &x, &grad, GradCheck::default())
            .unwrap_or_else(|e| panic!("{a:?}: {e}"));
    }
}

#[test]
fn lecture_relu() {
    let conv = Tensor::from_vec(&[3, 3], vec![-3., 1., 6., 4., 5., -1., -1., 1., 6.]).unwrap();
    let y = relu(&conv);
    assert_eq!(y.as_slice(), &[0., 1., 6., 4., 5., 0., 0., 1., 6.]);
}

#[test]
fn length_mismatch_is_an_error() {
    let mut out = [0.0; 3];
    let e = relu_forward(&mut out, &[1.0; 4]).unwrap_err().to_string();
    assert!(
        e.contains("relu_forward") && e.contains('4') && e.contains('3'),
        "{e}"
    );
    let mut g = [0.0; 4];
    let e = Activation::Gelu
        .backward(&mut g, &[1.0; 3], &[1.0; 4])
        .unwrap_err()
        .to_string();
    assert!(e.contains("grad_out"), "{e}");
    assert!(Activation::Tanh
        .backward(&mut g, &[1.0; 4], &[1.0; 5])
        .is_err());
}

#[test]
fn parallel_results_are_bit_identical() {
    let mut rng = Rng::seed_from(4);
    let n = 5 * CHUNK + 123;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform(-5.0, 5.0)).collect();
    let r = projection(n, 5);
    let run = || {
        let mut all = Vec::new();
        for a in ALL {
            let mut y = vec![0.0; n];
            a.forward(&mut y, &x).unwrap();
            let saved = if a.saves() == Saved::Input { &x } else { &y };
            let mut g = vec![0.0; n];
            a.backward(&mut g, &r, saved).unwrap();
            all.extend(y.iter().chain(&g).map(|v| v.to_bits()));
        }
        all
    };
    assert_deterministic(run);
    // The chunked path agrees with element-by-element evaluation.
    let mut y = vec![0.0; n];
    gelu_forward(&mut y, &x).unwrap();
    assert!(y
        .iter()
        .zip(&x)
        .all(|(&a, &b)| a.to_bits() == scalar::gelu(b).to_bits()));
}
