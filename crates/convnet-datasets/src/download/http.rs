//! Fetching one URL into a temporary file, with a progress bar on a terminal
//! and plain log lines otherwise.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tempfile::NamedTempFile;

use super::{DownloadOptions, Progress};

/// Downloads `url` into a new temporary file in `dir` (deleted when dropped
/// unless persisted). At most `max_len` bytes are accepted. The error is a
/// one-line description for the caller's report.
pub(crate) fn fetch_to_temp(
    url: &str,
    dir: &Path,
    label: &str,
    max_len: u64,
    opts: &DownloadOptions,
) -> Result<NamedTempFile, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .user_agent(concat!("convnet-datasets/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total = response.body().content_length();
    if let Some(total) = total {
        if total > max_len {
            return Err(format!(
                "the server announces {total} bytes, more than the {max_len} this file can take"
            ));
        }
    }
    let mut body = response.body_mut().with_config().limit(max_len).reader();

    let mut tmp = crate::files::temp_file_in(dir, &format!(".{label}."))
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let bar = progress_bar(label, total, opts.progress);
    if let Report::Log = bar {
        eprintln!(
            "downloading {url} ({})",
            total.map_or("size unknown".to_string(), human_bytes)
        );
    }
    let start = Instant::now();
    let mut written: u64 = 0;
    {
        let mut out = BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    return Err(format!("the download broke off after {written} bytes: {e}"));
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
            written += n as u64;
            bar.inc(n as u64);
        }
        out.flush()
            .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    }
    bar.finish();
    if let Report::Log = bar {
        eprintln!(
            "downloaded {label}: {} in {:.1} s",
            human_bytes(written),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(tmp)
}

/// How progress is shown for one download.
enum Report {
    Bar(ProgressBar),
    Log,
    Quiet,
}

impl Report {
    fn inc(&self, n: u64) {
        if let Report::Bar(b) = self {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Report::Bar(b) = self {
            b.finish();
        }
    }
    fn abandon(&self) {
        if let Report::Bar(b) = self {
            b.abandon();
        }
    }
}

fn progress_bar(label: &str, total: Option<u64>, mode: Progress) -> Report {
    let use_bar = match mode {
        Progress::Quiet => return Report::Quiet,
        Progress::Log => false,
        Progress::Bar => true,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    if !use_bar {
        return Report::Log;
    }
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{msg:32} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta}"
    } else {
        "{msg:32} {spinner} {bytes:>10} {bytes_per_sec:>12}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    Report::Bar(bar)
}

pub(crate) use convnet_tensor::memory::human_bytes;
