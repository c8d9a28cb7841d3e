//! What a run measured, as data: [`Row`]s in [`Table`]s, gathered in a
//! [`Report`] with the machine's [`Header`] and [`Peak`].

use super::measure::Timing;
use super::system::{Header, Peak};

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A kernel's forward pass.
    Forward,
    /// A kernel's backward pass (input and weight gradients together).
    Backward,
    /// A model's full training step (or epoch).
    Train,
    /// A model's inference on one batch.
    Infer,
}

impl Kind {
    /// Short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Forward => "forward",
            Kind::Backward => "backward",
            Kind::Train => "train",
            Kind::Infer => "infer",
        }
    }
}

/// One measured line of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Name, e.g. `resnet.3x3`.
    pub name: String,
    /// What is measured.
    pub kind: Kind,
    /// Batch size.
    pub batch: usize,
    /// Human-readable shape, e.g. `64->64 56x56 k3 p1`.
    pub shape: String,
    /// Median time, seconds.
    pub median_s: f64,
    /// Fastest time, seconds.
    pub min_s: f64,
    /// Slowest time, seconds.
    pub max_s: f64,
    /// Timed repetitions.
    pub reps: usize,
    /// Useful floating-point operations of one run.
    pub flops: f64,
    /// Useful GFLOP/s at the median time.
    pub gflops: f64,
    /// `gflops` divided by the sgemm peak (0 until [`Row::with_peak`]).
    pub peak_fraction: f64,
    /// Images per second at the median time (train and infer rows).
    pub images_per_s: Option<f64>,
    /// Peak resident memory of the process that measured the row.
    pub peak_rss_bytes: Option<u64>,
}

impl Row {
    /// A row from a timing and the useful FLOPs of one run; train and
    /// infer rows get images/s (`batch` images per run) at the median time.
    /// The fraction of the peak comes with [`Row::with_peak`].
    pub fn new(name: &str, kind: Kind, batch: usize, shape: String, t: Timing, flops: f64) -> Row {
        let images_per_s =
            matches!(kind, Kind::Train | Kind::Infer).then(|| batch as f64 / t.median_s);
        Row {
            name: name.to_string(),
            kind,
            batch,
            shape,
            median_s: t.median_s,
            min_s: t.min_s,
            max_s: t.max_s,
            reps: t.reps,
            flops,
            gflops: flops / t.median_s / 1e9,
            peak_fraction: 0.0,
            images_per_s,
            peak_rss_bytes: None,
        }
    }

    /// The row with its `peak_fraction` against `peak` (0 when no FLOPs
    /// were counted).
    pub fn with_peak(mut self, peak: &Peak) -> Row {
        self.peak_fraction = if self.flops > 0.0 {
            self.gflops / peak.best_gflops
        } else {
            0.0
        };
        self
    }
}

/// A titled list of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title, e.g. `conv2d kernels`.
    pub title: String,
    /// The rows, in run order.
    pub rows: Vec<Row>,
}

/// Everything one `cargo xtask bench` run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Machine and run description.
    pub header: Header,
    /// The sgemm peak every row is compared with.
    pub peak: Peak,
    /// Measured tables.
    pub tables: Vec<Table>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(median_s: f64) -> Timing {
        Timing {
            median_s,
            min_s: median_s,
            max_s: median_s,
            reps: 1,
        }
    }

    #[test]
    fn peak_fraction_is_computed_against_the_peak() {
        let row = Row::new("x", Kind::Forward, 1, String::new(), timing(1.0), 50e9);
        assert_eq!(
            (row.gflops, row.peak_fraction, row.images_per_s),
            (50.0, 0.0, None)
        );
        let peak = Peak {
            n: 512,
            best_gflops: 200.0,
            median_gflops: 150.0,
        };
        assert!((row.with_peak(&peak).peak_fraction - 0.25).abs() < 1e-12);
        let uncounted = Row::new("y", Kind::Infer, 8, String::new(), timing(0.5), 0.0);
        assert_eq!(uncounted.images_per_s, Some(16.0));
        assert_eq!(uncounted.with_peak(&peak).peak_fraction, 0.0);
    }
}
