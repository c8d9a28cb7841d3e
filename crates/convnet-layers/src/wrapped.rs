//! Wrapped: a submodule followed by a layer holding the module's own
//! parameters, visited first.
//!
//! PyTorch equivalent: a module that applies a submodule and then a
//! parameter registered on itself, such as torchvision's ConvNeXt `CNBlock`
//! (`self.layer_scale * self.block(x)`) or `VisionTransformer` (the
//! `class_token` prepended to `conv_proj`'s patches). Shapes: `inner`'s
//! input -> `outer`'s output.

use convnet_tensor::Tensor;

use crate::error::Result;
use crate::layer::Layer;
use crate::param::join;
use crate::summary::SummaryRow;

const NAME: &str = "Wrapped";

/// `y = outer(inner(x))`, where `outer` stands for parameters a PyTorch
/// module registers on itself: its parameters are visited **first** and
/// under the wrapper's own prefix, then `inner`'s under `inner_name`. A
/// PyTorch `state_dict` lists a module's own parameters before its
/// submodules', whatever order `forward` uses them in: ConvNeXt's block
/// gives `layer_scale`, then `block.0.weight`, ... although the scale is
/// applied last. A [`crate::Sequential`] visits in application order, so it
/// cannot express that; this layer can.
///
/// An `inner_name` of `""` merges `inner` into the wrapper's namespace.
///
/// PyTorch equivalent: `self.param * self.submodule(x)` in a module's
/// `forward`, e.g. torchvision's `CNBlock` without its residual addition.
///
/// # Shapes
///
/// - input: what `inner` accepts
/// - output: `outer`'s output for `inner`'s output
///
/// ```
/// use convnet_layers::{Layer, LayerScale, Linear, LinearConfig, Sequential, Wrapped};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let block = Sequential::default().with(Linear::new(LinearConfig::new(4, 4), &mut rng)?);
/// let scale = LayerScale::new(4, 1e-6)?.with_param_name("layer_scale");
/// let mut w = Wrapped::new("block", block, scale);
/// let keys: Vec<String> = w.param_shapes().into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["layer_scale", "block.0.weight", "block.0.bias"]);
/// let x = Tensor::randn(&[2, 4], 0.0, 1.0, &mut rng);
/// assert_eq!(w.forward(&x)?.shape(), &[2, 4]);
/// assert_eq!(w.backward(&Tensor::ones(&[2, 4]))?.shape(), &[2, 4]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct Wrapped {
    inner_name: String,
    inner: Box<dyn Layer>,
    outer: Box<dyn Layer>,
}

impl Wrapped {
    /// `outer(inner(x))`, `inner` named `inner_name`, `outer` merged into
    /// the wrapper's namespace and visited first.
    pub fn new(
        inner_name: impl Into<String>,
        inner: impl Layer + 'static,
        outer: impl Layer + 'static,
    ) -> Self {
        Wrapped {
            inner_name: inner_name.into(),
            inner: Box::new(inner),
            outer: Box::new(outer),
        }
    }

    /// The wrapped submodule.
    pub fn inner(&self) -> &dyn Layer {
        self.inner.as_ref()
    }

    /// The layer holding the module's own parameters.
    pub fn outer(&self) -> &dyn Layer {
        self.outer.as_ref()
    }
}

impl Layer for Wrapped {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let y = self
            .inner
            .infer(x)
            .map_err(|e| e.in_child(&self.inner_name))?;
        self.outer.infer(&y)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self
            .inner
            .forward(x)
            .map_err(|e| e.in_child(&self.inner_name))?;
        self.outer.forward_owned(y)
    }

    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        let y = self
            .inner
            .forward_owned(x)
            .map_err(|e| e.in_child(&self.inner_name))?;
        self.outer.forward_owned(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let g = self.outer.backward(grad_out)?;
        self.inner
            .backward(&g)
            .map_err(|e| e.in_child(&self.inner_name))
    }

    fn backward_params(&mut self, grad_out: &Tensor) -> Result<()> {
        let g = self.outer.backward(grad_out)?;
        self.inner
            .backward_params(&g)
            .map_err(|e| e.in_child(&self.inner_name))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let y = self
            .inner
            .output_shape(input_shape)
            .map_err(|e| e.in_child(&self.inner_name))?;
        self.outer.output_shape(&y)
    }

    /// `outer` merged into the wrapper's namespace (`""`) and visited
    /// first, then `inner` under its name: the visitors, freezing and the
    /// name check all follow from this.
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        f("", self.outer.as_ref());
        f(&self.inner_name, self.inner.as_ref());
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        f("", self.outer.as_mut());
        f(&self.inner_name, self.inner.as_mut());
    }

    /// A row for the wrapper, then `inner`'s rows and `outer`'s, in
    /// application order.
    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        let out = self.output_shape(input_shape)?;
        rows.push(SummaryRow {
            name: name.to_string(),
            type_name: NAME.to_string(),
            depth,
            output_shape: out.clone(),
            params: self.num_params(),
            leaf: false,
        });
        let y =
            self.inner
                .summarize(&join(name, &self.inner_name), input_shape, depth + 1, rows)?;
        self.outer.summarize(name, &y, depth + 1, rows)?;
        Ok(out)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Wrapped {
            inner_name: self.inner_name.clone(),
            inner: self.inner.clone_boxed()?,
            outer: self.outer.clone_boxed()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::{ClassToken, Dropout, LayerScale, Linear, LinearConfig, Sequential};
    use convnet_tensor::Rng;

    #[test]
    fn gradient_and_order() {
        let mut rng = Rng::seed_from(1);
        let inner = Sequential::default()
            .with(Linear::new(LinearConfig::new(3, 4), &mut rng).unwrap())
            .with(Dropout::new(0.3, &mut rng).unwrap());
        let mut scale = LayerScale::new(4, 1.0).unwrap();
        scale.gamma.value = random(&[4], 2);
        let mut w = Wrapped::new("block", inner, scale);
        check_layer(&mut w, &random(&[2, 5, 3], 3));
        let keys: Vec<String> = w.param_shapes().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["gamma", "block.0.weight", "block.0.bias"]);
        let mut rngs = Vec::new();
        w.visit_rngs_mut("m", &mut |k, _| rngs.push(k.to_string()));
        assert_eq!(rngs, ["m.block.1"]);
        let copy = w.clone_boxed().unwrap();
        let x = random(&[2, 5, 3], 4);
        assert_eq!(copy.infer(&x).unwrap(), w.infer(&x).unwrap());
    }

    #[test]
    fn merged_inner_errors_and_summary() {
        let mut rng = Rng::seed_from(1);
        let lin = Linear::new(LinearConfig::new(3, 2), &mut rng).unwrap();
        let mut w = Wrapped::new("", lin, ClassToken::new(2).unwrap());
        let keys: Vec<String> = w.param_shapes().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["class_token", "weight", "bias"]);
        assert_eq!(w.output_shape(&[2, 5, 3]).unwrap(), [2, 6, 2]);
        assert!(w.infer(&random(&[2, 5, 4], 0)).is_err());
        assert!(w.backward(&random(&[2, 6, 2], 0)).is_err());
        let s = crate::summary(&w, &[2, 5, 3]).unwrap();
        assert_eq!(s.total_params, 2 * 3 + 2 + 2);
        assert_eq!(s.output_shape, [2, 6, 2]);
    }
}
