//! Printing a report: the machine header, the sgemm peak, the kernel table
//! and the training and inference tables (their own columns), the per-model
//! summary, and the number formats they share.

use convnet::tensor::format::thousands;

use super::plan::{Group, Job, ZOO_TRAIN_BATCH};
use super::row::Row;
use super::system::{Header, Peak};

/// Prints the machine description.
pub fn print_header(h: &Header) {
    println!("convnet bench{}", if h.quick { " (--quick)" } else { "" });
    println!("  cpu      {}", h.cpu);
    println!("  cores    {}, threads used {}", h.cores, h.threads);
    println!("  simd     {} (kernels, chosen at run time)", h.simd);
    println!("  commit   {}", h.commit);
    println!("  date     {}", h.date);
}

/// Prints the sgemm peak.
pub fn print_peak(p: &Peak) {
    println!(
        "\nsgemm peak ({n}x{n}x{n}, all threads): {:.1} GFLOP/s best, {:.1} median",
        p.best_gflops,
        p.median_gflops,
        n = p.n
    );
    println!("  (\"% peak\" below: a row's median GFLOP/s over the best sgemm GFLOP/s)");
}

/// Column header of the kernel table.
fn print_kernel_title(title: &str) {
    println!("\n{title}");
    println!(
        "  {:<16} {:<9} {:>5}  {:<26} {:>10}  {:>19}  {:>8}  {:>6}",
        "name", "pass", "batch", "shape", "median ms", "min-max ms", "GFLOP/s", "% peak"
    );
}

/// One row of the kernel table.
fn print_kernel_row(r: &Row) {
    println!(
        "  {:<16} {:<9} {:>5}  {:<26} {:>10.3}  {:>19}  {:>8.1}  {:>5.1}%",
        r.name,
        r.kind.label(),
        r.batch,
        r.shape,
        r.median_s * 1e3,
        format!("{:.3}-{:.3}", r.min_s * 1e3, r.max_s * 1e3),
        r.gflops,
        r.peak_fraction * 100.0
    );
}

/// Title of the kernel table.
pub const KERNELS_TITLE: &str =
    "kernels (convolutions: backward = input + weight gradients; element-wise rows: GFLOP/s = 10^9 elements/s)";
/// Title of the training table.
pub const TRAINING_TITLE: &str =
    "training: images/s of full steps (forward, cross-entropy, backward, \
SGD lr 0.01 momentum 0.9) on random data; the epoch row trains on MNIST and includes data loading; \
GFLOP/s counts 3 forward passes per step";
/// Title of the inference table.
pub const INFERENCE_TITLE: &str =
    "inference: infer() on random images; median ms = latency of one batch";

/// The title of a group's table.
pub fn title(group: Group) -> &'static str {
    match group {
        Group::Kernels => KERNELS_TITLE,
        Group::Training => TRAINING_TITLE,
        Group::Inference => INFERENCE_TITLE,
    }
}

/// Prints a table's title and column names.
pub fn print_title(group: Group) {
    match group {
        Group::Kernels => print_kernel_title(KERNELS_TITLE),
        _ => {
            println!("\n{}", title(group));
            println!(
                "  {:<28} {:>5}  {:<26} {:>10} {:>11}  {:>21} {:>8} {:>7} {:>9} {:>5}",
                "name",
                "batch",
                "input",
                "images/s",
                "median ms",
                "min-max ms",
                "GFLOP/s",
                "% peak",
                "peak MB",
                "runs"
            );
        }
    }
}

/// Prints one row of a group's table.
pub fn print_group_row(group: Group, r: &Row) {
    match group {
        Group::Kernels => print_kernel_row(r),
        _ => println!("{}", model_row_line(r)),
    }
}

/// A training or inference row, as printed.
pub fn model_row_line(r: &Row) -> String {
    let (gflops, peak) = if r.flops > 0.0 {
        (
            format!("{:.1}", r.gflops),
            format!("{:.1}%", r.peak_fraction * 100.0),
        )
    } else {
        ("-".to_string(), "-".to_string())
    };
    format!(
        "  {:<28} {:>5}  {:<26} {:>10} {:>11}  {:>21} {:>8} {:>7} {:>9} {:>5}",
        r.name,
        r.batch,
        r.shape,
        r.images_per_s.map_or("-".to_string(), rate),
        ms(r.median_s),
        format!("{}-{}", ms(r.min_s), ms(r.max_s)),
        gflops,
        peak,
        mb(r.peak_rss_bytes),
        r.reps
    )
}

/// One zoo model's figures, gathered from its rows for the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Model name.
    pub model: String,
    /// One input, e.g. `3x224x224`.
    pub input: String,
    /// `infer.<model>.b1`: latency (s) and peak bytes.
    pub infer_one: Option<(f64, Option<u64>)>,
    /// The larger inference batch: batch and images/s.
    pub infer_batch: Option<(usize, f64)>,
    /// `train.<model>.b2`: step time (s) and peak bytes.
    pub train_two: Option<(f64, Option<u64>)>,
}

/// Per zoo model (issue 6): inference on one image, throughput at the
/// larger batch, one training step at batch 2, each with its peak memory.
/// Models come in the order of their first row.
pub fn model_summaries(rows: &[Row]) -> Vec<ModelSummary> {
    let mut out: Vec<ModelSummary> = Vec::new();
    for r in rows {
        let Ok(job) = Job::parse(&r.name) else {
            continue;
        };
        let (model, batch, train) = match job {
            Job::Infer { model, batch } => (model, batch, false),
            Job::TrainStep { model, batch } if batch == ZOO_TRAIN_BATCH => (model, batch, true),
            _ => continue,
        };
        let i = match out.iter().position(|s| s.model == model) {
            Some(i) => i,
            None => {
                out.push(ModelSummary {
                    model,
                    input: r.shape.clone(),
                    infer_one: None,
                    infer_batch: None,
                    train_two: None,
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        match (train, batch) {
            (true, _) => s.train_two = Some((r.median_s, r.peak_rss_bytes)),
            (false, 1) => s.infer_one = Some((r.median_s, r.peak_rss_bytes)),
            (false, b) => {
                if let Some(ips) = r.images_per_s {
                    s.infer_batch = Some((b, ips));
                }
            }
        }
    }
    out
}

/// Prints the per-model summary.
pub fn print_model_summaries(summaries: &[ModelSummary]) {
    if summaries.is_empty() {
        return;
    }
    println!("\nper model: infer() on one image, throughput at the larger batch, one training step at batch 2 (peak MB: that row's process)");
    println!(
        "  {:<16} {:<10} {:>12} {:>8} {:>16} {:>13} {:>8}",
        "model", "input", "infer b1 ms", "peak MB", "infer img/s", "train b2 ms", "peak MB"
    );
    for s in summaries {
        let (one_ms, one_mb) = s
            .infer_one
            .map_or(("-".to_string(), "-".to_string()), |(t, b)| (ms(t), mb(b)));
        let batch = s
            .infer_batch
            .map_or("-".to_string(), |(b, ips)| format!("{} (b{b})", rate(ips)));
        let (two_ms, two_mb) = s
            .train_two
            .map_or(("-".to_string(), "-".to_string()), |(t, b)| (ms(t), mb(b)));
        println!(
            "  {:<16} {:<10} {:>12} {:>8} {:>16} {:>13} {:>8}",
            s.model, s.input, one_ms, one_mb, batch, two_ms, two_mb
        );
    }
}

/// Peak memory in MB (10^6 bytes), whole, or `-`.
pub fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), |b| format!("{:.0}", b as f64 / 1e6))
}

/// Milliseconds with 3 significant-ish digits: `0.412`, `41.2`, `4123`.
pub fn ms(seconds: f64) -> String {
    let v = seconds * 1e3;
    if v < 10.0 {
        format!("{v:.3}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Images per second: two decimals below 1 (a slow training step), one
/// below 100, else whole with thousands separators (`12,345`).
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    if v < 1.0 {
        return format!("{v:.2}");
    }
    if v < 100.0 {
        return format!("{v:.1}");
    }
    thousands(v.round() as u64)
}

/// `12 min 5 s`, `48 s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_summaries_gather_each_models_rows() {
        use super::super::measure::Timing;
        use super::super::row::Kind;
        let row = |name: &str, kind, batch: usize, median_s: f64, rss: u64| {
            let t = Timing {
                median_s,
                min_s: median_s,
                max_s: median_s,
                reps: 3,
            };
            let mut r = Row::new(name, kind, batch, "3x224x224".into(), t, 0.0);
            r.peak_rss_bytes = Some(rss);
            r
        };
        let rows = [
            row("train.lenet5.b64", Kind::Train, 64, 0.005, 1),
            row("train.lenet5.epoch.b64", Kind::Train, 64, 5.0, 2),
            row("train.vgg16.b2", Kind::Train, 2, 1.5, 2_000_000_000),
            row("infer.vgg16.b1", Kind::Infer, 1, 0.3, 600_000_000),
            row("infer.vgg16.b16", Kind::Infer, 16, 4.0, 1_000_000_000),
            row("infer.resnet18.b1", Kind::Infer, 1, 0.04, 90_000_000),
        ];
        let s = model_summaries(&rows);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].model, "vgg16");
        assert_eq!(s[0].train_two, Some((1.5, Some(2_000_000_000))));
        assert_eq!(s[0].infer_one, Some((0.3, Some(600_000_000))));
        assert_eq!(s[0].infer_batch, Some((16, 4.0)));
        assert_eq!(s[1].model, "resnet18");
        assert_eq!((s[1].train_two, s[1].infer_batch), (None, None));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(rate(3.44), "3.4");
        assert_eq!(rate(0.234), "0.23");
        assert_eq!(rate(99.96), "100.0");
        assert_eq!(rate(100.4), "100");
        assert_eq!(rate(12_345.4), "12,345");
        assert_eq!(rate(1_234_567.0), "1,234,567");
        assert_eq!(rate(f64::INFINITY), "-");
        assert_eq!(ms(0.000_412), "0.412");
        assert_eq!(ms(0.0412), "41.2");
        assert_eq!(ms(4.1234), "4123");
        assert_eq!(duration(48.2), "48 s");
        assert_eq!(
            (mb(Some(1_934_600_000)), mb(None)),
            ("1935".into(), "-".into())
        );
        assert_eq!(duration(725.0), "12 min 5 s");
    }
}
