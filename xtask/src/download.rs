//! `cargo xtask download [mnist|fashion-mnist|all] [--data-dir DIR] [--from DIR]`:
//! gets the datasets into the data folder, verified. The work is done by
//! `convnet::datasets::download`, the same code `convnet train` uses.

use std::path::PathBuf;

use anyhow::{bail, Context};
use convnet::datasets::{
    download::{ensure_dataset, import_from, DownloadOptions, Progress},
    resolve_data_dir, DatasetKind, DATA_DIR_ENV,
};

const USAGE: &str = "\
usage: cargo xtask download [mnist|fashion-mnist|all]... [--data-dir DIR] [--from DIR] [--quiet]

Downloads MNIST and/or Fashion-MNIST (default: all) from the publishers' mirrors
into DIR/mnist and DIR/fashion-mnist, or imports them from a local folder with
--from. Every file is checked against the SHA-256 of its decompressed content,
written under a temporary name and renamed only once verified; files already
present and valid are skipped.

options:
  --data-dir DIR   where the datasets go (default: $CONVNET_DATA, else ./data)
  --from DIR       import from DIR (or DIR/<dataset>) instead of downloading:
                   the publishers' files, .gz or decompressed, e.g. a copy
                   made on a machine with internet or Debian's
                   /usr/share/datasets/fashion-mnist
  --quiet          no progress output
  -h, --help       this help";

/// Parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    kinds: Vec<DatasetKind>,
    data_dir: Option<PathBuf>,
    from: Option<PathBuf>,
    quiet: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Option<Args>> {
    let mut kinds = Vec::new();
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
            name => match name.parse::<DatasetKind>() {
                Ok(kind) => kinds.push(kind),
                Err(_) => bail!("unknown dataset `{name}`: expected mnist, fashion-mnist or all"),
            },
        }
    }
    if kinds.is_empty() {
        kinds.extend(DatasetKind::ALL);
    }
    let mut unique = Vec::new();
    for k in kinds {
        if !unique.contains(&k) {
            unique.push(k);
        }
    }
    Ok(Some(Args {
        kinds: unique,
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
    for kind in &args.kinds {
        let report = match &args.from {
            Some(from) => import_from(*kind, from, &data_dir)
                .with_context(|| format!("importing {} from {}", kind.title(), from.display()))?,
            None => ensure_dataset(*kind, &data_dir, &opts)
                .with_context(|| format!("downloading {}", kind.title()))?,
        };
        if !args.quiet {
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
    }

    #[test]
    fn bad_arguments_say_what_is_valid() {
        let e = parse(&args(&["cifar"])).unwrap_err().to_string();
        assert!(e.contains("mnist, fashion-mnist or all"), "{e}");
        let e = parse(&args(&["--from"])).unwrap_err().to_string();
        assert!(e.contains("--from DIR"), "{e}");
        let e = parse(&args(&["--bogus"])).unwrap_err().to_string();
        assert!(e.contains("unknown option"), "{e}");
    }
}
