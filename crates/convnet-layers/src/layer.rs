//! The [`Layer`] trait: the contract every layer, container and model keeps.

use convnet_tensor::{Rng, Tensor};

use crate::error::Result;
use crate::fused::FusionRole;
use crate::param::{join, Param};
use crate::summary::SummaryRow;

/// An auxiliary output of a model in training (see [`Layer::aux_outputs`]).
#[derive(Debug, Clone, Copy)]
pub struct AuxOutput<'a> {
    /// The head's name, its `state_dict` prefix (`aux1`).
    pub name: &'a str,
    /// The weight of its loss in the training loss.
    pub weight: f32,
    /// Its logits, `[N, num_classes]`.
    pub logits: &'a Tensor,
}

/// A differentiable building block: a layer, a container of layers or a whole
/// model.
///
/// - [`Layer::infer`] is inference: no caches, no randomness, `&self`, so one
///   model can serve many threads at once. BatchNorm uses its running
///   statistics, Dropout is the identity.
/// - [`Layer::forward`] is training mode: dropout active, batch statistics
///   (and running statistics updated), and it caches exactly what
///   [`Layer::backward`] needs.
/// - [`Layer::backward`] takes the gradient of the loss with respect to the
///   output of the last `forward`, **accumulates** (`+=`) the gradients of the
///   parameters and **returns** the gradient with respect to the input. Without
///   a cache it returns [`crate::LayerError::NoCache`].
///
/// Parameters and buffers are visited by name, the names being PyTorch
/// `state_dict` keys (`features.0.weight`, `layer1.0.bn1.running_mean`): a
/// layer names its own tensors (`weight`, `bias`, ...) under the prefix it is
/// given, and a container passes `join(prefix, child_name)` to each child.
pub trait Layer: Send + Sync + std::fmt::Debug {
    /// The layer's type, as PyTorch names the module (`"Conv2d"`, `"ReLU"`).
    fn type_name(&self) -> &'static str;

    /// Inference-mode output.
    fn infer(&self, x: &Tensor) -> Result<Tensor>;

    /// Training-mode output; caches what `backward` needs.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor>;

    /// Gradient of the input from the gradient of the output of the last
    /// `forward`; accumulates parameter gradients.
    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor>;

    /// [`Layer::forward`] of an input the caller gives away: a layer that
    /// can work in place (the activations) reuses its memory instead of
    /// allocating. Containers pass their intermediate outputs this way.
    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        self.forward(&x)
    }

    /// [`Layer::infer`] of an input the caller gives away: a layer that can
    /// work in place (activations) or pass its input through (identity,
    /// dropout and stochastic depth at inference) does so without a copy.
    /// [`crate::Sequential::infer`] passes its intermediate outputs this
    /// way.
    fn infer_owned(&self, x: Tensor) -> Result<Tensor> {
        self.infer(&x)
    }

    /// [`Layer::backward`] when nobody needs the input gradient (the first
    /// layer of a model, whose input is the data): accumulates the parameter
    /// gradients only. Layers whose input gradient costs work (convolutions,
    /// containers) skip computing it.
    fn backward_params(&mut self, grad_out: &Tensor) -> Result<()> {
        self.backward(grad_out).map(|_| ())
    }

    /// The auxiliary outputs of the last [`Layer::forward`] that a training
    /// loop adds to its loss, each with its weight: GoogLeNet's `aux1` and
    /// `aux2` (weight 0.3). The default, like every layer but such models,
    /// has none. Inference ([`Layer::infer`]) never computes them.
    fn aux_outputs(&self) -> Vec<AuxOutput<'_>> {
        Vec::new()
    }

    /// [`Layer::backward_params`] with the gradients of the weighted
    /// auxiliary losses too, one per [`Layer::aux_outputs`] in its order
    /// (already multiplied by their weights). The default accepts no
    /// auxiliary gradient: giving one to a layer without auxiliary outputs
    /// is an error, not a gradient silently dropped.
    fn backward_params_with_aux(&mut self, grad_out: &Tensor, grad_aux: &[Tensor]) -> Result<()> {
        if !grad_aux.is_empty() {
            return Err(crate::LayerError::config(
                self.type_name(),
                format!(
                    "{} auxiliary gradient(s) given to a layer without auxiliary outputs",
                    grad_aux.len()
                ),
            ));
        }
        self.backward_params(grad_out)
    }

    /// The output shape for an input shape, or the error the layer would give
    /// at run time for that input.
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>>;

    /// Visits every trainable parameter with its full name. The default
    /// visits the children's ([`Layer::visit_children`]), each under
    /// `join(prefix, child_name)`: a leaf with parameters overrides it.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.visit_children(&mut |n, c| c.visit_params(&join(prefix, n), f));
    }

    /// Visits every trainable parameter mutably, with its full name (the
    /// children's by default).
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.visit_children_mut(&mut |n, c| c.visit_params_mut(&join(prefix, n), f));
    }

    /// Visits every buffer (state that is saved but not optimised, such as
    /// BatchNorm's `running_mean`, `running_var`, `num_batches_tracked`);
    /// the children's by default.
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_children(&mut |n, c| c.visit_buffers(&join(prefix, n), f));
    }

    /// Visits every buffer mutably (the children's by default).
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.visit_children_mut(&mut |n, c| c.visit_buffers_mut(&join(prefix, n), f));
    }

    /// Visits the random generators of the layer (Dropout's, stochastic
    /// depth's), so that a checkpoint can save and restore them (the
    /// children's by default).
    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        self.visit_children_mut(&mut |n, c| c.visit_rngs_mut(&join(prefix, n), f));
    }

    /// The hook of a container: calls `f` with the name and the layer of
    /// every child, in order (parameters are visited in this order). A leaf
    /// has none (the default). A child named `""` is merged into the
    /// container's namespace.
    ///
    /// The default visitors ([`Layer::visit_params`], [`Layer::visit_buffers`],
    /// [`Layer::visit_rngs_mut`], their `_mut` forms and
    /// [`Layer::set_frozen`]) walk the children through this hook and its
    /// twin [`Layer::visit_children_mut`], so a container implements these two
    /// and inherits the rest.
    fn visit_children(&self, _f: &mut dyn FnMut(&str, &dyn Layer)) {}

    /// [`Layer::visit_children`] with mutable children (same names, same
    /// order).
    fn visit_children_mut(&mut self, _f: &mut dyn FnMut(&str, &mut dyn Layer)) {}

    /// [`Layer::infer`] that also shows every intermediate output: `trace`
    /// gets the full name of each layer run (`prefix` for this one, a
    /// state-dict prefix such as `features.0`), its type and its output.
    /// The default runs [`Layer::infer`] and reports the layer's own output;
    /// a container that chains its children ([`crate::Sequential`]) runs them
    /// one by one, reporting each child's outputs (recursively) before its
    /// own. Other containers (residual blocks, branches) report only their
    /// output. What `convnet show features` draws.
    fn infer_traced(
        &self,
        prefix: &str,
        x: &Tensor,
        trace: &mut dyn FnMut(&str, &'static str, &Tensor),
    ) -> Result<Tensor> {
        let y = self.infer(x)?;
        trace(prefix, self.type_name(), &y);
        Ok(y)
    }

    /// The part the layer can play in inference-time fusion
    /// (`Conv2d → BatchNorm2d → ReLU` runs as one pass in
    /// [`crate::Sequential::infer`], a residual sum and its ReLU as another),
    /// or `None` (the default): the layer then always runs on its own.
    fn fusion_role(&self) -> Option<FusionRole<'_>> {
        None
    }

    /// Appends this layer's rows to a summary, for input shape `input_shape`,
    /// and returns its output shape. A leaf layer adds one row; a container
    /// overrides this to add its own row and then its children's, indented by
    /// `depth + 1`.
    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        let output_shape = self.output_shape(input_shape)?;
        let mut params = 0;
        self.visit_params("", &mut |_, p| params += p.len());
        rows.push(SummaryRow {
            name: name.to_string(),
            type_name: self.type_name().to_string(),
            depth,
            output_shape: output_shape.clone(),
            params,
            leaf: true,
        });
        Ok(output_shape)
    }

    /// Tells the layer which of its parameters are *frozen*: not updated by
    /// the optimizer (fine-tuning a head on a frozen backbone). `frozen` gets
    /// the full key of a parameter (`layer1.0.bn1.weight`) and says whether
    /// it is frozen; calling again replaces the previous setting
    /// (`&|_| false` unfreezes everything).
    ///
    /// What a layer does with it:
    /// - [`crate::BatchNorm2d`] whose parameters are frozen (for a layer
    ///   without affine parameters: whose `running_mean` key is frozen) runs
    ///   in inference mode inside [`Layer::forward`] too: it normalises with
    ///   its running statistics and no longer updates them, as Keras does
    ///   for a layer with `trainable = False`. (PyTorch's
    ///   `requires_grad = False` alone keeps a BatchNorm in training mode,
    ///   normalising with batch statistics and updating the running ones;
    ///   a frozen backbone there also needs `bn.eval()`.)
    /// - Containers pass it on to their children, and a
    ///   [`crate::Sequential`] skips the backward pass through its leading
    ///   children that have no trainable parameter in
    ///   [`Layer::backward_params`] (nobody needs their gradients).
    /// - Other layers ignore it (the default passes it on to the children
    ///   of [`Layer::visit_children_mut`], and a leaf has none): their gradients are still
    ///   computed where they are on the way to trainable ones, and the
    ///   optimizer leaves the frozen values alone.
    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        self.visit_children_mut(&mut |n, c| c.set_frozen(&join(prefix, n), frozen));
    }

    /// Resets every parameter gradient to zero.
    fn zero_grad(&mut self) {
        self.visit_params_mut("", &mut |_, p| p.zero_grad());
    }

    /// Number of trainable scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, p| n += p.len());
        n
    }

    /// A boxed deep copy of the layer (parameters, buffers, generators; caches
    /// are not copied), or `None` for a layer that cannot be cloned. Every
    /// layer and container of this crate returns `Some`; a container returns
    /// `None` if one of its children does.
    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        None
    }

    /// The layer as [`std::any::Any`], to recognise a concrete layer type
    /// (`Conv2d` and `BatchNorm2d` give themselves), or `None` (the
    /// default). Inference fusion asks [`Layer::fusion_role`] instead.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Names and shapes of every parameter, in visiting order.
    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        self.visit_params("", &mut |name, p| {
            v.push((name.to_string(), p.shape().to_vec()))
        });
        v
    }
}

impl Layer for Box<dyn Layer> {
    fn type_name(&self) -> &'static str {
        (**self).type_name()
    }
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        (**self).infer(x)
    }
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        (**self).backward(grad_out)
    }
    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        (**self).forward_owned(x)
    }
    fn infer_owned(&self, x: Tensor) -> Result<Tensor> {
        (**self).infer_owned(x)
    }
    fn backward_params(&mut self, grad_out: &Tensor) -> Result<()> {
        (**self).backward_params(grad_out)
    }
    fn aux_outputs(&self) -> Vec<AuxOutput<'_>> {
        (**self).aux_outputs()
    }
    fn backward_params_with_aux(&mut self, grad_out: &Tensor, grad_aux: &[Tensor]) -> Result<()> {
        (**self).backward_params_with_aux(grad_out, grad_aux)
    }
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        (**self).output_shape(input_shape)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        (**self).visit_params(prefix, f)
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        (**self).visit_params_mut(prefix, f)
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        (**self).visit_buffers(prefix, f)
    }
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        (**self).visit_buffers_mut(prefix, f)
    }
    fn visit_rngs_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Rng)) {
        (**self).visit_rngs_mut(prefix, f)
    }
    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        (**self).summarize(name, input_shape, depth, rows)
    }
    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        (**self).set_frozen(prefix, frozen)
    }
    fn zero_grad(&mut self) {
        (**self).zero_grad()
    }
    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        (**self).clone_boxed()
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        (**self).as_any()
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        (**self).visit_children(f)
    }
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        (**self).visit_children_mut(f)
    }
    fn fusion_role(&self) -> Option<FusionRole<'_>> {
        (**self).fusion_role()
    }
    fn infer_traced(
        &self,
        prefix: &str,
        x: &Tensor,
        trace: &mut dyn FnMut(&str, &'static str, &Tensor),
    ) -> Result<Tensor> {
        (**self).infer_traced(prefix, x, trace)
    }
}

/// Visits a named parameter: a helper for `visit_params` implementations.
pub fn visit_param(prefix: &str, name: &str, p: &Param, f: &mut dyn FnMut(&str, &Param)) {
    f(&join(prefix, name), p)
}

/// Visits a named parameter mutably: a helper for `visit_params_mut`.
pub fn visit_param_mut(
    prefix: &str,
    name: &str,
    p: &mut Param,
    f: &mut dyn FnMut(&str, &mut Param),
) {
    f(&join(prefix, name), p)
}

/// Visits `weight` and, if there is one, `bias`: the parameters of
/// [`crate::Conv2d`], [`crate::Linear`] and the normalisation layers.
pub(crate) fn visit_weight_bias(
    prefix: &str,
    weight: &Param,
    bias: Option<&Param>,
    f: &mut dyn FnMut(&str, &Param),
) {
    visit_param(prefix, "weight", weight, f);
    if let Some(b) = bias {
        visit_param(prefix, "bias", b, f);
    }
}

/// [`visit_weight_bias`], mutably.
pub(crate) fn visit_weight_bias_mut(
    prefix: &str,
    weight: &mut Param,
    bias: Option<&mut Param>,
    f: &mut dyn FnMut(&str, &mut Param),
) {
    visit_param_mut(prefix, "weight", weight, f);
    if let Some(b) = bias {
        visit_param_mut(prefix, "bias", b, f);
    }
}
