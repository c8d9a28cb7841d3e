//! Printing the training and inference tables (the kernel table keeps its
//! own columns: [`super::print_table_title`], [`super::print_row`]).

use super::plan::Group;
use super::{print_row, print_table_title, Row};

/// Title of the kernel table.
pub const KERNELS_TITLE: &str = "conv2d kernels (forward; backward = input + weight gradients)";
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
        Group::Kernels => print_table_title(KERNELS_TITLE),
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
        Group::Kernels => print_row(r),
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
        r.peak_rss_bytes
            .map_or("-".to_string(), |b| format!("{:.0}", b as f64 / 1e6)),
        r.reps
    )
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

/// Images per second: one decimal below 100, else whole with thousands
/// separators (`12,345`).
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    if v < 100.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    fn formats_numbers() {
        assert_eq!(rate(3.44), "3.4");
        assert_eq!(rate(99.96), "100.0");
        assert_eq!(rate(100.4), "100");
        assert_eq!(rate(12_345.4), "12,345");
        assert_eq!(rate(1_234_567.0), "1,234,567");
        assert_eq!(rate(f64::INFINITY), "-");
        assert_eq!(ms(0.000_412), "0.412");
        assert_eq!(ms(0.0412), "41.2");
        assert_eq!(ms(4.1234), "4123");
        assert_eq!(duration(48.2), "48 s");
        assert_eq!(duration(725.0), "12 min 5 s");
    }
}
