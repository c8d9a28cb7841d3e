//! Vectorisable f32 transcendentals: `exp`, `erf`, `erfc`, and the standard
//! normal CDF with its density, for the element-wise kernels (GELU,
//! sigmoid, softmax); and a vectorisable f64 sum in a fixed order.
//!
//! The C library's `expf` and `erfcf` are calls the compiler cannot
//! vectorise. These functions are written without table lookups, calls or
//! branches (ranges are chosen with selects), so that inlined into a loop of
//! a [`multiversion!`](crate::multiversion)ed kernel they compile to AVX2 or
//! AVX-512 code. They use no fused multiply-add, so every SIMD level gives
//! the same bits.
//!
//! # Method and error (against f64, measured by the tests of this module)
//!
//! - `exp(x) = 2^k · p(r)`, `k = round(x·log₂e)`, `r = x − k·ln 2` (split in
//!   two parts so that `r` is exact), `p` a degree-6 fit of `e^r` on
//!   `|r| ≤ ln2/2` (fit error 2e-9). `2^k` is built from the exponent bits in
//!   two halves, so results down to the subnormals are right and
//!   `exp(x < −104) = 0`, `exp(x > 88.8) = ∞`. Max relative error 1.3e-7
//!   (about 2 ulp).
//! - `erf`/`erfc` of `a = |z|`: below 1, `erf(a) = a·P(a²)` (degree-6 fit,
//!   relative fit error 1.3e-9); from 1 on, `erfc(a) = t·g(t)·e^(−a²)` with
//!   `t = 1/(1 + a)` and `g` a degree-9 fit of `erfc(a)·e^(a²)/t` over
//!   `t ∈ (0, ½]` (relative fit error 1.9e-8), which keeps the relative
//!   precision of the tail down to the subnormals. The other function of
//!   the pair is `1 −` this one. Max error: `erf` 1.8e-7 absolute, `erfc`
//!   3e-7 relative for `z ≥ 0` (where it is small).
//!
//! NaN gives NaN; `±∞` give the limits.

// The coefficients are printed from the fits, with more digits than f32
// keeps.
#![allow(clippy::excessive_precision)]

/// `Σ c[i]·x^(n−1−i)` by Horner's rule (highest degree first).
#[inline(always)]
fn horner<const N: usize>(x: f32, c: [f32; N]) -> f32 {
    let mut acc = c[0];
    for &ci in &c[1..] {
        acc = acc * x + ci;
    }
    acc
}

/// `2^k` for `k` in `[−126, 127]`, from the exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

/// `e^x`, vectorisable; see the module docs for the error.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_parts(x, 0.0)
}

/// `e^(x + lo)` for a small correction `lo` (`|lo| ≪ 1`), which is added
/// after the range reduction, so that it is not rounded away against `x`.
#[inline(always)]
fn exp_parts(x: f32, lo: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO; LN2_HI has 15 significant bits, so k·LN2_HI is
    // exact for |k| ≤ 512.
    const LN2_HI: f32 = 0.693_145_751_953_125;
    const LN2_LO: f32 = 1.428_606_765_330_187e-6;
    // 1.5·2^23: adding it rounds to an integer, which then sits in the low
    // mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons are false for NaN, which passes through.
    let x = if x > 88.8 { 88.8 } else { x };
    let x = if x < -104.0 { -104.0 } else { x };
    let z = x * LOG2_E + ROUND;
    let kf = z - ROUND;
    let r = ((x - kf * LN2_HI) - kf * LN2_LO) + lo;
    let p = horner(
        r,
        [
            0.0013941108434,
            0.00837512639815,
            0.0416663528968,
            0.166664155147,
            0.500000004712,
            1.00000003772,
            1.0,
        ],
    );
    // k in [−150, 128]: two factors 2^k1·2^k2 stay normal.
    let k = (z.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let k1 = k >> 1;
    p * pow2i(k1) * pow2i(k - k1)
}

/// `e^(−s·a²)` for `a ≥ 0` (or NaN) and `s` a power of two, with `a²`
/// carried in two parts: `a = hi + lo` with `hi` keeping 12 significant
/// bits, so `hi²` is exact and `a² = hi² + lo·(a + hi)`. Without this, the
/// rounding of `a²` (relative 6e-8, times `a²` up to 100) would cost the
/// tail of `erfc` several ulp.
#[inline(always)]
fn exp_neg_square(a: f32, s: f32) -> f32 {
    // e^(−s·a²) is 0 beyond a = 15 for s ≥ ½; this also keeps ∞ − ∞ out.
    let a = if a > 15.0 { 15.0 } else { a };
    let hi = f32::from_bits(a.to_bits() & 0xFFFF_F000);
    let lo = a - hi;
    exp_parts(-s * (hi * hi), -s * (lo * (a + hi)))
}

/// `(erf a, erfc a)` for `a = |z| ≥ 0`, given `exp_neg_a2 = e^(−a²)` (the
/// caller may have it more precisely than from `a`).
#[inline(always)]
fn erf_erfc_abs(a: f32, exp_neg_a2: f32) -> (f32, f32) {
    // a < 1: erf(a) = a·P(a²).
    let erf_small = a * horner(
        a * a,
        [
            7.87587506269e-5,
            -0.000801686428717,
            0.00518908742343,
            -0.0268542120106,
            0.112835947152,
            -0.376126266667,
            1.12837916585,
        ],
    );
    // a ≥ 1: erfc(a) = t·g(t)·e^(−a²), t = 1/(1 + a).
    let t = 1.0 / (1.0 + a);
    let g = horner(
        t,
        [
            -1.10576638847,
            5.18867796241,
            -8.54503131216,
            6.14303388206,
            -1.19345737106,
            -0.562427589419,
            -0.293058853746,
            0.282520738141,
            0.564183155756,
            0.564189599604,
        ],
    );
    let erfc_large = t * g * exp_neg_a2;
    // NaN takes the second branch, whose t is NaN.
    if a < 1.0 {
        (erf_small, 1.0 - erf_small)
    } else {
        (1.0 - erfc_large, erfc_large)
    }
}

/// The error function, vectorisable.
#[inline(always)]
pub fn erf(z: f32) -> f32 {
    let a = z.abs();
    let (e, _) = erf_erfc_abs(a, exp_neg_square(a, 1.0));
    e.copysign(z)
}

/// The complementary error function `1 − erf z`, vectorisable, with its
/// relative precision kept for large `z`.
#[inline(always)]
pub fn erfc(z: f32) -> f32 {
    let a = z.abs();
    let (e, c) = erf_erfc_abs(a, exp_neg_square(a, 1.0));
    if z < 0.0 {
        1.0 + e
    } else {
        c
    }
}

/// `(Φ(x), φ(x))`: the standard normal CDF and density, vectorisable. `Φ`
/// keeps its relative precision in the far negative tail (it is `½·erfc`
/// there, not `1 − …`).
#[inline(always)]
pub fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    /// `1/√(2π)`.
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    // e^(−x²/2) from x directly, not from the rounded a = |x|/√2.
    let e = exp_neg_square(x.abs(), 0.5);
    let (erf_a, erfc_a) = erf_erfc_abs(x.abs() * std::f32::consts::FRAC_1_SQRT_2, e);
    let cdf = if x < 0.0 {
        0.5 * erfc_a
    } else {
        0.5 + 0.5 * erf_a
    };
    (cdf, FRAC_1_SQRT_2PI * e)
}

/// Partial sums of [`sum_f64`], one AVX2 vector of f64 twice over.
const SUM_LANES: usize = 8;

/// `Σ f(a_i, b_i)` in f64 (over the shorter slice), in [`SUM_LANES`]
/// partial sums combined in lane order: a fixed order (the result does not
/// depend on how a caller splits its work) that vectorises, unlike one
/// running sum.
#[inline(always)]
pub fn sum_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    let mut acc = [0.0f64; SUM_LANES];
    let (ca, cb) = (a.chunks_exact(SUM_LANES), b.chunks_exact(SUM_LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (ca, cb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += f(x, y);
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
#[path = "vmath_tests.rs"]
mod tests;
