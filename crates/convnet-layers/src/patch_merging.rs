//! Patch merging: the downsampling between the stages of a Swin
//! Transformer. Each 2×2 block of pixels becomes one pixel of 4× the
//! channels, normalised and projected to 2× the channels.
//!
//! PyTorch equivalent: `torchvision.models.swin_transformer.PatchMerging(dim)`
//! (v1). Shapes: `[N, H, W, C]` -> `[N, ⌈H/2⌉, ⌈W/2⌉, 2C]`.
//!
//! ```text
//! x  = pad(x) to even H and W (zeros at the bottom and right)
//! x' = [x[0::2, 0::2] | x[1::2, 0::2] | x[0::2, 1::2] | x[1::2, 1::2]]   [H/2, W/2, 4C]
//! y  = reduction(norm(x'))      norm: LayerNorm(4C), reduction: Linear(4C, 2C, no bias)
//! ```

use convnet_tensor::{Rng, Tensor};

use crate::attention::without_cache;
use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::linear::{Linear, LinearConfig};
use crate::util::{check_grad, take_cache, tensor};

const NAME: &str = "PatchMerging";

/// The (row, column) offset inside a 2×2 block of each quarter of the
/// merged channels, in torchvision's order `x0, x1, x2, x3`.
const QUARTERS: [(usize, usize); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

/// Swin's patch merging: 2×2 neighbours concatenated along the channels
/// (odd sizes padded with zeros), a LayerNorm over the `4C` channels and a
/// linear reduction to `2C` without bias.
///
/// Parameters, in torchvision's `state_dict` order (the reduction is
/// declared first, although applied last): `reduction.weight`
/// (`[2C, 4C]`), `norm.weight`, `norm.bias` (`[4C]`).
///
/// # Shapes
///
/// - input: `[N, H, W, C]` (channels last)
/// - output: `[N, ⌈H/2⌉, ⌈W/2⌉, 2C]`
///
/// ```
/// use convnet_layers::{Layer, PatchMerging};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let mut merge = PatchMerging::new(4, &mut rng)?;
/// let keys: Vec<String> = merge.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["reduction.weight", "norm.weight", "norm.bias"]);
/// assert_eq!(merge.num_params(), 16 * 8 + 2 * 16);
/// let x = Tensor::randn(&[2, 5, 6, 4], 0.0, 1.0, &mut rng);
/// let y = merge.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 3, 3, 8]);
/// assert_eq!(merge.backward(&y)?.shape(), x.shape());
/// assert!(merge.infer(&Tensor::zeros(&[2, 5, 6, 3])).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct PatchMerging {
    /// `Linear(4C, 2C, bias=False)`.
    pub reduction: Linear,
    /// `LayerNorm(4C)`.
    pub norm: LayerNorm,
    dim: usize,
    /// The input shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl PatchMerging {
    /// Patch merging of `dim` channels with PyTorch's default
    /// initialisation (LayerNorm eps 1e-5).
    pub fn new(dim: usize, rng: &mut Rng) -> Result<Self> {
        if dim == 0 {
            return Err(LayerError::config(NAME, "dim must be >= 1"));
        }
        let reduction = Linear::new(LinearConfig::new(4 * dim, 2 * dim).bias(false), rng)?;
        Self::from_parts(
            reduction,
            LayerNorm::with_config(LayerNormConfig::new(4 * dim))?,
        )
    }

    /// Patch merging with the given reduction (`[2C, 4C]`, no bias) and
    /// LayerNorm over `4C` features.
    pub fn from_parts(reduction: Linear, norm: LayerNorm) -> Result<Self> {
        let (out, inp) = match reduction.weight.shape() {
            &[out, inp] => (out, inp),
            _ => (0, 0),
        };
        if inp == 0 || inp % 4 != 0 || out * 2 != inp || reduction.bias.is_some() {
            return Err(LayerError::config(
                NAME,
                format!(
                    "reduction must be [2C, 4C] without bias, got {:?}{}",
                    reduction.weight.shape(),
                    if reduction.bias.is_some() {
                        " with a bias"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if norm.config().normalized_shape != inp {
            return Err(LayerError::config(
                NAME,
                format!(
                    "norm must be over {inp} features, got {}",
                    norm.config().normalized_shape
                ),
            ));
        }
        Ok(PatchMerging {
            reduction,
            norm,
            dim: inp / 4,
            cache: None,
        })
    }

    /// Input channels `C`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Errors unless the shape is `[N, H, W, C]`; returns it.
    fn check(&self, shape: &[usize]) -> Result<[usize; 4]> {
        match shape {
            &[n, h, w, c] if c == self.dim && h > 0 && w > 0 => Ok([n, h, w, c]),
            _ => Err(LayerError::input_shape(
                NAME,
                format!("[N, H, W, {}]", self.dim),
                shape,
            )),
        }
    }
}

/// `[N, H, W, C]` -> `[N, ⌈H/2⌉, ⌈W/2⌉, 4C]`, zeros for the padding.
fn merge_2x2(x: &[f32], [n, h, w, c]: [usize; 4]) -> Tensor {
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![0.0f32; n * h2 * w2 * 4 * c];
    for (pixel, row) in out.chunks_exact_mut(4 * c).enumerate() {
        let (img, i, j) = (pixel / (h2 * w2), (pixel / w2) % h2, pixel % w2);
        for (q, &(dy, dx)) in row.chunks_exact_mut(c).zip(&QUARTERS) {
            let (y, xx) = (2 * i + dy, 2 * j + dx);
            if y < h && xx < w {
                let src = ((img * h + y) * w + xx) * c;
                q.copy_from_slice(&x[src..src + c]);
            }
        }
    }
    tensor(&[n, h2, w2, 4 * c], out)
}

/// The adjoint of [`merge_2x2`]: the gradient of the merged map back to
/// the input pixels (padding dropped).
fn unmerge_2x2(g: &[f32], [n, h, w, c]: [usize; 4]) -> Tensor {
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![0.0f32; n * h * w * c];
    for (pixel, row) in g.chunks_exact(4 * c).enumerate() {
        let (img, i, j) = (pixel / (h2 * w2), (pixel / w2) % h2, pixel % w2);
        for (q, &(dy, dx)) in row.chunks_exact(c).zip(&QUARTERS) {
            let (y, xx) = (2 * i + dy, 2 * j + dx);
            if y < h && xx < w {
                let dst = ((img * h + y) * w + xx) * c;
                out[dst..dst + c].copy_from_slice(q);
            }
        }
    }
    tensor(&[n, h, w, c], out)
}

impl Layer for PatchMerging {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let shape = self.check(x.shape())?;
        let merged = merge_2x2(x.as_slice(), shape);
        self.reduction.infer(&self.norm.infer(&merged)?)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let shape = self.check(x.shape())?;
        let merged = merge_2x2(x.as_slice(), shape);
        let normed = self.norm.forward(&merged)?;
        let y = self.reduction.forward(&normed)?;
        self.cache = Some(x.shape().to_vec());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if let Some(shape) = &self.cache {
            let out = self.output_shape(shape)?;
            check_grad(NAME, grad_out, &out)?;
        }
        let shape = take_cache(&mut self.cache, NAME)?;
        let d_normed = self.reduction.backward(grad_out)?;
        let d_merged = self.norm.backward(&d_normed)?;
        Ok(unmerge_2x2(
            d_merged.as_slice(),
            [shape[0], shape[1], shape[2], shape[3]],
        ))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let [n, h, w, c] = self.check(input_shape)?;
        Ok(vec![n, h.div_ceil(2), w.div_ceil(2), 2 * c])
    }

    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        f("reduction", &self.reduction);
        f("norm", &self.norm);
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        f("reduction", &mut self.reduction);
        f("norm", &mut self.norm);
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        let mut norm = LayerNorm::with_config(*self.norm.config()).ok()?;
        norm.affine = self.norm.affine.clone();
        Some(Box::new(PatchMerging {
            reduction: without_cache(&self.reduction),
            norm,
            dim: self.dim,
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests;
