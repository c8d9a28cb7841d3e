//! Residual block: `y = act(body(x) + shortcut(x))`.
//!
//! PyTorch equivalent: torchvision's `BasicBlock` / `Bottleneck` (ResNet,
//! projection shortcut `downsample`), ConvNeXt's `CNBlock` (identity
//! shortcut, no final activation). Shapes: `body`'s; the shortcut's output
//! must have the same shape.

use convnet_tensor::{Rng, Tensor};

use crate::containers::{
    add_into, check_names, clone_children, container_row, summarize_child, Child,
};
use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::param::{join, Param};
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
    /// `[body, shortcut?, activation?]` with their names; `has_shortcut` and
    /// `has_activation` say which are present.
    children: Vec<Child>,
    has_shortcut: bool,
    has_activation: bool,
    /// The output shape of the last `forward` (before the activation).
    cache: Option<Vec<usize>>,
}

impl Residual {
    /// `body(x) + shortcut(x)` (the identity when `shortcut` is `None`), with
    /// the body merged into the block's namespace and the shortcut named
    /// `downsample`. Errors if two parameters would get the same name.
    pub fn new(body: Box<dyn Layer>, shortcut: Option<Box<dyn Layer>>) -> Result<Self> {
        let has_shortcut = shortcut.is_some();
        let mut children = vec![(String::new(), body)];
        if let Some(s) = shortcut {
            children.push(("downsample".to_string(), s));
        }
        check_names(NAME, &children)?;
        Ok(Residual {
            children,
            has_shortcut,
            has_activation: false,
            cache: None,
        })
    }

    /// Adds (or replaces) the activation applied after the sum, named `act`.
    pub fn with_activation(mut self, activation: Box<dyn Layer>) -> Self {
        if self.has_activation {
            self.children.pop();
        }
        self.children.push(("act".to_string(), activation));
        self.has_activation = true;
        self
    }

    /// Renames the body, the shortcut and the activation (`""` merges a
    /// child into the block's namespace). Errors if names or parameter keys
    /// collide.
    pub fn with_names(mut self, body: &str, shortcut: &str, activation: &str) -> Result<Self> {
        self.children[0].0 = body.to_string();
        if self.has_shortcut {
            self.children[1].0 = shortcut.to_string();
        }
        if self.has_activation {
            self.children.last_mut().expect("activation").0 = activation.to_string();
        }
        check_names(NAME, &self.children)?;
        Ok(self)
    }

    /// The body.
    pub fn body(&self) -> &dyn Layer {
        self.children[0].1.as_ref()
    }

    /// The projection shortcut, if any.
    pub fn shortcut(&self) -> Option<&dyn Layer> {
        self.has_shortcut.then(|| self.children[1].1.as_ref())
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

    /// Runs body and shortcut through `run` and sums them.
    fn sum_branches(
        &mut self,
        x: &Tensor,
        mut run: impl FnMut(&mut Box<dyn Layer>, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let (body_name, body) = &mut self.children[0];
        let mut y = run(body, x).map_err(|e| e.in_child(body_name))?;
        if self.has_shortcut {
            let (name, shortcut) = &mut self.children[1];
            let s = run(shortcut, x).map_err(|e| e.in_child(name))?;
            if s.shape() != y.shape() {
                return Err(Self::mismatch(x.shape(), y.shape(), s.shape()));
            }
            add_into(y.as_slice_mut(), s.as_slice());
        } else {
            if x.shape() != y.shape() {
                return Err(Self::mismatch(x.shape(), y.shape(), x.shape()));
            }
            add_into(y.as_slice_mut(), x.as_slice());
        }
        Ok(y)
    }
}

impl Layer for Residual {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let (body_name, body) = &self.children[0];
        let mut y = body.infer(x).map_err(|e| e.in_child(body_name))?;
        // A ReLU activation is applied in the same (parallel, in-place) pass
        // as the addition.
        let relu = self.has_activation
            && self
                .children
                .last()
                .is_some_and(|(_, a)| a.type_name() == "ReLU");
        let s_shape = if self.has_shortcut {
            let (name, shortcut) = &self.children[1];
            let s = shortcut.infer(x).map_err(|e| e.in_child(name))?;
            if s.shape() == y.shape() {
                crate::fused::add_relu_into(y.as_slice_mut(), s.as_slice(), relu);
            }
            s.shape().to_vec()
        } else {
            if x.shape() == y.shape() {
                crate::fused::add_relu_into(y.as_slice_mut(), x.as_slice(), relu);
            }
            x.shape().to_vec()
        };
        if s_shape != y.shape() {
            return Err(Self::mismatch(x.shape(), y.shape(), &s_shape));
        }
        if self.has_activation && !relu {
            let (name, act) = self.children.last().expect("activation");
            y = act.infer(&y).map_err(|e| e.in_child(name))?;
        }
        Ok(y)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.sum_branches(x, |l, x| l.forward(x))?;
        self.cache = Some(y.shape().to_vec());
        if self.has_activation {
            let (name, act) = self.children.last_mut().expect("activation");
            y = act.forward(&y).map_err(|e| e.in_child(name))?;
        }
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let shape = self
            .cache
            .as_ref()
            .ok_or_else(|| LayerError::no_cache(NAME))?;
        if !self.has_activation {
            crate::util::check_grad(NAME, grad_out, shape)?;
        }
        let act_grad;
        let g_sum = if self.has_activation {
            let (name, act) = self.children.last_mut().expect("activation");
            act_grad = act.backward(grad_out).map_err(|e| e.in_child(name))?;
            &act_grad
        } else {
            grad_out
        };
        self.cache = None;
        let (body_name, body) = &mut self.children[0];
        let mut gx = body.backward(g_sum).map_err(|e| e.in_child(body_name))?;
        if self.has_shortcut {
            let (name, shortcut) = &mut self.children[1];
            let gs = shortcut.backward(g_sum).map_err(|e| e.in_child(name))?;
            add_into(gx.as_slice_mut(), gs.as_slice());
        } else {
            add_into(gx.as_slice_mut(), g_sum.as_slice());
        }
        Ok(gx)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (body_name, body) = &self.children[0];
        let y = body
            .output_shape(input_shape)
            .map_err(|e| e.in_child(body_name))?;
        let s = if self.has_shortcut {
            let (name, shortcut) = &self.children[1];
            shortcut
                .output_shape(input_shape)
                .map_err(|e| e.in_child(name))?
        } else {
            input_shape.to_vec()
        };
        if s != y {
            return Err(Self::mismatch(input_shape, &y, &s));
        }
        if self.has_activation {
            let (name, act) = self.children.last().expect("activation");
            return act.output_shape(&y).map_err(|e| e.in_child(name));
        }
        Ok(y)
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (n, c) in &self.children {
            c.visit_params(&join(prefix, n), f);
        }
    }

    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (n, c) in &mut self.children {
            c.visit_params_mut(&join(prefix, n), f);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (n, c) in &self.children {
            c.visit_buffers(&join(prefix, n), f);
        }
    }

    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (n, c) in &mut self.children {
            c.visit_buffers_mut(&join(prefix, n), f);
        }
    }

    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        for (n, c) in &mut self.children {
            c.set_frozen(&join(prefix, n), frozen);
        }
    }

    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        for (n, c) in &mut self.children {
            c.visit_rngs_mut(&join(prefix, n), f);
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
        let (body_name, body) = &self.children[0];
        let y = summarize_child(
            body.as_ref(),
            name,
            body_name,
            input_shape,
            depth + 1,
            &mut inner,
        )?;
        if self.has_shortcut {
            let (n, s) = &self.children[1];
            summarize_child(s.as_ref(), name, n, input_shape, depth + 1, &mut inner)?;
        }
        if self.has_activation {
            let (n, a) = self.children.last().expect("activation");
            summarize_child(a.as_ref(), name, n, &y, depth + 1, &mut inner)?;
        }
        rows.push(container_row(self, name, depth, &out));
        rows.extend(inner);
        Ok(out)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Residual {
            children: clone_children(&self.children)?,
            has_shortcut: self.has_shortcut,
            has_activation: self.has_activation,
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::{Linear, LinearConfig, Sequential};

    fn lin(i: usize, o: usize, seed: u64) -> Box<dyn Layer> {
        Box::new(Linear::new(LinearConfig::new(i, o), &mut Rng::seed_from(seed)).unwrap())
    }

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
}
