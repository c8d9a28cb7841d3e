//! Reading what the reference scripts print (`torch_lenet.py`,
//! `torch_infer.py`, `torch_train.py`).

/// `torch 2.15.0+cu132, threads 2, ...` → `2.15.0+cu132`.
pub fn parse_version(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let rest = l.strip_prefix("torch ")?;
        Some(rest.split(',').next()?.trim().to_string())
    })
}

/// What `torch_lenet.py` printed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LenetOutput {
    /// Training images/s of each epoch.
    pub epochs: Vec<f64>,
    /// `(batch, images/s)` of inference.
    pub inference: Vec<(usize, f64)>,
    /// Peak resident memory of the whole run (its last line
    /// `peak_rss_bytes N`; older versions of the script do not print it).
    pub peak_rss_bytes: Option<u64>,
}

/// One figure of a model: a line `NAME params P batch B: R images/s (...)`
/// of `torch_infer.py` or `torch_train.py`, optionally ending in
/// `peak_rss_bytes N`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFigure {
    /// Batch size.
    pub batch: usize,
    /// Images per second (median step or batch).
    pub images_per_s: f64,
    /// Peak resident memory of the script's process when the line was
    /// printed.
    pub peak_rss_bytes: Option<u64>,
}

/// The number just before ` images/s` in a line, if positive and finite.
fn images_per_s(line: &str) -> Option<f64> {
    let head = line.split(" images/s").next()?;
    if head.len() == line.len() {
        return None;
    }
    let rate: f64 = head.rsplit([' ', ',']).next()?.parse().ok()?;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

/// The whole number after `peak_rss_bytes ` in a line.
fn peak_rss(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("peak_rss_bytes ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Parses `torch_lenet.py`'s lines `epoch K: train T s, R images/s, ...`,
/// `inference batch B: R images/s` and `peak_rss_bytes N`.
pub fn parse_lenet(out: &str) -> LenetOutput {
    let mut parsed = LenetOutput::default();
    for line in out.lines() {
        if line.starts_with("epoch ") {
            if let Some(r) = images_per_s(line) {
                parsed.epochs.push(r);
            }
        } else if let Some(rest) = line.strip_prefix("inference batch ") {
            let batch = rest.split(':').next().and_then(|b| b.trim().parse().ok());
            if let (Some(b), Some(r)) = (batch, images_per_s(line)) {
                parsed.inference.push((b, r));
            }
        } else if line.starts_with("peak_rss_bytes ") {
            parsed.peak_rss_bytes = peak_rss(line);
        }
    }
    parsed
}

/// Parses the lines `NAME params P batch B: R images/s (...) [peak_rss_bytes N]`
/// of `model` (`torch_infer.py`, `torch_train.py`).
pub fn parse_model_lines(out: &str, model: &str) -> Vec<ModelFigure> {
    let head = format!("{model} params ");
    out.lines()
        .filter(|l| l.starts_with(&head))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" batch ")?;
            let batch = rest.split(':').next()?.trim().parse().ok()?;
            Some(ModelFigure {
                batch,
                images_per_s: images_per_s(l)?,
                peak_rss_bytes: peak_rss(l),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(batch: usize, images_per_s: f64, peak_rss_bytes: Option<u64>) -> ModelFigure {
        ModelFigure {
            batch,
            images_per_s,
            peak_rss_bytes,
        }
    }

    #[test]
    fn parses_torch_lenet() {
        let lenet = "torch 2.15.0+cu132, threads 2, params 61706\n\
            epoch 1: train 5.94 s, 10094 images/s, last loss 0.0712, test accuracy 97.50%\n\
            epoch 2: train 5.50 s, 10903 images/s, last loss 0.0312, test accuracy 98.10%\n\
            inference batch 1: 2963 images/s\n\
            inference batch 256: 36047 images/s\n";
        assert_eq!(parse_version(lenet).as_deref(), Some("2.15.0+cu132"));
        let old = LenetOutput {
            epochs: vec![10094.0, 10903.0],
            inference: vec![(1, 2963.0), (256, 36047.0)],
            peak_rss_bytes: None,
        };
        assert_eq!(parse_lenet(lenet), old);
        let new = format!("{lenet}peak_rss_bytes 1100000000\n");
        assert_eq!(
            parse_lenet(&new),
            LenetOutput {
                peak_rss_bytes: Some(1_100_000_000),
                ..old
            }
        );
        assert_eq!(
            parse_lenet("Traceback (most recent call last):\n"),
            LenetOutput::default()
        );
    }

    #[test]
    fn parses_torch_infer_with_and_without_memory() {
        let infer = "torch 2.15.0+cu132, threads 2\n\
            resnet18 params 11689512 batch 1: 29.5 images/s (median 33.9 ms, min 33.0, max 35.1)\n\
            resnet18 params 11689512 batch 16: 29.5 images/s (median 542.4 ms, min 530.0, max 560.2)\n\
            resnet50 params 25557032 batch 1: 12.1 images/s (median 82.6 ms, min 80.0, max 90.0) peak_rss_bytes 512000000\n";
        assert_eq!(
            parse_model_lines(infer, "resnet18"),
            [figure(1, 29.5, None), figure(16, 29.5, None)]
        );
        assert_eq!(
            parse_model_lines(infer, "resnet50"),
            [figure(1, 12.1, Some(512_000_000))]
        );
        assert!(parse_model_lines(infer, "vgg16").is_empty());
        // A model whose name begins another's is not mixed up with it.
        assert!(parse_model_lines(infer, "resnet5").is_empty());
    }

    #[test]
    fn parses_torch_train() {
        let train = "torch 2.15.0+cu132, threads 2, size 224, SGD lr 0.01 momentum 0.9\n\
            vit_b_16 params 86567656 batch 16: 2.1 images/s (median 7619.0 ms, min 7500.1, max 7700.2; 3 steps) peak_rss_bytes 4123456789\n\
            vit_b_16 params 86567656 batch 16: nan images/s (broken)\n\
            vit_b_16 params 86567656 batch x: 2.0 images/s\n";
        assert_eq!(
            parse_model_lines(train, "vit_b_16"),
            [figure(16, 2.1, Some(4_123_456_789))]
        );
        assert_eq!(peak_rss("peak_rss_bytes 12kB"), None);
        assert_eq!(peak_rss("x peak_rss_bytes 12 more"), Some(12));
        assert_eq!(images_per_s("no rate here"), None);
    }
}
