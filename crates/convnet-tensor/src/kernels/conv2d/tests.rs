//! Tests of the conv2d kernels: the lecture's example, a naive f64 reference
//! over a grid of shapes (every strategy, thread count and band size),
//! finite-difference gradient checks, determinism and error messages.

use super::lowered::{self, Dims};
use super::*;
use crate::gradcheck::{check_gradient, project, projection, GradCheck};
use crate::Rng;

/// One convolution configuration.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    o: usize,
    hw: (usize, usize),
    k: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    groups: usize,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    const fn new(
        n: usize,
        c: usize,
        o: usize,
        hw: (usize, usize),
        k: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        dil: (usize, usize),
        groups: usize,
    ) -> Self {
        Case {
            n,
            c,
            o,
            hw,
            k,
            stride,
            pad,
            dil,
            groups,
        }
    }

    fn geometry(&self) -> Conv2dGeometry {
        Conv2dGeometry::new(
            &[self.n, self.c, self.hw.0, self.hw.1],
            &[self.o, self.c / self.groups, self.k.0, self.k.1],
            self.stride,
            self.pad,
            self.dil,
            self.groups,
        )
        .unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

/// The grid: odd sizes, strides 1 and 2, padding 0/1/2, dilation 1 and 2,
/// groups 1, 2 and depthwise, batches 1 and 3, 1×1 and non-square kernels.
const GRID: &[Case] = &[
    // im2col, dense
    Case::new(1, 3, 4, (7, 9), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    Case::new(3, 3, 4, (7, 9), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    Case::new(3, 4, 5, (9, 8), (3, 2), (2, 2), (2, 2), (1, 1), 1),
    Case::new(1, 2, 3, (8, 7), (2, 3), (1, 2), (0, 1), (2, 2), 1),
    Case::new(3, 3, 2, (5, 5), (5, 5), (1, 1), (0, 0), (1, 1), 1),
    Case::new(1, 2, 3, (3, 4), (5, 3), (2, 1), (2, 1), (1, 1), 1),
    // 1x1 that is not pointwise: strided, padded
    Case::new(3, 6, 4, (5, 7), (1, 1), (2, 2), (0, 0), (1, 1), 1),
    Case::new(1, 3, 2, (4, 3), (1, 1), (1, 1), (1, 1), (1, 1), 1),
    // pointwise fast path
    Case::new(3, 6, 4, (5, 7), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    Case::new(1, 4, 6, (5, 5), (1, 1), (1, 1), (0, 0), (2, 2), 2),
    // grouped
    Case::new(3, 4, 6, (7, 7), (3, 3), (2, 2), (1, 1), (2, 2), 2),
    Case::new(1, 6, 3, (6, 5), (2, 3), (1, 1), (1, 0), (1, 1), 3),
    Case::new(3, 4, 4, (6, 10), (3, 3), (1, 1), (1, 1), (1, 1), 2),
    // depthwise (multiplier 1, 2, 6; stride 1 and 2; dilation; non-square)
    Case::new(3, 4, 4, (9, 8), (3, 3), (1, 1), (1, 1), (1, 1), 4),
    Case::new(1, 3, 6, (7, 9), (3, 3), (2, 2), (1, 1), (1, 1), 3),
    Case::new(3, 5, 5, (11, 10), (3, 3), (1, 1), (2, 2), (2, 2), 5),
    Case::new(1, 1, 6, (12, 11), (5, 5), (1, 1), (2, 2), (1, 1), 1),
    Case::new(3, 2, 2, (7, 21), (7, 7), (1, 1), (3, 3), (1, 1), 2),
    Case::new(1, 2, 2, (5, 67), (3, 3), (1, 1), (1, 1), (1, 1), 2),
    Case::new(3, 3, 3, (6, 9), (2, 3), (1, 2), (0, 2), (1, 1), 3),
    Case::new(1, 2, 4, (5, 7), (3, 2), (2, 1), (1, 1), (2, 1), 2),
];

fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Input, weight, bias of a case.
fn data(g: &Conv2dGeometry, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::seed_from(seed);
    let x = random(g.input_shape().iter().product(), &mut rng);
    let w = random(g.weight_shape().iter().product(), &mut rng);
    let b = random(g.out_channels, &mut rng);
    (x, w, b)
}

/// Input index read by output `(oh, ow)` through tap `(ki, kj)`, if not padding.
fn tap(g: &Conv2dGeometry, oh: usize, ow: usize, ki: usize, kj: usize) -> Option<(usize, usize)> {
    let ih = (oh * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
    let iw = (ow * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
    (ih >= 0 && iw >= 0 && (ih as usize) < g.in_h && (iw as usize) < g.in_w)
        .then_some((ih as usize, iw as usize))
}

/// Calls `f(out_index, input_index, weight_index)` for every multiply-add of
/// the convolution, straight from the definition.
fn for_each_term(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let oi = ((n * g.out_channels + o) * g.out_h + oh) * g.out_w + ow;
                    for ci in 0..cg {
                        let c = (o / og) * cg + ci;
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                if let Some((ih, iw)) = tap(g, oh, ow, ki, kj) {
                                    let xi = ((n * g.in_channels + c) * g.in_h + ih) * g.in_w + iw;
                                    let wi = ((o * cg + ci) * g.kernel_h + ki) * g.kernel_w + kj;
                                    f(oi, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn naive_forward(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<f64> {
    let ohw = g.out_h * g.out_w;
    let mut out: Vec<f64> = (0..g.output_shape().iter().product())
        .map(|i: usize| b.map_or(0.0, |b| b[(i / ohw) % g.out_channels] as f64))
        .collect();
    for_each_term(g, |oi, xi, wi| out[oi] += x[xi] as f64 * w[wi] as f64);
    out
}

/// `(dx, dw, db)` of the loss `Σ out · dy`.
fn naive_backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    g: &Conv2dGeometry,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; g.out_channels];
    for_each_term(g, |oi, xi, wi| {
        dx[xi] += dy[oi] as f64 * w[wi] as f64;
        dw[wi] += dy[oi] as f64 * x[xi] as f64;
    });
    let ohw = g.out_h * g.out_w;
    for (i, &v) in dy.iter().enumerate() {
        db[(i / ohw) % g.out_channels] += v as f64;
    }
    (dx, dw, db)
}

fn assert_close(what: &str, case: &dyn std::fmt::Debug, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what} length, {case:?}");
    for (i, (&a, &r)) in got.iter().zip(want).enumerate() {
        assert!(
            (a as f64 - r).abs() <= 1e-4 * (1.0 + r.abs()),
            "{what}[{i}]: got {a}, want {r} ({case:?})"
        );
    }
}

/// Forward and backward through the public API; grad_weight and grad_bias
/// start from `acc0` to check that they accumulate, grad_input from NaN to
/// check that it is overwritten.
struct Outputs {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

fn run_public(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
    acc0: f32,
) -> Outputs {
    let mut y = vec![f32::NAN; g.output_shape().iter().product()];
    conv2d_forward(&mut y, x, w, Some(b), g).unwrap();
    let mut dx = vec![f32::NAN; x.len()];
    let mut dw = vec![acc0; w.len()];
    let mut db = vec![acc0; b.len()];
    conv2d_backward(Some(&mut dx), Some(&mut dw), Some(&mut db), dy, x, w, g).unwrap();
    Outputs { y, dx, dw, db }
}

/// As [`run_public`], through the lowered (im2col) path with its tuning
/// knobs changed by `tweak` (tiny bands, padded grid off, ...).
fn run_lowered(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
    tweak: impl Fn(&mut Dims),
) -> Outputs {
    let mut d = Dims::new(g);
    tweak(&mut d);
    let mut y = vec![f32::NAN; g.output_shape().iter().product()];
    lowered::forward(&mut y, x, w, Some(b), &d);
    let mut dx = vec![f32::NAN; x.len()];
    let mut dw = vec![0.0; w.len()];
    lowered::backward(Some(&mut dx), Some(&mut dw), dy, x, w, &d);
    let mut db = vec![0.0; b.len()];
    bias_grad(&mut db, dy, &d);
    Outputs { y, dx, dw, db }
}

/// A named change of the lowering's tuning knobs.
type Tweak = (&'static str, fn(&mut Dims));

/// Knob settings that reach the banded code of every lowering on small shapes.
const TWEAKS: &[Tweak] = &[
    ("one-row im2col bands, 7-position grid and 1x1 bands", |d| {
        d.band_elems = 1;
        d.grid_band = 7;
        d.pointwise_band = 7;
    }),
    ("16-position grid bands", |d| d.grid_band = 16),
    (
        "200-position grid bands (whole small images side by side)",
        |d| d.grid_band = 200,
    ),
    ("row-by-row im2col instead of the padded grid", |d| {
        d.padded_grid = false;
        d.band_elems = 1;
    }),
];

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn lecture_worked_example() {
    let x = Tensor::from_vec(
        &[1, 1, 4, 4],
        vec![
            2., -1., -1., 3., -2., 1., 2., -1., 0., 0., 2., 3., 2., -1., -3., 2.,
        ],
    )
    .unwrap();
    let w = Tensor::from_vec(&[1, 1, 2, 2], vec![-1., 2., 0., 1.]).unwrap();
    let y = conv2d(&x, &w, None, (1, 1), (0, 0), (1, 1), 1).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(y.as_slice(), &[-3., 1., 6., 4., 5., -1., -1., 1., 6.]);
    // The same through the lowered (im2col) path, which the depthwise path
    // (one input channel) would otherwise take.
    let g = Conv2dGeometry::new(&[1, 1, 4, 4], &[1, 1, 2, 2], (1, 1), (0, 0), (1, 1), 1).unwrap();
    let mut out = [0.0; 9];
    lowered::forward(&mut out, x.as_slice(), w.as_slice(), None, &Dims::new(&g));
    assert_eq!(out, [-3., 1., 6., 4., 5., -1., -1., 1., 6.]);
}

/// Every case, every strategy: thread counts 1, 2 and 4 (batch-parallel and
/// inside-an-image paths), plus the im2col path with one row per band, all
/// against the f64 reference.
#[test]
fn matches_naive_reference_on_grid() {
    for (ci, case) in GRID.iter().enumerate() {
        let g = case.geometry();
        let (x, w, b) = data(&g, 100 + ci as u64);
        let dy = projection(g.output_shape().iter().product(), 200 + ci as u64);
        let y_ref = naive_forward(&x, &w, Some(&b), &g);
        let (dx_ref, dw_ref, db_ref) = naive_backward(&dy, &x, &w, &g);
        let acc0 = 0.5;
        let shift = |v: &[f64]| v.iter().map(|&a| a + acc0 as f64).collect::<Vec<_>>();
        for threads in [1, 2, 4] {
            let r = pool(threads).install(|| run_public(&x, &w, &b, &dy, &g, acc0));
            let tag = format!("{case:?}, {threads} threads");
            assert_close("out", &tag, &r.y, &y_ref);
            assert_close("grad_input", &tag, &r.dx, &dx_ref);
            assert_close("grad_weight", &tag, &r.dw, &shift(&dw_ref));
            assert_close("grad_bias", &tag, &r.db, &shift(&db_ref));
        }
        for (what, tweak) in TWEAKS {
            let r = run_lowered(&x, &w, &b, &dy, &g, tweak);
            let tag = format!("{case:?}, {what}");
            assert_close("out", &tag, &r.y, &y_ref);
            assert_close("grad_input", &tag, &r.dx, &dx_ref);
            assert_close("grad_weight", &tag, &r.dw, &dw_ref);
            assert_close("grad_bias", &tag, &r.db, &db_ref);
        }
    }
}

/// Layers big enough that the default band sizes split them (64 channels of
/// 3×3 over a 17 × 24 output: several bands of either im2col; a 1×1 over 408
/// positions), with and without the input gradient.
#[test]
fn large_layers_with_default_bands_match_reference() {
    let three = Conv2dGeometry::new(&[2, 64, 17, 24], &[8, 64, 3, 3], (1, 1), (1, 1), (1, 1), 1);
    let one = Conv2dGeometry::new(&[2, 16, 17, 24], &[8, 16, 1, 1], (1, 1), (0, 0), (1, 1), 1);
    for g in [three.unwrap(), one.unwrap()] {
        let (x, w, b) = data(&g, 7);
        let dy = projection(g.output_shape().iter().product(), 8);
        let y_ref = naive_forward(&x, &w, Some(&b), &g);
        let (dx_ref, dw_ref, db_ref) = naive_backward(&dy, &x, &w, &g);
        for threads in [1, 2] {
            let r = pool(threads).install(|| run_public(&x, &w, &b, &dy, &g, 0.0));
            assert_close("out", &g, &r.y, &y_ref);
            assert_close("grad_input", &g, &r.dx, &dx_ref);
            assert_close("grad_weight", &g, &r.dw, &dw_ref);
            assert_close("grad_bias", &g, &r.db, &db_ref);
            let mut dw = vec![0.0; w.len()];
            pool(threads)
                .install(|| conv2d_backward(None, Some(&mut dw), None, &dy, &x, &w, &g).unwrap());
            assert_close("grad_weight alone", &g, &dw, &dw_ref);
        }
        let r = run_lowered(&x, &w, &b, &dy, &g, |d| d.padded_grid = false);
        assert_close("out, row-by-row im2col", &g, &r.y, &y_ref);
        assert_close("grad_input, row-by-row im2col", &g, &r.dx, &dx_ref);
        assert_close("grad_weight, row-by-row im2col", &g, &r.dw, &dw_ref);
    }
}

/// Finite differences of `Σ conv(x, w, b) · r` for every gradient, on a case
/// of each code path: padded-grid im2col (dense and grouped), row-by-row
/// im2col (strided + dilated, grouped), 1×1 fast path, 1×1 strided, depthwise
/// (stride 1, stride 2 with multiplier 2, single input channel).
#[test]
fn gradients_match_finite_differences() {
    let picks = [0, 3, 6, 9, 10, 12, 13, 14, 16, 17, 19];
    let cfg = GradCheck {
        eps: 5e-2, // the loss is linear in each argument: no truncation error
        ..GradCheck::default()
    };
    for &ci in &picks {
        let case = GRID[ci];
        let g = case.geometry();
        let (x, w, b) = data(&g, 300 + ci as u64);
        let r = projection(g.output_shape().iter().product(), 400 + ci as u64);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; r.len()];
            conv2d_forward(&mut y, x, w, Some(b), &g).unwrap();
            project(&y, &r)
        };
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; b.len()];
        conv2d_backward(Some(&mut dx), Some(&mut dw), Some(&mut db), &r, &x, &w, &g).unwrap();
        check_gradient(|v| loss(v, &w, &b), &x, &dx, cfg)
            .unwrap_or_else(|e| panic!("grad_input {case:?}: {e}"));
        check_gradient(|v| loss(&x, v, &b), &w, &dw, cfg)
            .unwrap_or_else(|e| panic!("grad_weight {case:?}: {e}"));
        check_gradient(|v| loss(&x, &w, v), &b, &db, cfg)
            .unwrap_or_else(|e| panic!("grad_bias {case:?}: {e}"));
    }
}

#[test]
fn runs_are_bit_identical() {
    for &ci in &[1, 2, 8, 10, 12, 16] {
        let g = GRID[ci].geometry();
        let (x, w, b) = data(&g, 500);
        let dy = projection(g.output_shape().iter().product(), 501);
        for threads in [2, 3] {
            let p = pool(threads);
            let a = p.install(|| run_public(&x, &w, &b, &dy, &g, 0.0));
            let c = p.install(|| run_public(&x, &w, &b, &dy, &g, 0.0));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.y), bits(&c.y), "{:?}", GRID[ci]);
            assert_eq!(bits(&a.dx), bits(&c.dx), "{:?}", GRID[ci]);
            assert_eq!(bits(&a.dw), bits(&c.dw), "{:?}", GRID[ci]);
            assert_eq!(bits(&a.db), bits(&c.db), "{:?}", GRID[ci]);
        }
    }
}

#[test]
fn only_the_requested_gradients_are_touched() {
    let g = GRID[2].geometry();
    let (x, w, _) = data(&g, 9);
    let dy = projection(g.output_shape().iter().product(), 10);
    let mut full = (vec![0.0; x.len()], vec![0.0; w.len()]);
    conv2d_backward(Some(&mut full.0), Some(&mut full.1), None, &dy, &x, &w, &g).unwrap();
    let mut dx = vec![0.0; x.len()];
    conv2d_backward(Some(&mut dx), None, None, &dy, &x, &w, &g).unwrap();
    assert_eq!(dx, full.0);
    let mut dw = vec![0.0; w.len()];
    conv2d_backward(None, Some(&mut dw), None, &dy, &x, &w, &g).unwrap();
    assert_eq!(dw, full.1);
}

#[test]
fn bad_shapes_are_errors_naming_the_shapes() {
    let x = Tensor::zeros(&[2, 3, 8, 8]);
    // Channel mismatch.
    let e = conv2d(
        &x,
        &Tensor::zeros(&[4, 2, 3, 3]),
        None,
        (1, 1),
        (0, 0),
        (1, 1),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("[2, 3, 8, 8]") && e.contains("[4, 2, 3, 3]"),
        "{e}"
    );
    // Window larger than the padded input.
    let e = conv2d(
        &x,
        &Tensor::zeros(&[4, 3, 11, 3]),
        None,
        (1, 1),
        (1, 1),
        (1, 1),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("does not fit") && e.contains("[4, 3, 11, 3]"),
        "{e}"
    );
    // Groups that do not divide the channels.
    let e = conv2d(
        &x,
        &Tensor::zeros(&[4, 1, 3, 3]),
        None,
        (1, 1),
        (0, 0),
        (1, 1),
        2,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("groups (2)") && e.contains("[2, 3, 8, 8]"),
        "{e}"
    );
    // Wrong bias.
    let e = conv2d(
        &x,
        &Tensor::zeros(&[4, 3, 3, 3]),
        Some(&Tensor::zeros(&[3])),
        (1, 1),
        (0, 0),
        (1, 1),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("[4]") && e.contains("[3]"), "{e}");

    // Short and long slices, forward and backward.
    let g = Conv2dGeometry::new(&[2, 3, 8, 8], &[4, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1).unwrap();
    let (x, w, b) = data(&g, 1);
    let y_len = 2 * 4 * 6 * 6;
    let mut y = vec![0.0; y_len];
    let fwd = |y: &mut [f32], x: &[f32], w: &[f32], b: &[f32]| {
        conv2d_forward(y, x, w, Some(b), &g)
            .unwrap_err()
            .to_string()
    };
    let e = fwd(&mut y[..y_len - 1], &x, &w, &b);
    assert!(
        e.contains("length of out")
            && e.contains("[2, 4, 6, 6]")
            && e.contains(&format!("{}", y_len - 1)),
        "{e}"
    );
    let e = fwd(&mut y, &x[1..], &w, &b);
    assert!(
        e.contains("length of input") && e.contains("[2, 3, 8, 8]"),
        "{e}"
    );
    let e = fwd(&mut y, &x, &w[..5], &b);
    assert!(
        e.contains("length of weight") && e.contains("[4, 3, 3, 3]"),
        "{e}"
    );
    let e = fwd(&mut y, &x, &w, &b[..3]);
    assert!(e.contains("length of bias") && e.contains("[4]"), "{e}");

    let dy = vec![0.0; y_len];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = [0.0; 4];
    let e = conv2d_backward(Some(&mut dx[1..]), None, None, &dy, &x, &w, &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("length of grad_input") && e.contains("[2, 3, 8, 8]"),
        "{e}"
    );
    let e = conv2d_backward(None, Some(&mut dw[1..]), None, &dy, &x, &w, &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("length of grad_weight") && e.contains("[4, 3, 3, 3]"),
        "{e}"
    );
    let e = conv2d_backward(None, None, Some(&mut db[1..]), &dy, &x, &w, &g)
        .unwrap_err()
        .to_string();
    assert!(e.contains("length of grad_bias"), "{e}");
    let e = conv2d_backward(Some(&mut dx), None, None, &dy[1..], &x, &w, &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("length of grad_out") && e.contains("[2, 4, 6, 6]"),
        "{e}"
    );

    // A hand-built geometry whose output size does not follow from the rest.
    let mut bad = g;
    bad.out_h += 1;
    let mut y2 = vec![0.0; 2 * 4 * 7 * 6];
    let e = conv2d_forward(&mut y2, &x, &w, None, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inconsistent geometry"), "{e}");
}

#[test]
fn empty_batch_and_channel_free_inputs() {
    // Batch 0: nothing to do, no error.
    let g = Conv2dGeometry::new(&[0, 3, 5, 5], &[2, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1).unwrap();
    let w = vec![1.0; 54];
    conv2d_forward(&mut [], &[], &w, Some(&[1.0, 2.0]), &g).unwrap();
    let mut dw = vec![0.0; 54];
    conv2d_backward(Some(&mut []), Some(&mut dw), None, &[], &[], &w, &g).unwrap();
    assert!(dw.iter().all(|&v| v == 0.0));
    // A zero-width image seen only through padding: the output is the bias.
    let g = Conv2dGeometry::new(&[1, 1, 2, 0], &[2, 1, 1, 1], (1, 1), (0, 1), (1, 1), 1).unwrap();
    let mut y = vec![f32::NAN; 2 * 2 * 2];
    conv2d_forward(&mut y, &[], &[1.0, 1.0], Some(&[3.0, 4.0]), &g).unwrap();
    assert_eq!(y, [3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
}

#[test]
fn partial_weight_gradients_add_in_chunk_order_at_any_size() {
    for len in [10, 100_003] {
        let mut rng = Rng::seed_from(len as u64);
        let partials = random(3 * len, &mut rng);
        let start = random(len, &mut rng);
        let mut dw = start.clone();
        lowered::add_partials(&mut dw, &partials);
        for i in 0..len {
            let want = ((start[i] + partials[i]) + partials[len + i]) + partials[2 * len + i];
            assert_eq!(dw[i].to_bits(), want.to_bits(), "len {len}, element {i}");
        }
    }
}

/// The depthwise kernels as each SIMD level instantiates them (16 or 8 floats
/// per vector, fused multiply-adds or not) — including AVX-512's on a CPU
/// without it — against the naive reference over the grid's depthwise cases
/// and ConvNeXt-like and wide planes.
#[test]
fn depthwise_matches_reference_at_every_simd_instantiation() {
    use super::depthwise::instantiations::{backward_with, forward_with};
    type Forward = fn(&mut [f32], &[f32], &[f32], Option<&[f32]>, &Conv2dGeometry);
    type Backward = fn(&mut [f32], &mut [f32], &[f32], &[f32], &[f32], &Conv2dGeometry);
    let variants: [(&str, Forward, Backward); 4] = [
        (
            "16 lanes, fma (avx512)",
            forward_with::<16, true>,
            backward_with::<16, true>,
        ),
        (
            "8 lanes, fma (avx2)",
            forward_with::<8, true>,
            backward_with::<8, true>,
        ),
        (
            "8 lanes, no fma (baseline)",
            forward_with::<8, false>,
            backward_with::<8, false>,
        ),
        (
            "16 lanes, no fma",
            forward_with::<16, false>,
            backward_with::<16, false>,
        ),
    ];
    let extra = [
        Case::new(1, 3, 3, (14, 14), (7, 7), (1, 1), (3, 3), (1, 1), 3),
        Case::new(2, 2, 2, (9, 70), (5, 5), (1, 1), (2, 2), (1, 1), 2),
        Case::new(1, 2, 2, (8, 40), (3, 3), (2, 2), (1, 1), (1, 1), 2),
    ];
    let cases = GRID.iter().chain(&extra).filter(|c| c.groups == c.c);
    for (i, case) in cases.enumerate() {
        let g = case.geometry();
        let (x, w, b) = data(&g, 900 + i as u64);
        let dy = random(
            g.output_shape().iter().product(),
            &mut Rng::seed_from(950 + i as u64),
        );
        let want_y = naive_forward(&x, &w, Some(&b), &g);
        let (want_dx, want_dw, _) = naive_backward(&dy, &x, &w, &g);
        for (name, forward, backward) in variants {
            let what = format!("{name}: {case:?}");
            let mut y = vec![f32::NAN; want_y.len()];
            forward(&mut y, &x, &w, Some(&b), &g);
            assert_close("y", &what, &y, &want_y);
            let mut dx = vec![f32::NAN; x.len()];
            let mut dw = vec![0.0; w.len()];
            backward(&mut dx, &mut dw, &dy, &x, &w, &g);
            assert_close("dx", &what, &dx, &want_dx);
            assert_close("dw", &what, &dw, &want_dw);
        }
    }
}
