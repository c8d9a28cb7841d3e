use super::*;
use crate::test_util::TinyModel;
use convnet_tensor::Tensor;

/// Minimises f(w) = ½ Σ (w − 3)² with gradient w − 3.
fn run(config: OptimizerConfig, steps: usize) -> Vec<f32> {
    let mut model = TinyModel::new(&[4], 0.0);
    let mut opt = Optimizer::new(config.clone(), &model).unwrap();
    for _ in 0..steps {
        model.zero_grad();
        model.visit_params_mut("", &mut |_, p| {
            let g: Vec<f32> = p.value.as_slice().iter().map(|w| w - 3.0).collect();
            p.grad = Tensor::from_vec(p.shape(), g).unwrap();
        });
        opt.step(&mut model, config.lr()).unwrap();
    }
    model.values()
}

#[test]
fn every_rule_converges_on_a_quadratic() {
    for config in [
        OptimizerConfig::sgd(0.1, 0.0),
        OptimizerConfig::sgd(0.05, 0.9),
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adam(0.1),
        OptimizerConfig::adamw(0.1, 0.0),
    ] {
        let w = run(config.clone(), 300);
        for v in w {
            assert!((v - 3.0).abs() < 1e-2, "{config:?}: {v}");
        }
    }
}

#[test]
fn sgd_momentum_matches_hand_computation() {
    // w0 = 0, g = w - 3: step 1: buf = -3, w = 0.3; step 2: g = -2.7,
    // buf = 0.9 * -3 - 2.7 = -5.4, w = 0.3 + 0.54 = 0.84.
    let w = run(OptimizerConfig::sgd(0.1, 0.9), 2);
    assert!((w[0] - 0.84).abs() < 1e-6, "{w:?}");
    // Nesterov: step 1: d = -3, buf = -3, step = -3 - 2.7 = -5.7, w = 0.57.
    let w = run(
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        },
        1,
    );
    assert!((w[0] - 0.57).abs() < 1e-6, "{w:?}");
    // Weight decay 0.5 at w = 0 changes nothing on the first step.
    let w = run(
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.5,
        },
        2,
    );
    // step 1: w = 0.3; step 2: d = -2.7 + 0.15 = -2.55, w = 0.555.
    assert!((w[0] - 0.555).abs() < 1e-6, "{w:?}");
}

#[test]
fn adam_first_step_is_lr_times_sign() {
    // With bias correction, Adam's first step is lr · g / (|g| + eps').
    let w = run(OptimizerConfig::adam(0.01), 1);
    assert!((w[0] - 0.01).abs() < 1e-6, "{w:?}");
    // AdamW decays the weights multiplicatively: start at 0 -> no effect.
    let w = run(OptimizerConfig::adamw(0.01, 0.1), 1);
    assert!((w[0] - 0.01).abs() < 1e-6, "{w:?}");
}

#[test]
fn adamw_decay_is_decoupled() {
    // Zero gradient: Adam with L2 moves w by lr·sign; AdamW by lr·wd·w.
    let mut model = TinyModel::new(&[1], 2.0);
    let mut opt = Optimizer::new(OptimizerConfig::adamw(0.1, 0.5), &model).unwrap();
    model.zero_grad();
    opt.step(&mut model, 0.1).unwrap();
    assert!((model.values()[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
    let mut model = TinyModel::new(&[1], 2.0);
    let mut opt = Optimizer::new(
        OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
        },
        &model,
    )
    .unwrap();
    model.zero_grad();
    opt.step(&mut model, 0.1).unwrap();
    assert!(
        (model.values()[0] - 1.9).abs() < 1e-5,
        "{:?}",
        model.values()
    );
}

#[test]
fn bad_configs_and_states_are_rejected() {
    let model = TinyModel::new(&[2], 0.0);
    for bad in [
        OptimizerConfig::sgd(-1.0, 0.9),
        OptimizerConfig::sgd(0.1, 1.5),
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adam(f32::NAN),
    ] {
        assert!(Optimizer::new(bad.clone(), &model).is_err(), "{bad:?}");
    }
    let mut sgd = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9), &model).unwrap();
    let adam = Optimizer::new(OptimizerConfig::adam(0.1), &model).unwrap();
    let e = sgd
        .load_state(adam.state().clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("adam"), "{e}");
    let other = TinyModel::new(&[3], 0.0);
    let other_opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9), &other).unwrap();
    let e = sgd
        .load_state(other_opt.state().clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3]"), "{e}");
    // Stepping a different model is an error, not a panic.
    let mut other = other;
    assert!(sgd.step(&mut other, 0.1).is_err());
}

#[test]
fn state_round_trip_resumes_exactly() {
    let config = OptimizerConfig::adam(0.05);
    let grad = |model: &mut TinyModel| {
        model.zero_grad();
        model.visit_params_mut("", &mut |_, p| {
            let g: Vec<f32> = p.value.as_slice().iter().map(|w| w * w - 1.0).collect();
            p.grad = Tensor::from_vec(p.shape(), g).unwrap();
        });
    };
    let mut a = TinyModel::new(&[3], 0.3);
    let mut opt_a = Optimizer::new(config.clone(), &a).unwrap();
    for _ in 0..10 {
        grad(&mut a);
        opt_a.step(&mut a, 0.05).unwrap();
    }
    let mut b = TinyModel::new(&[3], 0.3);
    let mut opt_b = Optimizer::new(config.clone(), &b).unwrap();
    for _ in 0..4 {
        grad(&mut b);
        opt_b.step(&mut b, 0.05).unwrap();
    }
    let bytes = bincode::serde::encode_to_vec(opt_b.state(), bincode::config::standard()).unwrap();
    let (state, _): (OptimizerState, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    let mut opt_c = Optimizer::new(config, &b).unwrap();
    opt_c.load_state(state).unwrap();
    for _ in 0..6 {
        grad(&mut b);
        opt_c.step(&mut b, 0.05).unwrap();
    }
    assert_eq!(a.values(), b.values());
}
