//! Winograd forward pass against a direct f64 sum: odd sizes, every padding,
//! bias or not, block sizes and parallel modes, with an error bound relative
//! to the sum of the absolute values of each output's terms.

use super::*;
use crate::kernels::conv2d::{conv2d_forward, lowered};
use crate::Rng;

/// `(value, Σ|term|)` of every output, in f64, straight from the definition.
fn reference(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<(f64, f64)> {
    let (c_n, o_n) = (g.in_channels, g.out_channels);
    let mut out = Vec::with_capacity(g.batch * o_n * g.out_h * g.out_w);
    for n in 0..g.batch {
        for o in 0..o_n {
            let b = b.map_or(0.0, |b| b[o] as f64);
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let (mut v, mut abs) = (b, b.abs());
                    for c in 0..c_n {
                        for ki in 0..3 {
                            for kj in 0..3 {
                                let ih = (oh + ki) as isize - g.pad_h as isize;
                                let iw = (ow + kj) as isize - g.pad_w as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih >= g.in_h as isize
                                    || iw >= g.in_w as isize
                                {
                                    continue;
                                }
                                let xi =
                                    ((n * c_n + c) * g.in_h + ih as usize) * g.in_w + iw as usize;
                                let term =
                                    x[xi] as f64 * w[((o * c_n + c) * 3 + ki) * 3 + kj] as f64;
                                v += term;
                                abs += term.abs();
                            }
                        }
                    }
                    out.push((v, abs));
                }
            }
        }
    }
    out
}

/// Largest `|got − want| / Σ|term|` (the error relative to what rounding
/// of the terms can give), and the largest absolute error.
fn errors(got: &[f32], want: &[(f64, f64)]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let mut rel: f64 = 0.0;
    let mut abs: f64 = 0.0;
    for (&a, &(v, s)) in got.iter().zip(want) {
        assert!(a.is_finite(), "non-finite output {a}");
        let e = (a as f64 - v).abs();
        abs = abs.max(e);
        rel = rel.max(e / s.max(1e-30));
    }
    (rel, abs)
}

fn geometry(
    n: usize,
    c: usize,
    o: usize,
    hw: (usize, usize),
    pad: (usize, usize),
) -> Conv2dGeometry {
    Conv2dGeometry::new(&[n, c, hw.0, hw.1], &[o, c, 3, 3], (1, 1), pad, (1, 1), 1)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn random(len: usize, lo: f32, hi: f32, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(lo, hi)).collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Error bound per variant, relative to `Σ|term|`: a few times the f32
/// rounding of a long sum for F(2×2), more for F(4×4)'s larger coefficients.
fn bound(tile: Tile) -> f64 {
    match tile {
        Tile::F2 => 2e-6,
        Tile::F4 => 1e-5,
    }
}

#[test]
fn matches_direct_sum_on_odd_shapes() {
    // (batch, C, O, (H, W), (pad_h, pad_w))
    let cases = [
        (1, 3, 2, (1, 1), (1, 1)),
        (2, 5, 7, (7, 9), (1, 1)),
        (1, 4, 3, (5, 5), (0, 0)),
        (3, 6, 5, (11, 6), (2, 2)),
        (2, 7, 9, (3, 13), (0, 2)),
        (1, 9, 4, (2, 17), (2, 1)),
        (2, 33, 35, (10, 14), (1, 1)),
    ];
    let plans = [(64, false), (1, false), (1, true), (1000, true)];
    for (ci, &(n, c, o, hw, pad)) in cases.iter().enumerate() {
        let g = geometry(n, c, o, hw, pad);
        assert!(applies(&g), "{g:?}");
        let mut rng = Rng::seed_from(ci as u64);
        let x = random(n * c * hw.0 * hw.1, -1.0, 1.0, &mut rng);
        let w = random(o * c * 9, -1.0, 1.0, &mut rng);
        let b = random(o, -1.0, 1.0, &mut rng);
        for with_bias in [true, false] {
            let bias = with_bias.then_some(&b[..]);
            let want = reference(&x, &w, bias, &g);
            for tile in [Tile::F2, Tile::F4] {
                for &(tiles_per_block, force_inner_parallel) in &plans {
                    let plan = Plan {
                        tile,
                        tiles_per_block,
                        force_inner_parallel,
                    };
                    for threads in [1, 2] {
                        let mut y = vec![f32::NAN; want.len()];
                        pool(threads).install(|| forward(&mut y, &x, &w, bias, &g, &plan));
                        let (rel, _) = errors(&y, &want);
                        assert!(
                            rel <= bound(tile),
                            "{g:?} {plan:?} bias {with_bias} threads {threads}: relative error {rel:e}"
                        );
                    }
                }
            }
        }
    }
}

/// Inputs of a layer deep in a network: ReLU outputs (half zeros, the rest
/// spread like |N(0, 1)|), and He-initialised weights.
fn layer_data(g: &Conv2dGeometry, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::seed_from(seed);
    let x_len = g.input_shape().iter().product();
    let x = (0..x_len).map(|_| rng.normal().max(0.0)).collect();
    let std = (2.0 / (g.in_channels * 9) as f32).sqrt();
    let w = (0..g.out_channels * g.in_channels * 9)
        .map(|_| rng.normal() * std)
        .collect();
    let b = random(g.out_channels, -0.1, 0.1, &mut rng);
    (x, w, b)
}

/// On a ResNet-like layer with realistic data, each variant's error against
/// the f64 sum stays within a small factor of the direct (im2col) path's.
#[test]
fn error_on_a_network_layer_is_close_to_direct() {
    let g = geometry(1, 64, 64, (14, 14), (1, 1));
    let (x, w, b) = layer_data(&g, 3);
    let want = reference(&x, &w, Some(&b), &g);
    let mut y = vec![0.0; want.len()];
    lowered::forward(&mut y, &x, &w, Some(&b), &lowered::Dims::new(&g));
    let (_, direct) = errors(&y, &want);
    let scale = want.iter().fold(0.0f64, |m, &(v, _)| m.max(v.abs()));
    for (tile, factor) in [(Tile::F2, 4.0), (Tile::F4, 16.0)] {
        let plan = Plan {
            tile,
            tiles_per_block: TILES_PER_BLOCK,
            force_inner_parallel: false,
        };
        forward(&mut y, &x, &w, Some(&b), &g, &plan);
        let (_, abs) = errors(&y, &want);
        assert!(
            abs <= factor * direct.max(1e-7 * scale) && abs <= 1e-4 * scale,
            "{tile:?}: max abs error {abs:e}, direct {direct:e}, output scale {scale}"
        );
    }
}

/// The public entry point takes the Winograd path for a layer with enough
/// channels and tiles, gives the same result as calling it directly, and
/// still errors on bad lengths.
#[test]
fn public_forward_dispatches_and_checks_lengths() {
    let g = geometry(2, 32, 40, (20, 21), (1, 1));
    let plan = Plan::choose(&g).expect("32 → 40 channels, 3×3, 220 tiles: Winograd");
    assert_eq!(plan.tile, Tile::F2, "60 F(4×4) tiles are too few");
    // ResNet's layers: F(4×4) on 64 channels, F(2×2) above while the tiles pay.
    let pick = |n, c, hw| Plan::choose(&geometry(n, c, c, (hw, hw), (1, 1))).map(|p| p.tile);
    assert_eq!(pick(1, 64, 56), Some(Tile::F4));
    assert_eq!(pick(1, 128, 28), Some(Tile::F2));
    assert_eq!(pick(1, 256, 14), None);
    assert_eq!(pick(16, 512, 7), Some(Tile::F2));
    // Too few channels, strided, grouped: not Winograd.
    assert!(Plan::choose(&geometry(2, 16, 40, (20, 21), (1, 1))).is_none());
    let strided =
        Conv2dGeometry::new(&[2, 32, 20, 21], &[40, 32, 3, 3], (2, 2), (1, 1), (1, 1), 1).unwrap();
    assert!(Plan::choose(&strided).is_none());
    let grouped =
        Conv2dGeometry::new(&[2, 64, 20, 21], &[64, 32, 3, 3], (1, 1), (1, 1), (1, 1), 2).unwrap();
    assert!(Plan::choose(&grouped).is_none());
    let (x, w, b) = layer_data(&g, 5);
    let mut y = vec![f32::NAN; g.output_shape().iter().product()];
    conv2d_forward(&mut y, &x, &w, Some(&b), &g).unwrap();
    let mut direct = vec![f32::NAN; y.len()];
    forward(&mut direct, &x, &w, Some(&b), &g, &plan);
    assert_eq!(y, direct);
    let (rel, _) = errors(&y, &reference(&x, &w, Some(&b), &g));
    assert!(rel <= bound(plan.tile), "relative error {rel:e}");
    let e = conv2d_forward(&mut y, &x[1..], &w, Some(&b), &g)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("length of input") && e.contains("[2, 32, 20, 21]"),
        "{e}"
    );
    let e = conv2d_forward(&mut y, &x, &w, Some(&b[1..]), &g)
        .unwrap_err()
        .to_string();
    assert!(e.contains("length of bias"), "{e}");
}

/// Error figures of both variants and the direct path on VGG- and
/// ResNet-like layers (`cargo test --release -p convnet-tensor winograd_error_figures -- --ignored --nocapture`).
#[test]
#[ignore = "prints figures; slow in debug builds"]
fn winograd_error_figures() {
    for (c, o, hw) in [
        (64, 64, 56),
        (128, 128, 28),
        (256, 256, 14),
        (512, 512, 14),
        (512, 512, 7),
    ] {
        let g = geometry(1, c, o, (hw, hw), (1, 1));
        let (x, w, b) = layer_data(&g, 11);
        let want = reference(&x, &w, Some(&b), &g);
        let scale = want.iter().fold(0.0f64, |m, &(v, _)| m.max(v.abs()));
        let mut y = vec![0.0; want.len()];
        lowered::forward(&mut y, &x, &w, Some(&b), &lowered::Dims::new(&g));
        let (rel, abs) = errors(&y, &want);
        let mut line =
            format!("{c}->{o} {hw}x{hw} (max |y| {scale:.2}): direct abs {abs:.2e} rel {rel:.2e}");
        for tile in [Tile::F2, Tile::F4] {
            let plan = Plan {
                tile,
                tiles_per_block: TILES_PER_BLOCK,
                force_inner_parallel: false,
            };
            forward(&mut y, &x, &w, Some(&b), &g, &plan);
            let (rel, abs) = errors(&y, &want);
            line += &format!(", {tile:?} abs {abs:.2e} rel {rel:.2e}");
        }
        println!("{line}");
    }
}

/// Times of the Winograd and direct forward passes, alternated, on layers of
/// ResNet and VGG (`cargo test --release -p convnet-tensor winograd_timing -- --ignored --nocapture`;
/// `WINO_REPS` repetitions).
#[test]
#[ignore = "prints timings; meaningful in release builds only"]
fn winograd_timing() {
    let reps: usize = std::env::var("WINO_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let layers = [
        (8, 64, 64, 56),
        (1, 64, 64, 56),
        (1, 128, 128, 28),
        (1, 256, 256, 14),
        (1, 512, 512, 7),
        (16, 512, 512, 7),
        (1, 512, 512, 14),
        (1, 64, 64, 224),
    ];
    let tpbs: Vec<usize> = std::env::var("WINO_TPB")
        .map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|_| vec![16, 64, 256]);
    let only: Option<usize> = std::env::var("WINO_LAYER")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, &(n, c, o, hw)) in layers.iter().enumerate() {
        if only.is_some_and(|k| k != i) {
            continue;
        }
        let g = geometry(n, c, o, (hw, hw), (1, 1));
        let (x, w, b) = layer_data(&g, 1);
        let mut y = vec![0.0; g.output_shape().iter().product()];
        let threads: usize = std::env::var("WINO_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        let time = |f: &mut (dyn FnMut(&mut [f32]) + Send)| {
            let mut best = f64::MAX;
            let mut y = y.clone();
            for _ in 0..reps {
                let t = std::time::Instant::now();
                pool(threads).install(|| f(&mut y));
                best = best.min(t.elapsed().as_secs_f64() * 1e3);
            }
            best
        };
        let d = lowered::Dims::new(&g);
        let direct = time(&mut |y| lowered::forward(y, &x, &w, Some(&b), &d));
        let mut line = format!("n{n} {c}->{o} {hw}x{hw}: direct {direct:.2} ms");
        for tile in [Tile::F2, Tile::F4] {
            for tpb in tpbs.iter().copied() {
                let plan = Plan {
                    tile,
                    tiles_per_block: tpb,
                    force_inner_parallel: false,
                };
                let t = time(&mut |y| forward(y, &x, &w, Some(&b), &g, &plan));
                line += &format!(", {tile:?}/{tpb} {t:.2}");
            }
        }
        forward(&mut y, &x, &w, Some(&b), &g, &Plan::choose(&g).unwrap());
        println!("{line}");
    }
}
