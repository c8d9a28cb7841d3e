//! [`Param`]: a trainable tensor and its gradient.

use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{LayerError, Result};

/// The most elements one parameter tensor may have: 2^30, 4 GiB of `f32`
/// (8 GiB with its gradient). Layers check their weight's shape against it
/// before allocating anything, so a configuration with absurd sizes (10^12
/// classes, a 100000×100000 input flattened into a linear layer) is an
/// error rather than an allocation that aborts the process.
pub const MAX_PARAM_ELEMENTS: usize = 1 << 30;

/// Checks that a parameter of `shape` of `layer` stays within
/// [`MAX_PARAM_ELEMENTS`]; the error names the shape, its element count and
/// the limit.
///
/// ```
/// use convnet_layers::param::check_param_size;
///
/// assert!(check_param_size("Linear", &[1000, 4096]).is_ok());
/// let e = check_param_size("Linear", &[1_000_000_000_000, 84]).unwrap_err();
/// assert!(e.to_string().contains("84000000000000 elements"), "{e}");
/// ```
pub fn check_param_size(layer: &str, shape: &[usize]) -> Result<()> {
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match n {
        Some(n) if n <= MAX_PARAM_ELEMENTS => charge_budget(layer, shape, n),
        _ => {
            let count = shape.iter().map(|&d| d as u128).product::<u128>();
            Err(LayerError::config(
                layer,
                format!(
                    "a weight of shape {shape:?} would have {count} elements, more than the \
                     {MAX_PARAM_ELEMENTS} ({} GiB of f32) a parameter may have",
                    (MAX_PARAM_ELEMENTS * 4) >> 30
                ),
            ))
        }
    }
}

/// The parameter budget of the model being built on this thread, if any:
/// elements used so far and the most allowed.
#[derive(Debug, Clone, Copy)]
struct Budget {
    used: usize,
    limit: usize,
}

thread_local! {
    static BUDGET: std::cell::Cell<Option<Budget>> = const { std::cell::Cell::new(None) };
}

/// While alive, the weights checked by [`check_param_size`] on this thread
/// are added up, and a weight that would take the sum above the budget is
/// refused before it is allocated. Made by [`ParamBudget::enter`]; dropping
/// it ends the budget.
///
/// A model is built layer by layer, so no single weight reveals that the
/// whole would not fit: `lenet5` at `--image-size 2900` has a first linear
/// layer of 10^9 weights (4 GiB, 8 GiB with its gradient), each other layer
/// is small. Builders of whole models (the zoo) enter a budget sized from
/// the memory the machine has, so such a model is an error naming the
/// weights asked for and the memory available, never an abort.
///
/// ```
/// use convnet_layers::param::{check_param_size, ParamBudget};
///
/// let budget = ParamBudget::enter(1000);
/// assert!(check_param_size("Linear", &[10, 60]).is_ok()); // 600
/// let e = check_param_size("Linear", &[10, 60]).unwrap_err(); // 1200 > 1000
/// assert!(e.to_string().contains("1200"), "{e}");
/// drop(budget);
/// assert!(check_param_size("Linear", &[10, 60]).is_ok()); // no budget any more
/// ```
#[derive(Debug)]
#[must_use = "the budget ends when this guard is dropped"]
pub struct ParamBudget {
    /// Only the outermost guard of nested builds ends the budget.
    outermost: bool,
}

impl ParamBudget {
    /// Starts a budget of `limit_elements` weight elements on this thread.
    /// Inside another budget (a model built from other models), the outer
    /// budget keeps counting and this call changes nothing.
    pub fn enter(limit_elements: usize) -> ParamBudget {
        BUDGET.with(|b| {
            if b.get().is_some() {
                ParamBudget { outermost: false }
            } else {
                b.set(Some(Budget {
                    used: 0,
                    limit: limit_elements,
                }));
                ParamBudget { outermost: true }
            }
        })
    }

    /// A budget sized from the memory the machine can give
    /// ([`convnet_tensor::memory::available_bytes`]): every weight needs 4
    /// bytes for its value and 4 for its gradient. Without a reading (other
    /// systems than Linux) the budget is unlimited.
    pub fn from_available_memory() -> ParamBudget {
        let limit = convnet_tensor::memory::available_bytes()
            .map_or(usize::MAX, |b| usize::try_from(b / 8).unwrap_or(usize::MAX));
        ParamBudget::enter(limit)
    }
}

impl Drop for ParamBudget {
    fn drop(&mut self) {
        if self.outermost {
            BUDGET.with(|b| b.set(None));
        }
    }
}

/// Adds `n` elements of a weight of `shape` to the running budget, if any.
fn charge_budget(layer: &str, shape: &[usize], n: usize) -> Result<()> {
    BUDGET.with(|b| {
        let Some(mut budget) = b.get() else {
            return Ok(());
        };
        let total = budget.used.saturating_add(n);
        if total > budget.limit {
            return Err(LayerError::config(
                layer,
                format!(
                    "a weight of shape {shape:?} would bring the model to {total} weight \
                     elements ({} with their gradients), more than the {} this machine has \
                     available: choose smaller sizes",
                    convnet_tensor::memory::human_bytes((total as u64).saturating_mul(8)),
                    convnet_tensor::memory::human_bytes((budget.limit as u64).saturating_mul(8)),
                ),
            ));
        }
        budget.used = total;
        b.set(Some(budget));
        Ok(())
    })
}

/// A trainable value and the gradient accumulated into it by `backward`.
///
/// `grad` always has the shape of `value`; backward passes add to it (`+=`),
/// and [`Param::zero_grad`] resets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The current value.
    pub value: Tensor,
    /// The accumulated gradient of the loss with respect to `value`.
    pub grad: Tensor,
}

impl Param {
    /// A parameter with a zero gradient.
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad }
    }

    /// Resets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// Shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of scalar values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// `true` for an empty parameter.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// Joins a prefix and a name with a dot, as PyTorch builds `state_dict` keys:
/// `join("layer1.0", "conv1")` is `"layer1.0.conv1"`, `join("", "weight")` is
/// `"weight"`.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod size_tests {
    use convnet_tensor::Rng;

    use crate::{Conv2d, Conv2dConfig, Linear, LinearConfig};

    #[test]
    fn absurd_layer_sizes_are_errors_before_allocating() {
        let mut rng = Rng::seed_from(0);
        let e = Linear::new(LinearConfig::new(84, 1_000_000_000_000), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Linear")
                && e.contains("[1000000000000, 84]")
                && e.contains("84000000000000"),
            "{e}"
        );
        // The product overflows usize: still a clear error.
        let e = Linear::new(LinearConfig::new(usize::MAX, 2), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 1073741824"), "{e}");
        let e = Conv2d::new(Conv2dConfig::new(1_000_000_000, 6, 5), &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Conv2d") && e.contains("150000000000 elements"),
            "{e}"
        );
        assert!(Linear::new(LinearConfig::new(4096, 1000), &mut rng).is_ok());
    }
}
