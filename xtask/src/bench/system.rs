//! The machine: its description at the top of a report ([`Header`]), its
//! reference speed ([`Peak`], measured with [`super::measure`]), its load,
//! a process's peak memory, and where the workspace is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use convnet::tensor::format::utc_date;
use convnet::tensor::kernels::gemm::{gemm_parallel, Trans};
use convnet::tensor::Rng;
use serde::{Deserialize, Serialize};

use super::measure::{measure, Reps};

/// Where and when the numbers were measured (written to JSON as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Threads of rayon's pool used for the run.
    pub threads: usize,
    /// The SIMD level the kernels ran at: `avx512`, `avx2+fma`, `baseline`
    /// (with the CPU's widest in brackets when `--simd` chose a narrower one).
    pub simd: String,
    /// `git rev-parse --short HEAD`, with `-dirty` when the tree has changes.
    pub commit: String,
    /// UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Whether `--quick` was used.
    pub quick: bool,
}

/// The reference speed: single-precision matrix multiply on all threads
/// (written to JSON as is).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// Matrix size (`n × n` times `n × n`).
    pub n: usize,
    /// GFLOP/s of the fastest run.
    pub best_gflops: f64,
    /// GFLOP/s at the median time.
    pub median_gflops: f64,
}

/// Size of the sgemm peak measurement.
const PEAK_N: usize = 512;

/// GFLOP/s of `gemm_parallel` on `PEAK_N`³ with all threads: best and median.
pub fn sgemm_peak(reps: Reps) -> anyhow::Result<Peak> {
    let n = PEAK_N;
    let mut rng = Rng::seed_from(1);
    let a: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut c = vec![0.0f32; n * n];
    let reps = Reps {
        min: reps.min.max(10),
        ..reps
    };
    let t = measure(reps, || {
        gemm_parallel(&mut c, &a, Trans::No, &b, Trans::No, n, n, n, 1.0, 0.0)?;
        Ok(())
    })?;
    let flops = 2.0 * (n * n * n) as f64;
    Ok(Peak {
        n,
        best_gflops: flops / t.min_s / 1e9,
        median_gflops: flops / t.median_s / 1e9,
    })
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The 1-minute load average (`/proc/loadavg`), if available.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size of this process so far (`VmHWM`, the high-water
/// mark of its resident set), in bytes; `None` where `/proc` is not
/// available. Every row runs in its own child process, so the peak a child
/// reads at the end of its row is that row's own.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_bytes(&status, "VmHWM")
}

/// A `kB` field of a `/proc/<pid>/status` text, in bytes.
pub fn status_field_bytes(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Describes this machine and checkout.
pub fn header(quick: bool) -> Header {
    Header {
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads: rayon::current_num_threads(),
        simd: simd_level(),
        commit: git_commit(),
        date: utc_date(SystemTime::now()),
        quick,
    }
}

/// `model name` from `/proc/cpuinfo`, or `unknown`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The SIMD level the kernels run at (chosen at run time, or by `--simd`),
/// and the widest this CPU offers when that is wider: `avx2+fma`,
/// `baseline (cpu: avx2+fma)`.
fn simd_level() -> String {
    use convnet::tensor::simd;
    let (level, best) = (simd::level(), simd::detected());
    if level == best {
        level.name().to_string()
    } else {
        format!("{level} (cpu: {best})")
    }
}

/// Short commit hash, `-dirty` if the work tree has changes, or `unknown`.
fn git_commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash}-dirty")
            } else {
                hash
            }
        }
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\txtask\nVmPeak:\t  300 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(status_field_bytes(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(status_field_bytes(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(status_field_bytes(status, "VmSwap"), None);
        assert_eq!(status_field_bytes("VmHWM:\tlots kB\n", "VmHWM"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        if cfg!(target_os = "linux") {
            let peak = peak_rss_bytes().expect("VmHWM on Linux");
            assert!(peak > 1024 * 1024, "peak {peak} bytes");
        }
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").exists());
        assert!(workspace_root().join("xtask").is_dir());
    }

    #[test]
    fn the_header_describes_this_run() {
        let h = header(true);
        assert!(h.quick && h.cores >= 1 && h.threads >= 1);
        assert_eq!(h.date.len(), 10, "{}", h.date);
        assert!(!h.cpu.is_empty() && !h.commit.is_empty());
    }
}
