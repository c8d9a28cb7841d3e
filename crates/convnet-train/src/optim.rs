//! Optimizers over a model's named parameters: SGD (momentum, Nesterov,
//! weight decay), Adam and AdamW, with the update rules of `torch.optim`.
//!
//! An [`Optimizer`] builds its state once, one slot per parameter in the
//! model's visiting order, so that a step walks the parameters and the slots
//! side by side without looking names up. Its [`OptimizerState`] is
//! serialisable and goes into checkpoints; loading it checks that the names
//! and shapes are the model's.
//!
//! Parameters can be *frozen* ([`Optimizer::set_frozen`]): a step leaves
//! them exactly as they are (no update, no weight decay, no momentum) and
//! their slots hold no buffers.

use convnet_layers::{Layer, Param};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which update rule, without its hyper-parameters: what `--optimizer`
/// chooses. Serialised (and parsed on the command line) as `sgd`, `adam`,
/// `adamw`.
///
/// ```
/// use convnet_train::{OptimizerConfig, OptimizerKind};
/// assert_eq!(OptimizerKind::AdamW.to_string(), "adamw");
/// assert_eq!(OptimizerConfig::adam(1e-3).kind(), OptimizerKind::Adam);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OptimizerKind {
    /// Stochastic gradient descent ([`OptimizerConfig::Sgd`]).
    #[default]
    Sgd,
    /// Adam ([`OptimizerConfig::Adam`]).
    Adam,
    /// AdamW ([`OptimizerConfig::AdamW`]).
    #[cfg_attr(feature = "clap", value(name = "adamw"))]
    AdamW,
}

impl OptimizerKind {
    /// The short name: `"sgd"`, `"adam"` or `"adamw"`.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }

    /// The base learning rate used when none is given:
    /// [`defaults::SGD_LR`](crate::defaults::SGD_LR) for SGD,
    /// [`defaults::ADAM_LR`](crate::defaults::ADAM_LR) for Adam and AdamW.
    pub fn default_lr(self) -> f32 {
        match self {
            OptimizerKind::Sgd => crate::defaults::SGD_LR,
            OptimizerKind::Adam | OptimizerKind::AdamW => crate::defaults::ADAM_LR,
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which update rule, and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, as `torch.optim.SGD`.
    Sgd {
        /// Base learning rate (a schedule may scale it per step).
        lr: f32,
        /// Momentum factor (0 for plain SGD).
        momentum: f32,
        /// Nesterov momentum (needs `momentum > 0`).
        nesterov: bool,
        /// L2 penalty added to the gradient: `g + weight_decay · w`.
        weight_decay: f32,
    },
    /// Adam, as `torch.optim.Adam` (weight decay as an L2 term in the
    /// gradient).
    Adam {
        /// Base learning rate.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// AdamW, as `torch.optim.AdamW` (decoupled weight decay:
    /// `w ← w − lr · weight_decay · w` before the Adam step).
    AdamW {
        /// Base learning rate.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// SGD with momentum (PyTorch's defaults otherwise: no Nesterov, no decay).
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8, no decay).
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) and the
    /// given decoupled weight decay (PyTorch's default is 0.01).
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        OptimizerConfig::AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// The update rule ([`OptimizerKind`], shown as `sgd`, `adam` or
    /// `adamw`).
    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerConfig::Sgd { .. } => OptimizerKind::Sgd,
            OptimizerConfig::Adam { .. } => OptimizerKind::Adam,
            OptimizerConfig::AdamW { .. } => OptimizerKind::AdamW,
        }
    }

    /// The same rule with weight decay `weight_decay` (L2 for SGD and Adam,
    /// decoupled for AdamW).
    ///
    /// ```
    /// use convnet_train::OptimizerConfig;
    /// let adam = OptimizerConfig::adam(1e-3).with_weight_decay(5e-4);
    /// assert!(matches!(adam, OptimizerConfig::Adam { weight_decay, .. } if weight_decay == 5e-4));
    /// ```
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd {
                weight_decay: w, ..
            }
            | OptimizerConfig::Adam {
                weight_decay: w, ..
            }
            | OptimizerConfig::AdamW {
                weight_decay: w, ..
            } => *w = weight_decay,
        }
        self
    }

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => lr,
        }
    }

    /// Number of state buffers per parameter (momentum; or first and second
    /// moments).
    pub fn buffers(&self) -> usize {
        match *self {
            OptimizerConfig::Sgd { momentum, .. } => usize::from(momentum != 0.0),
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => 2,
        }
    }

    /// Adam's and AdamW's `(beta1, beta2, eps, weight_decay)`; `None` for
    /// SGD.
    fn adam_params(&self) -> Option<(f32, f32, f32, f32)> {
        match *self {
            OptimizerConfig::Sgd { .. } => None,
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            }
            | OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => Some((beta1, beta2, eps, weight_decay)),
        }
    }

    /// Checks every hyper-parameter's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TrainError::Config(format!("{}: {msg}", self.kind())));
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad(format!("learning rate must be > 0, got {lr}"));
        }
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad(format!("momentum must be in [0, 1), got {momentum}"));
                }
                if nesterov && momentum == 0.0 {
                    return bad("Nesterov momentum needs momentum > 0".into());
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad(format!("weight decay must be >= 0, got {weight_decay}"));
                }
            }
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => {
                let (beta1, beta2, eps, weight_decay) = self.adam_params().unwrap_or_default();
                for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return bad(format!("{name} must be in [0, 1), got {b}"));
                    }
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return bad(format!("eps must be > 0, got {eps}"));
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad(format!("weight decay must be >= 0, got {weight_decay}"));
                }
            }
        }
        Ok(())
    }
}

/// The state of one parameter: its name, shape and buffers (momentum, or the
/// two Adam moments), each as long as the parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotState {
    /// The parameter's name (`conv1.weight`).
    pub name: String,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// The per-element buffers.
    pub buffers: Vec<Vec<f32>>,
}

/// Everything an optimizer must save to resume bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// `"sgd"`, `"adam"` or `"adamw"`.
    pub kind: String,
    /// Steps taken so far.
    pub step: u64,
    /// One slot per parameter, in the model's visiting order (a frozen
    /// parameter's slot has no buffers).
    pub slots: Vec<SlotState>,
}

/// An optimizer bound to a model's parameter list.
///
/// ```
/// use convnet_layers::{visit_param_mut, Layer, Param, Result};
/// use convnet_tensor::Tensor;
/// use convnet_train::optim::{Optimizer, OptimizerConfig};
///
/// // A one-parameter "model": f(w) = w.
/// #[derive(Debug)]
/// struct W(Param);
/// impl Layer for W {
///     fn type_name(&self) -> &'static str { "W" }
///     fn infer(&self, _: &Tensor) -> Result<Tensor> { Ok(self.0.value.clone()) }
///     fn forward(&mut self, _: &Tensor) -> Result<Tensor> { Ok(self.0.value.clone()) }
///     fn backward(&mut self, g: &Tensor) -> Result<Tensor> { Ok(g.clone()) }
///     fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> { Ok(s.to_vec()) }
///     fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) { f("w", &self.0) }
///     fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
///         visit_param_mut(prefix, "w", &mut self.0, f)
///     }
/// }
///
/// let mut model = W(Param::new(Tensor::from_vec(&[1], vec![1.0]).unwrap()));
/// let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.0), &model).unwrap();
/// model.0.grad = Tensor::from_vec(&[1], vec![2.0]).unwrap();
/// opt.step(&mut model, 0.1).unwrap();
/// assert!((model.0.value.as_slice()[0] - 0.8).abs() < 1e-7); // 1 - 0.1 * 2
/// ```
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
    /// Per slot: frozen (never updated).
    frozen: Vec<bool>,
}

impl Optimizer {
    /// An optimizer for `model`'s parameters, with zeroed state.
    pub fn new(config: OptimizerConfig, model: &dyn Layer) -> Result<Self> {
        config.validate()?;
        let nbuf = config.buffers();
        let mut slots = Vec::new();
        model.visit_params("", &mut |name, p| {
            slots.push(SlotState {
                name: name.to_string(),
                shape: p.shape().to_vec(),
                buffers: vec![vec![0.0; p.len()]; nbuf],
            })
        });
        Ok(Optimizer {
            frozen: vec![false; slots.len()],
            state: OptimizerState {
                kind: config.kind().to_string(),
                step: 0,
                slots,
            },
            config,
        })
    }

    /// Freezes the parameters whose name `frozen` accepts and unfreezes the
    /// others: [`Optimizer::step`] leaves a frozen parameter unchanged (no
    /// update, no weight decay, no momentum), and its slot's buffers are
    /// dropped (a parameter unfrozen later starts with zeroed buffers).
    /// Returns the number of frozen parameters.
    pub fn set_frozen(&mut self, frozen: &dyn Fn(&str) -> bool) -> usize {
        let nbuf = self.config.buffers();
        for (slot, f) in self.state.slots.iter_mut().zip(&mut self.frozen) {
            *f = frozen(&slot.name);
            if *f {
                slot.buffers = Vec::new();
            } else if slot.buffers.len() != nbuf {
                let n = slot.shape.iter().product();
                slot.buffers = vec![vec![0.0; n]; nbuf];
            }
        }
        self.frozen.iter().filter(|&&f| f).count()
    }

    /// Whether the parameter of slot `index` (visiting order) is frozen.
    pub fn is_frozen(&self, index: usize) -> bool {
        self.frozen.get(index).copied().unwrap_or(false)
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The state (for checkpoints).
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.state.step
    }

    /// Replaces the state by a saved one, after checking that it belongs to
    /// the same rule and the same parameter names and shapes.
    pub fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        if state.kind != self.state.kind {
            return Err(TrainError::Mismatch(format!(
                "the saved optimizer state is for `{}`, this optimizer is `{}`",
                state.kind, self.state.kind
            )));
        }
        if state.slots.len() != self.state.slots.len() {
            return Err(TrainError::Mismatch(format!(
                "the saved optimizer state has {} parameters, the model has {}",
                state.slots.len(),
                self.state.slots.len()
            )));
        }
        for (saved, mine) in state.slots.iter().zip(&self.state.slots) {
            if saved.name != mine.name || saved.shape != mine.shape {
                return Err(TrainError::Mismatch(format!(
                    "optimizer state: saved parameter `{}` {:?}, model parameter `{}` {:?}",
                    saved.name, saved.shape, mine.name, mine.shape
                )));
            }
            let n: usize = mine.shape.iter().product();
            if saved.buffers.len() != mine.buffers.len()
                || saved.buffers.iter().any(|b| b.len() != n)
            {
                let frozen = |b: &[Vec<f32>]| if b.is_empty() { " (frozen)" } else { "" };
                return Err(TrainError::Mismatch(format!(
                    "optimizer state of `{}`: {} saved buffers{}, {} expected{}",
                    saved.name,
                    saved.buffers.len(),
                    frozen(&saved.buffers),
                    mine.buffers.len(),
                    frozen(&mine.buffers)
                )));
            }
        }
        self.state = state;
        Ok(())
    }

    /// One update of every parameter of `model` from its accumulated gradient,
    /// with learning rate `lr` (the schedule's value for this step). Gradients
    /// are left as they are: call `zero_grad` before the next backward.
    pub fn step(&mut self, model: &mut dyn Layer, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(TrainError::invalid(
                "Optimizer::step",
                format!("learning rate must be finite and >= 0, got {lr}"),
            ));
        }
        let first = self.state.step == 0;
        let t = self.state.step + 1;
        let config = self.config.clone();
        let slots = &mut self.state.slots;
        let frozen = &self.frozen;
        let mut index = 0usize;
        let mut error: Option<String> = None;
        model.visit_params_mut("", &mut |name, p| {
            if error.is_some() {
                return;
            }
            let Some(slot) = slots.get_mut(index) else {
                error = Some(format!(
                    "the model has more parameters than the optimizer ({name})"
                ));
                return;
            };
            index += 1;
            if slot.shape != p.shape() {
                error = Some(format!(
                    "parameter `{name}` has shape {:?}, the optimizer was built for `{}` {:?}",
                    p.shape(),
                    slot.name,
                    slot.shape
                ));
                return;
            }
            debug_assert_eq!(slot.name, name);
            if !frozen[index - 1] {
                update(&config, slot, p, lr, first, t);
            }
        });
        if let Some(msg) = error {
            return Err(TrainError::invalid("Optimizer::step", msg));
        }
        if index != slots.len() {
            return Err(TrainError::invalid(
                "Optimizer::step",
                format!(
                    "the model has {index} parameters, the optimizer was built for {}",
                    slots.len()
                ),
            ));
        }
        self.state.step = t;
        Ok(())
    }
}

/// Updates one parameter in place.
fn update(
    config: &OptimizerConfig,
    slot: &mut SlotState,
    p: &mut Param,
    lr: f32,
    first: bool,
    t: u64,
) {
    let Param { value, grad } = p;
    let w = value.as_slice_mut();
    let g = grad.as_slice();
    match *config {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
            ..
        } => {
            if momentum == 0.0 {
                for (w, &g) in w.iter_mut().zip(g) {
                    let d = g + weight_decay * *w;
                    *w -= lr * d;
                }
            } else {
                // torch.optim.SGD: buf = d on the first step, then
                // buf = momentum·buf + d; the step is buf (or d + momentum·buf
                // with Nesterov).
                let buf = &mut slot.buffers[0];
                for ((w, &g), b) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
                    let d = g + weight_decay * *w;
                    *b = if first { d } else { momentum * *b + d };
                    let step = if nesterov { d + momentum * *b } else { *b };
                    *w -= lr * step;
                }
            }
        }
        OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => {
            let (beta1, beta2, eps, weight_decay) = config.adam_params().unwrap_or_default();
            let decoupled = matches!(config, OptimizerConfig::AdamW { .. });
            let bias1 = 1.0 - (beta1 as f64).powi(t as i32);
            let bias2 = 1.0 - (beta2 as f64).powi(t as i32);
            let step_size = (lr as f64 / bias1) as f32;
            let inv_sqrt_bias2 = (1.0 / bias2.sqrt()) as f32;
            let (m, v) = slot.buffers.split_at_mut(1);
            let (m, v) = (&mut m[0], &mut v[0]);
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = if decoupled {
                    *w *= 1.0 - lr * weight_decay;
                    g
                } else {
                    g + weight_decay * *w
                };
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                let denom = v.sqrt() * inv_sqrt_bias2 + eps;
                *w -= step_size * *m / denom;
            }
        }
    }
}

#[cfg(test)]
mod tests;
