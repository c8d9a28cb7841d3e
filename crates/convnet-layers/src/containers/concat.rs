//! Concat: parallel branches on the same input, outputs concatenated on the
//! channel axis (axis 1).
//!
//! PyTorch equivalent: torchvision's `Inception` block,
//! `torch.cat([branch1(x), branch2(x), ...], dim=1)`. Shapes: `[N, C, ...]`
//! -> `[N, ΣC_i, ...]`.

use convnet_tensor::{numel, Tensor};

use crate::containers::{
    add_into, check_names, clone_children, map_children, map_children_mut, numbered,
    summarize_branches, to_branches, visit, visit_mut, Child,
};
use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::summary::SummaryRow;
use crate::util::tensor;

const NAME: &str = "Concat";

/// Applies every branch to the same input and concatenates their outputs
/// along axis 1 (channels), in branch order; the input gradient is the sum of
/// the branches' input gradients.
///
/// Branches are named `0`, `1`, ... ([`Concat::new`]) or explicitly
/// ([`Concat::named`]: torchvision's Inception uses `branch1` ... `branch4`).
///
/// PyTorch equivalent: the `torch.cat(outputs, 1)` of torchvision's
/// `Inception` module.
///
/// # Shapes
///
/// - input: what every branch accepts, e.g. `[N, C, H, W]`
/// - output: `[N, C_1 + C_2 + ..., H', W']`; the branch outputs must agree on
///   every axis but 1 (an error otherwise)
///
/// ```
/// use convnet_layers::{Concat, Conv2d, Conv2dConfig, Layer, MaxPool2d, Pool2dConfig, Sequential};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let inception = Concat::named(vec![
///     ("branch1", Box::new(Conv2d::new(Conv2dConfig::new(8, 4, 1), &mut rng)?) as Box<dyn Layer>),
///     ("branch2", Box::new(Conv2d::new(Conv2dConfig::new(8, 6, 3).padding(1), &mut rng)?)),
///     ("branch3", Box::new(Sequential::default()
///         .with(MaxPool2d::new(Pool2dConfig::new(3).stride(1).padding(1))?)
///         .with(Conv2d::new(Conv2dConfig::new(8, 2, 1), &mut rng)?))),
/// ])?;
/// assert_eq!(inception.output_shape(&[1, 8, 7, 7])?, vec![1, 12, 7, 7]);
/// let x = Tensor::randn(&[2, 8, 7, 7], 0.0, 1.0, &mut rng);
/// assert_eq!(inception.infer(&x)?.shape(), &[2, 12, 7, 7]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct Concat {
    branches: Vec<Child>,
    /// The output shape of each branch in the last `forward`.
    cache: Option<Vec<Vec<usize>>>,
}

impl Concat {
    /// Branches named `0`, `1`, ...; errors without a branch.
    pub fn new(branches: Vec<Box<dyn Layer>>) -> Result<Self> {
        Self::named(numbered(branches))
    }

    /// Named branches; errors without a branch, on duplicate names or
    /// colliding parameter keys.
    pub fn named<S: Into<String>>(branches: Vec<(S, Box<dyn Layer>)>) -> Result<Self> {
        let container = Concat {
            branches: to_branches(NAME, branches)?,
            cache: None,
        };
        check_names(&container)?;
        Ok(container)
    }

    /// The branches and their names.
    pub fn branches(&self) -> impl Iterator<Item = (&str, &dyn Layer)> {
        self.branches.iter().map(|(n, b)| (n.as_str(), b.as_ref()))
    }

    /// The concatenated shape, or an error naming the branch shapes.
    fn concat_shape(input: &[usize], shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let first = &shapes[0];
        let compatible = first.len() >= 2
            && shapes
                .iter()
                .all(|s| s.len() == first.len() && s[0] == first[0] && s[2..] == first[2..]);
        if !compatible {
            return Err(LayerError::input_shape(
                NAME,
                format!(
                    "an input for which the branch outputs agree on every axis but 1 \
                     (branches give {shapes:?})"
                ),
                input,
            ));
        }
        let mut out = first.clone();
        out[1] = shapes.iter().map(|s| s[1]).sum();
        Ok(out)
    }

    /// Concatenates along axis 1.
    fn concat(input: &[usize], outputs: &[Tensor]) -> Result<Tensor> {
        let shapes: Vec<Vec<usize>> = outputs.iter().map(|o| o.shape().to_vec()).collect();
        let out_shape = Self::concat_shape(input, &shapes)?;
        let (n, inner) = (out_shape[0], numel(&out_shape[2..]));
        let mut data = Vec::with_capacity(numel(&out_shape));
        for i in 0..n {
            for o in outputs {
                let block = o.shape()[1] * inner;
                data.extend_from_slice(&o.as_slice()[i * block..(i + 1) * block]);
            }
        }
        Ok(tensor(&out_shape, data))
    }
}

impl Layer for Concat {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let outputs = map_children(&self.branches, |b| b.infer(x))?;
        Self::concat(x.shape(), &outputs)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let outputs = map_children_mut(&mut self.branches, |b| b.forward(x))?;
        let y = Self::concat(x.shape(), &outputs)?;
        self.cache = Some(outputs.iter().map(|o| o.shape().to_vec()).collect());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let shapes = self
            .cache
            .take()
            .ok_or_else(|| LayerError::no_cache(NAME))?;
        let out_shape = Self::concat_shape(&[], &shapes)?;
        if let Err(e) = crate::util::check_grad(NAME, grad_out, &out_shape) {
            self.cache = Some(shapes);
            return Err(e);
        }
        let (n, inner) = (out_shape[0], numel(&out_shape[2..]));
        let total = out_shape[1] * inner;
        let g = grad_out.as_slice();
        let mut gx: Option<Tensor> = None;
        let mut offset = 0;
        for ((name, b), shape) in self.branches.iter_mut().zip(&shapes) {
            let block = shape[1] * inner;
            let mut gb = Vec::with_capacity(numel(shape));
            for i in 0..n {
                let start = i * total + offset;
                gb.extend_from_slice(&g[start..start + block]);
            }
            offset += block;
            let gi = b
                .backward(&tensor(shape, gb))
                .map_err(|e| e.in_child(name))?;
            match &mut gx {
                None => gx = Some(gi),
                Some(acc) => add_into(acc.as_slice_mut(), gi.as_slice()),
            }
        }
        Ok(gx.expect("at least one branch"))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let shapes = map_children(&self.branches, |b| b.output_shape(input_shape))?;
        Self::concat_shape(input_shape, &shapes)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        visit(&self.branches, f)
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        visit_mut(&mut self.branches, f)
    }

    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> Result<Vec<usize>> {
        summarize_branches(self, name, input_shape, depth, rows)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Concat {
            branches: clone_children(&self.branches)?,
            cache: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{boxed_linear as lin, check_layer, random};
    use crate::Identity;

    #[test]
    fn concatenates_on_axis_1_in_order() {
        let c = Concat::new(vec![Box::new(Identity::new()), Box::new(Identity::new())]).unwrap();
        let x = Tensor::arange(&[2, 2, 1, 2]);
        let y = c.infer(&x).unwrap();
        assert_eq!(y.shape(), &[2, 4, 1, 2]);
        assert_eq!(
            y.as_slice(),
            &[0., 1., 2., 3., 0., 1., 2., 3., 4., 5., 6., 7., 4., 5., 6., 7.]
        );
    }

    #[test]
    fn gradient_of_branches() {
        // [N, T, D] inputs: Linear acts on the last axis, Concat on axis 1.
        let branches = vec![
            ("a", Box::new(Identity::new()) as Box<dyn Layer>),
            ("b", lin(3, 3, 1)),
            ("c", lin(3, 3, 2)),
        ];
        let mut c = Concat::named(branches).unwrap();
        check_layer(&mut c, &random(&[2, 2, 3], 0));
        let keys: Vec<String> = c.param_shapes().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["b.weight", "b.bias", "c.weight", "c.bias"]);
    }

    #[test]
    fn mismatched_branches_and_bad_config() {
        let c = Concat::new(vec![lin(3, 4, 1), lin(3, 5, 2)]).unwrap();
        // [N, D] outputs differing on axis 1 only are fine.
        assert_eq!(c.output_shape(&[2, 3]).unwrap(), vec![2, 9]);
        // [N, T, D] outputs differ on the last axis: an error naming them.
        let e = c.infer(&random(&[2, 2, 3], 0)).unwrap_err().to_string();
        assert!(e.contains("[2, 2, 4]") && e.contains("[2, 2, 5]"), "{e}");
        assert!(c.output_shape(&[2, 2, 3]).is_err());
        assert!(Concat::new(vec![]).is_err());
        let mut c = Concat::new(vec![lin(3, 4, 1)]).unwrap();
        assert!(c.backward(&Tensor::zeros(&[2, 4])).is_err());
        c.forward(&Tensor::zeros(&[2, 3])).unwrap();
        assert!(c.backward(&Tensor::zeros(&[2, 5])).is_err());
        assert!(c.backward(&Tensor::zeros(&[2, 4])).is_ok());
    }
}
