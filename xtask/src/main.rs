//! `cargo xtask`: project tasks.
//!
//! - `cargo xtask download [mnist|fashion-mnist|cifar10|cifar100|all] [--data-dir DIR] [--from DIR]`
//! - `cargo xtask bench [--quick] [--filter NAME] [--json] [--compare FILE]`
//! - `cargo xtask parity [--models a,b,...] [--batch N] [--threads N] [--keep DIR]`
//!
//! `cargo xtask <task> --help` describes each task's options.

mod bench;
mod download;
mod parity;
mod python;

use clap::Parser;

/// The command line: one task and its options.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "convnet's project tasks"
)]
pub struct Cli {
    /// The task to run.
    #[command(subcommand)]
    pub task: Task,
}

/// The tasks.
#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// Download or import datasets, verified.
    Download(download::Args),
    /// Measure the kernels, training and inference.
    Bench(bench::Options),
    /// Compare convnet's logits with PyTorch's.
    Parity(parity::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Download(args) => download::run(&args),
        Task::Bench(opts) => bench::run(&opts),
        Task::Parity(opts) => parity::run(&opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(s.split_whitespace()))
    }

    #[test]
    fn every_task_parses_with_its_options() {
        assert!(matches!(
            parse("bench --quick --threads 2").unwrap().task,
            Task::Bench(bench::Options {
                quick: true,
                threads: Some(2),
                ..
            })
        ));
        assert!(matches!(
            parse("parity --batch 3").unwrap().task,
            Task::Parity(parity::Options { batch: 3, .. })
        ));
        assert!(matches!(
            parse("download mnist --quiet").unwrap().task,
            Task::Download(_)
        ));
        let e = parse("frobnicate").unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidSubcommand);
        for task in ["bench", "parity", "download"] {
            let help = parse(&format!("{task} --help")).unwrap_err();
            assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp, "{task}");
            assert!(
                help.to_string().contains(&format!("cargo xtask {task}")),
                "{task}: {help}"
            );
        }
    }
}
