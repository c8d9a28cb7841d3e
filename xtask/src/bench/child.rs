//! One job per process: the parent re-runs its own executable with the
//! hidden `--run-row JOB` flag; the child measures that job, reads its own
//! peak resident memory, and prints its rows as JSON lines on stdout
//! ([`super::json::ROW_PREFIX`]). A row's peak memory is thus its own, not
//! that of the rows measured before it, and a crash in one model's code
//! fails one row, not the whole run.
//!
//! A child knows nothing of the sgemm peak: its rows' `peak_fraction` is 0
//! until the parent sets it ([`super::row::Row::with_peak`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::json::{parse_row_lines, row_line};
use super::measure::Reps;
use super::options::Options;
use super::plan::{self, Job};
use super::row::Row;
use super::system::peak_rss_bytes;
use super::{kernels, models};

/// The child side: measures `job_name` and prints its rows.
pub fn run_child(opts: &Options, job_name: &str) -> anyhow::Result<()> {
    let job = Job::parse(job_name)?;
    let name = job.name();
    let reps = Reps::models(opts.quick);
    let rows = match &job {
        Job::Kernel { case } => kernels::conv_rows(case, Reps::kernels(opts.quick))?,
        Job::TrainStep { model, batch } => vec![models::train_step(&name, model, *batch, reps)?],
        Job::TrainEpoch { model, batch } => {
            let (warmup, runs) = plan::epoch_runs(opts.quick);
            vec![models::train_epoch(
                &name,
                model,
                *batch,
                opts.data_dir.as_deref(),
                warmup,
                runs,
            )?]
        }
        Job::Infer { model, batch } => vec![models::infer(&name, model, *batch, reps)?],
    };
    let peak_rss = peak_rss_bytes();
    for mut row in rows {
        row.peak_rss_bytes = peak_rss;
        println!("{}", row_line(&row)?);
    }
    Ok(())
}

/// The executable the children run: on Linux `/proc/self/exe`, which stays
/// this process's own image even when `cargo build` replaces (or deletes)
/// `target/release/xtask` during a run, so that every row of a run is
/// measured by the same code; elsewhere the executable's path.
pub fn own_executable() -> anyhow::Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().context("finding the xtask executable")
}

/// The arguments that make the xtask executable run `job` as a child with
/// the parent's settings.
pub fn child_args(opts: &Options, job: &Job) -> Vec<String> {
    let mut args = vec!["bench".to_string(), "--run-row".to_string(), job.name()];
    if opts.quick {
        args.push("--quick".into());
    }
    if let Some(n) = opts.threads {
        args.extend(["--threads".to_string(), n.to_string()]);
    }
    if let Some(dir) = &opts.data_dir {
        args.extend(["--data-dir".to_string(), dir.display().to_string()]);
    }
    if let Some(level) = opts.simd {
        args.extend(["--simd".to_string(), level.name().to_string()]);
    }
    args
}

/// The parent side: runs `job` in a child process and returns its rows
/// (with the child's peak memory, and no `peak_fraction` yet). A child that
/// fails gives an error carrying the end of its stderr.
pub fn spawn(opts: &Options, job: &Job) -> anyhow::Result<Vec<Row>> {
    let exe = own_executable()?;
    let out = Command::new(&exe)
        .args(child_args(opts, job))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("child process {} ({})", out.status, tail.join(" / "));
    }
    // Warnings (e.g. FLOPs not counted) go on to the user.
    eprint!("{stderr}");
    let rows = parse_row_lines(&String::from_utf8_lossy(&out.stdout))?;
    if rows.is_empty() {
        bail!("the child process printed no row");
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use convnet::tensor::simd::SimdLevel;

    #[test]
    fn child_arguments_parse_back_to_the_same_settings() {
        let opts = Options {
            quick: true,
            threads: Some(2),
            data_dir: Some(PathBuf::from("/data dir")),
            filter: Some("lenet".into()),
            json: true,
            simd: Some(SimdLevel::Baseline),
            ..Options::default()
        };
        let job = Job::Infer {
            model: "lenet5".into(),
            batch: 256,
        };
        let args = child_args(&opts, &job);
        // As the child's command line parses them, subcommand first.
        let cli =
            crate::Cli::try_parse_from(std::iter::once("xtask".to_string()).chain(args)).unwrap();
        let crate::Task::Bench(back) = cli.task else {
            panic!("not the bench task: {cli:?}");
        };
        assert_eq!(back.run_row.as_deref(), Some("infer.lenet5.b256"));
        assert_eq!((back.quick, back.threads), (true, Some(2)));
        assert_eq!(back.data_dir, opts.data_dir);
        assert_eq!(back.simd, Some(SimdLevel::Baseline));
        // The child writes no file and filters nothing: the parent does.
        assert!(!back.json && back.filter.is_none());
    }

    #[test]
    fn a_child_job_name_must_be_known() {
        let opts = Options::default();
        let e = run_child(&opts, "fit.lenet5.b1").unwrap_err().to_string();
        assert!(e.contains("bad job name"), "{e}");
        let e = run_child(&opts, "kernel.nope").unwrap_err().to_string();
        assert!(e.contains("no conv case named `nope`"), "{e}");
    }
}
