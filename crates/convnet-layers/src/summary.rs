//! Model summaries, like torchsummary or Keras' `model.summary()`.
//!
//! (Filled in by the summary work: [`SummaryRow`] is the structured row every
//! layer produces through [`crate::Layer::summarize`].)

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
