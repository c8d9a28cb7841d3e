//! `--with-torch`: PyTorch's figures for the same rows, measured right after
//! convnet's on the same machine, so that their ratio survives the noise of
//! a shared machine better than two separate runs would.
//!
//! Runs the reference scripts of `../shared/bench` (`torch_lenet.py`,
//! `torch_infer.py`; see their README) and the repository's
//! `xtask/torch/torch_train.py` (kept here: `../shared` is provided, not
//! ours to add to) with the Python of
//! `~/torchenv` (or `$CONVNET_TORCH_PYTHON`), with the bench's thread count:
//!
//! - after the MNIST epoch row: `torch_lenet.py` (the same epochs, then
//!   LeNet-5 inference at batch 1 and 256);
//! - after a training-step row that [`torch_trains`] (LeNet-5, ResNet-20,
//!   the [`plan::COMPARE_TRAIN_MODELS`] at batch 16, the
//!   [`TORCH_TRAIN_B2`] models at batch 2): `torch_train.py --models NAME
//!   --batch N --size S` with the same repetition policy ([`Reps::models`]);
//! - after a model's last inference row, if torchvision has a model of that
//!   name: `torch_infer.py --models NAME --batch <the batches convnet ran>`.
//!
//! Peak memory: `torch_train.py` runs each model in a process of its own
//! and prints that process's peak resident memory (Python and torch
//! included), the counterpart of the row's own process; `torch_infer.py`
//! prints its process's peak so far after each batch (batches in ascending
//! order: the peak after the larger batch is that batch's);
//! `torch_lenet.py`'s is that of its epochs and inference together, put
//! beside the epoch row's.
//!
//! PyTorch runs with `OMP_WAIT_POLICY=PASSIVE` unless the environment sets
//! the variable: OpenMP's default spin-waiting makes PyTorch several times
//! slower (LeNet-5: 2,400 instead of 5,500 images/s, measured here) as soon
//! as other processes share the cores, which would flatter convnet on a
//! busy machine. Export `OMP_WAIT_POLICY=ACTIVE` to measure the default.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

use super::json::{TorchRecord, TorchRun};
use super::measure::{Reps, Timing};
use super::models::MNIST_PLACES;
use super::plan::{self, Job};
use super::report::mb;
use super::report::rate;
use super::row::Row;
use super::system::workspace_root;
use crate::python::omp_wait_policy;

mod parse;
use parse::{parse_lenet, parse_model_lines, parse_version};

/// The torchvision models that have a zoo model of the same name.
pub const TORCHVISION_MODELS: &[&str] = &[
    "alexnet",
    "googlenet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "vit_b_16",
    "swin_t",
    "swin_s",
    "swin_b",
];

/// The zoo models whose batch-2 training row (issue 6) PyTorch runs too:
/// VGG-16, the largest peak memory, whose memory issue 17 compares with
/// PyTorch's. The others would add minutes to a run.
pub const TORCH_TRAIN_B2: &[&str] = &["vgg16"];

/// PyTorch's training-step script, relative to the workspace root.
pub const TORCH_TRAIN_SCRIPT: &str = "xtask/torch/torch_train.py";

/// The 28×28 models of `torch_train.py`.
pub const TORCH_SMALL_MODELS: &[&str] = &[plan::EPOCH_MODEL, plan::SMALL_RESNET.0];

/// Whether PyTorch runs the training step `model` at `batch` after
/// convnet's row: LeNet-5 and ResNet-20 at their batches, the
/// [`plan::COMPARE_TRAIN_MODELS`] at [`plan::COMPARE_TRAIN_BATCH`], the
/// [`TORCH_TRAIN_B2`] models at [`plan::ZOO_TRAIN_BATCH`].
pub fn torch_trains(model: &str, batch: usize) -> bool {
    match batch {
        _ if (model, batch) == (plan::EPOCH_MODEL, plan::LENET_BATCH) => true,
        _ if (model, batch) == plan::SMALL_RESNET => true,
        plan::COMPARE_TRAIN_BATCH => plan::COMPARE_TRAIN_MODELS.contains(&model),
        plan::ZOO_TRAIN_BATCH => TORCH_TRAIN_B2.contains(&model),
        _ => false,
    }
}

/// A PyTorch figure for one convnet row.
#[derive(Debug, Clone, PartialEq)]
struct Figure {
    /// The convnet row's name.
    name: String,
    /// PyTorch's images/s.
    images_per_s: f64,
    /// Peak resident memory of PyTorch's process, when the script says.
    peak_rss_bytes: Option<u64>,
}

/// The PyTorch side of a run.
#[derive(Debug)]
pub struct Torch {
    python: PathBuf,
    scripts: PathBuf,
    threads: usize,
    quick: bool,
    version: Option<String>,
    /// PyTorch's figures, in measurement order.
    figures: Vec<Figure>,
}

impl Torch {
    /// Finds the Python with torch and the scripts; `Err` says what is
    /// missing (printed as a note: the bench goes on without PyTorch).
    pub fn locate(threads: usize, quick: bool) -> anyhow::Result<Torch> {
        let python = crate::python::torch_python()?;
        let scripts = workspace_root().join("../shared/bench");
        // torch_train.py is in the repository (TORCH_TRAIN_SCRIPT).
        for script in ["torch_lenet.py", "torch_infer.py"] {
            if !scripts.join(script).exists() {
                bail!("{} not found", scripts.join(script).display());
            }
        }
        Ok(Torch {
            python,
            scripts,
            threads,
            quick,
            version: None,
            figures: Vec::new(),
        })
    }

    /// Runs the PyTorch counterpart of `job` if it is time to: `jobs` is the
    /// whole plan and `index` the position of `job` in it. Returns the lines
    /// to print (figures, or why PyTorch could not run).
    pub fn after_job(&mut self, jobs: &[Job], index: usize, mnist: Option<&Path>) -> Vec<String> {
        let result = match &jobs[index] {
            Job::TrainEpoch { model, batch } if model == plan::EPOCH_MODEL => match mnist {
                Some(dir) => self.lenet(dir, *batch, Some(&jobs[index].name())),
                None => return Vec::new(),
            },
            Job::TrainStep { model, batch } if torch_trains(model, *batch) => {
                self.train(model, *batch)
            }
            // LeNet-5's inference figures come with its epoch; without an
            // epoch row in this run, after LeNet-5's last inference row.
            Job::Infer { model, .. }
                if model == plan::EPOCH_MODEL
                    && last_of_model(jobs, index)
                    && !jobs.iter().any(|j| matches!(j, Job::TrainEpoch { .. })) =>
            {
                match mnist {
                    Some(dir) => self.lenet(dir, plan::LENET_BATCH, None),
                    None => Err(anyhow::anyhow!(
                        "torch_lenet.py needs MNIST, not found in {}",
                        MNIST_PLACES
                    )),
                }
            }
            Job::Infer { model, .. } if TORCHVISION_MODELS.contains(&model.as_str()) => {
                if !last_of_model(jobs, index) {
                    return Vec::new();
                }
                let batches: Vec<usize> = jobs
                    .iter()
                    .filter_map(|j| match j {
                        Job::Infer { model: m, batch } if m == model => Some(*batch),
                        _ => None,
                    })
                    .collect();
                self.infer(model, &batches)
            }
            _ => return Vec::new(),
        };
        match result {
            Ok(lines) => lines,
            Err(e) => vec![format!("  (PyTorch: {e:#})")],
        }
    }

    fn run(&mut self, script: &str, args: &[String]) -> anyhow::Result<String> {
        let mut cmd = crate::python::command(&self.python);
        cmd.arg(self.scripts.join(script))
            .args(args)
            .args(["--threads".to_string(), self.threads.to_string()])
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            bail!("{script} failed ({}): {}", out.status, tail.join(" / "));
        }
        if let Some(v) = parse_version(&stdout) {
            self.version.get_or_insert(v);
        }
        Ok(stdout)
    }

    /// `torch_lenet.py`: the epochs of the epoch row (median of the timed
    /// ones) if `epoch_row` is given, else one short epoch (the script
    /// trains before it measures inference); then inference at batch 1 and
    /// 256.
    fn lenet(
        &mut self,
        mnist: &Path,
        batch: usize,
        epoch_row: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let (warmup, runs) = match epoch_row {
            Some(_) => plan::epoch_runs(self.quick),
            None => (1, 0),
        };
        let mut args = vec![
            "--data".to_string(),
            mnist.display().to_string(),
            "--epochs".to_string(),
            (warmup + runs).to_string(),
            "--batch".to_string(),
            batch.to_string(),
        ];
        if epoch_row.is_none() {
            args.extend(["--limit".to_string(), (100 * batch).to_string()]);
        }
        let out = self.run("torch_lenet.py", &args)?;
        let parsed = parse_lenet(&out);
        let mut epochs = parsed.epochs;
        if epochs.len() != warmup + runs {
            bail!(
                "torch_lenet.py printed {} epochs, expected {}",
                epochs.len(),
                warmup + runs
            );
        }
        let mut lines = Vec::new();
        if let Some(row) = epoch_row {
            let mut timed = epochs.split_off(warmup);
            let t = Timing::from_runs(&mut timed).context("no timed epoch")?;
            lines.push(format!(
                "  PyTorch {row}: {} images/s (median of {} epoch{}){}",
                rate(t.median_s),
                t.reps,
                if t.reps == 1 { "" } else { "s" },
                peak_note(parsed.peak_rss_bytes)
            ));
            self.figures.push(Figure {
                name: row.to_string(),
                images_per_s: t.median_s,
                peak_rss_bytes: parsed.peak_rss_bytes,
            });
        }
        for (bs, ips) in parsed.inference {
            let name = Job::Infer {
                model: plan::EPOCH_MODEL.into(),
                batch: bs,
            }
            .name();
            lines.push(format!("  PyTorch {name}: {} images/s", rate(ips)));
            self.figures.push(Figure {
                name,
                images_per_s: ips,
                peak_rss_bytes: None,
            });
        }
        Ok(lines)
    }

    /// `torch_train.py`: one training step of `model` at `batch`, timed as
    /// convnet's row.
    fn train(&mut self, model: &str, batch: usize) -> anyhow::Result<Vec<String>> {
        let size = if TORCH_SMALL_MODELS.contains(&model) {
            28
        } else {
            224
        };
        let reps = Reps::models(self.quick);
        let args = vec![
            "--models".to_string(),
            model.to_string(),
            "--batch".to_string(),
            batch.to_string(),
            "--size".to_string(),
            size.to_string(),
            "--steps".to_string(),
            reps.min.to_string(),
            "--warmup".to_string(),
            reps.warmup.to_string(),
            "--budget".to_string(),
            reps.budget_s.to_string(),
        ];
        // In the repository (the training rows and this script change
        // together); ../shared/bench holds the other two scripts.
        let script = workspace_root().join(TORCH_TRAIN_SCRIPT);
        if !script.exists() {
            bail!(
                "{} not found: no PyTorch figure for this training row",
                script.display()
            );
        }
        let out = self.run(&script.display().to_string(), &args)?;
        let name = Job::TrainStep {
            model: model.to_string(),
            batch,
        }
        .name();
        let Some(f) = parse_model_lines(&out, model)
            .into_iter()
            .find(|f| f.batch == batch)
        else {
            bail!("torch_train.py printed no figure for {model} at batch {batch}");
        };
        let line = format!(
            "  PyTorch {name}: {} images/s{}",
            rate(f.images_per_s),
            peak_note(f.peak_rss_bytes)
        );
        self.figures.push(Figure {
            name,
            images_per_s: f.images_per_s,
            peak_rss_bytes: f.peak_rss_bytes,
        });
        Ok(vec![line])
    }

    fn infer(&mut self, model: &str, batches: &[usize]) -> anyhow::Result<Vec<String>> {
        let mut sorted = batches.to_vec();
        sorted.sort_unstable();
        let batch_list: Vec<String> = sorted.iter().map(usize::to_string).collect();
        let args = vec![
            "--models".to_string(),
            model.to_string(),
            "--batch".to_string(),
            batch_list.join(","),
            "--runs".to_string(),
            Reps::models(self.quick).min.to_string(),
        ];
        let out = self.run("torch_infer.py", &args)?;
        let figures = parse_model_lines(&out, model);
        if figures.is_empty() {
            bail!("torch_infer.py printed no figure for {model}");
        }
        let mut parts = Vec::new();
        for f in figures {
            parts.push(format!(
                "batch {}: {} images/s{}",
                f.batch,
                rate(f.images_per_s),
                peak_note(f.peak_rss_bytes)
            ));
            let name = Job::Infer {
                model: model.to_string(),
                batch: f.batch,
            }
            .name();
            self.figures.push(Figure {
                name,
                images_per_s: f.images_per_s,
                peak_rss_bytes: f.peak_rss_bytes,
            });
        }
        Ok(vec![format!("  PyTorch {model}: {}", parts.join(", "))])
    }

    /// The figures joined with convnet's rows (rows convnet did not measure
    /// are left out).
    pub fn finish(&self, rows: &[Row]) -> TorchRun {
        let records = self
            .figures
            .iter()
            .filter_map(|f| {
                let row = rows.iter().find(|r| r.name == f.name)?;
                Some(TorchRecord {
                    name: f.name.clone(),
                    torch_images_per_s: f.images_per_s,
                    convnet_images_per_s: row.images_per_s?,
                    torch_peak_rss_bytes: f.peak_rss_bytes,
                    convnet_peak_rss_bytes: row.peak_rss_bytes,
                })
            })
            .collect();
        TorchRun {
            version: self.version.clone().unwrap_or_else(|| "unknown".into()),
            threads: self.threads,
            omp_wait_policy: omp_wait_policy(),
            rows: records,
        }
    }
}

/// `, peak 1234 MB` (or nothing).
fn peak_note(bytes: Option<u64>) -> String {
    bytes.map_or(String::new(), |b| format!(", peak {} MB", mb(Some(b))))
}

/// Prints convnet against PyTorch, row by row: images/s and their ratio,
/// peak memory (MB) and theirs, then the geometric mean of the speed ratios.
pub fn print_table(run: &TorchRun) {
    if run.rows.is_empty() {
        return;
    }
    println!(
        "\nconvnet vs PyTorch {} ({} threads, OMP_WAIT_POLICY={}; each PyTorch figure measured right after convnet's row; \
         peak MB: each side's process, PyTorch's including Python and torch)",
        run.version, run.threads, run.omp_wait_policy
    );
    println!(
        "  {:<28} {:>14} {:>14} {:>16} {:>11} {:>11} {:>10}",
        "row",
        "convnet img/s",
        "PyTorch img/s",
        "convnet/PyTorch",
        "convnet MB",
        "PyTorch MB",
        "MB ratio"
    );
    for r in &run.rows {
        let mem_ratio = match (r.convnet_peak_rss_bytes, r.torch_peak_rss_bytes) {
            (Some(c), Some(t)) if t > 0 => format!("{:.2}", c as f64 / t as f64),
            _ => "-".to_string(),
        };
        println!(
            "  {:<28} {:>14} {:>14} {:>16.2} {:>11} {:>11} {:>10}",
            r.name,
            rate(r.convnet_images_per_s),
            rate(r.torch_images_per_s),
            r.convnet_images_per_s / r.torch_images_per_s,
            mb(r.convnet_peak_rss_bytes),
            mb(r.torch_peak_rss_bytes),
            mem_ratio
        );
    }
    if let Some((n, g)) = geometric_mean_ratio(run) {
        println!("  geometric mean of the {n} speed ratios: {g:.2}");
    }
}

/// The number of rows and the geometric mean of their convnet/PyTorch
/// speed ratios (rows with a non-positive figure left out); `None` if no
/// row is left.
pub fn geometric_mean_ratio(run: &TorchRun) -> Option<(usize, f64)> {
    let logs: Vec<f64> = run
        .rows
        .iter()
        .filter(|r| r.convnet_images_per_s > 0.0 && r.torch_images_per_s > 0.0)
        .map(|r| (r.convnet_images_per_s / r.torch_images_per_s).ln())
        .collect();
    if logs.is_empty() {
        return None;
    }
    Some((
        logs.len(),
        (logs.iter().sum::<f64>() / logs.len() as f64).exp(),
    ))
}

/// Whether `jobs[index]` is the last inference row of its model.
fn last_of_model(jobs: &[Job], index: usize) -> bool {
    match (&jobs[index], jobs.get(index + 1)) {
        (Job::Infer { model, .. }, Some(Job::Infer { model: next, .. })) => next != model,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_trains_the_compared_rows_only() {
        for (model, batch) in [
            ("lenet5", 64),
            ("resnet20", 128),
            ("resnet18", 16),
            ("convnext_tiny", 16),
            ("vit_b_16", 16),
            ("vgg16", 2),
        ] {
            assert!(torch_trains(model, batch), "{model} b{batch}");
        }
        for (model, batch) in [
            ("lenet5", 2),
            ("resnet20", 2),
            ("resnet18", 2),
            ("vgg16", 16),
            ("resnet50", 16),
            ("alexnet", 2),
        ] {
            assert!(!torch_trains(model, batch), "{model} b{batch}");
        }
        // Every model PyTorch trains is one its scripts know.
        for model in plan::COMPARE_TRAIN_MODELS.iter().chain(TORCH_TRAIN_B2) {
            assert!(TORCHVISION_MODELS.contains(model), "{model}");
        }
    }

    #[test]
    fn the_geometric_mean_of_the_ratios() {
        let record = |convnet: f64, torch: f64| TorchRecord {
            name: "r".into(),
            torch_images_per_s: torch,
            convnet_images_per_s: convnet,
            torch_peak_rss_bytes: None,
            convnet_peak_rss_bytes: None,
        };
        let mut run = TorchRun {
            version: "2.15.0".into(),
            threads: 2,
            omp_wait_policy: "PASSIVE".into(),
            rows: vec![],
        };
        assert_eq!(geometric_mean_ratio(&run), None);
        run.rows = vec![record(2.0, 1.0), record(1.0, 2.0), record(9.0, 1.0)];
        let (n, g) = geometric_mean_ratio(&run).unwrap();
        assert_eq!(n, 3);
        assert!((g - 9f64.powf(1.0 / 3.0)).abs() < 1e-12, "{g}");
        run.rows.push(record(0.0, 1.0));
        assert_eq!(geometric_mean_ratio(&run).unwrap().0, 3);
    }

    #[test]
    fn pytorch_runs_after_a_models_last_inference_row() {
        let infer = |model: &str, batch| Job::Infer {
            model: model.into(),
            batch,
        };
        let jobs = [
            infer("lenet5", 1),
            infer("lenet5", 256),
            infer("resnet18", 1),
            infer("resnet18", 16),
            Job::Kernel { case: "x".into() },
        ];
        let last: Vec<bool> = (0..jobs.len()).map(|i| last_of_model(&jobs, i)).collect();
        assert_eq!(last, [false, true, false, true, true]);
    }

    #[test]
    fn torchvision_names_are_zoo_names() {
        let zoo = convnet::zoo::model_names();
        for name in TORCHVISION_MODELS {
            assert!(zoo.contains(name), "{name} is not in the zoo");
        }
    }
}
