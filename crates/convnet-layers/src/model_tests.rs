//! Whole-network tests: the lecture's networks built from the layers of this
//! crate (LeNet-5's summary, a small CNN trained to 100% accuracy), gradient
//! checks of containers made of real convolution blocks (ResNet, Inception,
//! ConvNeXt), and contract tests over every layer type (bad shapes, `infer`
//! versus `forward`, threads).

use convnet_tensor::kernels::softmax::softmax;
use convnet_tensor::{Rng, Tensor};

use convnet_tensor::gradcheck::GradCheck;

use crate::testing::{check_layer, check_layer_with, random, random_distinct};

/// Finite differences for deep compositions with batch statistics or
/// LayerNorm over few values: their curvature makes ε = 1e-2 too coarse (a
/// second-order error of a few percent), ε = 1e-3 is still well above f32
/// noise.
const DEEP: GradCheck = GradCheck {
    eps: 1e-3,
    rtol: 1e-2,
    atol: 1e-3,
};
use crate::*;

fn boxed(l: impl Layer + 'static) -> Box<dyn Layer> {
    Box::new(l)
}

fn conv(cfg: Conv2dConfig, rng: &mut Rng) -> Conv2d {
    Conv2d::new(cfg, rng).unwrap()
}

/// LeNet-5 as the lecture draws it: conv 6@5×5 (padding 2) → pool → conv
/// 16@5×5 → pool → dense 120 → 84 → 10 (tanh and average pooling, as in
/// 1998).
fn lenet5(rng: &mut Rng) -> Sequential {
    Sequential::default()
        .with(conv(Conv2dConfig::new(1, 6, 5).padding(2), rng))
        .with(Tanh::new())
        .with(AvgPool2d::new(Pool2dConfig::new(2)).unwrap())
        .with(conv(Conv2dConfig::new(6, 16, 5), rng))
        .with(Tanh::new())
        .with(AvgPool2d::new(Pool2dConfig::new(2)).unwrap())
        .with(Flatten::new())
        .with(Linear::new(LinearConfig::new(400, 120), rng).unwrap())
        .with(Tanh::new())
        .with(Linear::new(LinearConfig::new(120, 84), rng).unwrap())
        .with(Tanh::new())
        .with(Linear::new(LinearConfig::new(84, 10), rng).unwrap())
}

#[test]
fn lenet5_summary_has_61706_parameters_and_the_lectures_shapes() {
    let net = lenet5(&mut Rng::seed_from(0));
    let s = summary(&net, &[1, 1, 28, 28]).unwrap();
    assert_eq!(s.total_params, 61_706);
    assert_eq!(s.trainable_params, 61_706);
    assert_eq!(s.param_bytes, 61_706 * 4);
    let flow: Vec<Vec<usize>> = vec![
        vec![6, 28, 28],
        vec![6, 14, 14],
        vec![16, 10, 10],
        vec![16, 5, 5],
        vec![400],
        vec![120],
        vec![84],
        vec![10],
    ];
    assert_eq!(s.shape_flow(), flow);
    assert_eq!(s.output_shape, vec![1, 10]);
    let per_layer: Vec<usize> = s.rows.iter().map(|r| r.params).filter(|&p| p > 0).collect();
    assert_eq!(per_layer, [156, 2416, 48120, 10164, 850]);
    // Activations: every leaf output, 4 bytes each.
    let leaves: usize = [
        6 * 28 * 28 * 2,
        6 * 14 * 14,
        16 * 10 * 10 * 2,
        16 * 5 * 5,
        400,
        120 * 2,
        84 * 2,
        10,
    ]
    .iter()
    .sum();
    assert_eq!(s.activation_bytes, leaves * 4);
    let text = s.to_string();
    for needle in [
        "Total params: 61,706",
        "0 (Conv2d)",
        "[1, 6, 28, 28]",
        "48,120",
        "Params size (MB): 0.24",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
}

/// Four classes of 8×8 images: a bright 3×3 blob in one of the four
/// quadrants, at a random position inside it, plus noise.
fn blobs(n: usize, rng: &mut Rng) -> (Tensor, Vec<usize>) {
    let mut x = Tensor::randn(&[n, 1, 8, 8], 0.0, 0.3, rng);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 4;
        let (r0, c0) = ((class / 2) * 4, (class % 2) * 4);
        let (dr, dc) = (rng.below(2), rng.below(2));
        let img = &mut x.as_slice_mut()[i * 64..(i + 1) * 64];
        for r in 0..3 {
            for c in 0..3 {
                img[(r0 + dr + r) * 8 + c0 + dc + c] += 1.5;
            }
        }
        labels.push(class);
    }
    (x, labels)
}

/// Mean cross-entropy of logits `[N, K]` and its gradient
/// `(softmax − onehot) / N`.
fn cross_entropy(logits: &Tensor, labels: &[usize]) -> (f64, Tensor) {
    let (n, k) = (logits.shape()[0], logits.shape()[1]);
    let mut p = softmax(logits, 1).unwrap();
    let mut loss = 0.0;
    for (i, &y) in labels.iter().enumerate() {
        let row = &mut p.as_slice_mut()[i * k..(i + 1) * k];
        loss -= (row[y].max(1e-12) as f64).ln();
        row[y] -= 1.0;
        row.iter_mut().for_each(|v| *v /= n as f32);
    }
    (loss / n as f64, p)
}

#[test]
fn small_cnn_trained_by_sgd_reaches_100_percent_training_accuracy() {
    let mut rng = Rng::seed_from(42);
    let mut net = Sequential::default()
        .with(conv(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng))
        .with(ReLU::new())
        .with(MaxPool2d::new(Pool2dConfig::new(2)).unwrap())
        .with(conv(Conv2dConfig::new(4, 8, 3).padding(1), &mut rng))
        .with(ReLU::new())
        .with(MaxPool2d::new(Pool2dConfig::new(2)).unwrap())
        .with(Flatten::new())
        .with(Linear::new(LinearConfig::new(8 * 2 * 2, 4), &mut rng).unwrap());
    let (x, labels) = blobs(64, &mut rng);
    let accuracy = |net: &Sequential| {
        let pred = net.infer(&x).unwrap().argmax_last();
        pred.iter().zip(&labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64
    };
    let before = accuracy(&net);
    let (first_loss, _) = cross_entropy(&net.infer(&x).unwrap(), &labels);
    let lr = 0.1;
    let mut last_loss = f64::NAN;
    for _ in 0..200 {
        net.zero_grad();
        let logits = net.forward(&x).unwrap();
        let (loss, grad) = cross_entropy(&logits, &labels);
        last_loss = loss;
        net.backward(&grad).unwrap();
        net.visit_params_mut("", &mut |_, p| {
            let g = p.grad.clone();
            p.value.axpy(-lr, &g).unwrap();
        });
    }
    let after = accuracy(&net);
    assert!(before < 0.6, "untrained accuracy {before}");
    assert_eq!(
        after, 1.0,
        "accuracy after 200 steps (loss {first_loss} -> {last_loss})"
    );
    assert!(
        last_loss < 0.5 * first_loss,
        "loss {first_loss} -> {last_loss}"
    );
}

/// A torchvision-style ResNet BasicBlock (`conv1`, `bn1`, `relu`, `conv2`,
/// `bn2`, `downsample`); `act` builds the activations (ReLU for the real
/// thing, a smooth one for finite differences).
fn basic_block(
    cin: usize,
    cout: usize,
    stride: usize,
    act: &dyn Fn() -> Box<dyn Layer>,
    rng: &mut Rng,
) -> Residual {
    let c3 = |i, o, s| Conv2dConfig::new(i, o, 3).stride(s).padding(1).bias(false);
    let body = Sequential::named(vec![
        ("conv1", boxed(conv(c3(cin, cout, stride), rng))),
        ("bn1", boxed(BatchNorm2d::new(cout).unwrap())),
        ("relu", act()),
        ("conv2", boxed(conv(c3(cout, cout, 1), rng))),
        ("bn2", boxed(BatchNorm2d::new(cout).unwrap())),
    ])
    .unwrap();
    let downsample = (stride != 1 || cin != cout).then(|| {
        boxed(Sequential::new(vec![
            boxed(conv(
                Conv2dConfig::new(cin, cout, 1).stride(stride).bias(false),
                rng,
            )),
            boxed(BatchNorm2d::new(cout).unwrap()),
        ]))
    });
    Residual::new(boxed(body), downsample)
        .unwrap()
        .with_activation(act())
}

#[test]
fn resnet_block_keys_are_torchvisions() {
    let mut rng = Rng::seed_from(0);
    let relu = || boxed(ReLU::new());
    let layer1 = Sequential::new(vec![
        boxed(basic_block(4, 8, 2, &relu, &mut rng)),
        boxed(basic_block(8, 8, 1, &relu, &mut rng)),
    ]);
    let net = Sequential::named(vec![("layer1", boxed(layer1))]).unwrap();
    let mut keys = Vec::new();
    net.visit_params("", &mut |k, _| keys.push(k.to_string()));
    net.visit_buffers("", &mut |k, _| keys.push(k.to_string()));
    for k in [
        "layer1.0.conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.0.bn2.bias",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.weight",
        "layer1.1.conv2.weight",
        "layer1.0.bn1.running_mean",
        "layer1.0.downsample.1.running_var",
        "layer1.1.bn2.num_batches_tracked",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("layer1.1.downsample")));
    let s = summary(&net, &[1, 4, 8, 8]).unwrap();
    assert_eq!(s.output_shape, vec![1, 8, 4, 4]);
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"layer1.0.conv1") && names.contains(&"layer1.0.downsample.1"));
}

#[test]
fn gradient_of_a_resnet_block_with_batch_statistics() {
    let mut rng = Rng::seed_from(1);
    let tanh = || boxed(Tanh::new());
    let mut projection = basic_block(2, 3, 2, &tanh, &mut rng);
    check_layer_with(&mut projection, &random(&[2, 2, 4, 4], 2), DEEP);
    let mut identity = basic_block(2, 2, 1, &tanh, &mut rng);
    check_layer_with(&mut identity, &random(&[2, 2, 3, 3], 3), DEEP);
}

#[test]
fn gradient_of_an_inception_module() {
    // torchvision's Inception: four branches concatenated on channels.
    let mut rng = Rng::seed_from(4);
    let c = |i, o, k, p| Conv2dConfig::new(i, o, k).padding(p);
    let mut inception = Concat::named(vec![
        ("branch1", boxed(conv(c(3, 2, 1, 0), &mut rng))),
        (
            "branch2",
            boxed(Sequential::new(vec![
                boxed(conv(c(3, 2, 1, 0), &mut rng)),
                boxed(Sigmoid::new()),
                boxed(conv(c(2, 3, 3, 1), &mut rng)),
            ])),
        ),
        ("branch3", boxed(conv(c(3, 1, 5, 2), &mut rng))),
        (
            "branch4",
            boxed(Sequential::new(vec![
                boxed(MaxPool2d::new(Pool2dConfig::new(3).stride(1).padding(1)).unwrap()),
                boxed(conv(c(3, 2, 1, 0), &mut rng)),
            ])),
        ),
    ])
    .unwrap();
    assert_eq!(
        inception.output_shape(&[2, 3, 5, 5]).unwrap(),
        vec![2, 8, 5, 5]
    );
    check_layer(&mut inception, &random_distinct(&[2, 3, 5, 5], 5));
}

#[test]
fn gradient_of_a_convnext_block_and_an_add() {
    // dwconv 7×7 → channels-last LayerNorm → Linear ×4 → GELU → Linear →
    // back to NCHW → layer scale, plus the identity.
    let mut rng = Rng::seed_from(6);
    let dim = 4;
    let mut ls = LayerScale::channels_first(dim, 0.5)
        .unwrap()
        .with_param_name("layer_scale");
    ls.gamma.value = Tensor::rand_uniform(&[dim, 1, 1], 0.5, 1.5, &mut rng);
    let block = Sequential::named(vec![
        (
            "block",
            boxed(Sequential::new(vec![
                boxed(conv(
                    Conv2dConfig::new(dim, dim, 7).padding(3).groups(dim),
                    &mut rng,
                )),
                boxed(Permute::new(&[0, 2, 3, 1]).unwrap()),
                boxed(LayerNorm::with_config(LayerNormConfig::new(dim).eps(1e-6)).unwrap()),
                boxed(Linear::new(LinearConfig::new(dim, 4 * dim), &mut rng).unwrap()),
                boxed(GELU::new()),
                boxed(Linear::new(LinearConfig::new(4 * dim, dim), &mut rng).unwrap()),
                boxed(Permute::new(&[0, 3, 1, 2]).unwrap()),
            ])),
        ),
        ("", boxed(ls)),
    ])
    .unwrap();
    let mut cn = Residual::new(boxed(block), None).unwrap();
    let keys: Vec<String> = cn.param_shapes().into_iter().map(|p| p.0).collect();
    assert_eq!(
        keys,
        [
            "block.0.weight",
            "block.0.bias",
            "block.2.weight",
            "block.2.bias",
            "block.3.weight",
            "block.3.bias",
            "block.5.weight",
            "block.5.bias",
            "layer_scale"
        ]
    );
    check_layer_with(&mut cn, &random(&[2, dim, 3, 3], 7), DEEP);

    let mut downsample = Sequential::new(vec![
        boxed(LayerNorm2d::new(dim).unwrap()),
        boxed(conv(Conv2dConfig::new(dim, 2 * dim, 2).stride(2), &mut rng)),
    ]);
    check_layer_with(&mut downsample, &random(&[2, dim, 4, 4], 8), DEEP);

    let mut add = Add::new(
        boxed(conv(Conv2dConfig::new(2, 3, 3).padding(1), &mut rng)),
        boxed(Sequential::new(vec![
            boxed(AvgPool2d::new(Pool2dConfig::new(3).stride(1).padding(1)).unwrap()),
            boxed(conv(Conv2dConfig::new(2, 3, 1), &mut rng)),
        ])),
    );
    check_layer(&mut add, &random(&[2, 2, 4, 4], 9));
}

#[test]
fn gradient_of_a_classifier_with_dropout_and_global_pooling() {
    let mut rng = Rng::seed_from(10);
    let mut head = Sequential::named(vec![
        (
            "features",
            boxed(conv(Conv2dConfig::new(2, 3, 3), &mut rng)),
        ),
        ("avgpool", boxed(AdaptiveAvgPool2d::new(2).unwrap())),
        ("flatten", boxed(Flatten::new())),
        ("drop", boxed(Dropout::new(0.5, &mut rng).unwrap())),
        (
            "fc",
            boxed(Linear::new(LinearConfig::new(12, 5), &mut rng).unwrap()),
        ),
        ("softmax", boxed(Softmax::new(-1))),
    ])
    .unwrap();
    check_layer(&mut head, &random(&[3, 2, 5, 6], 11));
}

/// One of every layer type, with an input it accepts and one it refuses.
/// Shape-agnostic layers (element-wise, Identity, Dropout) accept every
/// input: their bad case is a gradient of the wrong shape.
/// A layer, an input shape it accepts, and one it refuses (if any).
type Case = (Box<dyn Layer>, Vec<usize>, Option<Vec<usize>>);

fn every_layer(rng: &mut Rng) -> Vec<Case> {
    let lin = |rng: &mut Rng| boxed(Linear::new(LinearConfig::new(4, 3), rng).unwrap());
    vec![
        (
            boxed(conv(Conv2dConfig::new(2, 3, 3), rng)),
            vec![2, 2, 5, 5],
            Some(vec![2, 3, 5, 5]),
        ),
        (lin(rng), vec![2, 4], Some(vec![2, 5])),
        (
            boxed(MaxPool2d::new(Pool2dConfig::new(2)).unwrap()),
            vec![1, 2, 4, 4],
            Some(vec![2, 4, 4]),
        ),
        (
            boxed(AvgPool2d::new(Pool2dConfig::new(3)).unwrap()),
            vec![1, 2, 4, 4],
            Some(vec![1, 2, 2, 2]),
        ),
        (
            boxed(AdaptiveAvgPool2d::new(2).unwrap()),
            vec![1, 2, 4, 4],
            Some(vec![2, 16]),
        ),
        (boxed(Flatten::new()), vec![2, 3, 2], Some(vec![6])),
        (boxed(ReLU::new()), vec![2, 3], None),
        (boxed(GELU::new()), vec![2, 3], None),
        (boxed(GELU::tanh()), vec![2, 3], None),
        (boxed(Sigmoid::new()), vec![2, 3], None),
        (boxed(Tanh::new()), vec![2, 3], None),
        (boxed(Softmax::new(1)), vec![2, 3], Some(vec![6])),
        (boxed(Dropout::new(0.5, rng).unwrap()), vec![2, 3], None),
        (
            boxed(BatchNorm2d::new(2).unwrap()),
            vec![2, 2, 2, 2],
            Some(vec![2, 3, 2, 2]),
        ),
        (
            boxed(LayerNorm::new(4).unwrap()),
            vec![2, 4],
            Some(vec![4, 2]),
        ),
        (
            boxed(LayerNorm2d::new(2).unwrap()),
            vec![1, 2, 2, 2],
            Some(vec![1, 2, 2]),
        ),
        (
            boxed(LayerScale::new(4, 1.0).unwrap()),
            vec![2, 4],
            Some(vec![2, 3]),
        ),
        (
            boxed(Permute::new(&[1, 0]).unwrap()),
            vec![2, 4],
            Some(vec![2, 4, 1]),
        ),
        (boxed(Identity::new()), vec![2, 3], None),
        (
            boxed(Sequential::new(vec![lin(rng), boxed(ReLU::new())])),
            vec![2, 4],
            Some(vec![2, 3]),
        ),
        (
            boxed(Residual::new(lin(rng), Some(lin(rng))).unwrap()),
            vec![2, 4],
            Some(vec![4, 2]),
        ),
        (
            boxed(Concat::new(vec![lin(rng), lin(rng)]).unwrap()),
            vec![2, 4],
            Some(vec![2, 2]),
        ),
        (
            boxed(Add::new(lin(rng), lin(rng))),
            vec![2, 4],
            Some(vec![2, 5]),
        ),
    ]
}

#[test]
fn a_bad_input_shape_is_an_error_naming_the_layer_for_every_layer_type() {
    let mut rng = Rng::seed_from(12);
    for (mut layer, good, bad) in every_layer(&mut rng) {
        let name = layer.type_name();
        // backward before forward
        assert!(
            matches!(
                layer.backward(&Tensor::zeros(&good)),
                Err(LayerError::NoCache { .. })
            ),
            "{name}: backward before forward"
        );
        if let Some(bad) = bad {
            let x = Tensor::zeros(&bad);
            for e in [
                layer.infer(&x).unwrap_err(),
                layer.forward(&x).unwrap_err(),
                layer.output_shape(&bad).unwrap_err(),
            ] {
                let msg = e.to_string();
                assert!(
                    msg.contains(name) || msg.contains("Linear"),
                    "{name}: {msg}"
                );
                assert!(msg.contains(&format!("{bad:?}")), "{name}: {msg}");
            }
        }
        // A gradient of the wrong shape is refused too.
        let y = layer.forward(&random(&good, 13)).unwrap();
        let mut wrong = y.shape().to_vec();
        wrong[0] += 1;
        assert!(
            layer.backward(&Tensor::zeros(&wrong)).is_err(),
            "{name}: wrong gradient"
        );
    }
}

#[test]
fn infer_equals_forward_without_training_behaviour() {
    let mut rng = Rng::seed_from(14);
    for (mut layer, good, _) in every_layer(&mut rng) {
        let name = layer.type_name();
        if matches!(name, "Dropout" | "BatchNorm2d") {
            continue;
        }
        let x = random(&good, 15);
        assert_eq!(
            layer.infer(&x).unwrap(),
            layer.forward(&x).unwrap(),
            "{name}"
        );
    }
    // Dropout and BatchNorm do differ in training.
    let mut d = Dropout::new(0.5, &mut rng).unwrap();
    let x = Tensor::ones(&[4, 8]);
    assert_ne!(d.forward(&x).unwrap(), d.infer(&x).unwrap());
    let mut bn = BatchNorm2d::new(2).unwrap();
    let x = random(&[2, 2, 3, 3], 16).map(|v| 3.0 * v + 1.0);
    assert_ne!(bn.forward(&x).unwrap(), bn.infer(&x).unwrap());
}

#[test]
fn clones_are_deep_and_drop_caches() {
    let mut rng = Rng::seed_from(17);
    for (mut layer, good, _) in every_layer(&mut rng) {
        let name = layer.type_name();
        let x = random(&good, 18);
        layer.forward(&x).unwrap();
        let mut copy = layer
            .clone_boxed()
            .unwrap_or_else(|| panic!("{name}: clone"));
        assert_eq!(copy.infer(&x).unwrap(), layer.infer(&x).unwrap(), "{name}");
        assert!(
            matches!(
                copy.backward(&Tensor::zeros(&[1])),
                Err(LayerError::NoCache { .. })
            ),
            "{name}: the cache was cloned"
        );
        copy.visit_params_mut("", &mut |_, p| p.value.fill(0.5));
        let mut same = true;
        layer.visit_params("", &mut |_, p| {
            same &= p.value.as_slice().iter().all(|&v| v == 0.5)
        });
        assert!(
            !same || layer.num_params() == 0,
            "{name}: the clone shares parameters"
        );
    }
}

#[test]
fn models_are_send_sync_and_infer_from_many_threads() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Layer>();
    assert_send_sync::<Sequential>();
    let net = lenet5(&mut Rng::seed_from(19));
    let x = random(&[3, 1, 28, 28], 20);
    let expected = net.infer(&x).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| net.infer(&x).unwrap())).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), expected);
        }
    });
}

/// Every parameter gradient of `net`, by name.
fn param_grads(net: &dyn Layer) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    net.visit_params("", &mut |name, p| {
        v.push((name.to_string(), p.grad.as_slice().to_vec()))
    });
    v
}

#[test]
fn forward_owned_and_backward_params_match_forward_and_backward() {
    // LeNet-5 (tanh, conv first) and a ReLU / GELU variant: the in-place
    // activations and the skipped input gradient change nothing else.
    let relu_gelu = |rng: &mut Rng| {
        Sequential::default()
            .with(conv(Conv2dConfig::new(1, 4, 3).padding(1), rng))
            .with(ReLU::new())
            .with(MaxPool2d::new(Pool2dConfig::new(2)).unwrap())
            .with(GELU::new())
            .with(Flatten::new())
            .with(Linear::new(LinearConfig::new(4 * 14 * 14, 10), rng).unwrap())
    };
    let builders: [&dyn Fn(&mut Rng) -> Sequential; 2] = [&lenet5, &relu_gelu];
    for build in builders {
        let x = random(&[3, 1, 28, 28], 5);
        let grad_out = random(&[3, 10], 6);
        let mut a = build(&mut Rng::seed_from(1));
        let mut b = build(&mut Rng::seed_from(1));
        let ya = a.forward(&x).unwrap();
        let yb = b.forward_owned(x.clone()).unwrap();
        assert_eq!(ya.as_slice(), yb.as_slice());
        a.backward(&grad_out).unwrap();
        b.backward_params(&grad_out).unwrap();
        let (ga, gb) = (param_grads(&a), param_grads(&b));
        assert_eq!(ga.len(), gb.len());
        for ((na, va), (nb, vb)) in ga.iter().zip(&gb) {
            assert_eq!(na, nb);
            assert!(va.iter().any(|&v| v != 0.0), "{na}: zero gradient");
            assert_eq!(va, vb, "{na}");
        }
        // The cache was consumed: a second backward is an error.
        assert!(b.backward_params(&grad_out).is_err());
    }
}
