//! How deep a network is, counted as the papers count it: the number of
//! layers with weights (convolutions and linear layers) along the longest
//! path from input to output.
//!
//! That is the number in "VGG16", "ResNet-50", and the "22 layers deep" of
//! GoogLeNet (Szegedy et al.: "The network is 22 layers deep when counting
//! only layers with parameters (or 27 layers if we also count pooling)").
//! BatchNorm layers have parameters but are not counted, as no paper counts
//! them. [`DepthOptions::count_pooling`] also counts pooling layers
//! (GoogLeNet's 27, LeNet-5's 7 layers "not counting the input").
//!
//! The count walks [`convnet_layers::summary()`] rows as a tree:
//!
//! - a leaf counts 1 if it is a `Conv2d` or a `Linear` (or a pooling layer
//!   when pooling counts), else 0;
//! - `Concat` and `Add` (parallel branches: an inception module) count
//!   their deepest branch;
//! - `Residual` counts the longer of its main path and its `downsample`
//!   shortcut (the projection is a side path, not extra depth);
//! - an `InceptionAux` child (GoogLeNet's auxiliary classifiers) is a side
//!   exit: the path through it ends there, and it only matters if it were
//!   longer than the main path;
//! - any other container (`Sequential`, a model) chains its children.

use convnet_layers::{summary, Layer, Result, SummaryRow};

/// What counts as a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DepthOptions {
    /// Also count max, average and adaptive average pooling layers.
    pub count_pooling: bool,
}

/// The number of weight layers (see the module docs) on the longest path of
/// `model` for an input of shape `input_shape`.
///
/// ```
/// use convnet_tensor::Rng;
/// use convnet_zoo::depth::{depth, DepthOptions};
/// use convnet_zoo::{build, ModelConfig};
///
/// let lenet5 = build("lenet5", &ModelConfig::mnist(), &mut Rng::seed_from(0))?;
/// assert_eq!(depth(&lenet5, &[1, 1, 28, 28], DepthOptions::default())?, 5);
/// // C1, S2, C3, S4, C5, F6 and the output: "7 layers, not counting the input".
/// let with_pooling = DepthOptions { count_pooling: true };
/// assert_eq!(depth(&lenet5, &[1, 1, 28, 28], with_pooling)?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn depth(model: &dyn Layer, input_shape: &[usize], options: DepthOptions) -> Result<usize> {
    let s = summary(model, input_shape)?;
    let roots = children_of(&s.rows, 0, s.rows.len(), 0);
    Ok(chain(&s.rows, &roots, options))
}

/// Indices of the rows in `start..end` at `depth`: the children of the row
/// before `start`.
fn children_of(rows: &[SummaryRow], start: usize, end: usize, depth: usize) -> Vec<usize> {
    (start..end).filter(|&i| rows[i].depth == depth).collect()
}

/// The row range of the subtree of row `i`: `i + 1 ..` the next row at the
/// same depth or above.
fn subtree_end(rows: &[SummaryRow], i: usize) -> usize {
    let d = rows[i].depth;
    (i + 1..rows.len())
        .find(|&j| rows[j].depth <= d)
        .unwrap_or(rows.len())
}

fn node(rows: &[SummaryRow], i: usize, options: DepthOptions) -> usize {
    let row = &rows[i];
    let end = subtree_end(rows, i);
    if row.leaf || end == i + 1 {
        return match row.type_name.as_str() {
            "Conv2d" | "Linear" => 1,
            "MaxPool2d" | "AvgPool2d" | "AdaptiveAvgPool2d" if options.count_pooling => 1,
            _ => 0,
        };
    }
    let children = children_of(rows, i + 1, end, row.depth + 1);
    match row.type_name.as_str() {
        "Concat" | "Add" => children
            .iter()
            .map(|&c| node(rows, c, options))
            .max()
            .unwrap_or(0),
        "Residual" => {
            let shortcut = format!("{}.downsample", row.name);
            let is_shortcut =
                |c: &usize| rows[*c].name == shortcut || rows[*c].name == "downsample";
            let (side, main): (Vec<usize>, Vec<usize>) =
                children.iter().copied().partition(is_shortcut);
            let side = side
                .iter()
                .map(|&c| node(rows, c, options))
                .max()
                .unwrap_or(0);
            chain(rows, &main, options).max(side)
        }
        _ => chain(rows, &children, options),
    }
}

/// The children in sequence; side exits (`InceptionAux`) end their path.
fn chain(rows: &[SummaryRow], children: &[usize], options: DepthOptions) -> usize {
    let mut run = 0;
    let mut best = 0;
    for &c in children {
        let d = node(rows, c, options);
        if rows[c].type_name == "InceptionAux" {
            best = best.max(run + d);
        } else {
            run += d;
        }
    }
    run.max(best)
}
