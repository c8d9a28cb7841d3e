//! Helpers shared by the kernels' tests.

use crate::gradcheck::{check_gradient, GradCheck};

/// Runs `run` twice on the current pool and once on a one-thread pool and
/// asserts that the three results are equal (the kernels' reductions run in
/// a fixed order, whatever the thread count); returns the first result.
pub fn assert_deterministic<T, F>(run: F) -> T
where
    T: PartialEq + std::fmt::Debug + Send,
    F: Fn() -> T + Send + Sync,
{
    let first = run();
    assert_eq!(first, run());
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(first, single.install(&run));
    first
}

/// Checks `analytic` against finite differences of `loss`, panicking with
/// `what` on a mismatch.
pub fn gradcheck(what: &str, loss: impl FnMut(&[f32]) -> f64, x: &[f32], analytic: &[f32]) {
    check_gradient(loss, x, analytic, GradCheck::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// f32 slices agree within `tol·(1 + |want|)`.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

/// The bits of a slice, for determinism checks.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}
