//! The Python with PyTorch that `bench --with-torch` and `parity` run:
//! `$CONVNET_TORCH_PYTHON` if set, else `~/torchenv/bin/python`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The variable naming the Python to use.
pub const PYTHON_VAR: &str = "CONVNET_TORCH_PYTHON";

/// The OpenMP variable set for PyTorch: `PASSIVE` unless the environment
/// sets it (OpenMP's default spin-waiting slows PyTorch down several times
/// as soon as other processes share the cores).
pub const OMP_WAIT_POLICY: &str = "OMP_WAIT_POLICY";

/// Finds the Python with torch: `$CONVNET_TORCH_PYTHON`, else
/// `~/torchenv/bin/python`; `Err` says how to set one up.
pub fn torch_python() -> anyhow::Result<PathBuf> {
    let python = match std::env::var_os(PYTHON_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let home = std::env::var_os("HOME").context("$HOME is not set")?;
            Path::new(&home).join("torchenv/bin/python")
        }
    };
    if !python.exists() {
        bail!(
            "no PyTorch Python at {}: set ${PYTHON_VAR}, or create one with \
             `python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch torchvision numpy safetensors` \
             (see ../shared/bench/README.md)",
            python.display()
        );
    }
    Ok(python)
}

/// A command running `python` with `OMP_WAIT_POLICY=PASSIVE` unless the
/// environment sets the variable.
pub fn command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    if std::env::var_os(OMP_WAIT_POLICY).is_none() {
        cmd.env(OMP_WAIT_POLICY, "PASSIVE");
    }
    cmd
}

/// `OMP_WAIT_POLICY` as PyTorch runs with it.
pub fn omp_wait_policy() -> String {
    std::env::var(OMP_WAIT_POLICY).unwrap_or_else(|_| "PASSIVE".to_string())
}
