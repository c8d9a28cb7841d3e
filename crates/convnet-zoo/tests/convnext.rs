//! ConvNeXt: torchvision's parameter names, shapes and counts for T, S and
//! B (built, never run, at 224×224), gradient checks of the block and of a
//! whole tiny network, stochastic depth, and training steps of the 28×28
//! variant.

mod common;

use common::{
    assert_every_param_moved, block_tolerance, check_layer_with as check_layer, param_values,
    random, sgd_step,
};
use convnet_layers::{summary, Layer};
use convnet_tensor::gradcheck::GradCheck;
use convnet_tensor::{Rng, Tensor};
use convnet_zoo::convnext::{cn_block, convnext, ConvNeXtConfig};
use convnet_zoo::{build, entry, ModelConfig};

const DEEP: GradCheck = GradCheck {
    eps: 1e-3,
    rtol: 1e-2,
    atol: 1e-3,
};

/// torchvision's `state_dict` keys and shapes of a ConvNeXt, written from
/// the module structure (`features.{0, 1, ...}`, `CNBlock.layer_scale`
/// then `block.{0, 2, 3, 5}`, downsampling `LayerNorm2d` + `Conv2d`,
/// `classifier.{0, 2}`).
fn torchvision_keys(dims: &[usize], depths: &[usize], classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("features.0.0.weight".into(), vec![dims[0], 3, 4, 4]),
        ("features.0.0.bias".into(), vec![dims[0]]),
        ("features.0.1.weight".into(), vec![dims[0]]),
        ("features.0.1.bias".into(), vec![dims[0]]),
    ];
    for (s, (&d, &depth)) in dims.iter().zip(depths).enumerate() {
        let stage = 1 + 2 * s;
        for b in 0..depth {
            let p = format!("features.{stage}.{b}");
            v.push((format!("{p}.layer_scale"), vec![d, 1, 1]));
            v.push((format!("{p}.block.0.weight"), vec![d, 1, 7, 7]));
            v.push((format!("{p}.block.0.bias"), vec![d]));
            v.push((format!("{p}.block.2.weight"), vec![d]));
            v.push((format!("{p}.block.2.bias"), vec![d]));
            v.push((format!("{p}.block.3.weight"), vec![4 * d, d]));
            v.push((format!("{p}.block.3.bias"), vec![4 * d]));
            v.push((format!("{p}.block.5.weight"), vec![d, 4 * d]));
            v.push((format!("{p}.block.5.bias"), vec![d]));
        }
        if let Some(&next) = dims.get(s + 1) {
            let p = format!("features.{}", stage + 1);
            v.push((format!("{p}.0.weight"), vec![d]));
            v.push((format!("{p}.0.bias"), vec![d]));
            v.push((format!("{p}.1.weight"), vec![next, d, 2, 2]));
            v.push((format!("{p}.1.bias"), vec![next]));
        }
    }
    let last = *dims.last().unwrap();
    v.push(("classifier.0.weight".into(), vec![last]));
    v.push(("classifier.0.bias".into(), vec![last]));
    v.push(("classifier.2.weight".into(), vec![classes, last]));
    v.push(("classifier.2.bias".into(), vec![classes]));
    v
}

#[test]
fn tiny_small_base_equal_torchvision() {
    let cases = [
        (
            "convnext_tiny",
            [96, 192, 384, 768],
            [3, 3, 9, 3],
            28_589_128usize,
        ),
        (
            "convnext_small",
            [96, 192, 384, 768],
            [3, 3, 27, 3],
            50_223_688,
        ),
        (
            "convnext_base",
            [128, 256, 512, 1024],
            [3, 3, 27, 3],
            88_591_464,
        ),
    ];
    for (name, dims, depths, count) in cases {
        let want = torchvision_keys(&dims, &depths, 1000);
        let from_spec: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(from_spec, count, "{name}: the key list itself");
        let e = entry(name).unwrap();
        let cfg = (e.default_config)();
        assert_eq!(cfg, ModelConfig::imagenet());
        let model = e.build(&cfg, &mut Rng::seed_from(0)).unwrap();
        assert_eq!(model.num_params(), count, "{name}");
        assert_eq!(model.param_shapes(), want, "{name}: names, shapes, order");
        assert!(e.description.contains(&{
            let s = count.to_string();
            format!("{},{},{}", &s[..2], &s[2..5], &s[5..])
        }));
        let s = summary(&model, &[1, 3, 224, 224]).unwrap();
        assert_eq!(s.total_params, count);
        assert_eq!(s.output_shape, vec![1, 1000]);
        // Stage resolutions 56, 28, 14, 7, then the pooled 1×1.
        let mut flow = s.shape_flow();
        flow.dedup();
        for (d, hw) in dims.iter().zip([56, 28, 14, 7]) {
            assert!(flow.contains(&vec![*d, hw, hw]), "{name}: {flow:?}");
        }
        assert!(flow.contains(&vec![dims[3], 1, 1]) && flow.ends_with(&[vec![1000]]));
    }
}

#[test]
fn initialisation_follows_torchvision() {
    let m = convnext(&ConvNeXtConfig::tiny28(), &mut Rng::seed_from(3)).unwrap();
    m.visit_params("", &mut |name, p| {
        let v = p.value.as_slice();
        if name.ends_with("layer_scale") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}: tiny28 starts at 1");
        } else if name.ends_with("bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if p.shape().len() == 1 {
            assert!(v.iter().all(|&x| x == 1.0), "{name}: LayerNorm weight");
        } else {
            // trunc_normal_(std = 0.02)
            let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
            assert!(
                v.len() < 100 || (std - 0.02).abs() < 0.004,
                "{name}: std {std}"
            );
            assert!(v.iter().all(|x| x.abs() <= 2.0));
        }
    });
}

#[test]
fn gradient_of_the_block_with_stochastic_depth() {
    let mut rng = Rng::seed_from(1);
    for p in [0.0, 0.5] {
        let mut block = cn_block(4, 1.0, p, &mut rng).unwrap();
        // A layer scale of order one, so the branch matters.
        block.visit_params_mut("", &mut |n, prm| {
            if n == "layer_scale" {
                prm.value = Tensor::rand_uniform(&[4, 1, 1], 0.5, 1.5, &mut Rng::seed_from(2));
            }
        });
        // The block's LayerNorm over 4 channels is curved at the scale of a
        // step of 1e-3: the CNN blocks' tolerance.
        check_layer(&mut block, &random(&[3, 4, 3, 3], 3), block_tolerance());
    }
}

#[test]
fn gradient_of_a_whole_tiny_convnext() {
    let cfg = ConvNeXtConfig {
        dims: vec![4, 8],
        depths: vec![1, 1],
        layer_scale: 0.7,
        stochastic_depth_prob: 0.5,
        ..ConvNeXtConfig::tiny28()
    };
    let mut m = convnext(&cfg, &mut Rng::seed_from(4)).unwrap();
    // Weights of order one: torchvision's std 0.02 makes the stem's
    // LayerNorm see near-constant pixels, where a finite-difference step of
    // 1e-3 on a weight is no longer small.
    let mut rng = Rng::seed_from(5);
    m.visit_params_mut("", &mut |_, p| {
        p.value = Tensor::randn(p.shape(), 0.0, 0.5, &mut rng);
    });
    check_layer(&mut m, &random(&[2, 1, 8, 8], 5), DEEP);
}

#[test]
fn stochastic_depth_only_in_training() {
    let x = random(&[8, 1, 28, 28], 6);
    let plain = ConvNeXtConfig {
        stochastic_depth_prob: 0.0,
        layer_scale: 1.0,
        ..ConvNeXtConfig::tiny28()
    };
    let mut m = convnext(&plain, &mut Rng::seed_from(7)).unwrap();
    let y = m.infer(&x).unwrap();
    assert!(
        m.forward(&x).unwrap().allclose(&y, 1e-5, 1e-6),
        "no dropping, no difference"
    );
    let dropping = ConvNeXtConfig {
        stochastic_depth_prob: 0.9,
        ..plain
    };
    let mut m = convnext(&dropping, &mut Rng::seed_from(7)).unwrap();
    assert_eq!(
        m.infer(&x).unwrap(),
        y,
        "same weights: the seed draws them first"
    );
    let a = m.forward(&x).unwrap();
    assert!(
        !a.allclose(&y, 1e-3, 1e-3),
        "blocks are dropped in training"
    );
    let b = m.forward(&x).unwrap();
    assert_ne!(a, b, "new draws at each step");
    // The generators are visited, so a run can be replayed.
    let mut saved = Vec::new();
    m.visit_rngs_mut("", &mut |_, r| saved.push(r.clone()));
    assert_eq!(saved.len(), 4);
    let c = m.forward(&x).unwrap();
    let mut i = 0;
    m.visit_rngs_mut("", &mut |_, r| {
        *r = saved[i].clone();
        i += 1;
    });
    assert_eq!(m.forward(&x).unwrap(), c);
}

#[test]
fn tiny28_trains_and_every_parameter_learns() {
    let mut rng = Rng::seed_from(8);
    let mut m = build("convnext_tiny28", &ModelConfig::mnist(), &mut rng).unwrap();
    assert_eq!(m.num_params(), 366_634);
    let x = random(&[16, 1, 28, 28], 9);
    let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();
    // The step asserts that every parameter gets a gradient.
    let first = sgd_step(m.as_mut(), &x, &labels, 0.1);
    let mut last = first;
    for _ in 0..15 {
        last = sgd_step(m.as_mut(), &x, &labels, 0.1);
    }
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    // Every parameter moves in one step (layer scale 1); with the
    // ImageNet models' 1e-6 the blocks' own weights get gradients too, but
    // a million times smaller.
    let mut m = convnext(&ConvNeXtConfig::tiny28(), &mut Rng::seed_from(8)).unwrap();
    let before = param_values(&m);
    sgd_step(&mut m, &x, &labels, 0.1);
    assert_every_param_moved(&m, &before);
    let faithful = ConvNeXtConfig {
        layer_scale: 1e-6,
        ..ConvNeXtConfig::tiny28()
    };
    let mut m = convnext(&faithful, &mut Rng::seed_from(8)).unwrap();
    m.forward(&x).unwrap();
    m.backward(&Tensor::ones(&[16, 10])).unwrap();
    m.visit_params("", &mut |n, p| {
        let g = p.grad.as_slice().iter().fold(0f32, |a, v| a.max(v.abs()));
        if !n.starts_with("features.1.0.") {
            return;
        }
        if n.ends_with("layer_scale") {
            assert!(g > 1e-3, "{n}: {g}");
        } else {
            assert!(g > 0.0 && g < 1e-3, "{n}: {g}");
        }
    });
}

#[test]
fn registry_configurations_and_errors() {
    let mut rng = Rng::seed_from(0);
    let cfg = ModelConfig {
        in_channels: 3,
        image_size: 32,
        num_classes: 5,
        variant: None,
    };
    let m = build("convnext_tiny28", &cfg, &mut rng).unwrap();
    assert_eq!(
        m.infer(&Tensor::zeros(&[1, 3, 32, 32])).unwrap().shape(),
        &[1, 5]
    );
    let e = build("convnext_tiny", &ModelConfig::mnist(), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("convnext_tiny") && e.contains("28x28"), "{e}");
    let e = build(
        "convnext_tiny28",
        &ModelConfig {
            variant: Some("xl".into()),
            ..ModelConfig::mnist()
        },
        &mut rng,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("xl"), "{e}");
    // A bad input is an error naming where it failed.
    let e = m
        .infer(&Tensor::zeros(&[1, 1, 32, 32]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("features.0.0"), "{e}");
}
