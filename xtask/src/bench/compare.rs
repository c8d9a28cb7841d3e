//! `--compare FILE`: this run against an earlier `--json` file, row by row.
//!
//! Rows are matched by name. The ratio printed is old time over new time
//! (above 1: faster now), of the medians and of the fastest runs. A row is
//! flagged `REGRESSION` when both its median and its fastest run are more
//! than [`REGRESSION_THRESHOLD`] slower than before: other processes on a
//! shared machine inflate the median of a run much more than its fastest
//! run, while slower code slows both. Rows present on one side only are
//! listed, as are rows whose batch changed (not comparable).

use super::json::Record;
use super::report::ms;

/// A row is a regression when its median time grew by more than this
/// fraction (0.10: more than 10% slower).
pub const REGRESSION_THRESHOLD: f64 = 0.10;

/// One row present in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RowComparison {
    /// Row name.
    pub name: String,
    /// Median seconds before.
    pub old_s: f64,
    /// Median seconds now.
    pub new_s: f64,
    /// `old_s / new_s`: above 1 is faster now.
    pub speedup: f64,
    /// The same ratio of the fastest runs.
    pub min_speedup: f64,
    /// Median and fastest run both more than [`REGRESSION_THRESHOLD`] slower.
    pub regression: bool,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// Rows in both runs, in the new run's order.
    pub rows: Vec<RowComparison>,
    /// Rows only in the old run (among those the filter selects).
    pub only_old: Vec<String>,
    /// Rows only in the new run.
    pub only_new: Vec<String>,
    /// Rows in both whose batch differs: `(name, old batch, new batch)`.
    pub batch_changed: Vec<(String, usize, usize)>,
}

impl Comparison {
    /// Names of the regressed rows.
    pub fn regressions(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// Compares `new` with `old`, row by row; old rows that `selects` rejects
/// (not asked for in this run) are not reported missing.
pub fn compare(old: &[Record], new: &[Record], selects: impl Fn(&str) -> bool) -> Comparison {
    let mut c = Comparison::default();
    for n in new {
        match old.iter().find(|o| o.name == n.name) {
            None => c.only_new.push(n.name.clone()),
            Some(o) if o.batch != n.batch => {
                c.batch_changed.push((n.name.clone(), o.batch, n.batch))
            }
            Some(o) => {
                let slower = |old: f64, new: f64| new > old * (1.0 + REGRESSION_THRESHOLD);
                let regression = slower(o.median_s, n.median_s) && slower(o.min_s, n.min_s);
                c.rows.push(RowComparison {
                    name: n.name.clone(),
                    old_s: o.median_s,
                    new_s: n.median_s,
                    speedup: o.median_s / n.median_s,
                    min_speedup: o.min_s / n.min_s,
                    regression,
                });
            }
        }
    }
    c.only_old = old
        .iter()
        .filter(|o| selects(&o.name) && !new.iter().any(|n| n.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    c
}

/// Prints the comparison table against `origin` (the old file's name and
/// commit).
pub fn print(c: &Comparison, origin: &str) {
    println!(
        "\ncompared with {origin}\n  (ratio = old time / new time, above 1 is faster now; REGRESSION = median and fastest run both more than {:.0}% slower)",
        REGRESSION_THRESHOLD * 100.0
    );
    println!(
        "  {:<34} {:>12} {:>12} {:>7} {:>9}",
        "row", "old ms", "new ms", "ratio", "min ratio"
    );
    for r in &c.rows {
        println!(
            "  {:<34} {:>12} {:>12} {:>7.2} {:>9.2}{}",
            r.name,
            ms(r.old_s),
            ms(r.new_s),
            r.speedup,
            r.min_speedup,
            if r.regression { "  REGRESSION" } else { "" }
        );
    }
    for (name, old, new) in &c.batch_changed {
        println!("  {name:<34} not comparable: batch {old} before, {new} now");
    }
    if !c.only_new.is_empty() {
        println!(
            "  new rows (not in the old file): {}",
            c.only_new.join(", ")
        );
    }
    if !c.only_old.is_empty() {
        println!(
            "  missing rows (in the old file only): {}",
            c.only_old.join(", ")
        );
    }
    let regressions = c.regressions();
    if regressions.is_empty() {
        println!("  no regression over {:.0}%", REGRESSION_THRESHOLD * 100.0);
    } else {
        println!(
            "  {} regression(s) over {:.0}%: {}",
            regressions.len(),
            REGRESSION_THRESHOLD * 100.0,
            regressions.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, batch: usize, median_s: f64) -> Record {
        timed(name, batch, median_s, median_s)
    }

    fn timed(name: &str, batch: usize, median_s: f64, min_s: f64) -> Record {
        Record {
            name: name.into(),
            kind: "infer".into(),
            pass: None,
            batch,
            shape: "3x224x224".into(),
            median_s,
            min_s,
            max_s: median_s,
            reps: 3,
            images_per_s: Some(batch as f64 / median_s),
            flops: 0.0,
            gflops: None,
            peak_fraction: None,
            peak_rss_bytes: None,
        }
    }

    #[test]
    fn flags_rows_more_than_ten_percent_slower() {
        let old = [
            rec("a", 1, 1.0),
            rec("b", 1, 1.0),
            rec("c", 1, 1.0),
            rec("d", 1, 1.0),
        ];
        let new = [
            rec("a", 1, 1.05), // 5% slower: noise
            rec("b", 1, 1.2),  // 20% slower
            rec("c", 1, 0.5),  // twice as fast
            rec("d", 1, 1.11), // just over the threshold
        ];
        let c = compare(&old, &new, |_| true);
        assert_eq!(c.regressions(), ["b", "d"]);
        let speedups: Vec<f64> = c.rows.iter().map(|r| r.speedup).collect();
        assert!((speedups[0] - 1.0 / 1.05).abs() < 1e-12);
        assert!((speedups[2] - 2.0).abs() < 1e-12);
        assert!(c.only_old.is_empty() && c.only_new.is_empty());
    }

    #[test]
    fn a_slower_median_with_an_unchanged_fastest_run_is_noise() {
        let old = [timed("busy", 1, 1.0, 0.9), timed("slow", 1, 1.0, 0.9)];
        let new = [
            timed("busy", 1, 1.5, 0.92), // contention: the median grew, the best run did not
            timed("slow", 1, 1.5, 1.2),  // slower code: both grew
        ];
        let c = compare(&old, &new, |_| true);
        assert_eq!(c.regressions(), ["slow"]);
        assert!((c.rows[0].min_speedup - 0.9 / 0.92).abs() < 1e-12);
    }

    #[test]
    fn lists_rows_on_one_side_and_changed_batches() {
        let old = [
            rec("kept", 1, 1.0),
            rec("gone", 1, 1.0),
            rec("filtered.out", 1, 1.0),
            rec("rebatched", 8, 1.0),
        ];
        let new = [
            rec("kept", 1, 1.0),
            rec("added", 1, 1.0),
            rec("rebatched", 16, 3.0),
        ];
        let c = compare(&old, &new, |n| !n.starts_with("filtered"));
        assert_eq!(c.only_new, ["added"]);
        assert_eq!(c.only_old, ["gone"]);
        assert_eq!(c.batch_changed, [("rebatched".to_string(), 8, 16)]);
        assert_eq!(c.rows.len(), 1);
        assert!(
            c.regressions().is_empty(),
            "a changed batch is not a regression"
        );
    }
}
