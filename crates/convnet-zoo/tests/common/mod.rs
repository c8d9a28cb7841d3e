//! Helpers shared by the zoo's tests: finite-difference gradient checks of
//! whole blocks and models (on top of `convnet_layers::testing`, which
//! checks single layers and is re-exported here), and a softmax
//! cross-entropy with a plain SGD step for training steps.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use convnet_layers::testing::{check_layer_with, random};
use convnet_layers::testing::{restore_rngs, snapshot_rngs};
use convnet_layers::Layer;
use convnet_tensor::gradcheck::{check_gradient, project, projection, GradCheck};
use convnet_tensor::{Rng, Tensor};

/// Tolerances for composite blocks. BatchNorm over small batches and the
/// ReLUs after it make a block strongly nonlinear at the scale of a
/// finite-difference step: a smaller step than for single layers (1e-3),
/// and a slightly wider tolerance for the f32 noise of several layers; a
/// wrong gradient is still off by far more.
pub fn block_tolerance() -> GradCheck {
    GradCheck {
        eps: 1e-3,
        rtol: 2e-2,
        atol: 2e-3,
    }
}

/// Tolerances for whole tiny networks whose BatchNorms see only a handful
/// of values per channel (8 in the tiny GoogLeNet's auxiliary heads), which
/// makes them curved at the scale of 1e-3: a step of 2e-4, which f32 still
/// resolves on networks this small.
pub fn tiny_net_tolerance() -> GradCheck {
    GradCheck {
        eps: 2e-4,
        ..block_tolerance()
    }
}

/// Gives every parameter a unit-scale random value: weights of two or more
/// axes uniform with variance `1 / fan_in`, one-axis weights (BatchNorm's
/// scale) in `[0.5, 1.5)`, biases in `[-0.5, 0.5)`. A gradient's
/// correctness does not depend on the values, but the finite differences
/// do: torchvision's GoogLeNet weights (std 0.01) normalised by a
/// BatchNorm would make a step of 1e-3 a 10% change.
pub fn randomize_params<L: Layer + ?Sized>(layer: &mut L, seed: u64) {
    let mut rng = Rng::seed_from(seed);
    layer.visit_params_mut("", &mut |name, p| {
        let shape = p.shape().to_vec();
        let fan_in: usize = shape.get(1..).map(|s| s.iter().product()).unwrap_or(1);
        for v in p.value.as_slice_mut() {
            *v = if shape.len() >= 2 {
                rng.uniform(-1.0, 1.0) * (3.0 / fan_in.max(1) as f32).sqrt()
            } else if name.ends_with("weight") {
                rng.uniform(0.5, 1.5)
            } else {
                rng.uniform(-0.5, 0.5)
            };
        }
    });
}

/// Indices checked in a tensor of `len` elements: all of them, or
/// `max` evenly spread ones.
fn sample(len: usize, max: usize) -> Vec<usize> {
    if len <= max {
        (0..len).collect()
    } else {
        // One index per bucket [i·len/max, (i+1)·len/max), jittered inside it.
        (0..max)
            .map(|i| {
                let (lo, hi) = (i * len / max, (i + 1) * len / max);
                lo + (i * 7919) % (hi - lo)
            })
            .collect()
    }
}

fn set_param_elements<L: Layer + ?Sized>(layer: &mut L, name: &str, idx: &[usize], values: &[f32]) {
    let mut found = false;
    layer.visit_params_mut("", &mut |n, p| {
        if n == name {
            let s = p.value.as_slice_mut();
            for (&i, &v) in idx.iter().zip(values) {
                s[i] = v;
            }
            found = true;
        }
    });
    assert!(found, "parameter {name} not found");
}

/// Checks by central finite differences the input gradient and the
/// gradients of the parameters of a training-mode computation:
/// `loss(layer, x)` runs forward passes and returns a scalar;
/// `analytic(layer, x)` runs the same forward passes and the backward pass
/// of that scalar, returning the input gradient (parameter gradients are
/// zeroed before). Random generators (dropout) are restored before every
/// evaluation. Parameters are first given random unit-scale values
/// ([`randomize_params`]). Parameters with more than `max_per_param`
/// elements are checked on a spread sample of that many. Panics naming the
/// tensor.
pub fn check_with<L: Layer + ?Sized>(
    layer: &mut L,
    x: &Tensor,
    mut loss: impl FnMut(&mut L, &Tensor) -> f64,
    analytic: impl FnOnce(&mut L, &Tensor) -> Tensor,
    cfg: GradCheck,
    max_per_param: usize,
) {
    let what = layer.type_name();
    randomize_params(layer, 1234);
    let rngs = snapshot_rngs(layer);
    layer.zero_grad();
    let gx = analytic(layer, x);
    assert_eq!(gx.shape(), x.shape(), "{what}: input gradient shape");

    let mut eval = |layer: &mut L, x: &Tensor| -> f64 {
        restore_rngs(layer, &rngs);
        loss(layer, x)
    };
    let shape = x.shape().to_vec();
    let xs = x.as_slice().to_vec();
    let mut input_loss = |v: &[f32]| eval(layer, &Tensor::from_slice(&shape, v).unwrap());
    let all: Vec<usize> = (0..xs.len()).collect();
    check_elements(&mut input_loss, &xs, &all, gx.as_slice(), cfg)
        .unwrap_or_else(|e| panic!("{what}: input gradient: {e}"));

    let mut params = Vec::new();
    layer.visit_params("", &mut |n, p| {
        params.push((
            n.to_string(),
            p.value.as_slice().to_vec(),
            p.grad.as_slice().to_vec(),
        ))
    });
    assert!(!params.is_empty() || layer.num_params() == 0);
    for (name, value, grad) in params {
        let idx = sample(value.len(), max_per_param);
        let mut param_loss = |v: &[f32]| {
            set_param_elements(&mut *layer, &name, &(0..v.len()).collect::<Vec<_>>(), v);
            eval(layer, x)
        };
        let result = check_elements(&mut param_loss, &value, &idx, &grad, cfg);
        set_param_elements(
            &mut *layer,
            &name,
            &(0..value.len()).collect::<Vec<_>>(),
            &value,
        );
        result.unwrap_or_else(|e| panic!("{what}: gradient of {name}: {e}"));
    }
}

/// Checks `analytic[i]` for every `i` of `idx` with
/// [`check_gradient`] on element `i` alone: the central difference at
/// `x[i]`, or, if a ReLU kink lies within one step of `x[i]` (the central
/// difference then straddles it), the central difference over
/// `[x[i] − ε, x[i]]` or over `[x[i], x[i] + ε]`: one of the two sides is
/// free of the kink and agrees with a correct gradient, while a wrong
/// gradient disagrees with both. Kinks on both sides (two max-pooling
/// windows switching, a ReLU on each side) get a last try with a step five
/// times smaller, still large enough for f32 on these tiny blocks.
fn check_elements(
    loss: &mut dyn FnMut(&[f32]) -> f64,
    x: &[f32],
    idx: &[usize],
    analytic: &[f32],
    cfg: GradCheck,
) -> Result<(), String> {
    let mut v = x.to_vec();
    let half = GradCheck {
        eps: cfg.eps / 2.0,
        ..cfg
    };
    for &i in idx {
        let orig = x[i];
        let mut at = |center: f32, c: GradCheck, v: &mut Vec<f32>| {
            let r = check_gradient(
                |e: &[f32]| {
                    v[i] = e[0];
                    loss(v)
                },
                &[center],
                &[analytic[i]],
                c,
            );
            v[i] = orig;
            r
        };
        let central = at(orig, cfg, &mut v);
        if central.is_ok() {
            continue;
        }
        let shift = (cfg.eps / 2.0) as f32;
        let small = GradCheck {
            eps: cfg.eps / 5.0,
            ..cfg
        };
        if at(orig - shift, half, &mut v).is_ok()
            || at(orig + shift, half, &mut v).is_ok()
            || at(orig, small, &mut v).is_ok()
        {
            continue;
        }
        return Err(format!("element {i}: {}", central.unwrap_err()));
    }
    Ok(())
}

/// [`check_with`] for the loss `Σ out · r` of a plain layer.
pub fn check_block(layer: &mut dyn Layer, x: &Tensor, cfg: GradCheck, max_per_param: usize) {
    let out_len = layer.output_shape(x.shape()).unwrap().iter().product();
    let r = projection(out_len, 99);
    let out_shape = layer.output_shape(x.shape()).unwrap();
    check_with(
        layer,
        x,
        |l, x| project(l.forward(x).unwrap().as_slice(), &r),
        |l, x| {
            let y = l.forward(x).unwrap();
            assert_eq!(
                y.shape(),
                out_shape.as_slice(),
                "output_shape disagrees with forward"
            );
            l.backward(&Tensor::from_slice(&out_shape, &r).unwrap())
                .unwrap()
        },
        cfg,
        max_per_param,
    );
}

/// Mean softmax cross-entropy of `logits` `[N, K]` for `labels`, and its
/// gradient with respect to the logits.
pub fn cross_entropy(logits: &Tensor, labels: &[usize]) -> (f64, Tensor) {
    let (n, k) = (logits.shape()[0], logits.shape()[1]);
    let mut grad = vec![0.0f32; n * k];
    let mut loss = 0.0f64;
    for (i, &label) in labels.iter().enumerate() {
        let row = &logits.as_slice()[i * k..(i + 1) * k];
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        loss += sum.ln() + max - row[label] as f64;
        for j in 0..k {
            let p = (row[j] as f64 - max).exp() / sum;
            grad[i * k + j] = ((p - (j == label) as u8 as f64) / n as f64) as f32;
        }
    }
    (loss / n as f64, Tensor::from_vec(&[n, k], grad).unwrap())
}

/// One SGD step of `model` on `(x, labels)`: returns the loss before the
/// step. Asserts that every parameter received a non-zero gradient.
pub fn sgd_step(model: &mut dyn Layer, x: &Tensor, labels: &[usize], lr: f32) -> f64 {
    sgd_step_with(model, x, labels, lr, true)
}

/// [`sgd_step`] without the assertion (a ViT's zero head gives the other
/// parameters zero gradients in the first step).
pub fn sgd_step_unchecked(model: &mut dyn Layer, x: &Tensor, labels: &[usize], lr: f32) -> f64 {
    sgd_step_with(model, x, labels, lr, false)
}

fn sgd_step_with(
    model: &mut dyn Layer,
    x: &Tensor,
    labels: &[usize],
    lr: f32,
    every_param_learns: bool,
) -> f64 {
    model.zero_grad();
    let y = model.forward(x).unwrap();
    let (loss, g) = cross_entropy(&y, labels);
    model.backward(&g).unwrap();
    model.visit_params_mut("", &mut |name, p| {
        assert!(
            !every_param_learns || p.grad.as_slice().iter().any(|&v| v != 0.0),
            "{name} has a zero gradient"
        );
        let grad = p.grad.clone();
        p.value.axpy(-lr, &grad).unwrap();
    });
    loss
}

/// The values of every parameter of `model`, in visiting order.
pub fn param_values(model: &dyn Layer) -> Vec<Tensor> {
    let mut v = Vec::new();
    model.visit_params("", &mut |_, p| v.push(p.value.clone()));
    v
}

/// Asserts that every parameter differs from its value in `before`
/// ([`param_values`]), naming the first that did not move.
pub fn assert_every_param_moved(model: &dyn Layer, before: &[Tensor]) {
    let mut i = 0;
    model.visit_params("", &mut |n, p| {
        assert_ne!(p.value, before[i], "{n} did not move");
        i += 1;
    });
}
