//! Linear (dense, fully connected) layer: `y = x · Wᵀ + b` on the last axis.
//!
//! PyTorch equivalent: `torch.nn.Linear(in_features, out_features, bias=True)`,
//! with the weight stored `[out_features, in_features]` as PyTorch stores it.
//!
//! Shapes: `[..., in_features]` (e.g. `[N, D]` or tokens `[N, T, D]`) ->
//! `[..., out_features]`.

use convnet_tensor::init::{pytorch_default_bias, pytorch_default_weight};
use convnet_tensor::kernels::gemm::{gemm_parallel, Trans};
use convnet_tensor::kernels::gemv::{gemv_parallel, GEMV_MAX_ROWS};
use convnet_tensor::{Rng, Tensor};

use crate::error::{LayerError, Result};
use crate::layer::{visit_weight_bias, visit_weight_bias_mut, Layer};
use crate::param::Param;
use crate::util::{check_grad, kernel, last_axis, take_cache, tensor};

const NAME: &str = "Linear";

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearConfig {
    /// Size of the last axis of the input.
    pub in_features: usize,
    /// Size of the last axis of the output.
    pub out_features: usize,
    /// Whether the layer adds a learned bias (PyTorch default: `true`).
    pub bias: bool,
}

impl LinearConfig {
    /// `in_features -> out_features` with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
        }
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// A dense layer applied to the last axis: `y = x · Wᵀ + b`.
///
/// PyTorch equivalent: `torch.nn.Linear`; parameters `weight`
/// (`[out_features, in_features]`) and `bias` (`[out_features]`), initialised
/// as PyTorch does (uniform on `±1/sqrt(in_features)`).
///
/// # Shapes
///
/// - input: `[..., in_features]`, any number of leading axes (`[N, D]`,
///   `[N, T, D]`, `[N, H, W, C]`)
/// - output: `[..., out_features]`
///
/// ```
/// use convnet_layers::{Layer, Linear, LinearConfig};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let mut fc = Linear::new(LinearConfig::new(400, 120), &mut rng)?;
/// assert_eq!(fc.num_params(), 400 * 120 + 120);
/// let x = Tensor::randn(&[8, 400], 0.0, 1.0, &mut rng);
/// let y = fc.forward(&x)?;
/// assert_eq!(y.shape(), &[8, 120]);
/// let gx = fc.backward(&Tensor::ones(&[8, 120]))?;
/// assert_eq!(gx.shape(), &[8, 400]);
/// // Tokens: [N, T, D]
/// assert_eq!(fc.output_shape(&[2, 5, 400])?, vec![2, 5, 120]);
/// assert!(fc.infer(&Tensor::zeros(&[8, 399])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// The input of the last `forward`.
    cache: Option<Tensor>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation. Errors on zero features
    /// or a weight of more than [`crate::param::MAX_PARAM_ELEMENTS`] elements
    /// (checked before allocating).
    pub fn new(config: LinearConfig, rng: &mut Rng) -> Result<Self> {
        let LinearConfig {
            in_features,
            out_features,
            bias,
        } = config;
        if in_features == 0 || out_features == 0 {
            return Err(LayerError::config(
                NAME,
                format!(
                    "in_features ({in_features}) and out_features ({out_features}) must be >= 1"
                ),
            ));
        }
        crate::param::check_param_size(NAME, &[out_features, in_features])?;
        let weight = pytorch_default_weight(&[out_features, in_features], rng);
        let bias = bias.then(|| Param::new(pytorch_default_bias(out_features, in_features, rng)));
        Ok(Linear {
            weight: Param::new(weight),
            bias,
            cache: None,
        })
    }

    /// A layer with the given weight `[out, in]` and optional bias `[out]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let &[out, inp] = weight.shape() else {
            return Err(LayerError::config(
                NAME,
                format!(
                    "weight must be [out_features, in_features], got {:?}",
                    weight.shape()
                ),
            ));
        };
        if out == 0 || inp == 0 {
            return Err(LayerError::config(NAME, "weight has a zero dimension"));
        }
        if let Some(b) = &bias {
            if b.shape() != [out] {
                return Err(LayerError::config(
                    NAME,
                    format!("bias must be [{out}], got {:?}", b.shape()),
                ));
            }
        }
        Ok(Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            cache: None,
        })
    }

    /// Size of the input's last axis.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Size of the output's last axis.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    fn compute(&self, x: &Tensor) -> Result<Tensor> {
        let (inp, out) = (self.in_features(), self.out_features());
        let rows = last_axis(NAME, x.shape(), inp)?;
        let mut y = vec![0.0f32; rows * out];
        let beta = match &self.bias {
            Some(b) => {
                for row in y.chunks_exact_mut(out) {
                    row.copy_from_slice(b.value.as_slice());
                }
                1.0
            }
            None => 0.0,
        };
        // y[rows, out] = x[rows, in] · Wᵀ (+ y)
        kernel(
            NAME,
            product(
                &mut y,
                x.as_slice(),
                self.weight.value.as_slice(),
                Trans::Yes,
                (rows, out, inp),
                beta,
            ),
        )?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = out;
        Ok(tensor(&shape, y))
    }
}

/// `y[m, n] = x[m, k] · op(w) + beta · y` over all threads: the matrix-vector
/// path for a few rows (batch 1 to [`GEMV_MAX_ROWS`], memory bound: it reads
/// each weight once, in place), else sgemm.
fn product(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    trans_w: Trans,
    (m, n, k): (usize, usize, usize),
    beta: f32,
) -> convnet_tensor::Result<()> {
    if m <= GEMV_MAX_ROWS {
        gemv_parallel(y, x, w, trans_w, m, n, k, 1.0, beta)
    } else {
        gemm_parallel(y, x, Trans::No, w, trans_w, m, n, k, 1.0, beta)
    }
}

impl Layer for Linear {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.compute(x)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.compute(x)?;
        self.cache = Some(x.clone());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let (inp, out) = (self.in_features(), self.out_features());
        let x = self
            .cache
            .as_ref()
            .ok_or_else(|| LayerError::no_cache(NAME))?;
        let mut out_shape = x.shape().to_vec();
        *out_shape.last_mut().expect("rank >= 1") = out;
        check_grad(NAME, grad_out, &out_shape)?;
        let x = take_cache(&mut self.cache, NAME)?;
        let rows = x.len() / inp;
        let g = grad_out.as_slice();
        // dW[out, in] += gᵀ[out, rows] · x[rows, in]
        let dw = self.weight.grad.as_slice_mut();
        let update = if rows <= GEMV_MAX_ROWS {
            // A rank-`rows` update, memory bound: dW read and written once,
            // split by columns over the threads.
            let mut gt = vec![0.0f32; out * rows];
            for (r, g_row) in g.chunks_exact(out).enumerate() {
                for (o, v) in g_row.iter().enumerate() {
                    gt[o * rows + r] = *v;
                }
            }
            gemv_parallel(dw, &gt, x.as_slice(), Trans::No, out, inp, rows, 1.0, 1.0)
        } else {
            gemm_parallel(
                dw,
                g,
                Trans::Yes,
                x.as_slice(),
                Trans::No,
                out,
                inp,
                rows,
                1.0,
                1.0,
            )
        };
        kernel(NAME, update)?;
        if let Some(b) = &mut self.bias {
            let gb = b.grad.as_slice_mut();
            for row in g.chunks_exact(out) {
                for (acc, v) in gb.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        // dx[rows, in] = g[rows, out] · W[out, in]
        let mut gx = vec![0.0f32; rows * inp];
        kernel(
            NAME,
            product(
                &mut gx,
                g,
                self.weight.value.as_slice(),
                Trans::No,
                (rows, inp, out),
                0.0,
            ),
        )?;
        Ok(tensor(x.shape(), gx))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        last_axis(NAME, input_shape, self.in_features())?;
        let mut s = input_shape.to_vec();
        *s.last_mut().expect("rank >= 1") = self.out_features();
        Ok(s)
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f)
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        visit_weight_bias_mut(prefix, &mut self.weight, self.bias.as_mut(), f)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Linear {
            cache: None,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};

    #[test]
    fn hand_computed_values() {
        // W = [[1, 2], [3, 4], [5, 6]], b = [1, 0, -1], x = [1, -1]
        let w = Tensor::from_vec(&[3, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let b = Tensor::from_vec(&[3], vec![1., 0., -1.]).unwrap();
        let fc = Linear::from_tensors(w, Some(b)).unwrap();
        let x = Tensor::from_vec(&[1, 2], vec![1., -1.]).unwrap();
        assert_eq!(fc.infer(&x).unwrap().as_slice(), &[0., -1., -2.]);
    }

    #[test]
    fn gradients_2d_and_3d_with_and_without_bias() {
        let mut rng = Rng::seed_from(1);
        for bias in [true, false] {
            let mut fc = Linear::new(LinearConfig::new(5, 3).bias(bias), &mut rng).unwrap();
            check_layer(&mut fc, &random(&[4, 5], 2));
            check_layer(&mut fc, &random(&[2, 3, 5], 3));
        }
    }

    #[test]
    fn names_shapes_and_errors() {
        let mut rng = Rng::seed_from(1);
        let mut fc = Linear::new(LinearConfig::new(4, 2), &mut rng).unwrap();
        assert_eq!(
            fc.param_shapes(),
            vec![("weight".into(), vec![2, 4]), ("bias".into(), vec![2])]
        );
        let e = fc.forward(&Tensor::zeros(&[3, 5])).unwrap_err();
        assert!(matches!(e, LayerError::InputShape { .. }), "{e}");
        assert!(e.to_string().contains("Linear") && e.to_string().contains("[3, 5]"));
        assert!(fc.infer(&Tensor::scalar(1.0)).is_err());
        assert!(matches!(
            fc.backward(&Tensor::zeros(&[3, 2])),
            Err(LayerError::NoCache { .. })
        ));
        fc.forward(&Tensor::zeros(&[3, 4])).unwrap();
        assert!(fc.backward(&Tensor::zeros(&[3, 3])).is_err());
        assert!(Linear::new(LinearConfig::new(0, 2), &mut rng).is_err());
        assert!(Linear::from_tensors(Tensor::zeros(&[2, 3]), Some(Tensor::zeros(&[3]))).is_err());
    }

    #[test]
    fn small_batches_match_the_sgemm_path() {
        // Batches up to GEMV_MAX_ROWS take the matrix-vector path: each row
        // of a batch of 7 (sgemm) must match the same row alone.
        let mut rng = Rng::seed_from(6);
        let mut fc = Linear::new(LinearConfig::new(37, 19), &mut rng).unwrap();
        let x = random(&[7, 37], 7);
        let g = random(&[7, 19], 8);
        let y = fc.forward(&x).unwrap();
        let gx = fc.backward(&g).unwrap();
        let dw = fc.weight.grad.clone();
        for rows in 1..=GEMV_MAX_ROWS {
            let xs = Tensor::from_vec(&[rows, 37], x.as_slice()[..rows * 37].to_vec()).unwrap();
            let gs = Tensor::from_vec(&[rows, 19], g.as_slice()[..rows * 19].to_vec()).unwrap();
            fc.weight.grad = Tensor::zeros(&[19, 37]);
            let ys = fc.forward(&xs).unwrap();
            let gxs = fc.backward(&gs).unwrap();
            let close = |a: &[f32], b: &[f32], what: &str| {
                for (i, (u, v)) in a.iter().zip(b).enumerate() {
                    assert!((u - v).abs() < 1e-5, "{rows} rows, {what}[{i}]: {u} vs {v}");
                }
            };
            close(ys.as_slice(), &y.as_slice()[..rows * 19], "y");
            close(gxs.as_slice(), &gx.as_slice()[..rows * 37], "dx");
            // dW over the first rows only: the batch of 7 minus the others.
            let mut rest = Linear::from_tensors(fc.weight.value.clone(), None).unwrap();
            let n = 7 - rows;
            rest.forward(&Tensor::from_vec(&[n, 37], x.as_slice()[rows * 37..].to_vec()).unwrap())
                .unwrap();
            rest.backward(&Tensor::from_vec(&[n, 19], g.as_slice()[rows * 19..].to_vec()).unwrap())
                .unwrap();
            let sum: Vec<f32> = fc
                .weight
                .grad
                .as_slice()
                .iter()
                .zip(rest.weight.grad.as_slice())
                .map(|(a, b)| a + b)
                .collect();
            close(&sum, dw.as_slice(), "dW");
        }
    }

    #[test]
    fn infer_equals_forward() {
        let mut rng = Rng::seed_from(4);
        let mut fc = Linear::new(LinearConfig::new(7, 3), &mut rng).unwrap();
        let x = random(&[5, 7], 5);
        assert_eq!(fc.infer(&x).unwrap(), fc.forward(&x).unwrap());
    }
}
