//! The options of `cargo xtask bench` (clap), shared by the parent run and
//! the child processes it starts (hidden `--run-row JOB`).

use std::path::PathBuf;

use convnet::tensor::simd::{SimdError, SimdLevel};

/// `cargo xtask bench` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Parser)]
#[command(
    about = "Measured speed of the kernels, training and inference, as useful FLOP/s \
             and as a fraction of this machine's own sgemm peak"
)]
pub struct Options {
    /// Fewer repetitions and rows: kernels, LeNet-5, ResNet-18 at batch 1 (< 1 minute).
    #[arg(long)]
    pub quick: bool,
    /// Only the rows whose name contains NAME (e.g. resnet, dw7x7, train., infer.vgg16).
    #[arg(long, value_name = "NAME")]
    pub filter: Option<String>,
    /// Size of rayon's thread pool [default: all cores].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub threads: Option<usize>,
    /// Write target/bench/<commit>.json and target/bench/latest.json.
    #[arg(long)]
    pub json: bool,
    /// Compare with an earlier --json file, row by row; REGRESSION = more than 10% slower.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    /// Where MNIST is, for the real-epoch row [default: $CONVNET_DATA, ./data,
    /// /usr/share/datasets, ../shared/datasets].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also measure PyTorch (~/torchenv, ../shared/bench scripts) right after each
    /// comparable row, and print the ratios.
    #[arg(long)]
    pub with_torch: bool,
    /// The kernels' instruction set: baseline, avx2 or avx512 [default: the
    /// widest this CPU has]. A level the CPU lacks is refused.
    #[arg(long, value_name = "LEVEL", value_parser = simd_level)]
    pub simd: Option<SimdLevel>,
    /// Run this one job and print its rows as JSON lines: the bench runs every
    /// job in a child process this way.
    #[arg(long, value_name = "JOB", hide = true)]
    pub run_row: Option<String>,
}

impl Options {
    /// Whether a row name passes `--filter`.
    pub fn selects(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

/// A clap value parser: a SIMD level this CPU can run.
pub fn simd_level(s: &str) -> Result<SimdLevel, String> {
    let level: SimdLevel = s.parse().map_err(|e| format!("{e}"))?;
    let best = convnet::tensor::simd::detected();
    if level > best {
        // The library's own refusal, checked here so that clap names the flag.
        let refused = SimdError::Unsupported {
            requested: level,
            detected: best,
        };
        return Err(refused.to_string());
    }
    Ok(level)
}

/// A clap value parser: an integer above 0.
pub fn positive(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected a positive integer, got `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(s: &str) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("bench").chain(s.split_whitespace()))
    }

    #[test]
    fn parses_flags() {
        let o = parse("--quick --filter resnet --threads 2").unwrap();
        assert_eq!(
            o,
            Options {
                quick: true,
                filter: Some("resnet".into()),
                threads: Some(2),
                ..Options::default()
            }
        );
        assert!(!o.selects("lenet5.conv1") && o.selects("resnet.3x3"));
        let o = parse("--threads=3").unwrap();
        assert_eq!(o.threads, Some(3));
        assert!(o.selects("anything"));
        let help = parse("--help").unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(!help.to_string().contains("run-row"), "--run-row is hidden");
        let e = parse("--threads 0").unwrap_err().to_string();
        assert!(e.contains("expected a positive integer, got `0`"), "{e}");
        assert!(parse("--filter").is_err());
        assert!(parse("--fast").is_err());
    }

    #[test]
    fn parses_the_output_and_comparison_flags() {
        let o = parse(
            "--json --compare target/bench/old.json --data-dir /d --with-torch --filter infer.",
        )
        .unwrap();
        assert!(o.json && o.with_torch);
        assert_eq!(o.compare, Some(PathBuf::from("target/bench/old.json")));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert!(o.selects("infer.vgg16.b1") && !o.selects("train.vgg16.b2"));
        assert_eq!(o.run_row, None);
        let o = parse("--compare=a.json --run-row=infer.lenet5.b1").unwrap();
        assert_eq!(o.compare, Some(PathBuf::from("a.json")));
        assert_eq!(o.run_row.as_deref(), Some("infer.lenet5.b1"));
        for bad in [
            "--compare",
            "--data-dir",
            "--run-row",
            "--json=yes",
            "--torch",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
