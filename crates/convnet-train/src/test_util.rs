//! Small hand-written models for the unit tests of this crate, independent of
//! the layers crate's layers.

use convnet_layers::{visit_param, visit_param_mut, Layer, LayerError, Param, Result};
use convnet_tensor::{Rng, Tensor};

/// One parameter `w` of a given shape; `forward` returns it unchanged.
#[derive(Debug)]
pub struct TinyModel {
    w: Param,
}

impl TinyModel {
    pub fn new(shape: &[usize], value: f32) -> Self {
        TinyModel {
            w: Param::new(Tensor::full(shape, value)),
        }
    }

    pub fn values(&self) -> Vec<f32> {
        self.w.value.as_slice().to_vec()
    }
}

impl Layer for TinyModel {
    fn type_name(&self) -> &'static str {
        "Tiny"
    }
    fn infer(&self, _x: &Tensor) -> Result<Tensor> {
        Ok(self.w.value.clone())
    }
    fn forward(&mut self, _x: &Tensor) -> Result<Tensor> {
        Ok(self.w.value.clone())
    }
    fn backward(&mut self, g: &Tensor) -> Result<Tensor> {
        Ok(g.clone())
    }
    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        Ok(s.to_vec())
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, "w", &self.w, f)
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, "w", &mut self.w, f)
    }
}

/// A dense classifier `[N, D] -> [N, C]` (`y = x Wᵀ + b`) whose training-mode
/// forward drops inputs at random (p = 0.1, scaled), so that its generator's
/// state matters for resuming. Accepts `[N, ...]` inputs and flattens them.
#[derive(Debug)]
pub struct TinyNet {
    weight: Param,
    bias: Param,
    rng: Rng,
    cache: Option<Tensor>,
}

impl TinyNet {
    pub fn new(inputs: usize, classes: usize, seed: u64) -> Self {
        let mut rng = Rng::seed_from(seed);
        let weight = Param::new(Tensor::randn(&[classes, inputs], 0.0, 0.1, &mut rng));
        let bias = Param::new(Tensor::zeros(&[classes]));
        TinyNet {
            weight,
            bias,
            rng: rng.fork(1),
            cache: None,
        }
    }

    fn dims(&self, x: &Tensor) -> Result<(usize, usize, usize)> {
        let (c, d) = (self.weight.shape()[0], self.weight.shape()[1]);
        let n = *x.shape().first().unwrap_or(&0);
        if n == 0 || x.len() != n * d {
            return Err(LayerError::input_shape(
                "TinyNet",
                format!("[N, {d}]"),
                x.shape(),
            ));
        }
        Ok((n, d, c))
    }

    fn affine(&self, x: &[f32], n: usize, d: usize, c: usize) -> Tensor {
        let w = self.weight.value.as_slice();
        let b = self.bias.value.as_slice();
        let mut out = vec![0.0; n * c];
        for i in 0..n {
            for j in 0..c {
                let mut s = b[j];
                for k in 0..d {
                    s += x[i * d + k] * w[j * d + k];
                }
                out[i * c + j] = s;
            }
        }
        Tensor::from_vec(&[n, c], out).expect("sizes agree")
    }
}

impl Layer for TinyNet {
    fn type_name(&self) -> &'static str {
        "TinyNet"
    }
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let (n, d, c) = self.dims(x)?;
        Ok(self.affine(x.as_slice(), n, d, c))
    }
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, d, c) = self.dims(x)?;
        let dropped: Vec<f32> = x
            .as_slice()
            .iter()
            .map(|&v| {
                if self.rng.bernoulli(0.1) {
                    0.0
                } else {
                    v / 0.9
                }
            })
            .collect();
        let out = self.affine(&dropped, n, d, c);
        self.cache = Some(Tensor::from_vec(&[n, d], dropped).expect("sizes agree"));
        Ok(out)
    }
    fn backward(&mut self, g: &Tensor) -> Result<Tensor> {
        let x = self
            .cache
            .take()
            .ok_or_else(|| LayerError::no_cache("TinyNet"))?;
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let c = self.weight.shape()[0];
        let (x, g) = (x.as_slice(), g.as_slice());
        let w = self.weight.value.as_slice().to_vec();
        let gw = self.weight.grad.as_slice_mut();
        let gb = self.bias.grad.as_slice_mut();
        let mut gx = vec![0.0; n * d];
        for i in 0..n {
            for j in 0..c {
                let go = g[i * c + j];
                gb[j] += go;
                for k in 0..d {
                    gw[j * d + k] += go * x[i * d + k];
                    gx[i * d + k] += go * w[j * d + k];
                }
            }
        }
        Ok(Tensor::from_vec(&[n, d], gx).expect("sizes agree"))
    }
    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![s[0], self.weight.shape()[0]])
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_param(prefix, "weight", &self.weight, f);
        visit_param(prefix, "bias", &self.bias, f);
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_param_mut(prefix, "weight", &mut self.weight, f);
        visit_param_mut(prefix, "bias", &mut self.bias, f);
    }
    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        f(&convnet_layers::join(prefix, "dropout"), &mut self.rng)
    }
}
