//! Residual block: `y = act(body(x) + shortcut(x))`.
//!
//! PyTorch equivalent: torchvision's `BasicBlock` / `Bottleneck` (ResNet,
//! projection shortcut `downsample`), ConvNeXt's `CNBlock` (identity
//! shortcut, no final activation). Shapes: `body`'s; the shortcut's output
//! must have the same shape.

use convnet_tensor::Tensor;

use crate::containers::{add_into, check_names, container_row, summarize_child, Child};
use crate::error::{LayerError, Result};
use crate::fused::{add_relu_into, is_relu};
use crate::layer::Layer;
use crate::summary::SummaryRow;

const NAME: &str = "Residual";

/// `y = act(body(x) + shortcut(x))`, the shortcut being the identity or a
/// layer (a 1×1 convolution and a BatchNorm when the shape changes), the
/// final activation optional.
///
/// Naming: the body is merged into the block's namespace (its children's
/// keys appear directly under the block's prefix: `layer1.0.conv1.weight`),
/// the shortcut is named `downsample` (torchvision's name:
/// `layer2.0.downsample.0.weight`), the activation `act`; all three names can
/// be changed with [`Residual::with_names`].
///
/// PyTorch equivalent: torchvision's `BasicBlock` and `Bottleneck`.
///
/// # Shapes
///
/// - input: what `body` accepts
/// - output: `body`'s output shape, which the shortcut's output must equal
///   (an error otherwise)
///
/// ```
/// use convnet_layers::{BatchNorm2d, Conv2d, Conv2dConfig, Layer, ReLU, Residual, Sequential};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let conv = |i, o, k, s, p, rng: &mut Rng| {
///     Conv2d::new(Conv2dConfig::new(i, o, k).stride(s).padding(p).bias(false), rng)
/// };
/// // A ResNet BasicBlock going from 4 to 8 channels with stride 2.
/// let body = Sequential::default()
///     .with_named("conv1", conv(4, 8, 3, 2, 1, &mut rng)?)?
///     .with_named("bn1", BatchNorm2d::new(8)?)?
///     .with_named("relu", ReLU::new())?
///     .with_named("conv2", conv(8, 8, 3, 1, 1, &mut rng)?)?
///     .with_named("bn2", BatchNorm2d::new(8)?)?;
/// let downsample = Sequential::default()
///     .with(conv(4, 8, 1, 2, 0, &mut rng)?)
///     .with(BatchNorm2d::new(8)?);
/// let mut block = Residual::new(Box::new(body), Some(Box::new(downsample)))?
///     .with_activation(Box::new(ReLU::new()));
///
/// let keys: Vec<String> = block.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys[0], "conv1.weight");
/// assert_eq!(keys[keys.len() - 1], "downsample.1.bias");
///
/// let x = Tensor::randn(&[2, 4, 8, 8], 0.0, 1.0, &mut rng);
/// let y = block.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 8, 4, 4]);
/// assert_eq!(block.backward(&y)?.shape(), x.shape());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct Residual {
    /// The body and its name (`""`: merged into the block's namespace).
    body: Child,
    /// The projection shortcut and its name (`downsample`); the identity
    /// when `None`.
    shortcut: Option<Child>,
    /// The activation after the sum and its name (`act`), if any.
    activation: Option<Child>,
    /// The output shape of the last `forward` (before the activation).
    cache: Option<Vec<usize>>,
}

impl Residual {
    /// `body(x) + shortcut(x)` (the identity when `shortcut` is `None`), with
    /// the body merged into the block's namespace and the shortcut named
    /// `downsample`. Errors if two parameters would get the same name.
    pub fn new(body: Box<dyn Layer>, shortcut: Option<Box<dyn Layer>>) -> Result<Self> {
        let block = Residual {
            body: (String::new(), body),
            shortcut: shortcut.map(|s| ("downsample".to_string(), s)),
            activation: None,
            cache: None,
        };
        check_names(&block)?;
        Ok(block)
    }

    /// Adds (or replaces) the activation applied after the sum, named `act`.
    pub fn with_activation(mut self, activation: Box<dyn Layer>) -> Self {
        self.activation = Some(("act".to_string(), activation));
        self
    }

    /// Renames the body, the shortcut and the activation (`""` merges a
    /// child into the block's namespace). Errors if names or parameter keys
    /// collide.
    pub fn with_names(mut self, body: &str, shortcut: &str, activation: &str) -> Result<Self> {
        self.body.0 = body.to_string();
        if let Some((name, _)) = &mut self.shortcut {
            *name = shortcut.to_string();
        }
        if let Some((name, _)) = &mut self.activation {
            *name = activation.to_string();
        }
        check_names(&self)?;
        Ok(self)
    }

    /// The body.
    pub fn body(&self) -> &dyn Layer {
        self.body.1.as_ref()
    }

    /// The projection shortcut, if any.
    pub fn shortcut(&self) -> Option<&dyn Layer> {
        self.shortcut.as_ref().map(|(_, s)| s.as_ref())
    }

    fn mismatch(input: &[usize], body: &[usize], shortcut: &[usize]) -> LayerError {
        LayerError::input_shape(
            NAME,
            format!(
                "an input for which body and shortcut outputs agree (body gives {body:?}, \
                 shortcut gives {shortcut:?})"
            ),
            input,
        )
    }

    /// `body(x) + shortcut(x)` with `run` as the way to apply a child, the
    /// sum made by `add(acc, x)`; errors if the shapes differ.
    fn sum_branches<'a, L: std::ops::Deref<Target = dyn Layer + 'a>>(
        body: (&str, L),
        shortcut: Option<(&str, L)>,
        x: &Tensor,
        mut run: impl FnMut(L, &Tensor) -> Result<Tensor>,
        add: impl FnOnce(&mut [f32], &[f32]),
    ) -> Result<Tensor> {
        let mut y = run(body.1, x).map_err(|e| e.in_child(body.0))?;
        let s = match shortcut {
            Some((name, s)) => Some(run(s, x).map_err(|e| e.in_child(name))?),
            None => None,
        };
        let s = s.as_ref().unwrap_or(x);
        if s.shape() != y.shape() {
            return Err(Self::mismatch(x.shape(), y.shape(), s.shape()));
        }
        add(y.as_slice_mut(), s.as_slice());
        Ok(y)
    }
}

/// A child's name and layer.
fn named(child: &Child) -> (&str, &dyn Layer) {
    (&child.0, child.1.as_ref())
}

/// A child's name and layer, mutably.
fn named_mut(child: &mut Child) -> (&str, &mut dyn Layer) {
    (&child.0, child.1.as_mut())
}

impl Layer for Residual {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        // A ReLU activation is applied in the same (parallel, in-place) pass
        // as the addition.
        let relu = self
            .activation
            .as_ref()
            .is_some_and(|(_, a)| is_relu(a.as_ref()));
        let y = Self::sum_branches(
            named(&self.body),
            self.shortcut.as_ref().map(named),
            x,
            |l, x| l.infer(x),
            |acc, s| add_relu_into(acc, s, relu),
        )?;
        match &self.activation {
            Some((name, act)) if !relu => act.infer(&y).map_err(|e| e.in_child(name)),
            _ => Ok(y),
        }
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = Self::sum_branches(
            named_mut(&mut self.body),
            self.shortcut.as_mut().map(named_mut),
            x,
            |l, x| l.forward(x),
            add_into,
        )?;
        self.cache = Some(y.shape().to_vec());
        match &mut self.activation {
            Some((name, act)) => act.forward(&y).map_err(|e| e.in_child(name)),
            None => Ok(y),
        }
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let shape = self
            .cache
            .as_ref()
            .ok_or_else(|| LayerError::no_cache(NAME))?;
        let act_grad;
        let g_sum = match &mut self.activation {
            Some((name, act)) => {
                act_grad = act.backward(grad_out).map_err(|e| e.in_child(name))?;
                &act_grad
            }
            None => {
                crate::util::check_grad(NAME, grad_out, shape)?;
                grad_out
            }
        };
        self.cache = None;
        let (body_name, body) = &mut self.body;
        let mut gx = body.backward(g_sum).map_err(|e| e.in_child(body_name))?;
        match &mut self.shortcut {
            Some((name, shortcut)) => {
                let gs = shortcut.backward(g_sum).map_err(|e| e.in_child(name))?;
                add_into(gx.as_slice_mut(), gs.as_slice());
            }
            None => add_into(gx.as_slice_mut(), g_sum.as_slice()),
        }
        Ok(gx)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (body_name, body) = &self.body;
        let y = body
            .output_shape(input_shape)
            .map_err(|e| e.in_child(body_name))?;
        let s = match &self.shortcut {
            Some((name, shortcut)) => shortcut
                .output_shape(input_shape)
                .map_err(|e| e.in_child(name))?,
            None => input_shape.to_vec(),
        };
        if s != y {
            return Err(Self::mismatch(input_shape, &y, &s));
        }
        match &self.activation {
            Some((name, act)) => act.output_shape(&y).map_err(|e| e.in_child(name)),
            None => Ok(y),
        }
    }

    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        let children = [
            Some(&self.body),
            self.shortcut.as_ref(),
            self.activation.as_ref(),
        ];
        for (n, c) in children.into_iter().flatten() {
            f(n, c.as_ref());
        }
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        let children = [
            Some(&mut self.body),
            self.shortcut.as_mut(),
            self.activation.as_mut(),
        ];
        for (n, c) in children.into_iter().flatten() {
            f(n, c.as_mut());
        }
    }

    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        let out = self.output_shape(input_shape)?;
        let mut inner = Vec::new();
        let (body_name, body) = &self.body;
        let y = summarize_child(
            body.as_ref(),
            name,
            body_name,
            input_shape,
            depth + 1,
            &mut inner,
        )?;
        if let Some((n, s)) = &self.shortcut {
            summarize_child(s.as_ref(), name, n, input_shape, depth + 1, &mut inner)?;
        }
        if let Some((n, a)) = &self.activation {
            summarize_child(a.as_ref(), name, n, &y, depth + 1, &mut inner)?;
        }
        rows.push(container_row(self, name, depth, &out));
        rows.extend(inner);
        Ok(out)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        let clone = |(n, c): &Child| c.clone_boxed().map(|c| (n.clone(), c));
        Some(Box::new(Residual {
            body: clone(&self.body)?,
            shortcut: match &self.shortcut {
                Some(s) => Some(clone(s)?),
                None => None,
            },
            activation: match &self.activation {
                Some(a) => Some(clone(a)?),
                None => None,
            },
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{boxed_linear as lin, check_layer, random};
    use crate::Sequential;

    #[test]
    fn gradient_identity_and_projection_shortcut() {
        let mut id = Residual::new(lin(4, 4, 1), None).unwrap();
        check_layer(&mut id, &random(&[3, 4], 0));
        let body = Sequential::new(vec![lin(4, 5, 2), lin(5, 6, 3)]);
        let mut proj = Residual::new(Box::new(body), Some(lin(4, 6, 4))).unwrap();
        check_layer(&mut proj, &random(&[3, 4], 0));
        let keys: Vec<String> = proj.param_shapes().into_iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "downsample.weight",
                "downsample.bias"
            ]
        );
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut r = Residual::new(lin(4, 5, 1), None).unwrap();
        let e = r.forward(&random(&[2, 4], 0)).unwrap_err();
        assert!(e.to_string().contains("[2, 5]"), "{e}");
        assert!(r.infer(&random(&[2, 4], 0)).is_err());
        assert!(r.output_shape(&[2, 4]).is_err());
        assert!(r.backward(&random(&[2, 5], 0)).is_err());
        let r = Residual::new(lin(4, 5, 1), Some(lin(4, 6, 2))).unwrap();
        assert!(r.infer(&random(&[2, 4], 0)).is_err());
        assert!(r.infer(&random(&[2, 3], 0)).is_err());
        // Merged body and shortcut with the same keys collide.
        assert!(Residual::new(lin(4, 4, 1), Some(lin(4, 4, 2)))
            .unwrap()
            .with_names("", "", "act")
            .is_err());
    }

    #[test]
    fn named_parts_keep_their_names_and_order() {
        let block = Residual::new(lin(3, 3, 1), Some(lin(3, 3, 2)))
            .unwrap()
            .with_activation(lin(3, 2, 3))
            .with_activation(lin(3, 3, 4));
        assert_eq!(block.body().num_params(), 12);
        assert_eq!(block.shortcut().map(|s| s.num_params()), Some(12));
        let keys =
            |b: &Residual| -> Vec<String> { b.param_shapes().into_iter().map(|p| p.0).collect() };
        assert_eq!(
            keys(&block),
            [
                "weight",
                "bias",
                "downsample.weight",
                "downsample.bias",
                "act.weight",
                "act.bias"
            ]
        );
        let renamed = block.with_names("body", "proj", "post").unwrap();
        assert_eq!(
            keys(&renamed)[2..],
            ["proj.weight", "proj.bias", "post.weight", "post.bias"]
        );
        assert_eq!(keys(&renamed)[0], "body.weight");
        // The activation (with parameters) runs after the sum, in training and inference.
        let mut r = renamed;
        let x = random(&[2, 3], 5);
        assert_eq!(r.infer(&x).unwrap(), r.forward(&x).unwrap());
        check_layer(&mut r, &x);
        let copy = r.clone_boxed().unwrap();
        assert_eq!(copy.param_shapes(), r.param_shapes());
        assert_eq!(copy.infer(&x).unwrap(), r.infer(&x).unwrap());
        assert!(Residual::new(lin(3, 3, 1), None)
            .unwrap()
            .shortcut()
            .is_none());
    }
}
