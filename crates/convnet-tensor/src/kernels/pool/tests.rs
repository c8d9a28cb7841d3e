//! Pooling kernels against naive loops, finite differences and PyTorch facts.

use super::*;
use crate::gradcheck::{check_gradient, project, projection, GradCheck};
use crate::kernels::test_util::{assert_deterministic, bits};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// One pooling configuration of the test grid.
#[derive(Debug, Clone, Copy)]
struct Case {
    shape: [usize; 4],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
}

/// Odd and even sizes, stride equal to or different from the kernel, padding
/// 0 and 1, ceil mode on and off, batch 1 and 3; configurations PyTorch
/// rejects are skipped by asking the geometry.
fn grid() -> Vec<(Case, Pool2dGeometry)> {
    let mut cases = Vec::new();
    for batch in [1, 3] {
        for (h, w) in [(7, 6), (5, 5), (6, 9)] {
            for kernel in [(2, 2), (3, 3), (3, 2)] {
                for stride in [(1, 1), (2, 2), (2, 3)] {
                    for pad in [0, 1] {
                        for ceil_mode in [false, true] {
                            let case = Case {
                                shape: [batch, 2, h, w],
                                kernel,
                                stride,
                                padding: (pad, pad),
                                ceil_mode,
                            };
                            if let Ok(g) = Pool2dGeometry::new(
                                &case.shape,
                                kernel,
                                stride,
                                case.padding,
                                ceil_mode,
                            ) {
                                cases.push((case, g));
                            }
                        }
                    }
                }
            }
        }
    }
    // The grid must contain the interesting cases, not just survive filtering.
    assert!(cases.len() > 150, "{}", cases.len());
    assert!(cases.iter().any(|(c, g)| c.ceil_mode
        && g.out_h
            > crate::geometry::pool_output_size(
                c.shape[2],
                c.kernel.0,
                c.padding.0,
                c.stride.0,
                1,
                false
            )
            .unwrap()));
    cases
}

/// Input rows of window `o` in signed input coordinates, unclipped.
fn window(o: usize, stride: usize, pad: usize, k: usize) -> impl Iterator<Item = isize> {
    (0..k).map(move |i| (o * stride + i) as isize - pad as isize)
}

/// Straightforward max pooling: every window position, bounds-checked.
fn naive_max(x: &[f32], g: &Pool2dGeometry) -> (Vec<f32>, Vec<u32>) {
    let (h, w) = (g.in_h as isize, g.in_w as isize);
    let mut out = Vec::new();
    let mut arg = Vec::new();
    for plane in x.chunks(g.in_h * g.in_w) {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let mut best = f32::NEG_INFINITY;
                let mut at = usize::MAX;
                for r in window(oh, g.stride_h, g.pad_h, g.kernel_h) {
                    for c in window(ow, g.stride_w, g.pad_w, g.kernel_w) {
                        if r >= 0 && r < h && c >= 0 && c < w {
                            let i = (r * w + c) as usize;
                            if at == usize::MAX || plane[i] > best {
                                best = plane[i];
                                at = i;
                            }
                        }
                    }
                }
                out.push(best);
                arg.push(at as u32);
            }
        }
    }
    (out, arg)
}

/// Straightforward average pooling with PyTorch's divisor: padded positions
/// count (when asked) as long as they lie within input + padding.
fn naive_avg(x: &[f32], g: &Pool2dGeometry, count_include_pad: bool) -> Vec<f32> {
    let (h, w) = (g.in_h as isize, g.in_w as isize);
    let mut out = Vec::new();
    for plane in x.chunks(g.in_h * g.in_w) {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (mut sum, mut real, mut padded) = (0.0f64, 0usize, 0usize);
                for r in window(oh, g.stride_h, g.pad_h, g.kernel_h) {
                    for c in window(ow, g.stride_w, g.pad_w, g.kernel_w) {
                        if r < h + g.pad_h as isize && c < w + g.pad_w as isize {
                            padded += 1;
                        }
                        if r >= 0 && r < h && c >= 0 && c < w {
                            sum += plane[(r * w + c) as usize] as f64;
                            real += 1;
                        }
                    }
                }
                let div = if count_include_pad { padded } else { real };
                out.push((sum / div as f64) as f32);
            }
        }
    }
    out
}

/// Adaptive average pooling with the window bounds computed in floating point.
fn naive_adaptive(x: &[f32], shape: [usize; 4], (oh_n, ow_n): (usize, usize)) -> Vec<f32> {
    let [_, _, h, w] = shape;
    let lo = |i: usize, o: usize, n: usize| (i as f64 * n as f64 / o as f64).floor() as usize;
    let hi = |i: usize, o: usize, n: usize| ((i + 1) as f64 * n as f64 / o as f64).ceil() as usize;
    let mut out = Vec::new();
    for plane in x.chunks(h * w) {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let mut sum = 0.0f64;
                let mut count = 0;
                for r in lo(oh, oh_n, h)..hi(oh, oh_n, h) {
                    for c in lo(ow, ow_n, w)..hi(ow, ow_n, w) {
                        sum += plane[r * w + c] as f64;
                        count += 1;
                    }
                }
                out.push((sum / count as f64) as f32);
            }
        }
    }
    out
}

/// Distinct values 0.1 apart in random order: no ties, and a finite
/// difference step of 0.01 never changes which element wins a window.
fn distinct(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..len)
        .map(|i| i as f32 * 0.1 - len as f32 * 0.05)
        .collect();
    rng.shuffle(&mut v);
    v
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn max_pool_matches_naive_loops() {
    let mut rng = Rng::seed_from(1);
    for (case, g) in grid() {
        let x = Tensor::randn(&case.shape, 0.0, 1.0, &mut rng);
        let (out, arg) =
            max_pool2d_with_indices(&x, case.kernel, case.stride, case.padding, case.ceil_mode)
                .unwrap();
        let (want, want_arg) = naive_max(x.as_slice(), &g);
        assert_eq!(out.shape(), &g.output_shape(), "{case:?}");
        assert_eq!(out.as_slice(), &want[..], "{case:?}");
        assert_eq!(arg, want_arg, "{case:?}");
    }
}

#[test]
fn avg_pool_matches_naive_loops() {
    let mut rng = Rng::seed_from(2);
    for (case, g) in grid() {
        let x = Tensor::randn(&case.shape, 0.0, 1.0, &mut rng);
        for include in [false, true] {
            let out = avg_pool2d(
                &x,
                case.kernel,
                case.stride,
                case.padding,
                case.ceil_mode,
                include,
            )
            .unwrap();
            let want = naive_avg(x.as_slice(), &g, include);
            assert_close(
                out.as_slice(),
                &want,
                1e-6,
                &format!("{case:?} include_pad {include}"),
            );
        }
    }
}

#[test]
fn avg_pool_divisor_as_pytorch() {
    // torch.nn.functional.avg_pool2d(torch.ones(1,1,5,5), 2, 2, ceil_mode=True):
    // all ones (the overhang beyond the input is not counted).
    let ones = Tensor::ones(&[1, 1, 5, 5]);
    for include in [false, true] {
        let y = avg_pool2d(&ones, (2, 2), (2, 2), (0, 0), true, include).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert!(y.as_slice().iter().all(|&v| v == 1.0), "{y:?}");
    }
    // avg_pool2d(ones(1,1,5,5), 3, 2, padding=1, ceil_mode=True, count_include_pad=True)
    // -> [[4/9, 6/9, 4/9], [6/9, 1, 6/9], [4/9, 6/9, 4/9]]: the last window covers
    // input rows 3..5 and the right padding row, 3 rows of the padded input.
    let y = avg_pool2d(&ones, (3, 3), (2, 2), (1, 1), true, true).unwrap();
    let (a, b) = (4.0 / 9.0, 6.0 / 9.0);
    assert_close(
        y.as_slice(),
        &[a, b, a, b, 1.0, b, a, b, a],
        1e-6,
        "padded 5x5",
    );
    // 6x6, kernel 3, stride 3, padding 1, ceil: 3 windows per axis, the last
    // one starts in the input (row 5) and overhangs the right padding by one.
    let ones6 = Tensor::ones(&[1, 1, 6, 6]);
    let y = avg_pool2d(&ones6, (3, 3), (3, 3), (1, 1), true, true).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    // Row windows: padded rows 0..3 (3, one is padding), 3..6 (3), 6..8 (2 of
    // input + padding, one real): divisors 3x3, 3x3, 2x3 ...
    let r = [2.0 / 3.0, 1.0, 0.5];
    let want: Vec<f32> = (0..9).map(|i| r[i / 3] * r[i % 3]).collect();
    assert_close(y.as_slice(), &want, 1e-6, "6x6 ceil");
}

#[test]
fn adaptive_avg_pool_matches_naive_loops() {
    let mut rng = Rng::seed_from(3);
    for shape in [[1, 2, 7, 5], [3, 2, 10, 9], [2, 1, 3, 3]] {
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        // Sizes that do not divide the input, equal to it, larger than it, 1x1.
        for out_hw in [(3, 2), (4, 4), (shape[2], shape[3]), (5, 7), (1, 1)] {
            let y = adaptive_avg_pool2d(&x, out_hw).unwrap();
            assert_eq!(y.shape(), &[shape[0], shape[1], out_hw.0, out_hw.1]);
            let want = naive_adaptive(x.as_slice(), shape, out_hw);
            assert_close(
                y.as_slice(),
                &want,
                1e-6,
                &format!("{shape:?} -> {out_hw:?}"),
            );
        }
    }
    // Same size is the identity; 1x1 is the global average.
    let x = Tensor::randn(&[2, 3, 4, 5], 0.0, 1.0, &mut rng);
    assert_eq!(adaptive_avg_pool2d(&x, (4, 5)).unwrap(), x);
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    let mut rng = Rng::seed_from(4);
    for (i, (case, g)) in grid().into_iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let x = distinct(g.input_shape().iter().product(), &mut rng);
        let out_len: usize = g.output_shape().iter().product();
        let r = projection(out_len, i as u64);
        let mut out = vec![0.0; out_len];
        let mut arg = vec![0u32; out_len];
        max_pool2d_forward(&mut out, &mut arg, &x, &g).unwrap();
        let mut grad = vec![f32::NAN; x.len()];
        max_pool2d_backward(&mut grad, &r, &arg, &g).unwrap();
        let loss = |xp: &[f32]| {
            let mut o = vec![0.0; out_len];
            let mut a = vec![0u32; out_len];
            max_pool2d_forward(&mut o, &mut a, xp, &g).unwrap();
            project(&o, &r)
        };
        check_gradient(loss, &x, &grad, GradCheck::default())
            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

#[test]
fn avg_pool_backward_matches_finite_differences() {
    let mut rng = Rng::seed_from(5);
    for (i, (case, g)) in grid().into_iter().enumerate().filter(|(i, _)| i % 3 == 1) {
        let x = Tensor::randn(&case.shape, 0.0, 1.0, &mut rng).into_vec();
        let out_len: usize = g.output_shape().iter().product();
        let r = projection(out_len, i as u64);
        for include in [false, true] {
            let mut grad = vec![f32::NAN; x.len()];
            avg_pool2d_backward(&mut grad, &r, &g, include).unwrap();
            let loss = |xp: &[f32]| {
                let mut o = vec![0.0; out_len];
                avg_pool2d_forward(&mut o, xp, &g, include).unwrap();
                project(&o, &r)
            };
            check_gradient(loss, &x, &grad, GradCheck::default())
                .unwrap_or_else(|e| panic!("{case:?} include_pad {include}: {e}"));
        }
    }
}

#[test]
fn adaptive_avg_pool_backward_matches_finite_differences() {
    let mut rng = Rng::seed_from(6);
    for shape in [[1, 2, 7, 5], [3, 1, 6, 9]] {
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng).into_vec();
        for out_hw in [(3, 2), (4, 4), (1, 1), (8, 6)] {
            let out_len = shape[0] * shape[1] * out_hw.0 * out_hw.1;
            let r = projection(out_len, 7);
            let mut grad = vec![f32::NAN; x.len()];
            adaptive_avg_pool2d_backward(&mut grad, &r, shape, out_hw).unwrap();
            let loss = |xp: &[f32]| {
                let mut o = vec![0.0; out_len];
                adaptive_avg_pool2d_forward(&mut o, xp, shape, out_hw).unwrap();
                project(&o, &r)
            };
            check_gradient(loss, &x, &grad, GradCheck::default())
                .unwrap_or_else(|e| panic!("{shape:?} -> {out_hw:?}: {e}"));
        }
    }
}

#[test]
fn max_pool_ignores_padding_and_propagates_nan() {
    // All-negative input with padding: the padded zeros must not win.
    let x = Tensor::full(&[1, 1, 3, 3], -5.0);
    let y = max_pool2d(&x, (2, 2), (2, 2), (1, 1), false).unwrap();
    assert!(y.as_slice().iter().all(|&v| v == -5.0), "{y:?}");
    let mut x = Tensor::arange(&[1, 1, 2, 2]);
    x.as_slice_mut()[1] = f32::NAN;
    let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
    assert!(y.as_slice()[0].is_nan());
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let g = Pool2dGeometry::new(&[2, 3, 8, 8], (2, 2), (2, 2), (0, 0), false).unwrap();
    let input = vec![0.0; 2 * 3 * 8 * 8];
    let mut out = vec![0.0; 2 * 3 * 4 * 4];
    let mut arg = vec![0u32; out.len()];
    let e = max_pool2d_forward(&mut out[1..], &mut arg, &input, &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("output") && e.contains("[2, 3, 4, 4]") && e.contains("95"),
        "{e}"
    );
    let e = max_pool2d_forward(&mut out, &mut arg, &input[1..], &g)
        .unwrap_err()
        .to_string();
    assert!(e.contains("input") && e.contains("[2, 3, 8, 8]"), "{e}");
    let e = avg_pool2d_forward(&mut out, &input[..10], &g, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 3, 8, 8]"), "{e}");
    let mut grad = vec![0.0; input.len()];
    let e = avg_pool2d_backward(&mut grad, &out[..5], &g, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grad_out") && e.contains("[2, 3, 4, 4]"), "{e}");
    // A corrupt argmax is an error, not an out-of-bounds panic.
    arg.fill(64);
    assert!(max_pool2d_backward(&mut grad, &out, &arg, &g).is_err());
    // A hand-built geometry with a wrong output size is rejected.
    let bad = Pool2dGeometry { out_h: 5, ..g };
    let mut out5 = vec![0.0; 2 * 3 * 5 * 4];
    let e = avg_pool2d_forward(&mut out5, &input, &bad, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inconsistent geometry"), "{e}");
    // Tensor level: rank, window too large, adaptive size zero.
    assert!(max_pool2d(&Tensor::zeros(&[3, 8, 8]), (2, 2), (2, 2), (0, 0), false).is_err());
    let e = max_pool2d(&Tensor::zeros(&[1, 1, 2, 2]), (3, 3), (1, 1), (0, 0), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 1, 2, 2]"), "{e}");
    let e = adaptive_avg_pool2d(&Tensor::zeros(&[1, 1, 4, 4]), (0, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 1, 4, 4]"), "{e}");
    let e = adaptive_avg_pool2d(&Tensor::zeros(&[4, 4]), (2, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[4, 4]"), "{e}");
    let mut small = vec![0.0; 3];
    assert!(adaptive_avg_pool2d_forward(&mut small, &input, [2, 3, 8, 8], (1, 1)).is_err());
}

#[test]
fn parallel_results_are_bit_identical() {
    let mut rng = Rng::seed_from(8);
    let x = Tensor::randn(&[4, 16, 33, 31], 0.0, 1.0, &mut rng);
    let g = Pool2dGeometry::new(x.shape(), (3, 3), (2, 2), (1, 1), true).unwrap();
    let out_len: usize = g.output_shape().iter().product();
    let r = projection(out_len, 9);
    let run = || {
        let (y, arg) = max_pool2d_with_indices(&x, (3, 3), (2, 2), (1, 1), true).unwrap();
        let mut gmax = vec![0.0; x.len()];
        max_pool2d_backward(&mut gmax, &r, &arg, &g).unwrap();
        let a = avg_pool2d(&x, (3, 3), (2, 2), (1, 1), true, false).unwrap();
        let mut gavg = vec![0.0; x.len()];
        avg_pool2d_backward(&mut gavg, &r, &g, false).unwrap();
        let ad = adaptive_avg_pool2d(&x, (7, 5)).unwrap();
        (
            bits(y.as_slice()),
            bits(&gmax),
            bits(a.as_slice()),
            bits(&gavg),
            bits(ad.as_slice()),
        )
    };
    assert_deterministic(run);
}

#[test]
fn max_pool_2x2_stride_2_fast_path_matches_naive_loops_with_ties_and_nan() {
    // LeNet-5's shape (even sizes) and odd sizes in floor mode (last row and
    // column dropped) take the fast path; values from a small set give ties,
    // which go to the first position in row-major order.
    let mut rng = Rng::seed_from(7);
    for shape in [[2, 6, 28, 28], [1, 2, 7, 9], [3, 1, 2, 2]] {
        let g = Pool2dGeometry::new(&shape, (2, 2), (2, 2), (0, 0), false).unwrap();
        let len = shape.iter().product();
        let x: Vec<f32> = (0..len).map(|_| rng.below(3) as f32).collect();
        let x = Tensor::from_vec(&shape, x).unwrap();
        let (out, arg) = max_pool2d_with_indices(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
        let (want, want_arg) = naive_max(x.as_slice(), &g);
        assert_eq!(out.as_slice(), &want[..], "{shape:?}");
        assert_eq!(arg, want_arg, "{shape:?}");
    }
    // A NaN wins its window (the last one when there are two), as in PyTorch.
    let mut x = Tensor::arange(&[1, 1, 2, 4]);
    x.as_slice_mut()[5] = f32::NAN;
    x.as_slice_mut()[2] = f32::NAN;
    x.as_slice_mut()[7] = f32::NAN;
    let (out, arg) = max_pool2d_with_indices(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
    assert!(out.as_slice().iter().all(|v| v.is_nan()), "{out:?}");
    assert_eq!(arg, [5, 7]);
}
