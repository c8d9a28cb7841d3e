//! The lecture's worked examples (`seed/lecture-cnn.md`) that involve the
//! pooling, activation and convolution kernels, as the lecture prints them.

use convnet_tensor::kernels::activation::{relu, relu_backward, relu_forward};
use convnet_tensor::kernels::conv2d::conv2d;
use convnet_tensor::kernels::pool::{max_pool2d, max_pool2d_backward, max_pool2d_with_indices};
use convnet_tensor::{Pool2dGeometry, Tensor};

/// A `[1, 1, rows, cols]` image from its rows.
fn image(rows: &[&[f32]]) -> Tensor {
    let data: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(&[1, 1, rows.len(), rows[0].len()], data).unwrap()
}

/// "Couche de pooling": 2x2 max-pooling with stride 2 of the 4x4 image 1..16.
#[test]
fn max_pooling_2x2_stride_2() {
    let x = image(&[
        &[1., 2., 3., 4.],
        &[5., 6., 7., 8.],
        &[9., 10., 11., 12.],
        &[13., 14., 15., 16.],
    ]);
    let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
    assert_eq!(y, image(&[&[6., 8.], &[14., 16.]]));

    // Backward: each output's gradient goes to the element that won its
    // window (6, 8, 14 and 16, at flat positions 5, 7, 13, 15).
    let (_, argmax) = max_pool2d_with_indices(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
    assert_eq!(argmax, [5, 7, 13, 15]);
    let g = Pool2dGeometry::new(x.shape(), (2, 2), (2, 2), (0, 0), false).unwrap();
    let mut grad_input = vec![f32::NAN; 16];
    max_pool2d_backward(&mut grad_input, &[1., 2., 3., 4.], &argmax, &g).unwrap();
    let mut want = [0.0f32; 16];
    want[5] = 1.;
    want[7] = 2.;
    want[13] = 3.;
    want[15] = 4.;
    assert_eq!(grad_input, want);
}

/// "Après ReLU": the convolution result with its negative values set to 0.
#[test]
fn relu_of_the_convolution_result() {
    let conv = image(&[&[-3., 1., 6.], &[4., 5., -1.], &[-1., 1., 6.]]);
    let y = relu(&conv);
    assert_eq!(y, image(&[&[0., 1., 6.], &[4., 5., 0.], &[0., 1., 6.]]));

    // Slice kernels: the gradient passes where the output is positive.
    let mut out = [0.0f32; 9];
    relu_forward(&mut out, conv.as_slice()).unwrap();
    assert_eq!(out, y.as_slice());
    let mut grad_in = [f32::NAN; 9];
    relu_backward(&mut grad_in, &[1.0; 9], &out).unwrap();
    assert_eq!(grad_in, [0., 1., 1., 1., 1., 0., 0., 1., 1.]);
}

/// "Couche de convolution — Exemple / Correction": the 4x4 input convolved
/// with the 2x2 filter [[-1, 2], [0, 1]] (stride 1, no padding, no bias)
/// gives the 3x3 result, then ReLU.
#[test]
fn convolution_then_relu() {
    let x = image(&[
        &[2., -1., -1., 3.],
        &[-2., 1., 2., -1.],
        &[0., 0., 2., 3.],
        &[2., -1., -3., 2.],
    ]);
    let filter = image(&[&[-1., 2.], &[0., 1.]]);
    let conv = conv2d(&x, &filter, None, (1, 1), (0, 0), (1, 1), 1).unwrap();
    // (4 + 2·0 − 2) / 1 + 1 = 3.
    assert_eq!(conv.shape(), &[1, 1, 3, 3]);
    assert_eq!(
        conv,
        image(&[&[-3., 1., 6.], &[4., 5., -1.], &[-1., 1., 6.]])
    );
    let activated = relu(&conv);
    assert_eq!(
        activated,
        image(&[&[0., 1., 6.], &[4., 5., 0.], &[0., 1., 6.]])
    );
}
