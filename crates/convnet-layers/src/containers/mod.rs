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

/// Checks that no two non-empty child names are equal and that no two
/// parameters or buffers end up with the same full name.
pub(crate) fn check_names(container: &str, children: &[Child]) -> Result<()> {
    let mut names: Vec<&str> = children
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(LayerError::config(
            container,
            format!("two children are named {:?}", w[0]),
        ));
    }
    let mut keys = Vec::new();
    for (n, c) in children {
        c.visit_params(n, &mut |k, _| keys.push(k.to_string()));
        c.visit_buffers(n, &mut |k, _| keys.push(k.to_string()));
    }
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(LayerError::config(
            container,
            format!("two parameters or buffers would be named {:?}", w[0]),
        ));
    }
    Ok(())
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

/// Element-wise `acc += x`, for summing gradients and branch outputs.
pub(crate) fn add_into(acc: &mut [f32], x: &[f32]) {
    debug_assert_eq!(acc.len(), x.len());
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}
