//! Add: parallel branches on the same input, outputs summed.
//!
//! PyTorch equivalent: a module whose `forward` returns `a(x) + b(x)`.
//! Shapes: the branches' common output shape.

use convnet_tensor::Tensor;

use crate::containers::{
    add_into, check_names, clone_children, map_children, map_children_mut, summarize_branches,
    to_branches, visit, visit_mut, Child,
};
use crate::error::{LayerError, Result};
use crate::layer::Layer;
use crate::summary::SummaryRow;
use crate::util::check_grad;

const NAME: &str = "Add";

/// `y = a(x) + b(x) (+ ...)`: every branch sees the same input, their outputs
/// (which must have the same shape) are summed, and the input gradient is the
/// sum of the branches' input gradients.
///
/// Branches are named `0`, `1`, ... ([`Add::new`]) or explicitly
/// ([`Add::named`]). For `x + f(x)` with an optional activation, see
/// [`crate::Residual`].
///
/// PyTorch equivalent: `a(x) + b(x)` in a module's `forward`.
///
/// # Shapes
///
/// - input: what every branch accepts
/// - output: the branches' common output shape (an error if they differ)
///
/// ```
/// use convnet_layers::{Add, Layer, Linear, LinearConfig};
/// use convnet_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::seed_from(0);
/// let a = Linear::new(LinearConfig::new(4, 3), &mut rng)?;
/// let b = Linear::new(LinearConfig::new(4, 3), &mut rng)?;
/// let x = Tensor::randn(&[2, 4], 0.0, 1.0, &mut rng);
/// let expected = a.infer(&x)?.as_slice().iter().zip(b.infer(&x)?.as_slice())
///     .map(|(u, v)| u + v).collect::<Vec<f32>>();
/// let mut sum = Add::new(Box::new(a), Box::new(b));
/// assert_eq!(sum.forward(&x)?.as_slice(), expected.as_slice());
/// assert_eq!(sum.backward(&Tensor::ones(&[2, 3]))?.shape(), &[2, 4]);
/// # Ok::<(), convnet_layers::LayerError>(())
/// ```
#[derive(Debug)]
pub struct Add {
    branches: Vec<Child>,
    /// The output shape of the last `forward`.
    cache: Option<Vec<usize>>,
}

impl Add {
    /// The sum of two branches, named `0` and `1`.
    pub fn new(a: Box<dyn Layer>, b: Box<dyn Layer>) -> Self {
        Add {
            branches: vec![("0".to_string(), a), ("1".to_string(), b)],
            cache: None,
        }
    }

    /// The sum of named branches; errors without a branch, on duplicate names
    /// or colliding parameter keys.
    pub fn named<S: Into<String>>(branches: Vec<(S, Box<dyn Layer>)>) -> Result<Self> {
        let container = Add {
            branches: to_branches(NAME, branches)?,
            cache: None,
        };
        check_names(&container)?;
        Ok(container)
    }

    fn mismatch(input: &[usize], shapes: &[Vec<usize>]) -> LayerError {
        LayerError::input_shape(
            NAME,
            format!("an input for which the branch outputs agree (branches give {shapes:?})"),
            input,
        )
    }

    fn sum(input: &[usize], outputs: Vec<Tensor>) -> Result<Tensor> {
        if outputs.iter().any(|o| o.shape() != outputs[0].shape()) {
            let shapes: Vec<Vec<usize>> = outputs.iter().map(|o| o.shape().to_vec()).collect();
            return Err(Self::mismatch(input, &shapes));
        }
        let mut it = outputs.into_iter();
        let mut acc = it.next().expect("at least one branch");
        for o in it {
            add_into(acc.as_slice_mut(), o.as_slice());
        }
        Ok(acc)
    }
}

impl Layer for Add {
    fn type_name(&self) -> &'static str {
        NAME
    }

    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let outputs = map_children(&self.branches, |b| b.infer(x))?;
        Self::sum(x.shape(), outputs)
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let outputs = map_children_mut(&mut self.branches, |b| b.forward(x))?;
        let y = Self::sum(x.shape(), outputs)?;
        self.cache = Some(y.shape().to_vec());
        Ok(y)
    }

    fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor> {
        let shape = self
            .cache
            .as_ref()
            .ok_or_else(|| LayerError::no_cache(NAME))?;
        check_grad(NAME, grad_out, shape)?;
        self.cache = None;
        let mut gx: Option<Tensor> = None;
        for (n, b) in &mut self.branches {
            let g = b.backward(grad_out).map_err(|e| e.in_child(n))?;
            match &mut gx {
                None => gx = Some(g),
                Some(acc) => add_into(acc.as_slice_mut(), g.as_slice()),
            }
        }
        Ok(gx.expect("at least one branch"))
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let shapes = map_children(&self.branches, |b| b.output_shape(input_shape))?;
        if shapes.iter().any(|s| s != &shapes[0]) {
            return Err(Self::mismatch(input_shape, &shapes));
        }
        Ok(shapes[0].clone())
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
        Some(Box::new(Add {
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
    fn gradient_of_two_and_three_branches() {
        let mut two = Add::new(lin(3, 3, 1), Box::new(Identity::new()));
        check_layer(&mut two, &random(&[2, 3], 0));
        let mut three = Add::named(vec![
            ("p", lin(3, 2, 1)),
            ("q", lin(3, 2, 2)),
            ("r", lin(3, 2, 3)),
        ])
        .unwrap();
        check_layer(&mut three, &random(&[2, 4, 3], 0));
    }

    #[test]
    fn errors() {
        let a = Add::new(lin(3, 3, 1), lin(3, 4, 2));
        let e = a.infer(&random(&[2, 3], 0)).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("[2, 4]"), "{e}");
        assert!(a.output_shape(&[2, 3]).is_err());
        let mut b = Add::new(lin(3, 3, 1), lin(3, 3, 2));
        assert!(b.backward(&Tensor::zeros(&[2, 3])).is_err());
        b.forward(&Tensor::zeros(&[2, 3])).unwrap();
        assert!(b.backward(&Tensor::zeros(&[2, 2])).is_err());
        assert!(b.backward(&Tensor::zeros(&[2, 3])).is_ok());
        assert!(Add::named(Vec::<(&str, Box<dyn Layer>)>::new()).is_err());
        assert!(Add::named(vec![("x", lin(3, 3, 1)), ("x", lin(3, 3, 2))]).is_err());
    }
}
