//! `convnet lecture --report DIR`: one self-contained HTML page (inline
//! CSS, no script, nothing fetched) with every section, number and verdict,
//! and the pictures as PNG files beside it.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use convnet_train::progress::thousands;

use super::annex::Measured;
use super::{write_figures, Figure, Lecture, Verdict, LECTURE_FILE};
use crate::app::{AppError, Result};

/// The page's file name inside the report folder.
pub const REPORT_FILE: &str = "index.html";

const CSS: &str = "
body { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; max-width: 70rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 2px solid #ddd; padding-bottom: .2rem; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .8rem 0; font-size: .93rem; }
th, td { border: 1px solid #ccc; padding: .35rem .55rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.fig { font-family: 'DejaVu Sans Mono', Consolas, monospace; white-space: nowrap; }
tr.agrees td.verdict { color: #1b6e20; font-weight: bold; }
tr.slip { background: #fff4cc; }
tr.slip td.verdict { color: #8a5a00; font-weight: bold; }
tr.disagrees { background: #ffd9d6; }
tr.disagrees td.verdict { color: #a01010; font-weight: bold; }
.why { display: block; font-size: .88rem; color: #5a4500; margin-top: .2rem; font-weight: normal; }
.note { display: block; font-size: .82rem; color: #666; margin-top: .15rem; }
.summary { padding: .6rem .9rem; border-radius: 6px; background: #eef6ee; border: 1px solid #b9dbb9; }
.summary.failed { background: #ffe9e7; border-color: #e6a19a; }
.quoted { font-style: italic; color: #555; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9rem; color: #444; margin-top: .3rem; }
nav ol { columns: 2; font-size: .93rem; }
";

/// `&`, `<`, `>` and `"` escaped for HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn anchor(i: usize) -> String {
    format!("s{}", i + 1)
}

/// Writes the lecture's pictures and the page into `dir` (created if
/// needed) and returns the page's path.
pub fn write_report(lecture: &Lecture, dir: &Path) -> Result<PathBuf> {
    write_report_with(lecture, dir, Vec::new())
}

/// Creates the report's folder (and its parents); an error if `dir` is
/// something else than a folder.
pub fn create_report_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(AppError::Usage(format!(
            "{}: not a folder (the report is a folder holding {REPORT_FILE} and its pictures)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| AppError::io(dir, e))
}

/// [`write_report`] with more pictures: `extra` are PNG files already in
/// `dir`, each shown in the section whose title it names (or at the end).
pub fn write_report_with(lecture: &Lecture, dir: &Path, extra: Vec<Figure>) -> Result<PathBuf> {
    create_report_dir(dir)?;
    let mut figures = write_figures(lecture, dir)?;
    figures.extend(extra);
    let page = dir.join(REPORT_FILE);
    let html = render_html(lecture, &figures);
    convnet_train::fsutil::write_atomic(&page, html.as_bytes())?;
    Ok(page)
}

fn figure_html(out: &mut String, f: &Figure) {
    let _ = writeln!(
        out,
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
        escape(&f.file),
        escape(&f.caption),
        escape(&f.caption)
    );
}

/// The page: a summary, the sections with their checks and pictures, the
/// training and annex tables when measured, other pictures at the end.
pub fn render_html(lecture: &Lecture, figures: &[Figure]) -> String {
    let mut out = String::new();
    let (agree, slips, disagree) = lecture.counts();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>The lecture, recomputed — convnet</title>\n<style>{CSS}</style>\n</head>\n<body>"
    );
    let _ = writeln!(
        out,
        "<h1>The lecture, recomputed</h1>\n<p class=\"sub\">Every number and worked example of \
         <em>Réseau de neurones convolutionnel</em> (<code>{LECTURE_FILE}</code>), recomputed by \
         convnet's own kernels, layers and model zoo, beside the lecture's figure.</p>"
    );
    let _ = writeln!(
        out,
        "<p class=\"summary{}\"><strong>{} checks:</strong> {agree} agree, {slips} lecture \
         slips (highlighted: the lecture's figure is wrong, for the reason given), {disagree} \
         disagree{}.</p>",
        if disagree > 0 { " failed" } else { "" },
        agree + slips + disagree,
        if disagree > 0 {
            " (the code does not compute what it expects: a bug)"
        } else {
            ""
        }
    );
    let mut extra_sections = Vec::new();
    if lecture.training.is_some() {
        extra_sections.push(("train", "LeNet on MNIST: the lecture's error rates"));
    }
    if lecture.annex.is_some() {
        extra_sections.push(("annex", "Annexe : ConvNeXt against Swin, measured"));
    }
    let _ = writeln!(out, "<nav><ol>");
    for (i, s) in lecture.sections.iter().enumerate() {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            anchor(i),
            escape(&s.title)
        );
    }
    for (id, title) in &extra_sections {
        let _ = writeln!(out, "<li><a href=\"#{id}\">{}</a></li>", escape(title));
    }
    let _ = writeln!(out, "</ol></nav>");

    for (i, s) in lecture.sections.iter().enumerate() {
        let _ = writeln!(
            out,
            "<h2 id=\"{}\">{}</h2>\n<table>\n<tr><th>line</th><th>what</th><th>the lecture \
             says</th><th>recomputed</th><th>verdict</th></tr>",
            anchor(i),
            escape(&s.title)
        );
        for c in &s.checks {
            let class = match c.verdict {
                Verdict::Agrees => "agrees",
                Verdict::LectureSlip(_) => "slip",
                Verdict::Disagrees(_) => "disagrees",
            };
            let why = c
                .verdict
                .explanation()
                .map(|w| format!("<span class=\"why\">{}</span>", escape(w)))
                .unwrap_or_default();
            let note = c
                .note
                .as_deref()
                .map(|n| format!("<span class=\"note\">{}</span>", escape(n)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td class=\"num\">{}</td><td>{}{note}</td><td \
                 class=\"fig\">{}</td><td class=\"fig\">{}</td><td class=\"verdict\">{}{why}</td></tr>",
                c.source.line,
                escape(&c.what),
                escape(&c.lecture_says),
                escape(&c.computed),
                escape(c.verdict.label())
            );
        }
        let _ = writeln!(out, "</table>");
        for f in figures.iter().filter(|f| f.section == s.title) {
            figure_html(&mut out, f);
        }
    }

    if let Some(rows) = &lecture.training {
        let _ = writeln!(
            out,
            "<h2 id=\"train\">LeNet on MNIST: the lecture's error rates</h2>\n<p>The lecture's \
             table (line 285) beside LeNet-1, LeNet-4 and LeNet-5 trained here with \
             <code>convnet train</code>'s defaults for a few epochs (the papers trained far \
             longer).</p>\n<table>\n<tr><th>model</th><th>parameters</th><th>error, \
             lecture</th><th>error, measured</th><th>epochs</th><th>training / test \
             images</th><th>seconds</th></tr>"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num quoted\">{:.2}%</td><td \
                 class=\"num\">{:.2}%</td><td class=\"num\">{}</td><td class=\"num\">{} / \
                 {}</td><td class=\"num\">{:.0}</td></tr>",
                escape(&r.title),
                thousands(r.params as f64),
                r.lecture_error,
                r.measured_error,
                r.epochs,
                thousands(r.train_images as f64),
                thousands(r.test_images as f64),
                r.seconds
            );
        }
        let _ = writeln!(out, "</table>");
    }
    if let Some(rows) = &lecture.annex {
        let _ = writeln!(
            out,
            "<h2 id=\"annex\">Annexe : ConvNeXt against Swin, measured</h2>\n<p>Parameters and \
             images/s measured on this machine's CPU ({} threads; {}); the \
             accuracies and the images/s the lecture gives are <span \
             class=\"quoted\">quoted</span> from Liu et al. (2022), ImageNet-1k, A100 \
             GPU.</p>\n<table>\n<tr><th>model</th><th>zoo name</th><th>parameters</th><th>images/s \
             here</th><th>images/s (quoted)</th><th>top-1 (quoted)</th></tr>",
            rayon::current_num_threads(),
            rows.first().map_or(String::new(), |r| r.options.describe())
        );
        for r in rows {
            let (mut params, here) = r.cells();
            if let Measured::Failed(e) = &r.measured {
                params = format!("failed: {e}");
            }
            let params = escape(&params);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{params}</td><td \
                 class=\"num\">{here}</td><td class=\"num quoted\">{:.1}</td><td class=\"num \
                 quoted\">{:.1}%</td></tr>",
                escape(&r.title),
                escape(&r.model),
                r.quoted_images_per_s,
                r.quoted_top1
            );
        }
        let _ = writeln!(out, "</table>");
    }
    let orphans: Vec<&Figure> = figures
        .iter()
        .filter(|f| !lecture.sections.iter().any(|s| s.title == f.section))
        .collect();
    let mut shown: Vec<&str> = Vec::new();
    for f in &orphans {
        if !shown.contains(&f.section.as_str()) {
            shown.push(&f.section);
            let _ = writeln!(out, "<h2>{}</h2>", escape(&f.section));
            for g in orphans.iter().filter(|g| g.section == f.section) {
                figure_html(&mut out, g);
            }
        }
    }
    let _ = writeln!(
        out,
        "<p class=\"sub\">Made by <code>convnet lecture --report</code>.</p>\n</body>\n</html>"
    );
    out
}
