//! Containers: layers made of named child layers.
//!
//! - [`Sequential`]: children applied one after the other (named `0`, `1`, ...
//!   or by explicit names), the building block of every model;
//! - [`Residual`]: `act(body(x) + shortcut(x))`, identity or projection
//!   shortcut (ResNet, ConvNeXt);
//! - [`Concat`]: parallel branches concatenated on the channel axis
//!   (Inception);
//! - [`Add`]: parallel branches summed.
//!
//! A child's parameters are named `join(prefix, child_name)` followed by the
//! child's own names, as PyTorch builds `state_dict` keys. A child named `""`
//! is *merged* into its parent's namespace: its parameters appear directly
//! under the parent's prefix (a [`Residual`] does this with its body, so a
//! ResNet block's keys are `layer1.0.conv1.weight`, not
//! `layer1.0.body.conv1.weight`). Errors coming from a child are prefixed
//! with its name ([`crate::LayerError::in_child`]).

mod add;
mod concat;
mod residual;
mod sequential;

pub use add::Add;
pub use concat::Concat;
pub use residual::Residual;
pub use sequential::Sequential;

use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::param::join;
use crate::summary::SummaryRow;

/// A named child of a container.
pub(crate) type Child = (String, Box<dyn Layer>);

/// Checks that no two non-empty child names of `container` (as
/// [`Layer::visit_children`] gives them) are equal and that no two
/// parameters or buffers end up with the same full name.
pub(crate) fn check_names(container: &dyn Layer) -> Result<()> {
    let (mut names, mut keys) = (Vec::new(), Vec::new());
    container.visit_children(&mut |n, c| {
        if !n.is_empty() {
            names.push(n.to_string());
        }
        c.visit_params(n, &mut |k, _| keys.push(k.to_string()));
        c.visit_buffers(n, &mut |k, _| keys.push(k.to_string()));
    });
    let duplicate = |v: &mut Vec<String>| {
        v.sort_unstable();
        v.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].clone())
    };
    if let Some(n) = duplicate(&mut names) {
        return Err(LayerError::config(
            container.type_name(),
            format!("two children are named {n:?}"),
        ));
    }
    if let Some(k) = duplicate(&mut keys) {
        return Err(LayerError::config(
            container.type_name(),
            format!("two parameters or buffers would be named {k:?}"),
        ));
    }
    Ok(())
}

/// Children named after their position: `0`, `1`, ...
pub(crate) fn numbered(layers: Vec<Box<dyn Layer>>) -> Vec<Child> {
    layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l))
        .collect()
}

/// Children from `(name, layer)` pairs.
pub(crate) fn to_children<S: Into<String>>(layers: Vec<(S, Box<dyn Layer>)>) -> Vec<Child> {
    layers.into_iter().map(|(n, l)| (n.into(), l)).collect()
}

/// The branches of a parallel container ([`Add`], [`Concat`]); errors
/// without a branch.
pub(crate) fn to_branches<S: Into<String>>(
    container: &str,
    branches: Vec<(S, Box<dyn Layer>)>,
) -> Result<Vec<Child>> {
    if branches.is_empty() {
        return Err(LayerError::config(container, "needs at least one branch"));
    }
    Ok(to_children(branches))
}

/// `run` on every child in order; an error names the child.
pub(crate) fn map_children<T>(
    children: &[Child],
    mut run: impl FnMut(&dyn Layer) -> Result<T>,
) -> Result<Vec<T>> {
    children
        .iter()
        .map(|(n, c)| run(c.as_ref()).map_err(|e| e.in_child(n)))
        .collect()
}

/// `run` on every child in order, mutably; an error names the child.
pub(crate) fn map_children_mut<T>(
    children: &mut [Child],
    mut run: impl FnMut(&mut dyn Layer) -> Result<T>,
) -> Result<Vec<T>> {
    children
        .iter_mut()
        .map(|(n, c)| run(c.as_mut()).map_err(|e| e.in_child(n)))
        .collect()
}

/// Calls `f` with every child's name and layer.
pub(crate) fn visit(children: &[Child], f: &mut dyn FnMut(&str, &dyn Layer)) {
    for (n, c) in children {
        f(n, c.as_ref());
    }
}

/// Calls `f` with every child's name and layer, mutably.
pub(crate) fn visit_mut(children: &mut [Child], f: &mut dyn FnMut(&str, &mut dyn Layer)) {
    for (n, c) in children {
        f(n, c.as_mut());
    }
}

/// Clones every child, or `None` if one cannot be cloned.
pub(crate) fn clone_children(children: &[Child]) -> Option<Vec<Child>> {
    children
        .iter()
        .map(|(n, c)| c.clone_boxed().map(|c| (n.clone(), c)))
        .collect()
}

/// Summarises one child of a container whose own name is `parent`: the rows
/// are appended at `depth`. A child named `""` is merged: if it is itself a
/// container, its own row is dropped and its children take its place.
pub(crate) fn summarize_child(
    child: &dyn Layer,
    parent: &str,
    child_name: &str,
    input_shape: &[usize],
    depth: usize,
    rows: &mut Vec<SummaryRow>,
) -> Result<Vec<usize>> {
    let start = rows.len();
    let out = child
        .summarize(&join(parent, child_name), input_shape, depth, rows)
        .map_err(|e| e.in_child(child_name))?;
    if child_name.is_empty() && rows.len() > start + 1 && !rows[start].leaf {
        rows.remove(start);
        for r in &mut rows[start..] {
            r.depth = r.depth.saturating_sub(1);
        }
    }
    Ok(out)
}

/// The summary of a container whose branches all see the input (and whose
/// output shape its `output_shape` gives): its own row, then each branch's.
pub(crate) fn summarize_branches(
    container: &dyn Layer,
    name: &str,
    input_shape: &[usize],
    depth: usize,
    rows: &mut Vec<SummaryRow>,
) -> Result<Vec<usize>> {
    let out = container.output_shape(input_shape)?;
    let mut inner = Vec::new();
    let mut result = Ok(());
    container.visit_children(&mut |n, b| {
        if result.is_ok() {
            result = summarize_child(b, name, n, input_shape, depth + 1, &mut inner).map(|_| ());
        }
    });
    result?;
    rows.push(container_row(container, name, depth, &out));
    rows.extend(inner);
    Ok(out)
}

/// The row of a container itself.
pub(crate) fn container_row(
    layer: &dyn Layer,
    name: &str,
    depth: usize,
    output_shape: &[usize],
) -> SummaryRow {
    SummaryRow {
        name: name.to_string(),
        type_name: layer.type_name().to_string(),
        depth,
        output_shape: output_shape.to_vec(),
        params: layer.num_params(),
        leaf: false,
    }
}

/// Element-wise `acc += x`, for summing gradients and branch outputs (the
/// crate's one such loop; the inference path of [`Residual`] uses the
/// parallel `fused::add_relu_into`).
pub(crate) fn add_into(acc: &mut [f32], x: &[f32]) {
    debug_assert_eq!(acc.len(), x.len());
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use convnet_tensor::{Rng, Tensor};

    use super::*;
    use crate::{BatchNorm2d, Dropout, Linear, LinearConfig};

    /// A container that implements only the children hook.
    #[derive(Debug)]
    struct Pair(Vec<Child>);

    impl Layer for Pair {
        fn type_name(&self) -> &'static str {
            "Pair"
        }
        fn infer(&self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
        fn backward(&mut self, g: &Tensor) -> Result<Tensor> {
            Ok(g.clone())
        }
        fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
            Ok(s.to_vec())
        }
        fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
            visit(&self.0, f)
        }
        fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
            visit_mut(&mut self.0, f)
        }
    }

    #[test]
    fn the_children_hook_gives_every_visitor() {
        let lin = Linear::new(LinearConfig::new(2, 3), &mut Rng::seed_from(0)).unwrap();
        let mut pair = Pair(to_children(vec![
            ("fc", Box::new(lin) as Box<dyn Layer>),
            ("bn", Box::new(BatchNorm2d::new(2).unwrap())),
            ("", Box::new(Dropout::with_seed(0.5, 1).unwrap())),
        ]));
        let mut keys = Vec::new();
        pair.visit_params("m", &mut |k, _| keys.push(k.to_string()));
        pair.visit_buffers("m", &mut |k, _| keys.push(k.to_string()));
        pair.visit_rngs_mut("m", &mut |k, _| keys.push(k.to_string()));
        let mut n = 0;
        pair.visit_params_mut("m", &mut |_, p| {
            p.grad.as_slice_mut()[0] = 1.0;
            n += 1
        });
        pair.visit_buffers_mut("m", &mut |_, t| t.as_slice_mut()[0] = 7.0);
        assert_eq!(
            keys,
            [
                "m.fc.weight",
                "m.fc.bias",
                "m.bn.weight",
                "m.bn.bias",
                "m.bn.running_mean",
                "m.bn.running_var",
                "m.bn.num_batches_tracked",
                "m",
            ]
        );
        assert_eq!(n, 4);
        assert_eq!(pair.num_params(), 6 + 3 + 2 + 2);
        let mut grads = Vec::new();
        pair.visit_params("", &mut |_, p| grads.push(p.grad.as_slice()[0]));
        assert_eq!(grads, [1.0; 4]);
        pair.zero_grad();
        pair.visit_params("", &mut |_, p| assert_eq!(p.grad.as_slice()[0], 0.0));
        let mut buffers = Vec::new();
        pair.visit_buffers("", &mut |_, t| buffers.push(t.as_slice()[0]));
        assert_eq!(buffers, [7.0; 3]);
        // set_frozen reaches the BatchNorm under its full key.
        pair.set_frozen("m", &|k| k.starts_with("m.bn."));
        let mut frozen = None;
        pair.visit_children(&mut |n, c| {
            if n == "bn" {
                frozen = c
                    .as_any()
                    .and_then(|a| a.downcast_ref::<BatchNorm2d>())
                    .map(|b| b.is_frozen());
            }
        });
        assert_eq!(frozen, Some(true));
        // Names and keys are checked through the hook too.
        assert!(check_names(&pair).is_ok());
        let twice = Pair(to_children(vec![
            (
                "a",
                Box::new(Dropout::with_seed(0.1, 0).unwrap()) as Box<dyn Layer>,
            ),
            ("a", Box::new(Dropout::with_seed(0.1, 0).unwrap())),
        ]));
        let e = check_names(&twice).unwrap_err().to_string();
        assert!(e.contains("Pair") && e.contains("\"a\""), "{e}");
    }
}
