//! `cargo xtask download [mnist|fashion-mnist|cifar10|cifar100|all] [--data-dir DIR] [--from DIR]`:
//! gets the datasets into the data folder, verified. The work is done by
//! `convnet::datasets::download`, the same code `convnet train` uses.

use std::path::PathBuf;

use convnet::datasets::{
    cifar::CifarKind,
    download::{DownloadOptions, Progress},
    resolve_data_dir, DatasetKind, DATA_DIR_ENV,
};

/// What `cargo xtask download` does, for `--help`.
const ABOUT: &str = "\
Downloads MNIST and/or Fashion-MNIST (`all`, the default) from the publishers'
mirrors into DIR/mnist and DIR/fashion-mnist, or imports them from a local folder
with --from. Every file is checked against the SHA-256 of its decompressed
content, written under a temporary name and renamed only once verified; files
already present and valid are skipped.

CIFAR-10 and CIFAR-100 (about 170 MB each, so only when named) come as the
publisher's archive, cifar-10-binary.tar.gz / cifar-100-binary.tar.gz: it is
checked against the publisher's MD5 while it is extracted into DIR/cifar10 or
DIR/cifar100, with a manifest of the extracted files' SHA-256 that every load
checks; the archive is not kept.";

/// One dataset name of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// `all`: MNIST and Fashion-MNIST.
    All,
    /// MNIST or Fashion-MNIST.
    Idx(DatasetKind),
    /// CIFAR-10 or CIFAR-100.
    Cifar(CifarKind),
}

/// A clap value parser for a dataset name.
fn parse_choice(name: &str) -> Result<Choice, String> {
    if name == "all" {
        return Ok(Choice::All);
    }
    match (name.parse::<DatasetKind>(), name.parse::<CifarKind>()) {
        (Ok(kind), _) => Ok(Choice::Idx(kind)),
        (_, Ok(kind)) => Ok(Choice::Cifar(kind)),
        _ => Err(format!(
            "unknown dataset `{name}`: expected mnist, fashion-mnist, cifar10, cifar100 or all"
        )),
    }
}

/// `cargo xtask download` options.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(
    about = "Download (or import) the datasets into the data folder, verified",
    long_about = ABOUT
)]
pub struct Args {
    /// mnist, fashion-mnist, cifar10, cifar100 or all [default: all = MNIST and Fashion-MNIST].
    #[arg(value_name = "DATASET", value_parser = parse_choice)]
    pub datasets: Vec<Choice>,
    /// Where the datasets go [default: $CONVNET_DATA, else ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Import from DIR (or DIR/<dataset>) instead of downloading: the publishers'
    /// files, .gz or decompressed, e.g. a copy made on a machine with internet or
    /// Debian's /usr/share/datasets/fashion-mnist; for CIFAR, the archive itself or
    /// a folder holding it.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Args {
    /// The datasets named, each once, in order: MNIST-like ones (all of
    /// them when nothing is named) and CIFAR ones (only when named).
    pub fn selection(&self) -> (Vec<DatasetKind>, Vec<CifarKind>) {
        let mut kinds = Vec::new();
        let mut cifar = Vec::new();
        for choice in &self.datasets {
            match *choice {
                Choice::All => kinds.extend(DatasetKind::ALL),
                Choice::Idx(kind) => kinds.push(kind),
                Choice::Cifar(kind) => cifar.push(kind),
            }
        }
        if kinds.is_empty() && cifar.is_empty() {
            kinds.extend(DatasetKind::ALL);
        }
        (unique(kinds), unique(cifar))
    }
}

/// The items of `v`, each once, in the order of their first appearance.
fn unique<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Downloads or imports the datasets.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (kinds, cifar) = args.selection();
    let data_dir = resolve_data_dir(args.data_dir.as_deref());
    if args.data_dir.is_none() && !args.quiet {
        eprintln!(
            "data folder: {} (choose another with --data-dir or ${DATA_DIR_ENV})",
            data_dir.display()
        );
    }
    let opts = DownloadOptions {
        progress: if args.quiet {
            Progress::Quiet
        } else {
            Progress::Auto
        },
        ..DownloadOptions::default()
    };
    let names: Vec<String> = kinds
        .iter()
        .map(|k| k.name().to_string())
        .chain(cifar.iter().map(|k| k.name().to_string()))
        .collect();
    let reports =
        convnet::app::data::fetch_datasets(&names, &data_dir, args.from.as_deref(), &opts)
            .map_err(|e| anyhow::anyhow!(convnet::app::error_message(&e)))?;
    if !args.quiet {
        for report in reports {
            print!("{report}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once(&"download").chain(list))
    }

    #[test]
    fn parses_datasets_and_options() {
        let a = parse(&["fashion-mnist", "--data-dir", "d", "--from", "f"]).unwrap();
        assert_eq!(a.selection().0, [DatasetKind::FashionMnist]);
        assert_eq!(a.data_dir, Some(PathBuf::from("d")));
        assert_eq!(a.from, Some(PathBuf::from("f")));
        let (all, cifar) = parse(&[]).unwrap().selection();
        assert_eq!(all, DatasetKind::ALL);
        assert!(cifar.is_empty(), "CIFAR only when named");
        let dup = parse(&["mnist", "all"]).unwrap().selection().0;
        assert_eq!(dup, DatasetKind::ALL);
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let (kinds, cifar) = parse(&["cifar100", "CIFAR-10", "cifar100"])
            .unwrap()
            .selection();
        assert_eq!(cifar, [CifarKind::Cifar100, CifarKind::Cifar10]);
        assert!(kinds.is_empty(), "naming CIFAR alone gets no MNIST");
        assert!(parse(&["-q"]).unwrap().quiet);
    }

    #[test]
    fn bad_arguments_say_what_is_valid() {
        let e = parse(&["cifar"]).unwrap_err().to_string();
        assert!(
            e.contains("mnist, fashion-mnist, cifar10, cifar100 or all"),
            "{e}"
        );
        let e = parse(&["--from"]).unwrap_err().to_string();
        assert!(e.contains("--from <DIR>"), "{e}");
        let e = parse(&["--from", "--quiet"]).unwrap_err().to_string();
        assert!(e.contains("--from <DIR>"), "{e}");
        let e = parse(&["--bogus"]).unwrap_err().to_string();
        assert!(e.contains("--bogus"), "{e}");
    }
}
