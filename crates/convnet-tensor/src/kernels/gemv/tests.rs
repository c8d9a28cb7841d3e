use super::*;
use crate::kernels::gemm::gemm;
use crate::Rng;

fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1., 1.)).collect()
}

/// `alpha · X · op(W) + beta · Y0` in f64, for `X` `[m, k]`.
#[allow(clippy::too_many_arguments)]
fn naive(
    y0: &[f32],
    x: &[f32],
    w: &[f32],
    tw: Trans,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) -> Vec<f64> {
    let mut y = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let wv = match tw {
                    Trans::No => w[p * n + j],
                    Trans::Yes => w[j * k + p],
                };
                s += x[i * k + p] as f64 * wv as f64;
            }
            y[i * n + j] = alpha as f64 * s + beta as f64 * y0[i * n + j] as f64;
        }
    }
    y
}

/// A pool of `threads` threads, to run a closure on.
fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

// k not a multiple of LANES (nor of 4), n below and above the thread count,
// m = 1..=6 (past ROW_GROUP), one product large enough to run in parallel.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 3, 17),
    (2, 1, 31),
    (3, 7, 5),
    (4, 33, 40),
    (5, 9, 19),
    (6, 70, 129),
    (1, 300, 301),
    (3, 257, 515),
];

#[test]
fn both_forms_with_alpha_beta_against_naive_and_gemm() {
    let mut rng = Rng::seed_from(21);
    for &(m, n, k) in SHAPES {
        for tw in [Trans::No, Trans::Yes] {
            for (alpha, beta) in [(1.0, 0.0), (0.5, 2.0), (-1.5, 1.0)] {
                let x = random(m * k, &mut rng);
                let w = random(k * n, &mut rng);
                let y0 = random(m * n, &mut rng);
                let want = naive(&y0, &x, &w, tw, (m, n, k), alpha, beta);
                let mut by_gemm = y0.clone();
                gemm(&mut by_gemm, &x, Trans::No, &w, tw, m, n, k, alpha, beta).unwrap();
                let mut y = y0.clone();
                gemv_parallel(&mut y, &x, &w, tw, m, n, k, alpha, beta).unwrap();
                let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                for i in 0..m * n {
                    let what = format!("{m}x{n}x{k} {tw:?} alpha {alpha} beta {beta} at {i}");
                    assert!((y[i] as f64 - want[i]).abs() < tol, "{what}: naive");
                    assert!((y[i] - by_gemm[i]).abs() < 2.0 * tol as f32, "{what}: gemm");
                }
            }
        }
    }
}

#[test]
fn beta_zero_overwrites_nans() {
    let (m, n, k) = (2, 5, 21);
    let mut rng = Rng::seed_from(22);
    let x = random(m * k, &mut rng);
    let w = random(k * n, &mut rng);
    for tw in [Trans::No, Trans::Yes] {
        let mut y = vec![f32::NAN; m * n];
        gemv(&mut y, &x, &w, tw, m, n, k, 1.0, 0.0).unwrap();
        let want = naive(&vec![0.0; m * n], &x, &w, tw, (m, n, k), 1.0, 0.0);
        for (a, b) in y.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{tw:?}: {a} vs {b}");
        }
    }
}

#[test]
fn bit_identical_for_1_and_2_threads_and_serial() {
    let mut rng = Rng::seed_from(23);
    // Large enough to be split (n·k above PARALLEL_MIN), odd sizes.
    for &(m, n, k) in &[(1, 517, 261), (4, 130, 1031), (3, 1029, 99)] {
        let x = random(m * k, &mut rng);
        let w = random(k * n, &mut rng);
        let y0 = random(m * n, &mut rng);
        for tw in [Trans::No, Trans::Yes] {
            let run = |threads: usize| {
                let mut y = y0.clone();
                pool(threads)
                    .install(|| gemv_parallel(&mut y, &x, &w, tw, m, n, k, 0.75, 0.5))
                    .unwrap();
                y
            };
            let mut serial = y0.clone();
            gemv(&mut serial, &x, &w, tw, m, n, k, 0.75, 0.5).unwrap();
            let (one, two, three) = (run(1), run(2), run(3));
            assert_eq!(one, two, "{m}x{n}x{k} {tw:?}");
            assert_eq!(one, three, "{m}x{n}x{k} {tw:?}");
            assert_eq!(one, serial, "{m}x{n}x{k} {tw:?}");
        }
    }
}

#[test]
fn a_row_gives_the_same_bits_whatever_the_other_rows() {
    // Row i's outputs depend on row i of X only, not on how many rows are
    // computed with it (groups of ROW_GROUP, then 3, 2, 1).
    let (n, k) = (37, 83);
    let mut rng = Rng::seed_from(24);
    let x = random(6 * k, &mut rng);
    let w = random(k * n, &mut rng);
    for tw in [Trans::No, Trans::Yes] {
        let mut all = vec![0.0; 6 * n];
        gemv(&mut all, &x, &w, tw, 6, n, k, 1.0, 0.0).unwrap();
        for i in 0..6 {
            let mut one = vec![0.0; n];
            gemv(&mut one, &x[i * k..(i + 1) * k], &w, tw, 1, n, k, 1.0, 0.0).unwrap();
            assert_eq!(one, all[i * n..(i + 1) * n], "row {i} {tw:?}");
        }
    }
}

#[test]
fn short_slices_are_errors_and_empty_shapes_do_nothing() {
    let (m, n, k) = (2, 3, 4);
    let mut y = vec![0.0; m * n];
    let e = gemv(&mut y, &[0.0; 7], &[0.0; 12], Trans::Yes, m, n, k, 1.0, 0.0);
    assert!(e.unwrap_err().to_string().contains("length of A"));
    let e = gemv_parallel(&mut y, &[0.0; 8], &[0.0; 11], Trans::No, m, n, k, 1.0, 0.0);
    assert!(e.unwrap_err().to_string().contains("length of B"));
    let e = gemv_parallel(
        &mut y[..5],
        &[0.0; 8],
        &[0.0; 12],
        Trans::No,
        m,
        n,
        k,
        1.0,
        0.0,
    );
    assert!(e.unwrap_err().to_string().contains("length of C"));
    let mut y = [7.0];
    gemv(&mut y, &[], &[0.0; 3], Trans::Yes, 0, 1, 3, 1.0, 0.0).unwrap();
    assert_eq!(y, [7.0]);
    // k = 0: the product is empty, Y = beta · Y.
    gemv(&mut y, &[], &[], Trans::Yes, 1, 1, 0, 1.0, 0.5).unwrap();
    assert_eq!(y, [3.5]);
    gemv(&mut y, &[], &[], Trans::No, 1, 1, 0, 1.0, 0.0).unwrap();
    assert_eq!(y, [0.0]);
}

#[test]
fn dot_rows_and_axpy_match_scalar_sums() {
    let mut rng = Rng::seed_from(25);
    let w = random(45, &mut rng);
    let xs = [random(45, &mut rng), random(50, &mut rng)];
    let sums = dot_rows::<2>(&w, [&xs[0], &xs[1]]);
    for (s, x) in sums.iter().zip(&xs) {
        let want: f64 = w.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((*s as f64 - want).abs() < 1e-5);
    }
    let rows: Vec<Vec<f32>> = (0..4).map(|_| random(9, &mut rng)).collect();
    let c = [0.5, -1.0, 2.0, 0.25];
    let mut y4 = random(9, &mut rng);
    let mut y1 = y4.clone();
    axpy4(&mut y4, c, [&rows[0], &rows[1], &rows[2], &rows[3]]);
    for (cq, row) in c.iter().zip(&rows) {
        axpy1(&mut y1, *cq, row);
    }
    assert_eq!(y4, y1);
}
