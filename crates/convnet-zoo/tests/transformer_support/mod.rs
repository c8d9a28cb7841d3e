//! Helpers shared by the ConvNeXt and ViT tests: a finite-difference check
//! of a layer's input and parameter gradients, a softmax cross-entropy and a
//! plain SGD step.

#![allow(dead_code)]

use convnet_layers::Layer;
use convnet_tensor::gradcheck::{check_gradient, project, projection, GradCheck};
use convnet_tensor::{Rng, Tensor};

/// Standard normal samples.
pub fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::seed_from(seed))
}

fn save_rngs(layer: &mut dyn Layer) -> Vec<Rng> {
    let mut v = Vec::new();
    layer.visit_rngs_mut("", &mut |_, r| v.push(r.clone()));
    v
}

fn restore_rngs(layer: &mut dyn Layer, saved: &[Rng]) {
    let mut i = 0;
    layer.visit_rngs_mut("", &mut |_, r| {
        *r = saved[i].clone();
        i += 1;
    });
}

fn set_param(layer: &mut dyn Layer, name: &str, values: &[f32]) {
    let mut found = false;
    layer.visit_params_mut("", &mut |n, p| {
        if n == name {
            p.value.as_slice_mut().copy_from_slice(values);
            found = true;
        }
    });
    assert!(found, "no parameter {name}");
}

/// Checks the input gradient and every parameter gradient of `layer` at `x`
/// (training mode, generators replayed before every forward so that
/// dropout and stochastic depth draw the same masks) against central finite
/// differences of `Σ out · r`; then checks that parameter gradients
/// accumulate and that a second backward is an error.
pub fn check_layer(layer: &mut dyn Layer, x: &Tensor, cfg: GradCheck) {
    let what = layer.type_name();
    let rngs = save_rngs(layer);
    let out = layer.forward(x).unwrap();
    assert_eq!(
        out.shape(),
        layer.output_shape(x.shape()).unwrap().as_slice()
    );
    let r = projection(out.len(), 17);
    let r_t = Tensor::from_slice(out.shape(), &r).unwrap();
    layer.zero_grad();
    let gx = layer.backward(&r_t).unwrap();
    assert_eq!(gx.shape(), x.shape());
    let mut params = Vec::new();
    layer.visit_params("", &mut |n, p| {
        params.push((n.to_string(), p.value.clone(), p.grad.clone()))
    });

    let shape = x.shape().to_vec();
    check_gradient(
        |v| {
            restore_rngs(layer, &rngs);
            let o = layer
                .forward(&Tensor::from_slice(&shape, v).unwrap())
                .unwrap();
            project(o.as_slice(), &r)
        },
        x.as_slice(),
        gx.as_slice(),
        cfg,
    )
    .unwrap_or_else(|e| panic!("{what}: input gradient: {e}"));
    for (name, value, grad) in &params {
        check_gradient(
            |v| {
                set_param(layer, name, v);
                restore_rngs(layer, &rngs);
                project(layer.forward(x).unwrap().as_slice(), &r)
            },
            value.as_slice(),
            grad.as_slice(),
            cfg,
        )
        .unwrap_or_else(|e| panic!("{what}: gradient of {name}: {e}"));
        set_param(layer, name, value.as_slice());
    }

    layer.zero_grad();
    for _ in 0..2 {
        restore_rngs(layer, &rngs);
        layer.forward(x).unwrap();
        layer.backward(&r_t).unwrap();
    }
    let mut i = 0;
    layer.visit_params("", &mut |n, p| {
        let twice = params[i].2.map(|v| 2.0 * v);
        assert!(
            p.grad.allclose(&twice, 1e-4, 1e-6),
            "{what}: {n} does not accumulate"
        );
        i += 1;
    });
    assert!(layer.backward(&r_t).is_err(), "{what}: a second backward");
}

/// Mean softmax cross-entropy of `logits` `[N, K]` and its gradient.
pub fn cross_entropy(logits: &Tensor, labels: &[usize]) -> (f64, Tensor) {
    let k = logits.shape()[1];
    let n = labels.len();
    let mut grad = vec![0.0f32; n * k];
    let mut loss = 0.0f64;
    for ((row, g), &y) in logits
        .as_slice()
        .chunks_exact(k)
        .zip(grad.chunks_exact_mut(k))
        .zip(labels)
    {
        let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        loss += z.ln() + m - row[y] as f64;
        for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - m).exp() / z;
            *gj = ((p - f64::from(u8::from(j == y))) / n as f64) as f32;
        }
    }
    (loss / n as f64, Tensor::from_vec(&[n, k], grad).unwrap())
}

/// One training step of plain SGD; returns the loss before the step.
pub fn sgd_step(model: &mut dyn Layer, x: &Tensor, labels: &[usize], lr: f32) -> f64 {
    model.zero_grad();
    let logits = model.forward(x).unwrap();
    let (loss, g) = cross_entropy(&logits, labels);
    model.backward(&g).unwrap();
    model.visit_params_mut("", &mut |_, p| {
        let grad = p.grad.clone();
        p.value.axpy(-lr, &grad).unwrap();
    });
    loss
}
