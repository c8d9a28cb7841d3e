//! `cargo xtask bench`.

/// Runs the benchmarks.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("bench: not built yet")
}
