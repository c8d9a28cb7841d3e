//! Vision Transformer: torchvision's parameter names, shapes and counts
//! (ViT-B/16, and the DeiT sizes Ti and S; built, never run, at 224×224),
//! the token assembly against a direct computation, gradient checks of the
//! encoder block and of a whole tiny ViT, dropout, and training steps of
//! the 28×28 variant.

mod common;

use common::{
    assert_every_param_moved, check_layer_with as check_layer, param_values, random, sgd_step,
    sgd_step_unchecked,
};
use convnet_layers::{summary, Layer};
use convnet_tensor::gradcheck::GradCheck;
use convnet_tensor::{Rng, Tensor};
use convnet_zoo::vit::{encoder_block, vit, ViTConfig};
use convnet_zoo::{build, entry, ModelConfig};

const DEEP: GradCheck = GradCheck {
    eps: 1e-3,
    rtol: 1e-2,
    atol: 1e-3,
};

/// torchvision's `VisionTransformer.state_dict()` keys and shapes, written
/// from its module structure.
fn torchvision_keys(
    d: usize,
    layers: usize,
    mlp: usize,
    patch: usize,
    tokens: usize,
    classes: usize,
) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("class_token".into(), vec![1, 1, d]),
        ("conv_proj.weight".into(), vec![d, 3, patch, patch]),
        ("conv_proj.bias".into(), vec![d]),
        ("encoder.pos_embedding".into(), vec![1, tokens, d]),
    ];
    for i in 0..layers {
        let p = format!("encoder.layers.encoder_layer_{i}");
        v.push((format!("{p}.ln_1.weight"), vec![d]));
        v.push((format!("{p}.ln_1.bias"), vec![d]));
        v.push((format!("{p}.self_attention.in_proj_weight"), vec![3 * d, d]));
        v.push((format!("{p}.self_attention.in_proj_bias"), vec![3 * d]));
        v.push((format!("{p}.self_attention.out_proj.weight"), vec![d, d]));
        v.push((format!("{p}.self_attention.out_proj.bias"), vec![d]));
        v.push((format!("{p}.ln_2.weight"), vec![d]));
        v.push((format!("{p}.ln_2.bias"), vec![d]));
        v.push((format!("{p}.mlp.0.weight"), vec![mlp, d]));
        v.push((format!("{p}.mlp.0.bias"), vec![mlp]));
        v.push((format!("{p}.mlp.3.weight"), vec![d, mlp]));
        v.push((format!("{p}.mlp.3.bias"), vec![d]));
    }
    v.push(("encoder.ln.weight".into(), vec![d]));
    v.push(("encoder.ln.bias".into(), vec![d]));
    v.push(("heads.head.weight".into(), vec![classes, d]));
    v.push(("heads.head.bias".into(), vec![classes]));
    v
}

#[test]
fn b16_s16_ti16_equal_torchvision() {
    for (name, d, count) in [
        ("vit_b_16", 768, 86_567_656usize),
        ("vit_s_16", 384, 22_050_664),
        ("vit_ti_16", 192, 5_717_416),
    ] {
        let want = torchvision_keys(d, 12, 4 * d, 16, 197, 1000);
        let from_spec: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(from_spec, count, "{name}: the key list itself");
        let e = entry(name).unwrap();
        let cfg = (e.default_config)();
        assert_eq!(cfg, ModelConfig::imagenet());
        let model = e.build(&cfg, &mut Rng::seed_from(0)).unwrap();
        assert_eq!(model.num_params(), count, "{name}");
        assert_eq!(model.param_shapes(), want, "{name}: names, shapes, order");
        let s = summary(&model, &[2, 3, 224, 224]).unwrap();
        assert_eq!(
            (s.total_params, s.output_shape.clone()),
            (count, vec![2, 1000])
        );
        let flow = s.shape_flow();
        for shape in [vec![d, 14, 14], vec![197, d], vec![d], vec![1000]] {
            assert!(flow.contains(&shape), "{name}: {shape:?} not in {flow:?}");
        }
    }
}

#[test]
fn initialisation_follows_torchvision() {
    let model = vit(&ViTConfig::tiny28(), &mut Rng::seed_from(1)).unwrap();
    model.visit_params("", &mut |name, p| {
        let v = p.value.as_slice();
        let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        let all = |x: f32| v.iter().all(|&a| a == x);
        match name {
            "class_token" | "conv_proj.bias" | "heads.head.weight" | "heads.head.bias" => {
                assert!(all(0.0), "{name}")
            }
            "conv_proj.weight" => assert!((std - (1.0f32 / 49.0).sqrt()).abs() < 0.03, "{std}"),
            "encoder.pos_embedding" => assert!((std - 0.02).abs() < 0.004, "{std}"),
            n if n.ends_with("in_proj_bias") || n.ends_with("out_proj.bias") => {
                assert!(all(0.0), "{n}")
            }
            n if n.contains(".ln_") || n.starts_with("encoder.ln") => {
                assert!(all(if n.ends_with("weight") { 1.0 } else { 0.0 }), "{n}")
            }
            n if n.contains(".mlp.") && n.ends_with("bias") => {
                assert!(std > 0.0 && std < 1e-5, "{n}: {std}")
            }
            n if n.contains(".mlp.") => {
                // Xavier-uniform on ±sqrt(6 / (64 + 128)).
                let bound = (6.0f32 / 192.0).sqrt();
                assert!(v.iter().all(|x| x.abs() <= bound), "{n}");
                assert!((std - bound / 3f32.sqrt()).abs() < 0.02, "{n}: {std}");
            }
            n => assert!(n.contains("self_attention"), "unexpected parameter {n}"),
        }
    });
}

#[test]
fn tokens_are_patches_in_row_major_order_after_the_class_token() {
    // A direct computation of the forward pass with explicit (row, column)
    // patch loops, against the model's infer.
    let cfg = ViTConfig {
        image_size: 6,
        patch_size: 3,
        in_channels: 2,
        num_classes: 3,
        hidden_dim: 4,
        num_layers: 1,
        num_heads: 2,
        mlp_dim: 8,
        ..ViTConfig::tiny28()
    };
    let mut model = vit(&cfg, &mut Rng::seed_from(2)).unwrap();
    let mut rng = Rng::seed_from(3);
    model.visit_params_mut("", &mut |_, p| {
        p.value = Tensor::randn(p.shape(), 0.0, 0.5, &mut rng)
    });
    let mut params = Vec::new();
    model.visit_params("", &mut |n, p| {
        params.push((n.to_string(), p.value.clone()))
    });
    let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let x = random(&[2, 2, 6, 6], 4);
    let (d, t) = (4, 5);
    let (w, b) = (get("conv_proj.weight"), get("conv_proj.bias"));
    let (class_token, pos_embedding) = (get("class_token"), get("encoder.pos_embedding"));
    let mut tokens = vec![0.0f32; 2 * t * d];
    for n in 0..2 {
        for c in 0..d {
            tokens[n * t * d + c] = class_token.as_slice()[c];
        }
        for (r, col) in (0..2).flat_map(|r| (0..2).map(move |c| (r, c))) {
            let tok = 1 + r * 2 + col;
            for o in 0..d {
                let mut acc = b.as_slice()[o];
                for ch in 0..2 {
                    for i in 0..3 {
                        for j in 0..3 {
                            acc += w.at(&[o, ch, i, j]) * x.at(&[n, ch, 3 * r + i, 3 * col + j]);
                        }
                    }
                }
                tokens[(n * t + tok) * d + o] = acc;
            }
        }
        for k in 0..t * d {
            tokens[n * t * d + k] += pos_embedding.as_slice()[k];
        }
    }
    let tokens = Tensor::from_vec(&[2, t, d], tokens).unwrap();
    // The one encoder block, with the model's weights.
    let mut block = encoder_block(&cfg, &mut Rng::seed_from(0)).unwrap();
    block.visit_params_mut("encoder.layers.encoder_layer_0", &mut |n, p| {
        p.value = get(n)
    });
    let encoded = block.infer(&tokens).unwrap();
    // encoder.ln on every token, then the class token, then the head.
    let mut logits = Vec::new();
    let (lw, lb, hw, hb) = (
        get("encoder.ln.weight"),
        get("encoder.ln.bias"),
        get("heads.head.weight"),
        get("heads.head.bias"),
    );
    for n in 0..2 {
        let cls: Vec<f64> = (0..d).map(|c| encoded.at(&[n, 0, c]) as f64).collect();
        let mean = cls.iter().sum::<f64>() / d as f64;
        let var = cls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let normed: Vec<f64> = (0..d)
            .map(|c| {
                (cls[c] - mean) / (var + 1e-6).sqrt() * lw.as_slice()[c] as f64
                    + lb.as_slice()[c] as f64
            })
            .collect();
        for k in 0..3 {
            let z: f64 = (0..d).map(|c| hw.at(&[k, c]) as f64 * normed[c]).sum();
            logits.push((z + hb.as_slice()[k] as f64) as f32);
        }
    }
    let want = Tensor::from_vec(&[2, 3], logits).unwrap();
    let got = model.infer(&x).unwrap();
    assert!(got.allclose(&want, 1e-4, 1e-5), "{got:?} vs {want:?}");
    assert!(model.forward(&x).unwrap().allclose(&want, 1e-4, 1e-5));
}

#[test]
fn gradient_of_the_encoder_block_with_dropout() {
    let cfg = ViTConfig {
        hidden_dim: 4,
        num_heads: 2,
        mlp_dim: 8,
        dropout: 0.2,
        attention_dropout: 0.2,
        ..ViTConfig::tiny28()
    };
    let mut block = encoder_block(&cfg, &mut Rng::seed_from(5)).unwrap();
    check_layer(&mut block, &random(&[2, 3, 4], 6), DEEP);
}

#[test]
fn gradient_of_a_whole_tiny_vit() {
    let cfg = ViTConfig {
        image_size: 4,
        patch_size: 2,
        in_channels: 2,
        num_classes: 3,
        hidden_dim: 4,
        num_layers: 2,
        num_heads: 2,
        mlp_dim: 8,
        dropout: 0.1,
        attention_dropout: 0.1,
    };
    let mut model = vit(&cfg, &mut Rng::seed_from(7)).unwrap();
    // A non-zero head (torchvision starts it at zero, which would hide every
    // other gradient) and a non-zero class token.
    let mut rng = Rng::seed_from(8);
    model.visit_params_mut("", &mut |_, p| {
        p.value = Tensor::randn(p.shape(), 0.0, 0.5, &mut rng)
    });
    check_layer(&mut model, &random(&[2, 2, 4, 4], 9), DEEP);
}

#[test]
fn dropout_only_in_training_and_replayable() {
    let x = random(&[4, 1, 28, 28], 10);
    let mut plain = build("vit_tiny28", &ModelConfig::mnist(), &mut Rng::seed_from(11)).unwrap();
    // A random head (torchvision's is zero, which would hide everything).
    let head = |m: &mut dyn Layer| {
        let mut rng = Rng::seed_from(1);
        m.visit_params_mut("heads.head", &mut |_, p| {
            p.value = Tensor::randn(p.shape(), 0.0, 1.0, &mut rng)
        });
    };
    head(plain.as_mut());
    let y = plain.infer(&x).unwrap();
    assert!(plain.forward(&x).unwrap().allclose(&y, 1e-5, 1e-6));
    let cfg = ViTConfig {
        dropout: 0.3,
        attention_dropout: 0.3,
        ..ViTConfig::tiny28()
    };
    let mut model = vit(&cfg, &mut Rng::seed_from(11)).unwrap();
    head(&mut model);
    let mut names = Vec::new();
    model.visit_rngs_mut("", &mut |n, _| names.push(n.to_string()));
    assert_eq!(
        names.len(),
        1 + 4 * 4,
        "encoder.dropout, then per block attention + 3 dropouts"
    );
    assert_eq!(names[0], "encoder.dropout");
    assert!(names.contains(&"encoder.layers.encoder_layer_3.self_attention".to_string()));
    let a = model.forward(&x).unwrap();
    assert!(!a.allclose(&model.infer(&x).unwrap(), 1e-4, 1e-4));
    assert_ne!(a, model.forward(&x).unwrap());
    let mut saved = Vec::new();
    model.visit_rngs_mut("", &mut |_, r| saved.push(r.clone()));
    let b = model.forward(&x).unwrap();
    let mut i = 0;
    model.visit_rngs_mut("", &mut |_, r| {
        *r = saved[i].clone();
        i += 1;
    });
    assert_eq!(
        model.forward(&x).unwrap(),
        b,
        "the same generators, the same masks"
    );
}

#[test]
fn tiny28_trains_and_every_parameter_learns() {
    let mut m = build("vit_tiny28", &ModelConfig::mnist(), &mut Rng::seed_from(12)).unwrap();
    assert_eq!(m.num_params(), 139_018);
    let x = random(&[16, 1, 28, 28], 13);
    let labels: Vec<usize> = (0..16).map(|i| (i * 7) % 10).collect();
    let before = param_values(m.as_ref());
    // The head starts at zero: the first step moves the head only, the
    // second reaches everything (the checked step asserts it).
    let first = sgd_step_unchecked(m.as_mut(), &x, &labels, 0.05);
    assert!(
        (first - 10f64.ln()).abs() < 1e-5,
        "uniform logits at start: {first}"
    );
    sgd_step(m.as_mut(), &x, &labels, 0.05);
    let mut last = first;
    for _ in 0..25 {
        last = sgd_step(m.as_mut(), &x, &labels, 0.05);
    }
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert_every_param_moved(m.as_ref(), &before);
    // A copy computes the same thing.
    let copy = m.clone_boxed().unwrap();
    assert_eq!(copy.infer(&x).unwrap(), m.infer(&x).unwrap());
    assert_eq!(copy.param_shapes(), m.param_shapes());
}

#[test]
fn registry_configurations_and_errors() {
    let mut rng = Rng::seed_from(0);
    let e = build("vit_b_16", &ModelConfig::mnist(), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vit_b_16") && e.contains("patch_size (16) must divide image_size (28)"),
        "{e}"
    );
    let rgb32 = ModelConfig {
        in_channels: 3,
        image_size: 35,
        num_classes: 4,
        variant: None,
    };
    let m = build("vit_tiny28", &rgb32, &mut rng).unwrap();
    assert_eq!(m.output_shape(&[2, 3, 35, 35]).unwrap(), vec![2, 4]);
    let e = m
        .infer(&Tensor::zeros(&[2, 3, 28, 28]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ExpectShape") && e.contains("[N, 3, 35, 35]"),
        "{e}"
    );
    assert!(m.output_shape(&[2, 1, 35, 35]).is_err());
    let e = build(
        "vit_tiny28",
        &ModelConfig {
            variant: Some("large".into()),
            ..ModelConfig::mnist()
        },
        &mut rng,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("large"), "{e}");
    let mut fresh = build("vit_tiny28", &ModelConfig::mnist(), &mut rng).unwrap();
    assert!(fresh.backward(&Tensor::zeros(&[1, 10])).is_err());
    fresh.forward(&Tensor::zeros(&[1, 1, 28, 28])).unwrap();
    assert!(fresh.backward(&Tensor::zeros(&[1, 9])).is_err());
}
