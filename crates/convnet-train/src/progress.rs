//! Progress reporting: an indicatif bar on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::callback::{BatchReport, Callback};
use crate::error::Result;
use crate::history::{EpochRecord, History};
use crate::trainer::EvalReport;

/// Formats seconds as `m:ss` (or `h:mm:ss`).
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A rate or count with thousands separators, rounded to an integer
/// (negative values count as 0): `12345.4` -> `"12,345"`. The separator is
/// [`convnet_tensor::format::thousands`]'s.
pub fn thousands(v: f64) -> String {
    convnet_tensor::format::thousands(v.max(0.0).round() as u64)
}

/// One line summing up an epoch.
pub fn epoch_line(record: &EpochRecord, epochs: usize) -> String {
    let mut s = format!(
        "epoch {}/{epochs}: train loss {:.4} acc {:.2}%",
        record.epoch,
        record.train_loss,
        100.0 * record.train_accuracy
    );
    if let (Some(loss), Some(acc)) = (record.test_loss, record.test_accuracy) {
        s.push_str(&format!(" | test loss {loss:.4} acc {:.2}%", 100.0 * acc));
        if let Some(top5) = record.test_top5 {
            s.push_str(&format!(" top-5 {:.2}%", 100.0 * top5));
        }
    }
    s.push_str(&format!(
        " | {:.1} s, {} img/s, lr {:.3e}",
        record.train_seconds + record.eval_seconds,
        thousands(record.images_per_second),
        record.lr
    ));
    s
}

enum Mode {
    Bar(Option<ProgressBar>),
    Plain {
        out: Box<dyn Write + Send>,
        last: Option<Instant>,
    },
    Quiet,
}

/// Reports training progress.
///
/// - On a terminal: an indicatif bar per epoch showing batch, loss, running
///   accuracy, images/s and ETA, then one summary line per epoch.
/// - Otherwise (a log file, CI): plain lines such as
///   `epoch 3/10 batch 200/938 loss 0.1234 acc 96.50% 11,234 img/s ETA 0:41`,
///   every tenth of an epoch (but at most one line per 2 seconds, and at
///   least one per 30 seconds), then the summary line.
pub struct ProgressPrinter {
    mode: Mode,
    epochs: usize,
}

impl std::fmt::Debug for ProgressPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Bar(_) => "bar",
            Mode::Plain { .. } => "plain",
            Mode::Quiet => "quiet",
        };
        f.debug_struct("ProgressPrinter")
            .field("mode", &mode)
            .finish()
    }
}

impl ProgressPrinter {
    /// A bar if stdout is a terminal, plain lines on stdout otherwise.
    pub fn auto() -> Self {
        if std::io::stdout().is_terminal() {
            Self::bar()
        } else {
            Self::plain(Box::new(std::io::stdout()))
        }
    }

    /// Always an indicatif bar (on stdout).
    pub fn bar() -> Self {
        ProgressPrinter {
            mode: Mode::Bar(None),
            epochs: 0,
        }
    }

    /// Plain lines written to `out`.
    pub fn plain(out: Box<dyn Write + Send>) -> Self {
        ProgressPrinter {
            mode: Mode::Plain { out, last: None },
            epochs: 0,
        }
    }

    /// Only the per-epoch summary lines, on stdout.
    pub fn quiet() -> Self {
        ProgressPrinter {
            mode: Mode::Quiet,
            epochs: 0,
        }
    }

    fn line(&mut self, text: &str) {
        match &mut self.mode {
            Mode::Bar(Some(bar)) => bar.println(text),
            Mode::Plain { out, .. } => {
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            _ => println!("{text}"),
        }
    }
}

impl Callback for ProgressPrinter {
    fn on_epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) -> Result<()> {
        self.epochs = epochs;
        match &mut self.mode {
            Mode::Bar(bar) => {
                let b = ProgressBar::with_draw_target(
                    Some(batches as u64),
                    ProgressDrawTarget::stdout_with_hz(8),
                );
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(format!("epoch {epoch}/{epochs}"));
                *bar = Some(b);
            }
            Mode::Plain { last, .. } => *last = Some(Instant::now()),
            Mode::Quiet => {}
        }
        Ok(())
    }

    fn on_batch_end(&mut self, r: &BatchReport) -> Result<()> {
        match &mut self.mode {
            Mode::Bar(Some(bar)) => {
                bar.set_position(r.batch as u64);
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}% {} img/s",
                    r.loss,
                    100.0 * r.accuracy,
                    thousands(r.images_per_second)
                ));
            }
            Mode::Plain { out, last } => {
                // Every tenth of the epoch, but not more often than every 2 s,
                // and at least every 30 s; never on the last batch (the
                // summary line follows).
                let tenth = (r.batches / 10).max(1);
                let since = last.map(|t| t.elapsed()).unwrap_or_default();
                let due = (r.batch % tenth == 0 && since >= Duration::from_secs(2))
                    || since >= Duration::from_secs(30);
                if due && r.batch < r.batches {
                    let _ = writeln!(
                        out,
                        "epoch {}/{} batch {}/{} loss {:.4} acc {:.2}% {} img/s ETA {}",
                        r.epoch,
                        r.epochs,
                        r.batch,
                        r.batches,
                        r.loss,
                        100.0 * r.accuracy,
                        thousands(r.images_per_second),
                        format_duration(r.eta)
                    );
                    let _ = out.flush();
                    *last = Some(Instant::now());
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_eval_start(&mut self, _epoch: usize) -> Result<()> {
        if let Mode::Bar(Some(bar)) = &self.mode {
            bar.set_message("evaluating on the test set...");
        }
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        record: &EpochRecord,
        _eval: Option<&EvalReport>,
        _history: &History,
    ) -> Result<()> {
        let line = epoch_line(record, self.epochs);
        if let Mode::Bar(bar) = &mut self.mode {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
        self.line(&line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12345.4), "12,345");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(format_duration(61.0), "1:01");
        assert_eq!(format_duration(3725.0), "1:02:05");
    }

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_mode_prints_the_epoch_summary() {
        let out = Shared::default();
        let mut p = ProgressPrinter::plain(Box::new(out.clone()));
        p.on_epoch_start(2, 3, 10).unwrap();
        for b in 1..=10 {
            p.on_batch_end(&BatchReport {
                epoch: 2,
                epochs: 3,
                batch: b,
                batches: 10,
                loss: 0.5,
                accuracy: 0.9,
                images_per_second: 12345.0,
                elapsed: 1.0,
                eta: 0.0,
                lr: 0.01,
            })
            .unwrap();
        }
        let record = EpochRecord {
            epoch: 2,
            train_loss: 0.25,
            train_accuracy: 0.9,
            test_loss: Some(0.2),
            test_accuracy: Some(0.95),
            test_top5: Some(0.999),
            lr: 0.01,
            train_seconds: 4.0,
            eval_seconds: 1.0,
            images_per_second: 15000.0,
        };
        p.on_epoch_end(&record, None, &History::default()).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        // Fast batches print no intermediate line (at most one per 2 s).
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("epoch 2/3: train loss 0.2500 acc 90.00% | test loss 0.2000 acc 95.00% top-5 99.90% | 5.0 s, 15,000 img/s"),
            "{text}"
        );
    }
}
