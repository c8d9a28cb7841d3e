//! `cargo xtask`: project tasks (`download`, `bench`).

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::bail!("unknown task {:?}: expected `download` or `bench`", args.first())
}
