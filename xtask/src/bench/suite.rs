//! The parent side of `cargo xtask bench`: the header and the sgemm peak
//! (measured here), then every job of the [`plan`] in its own child process,
//! printed table by table as the rows arrive; then the PyTorch comparison
//! (`--with-torch`), the JSON files (`--json`) and the comparison with an
//! earlier file (`--compare`).

use std::time::Instant;

use anyhow::bail;
use convnet::zoo::MODELS;

use super::json::{self, BenchFile, Record, Skipped};
use super::measure::Reps;
use super::options::Options;
use super::plan::{self, Group, Job};
use super::row::{Report, Table};
use super::system::{self, load_average};
use super::{child, compare, kernels, models, report, torch};

/// Runs the whole bench.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let start = Instant::now();
    // A bad comparison file fails now, not after a 15-minute run.
    let baseline = match &opts.compare {
        Some(path) => Some((path, BenchFile::read(path)?)),
        None => None,
    };
    let header = system::header(opts.quick);
    report::print_header(&header);
    let load_before = load_average();
    if let Some(load) = load_before {
        println!("  load     {load:.2} (1-minute average before the run)");
    }
    let peak = system::sgemm_peak(Reps::kernels(opts.quick))?;
    report::print_peak(&peak);
    println!("  (every row below runs in its own process: \"peak MB\" is that process's peak resident memory, VmHWM, in 10^6 bytes)");

    let jobs = plan::plan(opts, &kernels::case_names(), MODELS);
    let mnist = models::find_mnist(opts.data_dir.as_deref());
    let mut torch = if opts.with_torch {
        match torch::Torch::locate(header.threads, opts.quick) {
            Ok(t) => Some(t),
            Err(e) => {
                println!("\nnote: --with-torch: {e:#}; PyTorch figures left out");
                None
            }
        }
    } else {
        None
    };

    let mut report = Report {
        header,
        peak,
        tables: Vec::new(),
    };
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut failed: Vec<Skipped> = Vec::new();
    let mut group: Option<Group> = None;
    for (index, job) in jobs.iter().enumerate() {
        if group != Some(job.group()) {
            group = Some(job.group());
            report::print_title(job.group());
            report.tables.push(Table {
                title: report::title(job.group()).to_string(),
                rows: Vec::new(),
            });
        }
        let name = job.name();
        if matches!(job, Job::TrainEpoch { .. }) && mnist.is_none() {
            let reason = format!(
                "MNIST not found in {} (`cargo xtask download mnist` fetches it)",
                models::MNIST_PLACES
            );
            println!("  {name:<28} skipped: {reason}");
            skipped.push(Skipped { name, reason });
            continue;
        }
        match child::spawn(opts, job) {
            Ok(rows) => {
                let table = report.tables.last_mut().expect("a table was pushed");
                for row in rows {
                    let row = row.with_peak(&report.peak);
                    if opts.selects(&Record::from_row(&row).name) {
                        report::print_group_row(job.group(), &row);
                        table.rows.push(row);
                    }
                }
            }
            Err(e) => {
                println!("  {name:<28} FAILED: {e:#}");
                failed.push(Skipped {
                    name,
                    reason: format!("{e:#}"),
                });
            }
        }
        if let Some(t) = torch.as_mut() {
            for line in t.after_job(&jobs, index, mnist.as_deref()) {
                println!("{line}");
            }
        }
    }
    if jobs.is_empty() {
        println!(
            "\n(no row matches --filter {:?})",
            opts.filter.clone().unwrap_or_default()
        );
    }

    let all_rows: Vec<_> = report.tables.iter().flat_map(|t| t.rows.clone()).collect();
    report::print_model_summaries(&report::model_summaries(&all_rows));
    let mut file = BenchFile::new(&report);
    file.load_average = load_before.zip(load_average()).map(|(a, b)| [a, b]);
    if let Some([before, after]) = file.load_average {
        let busy = before.max(after) > 0.5 + report.header.threads as f64;
        println!(
            "\nload average {before:.2} before, {after:.2} after{}",
            if busy {
                ": other processes used the CPU during the run, expect noisy figures"
            } else {
                ""
            }
        );
    }
    file.skipped = skipped;
    file.failed = failed.clone();
    if let Some(t) = &torch {
        let run = t.finish(&all_rows);
        torch::print_table(&run);
        file.torch = Some(run);
    }
    if let Some((path, old)) = &baseline {
        let c = compare::compare(&old.rows, &file.rows, |n| opts.selects(n));
        let origin = format!(
            "{} (commit {}, {}{})",
            path.display(),
            old.header.commit,
            old.header.date,
            if old.header.quick { ", --quick" } else { "" }
        );
        compare::print(&c, &origin);
    }
    if opts.json {
        let paths = file.write(&json::default_dir())?;
        println!("\nwrote {} and {}", paths[0].display(), paths[1].display());
    }
    println!(
        "\nbench took {}",
        report::duration(start.elapsed().as_secs_f64())
    );
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|f| f.name.as_str()).collect();
        bail!("{} row(s) failed: {}", failed.len(), names.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_missing_comparison_file_fails_before_measuring() {
        let opts = Options {
            compare: Some(PathBuf::from("/nonexistent/old.json")),
            ..Options::default()
        };
        let e = run(&opts).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/old.json"), "{e:#}");
    }
}
