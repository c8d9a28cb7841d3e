//! `cargo xtask`: project tasks.
//!
//! - `cargo xtask download [mnist|fashion-mnist|all] [--data-dir DIR] [--from DIR]`
//! - `cargo xtask bench [--quick] [--filter NAME] [--json] [--compare FILE]`

mod bench;
mod download;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("download") => download::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("-h" | "--help") | None => {
            println!(
                "usage: cargo xtask <download|bench> [options]  (see `cargo xtask <task> --help`)"
            );
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown task `{other}`: expected `download` or `bench`"),
    }
}
