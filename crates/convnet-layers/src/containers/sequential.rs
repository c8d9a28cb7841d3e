//! Sequential: children applied one after the other.
//!
//! PyTorch equivalent: `torch.nn.Sequential` (children named `0`, `1`, ...),
//! or a `torch.nn.Module` whose `forward` calls its named submodules in order
//! (`Sequential::named`). Shapes: whatever the chain of children does.

use convnet_tensor::Tensor;

use crate::containers::{
    check_names, container_row, numbered, summarize_child, to_children, visit, visit_mut, Child,
};
use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::param::join;
use crate::summary::SummaryRow;

const NAME: &str = "Sequential";

/// Children applied in order: `y = f_k(... f_1(f_0(x)))`.
///
/// Children are named `0`, `1`, ... ([`Sequential::new`], [`Sequential::with`])
/// or explicitly ([`Sequential::named`], [`Sequential::with_named`]), and their
/// parameters are visited as `<prefix>.<child>.<param>`: a torchvision model
/// is a tree of `Sequential`s (`features.0.weight`, `layer1.0.conv1.weight`).
/// An empty `Sequential` is the identity.
///
/// PyTorch equivalent: `torch.nn.Sequential`.
///
/// # Shapes
///
/// The input shape of the first child -> the output shape of the last.
///
/// ```
/// use convnet_layers::{Conv2d, Conv2dConfig, Flatten, Layer, Linear, LinearConfig, ReLU, Sequential};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let mut net = Sequential::default()
///     .with(Conv2d::new(Conv2dConfig::new(1, 4, 3), &mut rng)?)
///     .with(ReLU::new())
///     .with(Flatten::new())
///     .with(Linear::new(LinearConfig::new(4 * 6 * 6, 10), &mut rng)?);
/// let names: Vec<String> = net.param_shapes().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
///
/// let x = Tensor::randn(&[2, 1, 8, 8], 0.0, 1.0, &mut rng);
/// let y = net.forward(&x)?;
/// assert_eq!(y.shape(), &[2, 10]);
/// assert_eq!(net.backward(&Tensor::ones(&[2, 10]))?.shape(), &[2, 1, 8, 8]);
///
/// // Named children, as a torchvision block.
/// let block = Sequential::default()
///     .with_named("conv1", Conv2d::new(Conv2dConfig::new(4, 4, 3).padding(1).bias(false), &mut rng)?)?
///     .with_named("relu", ReLU::new())?;
/// let mut keys = Vec::new();
/// block.visit_params("layer1.0", &mut |k, _| keys.push(k.to_string()));
/// assert_eq!(keys, ["layer1.0.conv1.weight"]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug, Default)]
pub struct Sequential {
    children: Vec<Child>,
    /// Whether a `forward` awaits its `backward`.
    forwarded: bool,
    /// How many leading children have no trainable parameter (see
    /// [`Layer::set_frozen`]): `backward_params` stops before them.
    frozen_prefix: usize,
}

impl Sequential {
    /// Children named `0`, `1`, ... in order.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        Sequential {
            forwarded: false,
            frozen_prefix: 0,
            children: numbered(layers),
        }
    }

    /// Children with explicit names (`""` merges a child's parameters into
    /// this container's namespace). Errors on duplicate names, or if two
    /// parameters or buffers would get the same full name.
    pub fn named<S: Into<String>>(layers: Vec<(S, Box<dyn Layer>)>) -> Result<Self> {
        let seq = Sequential {
            children: to_children(layers),
            forwarded: false,
            frozen_prefix: 0,
        };
        check_names(&seq)?;
        Ok(seq)
    }

    /// Appends a child named after its position (`"3"` for the fourth).
    pub fn with(mut self, layer: impl Layer + 'static) -> Self {
        self.push(Box::new(layer));
        self
    }

    /// Appends a named child; errors if the name is taken (see
    /// [`Sequential::named`]).
    pub fn with_named(
        mut self,
        name: impl Into<String>,
        layer: impl Layer + 'static,
    ) -> Result<Self> {
        self.push_named(name, Box::new(layer))?;
        Ok(self)
    }

    /// Appends a child named after its position.
    pub fn push(&mut self, layer: Box<dyn Layer>) {
        let name = self.children.len().to_string();
        self.children.push((name, layer));
    }

    /// Appends a named child; errors (and leaves `self` unchanged) if the
    /// name is taken.
    pub fn push_named(&mut self, name: impl Into<String>, layer: Box<dyn Layer>) -> Result<()> {
        self.children.push((name.into(), layer));
        if let Err(e) = check_names(self) {
            self.children.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// `true` without children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The children and their names, in order.
    pub fn children(&self) -> impl Iterator<Item = (&str, &dyn Layer)> {
        self.children.iter().map(|(n, c)| (n.as_str(), c.as_ref()))
    }

    /// The children and their names, mutably.
    pub fn children_mut(&mut self) -> impl Iterator<Item = (&str, &mut Box<dyn Layer>)> {
        self.children.iter_mut().map(|(n, c)| (n.as_str(), c))
    }

    /// The child with this name.
    pub fn get(&self, name: &str) -> Option<&dyn Layer> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_ref())
    }

    /// The child with this name, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Box<dyn Layer>> {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// Removes and returns the last child (to drop a classifier head, say).
    pub fn pop(&mut self) -> Option<(String, Box<dyn Layer>)> {
        self.children.pop()
    }
}

impl Layer for Sequential {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let mut cur: Option<Tensor> = None;
        let mut i = 0;
        while let Some((name, c)) = self.children.get(i) {
            // Conv2d → BatchNorm2d [→ ReLU] runs as one layer (crate::fused).
            let fused = crate::fused::infer_conv_bn(&self.children[i..], cur.as_ref().unwrap_or(x));
            let (used, y) = match fused {
                Some(done) => done,
                // Intermediate outputs are ours to give away (in-place
                // activations, pass-through dropout).
                None => {
                    let y = match cur.take() {
                        Some(t) => c.infer_owned(t),
                        None => c.infer(x),
                    };
                    (1, y.map_err(|e| e.in_child(name)))
                }
            };
            cur = Some(y?);
            i += used;
        }
        Ok(cur.unwrap_or_else(|| x.clone()))
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut cur: Option<Tensor> = None;
        for (name, c) in &mut self.children {
            // Intermediate outputs are ours to give away (in-place activations).
            let y = match cur.take() {
                Some(t) => c.forward_owned(t),
                None => c.forward(x),
            }
            .map_err(|e| e.in_child(name))?;
            cur = Some(y);
        }
        self.forwarded = true;
        Ok(cur.unwrap_or_else(|| x.clone()))
    }

    fn forward_owned(&mut self, x: Tensor) -> Result<Tensor> {
        let mut cur = x;
        for (name, c) in &mut self.children {
            cur = c.forward_owned(cur).map_err(|e| e.in_child(name))?;
        }
        self.forwarded = true;
        Ok(cur)
    }

    fn backward_params(&mut self, grad_out: &Tensor) -> Result<()> {
        if !std::mem::take(&mut self.forwarded) {
            return Err(LayerError::no_cache(NAME));
        }
        let mut cur: Option<Tensor> = None;
        // Leading children without a trainable parameter (a frozen
        // backbone) need no backward at all; the first child that has one
        // needs no input gradient: it gets `backward_params`, the others
        // `backward`.
        let mut children = self.children.iter_mut().skip(self.frozen_prefix);
        let first = children.next();
        for (name, c) in children.rev() {
            let g = c
                .backward(cur.as_ref().unwrap_or(grad_out))
                .map_err(|e| e.in_child(name))?;
            cur = Some(g);
        }
        if let Some((name, c)) = first {
            c.backward_params(cur.as_ref().unwrap_or(grad_out))
                .map_err(|e| e.in_child(name))?;
        }
        Ok(())
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        if !std::mem::take(&mut self.forwarded) {
            return Err(LayerError::no_cache(NAME));
        }
        let mut cur: Option<Tensor> = None;
        for (name, c) in self.children.iter_mut().rev() {
            let g = c
                .backward(cur.as_ref().unwrap_or(grad_out))
                .map_err(|e| e.in_child(name))?;
            cur = Some(g);
        }
        Ok(cur.unwrap_or_else(|| grad_out.clone()))
    }

    fn infer_traced(
        &self,
        prefix: &str,
        x: &Tensor,
        trace: &mut dyn FnMut(&str, &'static str, &Tensor),
    ) -> Result<Tensor> {
        // Child by child (no fusion): every intermediate output is seen.
        let mut cur: Option<Tensor> = None;
        for (name, c) in &self.children {
            let input = cur.as_ref().unwrap_or(x);
            let y = c
                .infer_traced(&join(prefix, name), input, trace)
                .map_err(|e| e.in_child(name))?;
            cur = Some(y);
        }
        let y = cur.unwrap_or_else(|| x.clone());
        trace(prefix, NAME, &y);
        Ok(y)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input_shape.to_vec();
        for (name, c) in &self.children {
            shape = c.output_shape(&shape).map_err(|e| e.in_child(name))?;
        }
        Ok(shape)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        visit(&self.children, f)
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        visit_mut(&mut self.children, f)
    }

    fn set_frozen(&mut self, prefix: &str, frozen: &dyn Fn(&str) -> bool) {
        self.frozen_prefix = 0;
        let mut trainable_seen = false;
        for (n, c) in &mut self.children {
            let name = join(prefix, n);
            c.set_frozen(&name, frozen);
            if !trainable_seen {
                let mut trainable = false;
                c.visit_params(&name, &mut |k, _| trainable |= !frozen(k));
                if trainable {
                    trainable_seen = true;
                } else {
                    self.frozen_prefix += 1;
                }
            }
        }
    }

    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        let mut inner = Vec::new();
        let mut shape = input_shape.to_vec();
        for (n, c) in &self.children {
            shape = summarize_child(c.as_ref(), name, n, &shape, depth + 1, &mut inner)?;
        }
        rows.push(container_row(self, name, depth, &shape));
        rows.extend(inner);
        Ok(shape)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.try_clone().ok()?))
    }
}

impl Sequential {
    /// A deep copy (parameters, buffers, generators; no caches), or an error
    /// naming the first child that cannot be cloned.
    pub fn try_clone(&self) -> Result<Self> {
        let mut children = Vec::with_capacity(self.children.len());
        for (n, c) in &self.children {
            let c = c.clone_boxed().ok_or_else(|| {
                LayerError::config(
                    NAME,
                    format!("child {n:?} ({}) cannot be cloned", c.type_name()),
                )
            })?;
            children.push((n.clone(), c));
        }
        Ok(Sequential {
            children,
            forwarded: false,
            frozen_prefix: self.frozen_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random};
    use crate::{Dropout, Flatten, Identity, Linear, LinearConfig};
    use convnet_tensor::Rng;

    #[test]
    fn frozen_leading_children_get_no_backward() {
        let mut rng = Rng::seed_from(3);
        let mut net = Sequential::default()
            .with(Linear::new(LinearConfig::new(4, 5), &mut rng).unwrap())
            .with(crate::ReLU::new())
            .with(Linear::new(LinearConfig::new(5, 3), &mut rng).unwrap());
        let grads = |net: &Sequential| {
            let mut v = Vec::new();
            net.visit_params("", &mut |k, p| {
                v.push((k.to_string(), p.grad.as_slice().iter().any(|&g| g != 0.0)))
            });
            v
        };
        let x = random(&[2, 4], 1);
        let g = random(&[2, 3], 2);
        net.set_frozen("", &|k| k.starts_with("0."));
        net.forward(&x).unwrap();
        net.backward_params(&g).unwrap();
        let got = grads(&net);
        assert!(
            got.iter().all(|(k, nz)| *nz == k.starts_with("2.")),
            "{got:?}"
        );
        // A frozen prefix still gives the input gradient to `backward`.
        net.zero_grad();
        net.forward(&x).unwrap();
        assert_eq!(net.backward(&g).unwrap().shape(), &[2, 4]);
        // Unfrozen again: every gradient.
        net.zero_grad();
        net.set_frozen("", &|_| false);
        net.forward(&x).unwrap();
        net.backward_params(&g).unwrap();
        assert!(grads(&net).iter().all(|(_, nz)| *nz));
        // Everything frozen: nothing to do, but a backward still needs a forward.
        net.zero_grad();
        net.set_frozen("", &|_| true);
        net.forward(&x).unwrap();
        net.backward_params(&g).unwrap();
        assert!(grads(&net).iter().all(|(_, nz)| !*nz));
        assert!(net.backward_params(&g).is_err());
    }

    fn mlp(rng: &mut Rng) -> Sequential {
        Sequential::default()
            .with(Flatten::new())
            .with(Linear::new(LinearConfig::new(6, 5), rng).unwrap())
            .with(Dropout::with_seed(0.2, 3).unwrap())
            .with(Linear::new(LinearConfig::new(5, 3), rng).unwrap())
    }

    #[test]
    fn gradient_through_the_chain() {
        let mut rng = Rng::seed_from(0);
        let mut net = mlp(&mut rng);
        check_layer(&mut net, &random(&[4, 2, 3], 1));
        let mut empty = Sequential::default();
        check_layer(&mut empty, &random(&[2, 2], 1));
    }

    #[test]
    fn names_errors_and_clone() {
        let mut rng = Rng::seed_from(0);
        let net = mlp(&mut rng);
        let keys: Vec<String> = net.param_shapes().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["1.weight", "1.bias", "3.weight", "3.bias"]);
        let mut rngs = Vec::new();
        let mut net2 = net.try_clone().unwrap();
        net2.visit_rngs_mut("m", &mut |n, _| rngs.push(n.to_string()));
        assert_eq!(rngs, ["m.2"]);
        // A wrong input names the child and its path.
        let e = net.infer(&Tensor::zeros(&[4, 7])).unwrap_err();
        assert_eq!(e.layer(), "1 (Linear)");
        assert!(e.to_string().contains("[4, 7]"), "{e}");
        let outer =
            Sequential::named(vec![("features", Box::new(net2) as Box<dyn Layer>)]).unwrap();
        let e = outer.output_shape(&[4, 7]).unwrap_err();
        assert_eq!(e.layer(), "features.1 (Linear)");
        // Duplicate names and colliding keys are refused.
        assert!(Sequential::named(vec![
            ("a", Box::new(Identity::new()) as Box<dyn Layer>),
            ("a", Box::new(Identity::new())),
        ])
        .is_err());
        let lin = || {
            Box::new(Linear::new(LinearConfig::new(2, 2), &mut Rng::seed_from(0)).unwrap())
                as Box<dyn Layer>
        };
        assert!(Sequential::named(vec![("", lin()), ("", lin())]).is_err());
        let mut s = Sequential::default()
            .with_named("x", Identity::new())
            .unwrap();
        assert!(s.push_named("x", Box::new(Identity::new())).is_err());
        assert_eq!(s.len(), 1);
        let mut seq = mlp(&mut rng);
        assert!(matches!(
            seq.backward(&Tensor::zeros(&[4, 3])),
            Err(LayerError::NoCache { .. })
        ));
    }

    #[test]
    fn infer_equals_forward_without_dropout() {
        let mut rng = Rng::seed_from(0);
        let mut net = Sequential::new(vec![
            Box::new(Flatten::new()),
            Box::new(Linear::new(LinearConfig::new(6, 2), &mut rng).unwrap()),
        ]);
        let x = random(&[3, 6], 2);
        assert_eq!(net.infer(&x).unwrap(), net.forward(&x).unwrap());
    }

    #[test]
    fn owned_inference_gives_the_bits_of_inference_by_reference() {
        use crate::{DropMode, ReLU, Sigmoid, StochasticDepth, Tanh, GELU};
        let mut rng = Rng::seed_from(3);
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Linear::new(LinearConfig::new(6, 8), &mut rng).unwrap()),
            Box::new(ReLU::new()),
            Box::new(Dropout::with_seed(0.5, 1).unwrap()),
            Box::new(GELU::new()),
            Box::new(Identity::new()),
            Box::new(StochasticDepth::with_seed(0.3, DropMode::Row, 2).unwrap()),
            Box::new(Sigmoid::new()),
            Box::new(Tanh::new()),
        ];
        let x = random(&[3, 6], 4);
        // Each child by reference, as before owned inference.
        let mut want = x.clone();
        for layer in &layers {
            assert_eq!(
                layer.infer_owned(want.clone()).unwrap(),
                layer.infer(&want).unwrap()
            );
            want = layer.infer(&want).unwrap();
        }
        assert_eq!(Sequential::new(layers).infer(&x).unwrap(), want);
    }

    #[test]
    fn traced_infer_names_every_output_and_equals_infer() {
        let mut rng = Rng::seed_from(4);
        let inner = Sequential::named(vec![
            (
                "fc",
                Box::new(Linear::new(LinearConfig::new(6, 5), &mut rng).unwrap()) as Box<dyn Layer>,
            ),
            ("act", Box::new(crate::ReLU::new())),
        ])
        .unwrap();
        let net = Sequential::named(vec![
            ("flatten", Box::new(Flatten::new()) as Box<dyn Layer>),
            ("features", Box::new(inner)),
            (
                "head",
                Box::new(Linear::new(LinearConfig::new(5, 2), &mut rng).unwrap()),
            ),
        ])
        .unwrap();
        let x = random(&[3, 2, 3], 5);
        let mut seen = Vec::new();
        let y = net
            .infer_traced("", &x, &mut |name, kind, out| {
                seen.push(format!("{name} {kind} {:?}", out.shape()))
            })
            .unwrap();
        assert_eq!(y, net.infer(&x).unwrap());
        assert_eq!(
            seen,
            [
                "flatten Flatten [3, 6]",
                "features.fc Linear [3, 5]",
                "features.act ReLU [3, 5]",
                "features Sequential [3, 5]",
                "head Linear [3, 2]",
                " Sequential [3, 2]",
            ]
        );
        // Errors name the child, as `infer`'s do.
        let e = net
            .infer_traced("", &random(&[3, 7], 1), &mut |_, _, _| {})
            .unwrap_err();
        assert_eq!(
            e.layer(),
            net.infer(&random(&[3, 7], 1)).unwrap_err().layer()
        );
    }
}
