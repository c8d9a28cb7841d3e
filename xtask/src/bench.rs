//! `cargo xtask bench`: measured speed of the compute kernels, as useful
//! FLOP/s and as a fraction of this machine's own sgemm peak.
//!
//! ```text
//! cargo xtask bench [--quick] [--filter NAME] [--threads N] [--json]
//!                   [--compare FILE] [--data-dir DIR] [--with-torch]
//! ```
//!
//! The report is data first ([`Report`]: a [`Header`], the [`Peak`] and
//! [`Table`]s of [`Row`]s), printed by [`print_report`]; later tables
//! (training, inference) and other outputs (JSON, comparisons) extend the
//! same types.

mod child;
mod compare;
mod infer;
mod json;
mod kernels;
mod memory;
mod plan;
mod report;
mod suite;
mod system;
mod torch;
mod train;

pub(crate) use suite::workspace_root;
pub(crate) use system::header as machine_header;
pub(crate) use torch::TORCHVISION_MODELS;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

/// Command-line options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Fewer repetitions: the whole run takes well under a minute.
    pub quick: bool,
    /// Only rows whose name contains this substring.
    pub filter: Option<String>,
    /// Threads of rayon's global pool (default: all cores).
    pub threads: Option<usize>,
    /// Write `target/bench/<commit>.json` and `target/bench/latest.json`.
    pub json: bool,
    /// An earlier `--json` file to compare with, row by row.
    pub compare: Option<PathBuf>,
    /// Where MNIST is, for the real-epoch row.
    pub data_dir: Option<PathBuf>,
    /// Also run PyTorch's reference scripts and print the ratios.
    pub with_torch: bool,
    /// Hidden: run this one job and print its rows as JSON lines (the
    /// bench runs every job in a child process this way).
    pub run_row: Option<String>,
}

const USAGE: &str = "usage: cargo xtask bench [--quick] [--filter NAME] [--threads N] [--json]
                         [--compare FILE] [--data-dir DIR] [--with-torch]

  --quick          fewer repetitions and rows: kernels, LeNet-5, ResNet-18 at batch 1 (< 1 minute)
  --filter NAME    only the rows whose name contains NAME (e.g. resnet, dw7x7, train., infer.vgg16)
  --threads N      size of rayon's thread pool (default: all cores)
  --json           write target/bench/<commit>.json and target/bench/latest.json
  --compare FILE   compare with an earlier --json file, row by row; REGRESSION = more than 10% slower
  --data-dir DIR   where MNIST is, for the real-epoch row (else $CONVNET_DATA, ./data,
                   /usr/share/datasets, ../shared/datasets)
  --with-torch     also measure PyTorch (~/torchenv, ../shared/bench scripts) right after
                   each comparable row, and print the ratios";

impl Options {
    /// Parses the arguments after `bench`. `Ok(None)` means `--help`.
    pub fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
        let mut opts = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| -> anyhow::Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value\n\n{USAGE}")),
                }
            };
            match flag {
                "-h" | "--help" => return Ok(None),
                "--quick" => opts.quick = true,
                "--filter" => opts.filter = Some(value("--filter")?),
                "--threads" => {
                    let v = value("--threads")?;
                    let n: usize = v.parse().ok().filter(|&n| n > 0).with_context(|| {
                        format!("--threads: expected a positive integer, got `{v}`")
                    })?;
                    opts.threads = Some(n);
                }
                "--json" => opts.json = true,
                "--compare" => opts.compare = Some(PathBuf::from(value("--compare")?)),
                "--data-dir" => opts.data_dir = Some(PathBuf::from(value("--data-dir")?)),
                "--with-torch" => opts.with_torch = true,
                "--run-row" => opts.run_row = Some(value("--run-row")?),
                other => bail!("unknown option `{other}`\n\n{USAGE}"),
            }
        }
        Ok(Some(opts))
    }

    /// Whether a row name passes `--filter`.
    pub fn selects(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

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

/// Wall-clock statistics of repeated runs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median.
    pub median_s: f64,
    /// Fastest run.
    pub min_s: f64,
    /// Slowest run.
    pub max_s: f64,
    /// Timed runs (after the warm-up).
    pub reps: usize,
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
    /// `gflops` divided by the sgemm peak.
    pub peak_fraction: f64,
    /// Images per second at the median time (train and infer rows).
    pub images_per_s: Option<f64>,
    /// Peak resident memory of the process that measured the row.
    pub peak_rss_bytes: Option<u64>,
}

impl Row {
    /// A row from a timing and the useful FLOPs of one run.
    pub fn new(
        name: &str,
        kind: Kind,
        batch: usize,
        shape: String,
        t: Timing,
        flops: f64,
        peak: &Peak,
    ) -> Row {
        let gflops = flops / t.median_s / 1e9;
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
            gflops,
            peak_fraction: gflops / peak.best_gflops,
            images_per_s: None,
            peak_rss_bytes: None,
        }
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

/// Where and when the numbers were measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Threads of rayon's pool used for the run.
    pub threads: usize,
    /// Widest SIMD level detected: `avx512f`, `avx2+fma`, `sse`, ...
    pub simd: String,
    /// `git rev-parse --short HEAD`, with `-dirty` when the tree has changes.
    pub commit: String,
    /// UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Whether `--quick` was used.
    pub quick: bool,
}

/// The reference speed: single-precision matrix multiply on all threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Matrix size (`n × n` times `n × n`).
    pub n: usize,
    /// GFLOP/s of the fastest run.
    pub best_gflops: f64,
    /// GFLOP/s at the median time.
    pub median_gflops: f64,
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

/// Repetition policy: warm-up runs, then timed runs until both a minimum
/// count and a time budget are reached (or a maximum count).
#[derive(Debug, Clone, Copy)]
pub struct Reps {
    /// Untimed runs first.
    pub warmup: usize,
    /// At least this many timed runs.
    pub min: usize,
    /// At most this many timed runs.
    pub max: usize,
    /// Keep repeating until this much time (seconds) was spent timing.
    pub budget_s: f64,
}

impl Reps {
    /// The policy for a normal or a `--quick` run.
    pub fn for_run(quick: bool) -> Reps {
        if quick {
            Reps {
                warmup: 1,
                min: 3,
                max: 10,
                budget_s: 0.25,
            }
        } else {
            Reps {
                warmup: 3,
                min: 10,
                max: 200,
                budget_s: 2.0,
            }
        }
    }
}

/// Times `f` under the repetition policy.
pub fn measure(reps: Reps, mut f: impl FnMut()) -> Timing {
    for _ in 0..reps.warmup {
        f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < reps.max
        && (times.len() < reps.min || start.elapsed().as_secs_f64() < reps.budget_s)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Timing {
        median_s: median(&times),
        min_s: times[0],
        max_s: times[times.len() - 1],
        reps: times.len(),
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs the benchmarks.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(opts) = Options::parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    if let Some(n) = opts.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("building rayon's global thread pool")?;
    }
    match &opts.run_row {
        Some(job) => child::run_child(&opts, job),
        None => suite::run(&opts),
    }
}

/// Prints the machine description.
pub fn print_header(h: &Header) {
    println!("convnet bench{}", if h.quick { " (--quick)" } else { "" });
    println!("  cpu      {}", h.cpu);
    println!("  cores    {}, threads used {}", h.cores, h.threads);
    println!("  simd     {}", h.simd);
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

/// Column header of a kernel table.
pub fn print_table_title(title: &str) {
    println!("\n{title}");
    println!(
        "  {:<16} {:<9} {:>5}  {:<26} {:>10}  {:>19}  {:>8}  {:>6}",
        "name", "pass", "batch", "shape", "median ms", "min-max ms", "GFLOP/s", "% peak"
    );
}

/// One row of a kernel table, printed as soon as it is measured.
pub fn print_row(r: &Row) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags() {
        let o = Options::parse(&args("--quick --filter resnet --threads 2"))
            .unwrap()
            .unwrap();
        assert_eq!(
            o,
            Options {
                quick: true,
                filter: Some("resnet".into()),
                threads: Some(2),
                ..Options::default()
            }
        );
        let o = Options::parse(&args("--threads=3")).unwrap().unwrap();
        assert_eq!(o.threads, Some(3));
        assert!(o.selects("anything"));
        assert!(Options::parse(&args("--help")).unwrap().is_none());
        assert!(Options::parse(&args("--threads 0")).is_err());
        assert!(Options::parse(&args("--filter")).is_err());
        assert!(Options::parse(&args("--fast")).is_err());
    }

    #[test]
    fn measure_respects_counts() {
        let mut calls = 0;
        let t = measure(
            Reps {
                warmup: 2,
                min: 3,
                max: 3,
                budget_s: 10.0,
            },
            || calls += 1,
        );
        assert_eq!((calls, t.reps), (5, 3));
        assert!(t.min_s <= t.median_s && t.median_s <= t.max_s);
    }
}
