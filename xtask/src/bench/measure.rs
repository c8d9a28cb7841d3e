//! The one timing loop of the bench ([`measure`]) and its repetition
//! policies ([`Reps`]).
//!
//! **Warm-up rule**: before timing, `f` runs untimed at least
//! [`Reps::warmup`] times and, when `warmup > 0`, until [`WARMUP_SHARE`] of
//! the time budget has passed (never more than [`Reps::max`] runs), so that
//! a 4 ms step warms up (allocator, caches, thread pool) for as long as a
//! 1 s step does. Then timed runs follow until at least [`Reps::min`] runs
//! and the budget are reached, or [`Reps::max`] runs.

use std::time::Instant;

use anyhow::Context;

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

impl Timing {
    /// Median, min and max of run times (sorted in place); `None` if empty.
    pub fn from_runs(times: &mut [f64]) -> Option<Timing> {
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
}

/// Repetition policy: warm-up runs, then timed runs until both a minimum
/// count and a time budget are reached (or a maximum count).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reps {
    /// Untimed runs first (and, if above 0, [`WARMUP_SHARE`] of the budget).
    pub warmup: usize,
    /// At least this many timed runs.
    pub min: usize,
    /// At most this many timed runs (and warm-up runs).
    pub max: usize,
    /// Keep repeating until this much time (seconds) was spent timing.
    pub budget_s: f64,
}

/// Share of the time budget spent warming up (when `warmup > 0`).
pub const WARMUP_SHARE: f64 = 0.1;

impl Reps {
    /// The policy of the sgemm peak and of the conv2d kernel rows, for a
    /// normal or a `--quick` run.
    pub fn kernels(quick: bool) -> Reps {
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

    /// The policy of a train or infer row: at least 3 timed runs and the
    /// budget (capped), so that a 4 ms LeNet-5 step gets hundreds of runs
    /// over 2 s and a 4 s VGG-16 batch gets three.
    pub fn models(quick: bool) -> Reps {
        if quick {
            Reps {
                warmup: 1,
                min: 3,
                max: 100,
                budget_s: 0.3,
            }
        } else {
            Reps {
                warmup: 1,
                min: 3,
                max: 1000,
                budget_s: 2.0,
            }
        }
    }
}

/// Times `f` under the repetition policy (see the module's warm-up rule).
/// The first error stops the measurement and is returned.
pub fn measure(reps: Reps, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Timing> {
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
    Timing::from_runs(&mut times).context("no timed run (max repetitions is 0)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    #[test]
    fn timings_of_runs() {
        assert_eq!(Timing::from_runs(&mut []), None);
        let t = Timing::from_runs(&mut [3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((t.median_s, t.min_s, t.max_s, t.reps), (2.5, 1.0, 10.0, 4));
        let t = Timing::from_runs(&mut [4.0]).unwrap();
        assert_eq!((t.median_s, t.min_s, t.max_s), (4.0, 4.0, 4.0));
    }

    #[test]
    fn measure_respects_counts() {
        let reps = Reps {
            warmup: 2,
            min: 3,
            max: 3,
            budget_s: 0.0,
        };
        let mut calls = 0;
        let t = measure(reps, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, t.reps), (5, 3));
        assert!(t.min_s <= t.median_s && t.median_s <= t.max_s);
        let never = Reps { max: 0, ..reps };
        assert!(measure(never, || Ok(())).is_err());
    }

    #[test]
    fn the_warm_up_lasts_a_share_of_the_budget() {
        // 1 ms runs, a 0.2 s budget: at least 20 ms of warm-up, so more
        // warm-up runs than the one asked for, and never above `max`.
        let reps = Reps {
            warmup: 1,
            min: 1,
            max: 1000,
            budget_s: 0.2,
        };
        let sleep = || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(())
        };
        // When each call started: the warm-up lasts until the first timed
        // call, whatever the load makes of the 1 ms sleeps (at most 20 runs).
        let mut starts = Vec::new();
        let t = measure(reps, || {
            starts.push(Instant::now());
            sleep()
        })
        .unwrap();
        let warm = starts.len() - t.reps;
        assert!((2..=20).contains(&warm), "{warm} warm-up runs");
        let warm_s = (starts[warm] - starts[0]).as_secs_f64();
        assert!(warm_s >= 0.02, "the warm-up lasted {warm_s} s");
        let capped = Reps { max: 4, ..reps };
        let mut calls = 0;
        let t = measure(capped, || {
            calls += 1;
            sleep()
        })
        .unwrap();
        assert_eq!((calls, t.reps), (8, 4));
        // No warm-up asked: none.
        let cold = Reps {
            warmup: 0,
            ..capped
        };
        let mut calls = 0;
        measure(cold, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 4);
    }

    #[test]
    fn measures_stop_at_the_first_error() {
        let reps = Reps {
            warmup: 1,
            min: 5,
            max: 5,
            budget_s: 0.0,
        };
        let mut calls = 0;
        let e = measure(reps, || {
            calls += 1;
            if calls == 3 {
                bail!("boom")
            }
            Ok(())
        });
        assert_eq!(e.unwrap_err().to_string(), "boom");
        assert_eq!(calls, 3);
    }
}
