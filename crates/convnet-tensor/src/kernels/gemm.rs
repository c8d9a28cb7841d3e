//! Single-precision matrix multiply (sgemm) over slices, through
//! `matrixmultiply`.
//!
//! `C[m×n] = alpha · op(A) · op(B) + beta · C`, row-major, where `op(A)` is
//! `A` (`[m, k]`) or `Aᵀ` (A stored `[k, m]`), and likewise for `B`. When
//! `beta == 0`, `C` is overwritten (NaNs in it do not propagate).
//!
//! [`gemm`] runs on the calling thread: kernels call it inside their own rayon
//! tasks (one per image), so threads are never oversubscribed. [`gemm_parallel`]
//! splits the rows of `C` over rayon's pool for a single large product (dense
//! layers, the peak measurement) and falls back to [`gemm`] when already inside
//! a rayon task.

use rayon::prelude::*;

use crate::error::{Result, TensorError};

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trans {
    /// Use the matrix as stored.
    No,
    /// Use its transpose.
    Yes,
}

/// Row and column strides of a stored row-major matrix used as `op(M)` of
/// shape `[rows, cols]`.
fn strides(trans: Trans, rows: usize, cols: usize) -> (isize, isize) {
    match trans {
        Trans::No => (cols as isize, 1),
        Trans::Yes => (1, rows as isize),
    }
}

/// Checks that `c`, `a` and `b` hold at least `m·n`, `m·k` and `k·n`
/// elements: what makes [`sgemm_raw`] sound.
pub(super) fn check_lens(
    c: &[f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Result<()> {
    for (what, len, needed) in [
        ("C", c.len(), m * n),
        ("A", a.len(), m * k),
        ("B", b.len(), k * n),
    ] {
        if len < needed {
            return Err(TensorError::shape(
                "gemm",
                format!("length of {what}"),
                format!("at least {needed}"),
                len,
            ));
        }
    }
    Ok(())
}

/// `C = alpha · op(A) · op(B) + beta · C` on the calling thread.
///
/// `c` is `[m, n]`, `op(a)` is `[m, k]`, `op(b)` is `[k, n]`, all row-major and
/// contiguous. Errors if a slice is too short for its shape (three
/// comparisons: cheap next to the product, so they are made in release
/// builds too).
///
/// ```
/// use convnet_tensor::kernels::gemm::{gemm, Trans};
/// let a = [1., 2., 3., 4.]; // [[1, 2], [3, 4]]
/// let b = [5., 6., 7., 8.]; // [[5, 6], [7, 8]]
/// let mut c = [0.0; 4];
/// gemm(&mut c, &a, Trans::No, &b, Trans::No, 2, 2, 2, 1.0, 0.0).unwrap();
/// assert_eq!(c, [19., 22., 43., 50.]);
/// gemm(&mut c, &a, Trans::Yes, &b, Trans::No, 2, 2, 2, 1.0, 0.0).unwrap();
/// assert_eq!(c, [26., 30., 38., 44.]); // Aᵀ·B
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    c: &mut [f32],
    a: &[f32],
    trans_a: Trans,
    b: &[f32],
    trans_b: Trans,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    check_lens(c, a, b, m, n, k)?;
    // SAFETY: `check_lens` just checked the lengths.
    unsafe { sgemm_raw(c, a, trans_a, b, trans_b, (m, n, k), alpha, beta) };
    Ok(())
}

/// The product of [`gemm`] without the length checks.
///
/// # Safety
///
/// `c`, `a` and `b` must hold at least `m·n`, `m·k` and `k·n` elements
/// ([`check_lens`]): `matrixmultiply` reads and writes through raw
/// pointers over exactly those extents.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw(
    c: &mut [f32],
    a: &[f32],
    trans_a: Trans,
    b: &[f32],
    trans_b: Trans,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) {
    debug_assert!(check_lens(c, a, b, m, n, k).is_ok());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // matrixmultiply leaves C untouched-but-scaled semantics to us.
        for v in &mut c[..m * n] {
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
        return;
    }
    let (rsa, csa) = strides(trans_a, m, k);
    let (rsb, csb) = strides(trans_b, k, n);
    // SAFETY: the slices hold at least m*k, k*n and m*n elements (this
    // function's contract), and the strides above address exactly those
    // row-major matrices (or their transposes), so every access is in
    // bounds; `c` is a unique borrow, so it does not alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// [`gemm`] with the rows of `C` split over rayon's thread pool when the product
/// is large enough and the caller is not already a rayon task.
///
/// Each thread computes whole rows of `C` with the same reduction order as
/// [`gemm`] over `k`, so the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn gemm_parallel(
    c: &mut [f32],
    a: &[f32],
    trans_a: Trans,
    b: &[f32],
    trans_b: Trans,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    check_lens(c, a, b, m, n, k)?;
    let threads = rayon::current_num_threads();
    let inside_pool = rayon::current_thread_index().is_some();
    if threads <= 1 || inside_pool || (m * n * k) < (1 << 18) || m < 2 * 8 {
        // SAFETY: `check_lens` checked the lengths above.
        unsafe { sgemm_raw(c, a, trans_a, b, trans_b, (m, n, k), alpha, beta) };
        return Ok(());
    }
    // Row panels, a multiple of 8 rows (the micro-kernel height), a few per thread.
    let panels = threads * 2;
    let rows = m.div_ceil(panels).next_multiple_of(8);
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(i, c_panel)| {
            let r0 = i * rows;
            let mr = c_panel.len() / n;
            match trans_a {
                // SAFETY: the C panel is `mr` whole rows of `n`, the A panel
                // the same `mr` rows of `k`, and B was checked above.
                Trans::No => unsafe {
                    sgemm_raw(
                        c_panel,
                        &a[r0 * k..(r0 + mr) * k],
                        Trans::No,
                        b,
                        trans_b,
                        (mr, n, k),
                        alpha,
                        beta,
                    )
                },
                Trans::Yes => {
                    // A is stored [k, m]: the panel's columns r0..r0+mr.
                    let (rsb, csb) = strides(trans_b, k, n);
                    // SAFETY: A is [k, m] with row stride m: element (i, p) of
                    // the panel of op(A) is a[p * m + r0 + i], with i < mr and
                    // p < k, inside a (len >= k*m, checked above); B and the
                    // C panel as in `sgemm_raw`.
                    unsafe {
                        matrixmultiply::sgemm(
                            mr,
                            k,
                            n,
                            alpha,
                            a.as_ptr().add(r0),
                            1,
                            m as isize,
                            b.as_ptr(),
                            rsb,
                            csb,
                            beta,
                            c_panel.as_mut_ptr(),
                            n as isize,
                            1,
                        );
                    }
                }
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn naive(a: &[f32], ta: Trans, b: &[f32], tb: Trans, m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = match ta {
                        Trans::No => a[i * k + p],
                        Trans::Yes => a[p * m + i],
                    };
                    let bv = match tb {
                        Trans::No => b[p * n + j],
                        Trans::Yes => b[j * k + p],
                    };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn all_transposes_alpha_beta_against_naive() {
        let mut rng = Rng::seed_from(11);
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (64, 70, 40)] {
            for ta in [Trans::No, Trans::Yes] {
                for tb in [Trans::No, Trans::Yes] {
                    let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1., 1.)).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1., 1.)).collect();
                    let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1., 1.)).collect();
                    let r = naive(&a, ta, &b, tb, m, n, k);
                    let mut c = c0.clone();
                    gemm(&mut c, &a, ta, &b, tb, m, n, k, 0.5, 2.0).unwrap();
                    for i in 0..m * n {
                        let want = 0.5 * r[i] + 2.0 * c0[i];
                        assert!((c[i] - want).abs() < 1e-4, "{m}x{n}x{k} {ta:?}{tb:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn parallel_equals_serial_bit_for_bit() {
        let mut rng = Rng::seed_from(12);
        let (m, n, k) = (200, 150, 90);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1., 1.)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1., 1.)).collect();
        for ta in [Trans::No, Trans::Yes] {
            let mut c1 = vec![0.0; m * n];
            let mut c2 = vec![f32::NAN; m * n];
            gemm(&mut c1, &a, ta, &b, Trans::Yes, m, n, k, 1.0, 0.0).unwrap();
            gemm_parallel(&mut c2, &a, ta, &b, Trans::Yes, m, n, k, 1.0, 0.0).unwrap();
            assert_eq!(c1, c2);
        }
    }

    #[test]
    fn short_slices_are_errors() {
        let mut c = [0.0; 3];
        let e = gemm(
            &mut c,
            &[0.0; 4],
            Trans::No,
            &[0.0; 4],
            Trans::No,
            2,
            2,
            2,
            1.0,
            0.0,
        );
        assert!(e.unwrap_err().to_string().contains("length of C"));
    }
}
