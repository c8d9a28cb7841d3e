//! Properties of `conv2d` through the public API that tie its strategies
//! together: a grouped convolution is the dense convolutions of its groups
//! side by side, a depthwise one is a grouped one, a strided one samples the
//! stride-1 output, a 1×1 identity returns its input, and a convolution is
//! linear. Each side of an equality runs a different code path (im2col on the
//! padded grid, row-by-row im2col, 1×1 sgemm, depthwise direct loops).

use convnet_tensor::kernels::conv2d::{conv2d, conv2d_backward};
use convnet_tensor::{Conv2dGeometry, Rng, Tensor};

fn close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let diff = a.max_abs_diff(b).unwrap();
    assert!(diff < 1e-4, "{what}: max difference {diff}");
}

/// Channels `from..to` of an NCHW tensor (or of an OIHW weight).
fn channels(t: &Tensor, from: usize, to: usize) -> Tensor {
    let s = t.shape();
    let plane: usize = s[2..].iter().product();
    let mut data = Vec::new();
    for n in 0..s[0] {
        data.extend_from_slice(&t.as_slice()[(n * s[1] + from) * plane..(n * s[1] + to) * plane]);
    }
    Tensor::from_vec(&[s[0], to - from, s[2], s[3]], data).unwrap()
}

/// Concatenation along the channel axis.
fn concat(parts: &[Tensor]) -> Tensor {
    let n = parts[0].shape()[0];
    let (h, w) = (parts[0].shape()[2], parts[0].shape()[3]);
    let c: usize = parts.iter().map(|p| p.shape()[1]).sum();
    let mut data = Vec::new();
    for i in 0..n {
        for p in parts {
            let len = p.shape()[1] * h * w;
            data.extend_from_slice(&p.as_slice()[i * len..(i + 1) * len]);
        }
    }
    Tensor::from_vec(&[n, c, h, w], data).unwrap()
}

#[test]
fn grouped_is_dense_per_group() {
    let mut rng = Rng::seed_from(1);
    // Stride 1 (padded grid) and stride 2 (row-by-row im2col).
    for stride in [(1, 1), (2, 2)] {
        let x = Tensor::randn(&[2, 6, 9, 11], 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&[9, 2, 3, 3], 0.0, 0.5, &mut rng);
        let b = Tensor::randn(&[9], 0.0, 1.0, &mut rng);
        let y = conv2d(&x, &w, Some(&b), stride, (1, 1), (1, 1), 3).unwrap();
        let parts: Vec<Tensor> = (0..3)
            .map(|g| {
                let bg = Tensor::from_slice(&[3], &b.as_slice()[3 * g..3 * g + 3]).unwrap();
                // Output channels 3g..3g+3: 3 x 2 x 3 x 3 = 54 weights.
                let wg =
                    Tensor::from_slice(&[3, 2, 3, 3], &w.as_slice()[54 * g..54 * (g + 1)]).unwrap();
                conv2d(
                    &channels(&x, 2 * g, 2 * g + 2),
                    &wg,
                    Some(&bg),
                    stride,
                    (1, 1),
                    (1, 1),
                    1,
                )
                .unwrap()
            })
            .collect();
        close(&y, &concat(&parts), &format!("groups 3, stride {stride:?}"));
    }
}

#[test]
fn depthwise_is_grouped_with_one_channel_per_group() {
    let mut rng = Rng::seed_from(2);
    let x = Tensor::randn(&[2, 4, 12, 10], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[8, 1, 5, 3], 0.0, 0.5, &mut rng);
    // Depthwise (multiplier 2, direct loops) against a dense convolution with
    // zeros outside each group (im2col + sgemm).
    let y = conv2d(&x, &w, None, (1, 1), (2, 1), (1, 2), 4).unwrap();
    let mut dense = vec![0.0f32; 8 * 4 * 15];
    for o in 0..8 {
        let c = o / 2;
        dense[(o * 4 + c) * 15..(o * 4 + c + 1) * 15]
            .copy_from_slice(&w.as_slice()[o * 15..(o + 1) * 15]);
    }
    let dense = Tensor::from_vec(&[8, 4, 5, 3], dense).unwrap();
    let y_dense = conv2d(&x, &dense, None, (1, 1), (2, 1), (1, 2), 1).unwrap();
    close(
        &y,
        &y_dense,
        "depthwise vs dense with block-diagonal weights",
    );
}

#[test]
fn strided_output_samples_the_stride_one_output() {
    let mut rng = Rng::seed_from(3);
    let x = Tensor::randn(&[1, 3, 13, 12], 0.0, 1.0, &mut rng);
    for (w_shape, groups) in [([5, 3, 3, 3], 1), ([3, 1, 3, 3], 3)] {
        let w = Tensor::randn(&w_shape, 0.0, 0.5, &mut rng);
        let full = conv2d(&x, &w, None, (1, 1), (1, 1), (1, 1), groups).unwrap();
        let strided = conv2d(&x, &w, None, (2, 3), (1, 1), (1, 1), groups).unwrap();
        let [_, o, oh, ow] = strided.dims4("test").unwrap();
        for c in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let a = strided.at(&[0, c, i, j]);
                    let b = full.at(&[0, c, 2 * i, 3 * j]);
                    assert!(
                        (a - b).abs() < 1e-4,
                        "groups {groups} at {c},{i},{j}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn one_by_one_identity_returns_the_input_and_its_gradient() {
    let mut rng = Rng::seed_from(4);
    let x = Tensor::randn(&[3, 5, 7, 6], 0.0, 1.0, &mut rng);
    let mut eye = Tensor::zeros(&[5, 5, 1, 1]);
    for c in 0..5 {
        eye.as_slice_mut()[c * 5 + c] = 1.0;
    }
    let y = conv2d(&x, &eye, None, (1, 1), (0, 0), (1, 1), 1).unwrap();
    close(&y, &x, "identity 1x1");
    let g = Conv2dGeometry::new(x.shape(), eye.shape(), (1, 1), (0, 0), (1, 1), 1).unwrap();
    let dy = Tensor::randn(x.shape(), 0.0, 1.0, &mut rng);
    let mut dx = Tensor::zeros(x.shape());
    conv2d_backward(
        Some(dx.as_slice_mut()),
        None,
        None,
        dy.as_slice(),
        x.as_slice(),
        eye.as_slice(),
        &g,
    )
    .unwrap();
    close(&dx, &dy, "identity 1x1 input gradient");
}

#[test]
fn convolution_is_linear_in_its_input() {
    let mut rng = Rng::seed_from(5);
    for (w_shape, stride, padding, groups) in [
        ([6, 3, 3, 3], (1, 1), (1, 1), 1),
        ([6, 3, 2, 2], (2, 2), (0, 0), 1),
        ([6, 1, 7, 7], (1, 1), (3, 3), 6),
        ([6, 6, 1, 1], (1, 1), (0, 0), 1),
    ] {
        let c = w_shape[1] * groups;
        let x1 = Tensor::randn(&[2, c, 10, 9], 0.0, 1.0, &mut rng);
        let x2 = Tensor::randn(&[2, c, 10, 9], 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&w_shape, 0.0, 0.5, &mut rng);
        let conv = |x: &Tensor| conv2d(x, &w, None, stride, padding, (1, 1), groups).unwrap();
        let mut sum = x1.clone();
        sum.axpy(2.0, &x2).unwrap();
        let mut expected = conv(&x1);
        expected.axpy(2.0, &conv(&x2)).unwrap();
        close(
            &conv(&sum),
            &expected,
            &format!("linearity, weight {w_shape:?}"),
        );
    }
}
