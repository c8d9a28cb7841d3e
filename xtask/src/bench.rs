//! `cargo xtask bench`: measured speed of the compute kernels, training and
//! inference, as useful FLOP/s and as a fraction of this machine's own
//! sgemm peak.
//!
//! ```text
//! cargo xtask bench [--quick] [--filter NAME] [--threads N] [--json]
//!                   [--compare FILE] [--data-dir DIR] [--with-torch]
//! ```
//!
//! The modules import one another in one direction only (each line uses
//! only the modules on the lines above it):
//!
//! | module      | what                                                                 |
//! |-------------|----------------------------------------------------------------------|
//! | `options`   | the clap [`Options`] (parent and child)                               |
//! | `measure`   | the one timing loop and its warm-up rule; `Timing`, `Reps`            |
//! | `system`    | machine header, sgemm peak, load, peak memory, workspace root         |
//! | `row`       | `Row`, `Table`, `Report`: what a run measured, as data                |
//! | `plan`      | the jobs of a run, their names, `--quick` and `--filter`              |
//! | `kernels`, `models` | the rows: conv2d kernels; training steps, epochs, inference   |
//! | `json`      | the `--json` file and a child's row lines                             |
//! | `report`, `compare` | printing the tables; `--compare` against an earlier file      |
//! | `child`, `torch` | one job per process; PyTorch's figures (`--with-torch`)          |
//! | `suite`     | the parent's run, table by table                                      |

mod child;
mod compare;
mod json;
mod kernels;
mod measure;
mod models;
mod options;
mod plan;
mod report;
mod row;
mod suite;
mod system;
mod torch;

pub use options::{positive, Options};
pub(crate) use system::header as machine_header;
pub(crate) use system::workspace_root;
pub(crate) use torch::TORCHVISION_MODELS;

use anyhow::Context;

/// Runs the benchmarks: the whole suite, or (hidden `--run-row JOB`) one
/// job in a child process.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    if let Some(level) = opts.simd {
        convnet::tensor::simd::set_level(level)?;
    }
    if let Some(n) = opts.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("building rayon's global thread pool")?;
    }
    match &opts.run_row {
        Some(job) => child::run_child(opts, job),
        None => suite::run(opts),
    }
}
