use super::windows::{relative_position_index, MASKED};
use super::*;
use crate::testing::{check_layer, pass_with_threads, random};

fn layer(
    dim: usize,
    heads: usize,
    window: usize,
    shift: usize,
    seed: u64,
) -> ShiftedWindowAttention {
    let mut rng = Rng::seed_from(seed);
    let cfg = ShiftedWindowAttentionConfig::new(dim, heads, window).shift(shift);
    let mut a = ShiftedWindowAttention::new(cfg, &mut rng).unwrap();
    // Biases and a bias table of order one, so that their role and their
    // gradients show.
    a.visit_params_mut("", &mut |name, p| {
        if name.ends_with("bias") || name == "relative_position_bias_table" {
            p.value = Tensor::randn(p.shape(), 0.0, 0.5, &mut rng);
        }
    });
    a
}

/// torchvision's algorithm written out in f64, step by step: pad, roll,
/// windows, mask from the region labels of the rolled map (as
/// `attn_mask[h_slice, w_slice] = count`), attention with the bias table,
/// windows back, roll back, crop.
fn reference(a: &ShiftedWindowAttention, x: &Tensor) -> Vec<f32> {
    let [n, h, w, c] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let cfg = a.config;
    let (win, heads) = (cfg.window_size.0, cfg.num_heads);
    let hd = c / heads;
    let (ph, pw) = (h.div_ceil(win) * win, w.div_ceil(win) * win);
    let sh = if win >= ph { 0 } else { cfg.shift_size.0 };
    let sw = if win >= pw { 0 } else { cfg.shift_size.1 };
    let wq = a.qkv.weight.value.as_slice();
    let bq = a.qkv.bias.as_ref().unwrap().value.as_slice();
    let wp = a.proj.weight.value.as_slice();
    let bp = a.proj.bias.as_ref().unwrap().value.as_slice();
    let table = a.relative_position_bias_table.value.as_slice();
    // Region labels of the rolled map, torchvision's slices.
    let slices = |p: usize, s: usize| -> Vec<(usize, usize)> {
        vec![(0, p - win), (p - win, p - s), (p - s, p)]
    };
    let mut label = vec![0usize; ph * pw];
    if sh + sw > 0 {
        let mut count = 0;
        for (h0, h1) in slices(ph, sh) {
            for (w0, w1) in slices(pw, sw) {
                for y in h0..h1 {
                    for xx in w0..w1 {
                        label[y * pw + xx] = count;
                    }
                }
                count += 1;
            }
        }
    }
    let mut y = vec![0.0f32; n * h * w * c];
    for img in 0..n {
        // Rolled padded map: rolled[p] = padded[(p + s) mod P].
        let pixel = |py: usize, px: usize| -> Vec<f64> {
            let (sy, sx) = ((py + sh) % ph, (px + sw) % pw);
            (0..c)
                .map(|ch| {
                    if sy < h && sx < w {
                        x.at(&[img, sy, sx, ch]) as f64
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        for by in 0..ph / win {
            for bx in 0..pw / win {
                let coords: Vec<(usize, usize)> = (0..win * win)
                    .map(|t| (by * win + t / win, bx * win + t % win))
                    .collect();
                let qkv: Vec<Vec<f64>> = coords
                    .iter()
                    .map(|&(py, px)| {
                        let v = pixel(py, px);
                        (0..3 * c)
                            .map(|j| {
                                bq[j] as f64
                                    + (0..c).map(|i| wq[j * c + i] as f64 * v[i]).sum::<f64>()
                            })
                            .collect()
                    })
                    .collect();
                let t = coords.len();
                let mut ctx = vec![vec![0.0f64; c]; t];
                for head in 0..heads {
                    for i in 0..t {
                        let scores: Vec<f64> = (0..t)
                            .map(|j| {
                                let dot: f64 = (0..hd)
                                    .map(|k| qkv[i][head * hd + k] * qkv[j][c + head * hd + k])
                                    .sum();
                                let (dy, dx) = (
                                    coords[i].0 as isize - coords[j].0 as isize,
                                    coords[i].1 as isize - coords[j].1 as isize,
                                );
                                let row = (dy + win as isize - 1) as usize * (2 * win - 1)
                                    + (dx + win as isize - 1) as usize;
                                let (li, lj) = (
                                    label[coords[i].0 * pw + coords[i].1],
                                    label[coords[j].0 * pw + coords[j].1],
                                );
                                let mask = if li != lj { MASKED as f64 } else { 0.0 };
                                dot / (hd as f64).sqrt() + table[row * heads + head] as f64 + mask
                            })
                            .collect();
                        let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for k in 0..hd {
                            ctx[i][head * hd + k] = (0..t)
                                .map(|j| e[j] / z * qkv[j][2 * c + head * hd + k])
                                .sum();
                        }
                    }
                }
                for (i, &(py, px)) in coords.iter().enumerate() {
                    let (sy, sx) = ((py + sh) % ph, (px + sw) % pw);
                    if sy >= h || sx >= w {
                        continue;
                    }
                    for o in 0..c {
                        let v = bp[o] as f64
                            + (0..c)
                                .map(|k| wp[o * c + k] as f64 * ctx[i][k])
                                .sum::<f64>();
                        y[((img * h + sy) * w + sx) * c + o] = v as f32;
                    }
                }
            }
        }
    }
    y
}

#[test]
fn matches_torchvisions_algorithm_written_out() {
    // (n, h, w, c, heads, window, shift): no padding, padding, shift,
    // shift zeroed on an axis that one window covers, both axes covered.
    for (n, h, w, c, heads, win, shift) in [
        (1, 4, 4, 4, 2, 2, 0),
        (2, 4, 4, 4, 2, 2, 1),
        (1, 5, 7, 6, 3, 3, 1),
        (2, 3, 8, 4, 1, 3, 2),
        (1, 2, 2, 4, 2, 3, 1),
        (1, 7, 9, 4, 2, 7, 3),
    ] {
        let a = layer(c, heads, win, shift, 7);
        let x = random(&[n, h, w, c], 8);
        let want = Tensor::from_vec(&[n, h, w, c], reference(&a, &x)).unwrap();
        let got = a.infer(&x).unwrap();
        assert!(
            got.allclose(&want, 1e-4, 1e-5),
            "{:?}: max diff {}",
            (n, h, w, c, heads, win, shift),
            got.max_abs_diff(&want).unwrap()
        );
    }
}

#[test]
fn gradients_of_input_and_every_parameter() {
    // Shifted with padding (3×5 -> 4×6, masks), unshifted, and a window
    // covering the whole map (shift zeroed, padding tokens).
    check_layer(&mut layer(4, 2, 2, 1, 1), &random(&[2, 3, 5, 4], 2));
    check_layer(&mut layer(4, 2, 2, 0, 3), &random(&[1, 4, 4, 4], 4));
    check_layer(&mut layer(2, 1, 3, 1, 5), &random(&[2, 2, 3, 2], 6));
}

#[test]
fn relative_position_index_and_masks_equal_torchvisions() {
    // torchvision's `relative_position_index` for a 2×2 window.
    assert_eq!(
        relative_position_index(2, 2),
        [4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
    );
    let seven = relative_position_index(7, 7);
    assert_eq!(seven.len(), 2401);
    assert_eq!(*seven.iter().max().unwrap(), 168);
    assert!(
        (0..49).all(|i| seven[i * 49 + i] == 84),
        "the diagonal is offset (0, 0)"
    );
    // torchvision's masks (1 = masked) of a 4×4 map, window 2, shift 1.
    let g = WindowGeometry::new(4, 4, (2, 2), (1, 1));
    let masked: Vec<u8> = g
        .mask()
        .unwrap()
        .iter()
        .map(|&v| (v == MASKED) as u8)
        .collect();
    #[rustfmt::skip]
    let want = [
        0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        0, 1, 0, 1,  1, 0, 1, 0,  0, 1, 0, 1,  1, 0, 1, 0,
        0, 0, 1, 1,  0, 0, 1, 1,  1, 1, 0, 0,  1, 1, 0, 0,
        0, 1, 1, 1,  1, 0, 1, 1,  1, 1, 0, 1,  1, 1, 1, 0,
    ];
    assert_eq!(masked, want);
    // Padding and shift rules.
    let g = WindowGeometry::new(8, 3, (7, 7), (3, 3));
    assert_eq!((g.ph, g.pw, g.sh, g.sw, g.windows()), (14, 7, 3, 0, 2));
    assert!(WindowGeometry::new(7, 7, (7, 7), (3, 3)).mask().is_none());
    // Every pixel is in exactly one window.
    let mut seen: Vec<usize> = g.sources().into_iter().flatten().collect();
    seen.sort();
    assert_eq!(seen, (0..24).collect::<Vec<_>>());
}

#[test]
fn same_result_for_any_thread_count() {
    let mut a = layer(8, 4, 3, 1, 15);
    let x = random(&[2, 5, 6, 8], 16);
    assert_eq!(
        pass_with_threads(&mut a, &x, 1),
        pass_with_threads(&mut a, &x, 2)
    );
}

#[test]
fn names_buffer_copies_and_errors() {
    let mut rng = Rng::seed_from(0);
    for cfg in [
        ShiftedWindowAttentionConfig::new(0, 1, 7),
        ShiftedWindowAttentionConfig::new(6, 4, 7),
        ShiftedWindowAttentionConfig::new(6, 2, 0),
        ShiftedWindowAttentionConfig::new(6, 2, 7).shift(7),
    ] {
        let e = ShiftedWindowAttention::new(cfg, &mut rng).unwrap_err();
        assert!(matches!(e, LayerError::Config { .. }), "{cfg:?}: {e}");
    }
    let mut a = layer(4, 2, 2, 1, 1);
    let mut buffers = Vec::new();
    a.visit_buffers("attn", &mut |n, t| {
        buffers.push((n.to_string(), t.shape().to_vec()))
    });
    assert_eq!(
        buffers,
        [("attn.relative_position_index".to_string(), vec![16])]
    );
    assert_eq!(
        a.param_shapes()[0],
        ("relative_position_bias_table".to_string(), vec![9, 2])
    );
    assert_eq!(a.forward_macs(1, 3, 3), 16 * (4 * 16 + 2 * 4 * 4));
    let x = random(&[1, 3, 3, 4], 2);
    let copy = a.clone_boxed().unwrap();
    assert_eq!(copy.infer(&x).unwrap(), a.infer(&x).unwrap());
    for bad in [&[1, 3, 3][..], &[1, 3, 3, 5], &[1, 0, 3, 4]] {
        assert!(a.infer(&Tensor::zeros(bad)).is_err(), "{bad:?}");
        assert!(a.output_shape(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(a.backward(&x), Err(LayerError::NoCache { .. })));
    a.forward(&x).unwrap();
    assert!(a.backward(&Tensor::zeros(&[1, 3, 4, 4])).is_err());
    // A loaded index that is not a row of the table is an error, not a panic.
    a.visit_buffers_mut("", &mut |_, t| t.as_slice_mut()[3] = 9.0);
    let e = a.infer(&x).unwrap_err().to_string();
    assert!(e.contains("relative_position_index holds 9"), "{e}");
}
