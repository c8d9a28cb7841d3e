//! One job per process: the parent re-runs its own executable with the
//! hidden `--run-row JOB` flag; the child measures that job, reads its own
//! peak resident memory, and prints its rows as JSON lines on stdout
//! ([`super::json::ROW_PREFIX`]). A row's peak memory is thus its own, not
//! that of the rows measured before it, and a crash in one model's code
//! fails one row, not the whole run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use super::json::{parse_row_lines, row_line};
use super::plan::{self, Job};
use super::{infer, kernels, memory, train, Options, Peak, Reps, Row, Timing};

/// The peak a child computes its rows with: the parent, which measured the
/// real one, recomputes `peak_fraction` (see [`with_peak`]).
pub const UNIT_PEAK: Peak = Peak {
    n: 0,
    best_gflops: 1.0,
    median_gflops: 1.0,
};

/// Median, min and max of run times (sorted in place); `None` if empty.
pub fn timing_from_runs(times: &mut [f64]) -> Option<Timing> {
    if times.is_empty() {
        return None;
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median_s = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    Some(Timing {
        median_s,
        min_s: times[0],
        max_s: times[n - 1],
        reps: n,
    })
}

/// Share of the time budget spent warming up (at least `reps.warmup` runs).
pub const WARMUP_SHARE: f64 = 0.1;

/// Like [`super::measure`], for a fallible run: the first error stops the
/// measurement and is returned. The warm-up lasts `reps.warmup` runs and,
/// if `reps.warmup > 0`, at least [`WARMUP_SHARE`] of the time budget, so
/// that a 4 ms step warms up (allocator, caches, thread pool) for 0.2 s
/// like a 1 s step does.
pub fn measure_fallible(
    reps: Reps,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    let warm_start = Instant::now();
    let mut warm = 0;
    while warm < reps.warmup
        || (reps.warmup > 0
            && warm < reps.max
            && warm_start.elapsed().as_secs_f64() < reps.budget_s * WARMUP_SHARE)
    {
        f()?;
        warm += 1;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < reps.max
        && (times.len() < reps.min || start.elapsed().as_secs_f64() < reps.budget_s)
    {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    timing_from_runs(&mut times).context("no timed run (max repetitions is 0)")
}

/// The row with its `peak_fraction` against the real peak.
pub fn with_peak(mut row: Row, peak: &Peak) -> Row {
    row.peak_fraction = if row.flops > 0.0 {
        row.gflops / peak.best_gflops
    } else {
        0.0
    };
    row
}

/// The child side: measures `job_name` and prints its rows.
pub fn run_child(opts: &Options, job_name: &str) -> anyhow::Result<()> {
    let job = Job::parse(job_name)?;
    let name = job.name();
    let reps = plan::model_reps(opts.quick);
    let rows = match &job {
        Job::Kernel { case } => kernel_rows(opts, case)?,
        Job::TrainStep { model, batch } => vec![train::train_step(&name, model, *batch, reps)?],
        Job::TrainEpoch { model, batch } => {
            let (warmup, runs) = plan::epoch_runs(opts.quick);
            vec![train::train_epoch(
                &name,
                model,
                *batch,
                opts.data_dir.as_deref(),
                warmup,
                runs,
            )?]
        }
        Job::Infer { model, batch } => vec![infer::infer(&name, model, *batch, reps)?],
    };
    let peak_rss = memory::peak_rss_bytes();
    for mut row in rows {
        row.peak_rss_bytes = peak_rss;
        println!("{}", row_line(&row)?);
    }
    Ok(())
}

/// The forward and backward rows of one conv case of the kernel table.
fn kernel_rows(opts: &Options, case: &str) -> anyhow::Result<Vec<Row>> {
    let only = Options {
        filter: Some(case.to_string()),
        ..opts.clone()
    };
    let reps = Reps::for_run(opts.quick);
    let table = kernels::conv2d_table(&only, reps, &UNIT_PEAK, |_| {})?;
    let rows: Vec<Row> = table.rows.into_iter().filter(|r| r.name == case).collect();
    if rows.is_empty() {
        bail!(
            "no conv case named `{case}` (cases: {})",
            kernels::case_names().join(", ")
        );
    }
    Ok(rows)
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
    args
}

/// The parent side: runs `job` in a child process and returns its rows
/// (with the child's peak memory, and `peak_fraction` still against
/// [`UNIT_PEAK`]). A child that fails gives an error carrying the end of its
/// stderr.
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

    #[test]
    fn child_arguments_parse_back_to_the_same_settings() {
        let opts = Options {
            quick: true,
            threads: Some(2),
            data_dir: Some(PathBuf::from("/data dir")),
            filter: Some("lenet".into()),
            json: true,
            ..Options::default()
        };
        let job = Job::Infer {
            model: "lenet5".into(),
            batch: 256,
        };
        let args = child_args(&opts, &job);
        assert_eq!(args[0], "bench");
        let back = Options::parse(&args[1..]).unwrap().unwrap();
        assert_eq!(back.run_row.as_deref(), Some("infer.lenet5.b256"));
        assert_eq!((back.quick, back.threads), (true, Some(2)));
        assert_eq!(back.data_dir, opts.data_dir);
        // The child writes no file and filters nothing: the parent does.
        assert!(!back.json && back.filter.is_none());
    }

    #[test]
    fn timings_of_runs() {
        assert_eq!(timing_from_runs(&mut []), None);
        let t = timing_from_runs(&mut [3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((t.median_s, t.min_s, t.max_s, t.reps), (2.5, 1.0, 10.0, 4));
        let t = timing_from_runs(&mut [4.0]).unwrap();
        assert_eq!((t.median_s, t.min_s, t.max_s), (4.0, 4.0, 4.0));
    }

    #[test]
    fn fallible_measures_stop_at_the_first_error() {
        let reps = Reps {
            warmup: 1,
            min: 5,
            max: 5,
            budget_s: 0.0,
        };
        let mut calls = 0;
        let t = measure_fallible(reps, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, t.reps), (6, 5));
        let mut calls = 0;
        let e = measure_fallible(reps, || {
            calls += 1;
            if calls == 3 {
                bail!("boom")
            }
            Ok(())
        });
        assert_eq!(e.unwrap_err().to_string(), "boom");
        assert_eq!(calls, 3);
    }

    #[test]
    fn peak_fraction_is_recomputed_against_the_real_peak() {
        let t = Timing {
            median_s: 1.0,
            min_s: 1.0,
            max_s: 1.0,
            reps: 1,
        };
        let row = Row::new(
            "x",
            super::super::Kind::Forward,
            1,
            String::new(),
            t,
            50e9,
            &UNIT_PEAK,
        );
        let peak = Peak {
            n: 512,
            best_gflops: 200.0,
            median_gflops: 150.0,
        };
        assert!((with_peak(row, &peak).peak_fraction - 0.25).abs() < 1e-12);
    }
}
