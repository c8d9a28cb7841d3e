//! `--weights`: a run that starts from a weight file, its head re-initialised
//! when the classes differ.

use super::*;

/// What [`load_initial_weights`] did.
#[derive(Debug, Clone)]
pub struct InitialWeights {
    /// The report of the loading (the head's keys excluded when it was
    /// re-initialised).
    pub report: convnet_weights::LoadReport,
    /// The head's keys that kept their fresh initialisation because the
    /// weights' head has another number of classes (or none).
    pub reinitialised_head: Vec<String>,
}

/// Loads initial weights into a freshly built model (fine-tuning) and prints
/// what was loaded.
///
/// The classifier head ([`convnet_zoo::head_keys`] for `num_classes`) is
/// re-initialised when the weights' head has another shape (another number
/// of classes) or is absent: the model keeps its fresh head, and the keys
/// are listed. Every other key must match in name and shape (strict), unless
/// `non_strict`: then what does not fit also keeps its initialisation and is
/// reported.
pub fn load_initial_weights(
    model: &mut dyn convnet_layers::Layer,
    path: &Path,
    non_strict: bool,
    num_classes: usize,
) -> Result<InitialWeights> {
    let file = crate::app::weights::read_weights(path)?;
    let mut state = file.state;
    let shapes: std::collections::HashMap<String, Vec<usize>> =
        convnet_weights::model_shapes(model).into_iter().collect();
    let mut reinitialised_head = Vec::new();
    let mut weights_classes = None;
    for key in convnet_zoo::head_keys(model, num_classes) {
        let fits = match state.get(&key) {
            Some(t) => {
                if key.ends_with("weight") && weights_classes.is_none() {
                    weights_classes = t.shape().first().copied();
                }
                Some(t.shape()) == shapes.get(&key).map(Vec::as_slice)
            }
            None => false,
        };
        if !fits {
            state.remove(&key);
            reinitialised_head.push(key);
        }
    }
    let report = state.check(model);
    let head_missing = |k: &str| reinitialised_head.iter().any(|h| h == k);
    let other_problems = !report.unexpected.is_empty()
        || !report.mismatched.is_empty()
        || report.missing.iter().any(|(k, _)| !head_missing(k));
    if other_problems && !non_strict {
        let mut shown = report.clone();
        shown.missing.retain(|(k, _)| !head_missing(k));
        return Err(AppError::Usage(format!(
            "{}: {shown}\n(give --weights-non-strict to load what fits and re-initialise the rest)",
            path.display()
        )));
    }
    let report = state
        .load_into(model, convnet_weights::LoadMode::NonStrict)
        .map_err(|e| AppError::Usage(format!("{}: {e}", path.display())))?;
    println!(
        "initial weights: {} tensors loaded from {} ({} file)",
        report.loaded.len(),
        path.display(),
        file.kind.name()
    );
    if !reinitialised_head.is_empty() {
        let had = match weights_classes {
            Some(k) => format!("the weights' head has {k} classes"),
            None => "the weights have no head".to_string(),
        };
        println!(
            "re-initialised head ({had}, this model {num_classes}): {}",
            reinitialised_head.join(", ")
        );
    }
    if other_problems {
        println!("{report}");
        let fresh: Vec<&str> = report
            .not_loaded()
            .into_iter()
            .filter(|k| !head_missing(k))
            .collect();
        if !fresh.is_empty() {
            println!(
                "re-initialised (trained from scratch): {}",
                fresh.join(", ")
            );
        }
    }
    Ok(InitialWeights {
        report,
        reinitialised_head,
    })
}
