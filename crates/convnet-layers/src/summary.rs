//! Model summaries, like torchsummary or Keras' `model.summary()`.
//!
//! [`summary`] walks a layer tree through [`crate::Layer::summarize`]: every
//! layer reports its name, type, output shape and parameter count for one
//! input shape, and the totals follow. [`Summary`] is structured data and
//! [`std::fmt::Display`] renders it as an aligned table.

use std::fmt;

use convnet_tensor::numel;

use crate::error::Result;
use crate::layer::Layer;

/// One row of a model summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// Full dotted name (`layer1.0.conv1`), empty for the root.
    pub name: String,
    /// Module type (`Conv2d`).
    pub type_name: String,
    /// Nesting depth (0 for the root's direct children).
    pub depth: usize,
    /// Output shape for the summarised input.
    pub output_shape: Vec<usize>,
    /// Trainable parameters of this layer (for a container: of all its
    /// children).
    pub params: usize,
    /// `true` for a layer without children.
    pub leaf: bool,
}

/// A model summary for one input shape: the rows of every layer and the
/// totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// One row per layer, containers first and their children after them
    /// (indented by [`SummaryRow::depth`]). When the summarised layer is a
    /// container, its own row is left out and its children are at depth 0.
    pub rows: Vec<SummaryRow>,
    /// Number of parameter scalars.
    pub total_params: usize,
    /// Number of trainable parameter scalars (every parameter is trainable;
    /// buffers are counted in [`Summary::buffer_elems`]).
    pub trainable_params: usize,
    /// Number of buffer scalars (BatchNorm's running statistics and
    /// `num_batches_tracked`): saved, not trained.
    pub buffer_elems: usize,
    /// Parameter memory in bytes (4 per `f32` scalar).
    pub param_bytes: usize,
    /// Activation memory of one forward pass at this input, in bytes: the sum
    /// of the output sizes of every leaf layer, 4 bytes per scalar (what a
    /// training-mode forward keeps alive for backward, roughly; the input
    /// itself is not counted).
    pub activation_bytes: usize,
    /// The summarised input shape (batch axis included).
    pub input_shape: Vec<usize>,
    /// The output shape of the whole model.
    pub output_shape: Vec<usize>,
}

/// Summarises `layer` for an input of shape `input_shape` (batch axis
/// included), or returns the error the layer would give for that input.
///
/// ```
/// use convnet_layers::{summary, Flatten, Layer, Linear, LinearConfig, Sequential};
/// use convnet_tensor::Rng;
///
/// let mut rng = Rng::seed_from(0);
/// let net = Sequential::default()
///     .with(Flatten::new())
///     .with(Linear::new(LinearConfig::new(784, 10), &mut rng)?);
/// let s = summary(&net, &[1, 1, 28, 28])?;
/// assert_eq!(s.total_params, 7850);
/// assert_eq!(s.rows[1].output_shape, vec![1, 10]);
/// assert_eq!(s.activation_bytes, (784 + 10) * 4);
/// println!("{s}");
/// assert!(s.to_string().contains("Total params: 7,850"));
/// assert!(summary(&net, &[1, 1, 28, 27]).is_err());
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
pub fn summary(layer: &dyn Layer, input_shape: &[usize]) -> Result<Summary> {
    let mut rows = Vec::new();
    let output_shape = layer.summarize("", input_shape, 0, &mut rows)?;
    if rows.len() > 1 && !rows[0].leaf && rows[0].name.is_empty() {
        rows.remove(0);
        for r in &mut rows {
            r.depth = r.depth.saturating_sub(1);
        }
    }
    let total_params = layer.num_params();
    let mut buffer_elems = 0;
    layer.visit_buffers("", &mut |_, b| buffer_elems += b.len());
    let activation_bytes = rows
        .iter()
        .filter(|r| r.leaf)
        .map(|r| numel(&r.output_shape) * 4)
        .sum();
    Ok(Summary {
        rows,
        total_params,
        trainable_params: total_params,
        buffer_elems,
        param_bytes: total_params * 4,
        activation_bytes,
        input_shape: input_shape.to_vec(),
        output_shape,
    })
}

/// `61706` -> `"61,706"`.
fn thousands(n: usize) -> String {
    convnet_tensor::format::thousands(n as u64)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Summary {
    /// The output shapes of the leaf layers, in order, without the batch
    /// axis, consecutive repeats merged (an activation after a convolution
    /// keeps its shape): the "shape flow" of the network, as drawn in the
    /// lecture (`6×28×28 → 6×14×14 → ...`).
    pub fn shape_flow(&self) -> Vec<Vec<usize>> {
        let mut flow: Vec<Vec<usize>> = Vec::new();
        for r in self.rows.iter().filter(|r| r.leaf) {
            let s = r.output_shape.get(1..).unwrap_or_default().to_vec();
            if flow.last() != Some(&s) {
                flow.push(s);
            }
        }
        flow
    }
}

impl fmt::Display for Summary {
    /// An aligned table (`Layer (type)`, `Output Shape`, `Param #`), then the
    /// totals; memory in MB of 2^20 bytes, with 2 decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<(String, String, String)> = self
            .rows
            .iter()
            .map(|r| {
                let label = if r.name.is_empty() {
                    r.type_name.clone()
                } else {
                    format!("{} ({})", r.name, r.type_name)
                };
                (
                    format!("{}{}", "  ".repeat(r.depth), label),
                    format!("{:?}", r.output_shape),
                    thousands(r.params),
                )
            })
            .collect();
        let headers = ("Layer (type)", "Output Shape", "Param #");
        let w0 = cells
            .iter()
            .map(|c| c.0.len())
            .chain([headers.0.len()])
            .max()
            .unwrap_or(0);
        let w1 = cells
            .iter()
            .map(|c| c.1.len())
            .chain([headers.1.len()])
            .max()
            .unwrap_or(0);
        let w2 = cells
            .iter()
            .map(|c| c.2.len())
            .chain([headers.2.len()])
            .max()
            .unwrap_or(0);
        let width = w0 + w1 + w2 + 4;
        writeln!(f, "{}", "-".repeat(width))?;
        writeln!(
            f,
            "{:<w0$}  {:<w1$}  {:>w2$}",
            headers.0, headers.1, headers.2
        )?;
        writeln!(f, "{}", "=".repeat(width))?;
        for (a, b, c) in &cells {
            writeln!(f, "{a:<w0$}  {b:<w1$}  {c:>w2$}")?;
        }
        writeln!(f, "{}", "=".repeat(width))?;
        writeln!(f, "Input shape: {:?}", self.input_shape)?;
        writeln!(f, "Output shape: {:?}", self.output_shape)?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable_params))?;
        writeln!(
            f,
            "Non-trainable params: {}",
            thousands(self.total_params - self.trainable_params)
        )?;
        writeln!(f, "Buffers (not trained): {}", thousands(self.buffer_elems))?;
        writeln!(f, "{}", "-".repeat(width))?;
        writeln!(f, "Params size (MB): {:.2}", mib(self.param_bytes))?;
        writeln!(
            f,
            "Activations, one forward pass (MB): {:.2}",
            mib(self.activation_bytes)
        )?;
        write!(f, "{}", "-".repeat(width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, Linear, LinearConfig, Residual, Sequential};
    use convnet_tensor::Rng;

    #[test]
    fn nested_rows_and_totals() {
        let mut rng = Rng::seed_from(0);
        let block = Residual::new(
            Box::new(Sequential::new(vec![
                Box::new(Linear::new(LinearConfig::new(4, 4), &mut rng).unwrap()),
                Box::new(Identity::new()),
            ])),
            None,
        )
        .unwrap();
        let net = Sequential::named(vec![
            ("block", Box::new(block) as Box<dyn Layer>),
            (
                "head",
                Box::new(Linear::new(LinearConfig::new(4, 2), &mut rng).unwrap()),
            ),
        ])
        .unwrap();
        let s = summary(&net, &[3, 4]).unwrap();
        let got: Vec<(&str, &str, usize, bool)> = s
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.type_name.as_str(), r.depth, r.leaf))
            .collect();
        // The residual body is merged: its children sit directly under "block".
        assert_eq!(
            got,
            [
                ("block", "Residual", 0, false),
                ("block.0", "Linear", 1, true),
                ("block.1", "Identity", 1, true),
                ("head", "Linear", 0, true),
            ]
        );
        assert_eq!(s.rows[0].params, 20);
        assert_eq!(s.total_params, 30);
        assert_eq!(s.param_bytes, 120);
        assert_eq!(s.activation_bytes, (12 + 12 + 6) * 4);
        assert_eq!(s.output_shape, vec![3, 2]);
        assert_eq!(s.shape_flow(), vec![vec![4], vec![2]]);
        let text = s.to_string();
        assert!(text.contains("  block.0 (Linear)"), "{text}");
        assert!(text.contains("Total params: 30"), "{text}");
        assert!(text.contains("Params size (MB): 0.00"), "{text}");
        // Every table line is equally wide.
        let table: Vec<&str> = text.lines().skip(3).take(4).collect();
        assert!(table.iter().all(|l| l.len() == table[0].len()), "{text}");
        // A leaf as the root keeps its row.
        let lin = Linear::new(LinearConfig::new(4, 2), &mut rng).unwrap();
        let s = summary(&lin, &[1, 4]).unwrap();
        assert_eq!(s.rows.len(), 1);
        assert!(s.to_string().contains("Linear"));
        // A wrong input shape names the failing layer.
        let e = summary(&net, &[3, 5]).unwrap_err();
        assert_eq!(e.layer(), "block.0 (Linear)");
    }
}
