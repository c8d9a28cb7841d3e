//! Test helpers: a finite-difference gradient check of any layer, for its
//! input and every parameter, with the loss `Σ out · r`.
//!
//! Compiled for this crate's tests and, with the `testing` feature, for
//! the tests of the crates above (the zoo's), so that every crate checks
//! gradients the same way. They panic on failure, as test helpers do.

use convnet_tensor::gradcheck::{check_gradient, project, projection, GradCheck};
use convnet_tensor::{Rng, Tensor};

use crate::layer::Layer;

/// A boxed `Linear(i, o)` initialised from `seed`, a child for container
/// tests.
#[cfg(test)]
pub(crate) fn boxed_linear(i: usize, o: usize, seed: u64) -> Box<dyn Layer> {
    Box::new(
        crate::Linear::new(crate::LinearConfig::new(i, o), &mut Rng::seed_from(seed))
            .expect("a valid Linear"),
    )
}

/// A tensor of standard normal samples.
pub fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::seed_from(seed))
}

/// Random values whose magnitude is at least `gap` (away from ReLU's kink).
pub fn random_away_from_zero(shape: &[usize], gap: f32, seed: u64) -> Tensor {
    random(shape, seed).map(|v| if v >= 0.0 { v + gap } else { v - gap })
}

/// Distinct values spaced at least 0.05 apart, in random order (no ties in a
/// max-pooling window even after a finite-difference step).
pub fn random_distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.05).collect();
    Rng::seed_from(seed).shuffle(&mut v);
    Tensor::from_vec(shape, v).unwrap()
}

/// One training pass of `layer` on `x` (loss `Σ out`) on a pool of
/// `threads` rayon threads: the output, the input gradient and every
/// parameter gradient, in visiting order. Two thread counts giving the
/// same triple show that a layer's results do not depend on them.
pub fn pass_with_threads(
    layer: &mut dyn Layer,
    x: &Tensor,
    threads: usize,
) -> (Tensor, Tensor, Vec<f32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| {
        layer.zero_grad();
        let y = layer.forward(x).unwrap();
        let gx = layer.backward(&Tensor::ones(y.shape())).unwrap();
        let mut grads = Vec::new();
        layer.visit_params("", &mut |_, p| grads.extend_from_slice(p.grad.as_slice()));
        (y, gx, grads)
    })
}

/// The random generators of `layer`, in visiting order.
pub fn snapshot_rngs<L: Layer + ?Sized>(layer: &mut L) -> Vec<Rng> {
    let mut v = Vec::new();
    layer.visit_rngs_mut("", &mut |_, r| v.push(r.clone()));
    v
}

/// Restores generators saved by [`snapshot_rngs`], so that the next
/// forward pass draws the same masks.
pub fn restore_rngs<L: Layer + ?Sized>(layer: &mut L, saved: &[Rng]) {
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
    assert!(found, "parameter {name} not found");
}

/// Checks, by central finite differences, the input gradient and the gradient
/// of every parameter of `layer` at `x`, in training mode. The generators of
/// the layer (Dropout) are restored before every forward pass, so that every
/// evaluation sees the same mask. Also checks that parameter gradients
/// accumulate across two backward passes. Panics with the layer, the tensor
/// and the worst element on failure.
pub fn check_layer(layer: &mut dyn Layer, x: &Tensor) {
    check_layer_with(layer, x, GradCheck::default())
}

/// [`check_layer`] with explicit tolerances.
pub fn check_layer_with(layer: &mut dyn Layer, x: &Tensor, cfg: GradCheck) {
    let what = layer.type_name();
    let rngs = snapshot_rngs(layer);
    restore_rngs(layer, &rngs);
    let out = layer.forward(x).unwrap();
    assert_eq!(
        out.shape(),
        layer.output_shape(x.shape()).unwrap().as_slice(),
        "{what}: output_shape disagrees with forward"
    );
    let r = projection(out.len(), 99);
    let r_tensor = Tensor::from_slice(out.shape(), &r).unwrap();
    layer.zero_grad();
    let gx = layer.backward(&r_tensor).unwrap();
    assert_eq!(gx.shape(), x.shape(), "{what}: input gradient shape");

    let mut params = Vec::new();
    layer.visit_params("", &mut |n, p| {
        params.push((n.to_string(), p.value.clone(), p.grad.clone()))
    });
    let mut names: Vec<&str> = params.iter().map(|p| p.0.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        params.len(),
        "{what}: duplicate parameter names"
    );

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

    // Parameter gradients accumulate (+=) across backward passes.
    layer.zero_grad();
    for _ in 0..2 {
        restore_rngs(layer, &rngs);
        layer.forward(x).unwrap();
        layer.backward(&r_tensor).unwrap();
    }
    let mut i = 0;
    layer.visit_params("", &mut |n, p| {
        let once = &params[i].2;
        let twice = once.map(|v| 2.0 * v);
        assert!(
            p.grad.allclose(&twice, 1e-4, 1e-5),
            "{what}: gradient of {n} does not accumulate"
        );
        i += 1;
    });
    // A second backward without a forward is an error, not a panic.
    assert!(layer.backward(&r_tensor).is_err(), "{what}: backward twice");
}
