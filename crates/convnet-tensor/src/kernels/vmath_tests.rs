//! Error bounds of [`super`] against f64 over dense sweeps, and the special
//! values.

use super::*;

/// Every `step` on `[lo, hi]`, plus `extra`.
fn sweep(lo: f64, hi: f64, step: f64, extra: &[f32]) -> Vec<f32> {
    let n = ((hi - lo) / step).round() as usize;
    (0..=n)
        .map(|i| (lo + i as f64 * step) as f32)
        .chain(extra.iter().copied())
        .collect()
}

/// Max absolute and max relative error of `f` against `reference` over
/// `xs` (relative error where the reference is at least `min_rel`).
fn max_errors(
    xs: &[f32],
    f: impl Fn(f32) -> f32,
    reference: impl Fn(f64) -> f64,
    min_rel: f64,
) -> (f64, f64) {
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for &x in xs {
        let (got, want) = (f(x) as f64, reference(x as f64));
        let err = (got - want).abs();
        assert!(
            err.is_finite() || got == want,
            "f({x}) = {got}, want {want}"
        );
        if got == want {
            continue;
        }
        abs = abs.max(err);
        if want.abs() >= min_rel {
            rel = rel.max(err / want.abs());
        }
    }
    (abs, rel)
}

const EXTREMES: [f32; 8] = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-7,
    -1e-7,
    f32::MIN_POSITIVE,
    3.0e38,
];

#[test]
fn exp_is_within_two_ulp() {
    let xs = sweep(-103.0, 88.7, 1e-3, &EXTREMES);
    let (_, rel) = max_errors(&xs, exp, f64::exp, f32::MIN_POSITIVE as f64);
    println!("exp: max relative error {rel:.2e} (normal results)");
    assert!(rel < 2.5e-7, "{rel:e}");
    // Subnormal results: absolute error within a subnormal ulp or two.
    let tiny = 2f64.powi(-149);
    for x in sweep(-103.9, -87.4, 1e-3, &[]) {
        let (got, want) = (exp(x) as f64, (x as f64).exp());
        assert!((got - want).abs() <= 2.0 * tiny + 2.5e-7 * want, "exp({x})");
    }
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(exp(-1000.0), 0.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp(89.0), f32::INFINITY);
    assert_eq!(exp(f32::INFINITY), f32::INFINITY);
    assert!(exp(88.7).is_finite());
    assert!(exp(f32::NAN).is_nan());
}

#[test]
fn erf_and_erfc_match_f64() {
    let xs = sweep(-10.0, 10.0, 1e-3, &EXTREMES);
    let (abs, _) = max_errors(&xs, erf, libm::erf, 1.0);
    println!("erf: max absolute error {abs:.2e}");
    assert!(abs < 2.5e-7, "erf: {abs:e}");
    // erfc keeps its relative precision in the tail (down to 1e-37, near
    // z = 9.1).
    let (abs, rel) = max_errors(&xs, erfc, libm::erfc, 1e-37);
    println!("erfc: max absolute error {abs:.2e}, max relative error {rel:.2e}");
    assert!(abs < 2.5e-7, "erfc: {abs:e}");
    assert!(rel < 1e-6, "erfc: {rel:e}");
    assert_eq!(erf(f32::INFINITY), 1.0);
    assert_eq!(erf(f32::NEG_INFINITY), -1.0);
    assert_eq!(erfc(f32::INFINITY), 0.0);
    assert_eq!(erfc(f32::NEG_INFINITY), 2.0);
    assert_eq!(erfc(20.0), 0.0);
    assert!(erf(f32::NAN).is_nan() && erfc(f32::NAN).is_nan());
}

#[test]
fn normal_cdf_keeps_the_tail_relative() {
    let xs = sweep(-13.0, 10.0, 1e-3, &EXTREMES);
    let cdf = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
    let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (abs, rel) = max_errors(&xs, |x| normal_cdf_pdf(x).0, cdf, 1e-37);
    println!("normal CDF: max absolute error {abs:.2e}, max relative error {rel:.2e}");
    assert!(abs < 1.5e-7, "cdf: {abs:e}");
    assert!(rel < 1.5e-6, "cdf: {rel:e}");
    let (abs, rel) = max_errors(&xs, |x| normal_cdf_pdf(x).1, pdf, 1e-37);
    println!("normal PDF: max absolute error {abs:.2e}, max relative error {rel:.2e}");
    assert!(rel < 2e-6, "pdf: {rel:e}");
    assert_eq!(normal_cdf_pdf(f32::INFINITY), (1.0, 0.0));
    assert_eq!(normal_cdf_pdf(f32::NEG_INFINITY), (0.0, 0.0));
    assert_eq!(normal_cdf_pdf(0.0).0, 0.5);
    let (c, p) = normal_cdf_pdf(f32::NAN);
    assert!(c.is_nan() && p.is_nan());
}
