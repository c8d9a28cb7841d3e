//! `--with-torch`: PyTorch's figures for the same rows, measured right after
//! convnet's on the same machine, so that their ratio survives the noise of
//! a shared machine better than two separate runs would.
//!
//! Runs the reference scripts of `../shared/bench` (`torch_lenet.py`,
//! `torch_infer.py`; see their README) with the Python of `~/torchenv`
//! (or `$CONVNET_TORCH_PYTHON`), with the bench's thread count:
//!
//! - after the MNIST epoch row: `torch_lenet.py` (the same epochs, then
//!   LeNet-5 inference at batch 1 and 256);
//! - after a model's last inference row, if torchvision has a model of that
//!   name: `torch_infer.py --models NAME --batch <the batches convnet ran>`.
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
use super::report::rate;
use super::row::Row;
use super::system::workspace_root;
use crate::python::omp_wait_policy;

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

/// The PyTorch side of a run.
#[derive(Debug)]
pub struct Torch {
    python: PathBuf,
    scripts: PathBuf,
    threads: usize,
    quick: bool,
    version: Option<String>,
    /// `(convnet row name, PyTorch images/s)`, in measurement order.
    figures: Vec<(String, f64)>,
}

impl Torch {
    /// Finds the Python with torch and the scripts; `Err` says what is
    /// missing (printed as a note: the bench goes on without PyTorch).
    pub fn locate(threads: usize, quick: bool) -> anyhow::Result<Torch> {
        let python = crate::python::torch_python()?;
        let scripts = workspace_root().join("../shared/bench");
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
                "  PyTorch {row}: {} images/s (median of {} epoch{})",
                rate(t.median_s),
                t.reps,
                if t.reps == 1 { "" } else { "s" }
            ));
            self.figures.push((row.to_string(), t.median_s));
        }
        for (bs, ips) in parsed.inference {
            let name = Job::Infer {
                model: plan::EPOCH_MODEL.into(),
                batch: bs,
            }
            .name();
            lines.push(format!("  PyTorch {name}: {} images/s", rate(ips)));
            self.figures.push((name, ips));
        }
        Ok(lines)
    }

    fn infer(&mut self, model: &str, batches: &[usize]) -> anyhow::Result<Vec<String>> {
        let batch_list: Vec<String> = batches.iter().map(usize::to_string).collect();
        let args = vec![
            "--models".to_string(),
            model.to_string(),
            "--batch".to_string(),
            batch_list.join(","),
            "--runs".to_string(),
            Reps::models(self.quick).min.to_string(),
        ];
        let out = self.run("torch_infer.py", &args)?;
        let figures = parse_infer(&out, model);
        if figures.is_empty() {
            bail!("torch_infer.py printed no figure for {model}");
        }
        let mut parts = Vec::new();
        for (bs, ips) in figures {
            parts.push(format!("batch {bs}: {} images/s", rate(ips)));
            let name = Job::Infer {
                model: model.to_string(),
                batch: bs,
            }
            .name();
            self.figures.push((name, ips));
        }
        Ok(vec![format!("  PyTorch {model}: {}", parts.join(", "))])
    }

    /// The figures joined with convnet's rows (rows convnet did not measure
    /// are left out).
    pub fn finish(&self, rows: &[Row]) -> TorchRun {
        let records = self
            .figures
            .iter()
            .filter_map(|(name, torch)| {
                let row = rows.iter().find(|r| &r.name == name)?;
                Some(TorchRecord {
                    name: name.clone(),
                    torch_images_per_s: *torch,
                    convnet_images_per_s: row.images_per_s?,
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

/// Prints convnet against PyTorch, row by row.
pub fn print_table(run: &TorchRun) {
    if run.rows.is_empty() {
        return;
    }
    println!(
        "\nconvnet vs PyTorch {} ({} threads, OMP_WAIT_POLICY={}; each PyTorch figure measured right after convnet's row)",
        run.version, run.threads, run.omp_wait_policy
    );
    println!(
        "  {:<28} {:>14} {:>14} {:>16}",
        "row", "convnet img/s", "PyTorch img/s", "convnet/PyTorch"
    );
    for r in &run.rows {
        println!(
            "  {:<28} {:>14} {:>14} {:>16.2}",
            r.name,
            rate(r.convnet_images_per_s),
            rate(r.torch_images_per_s),
            r.convnet_images_per_s / r.torch_images_per_s
        );
    }
}

/// Whether `jobs[index]` is the last inference row of its model.
fn last_of_model(jobs: &[Job], index: usize) -> bool {
    match (&jobs[index], jobs.get(index + 1)) {
        (Job::Infer { model, .. }, Some(Job::Infer { model: next, .. })) => next != model,
        _ => true,
    }
}

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
}

/// The number just before ` images/s` in a line.
fn images_per_s(line: &str) -> Option<f64> {
    let head = line.split(" images/s").next()?;
    if head.len() == line.len() {
        return None;
    }
    head.rsplit([' ', ',']).next()?.parse().ok()
}

/// Parses `torch_lenet.py`'s lines `epoch K: train T s, R images/s, ...`
/// and `inference batch B: R images/s`.
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
        }
    }
    parsed
}

/// Parses `torch_infer.py`'s lines `NAME params P batch B: R images/s (...)`
/// for `model`: `(batch, images/s)`.
pub fn parse_infer(out: &str, model: &str) -> Vec<(usize, f64)> {
    out.lines()
        .filter(|l| l.starts_with(&format!("{model} params ")))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" batch ")?;
            let batch = rest.split(':').next()?.trim().parse().ok()?;
            Some((batch, images_per_s(l)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_output() {
        let lenet = "torch 2.15.0+cu132, threads 2, params 61706\n\
            epoch 1: train 5.94 s, 10094 images/s, last loss 0.0712, test accuracy 97.50%\n\
            epoch 2: train 5.50 s, 10903 images/s, last loss 0.0312, test accuracy 98.10%\n\
            inference batch 1: 2963 images/s\n\
            inference batch 256: 36047 images/s\n";
        assert_eq!(parse_version(lenet).as_deref(), Some("2.15.0+cu132"));
        assert_eq!(
            parse_lenet(lenet),
            LenetOutput {
                epochs: vec![10094.0, 10903.0],
                inference: vec![(1, 2963.0), (256, 36047.0)],
            }
        );
        let infer = "torch 2.15.0+cu132, threads 2\n\
            resnet18 params 11689512 batch 1: 29.5 images/s (median 33.9 ms, min 33.0, max 35.1)\n\
            resnet18 params 11689512 batch 16: 29.5 images/s (median 542.4 ms, min 530.0, max 560.2)\n\
            resnet50 params 25557032 batch 1: 12.1 images/s (median 82.6 ms, min 80.0, max 90.0)\n";
        assert_eq!(parse_infer(infer, "resnet18"), [(1, 29.5), (16, 29.5)]);
        assert_eq!(parse_infer(infer, "resnet50"), [(1, 12.1)]);
        assert!(parse_infer(infer, "vgg16").is_empty());
        assert_eq!(
            parse_lenet("Traceback (most recent call last):\n"),
            LenetOutput::default()
        );
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
