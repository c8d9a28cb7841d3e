//! `cargo xtask`: project tasks.
//!
//! - `cargo xtask download [mnist|fashion-mnist|cifar10|cifar100|all] [--data-dir DIR] [--from DIR]`
//! - `cargo xtask bench [--quick] [--filter NAME] [--json] [--compare FILE]`
//! - `cargo xtask parity [--models a,b,...] [--batch N] [--threads N] [--keep DIR]`

mod bench;
mod download;
mod parity;
mod python;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("download") => download::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("parity") => parity::run(&args[1..]),
        Some("-h" | "--help") | None => {
            println!(
                "usage: cargo xtask <download|bench|parity> [options]  (see `cargo xtask <task> --help`)"
            );
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown task `{other}`: expected `download`, `bench` or `parity`")
        }
    }
}
