//! `cargo xtask parity`: convnet's logits against PyTorch's for every zoo
//! model that torchvision also has, from state dicts that torchvision wrote.
//!
//! ```text
//! cargo xtask parity [--models a,b,...] [--batch 2] [--threads 2] [--seed 0]
//!                    [--keep DIR] [--tolerance 1e-4] [--convnet PATH]
//! ```
//!
//! Per model, one at a time (peak disk: one model's two weight files):
//!
//! 1. `xtask/parity/parity.py make` (with the Python of
//!    [`crate::python::torch_python`]) writes perturbed torchvision weights
//!    as `weights.pth` and `weights.safetensors`, an input batch and
//!    PyTorch's evaluation-mode logits into `target/parity/NAME`;
//! 2. `convnet infer` runs the zoo model on the input with each weight file;
//! 3. `parity.py compare` measures the largest error relative to the largest
//!    logit of each image, and the top-1 agreement;
//! 4. the weight files are deleted (all of the folder's files are kept with
//!    `--keep DIR`, which then holds the folders).
//!
//! Prints a markdown table and fails if any load or run fails or any error
//! exceeds the tolerance.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::bench::{machine_header, positive, workspace_root, TORCHVISION_MODELS};

fn parse_model(s: &str) -> Result<String, String> {
    if TORCHVISION_MODELS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a zoo model that torchvision has ({})",
            TORCHVISION_MODELS.join(", ")
        ))
    }
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|t: &f64| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("expected a non-negative number, got `{s}`"))
}

/// Command-line options.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(
    about = "convnet's logits against PyTorch's for every zoo model that torchvision has",
    after_help = "Needs a Python with torch, torchvision, numpy and safetensors: \
                  $CONVNET_TORCH_PYTHON, else ~/torchenv/bin/python."
)]
pub struct Options {
    /// Torchvision models to check, comma-separated [default: all 22 that the zoo has].
    #[arg(long, value_delimiter = ',', value_parser = parse_model, hide_default_value = true, default_values_t = TORCHVISION_MODELS.iter().map(|m| m.to_string()))]
    pub models: Vec<String>,
    /// Images in the input batch.
    #[arg(long, default_value_t = 2, value_parser = positive)]
    pub batch: usize,
    /// Threads of PyTorch and of `convnet infer`.
    #[arg(long, default_value_t = 2, value_parser = positive)]
    pub threads: usize,
    /// Seed of the perturbed weights and of the input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep every file in DIR/NAME [default: target/parity/NAME, weights deleted].
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Largest max|got - expected| / max|expected| that passes.
    #[arg(long, default_value_t = 1e-4, value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Run this convnet binary instead of building `cargo build --release -p convnet`.
    #[arg(long, value_name = "PATH")]
    pub convnet: Option<PathBuf>,
}

/// The weight files `make` writes, as the table names their format.
pub const FORMATS: [(&str, &str); 2] = [
    ("pth", "weights.pth"),
    ("safetensors", "weights.safetensors"),
];

/// What `parity.py compare` printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Largest `max|got - expected| / max|expected|` over the images;
    /// `None` if convnet's logits were not all finite.
    pub max_rel_err: Option<f64>,
    /// Images whose arg-max agrees.
    pub top1_agree: usize,
    /// Images compared.
    pub n: usize,
}

/// One row of the table: a model with one weight format.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Zoo (and torchvision) name.
    pub model: String,
    /// Parameters (without buffers), as PyTorch counts them.
    pub params: Option<u64>,
    /// `pth` or `safetensors`.
    pub format: String,
    /// The comparison, or why there is none.
    pub outcome: Result<Comparison, String>,
    /// Wall time of `convnet infer` (load and forward), seconds.
    pub time_s: Option<f64>,
}

impl Row {
    /// Whether the row loaded, ran and is within `tolerance`.
    pub fn passes(&self, tolerance: f64) -> bool {
        matches!(&self.outcome, Ok(Comparison { max_rel_err: Some(e), .. }) if *e <= tolerance)
    }
}

/// Runs `cargo xtask parity`.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let python = crate::python::torch_python()?;
    let script = workspace_root().join("xtask/parity/parity.py");
    if !script.exists() {
        bail!("{} not found", script.display());
    }
    let convnet = match &opts.convnet {
        Some(p) => p.clone(),
        None => build_convnet()?,
    };
    let header = machine_header(false);
    eprintln!(
        "parity: {} model(s), batch {}, {} thread(s), tolerance {:e}; cpu {} ({}), commit {}",
        opts.models.len(),
        opts.batch,
        opts.threads,
        opts.tolerance,
        header.cpu,
        header.simd,
        header.commit
    );

    let mut rows = Vec::new();
    for model in &opts.models {
        let dir = match &opts.keep {
            Some(keep) => keep.join(model),
            None => workspace_root().join("target/parity").join(model),
        };
        let model_rows = check_model(opts, &python, &script, &convnet, model, &dir);
        if opts.keep.is_none() {
            for (_, file) in FORMATS {
                let path = dir.join(file);
                if path.exists() {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("deleting {}", path.display()))?;
                }
            }
        }
        for r in &model_rows {
            eprintln!("  {}", table_line(r, opts.tolerance));
        }
        rows.extend(model_rows);
    }

    println!(
        "\nconvnet vs PyTorch, evaluation-mode logits of perturbed torchvision weights \
         (batch {}, {} threads, {}, {})\n",
        opts.batch, opts.threads, header.cpu, header.simd
    );
    println!("{}", markdown_table(&rows, opts.tolerance));
    let failed = rows.iter().filter(|r| !r.passes(opts.tolerance)).count();
    if failed > 0 {
        bail!(
            "{failed} of {} row(s) failed (tolerance {:e})",
            rows.len(),
            opts.tolerance
        );
    }
    Ok(())
}

/// `cargo build --release -p convnet`, then the binary next to this one.
fn build_convnet() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("parity: cargo build --release -p convnet");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "convnet"])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p convnet failed ({status})");
    }
    let exe = std::env::current_exe().context("finding the xtask executable")?;
    let bin = exe
        .parent()
        .context("the xtask executable has no folder")?
        .join(format!("convnet{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("{} not found after the build", bin.display());
    }
    Ok(bin)
}

/// Makes the reference files of `model` in `dir` and checks convnet on both
/// weight files: one row per format (rows of failures included).
fn check_model(
    opts: &Options,
    python: &Path,
    script: &Path,
    convnet: &Path,
    model: &str,
    dir: &Path,
) -> Vec<Row> {
    let failed_all = |why: String, params| -> Vec<Row> {
        FORMATS
            .iter()
            .map(|(format, _)| Row {
                model: model.to_string(),
                params,
                format: format.to_string(),
                outcome: Err(why.clone()),
                time_s: None,
            })
            .collect()
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return failed_all(format!("creating {}: {e}", dir.display()), None);
    }
    eprintln!("{model}: PyTorch reference ...");
    let t0 = Instant::now();
    let mut make = crate::python::command(python);
    make.arg(script)
        .arg("make")
        .args(["--model", model])
        .arg("--out")
        .arg(dir)
        .args(["--batch", &opts.batch.to_string()])
        .args(["--seed", &opts.seed.to_string()])
        .args(["--threads", &opts.threads.to_string()]);
    let made = match run_json(make, "parity.py make") {
        Ok(v) => v,
        Err(e) => return failed_all(format!("{e:#}"), None),
    };
    let params = made.get("params").and_then(serde_json::Value::as_u64);
    let number = |key: &str| {
        made.get(key)
            .and_then(serde_json::Value::as_f64)
            .map_or("?".to_string(), |v| format!("{v:.3}"))
    };
    eprintln!(
        "{model}: reference made in {:.1} s (logits std {}, input dependence {})",
        t0.elapsed().as_secs_f64(),
        number("logits_std"),
        number("input_dependence"),
    );

    FORMATS
        .iter()
        .map(|(format, file)| {
            let got = dir.join(format!("got_{format}.npy"));
            let _ = std::fs::remove_file(&got);
            let mut infer = Command::new(convnet);
            infer
                .args(["--threads", &opts.threads.to_string(), "infer"])
                .args(["--model", model])
                .arg("--weights")
                .arg(dir.join(file))
                .arg("--input")
                .arg(dir.join("input.npy"))
                .arg("--output")
                .arg(&got);
            let t = Instant::now();
            let ran = run_checked(infer, "convnet infer");
            let time_s = Some(t.elapsed().as_secs_f64());
            let outcome = ran.and_then(|_| {
                let mut compare = crate::python::command(python);
                compare
                    .arg(script)
                    .arg("compare")
                    .arg("--expected")
                    .arg(dir.join("logits.npy"))
                    .arg("--got")
                    .arg(&got);
                parse_comparison(&run_json(compare, "parity.py compare")?)
            });
            Row {
                model: model.to_string(),
                params,
                format: format.to_string(),
                outcome: outcome.map_err(|e| format!("{e:#}")),
                time_s,
            }
        })
        .collect()
}

/// Runs `cmd`; `Err` with the last lines of its standard error if it fails.
fn run_checked(mut cmd: Command, what: &str) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}): {}", out.status, tail.join(" / "));
    }
    Ok(out)
}

/// Runs `cmd` and parses the last line of its standard output as JSON.
fn run_json(cmd: Command, what: &str) -> anyhow::Result<serde_json::Value> {
    let out = run_checked(cmd, what)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{what} printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed `{line}`, not JSON"))
}

/// `{"max_rel_err": e or null, "top1_agree": k, "n": n}`.
pub fn parse_comparison(v: &serde_json::Value) -> anyhow::Result<Comparison> {
    let count = |key: &str| -> anyhow::Result<usize> {
        v.get(key)
            .and_then(serde_json::Value::as_u64)
            .map(|n| n as usize)
            .with_context(|| format!("comparison without `{key}`: {v}"))
    };
    let max_rel_err = match v.get("max_rel_err") {
        Some(serde_json::Value::Null) => None,
        Some(e) => Some(
            e.as_f64()
                .with_context(|| format!("comparison with a bad `max_rel_err`: {v}"))?,
        ),
        None => bail!("comparison without `max_rel_err`: {v}"),
    };
    Ok(Comparison {
        max_rel_err,
        top1_agree: count("top1_agree")?,
        n: count("n")?,
    })
}

/// `11689512` → `11.7 M`.
fn params_text(params: Option<u64>) -> String {
    match params {
        Some(p) => format!("{:.1} M", p as f64 / 1e6),
        None => "?".to_string(),
    }
}

/// One markdown table line for `r`.
pub fn table_line(r: &Row, tolerance: f64) -> String {
    let (err, top1) = match &r.outcome {
        Ok(c) => (
            match c.max_rel_err {
                Some(e) if e <= tolerance => format!("{e:.1e}"),
                Some(e) => format!("{e:.1e} (FAIL)"),
                None => "non-finite (FAIL)".to_string(),
            },
            format!("{}/{}", c.top1_agree, c.n),
        ),
        Err(why) => (format!("FAIL: {}", why.replace('|', "\\|")), "-".into()),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} |",
        r.model,
        params_text(r.params),
        r.format,
        err,
        top1,
        r.time_s.map_or("-".into(), |t| format!("{t:.1} s"))
    )
}

/// The markdown table of `rows`.
pub fn markdown_table(rows: &[Row], tolerance: f64) -> String {
    let mut lines = vec![
        "| model | params | format | max rel. error | top-1 agreement | time |".to_string(),
        "|---|---:|---|---:|---:|---:|".to_string(),
    ];
    lines.extend(rows.iter().map(|r| table_line(r, tolerance)));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, clap::Error> {
        use clap::Parser;
        Options::try_parse_from(std::iter::once("parity").chain(s.split_whitespace()))
    }

    #[test]
    fn parses_options() {
        let o = parse("").unwrap();
        assert_eq!(o.models.len(), 22);
        assert_eq!((o.batch, o.threads, o.tolerance), (2, 2, 1e-4));
        let o = parse(
            "--models resnet18,vit_b_16 --batch=3 --threads 1 --keep k --tolerance 1e-3 --seed 7",
        )
        .unwrap();
        assert_eq!(o.models, ["resnet18", "vit_b_16"]);
        assert_eq!((o.batch, o.threads, o.seed), (3, 1, 7));
        assert_eq!(o.keep, Some(PathBuf::from("k")));
        assert_eq!(o.tolerance, 1e-3);
        let help = parse("--help").unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let e = parse("--models lenet5").unwrap_err().to_string();
        assert!(e.contains("not a zoo model that torchvision has"), "{e}");
        assert!(parse("--batch 0").is_err());
        assert!(parse("--tolerance -1").is_err());
        assert!(parse("--frobnicate").is_err());
    }

    #[test]
    fn comparisons_and_table() {
        let v = serde_json::json!({"max_rel_err": 3.2e-6, "top1_agree": 2, "n": 2});
        let c = parse_comparison(&v).unwrap();
        assert_eq!(c.max_rel_err, Some(3.2e-6));
        let nan = serde_json::json!({"max_rel_err": null, "top1_agree": 0, "n": 2});
        assert_eq!(parse_comparison(&nan).unwrap().max_rel_err, None);
        assert!(parse_comparison(&serde_json::json!({"n": 2})).is_err());

        let row = |outcome| Row {
            model: "resnet18".into(),
            params: Some(11_689_512),
            format: "pth".into(),
            outcome,
            time_s: Some(1.5),
        };
        let ok = row(Ok(c));
        assert!(ok.passes(1e-4));
        assert_eq!(
            table_line(&ok, 1e-4),
            "| resnet18 | 11.7 M | pth | 3.2e-6 | 2/2 | 1.5 s |"
        );
        let bad = row(Ok(Comparison {
            max_rel_err: Some(2e-3),
            top1_agree: 1,
            n: 2,
        }));
        assert!(!bad.passes(1e-4));
        assert!(table_line(&bad, 1e-4).contains("(FAIL)"));
        let err = row(Err("missing key a|b".into()));
        assert!(!err.passes(1e-4));
        assert!(table_line(&err, 1e-4).contains("FAIL: missing key a\\|b"));
        assert!(!row(Ok(parse_comparison(&nan).unwrap())).passes(1.0));
        assert_eq!(markdown_table(&[ok], 1e-4).lines().count(), 3);
    }
}
