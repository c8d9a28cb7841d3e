//! Swin Transformer: torchvision's parameter names, shapes, buffers and
//! counts for T, S and B (built, never run, at 224×224), multiply-adds
//! against torchvision's published figures, gradient checks of the block
//! (shifted windows, padding, masks) and of a whole tiny network, small
//! inputs, and training steps.

mod common;

use common::{
    assert_every_param_moved, block_tolerance, check_block, check_layer_with as check_layer,
    param_values, random, sgd_step,
};
use convnet_layers::{summary, Layer};
use convnet_tensor::gradcheck::GradCheck;
use convnet_tensor::{Rng, Tensor};
use convnet_zoo::flops::macs;
use convnet_zoo::swin::{swin, swin_block, SwinConfig};
use convnet_zoo::{build, entry, ModelConfig};

/// torchvision's `SwinTransformer.state_dict()` parameter keys and shapes,
/// written from the module structure (`features.0.{0, 2}` patch
/// embedding, blocks `norm1`, `attn.{relative_position_bias_table, qkv,
/// proj}`, `norm2`, `mlp.{0, 3}`, `PatchMerging` `reduction` then `norm`,
/// final `norm` and `head`).
fn torchvision_keys(e: usize, depths: &[usize], heads: &[usize]) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("features.0.0.weight".into(), vec![e, 3, 4, 4]),
        ("features.0.0.bias".into(), vec![e]),
        ("features.0.2.weight".into(), vec![e]),
        ("features.0.2.bias".into(), vec![e]),
    ];
    for (s, (&depth, &h)) in depths.iter().zip(heads).enumerate() {
        let d = e << s;
        for b in 0..depth {
            let p = format!("features.{}.{b}", 2 * s + 1);
            v.push((format!("{p}.norm1.weight"), vec![d]));
            v.push((format!("{p}.norm1.bias"), vec![d]));
            v.push((
                format!("{p}.attn.relative_position_bias_table"),
                vec![169, h],
            ));
            v.push((format!("{p}.attn.qkv.weight"), vec![3 * d, d]));
            v.push((format!("{p}.attn.qkv.bias"), vec![3 * d]));
            v.push((format!("{p}.attn.proj.weight"), vec![d, d]));
            v.push((format!("{p}.attn.proj.bias"), vec![d]));
            v.push((format!("{p}.norm2.weight"), vec![d]));
            v.push((format!("{p}.norm2.bias"), vec![d]));
            v.push((format!("{p}.mlp.0.weight"), vec![4 * d, d]));
            v.push((format!("{p}.mlp.0.bias"), vec![4 * d]));
            v.push((format!("{p}.mlp.3.weight"), vec![d, 4 * d]));
            v.push((format!("{p}.mlp.3.bias"), vec![d]));
        }
        if s + 1 < depths.len() {
            let p = format!("features.{}", 2 * s + 2);
            v.push((format!("{p}.reduction.weight"), vec![2 * d, 4 * d]));
            v.push((format!("{p}.norm.weight"), vec![4 * d]));
            v.push((format!("{p}.norm.bias"), vec![4 * d]));
        }
    }
    let last = e << (depths.len() - 1);
    v.push(("norm.weight".into(), vec![last]));
    v.push(("norm.bias".into(), vec![last]));
    v.push(("head.weight".into(), vec![1000, last]));
    v.push(("head.bias".into(), vec![1000]));
    v
}

#[test]
fn t_s_b_equal_torchvision() {
    // (name, E, depths, heads, parameters, torchvision's "GFLOPS" column)
    let cases = [
        (
            "swin_t",
            96,
            [2, 2, 6, 2],
            [3, 6, 12, 24],
            28_288_354usize,
            4.49,
        ),
        (
            "swin_s",
            96,
            [2, 2, 18, 2],
            [3, 6, 12, 24],
            49_606_258,
            8.74,
        ),
        (
            "swin_b",
            128,
            [2, 2, 18, 2],
            [4, 8, 16, 32],
            87_768_224,
            15.43,
        ),
    ];
    for (name, e, depths, heads, count, gmacs) in cases {
        let want = torchvision_keys(e, &depths, &heads);
        let from_spec: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(from_spec, count, "{name}: the key list itself");
        let entry = entry(name).unwrap();
        let cfg = (entry.default_config)();
        assert_eq!(cfg, ModelConfig::imagenet());
        let model = entry.build(&cfg, &mut Rng::seed_from(0)).unwrap();
        assert_eq!(model.num_params(), count, "{name}");
        assert_eq!(model.param_shapes(), want, "{name}: names, shapes, order");
        assert!(entry.description.contains(&{
            let s = count.to_string();
            format!(
                "{},{},{}",
                &s[..s.len() - 6],
                &s[s.len() - 6..s.len() - 3],
                &s[s.len() - 3..]
            )
        }));
        // One relative_position_index buffer per block, torchvision's 7×7 index.
        let mut buffers = Vec::new();
        model.visit_buffers("", &mut |k, b| buffers.push((k.to_string(), b.clone())));
        assert_eq!(buffers.len(), depths.iter().sum::<usize>(), "{name}");
        assert_eq!(buffers[0].0, "features.1.0.attn.relative_position_index");
        assert_eq!(buffers[0].1.shape(), [2401]);
        assert_eq!(buffers[0].1.as_slice()[..3], [84.0, 83.0, 82.0]);
        let input = [1, 3, 224, 224];
        let s = summary(&model, &input).unwrap();
        assert_eq!(s.total_params, count);
        assert_eq!(s.output_shape, vec![1, 1000]);
        let flow = s.shape_flow();
        for (i, hw) in [56, 28, 14, 7].into_iter().enumerate() {
            assert!(flow.contains(&vec![hw, hw, e << i]), "{name}: {flow:?}");
        }
        let g = macs(&model, &input).unwrap() as f64 / 1e9;
        assert_eq!((g * 100.0).round() / 100.0, gmacs, "{name}: {g} GMAC");
    }
}

#[test]
fn initialisation_follows_torchvision() {
    let cfg = SwinConfig {
        embed_dim: 16,
        depths: vec![2, 2],
        num_heads: vec![2, 4],
        ..SwinConfig::t()
    };
    let m = swin(&cfg, &mut Rng::seed_from(3)).unwrap();
    m.visit_params("", &mut |name, p| {
        let v = p.value.as_slice();
        let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        if name.starts_with("features.0.0") {
            // PyTorch's default Conv2d init: uniform within 1/sqrt(48).
            assert!(v.iter().all(|x| x.abs() <= 1.0 / 48f32.sqrt()), "{name}");
        } else if name.ends_with("bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if p.shape().len() == 1 {
            assert!(v.iter().all(|&x| x == 1.0), "{name}: LayerNorm weight");
        } else {
            // Linear weights and bias tables: trunc_normal_(std = 0.02).
            assert!((std - 0.02).abs() < 0.004, "{name}: std {std}");
        }
    });
}

#[test]
fn gradient_of_the_block_shifted_padded_and_with_stochastic_depth() {
    let mut rng = Rng::seed_from(1);
    // 5×4 map, window 3: padded to 6×6, shift 1 with masks; then unshifted.
    for (shift, p) in [(1, 0.0), (0, 0.0), (1, 0.5)] {
        let mut block = swin_block(4, 2, 3, shift, 2, p, &mut rng).unwrap();
        check_block(&mut block, &random(&[2, 5, 4, 4], 3), block_tolerance(), 64);
    }
}

#[test]
fn gradient_of_a_whole_tiny_swin() {
    let cfg = SwinConfig {
        in_channels: 1,
        num_classes: 3,
        patch_size: 2,
        embed_dim: 4,
        depths: vec![2, 1],
        num_heads: vec![1, 2],
        window_size: 2,
        mlp_ratio: 2,
        stochastic_depth_prob: 0.5,
    };
    let mut m = swin(&cfg, &mut Rng::seed_from(4)).unwrap();
    // Weights of order one: torchvision's std 0.02 would leave the
    // LayerNorms seeing near-constant inputs.
    let mut rng = Rng::seed_from(5);
    m.visit_params_mut("", &mut |_, p| {
        p.value = Tensor::randn(p.shape(), 0.0, 0.5, &mut rng);
    });
    // 10×10 image: 5×5 patches (padded to 6×6 windows, shifted), merged
    // with padding to 3×3.
    let deep = GradCheck {
        eps: 1e-3,
        rtol: 2e-2,
        atol: 2e-3,
    };
    check_layer(&mut m, &random(&[2, 1, 10, 10], 5), deep);
}

#[test]
fn small_images_build_and_run_and_too_small_ones_are_refused() {
    let mut rng = Rng::seed_from(6);
    for (name, cfg) in [
        ("swin_t", ModelConfig::mnist()),
        (
            "swin_t",
            ModelConfig {
                in_channels: 3,
                image_size: 32,
                num_classes: 10,
                variant: None,
            },
        ),
    ] {
        let m = build(name, &cfg, &mut rng).unwrap();
        let x = random(&cfg.input_shape(2), 7);
        let y = m.infer(&x).unwrap();
        assert_eq!(y.shape(), [2, cfg.num_classes]);
        assert!(y.as_slice().iter().all(|v| v.is_finite()));
        let s = summary(m.as_ref(), &cfg.input_shape(1)).unwrap();
        // 28 -> 7, 4, 2, 1 (padded to one 7×7 window); 32 -> 8 (two
        // shifted windows per axis), 4, 2, 1.
        let side = cfg.image_size / 4;
        assert!(s.shape_flow().contains(&vec![side, side, 96]));
    }
    let tiny = ModelConfig {
        image_size: 3,
        ..ModelConfig::mnist()
    };
    let e = build("swin_s", &tiny, &mut rng).unwrap_err().to_string();
    assert!(e.contains("swin_s") && e.contains("3x3"), "{e}");
    let variant = ModelConfig {
        variant: Some("v2".into()),
        ..ModelConfig::mnist()
    };
    let e = build("swin_b", &variant, &mut rng).unwrap_err().to_string();
    assert!(e.contains("v2"), "{e}");
}

#[test]
fn a_small_swin_trains_and_every_parameter_learns() {
    let cfg = SwinConfig {
        in_channels: 1,
        num_classes: 10,
        embed_dim: 16,
        depths: vec![2, 2],
        num_heads: vec![2, 4],
        stochastic_depth_prob: 0.1,
        ..SwinConfig::t()
    };
    let mut m = swin(&cfg, &mut Rng::seed_from(8)).unwrap();
    let x = random(&[16, 1, 28, 28], 9);
    let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();
    let before = param_values(&m);
    // The step asserts that every parameter gets a non-zero gradient.
    let first = sgd_step(&mut m, &x, &labels, 0.2);
    assert_every_param_moved(&m, &before);
    let mut last = first;
    for _ in 0..20 {
        last = sgd_step(&mut m, &x, &labels, 0.2);
    }
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    // Stochastic depth only in training; its generators are visited with
    // distinct names.
    let mut names = Vec::new();
    m.visit_rngs_mut("", &mut |n, _| names.push(n.to_string()));
    assert!(names.contains(&"features.1.1.stochastic_depth_mlp".to_string()));
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "{names:?}");
}
