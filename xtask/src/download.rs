//! `cargo xtask download`.

/// Downloads or imports the datasets.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("download: not built yet")
}
