//! `cargo xtask download [mnist|fashion-mnist|cifar10|cifar100|all] [--data-dir DIR] [--from DIR]`:
//! gets the datasets into the data folder, verified. The work is done by
//! `convnet::datasets::download`, the same code `convnet train` uses.

use std::path::PathBuf;

use anyhow::bail;
use convnet::datasets::{
    cifar::CifarKind,
    download::{DownloadOptions, Progress},
    resolve_data_dir, DatasetKind, DATA_DIR_ENV,
};

const USAGE: &str = "\
usage: cargo xtask download [mnist|fashion-mnist|cifar10|cifar100|all]... [--data-dir DIR] [--from DIR] [--quiet]

Downloads MNIST and/or Fashion-MNIST (`all`, the default) from the publishers'
mirrors into DIR/mnist and DIR/fashion-mnist, or imports them from a local folder
with --from. Every file is checked against the SHA-256 of its decompressed
content, written under a temporary name and renamed only once verified; files
already present and valid are skipped.

CIFAR-10 and CIFAR-100 (about 170 MB each, so only when named) come as the
publisher's archive, cifar-10-binary.tar.gz / cifar-100-binary.tar.gz: it is
checked against the publisher's MD5 while it is extracted into DIR/cifar10 or
DIR/cifar100, with a manifest of the extracted files' SHA-256 that every load
checks; the archive is not kept.

options:
  --data-dir DIR   where the datasets go (default: $CONVNET_DATA, else ./data)
  --from DIR       import from DIR (or DIR/<dataset>) instead of downloading:
                   the publishers' files, .gz or decompressed, e.g. a copy
                   made on a machine with internet or Debian's
                   /usr/share/datasets/fashion-mnist; for CIFAR, the archive
                   itself or a folder holding it
  --quiet          no progress output
  -h, --help       this help";

/// Parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    kinds: Vec<DatasetKind>,
    cifar: Vec<CifarKind>,
    data_dir: Option<PathBuf>,
    from: Option<PathBuf>,
    quiet: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Option<Args>> {
    let mut kinds = Vec::new();
    let mut cifar = Vec::new();
    let mut data_dir = None;
    let mut from = None;
    let mut quiet = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| -> anyhow::Result<PathBuf> {
            match it.next() {
                Some(v) if !v.starts_with("--") => Ok(PathBuf::from(v)),
                _ => bail!("{flag} needs a folder: {flag} DIR"),
            }
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--data-dir" => data_dir = Some(value("--data-dir")?),
            "--from" => from = Some(value("--from")?),
            "--quiet" | "-q" => quiet = true,
            "all" => kinds.extend(DatasetKind::ALL),
            flag if flag.starts_with('-') => {
                bail!("unknown option `{flag}`\n\n{USAGE}")
            }
            name => match (name.parse::<DatasetKind>(), name.parse::<CifarKind>()) {
                (Ok(kind), _) => kinds.push(kind),
                (_, Ok(kind)) => cifar.push(kind),
                _ => bail!(
                    "unknown dataset `{name}`: expected mnist, fashion-mnist, cifar10, cifar100 or all"
                ),
            },
        }
    }
    if kinds.is_empty() && cifar.is_empty() {
        kinds.extend(DatasetKind::ALL);
    }
    let mut seen = Vec::new();
    cifar.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });
    let mut unique = Vec::new();
    for k in kinds {
        if !unique.contains(&k) {
            unique.push(k);
        }
    }
    Ok(Some(Args {
        kinds: unique,
        cifar,
        data_dir,
        from,
        quiet,
    }))
}

/// Downloads or imports the datasets.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(args) = parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
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
    let names: Vec<String> = args
        .kinds
        .iter()
        .map(|k| k.name().to_string())
        .chain(args.cifar.iter().map(|k| k.name().to_string()))
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

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_datasets_and_options() {
        let a = parse(&args(&["fashion-mnist", "--data-dir", "d", "--from", "f"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.kinds, [DatasetKind::FashionMnist]);
        assert_eq!(a.data_dir, Some(PathBuf::from("d")));
        assert_eq!(a.from, Some(PathBuf::from("f")));
        let all = parse(&args(&[])).unwrap().unwrap();
        assert_eq!(all.kinds, DatasetKind::ALL);
        let dup = parse(&args(&["mnist", "all"])).unwrap().unwrap();
        assert_eq!(dup.kinds, DatasetKind::ALL);
        assert!(parse(&args(&["--help"])).unwrap().is_none());
        assert!(all.cifar.is_empty(), "CIFAR only when named");
        let c = parse(&args(&["cifar100", "CIFAR-10", "cifar100"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.cifar, [CifarKind::Cifar100, CifarKind::Cifar10]);
        assert!(c.kinds.is_empty(), "naming CIFAR alone gets no MNIST");
    }

    #[test]
    fn bad_arguments_say_what_is_valid() {
        let e = parse(&args(&["cifar"])).unwrap_err().to_string();
        assert!(
            e.contains("mnist, fashion-mnist, cifar10, cifar100 or all"),
            "{e}"
        );
        let e = parse(&args(&["--from"])).unwrap_err().to_string();
        assert!(e.contains("--from DIR"), "{e}");
        let e = parse(&args(&["--bogus"])).unwrap_err().to_string();
        assert!(e.contains("unknown option"), "{e}");
    }
}
