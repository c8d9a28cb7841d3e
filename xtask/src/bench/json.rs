//! The JSON form of a bench run: `target/bench/<commit>.json` and
//! `target/bench/latest.json` (`--json`), read back by `--compare`; also the
//! line a child process sends its rows on.
//!
//! ```json
//! {
//!   "schema": 1,
//!   "header": { "cpu": "AMD EPYC", "cores": 2, "threads": 2, "simd": "avx2+fma",
//!               "commit": "561598e", "date": "2026-11-25", "quick": false },
//!   "sgemm_peak": { "n": 512, "best_gflops": 190.2, "median_gflops": 150.1 },
//!   "rows": [ { "name": "infer.resnet18.b16", "kind": "infer", "batch": 16,
//!               "shape": "3x224x224", "median_s": 0.41, "min_s": 0.40, "max_s": 0.44,
//!               "reps": 5, "images_per_s": 39.0, "gflops": 142.1,
//!               "peak_fraction": 0.74, "peak_rss_bytes": 412000000 }, ... ],
//!   "skipped": [ { "name": "train.lenet5.epoch.b64", "reason": "..." } ],
//!   "failed": [],
//!   "torch": null,
//!   "load_average": [0.4, 1.9]
//! }
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::row::{Kind, Report, Row};
use super::system::{workspace_root, Header, Peak};

/// Version of the file format.
pub const SCHEMA: u32 = 1;

/// The prefix of a row line on a child's stdout.
pub const ROW_PREFIX: &str = "@bench-row ";

/// One row, as written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique name: `kernel.<case>.<pass>`, `train.<model>.b<N>`,
    /// `train.<model>.epoch.b<N>`, `infer.<model>.b<N>`.
    pub name: String,
    /// `kernel`, `train` or `infer`.
    pub kind: String,
    /// `forward` or `backward` for kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Batch size.
    pub batch: usize,
    /// Input shape or what the row runs on.
    pub shape: String,
    /// Median time of one run, seconds.
    pub median_s: f64,
    /// Fastest run, seconds.
    pub min_s: f64,
    /// Slowest run, seconds.
    pub max_s: f64,
    /// Timed runs.
    pub reps: usize,
    /// Images per second at the median time (train and infer rows).
    #[serde(default)]
    pub images_per_s: Option<f64>,
    /// Useful FLOPs of one run (0 if not counted).
    #[serde(default)]
    pub flops: f64,
    /// Useful GFLOP/s at the median time.
    #[serde(default)]
    pub gflops: Option<f64>,
    /// `gflops` over the sgemm peak.
    #[serde(default)]
    pub peak_fraction: Option<f64>,
    /// Peak resident memory of the process that measured the row.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

impl Record {
    /// The JSON record of a row.
    pub fn from_row(r: &Row) -> Record {
        let (kind, pass) = match r.kind {
            Kind::Forward | Kind::Backward => ("kernel", Some(r.kind.label().to_string())),
            Kind::Train => ("train", None),
            Kind::Infer => ("infer", None),
        };
        let name = match &pass {
            Some(p) => format!("kernel.{}.{p}", r.name),
            None => r.name.clone(),
        };
        let counted = r.flops > 0.0;
        Record {
            name,
            kind: kind.to_string(),
            pass,
            batch: r.batch,
            shape: r.shape.clone(),
            median_s: r.median_s,
            min_s: r.min_s,
            max_s: r.max_s,
            reps: r.reps,
            images_per_s: r.images_per_s,
            flops: r.flops,
            gflops: counted.then_some(r.gflops),
            peak_fraction: counted.then_some(r.peak_fraction),
            peak_rss_bytes: r.peak_rss_bytes,
        }
    }

    /// The row back (the inverse of [`Record::from_row`]).
    pub fn to_row(&self) -> anyhow::Result<Row> {
        let (kind, name) = match (self.kind.as_str(), self.pass.as_deref()) {
            ("kernel", Some(pass)) => {
                let kind = match pass {
                    "forward" => Kind::Forward,
                    "backward" => Kind::Backward,
                    other => bail!("row {}: unknown kernel pass `{other}`", self.name),
                };
                let case = self
                    .name
                    .strip_prefix("kernel.")
                    .and_then(|n| n.strip_suffix(&format!(".{pass}")))
                    .with_context(|| {
                        format!("row {}: not named kernel.<case>.{pass}", self.name)
                    })?;
                (kind, case.to_string())
            }
            ("train", None) => (Kind::Train, self.name.clone()),
            ("infer", None) => (Kind::Infer, self.name.clone()),
            (kind, pass) => bail!(
                "row {}: unknown kind `{kind}` (pass {pass:?}); expected kernel (with a pass), train or infer",
                self.name
            ),
        };
        Ok(Row {
            name,
            kind,
            batch: self.batch,
            shape: self.shape.clone(),
            median_s: self.median_s,
            min_s: self.min_s,
            max_s: self.max_s,
            reps: self.reps,
            flops: self.flops,
            gflops: self.gflops.unwrap_or(0.0),
            peak_fraction: self.peak_fraction.unwrap_or(0.0),
            images_per_s: self.images_per_s,
            peak_rss_bytes: self.peak_rss_bytes,
        })
    }
}

/// A row that did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Job or row name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// A PyTorch figure measured next to a convnet row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchRecord {
    /// The convnet row it compares with.
    pub name: String,
    /// PyTorch's images per second.
    pub torch_images_per_s: f64,
    /// convnet's images per second (the row's).
    pub convnet_images_per_s: f64,
    /// Peak resident memory of PyTorch's process, when its script says
    /// (absent in files written before it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_peak_rss_bytes: Option<u64>,
    /// Peak resident memory of convnet's process for the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convnet_peak_rss_bytes: Option<u64>,
}

/// The PyTorch reference measurements of a run (`--with-torch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchRun {
    /// `torch.__version__` as the scripts print it.
    pub version: String,
    /// Threads given to PyTorch.
    pub threads: usize,
    /// `OMP_WAIT_POLICY` PyTorch ran with.
    #[serde(default)]
    pub omp_wait_policy: String,
    /// Figures per convnet row.
    pub rows: Vec<TorchRecord>,
}

/// A whole run, as written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchFile {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Machine and checkout.
    pub header: Header,
    /// The reference speed.
    pub sgemm_peak: Peak,
    /// Every measured row, in run order.
    pub rows: Vec<Record>,
    /// Rows not run (e.g. no MNIST for the real epoch).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Rows whose process failed.
    #[serde(default)]
    pub failed: Vec<Skipped>,
    /// PyTorch figures, with `--with-torch`.
    #[serde(default)]
    pub torch: Option<TorchRun>,
    /// The 1-minute load average when the run started and when it ended
    /// (`/proc/loadavg`): above the thread count, other processes competed
    /// for the CPU and the figures are noisy.
    #[serde(default)]
    pub load_average: Option<[f64; 2]>,
}

impl BenchFile {
    /// The file of a report.
    pub fn new(report: &Report) -> BenchFile {
        BenchFile {
            schema: SCHEMA,
            header: report.header.clone(),
            sgemm_peak: report.peak,
            rows: report
                .tables
                .iter()
                .flat_map(|t| &t.rows)
                .map(Record::from_row)
                .collect(),
            skipped: Vec::new(),
            failed: Vec::new(),
            torch: None,
            load_average: None,
        }
    }

    /// Pretty JSON text.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses a file's text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> anyhow::Result<BenchFile> {
        let file: BenchFile = serde_json::from_str(text)
            .with_context(|| format!("{origin}: not a `cargo xtask bench --json` file"))?;
        if file.schema != SCHEMA {
            bail!(
                "{origin}: bench file schema {} (this xtask reads schema {SCHEMA})",
                file.schema
            );
        }
        Ok(file)
    }

    /// Reads a file written by [`BenchFile::write`].
    pub fn read(path: &Path) -> anyhow::Result<BenchFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        BenchFile::from_json(&text, &path.display().to_string())
    }

    /// Writes `<dir>/<commit>.json` and `<dir>/latest.json` (each through a
    /// temporary file and a rename) and returns the two paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = self.to_json()?;
        let commit: String = self
            .header
            .commit
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let paths = [dir.join(format!("{commit}.json")), dir.join("latest.json")];
        for path in &paths {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        }
        Ok(paths)
    }
}

/// The line a child prints for one row.
pub fn row_line(row: &Row) -> anyhow::Result<String> {
    Ok(format!(
        "{ROW_PREFIX}{}",
        serde_json::to_string(&Record::from_row(row))?
    ))
}

/// The rows among a child's stdout lines (other lines are ignored).
pub fn parse_row_lines(stdout: &str) -> anyhow::Result<Vec<Row>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(ROW_PREFIX))
        .map(|json| {
            let rec: Record = serde_json::from_str(json)
                .with_context(|| format!("a child's row line is not a record: {json}"))?;
            rec.to_row()
        })
        .collect()
}

/// `target/bench` of this workspace (or of `$CARGO_TARGET_DIR`).
pub fn default_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target"),
    };
    target.join("bench")
}

#[cfg(test)]
mod tests {
    use super::super::measure::Timing;
    use super::super::row::Table;
    use super::*;

    fn timing(median_s: f64) -> Timing {
        Timing {
            median_s,
            min_s: median_s * 0.9,
            max_s: median_s * 1.2,
            reps: 5,
        }
    }

    fn sample_report() -> Report {
        let peak = Peak {
            n: 512,
            best_gflops: 100.0,
            median_gflops: 90.0,
        };
        let mut fwd = Row::new(
            "resnet.3x3",
            Kind::Forward,
            8,
            "64->64 56x56 k3 p1".into(),
            timing(0.01),
            1e9,
        )
        .with_peak(&peak);
        fwd.peak_rss_bytes = Some(50 << 20);
        let bwd = Row::new(
            "resnet.3x3",
            Kind::Backward,
            8,
            "64->64 56x56 k3 p1".into(),
            timing(0.03),
            2e9,
        )
        .with_peak(&peak);
        let mut train = Row::new(
            "train.lenet5.b64",
            Kind::Train,
            64,
            "1x28x28".into(),
            timing(0.005),
            0.0,
        )
        .with_peak(&peak);
        train.peak_rss_bytes = Some(30 << 20);
        let infer = Row::new(
            "infer.resnet18.b16",
            Kind::Infer,
            16,
            "3x224x224".into(),
            timing(0.4),
            16.0 * 3.6e9,
        )
        .with_peak(&peak);
        Report {
            header: Header {
                cpu: "Test CPU".into(),
                cores: 2,
                threads: 2,
                simd: "avx2+fma".into(),
                commit: "abc1234-dirty".into(),
                date: "2026-11-25".into(),
                quick: false,
            },
            peak,
            tables: vec![
                Table {
                    title: "kernels".into(),
                    rows: vec![fwd, bwd],
                },
                Table {
                    title: "training".into(),
                    rows: vec![train],
                },
                Table {
                    title: "inference".into(),
                    rows: vec![infer],
                },
            ],
        }
    }

    #[test]
    fn records_carry_the_issue_fields() {
        let file = BenchFile::new(&sample_report());
        let names: Vec<&str> = file.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kernel.resnet.3x3.forward",
                "kernel.resnet.3x3.backward",
                "train.lenet5.b64",
                "infer.resnet18.b16"
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&file.to_json().unwrap()).unwrap();
        let kernel = &v["rows"][0];
        for key in [
            "name",
            "kind",
            "batch",
            "median_s",
            "min_s",
            "max_s",
            "gflops",
            "peak_fraction",
            "peak_rss_bytes",
        ] {
            assert!(!kernel[key].is_null(), "kernel row lacks {key}: {kernel}");
        }
        assert_eq!(kernel["kind"], "kernel");
        assert_eq!(kernel["pass"], "forward");
        assert!((kernel["peak_fraction"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        let train = &v["rows"][2];
        assert_eq!(train["kind"], "train");
        assert_eq!(train["images_per_s"], 12_800.0);
        assert!(train["gflops"].is_null(), "no FLOPs counted, no GFLOP/s");
        assert_eq!(v["header"]["commit"], "abc1234-dirty");
        assert_eq!(v["sgemm_peak"]["best_gflops"], 100.0);
    }

    #[test]
    fn file_round_trip() {
        let mut file = BenchFile::new(&sample_report());
        file.skipped.push(Skipped {
            name: "train.lenet5.epoch.b64".into(),
            reason: "no MNIST".into(),
        });
        file.torch = Some(TorchRun {
            version: "2.15.0".into(),
            threads: 2,
            omp_wait_policy: "PASSIVE".into(),
            rows: vec![TorchRecord {
                name: "infer.resnet18.b16".into(),
                torch_images_per_s: 29.5,
                convnet_images_per_s: 40.0,
                torch_peak_rss_bytes: Some(900_000_000),
                convnet_peak_rss_bytes: None,
            }],
        });
        let dir = tempfile::tempdir().unwrap();
        let paths = file.write(dir.path()).unwrap();
        assert!(paths[0].ends_with("abc1234-dirty.json"));
        assert!(paths[1].ends_with("latest.json"));
        for p in &paths {
            assert_eq!(BenchFile::read(p).unwrap(), file);
        }
        // Rows come back as the same rows.
        let report = sample_report();
        let rows: Vec<Row> = report.tables.iter().flat_map(|t| t.rows.clone()).collect();
        let back: Vec<Row> = file.rows.iter().map(|r| r.to_row().unwrap()).collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn child_lines_round_trip_and_other_lines_are_ignored() {
        let report = sample_report();
        let rows: Vec<Row> = report.tables.iter().flat_map(|t| t.rows.clone()).collect();
        let mut out = String::from("conv2d kernels (title printed by the table)\n");
        for r in &rows {
            out.push_str(&row_line(r).unwrap());
            out.push('\n');
        }
        assert_eq!(parse_row_lines(&out).unwrap(), rows);
        let bad = format!("{ROW_PREFIX}{{\"name\": 3}}\n");
        assert!(parse_row_lines(&bad).is_err());
    }

    #[test]
    fn torch_records_without_memory_still_load() {
        // As files written before the memory fields existed.
        let old = r#"{"version": "2.15.0", "threads": 2, "omp_wait_policy": "PASSIVE",
            "rows": [{"name": "infer.resnet18.b16", "torch_images_per_s": 29.5,
                      "convnet_images_per_s": 40.0}]}"#;
        let run: TorchRun = serde_json::from_str(old).unwrap();
        assert_eq!(run.rows[0].torch_peak_rss_bytes, None);
        assert_eq!(run.rows[0].convnet_peak_rss_bytes, None);
        let mut rec = run.rows[0].clone();
        rec.torch_peak_rss_bytes = Some(1_000);
        rec.convnet_peak_rss_bytes = Some(900);
        let text = serde_json::to_string(&rec).unwrap();
        assert!(text.contains("\"torch_peak_rss_bytes\":1000"), "{text}");
        assert_eq!(serde_json::from_str::<TorchRecord>(&text).unwrap(), rec);
    }

    #[test]
    fn bad_files_are_errors() {
        let e = BenchFile::from_json("{}", "old.json").unwrap_err();
        assert!(format!("{e:#}").contains("old.json"), "{e:#}");
        let mut v: serde_json::Value =
            serde_json::from_str(&BenchFile::new(&sample_report()).to_json().unwrap()).unwrap();
        v["schema"] = 99.into();
        let e = BenchFile::from_json(&v.to_string(), "future.json").unwrap_err();
        assert!(e.to_string().contains("schema 99"), "{e}");
        let rec = Record {
            kind: "fit".into(),
            ..BenchFile::new(&sample_report()).rows[2].clone()
        };
        assert!(rec.to_row().is_err());
    }
}
