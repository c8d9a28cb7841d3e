//! The state dict: ordered `name → tensor` with PyTorch's keys, taken from a
//! model and loaded into one, strictly by default.

use std::collections::{HashMap, HashSet};
use std::fmt;

use convnet_layers::Layer;
use convnet_tensor::Tensor;

use crate::dtype::DType;
use crate::error::{Result, WeightsError};

/// One tensor of a state dict: its `f32` value and the element type it had
/// in its file (or `F32` for a tensor taken from a model).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key (`layer1.0.bn1.running_var`).
    pub name: String,
    /// The value, converted to `f32`.
    pub tensor: Tensor,
    /// The element type in the file it came from.
    pub dtype: DType,
}

/// An ordered map from PyTorch `state_dict` keys to tensors: parameters and
/// buffers (`running_mean`, `running_var`, `num_batches_tracked`).
///
/// ```
/// use convnet_layers::{Layer, Linear, LinearConfig};
/// use convnet_tensor::Rng;
/// use convnet_weights::{LoadMode, StateDict};
///
/// let mut rng = Rng::seed_from(0);
/// let a = Linear::new(LinearConfig::new(4, 2), &mut rng)?;
/// let mut b = Linear::new(LinearConfig::new(4, 2), &mut rng)?;
/// let sd = StateDict::from_model(&a);
/// assert_eq!(sd.keys().collect::<Vec<_>>(), ["weight", "bias"]);
/// sd.load_into(&mut b, LoadMode::Strict)?;
/// assert_eq!(StateDict::from_model(&b), sd);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// The parameters and buffers of `model`, in PyTorch's order: each
    /// module's parameters, then its buffers.
    pub fn from_model(model: &dyn Layer) -> Self {
        let mut params: Vec<(String, Tensor)> = Vec::new();
        model.visit_params("", &mut |name, p| {
            params.push((name.to_string(), p.value.clone()))
        });
        let mut buffers: Vec<(String, Tensor)> = Vec::new();
        model.visit_buffers("", &mut |name, t| {
            buffers.push((name.to_string(), t.clone()))
        });

        // A module's buffers follow its last parameter; buffers of modules
        // without parameters go last, in visiting order.
        let mut by_module: HashMap<String, Vec<(String, Tensor)>> = HashMap::new();
        let mut module_order = Vec::new();
        for (name, t) in buffers {
            let module = module_of(&name).to_string();
            if !by_module.contains_key(&module) {
                module_order.push(module.clone());
            }
            by_module.entry(module).or_default().push((name, t));
        }
        let mut sd = StateDict::new();
        let n = params.len();
        let mut params = params.into_iter().peekable();
        for _ in 0..n {
            let (name, t) = params.next().expect("n parameters");
            let module = module_of(&name).to_string();
            sd.push_f32(name, t);
            let last_of_module = params
                .peek()
                .is_none_or(|(next, _)| module_of(next) != module);
            if last_of_module {
                for (b, t) in by_module.remove(&module).unwrap_or_default() {
                    sd.push_f32(b, t);
                }
            }
        }
        for module in module_order {
            for (b, t) in by_module.remove(&module).unwrap_or_default() {
                sd.push_f32(b, t);
            }
        }
        sd
    }

    fn push_f32(&mut self, name: String, tensor: Tensor) {
        // Keys of a model are unique: insert cannot fail here.
        let _ = self.insert(name, tensor, DType::F32);
    }

    /// Appends a tensor; an existing key is an error naming it.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor, dtype: DType) -> Result<()> {
        let name = name.into();
        if self.index.contains_key(&name) {
            return Err(WeightsError::Tensor {
                key: name,
                msg: "the key appears twice".into(),
            });
        }
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push(Entry {
            name,
            tensor,
            dtype,
        });
        Ok(())
    }

    /// The tensor of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.entry(key).map(|e| &e.tensor)
    }

    /// The entry of `key`, if any.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }

    /// Removes `key` and returns its entry.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let i = self.index.remove(key)?;
        let e = self.entries.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(e)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalars.
    pub fn num_elements(&self) -> usize {
        self.entries.iter().map(|e| e.tensor.len()).sum()
    }

    /// Sorts the entries by key (numbers inside keys compare as numbers, so
    /// `layer.10` follows `layer.9`): the order of files whose format keeps
    /// none (safetensors, a pickled `dict`).
    pub fn sort_natural(&mut self) {
        self.entries.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
    }

    /// Compares this state dict with what `model` holds, without changing
    /// anything: the keys that would load, and every missing key, unexpected
    /// key and shape mismatch.
    pub fn check(&self, model: &dyn Layer) -> LoadReport {
        let expected = model_shapes(model);
        let mut report = LoadReport::default();
        let mut known = HashSet::new();
        for (name, shape) in &expected {
            known.insert(name.as_str());
            match self.get(name) {
                None => report.missing.push((name.clone(), shape.clone())),
                Some(t) if t.shape() != shape.as_slice() => report.mismatched.push(ShapeMismatch {
                    key: name.clone(),
                    expected: shape.clone(),
                    found: t.shape().to_vec(),
                }),
                Some(_) => report.loaded.push(name.clone()),
            }
        }
        for e in &self.entries {
            if !known.contains(e.name.as_str()) {
                report
                    .unexpected
                    .push((e.name.clone(), e.tensor.shape().to_vec()));
            }
        }
        report
    }

    /// Loads the state dict into `model`.
    ///
    /// [`LoadMode::Strict`] changes nothing unless every key of the model is
    /// present with its shape and no other key is: otherwise the error is a
    /// [`WeightsError::Mismatch`] listing every offending key.
    /// [`LoadMode::NonStrict`] loads every tensor whose key and shape match
    /// and returns the report of the rest (a new head to train, say).
    pub fn load_into(&self, model: &mut dyn Layer, mode: LoadMode) -> Result<LoadReport> {
        let report = self.check(model);
        if mode == LoadMode::Strict && !report.is_exact() {
            return Err(WeightsError::Mismatch(report));
        }
        let loadable: HashSet<&str> = report.loaded.iter().map(String::as_str).collect();
        model.visit_params_mut("", &mut |name, p| {
            if loadable.contains(name) {
                if let Some(t) = self.get(name) {
                    p.value.as_slice_mut().copy_from_slice(t.as_slice());
                }
            }
        });
        model.visit_buffers_mut("", &mut |name, b| {
            if loadable.contains(name) {
                if let Some(t) = self.get(name) {
                    b.as_slice_mut().copy_from_slice(t.as_slice());
                }
            }
        });
        Ok(report)
    }
}

/// How [`StateDict::load_into`] treats keys and shapes that do not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Every key of the model present with its shape, no other key: else an
    /// error and the model is left unchanged.
    #[default]
    Strict,
    /// Load what matches; report the rest.
    NonStrict,
}

/// A key whose tensor has another shape than the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The key.
    pub key: String,
    /// The model's shape.
    pub expected: Vec<usize>,
    /// The state dict's shape.
    pub found: Vec<usize>,
}

/// What loading a state dict into a model did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys loaded (present with the model's shape).
    pub loaded: Vec<String>,
    /// Keys of the model absent from the state dict, with the model's shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys of the state dict the model does not have, with their shape.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Keys present in both with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
}

impl LoadReport {
    /// Whether every key matched: nothing missing, unexpected or mismatched.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// The keys of the model that were not loaded (missing or mismatched):
    /// they keep their initial values.
    pub fn not_loaded(&self) -> Vec<&str> {
        self.missing
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.mismatched.iter().map(|m| m.key.as_str()))
            .collect()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_exact() {
            return write!(f, "all {} keys match", self.loaded.len());
        }
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(plural(self.missing.len(), "missing key", "missing keys"));
        }
        if !self.unexpected.is_empty() {
            parts.push(plural(
                self.unexpected.len(),
                "unexpected key",
                "unexpected keys",
            ));
        }
        if !self.mismatched.is_empty() {
            parts.push(plural(
                self.mismatched.len(),
                "shape mismatch",
                "shape mismatches",
            ));
        }
        write!(
            f,
            "the weights do not fit the model ({} keys match; {}):",
            self.loaded.len(),
            parts.join(", ")
        )?;
        for (k, s) in &self.missing {
            write!(f, "\n  missing:    {k} (model expects {s:?})")?;
        }
        for (k, s) in &self.unexpected {
            write!(f, "\n  unexpected: {k} {s:?} (not in the model)")?;
        }
        for m in &self.mismatched {
            write!(
                f,
                "\n  shape:      {} expected {:?}, found {:?}",
                m.key, m.expected, m.found
            )?;
        }
        Ok(())
    }
}

/// Every key of `model` with its shape: parameters, then buffers.
pub fn model_shapes(model: &dyn Layer) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    model.visit_params("", &mut |name, p| {
        v.push((name.to_string(), p.shape().to_vec()))
    });
    model.visit_buffers("", &mut |name, t| {
        v.push((name.to_string(), t.shape().to_vec()))
    });
    v
}

/// The module part of a key: `layer1.0.bn1` for `layer1.0.bn1.weight`.
fn module_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(m, _)| m)
}

/// Orders keys with their numbers compared as numbers.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = da.iter().skip_while(|&&c| c == b'0').count();
                let tb = db.iter().skip_while(|&&c| c == b'0').count();
                let ord = ta
                    .cmp(&tb)
                    .then_with(|| da[na - ta..].cmp(&db[nb - tb..]))
                    .then_with(|| na.cmp(&nb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_layers::{
        BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, ReLU, Sequential,
    };
    use convnet_tensor::Rng;

    fn net(classes: usize, seed: u64) -> Sequential {
        let mut rng = Rng::seed_from(seed);
        Sequential::default()
            .with(Conv2d::new(Conv2dConfig::new(1, 2, 3), &mut rng).unwrap())
            .with(BatchNorm2d::new(2).unwrap())
            .with(ReLU::new())
            .with(Flatten::new())
            .with(Linear::new(LinearConfig::new(2 * 2 * 2, classes), &mut rng).unwrap())
    }

    #[test]
    fn from_model_orders_keys_as_pytorch_does() {
        let sd = StateDict::from_model(&net(3, 0));
        let keys: Vec<&str> = sd.keys().collect();
        assert_eq!(
            keys,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked",
                "4.weight",
                "4.bias"
            ]
        );
        assert_eq!(sd.num_elements(), 18 + 2 + 2 + 2 + 2 + 2 + 1 + 24 + 3);
    }

    #[test]
    fn strict_load_copies_every_tensor_and_buffer() {
        let mut src = net(3, 1);
        src.visit_buffers_mut("", &mut |_, t| t.fill(0.25));
        let sd = StateDict::from_model(&src);
        let mut dst = net(3, 2);
        assert_ne!(StateDict::from_model(&dst), sd);
        let report = sd.load_into(&mut dst, LoadMode::Strict).unwrap();
        assert!(report.is_exact());
        assert_eq!(report.loaded.len(), 9);
        assert_eq!(StateDict::from_model(&dst), sd);
        let x = Tensor::arange(&[2, 1, 4, 4]);
        assert_eq!(dst.infer(&x).unwrap(), src.infer(&x).unwrap());
    }

    #[test]
    fn strict_load_names_every_missing_unexpected_and_misshaped_key() {
        let mut sd = StateDict::from_model(&net(5, 1));
        sd.remove("1.running_var").unwrap();
        sd.insert("extra.weight", Tensor::zeros(&[7]), DType::F16)
            .unwrap();
        let mut dst = net(3, 2);
        let before = StateDict::from_model(&dst);
        let err = sd.load_into(&mut dst, LoadMode::Strict).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("1 missing key, 1 unexpected key, 2 shape mismatches"),
            "{msg}"
        );
        assert!(
            msg.contains("missing:    1.running_var (model expects [2])"),
            "{msg}"
        );
        assert!(msg.contains("unexpected: extra.weight [7]"), "{msg}");
        assert!(
            msg.contains("4.weight expected [3, 8], found [5, 8]"),
            "{msg}"
        );
        assert!(msg.contains("4.bias expected [3], found [5]"), "{msg}");
        // Nothing was changed.
        assert_eq!(StateDict::from_model(&dst), before);
    }

    #[test]
    fn non_strict_load_keeps_what_does_not_fit_and_reports_it() {
        let src = net(5, 1);
        let sd = StateDict::from_model(&src);
        let mut dst = net(3, 2);
        let head_before = StateDict::from_model(&dst).get("4.weight").cloned();
        let report = sd.load_into(&mut dst, LoadMode::NonStrict).unwrap();
        assert_eq!(report.not_loaded(), ["4.weight", "4.bias"]);
        assert_eq!(report.loaded.len(), 7);
        let after = StateDict::from_model(&dst);
        assert_eq!(after.get("0.weight"), sd.get("0.weight"));
        assert_eq!(after.get("4.weight").cloned(), head_before);
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(natural_cmp("layer.10.w", "layer.9.w"), Greater);
        assert_eq!(natural_cmp("a.2", "a.02"), Less);
        assert_eq!(natural_cmp("features.0", "features.0.weight"), Less);
        assert_eq!(natural_cmp("x", "x"), Equal);
        let mut sd = StateDict::new();
        for k in ["b.10", "b.9", "a"] {
            sd.insert(k, Tensor::zeros(&[1]), DType::F32).unwrap();
        }
        sd.sort_natural();
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "b.9", "b.10"]);
        assert_eq!(sd.get("b.10").unwrap().len(), 1);
        assert!(sd.insert("a", Tensor::zeros(&[1]), DType::F32).is_err());
    }
}
