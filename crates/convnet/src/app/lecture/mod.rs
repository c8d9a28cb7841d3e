//! `convnet lecture`: every number and worked example of the lecture
//! (`seed/lecture-cnn.md`, in French), recomputed by this workspace's own
//! code and printed section by section beside the lecture's figure, with a
//! verdict.
//!
//! Each [`Check`] holds three things: what the lecture says (its figure, as
//! data, with the line it comes from), what the code *expects* (the true
//! value, known in advance: 76 parameters for a 5×5×3 filter with its
//! bias) and what the crates *recompute* now (a [`Conv2d`](convnet_layers::Conv2d)
//! built and its parameters counted, the convolution kernel run on the
//! lecture's 4×4 example). The verdict:
//!
//! - [`Verdict::Agrees`]: the recomputed value is the expected one, and the
//!   lecture's figure matches it at the lecture's own precision;
//! - [`Verdict::LectureSlip`]: the recomputed value is the expected one and
//!   the lecture's figure does not match, for a reason known and explained
//!   (the lecture forgets the 3 colour channels of its 5×5×3 filter);
//! - [`Verdict::Disagrees`]: the code does not do what it expects of
//!   itself (a bug), or the lecture's figure disagrees where no slip is
//!   known, or a known slip is no longer one. `convnet lecture` then exits
//!   non-zero.
//!
//! ```
//! use convnet::app::lecture::{recompute, Verdict};
//!
//! let lecture = recompute().unwrap();
//! assert!(lecture.failures().is_empty());
//! let slips = lecture.checks().filter(|c| matches!(c.verdict, Verdict::LectureSlip(_))).count();
//! assert!(slips >= 3);
//! ```

mod annex;
mod args;
mod charts;
mod checks;
mod figures;
mod models;
mod report;
mod text;
mod train;

use std::fmt;

pub use annex::{measure_annex, measure_models, AnnexOptions, AnnexRow, Measured, ANNEX_MODELS};
pub use args::{check_outcome, run_command, LectureArgs, ProgressFlag};
pub use figures::{write_figures, Figure};
pub use report::{
    create_report_dir, escape, render_html, write_report, write_report_with, REPORT_FILE,
};
pub use text::render_text;
pub use train::{lenet_options, train_lenets, TrainResult, LECTURE_ERROR_RATES};

use super::Result;

/// The titles of the sections, for [`Figure::section`] and for finding
/// checks.
pub mod titles {
    /// A filter and an image: parameters of a filter and of a dense neuron.
    pub const IMAGE_AND_FILTER: &str = "Couche de convolution — Image et filtre";
    /// Zero-padding.
    pub const PADDING: &str = "Couche de convolution — Zero-padding";
    /// The size of a convolution's output: the formula, stride.
    pub const DIMENSION: &str = "Couche de convolution — Dimension de la matrice créée";
    /// The worked example: a 4×4 input convolved with a 2×2 filter, then ReLU.
    pub const EXAMPLE: &str = "Couche de convolution — Exemple et correction";
    /// Max-pooling.
    pub const POOLING: &str = "Couche de pooling";
    /// The annex's GELU (where the ReLU and GELU curves belong).
    pub const GELU: &str = "Annexe : Fonction d'activation GELU";
    /// LeNet-1/4/5: the table of parameters and error rates.
    pub const LENET: &str = "LeNet 5 - 1998";
    /// AlexNet.
    pub const ALEXNET: &str = "AlexNet";
    /// Inception v1 (GoogLeNet).
    pub const INCEPTION: &str = "Inception v1";
    /// VGG: small filters, VGG-16.
    pub const VGG: &str = "Modèles VGG";
    /// ResNet.
    pub const RESNET: &str = "ResNet";
    /// The annex's ConvNeXt.
    pub const CONVNEXT: &str = "Annexe : ConvNext";
}

/// The lecture's file, as the checks cite it.
pub const LECTURE_FILE: &str = "seed/lecture-cnn.md";

/// Where a figure of the lecture comes from: its section title (as the
/// lecture writes it) and the line of [`LECTURE_FILE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The lecture's section heading.
    pub section: &'static str,
    /// Line of `seed/lecture-cnn.md`.
    pub line: usize,
}

/// What became of one figure of the lecture.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Recomputed as expected, and the lecture says the same.
    Agrees,
    /// Recomputed as expected; the lecture's figure is wrong, for the reason
    /// given.
    LectureSlip(String),
    /// The code does not do what it expects of itself, or the lecture
    /// differs where no slip is known: the reason.
    Disagrees(String),
}

impl Verdict {
    /// A short word for tables: `agrees`, `LECTURE SLIP`, `DISAGREES`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Agrees => "agrees",
            Verdict::LectureSlip(_) => "LECTURE SLIP",
            Verdict::Disagrees(_) => "DISAGREES",
        }
    }

    /// The explanation of a slip or a disagreement.
    pub fn explanation(&self) -> Option<&str> {
        match self {
            Verdict::Agrees => None,
            Verdict::LectureSlip(s) | Verdict::Disagrees(s) => Some(s),
        }
    }
}

/// One figure of the lecture beside its recomputation.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// Where the lecture says it.
    pub source: Source,
    /// The lecture's figure, as it writes it.
    pub lecture_says: String,
    /// The value recomputed by the crates.
    pub computed: String,
    /// The verdict.
    pub verdict: Verdict,
    /// How it was recomputed, or what else is worth knowing.
    pub note: Option<String>,
}

impl Check {
    /// The check with a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// One section of the lecture and its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The section's title (the lecture's heading, and what it is about).
    pub title: String,
    /// The checks, in the lecture's order.
    pub checks: Vec<Check>,
}

/// The whole lecture recomputed, and what the optional parts measured.
#[derive(Debug, Clone, Default)]
pub struct Lecture {
    /// The sections, in the lecture's order.
    pub sections: Vec<Section>,
    /// LeNet-1/4/5 trained on MNIST (`--train`).
    pub training: Option<Vec<TrainResult>>,
    /// ConvNeXt against Swin on this machine (`--annex`).
    pub annex: Option<Vec<AnnexRow>>,
}

impl Lecture {
    /// Every check of every section.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.sections.iter().flat_map(|s| s.checks.iter())
    }

    /// The checks whose verdict is [`Verdict::Disagrees`].
    pub fn failures(&self) -> Vec<&Check> {
        self.checks()
            .filter(|c| matches!(c.verdict, Verdict::Disagrees(_)))
            .collect()
    }

    /// `(agree, slips, disagree)` counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in self.checks() {
            match c.verdict {
                Verdict::Agrees => n.0 += 1,
                Verdict::LectureSlip(_) => n.1 += 1,
                Verdict::Disagrees(_) => n.2 += 1,
            }
        }
        n
    }
}

/// Recomputes every number of the lecture that needs no data (a few
/// seconds: the ImageNet models are built to count their parameters and
/// layers).
pub fn recompute() -> Result<Lecture> {
    let mut sections = checks::first_sections()?;
    sections.extend(models::model_sections()?);
    // The annex: GELU comes before ConvNeXt.
    let at = sections.len() - 1;
    sections.insert(at, checks::gelu_section()?);
    Ok(Lecture {
        sections,
        training: None,
        annex: None,
    })
}

/// How the lecture states a number, and so how a recomputed value is
/// compared with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Said {
    /// Exactly this number.
    Exact(f64),
    /// This number, rounded to `digits` significant figures ("60000" for
    /// 61,706 at one figure).
    Rounded {
        /// The lecture's figure.
        value: f64,
        /// Its significant figures.
        digits: u32,
    },
    /// This number, truncated to `digits` significant figures ("6.9
    /// millions" for 6,990,272).
    Truncated {
        /// The lecture's figure.
        value: f64,
        /// Its significant figures.
        digits: u32,
    },
    /// "environ": within `relative` of this number.
    About {
        /// The lecture's figure.
        value: f64,
        /// The relative tolerance, stated in the open.
        relative: f64,
    },
    /// This matrix, element by element.
    Matrix(Vec<Vec<f32>>),
    /// A statement that holds (compared with [`Got::Holds`]).
    Holds,
}

/// A value the code expects or recomputed.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    /// A number.
    Number(f64),
    /// A matrix (rows).
    Matrix(Vec<Vec<f32>>),
    /// Whether a statement holds, and what was found.
    Holds(bool, String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Number(v) => f.write_str(&number(*v)),
            Got::Matrix(m) => f.write_str(&matrix(m)),
            Got::Holds(_, what) => f.write_str(what),
        }
    }
}

/// `1,876`, `8.72`: integers with thousands separators, others with at
/// most 4 significant decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = convnet_tensor::format::thousands(v.abs() as u64);
        if v < 0.0 {
            format!("-{s}")
        } else {
            s
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `[[6, 8], [14, 16]]`.
pub fn matrix(m: &[Vec<f32>]) -> String {
    let rows: Vec<String> = m
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().map(|&v| number(f64::from(v))).collect();
            format!("[{}]", cells.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// `n` rounded to `digits` significant figures.
fn round_sig(n: f64, digits: u32, truncate: bool) -> f64 {
    if n == 0.0 {
        return 0.0;
    }
    let magnitude = n.abs().log10().floor() as i32;
    let scale = 10f64.powi(magnitude + 1 - digits as i32);
    let q = n / scale;
    (if truncate { q.trunc() } else { q.round() }) * scale
}

impl Said {
    /// Whether the lecture's figure matches `got` at the lecture's
    /// precision.
    pub fn matches(&self, got: &Got) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        match (self, got) {
            (Said::Exact(v), Got::Number(g)) => close(*g, *v),
            (Said::Rounded { value, digits }, Got::Number(g)) => {
                close(round_sig(*g, *digits, false), *value)
            }
            (Said::Truncated { value, digits }, Got::Number(g)) => {
                close(round_sig(*g, *digits, true), *value)
            }
            (Said::About { value, relative }, Got::Number(g)) => {
                (g - value).abs() <= relative * value.abs()
            }
            (Said::Matrix(m), Got::Matrix(g)) => m == g,
            (Said::Holds, Got::Holds(h, _)) => *h,
            _ => false,
        }
    }
}

/// One figure of the lecture to compare.
pub(crate) struct Stated<'a> {
    /// What is checked.
    pub what: &'a str,
    /// Where the lecture says it.
    pub source: Source,
    /// The lecture's figure as it writes it.
    pub text: &'a str,
    /// How to compare with it.
    pub said: Said,
}

/// A line of the lecture.
pub(crate) fn src(section: &'static str, line: usize) -> Source {
    Source { section, line }
}

/// A figure of the lecture.
pub(crate) fn stated<'a>(what: &'a str, source: Source, text: &'a str, said: Said) -> Stated<'a> {
    Stated {
        what,
        source,
        text,
        said,
    }
}

/// Builds a [`Check`]: `computed` must equal `expected` (else the code has
/// a bug); then the lecture's figure must match it, unless `slip` explains
/// why it does not (and then it must not match).
pub(crate) fn check(figure: Stated<'_>, expected: Got, computed: Got, slip: Option<&str>) -> Check {
    let lecture_ok = figure.said.matches(&computed);
    let verdict = if computed != expected {
        Verdict::Disagrees(format!(
            "recomputed {computed}, but the code expects {expected}"
        ))
    } else {
        match (lecture_ok, slip) {
            (true, None) => Verdict::Agrees,
            (false, Some(why)) => Verdict::LectureSlip(why.to_string()),
            (true, Some(_)) => Verdict::Disagrees(
                "a slip of the lecture is expected here, but its figure matches".into(),
            ),
            (false, None) => Verdict::Disagrees(format!(
                "the lecture says {}, recomputed {computed}, and no slip is known",
                figure.text
            )),
        }
    };
    Check {
        what: figure.what.to_string(),
        source: figure.source,
        lecture_says: figure.text.to_string(),
        computed: computed.to_string(),
        verdict,
        note: None,
    }
}

/// A check that failed to run: the error is the disagreement.
pub(crate) fn failed(figure: Stated<'_>, error: impl fmt::Display) -> Check {
    Check {
        what: figure.what.to_string(),
        source: figure.source,
        lecture_says: figure.text.to_string(),
        computed: "(error)".into(),
        verdict: Verdict::Disagrees(format!("could not be recomputed: {error}")),
        note: None,
    }
}

#[cfg(test)]
mod tests;
