//! Finite-difference gradient checks of the CNN zoo's composite blocks on
//! tiny widths (residual basic and bottleneck blocks, BasicConv2d, inception
//! modules, the auxiliary classifier, GoogLeNet's trunk/auxiliary/head
//! routing with the 0.3-weighted auxiliary losses), and training steps of
//! the small models.

mod common;

use common::{block_tolerance, check_block, check_with, random, sgd_step, tiny_net_tolerance};
use convnet_layers::{
    AdaptiveAvgPool2d, Dropout, Flatten, Layer, Linear, LinearConfig, ReLU, Sequential,
};
use convnet_tensor::gradcheck::{project, projection};
use convnet_tensor::{Rng, Tensor};
use convnet_zoo::googlenet::{
    basic_conv2d, inception, inception_aux, Branch3, GoogLeNet, GoogLeNetConfig, InceptionWidths,
    AUX_LOSS_WEIGHT,
};
use convnet_zoo::resnet::{basic_block, bottleneck, resnet, Block, ResNetConfig, Stem};
use convnet_zoo::vgg::{vgg, VggConfig};
use convnet_zoo::{build, ModelConfig};

#[test]
fn basic_block_gradients_identity_and_projection_shortcuts() {
    let mut rng = Rng::seed_from(1);
    // Identity shortcut: 3 -> 3 channels, stride 1.
    let mut block = basic_block(3, 3, 1, false, &mut rng).unwrap();
    assert!(block.shortcut().is_none());
    check_block(
        &mut block,
        &random(&[2, 3, 5, 5], 2),
        block_tolerance(),
        usize::MAX,
    );
    // Projection shortcut: 2 -> 4 channels, stride 2.
    let mut block = basic_block(2, 4, 2, false, &mut rng).unwrap();
    assert!(block.shortcut().is_some());
    check_block(
        &mut block,
        &random(&[2, 2, 6, 6], 3),
        block_tolerance(),
        usize::MAX,
    );
}

#[test]
fn bottleneck_gradients_identity_and_projection_shortcuts() {
    let mut rng = Rng::seed_from(4);
    // 8 -> 2 -> 2 -> 8 channels: identity shortcut.
    let mut block = bottleneck(8, 2, 1, false, &mut rng).unwrap();
    assert!(block.shortcut().is_none());
    check_block(
        &mut block,
        &random(&[2, 8, 4, 4], 5),
        block_tolerance(),
        usize::MAX,
    );
    // 3 -> 2 -> 2 -> 8 channels with stride 2: projection.
    let mut block = bottleneck(3, 2, 2, false, &mut rng).unwrap();
    let keys: Vec<String> = block.param_shapes().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "conv2.weight",
            "bn2.weight",
            "bn2.bias",
            "conv3.weight",
            "bn3.weight",
            "bn3.bias",
            "downsample.0.weight",
            "downsample.1.weight",
            "downsample.1.bias"
        ]
    );
    check_block(
        &mut block,
        &random(&[2, 3, 6, 6], 6),
        block_tolerance(),
        usize::MAX,
    );
}

#[test]
fn basic_conv2d_and_inception_module_gradients() {
    let mut rng = Rng::seed_from(7);
    let mut c = basic_conv2d(2, 3, 3, 2, 1, &mut rng).unwrap();
    check_block(
        &mut c,
        &random(&[2, 2, 5, 5], 8),
        block_tolerance(),
        usize::MAX,
    );
    let widths = InceptionWidths {
        ch1x1: 2,
        ch3x3red: 2,
        ch3x3: 3,
        ch5x5red: 1,
        ch5x5: 2,
        pool_proj: 2,
    };
    for branch3 in [Branch3::Torchvision3x3, Branch3::Paper5x5] {
        let mut m = inception(3, widths, branch3, &mut rng).unwrap();
        assert_eq!(m.output_shape(&[2, 3, 5, 5]).unwrap(), vec![2, 9, 5, 5]);
        let k = if branch3 == Branch3::Paper5x5 { 5 } else { 3 };
        let shapes = m.param_shapes();
        let b3 = shapes
            .iter()
            .find(|(n, _)| n == "branch3.1.conv.weight")
            .unwrap();
        assert_eq!(b3.1, vec![2, 1, k, k]);
        check_block(
            &mut m,
            &random(&[2, 3, 5, 5], 9),
            block_tolerance(),
            usize::MAX,
        );
    }
}

#[test]
fn auxiliary_classifier_gradients_with_dropout() {
    // Fixed inner widths (128 channels, 1024 hidden): the input channels and
    // classes are small, large tensors are checked on a sample.
    let mut aux = inception_aux(3, 4, 0.7, &mut Rng::seed_from(10)).unwrap();
    assert_eq!(aux.output_shape(&[2, 3, 8, 8]).unwrap(), vec![2, 4]);
    check_block(&mut aux, &random(&[2, 3, 8, 8], 11), block_tolerance(), 48);
}

/// A GoogLeNet-shaped network a few hundred parameters wide.
fn tiny_googlenet(aux: bool, rng: &mut Rng) -> GoogLeNet {
    let widths = InceptionWidths {
        ch1x1: 1,
        ch3x3red: 2,
        ch3x3: 2,
        ch5x5red: 1,
        ch5x5: 1,
        pool_proj: 1,
    };
    let seq = |children: Vec<(&str, Box<dyn Layer>)>| Sequential::named(children).unwrap();
    let trunk0 = seq(vec![
        ("conv1", Box::new(basic_conv2d(2, 3, 3, 1, 1, rng).unwrap())),
        (
            "inception3a",
            Box::new(inception(3, widths, Branch3::Torchvision3x3, rng).unwrap()),
        ),
    ]);
    let trunk1 = seq(vec![(
        "inception4b",
        Box::new(inception(5, widths, Branch3::Paper5x5, rng).unwrap()),
    )]);
    let trunk2 = seq(vec![(
        "conv5",
        Box::new(basic_conv2d(5, 3, 1, 1, 0, rng).unwrap()),
    )]);
    let tiny_aux = |rng: &mut Rng| {
        seq(vec![
            ("avgpool", Box::new(AdaptiveAvgPool2d::new(2).unwrap())),
            ("conv", Box::new(basic_conv2d(5, 2, 1, 1, 0, rng).unwrap())),
            ("flatten", Box::new(Flatten::new())),
            (
                "fc1",
                Box::new(Linear::new(LinearConfig::new(8, 4), rng).unwrap()),
            ),
            ("relu", Box::new(ReLU::new())),
            ("dropout", Box::new(Dropout::new(0.5, rng).unwrap())),
            (
                "fc2",
                Box::new(Linear::new(LinearConfig::new(4, 3), rng).unwrap()),
            ),
        ])
    };
    // The head before the auxiliary heads: with or without them, the
    // trunk and the head get the same weights from the same seed.
    let head = seq(vec![
        ("avgpool", Box::new(AdaptiveAvgPool2d::new(1).unwrap())),
        ("flatten", Box::new(Flatten::new())),
        ("dropout", Box::new(Dropout::new(0.2, rng).unwrap())),
        (
            "fc",
            Box::new(Linear::new(LinearConfig::new(3, 3), rng).unwrap()),
        ),
    ]);
    let aux = aux.then(|| [tiny_aux(rng), tiny_aux(rng)]);
    GoogLeNet::from_parts([trunk0, trunk1, trunk2], aux, head).unwrap()
}

#[test]
fn googlenet_gradients_with_weighted_auxiliary_losses() {
    let mut rng = Rng::seed_from(12);
    let mut net = tiny_googlenet(true, &mut rng);
    let x = random(&[2, 2, 4, 4], 13);
    let (r, r1, r2) = (projection(6, 1), projection(6, 2), projection(6, 3));
    // loss = Σ y·r + 0.3 Σ aux1·r1 + 0.3 Σ aux2·r2
    let w = AUX_LOSS_WEIGHT as f64;
    check_with(
        &mut net,
        &x,
        |net, x| {
            let y = net.forward(x).unwrap();
            let (a1, a2) = net.aux_logits().unwrap();
            project(y.as_slice(), &r)
                + w * project(a1.as_slice(), &r1)
                + w * project(a2.as_slice(), &r2)
        },
        |net, x| {
            net.forward(x).unwrap();
            let t = |v: &[f32], scale: f32| {
                Tensor::from_vec(&[2, 3], v.iter().map(|a| a * scale).collect()).unwrap()
            };
            let (g1, g2) = (t(&r1, AUX_LOSS_WEIGHT), t(&r2, AUX_LOSS_WEIGHT));
            net.backward_with_aux(&t(&r, 1.0), Some((&g1, &g2)))
                .unwrap()
        },
        tiny_net_tolerance(),
        usize::MAX,
    );
}

#[test]
fn googlenet_plain_backward_trains_the_main_path_only() {
    let mut rng = Rng::seed_from(14);
    let mut net = tiny_googlenet(true, &mut rng);
    let x = random(&[2, 2, 4, 4], 15);
    net.zero_grad();
    let y = net.forward(&x).unwrap();
    net.backward(&Tensor::ones(y.shape())).unwrap();
    net.visit_params("", &mut |k, p| {
        let zero = p.grad.as_slice().iter().all(|&g| g == 0.0);
        assert_eq!(zero, k.starts_with("aux"), "{k}");
    });
    // The main path's gradients are those of the network without aux heads.
    let mut plain = tiny_googlenet(false, &mut Rng::seed_from(14));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    check_with(
        &mut plain,
        &x,
        |net, x| net.forward(x).unwrap().sum(),
        |net, x| {
            let y = net.forward(x).unwrap();
            net.backward(&Tensor::ones(y.shape())).unwrap()
        },
        tiny_net_tolerance(),
        usize::MAX,
    );
    // Same seed, same draws for the shared layers: compare the trunk's grads.
    let mut plain = tiny_googlenet(false, &mut Rng::seed_from(14));
    plain.zero_grad();
    let y = plain.forward(&x).unwrap();
    plain.backward(&Tensor::ones(y.shape())).unwrap();
    net.visit_params("", &mut |k, p| {
        if k.starts_with("conv1") || k.starts_with("inception3a") {
            a.push((k.to_string(), p.grad.clone()));
        }
    });
    plain.visit_params("", &mut |k, p| {
        if k.starts_with("conv1") || k.starts_with("inception3a") {
            b.push((k.to_string(), p.grad.clone()));
        }
    });
    assert_eq!(a.len(), b.len());
    for ((ka, ga), (kb, gb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(ga.allclose(gb, 1e-5, 1e-6), "{ka}");
    }
}

#[test]
fn googlenet_api_errors_and_inference() {
    let mut rng = Rng::seed_from(16);
    let mut net = tiny_googlenet(true, &mut rng);
    let x = random(&[2, 2, 4, 4], 17);
    assert!(net.aux_logits().is_none());
    let e = net
        .backward(&Tensor::ones(&[2, 3]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("GoogLeNet"), "{e}");
    net.forward(&x).unwrap();
    let bad = Tensor::ones(&[2, 4]);
    let good = Tensor::ones(&[2, 3]);
    let e = net
        .backward_with_aux(&good, Some((&bad, &good)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("aux1") && e.contains("[2, 4]"), "{e}");
    // The failed call left the cache: a correct one still works.
    net.backward_with_aux(&good, Some((&good, &good))).unwrap();
    // Without aux heads, aux gradients are an error.
    let mut plain = tiny_googlenet(false, &mut rng);
    plain.forward(&x).unwrap();
    assert!(plain.aux_logits().is_none());
    assert!(plain
        .backward_with_aux(&good, Some((&good, &good)))
        .is_err());
    // Inference: no aux outputs, deterministic, the same as a clone's.
    let y = net.infer(&x).unwrap();
    let clone = net.clone_boxed().unwrap();
    assert_eq!(clone.infer(&x).unwrap(), y);
    assert_eq!(clone.param_shapes(), net.param_shapes());
    // Colliding names are refused.
    let seq = |n: &str| {
        Sequential::named(vec![(
            n,
            Box::new(basic_conv2d(2, 2, 1, 1, 0, &mut Rng::seed_from(0)).unwrap())
                as Box<dyn Layer>,
        )])
        .unwrap()
    };
    let e = GoogLeNet::from_parts([seq("a"), seq("b"), seq("a")], None, Sequential::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("would be named \"a."), "{e}");
}

#[test]
fn full_googlenet_training_step_reaches_every_parameter() {
    let config = GoogLeNetConfig {
        num_classes: 4,
        aux_logits: true,
        ..GoogLeNetConfig::default()
    };
    let mut net = GoogLeNet::new(&config, &mut Rng::seed_from(18)).unwrap();
    let x = random(&[2, 3, 64, 64], 19);
    net.zero_grad();
    let y = net.forward(&x).unwrap();
    let (a1, a2) = net.aux_logits().unwrap();
    assert_eq!((a1.shape(), a2.shape()), (&[2, 4][..], &[2, 4][..]));
    let labels = [1, 3];
    let (_, g) = common::cross_entropy(&y, &labels);
    let (_, g1) = common::cross_entropy(a1, &labels);
    let (_, g2) = common::cross_entropy(a2, &labels);
    let w = |t: Tensor| t.map(|v| v * AUX_LOSS_WEIGHT);
    net.backward_with_aux(&g, Some((&w(g1), &w(g2)))).unwrap();
    net.visit_params("", &mut |k, p| {
        assert!(
            p.grad.as_slice().iter().any(|&v| v != 0.0),
            "{k} has a zero gradient"
        );
    });
    // 31×31 is the smallest input that goes through the four max-pools.
    assert!(net.output_shape(&[1, 3, 31, 31]).is_ok());
    assert!(net.output_shape(&[1, 3, 30, 30]).is_err());
}

#[test]
fn narrow_resnet_and_vgg_training_steps() {
    let mut rng = Rng::seed_from(20);
    // A narrow ResNet-50 layout (bottlenecks, ImageNet stem) on 32×32.
    let cfg = ResNetConfig {
        block: Block::Bottleneck,
        layers: vec![1, 1, 1, 1],
        widths: vec![2, 4, 4, 8],
        stem_width: 4,
        num_classes: 5,
        ..ResNetConfig::resnet50()
    };
    assert_eq!(cfg.stem, Stem::ImageNet);
    let mut net = resnet(&cfg, &mut rng).unwrap();
    let x = random(&[2, 3, 32, 32], 21);
    sgd_step(&mut net, &x, &[0, 4], 0.1);
    // A narrow VGG11 with BatchNorm.
    let cfg = VggConfig {
        stages: vec![vec![4], vec![4], vec![8, 8], vec![8, 8], vec![8, 8]],
        num_classes: 5,
        pool_size: 1,
        hidden: 16,
        dropout: 0.5,
        ..VggConfig::vgg11().with_batch_norm()
    };
    let mut net = vgg(&cfg, &mut rng).unwrap();
    sgd_step(&mut net, &x, &[2, 3], 0.1);
}

#[test]
fn small_models_train_on_28x28() {
    let x = random(&[4, 1, 28, 28], 22);
    let labels = [0, 1, 2, 3];
    for name in [
        "lenet1",
        "lenet4",
        "resnet20",
        "vgg_small",
        "resnet18_small",
    ] {
        let mut rng = Rng::seed_from(23);
        let mut net = build(name, &ModelConfig::mnist(), &mut rng).unwrap();
        assert_eq!(net.infer(&x).unwrap().shape(), &[4, 10], "{name}");
        if name == "resnet18_small" {
            // 0.46 GMAC per image: one step is enough to check it trains.
            sgd_step(&mut net, &x, &labels, 0.01);
            continue;
        }
        // A few steps on one batch decrease its loss.
        let first = sgd_step(&mut net, &x, &labels, 0.05);
        let mut last = first;
        for _ in 0..5 {
            last = sgd_step(&mut net, &x, &labels, 0.05);
        }
        assert!(last < first, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn small_model_shapes_and_counts() {
    let mnist = ModelConfig::mnist();
    let row = |s: &convnet_layers::Summary, name: &str| {
        s.rows.iter().find(|r| r.name == name).unwrap().output_shape[1..].to_vec()
    };
    for (name, params, stages) in [
        (
            "resnet20",
            272_186,
            vec![
                ("layer1", [16, 28, 28]),
                ("layer2", [32, 14, 14]),
                ("layer3", [64, 7, 7]),
            ],
        ),
        (
            "resnet18_small",
            11_172_810,
            vec![
                ("layer1", [64, 28, 28]),
                ("layer2", [128, 14, 14]),
                ("layer3", [256, 7, 7]),
                ("layer4", [512, 4, 4]),
            ],
        ),
        ("vgg_small", 650_858, vec![("features", [128, 3, 3])]),
    ] {
        let m = build(name, &mnist, &mut Rng::seed_from(0)).unwrap();
        assert_eq!(m.num_params(), params, "{name}");
        let s = convnet_layers::summary(m.as_ref(), &[1, 1, 28, 28]).unwrap();
        for (stage, shape) in stages {
            assert_eq!(row(&s, stage), shape, "{name} {stage}");
        }
        // 3×3 stride-1 stem, no max-pool.
        assert!(s.rows.iter().all(|r| r.name != "maxpool"), "{name}");
    }
}
