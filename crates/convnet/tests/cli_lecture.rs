//! `convnet lecture` end to end: the exit code, the flagged slips, the HTML
//! report and its pictures, and `--train` on a small synthetic MNIST.

use std::path::Path;

use convnet::datasets::idx::{write_idx, IdxArray};

mod common;
use common::{convnet, s, text};

/// The lecture's section titles, as the command prints them.
const SECTIONS: [&str; 13] = [
    "Couche de convolution — Image et filtre",
    "Couche de convolution — Zero-padding",
    "Couche de convolution — Dimension de la matrice créée",
    "Couche de convolution — Exemple et correction",
    "Couche de pooling",
    "LeNet 5 - 1998",
    "AlexNet",
    "Inception v1",
    "Modèles VGG",
    "ResNet",
    "Annexe : Fonction d'activation GELU",
    "Annexe : ConvNext",
    "checks:",
];

#[test]
fn lecture_exits_zero_and_flags_the_slips() {
    let o = convnet(&["lecture"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for title in SECTIONS {
        assert!(t.contains(title), "{title} missing in:\n{t}");
    }
    assert_eq!(t.matches("LECTURE SLIP").count(), 3, "{t}");
    assert!(
        t.contains("3 lecture slips (flagged, not failures), 0 disagree"),
        "{t}"
    );
    assert!(!t.contains("DISAGREES"), "{t}");
    // The worked example, recomputed.
    assert!(t.contains("[[-3, 1, 6], [4, 5, -1], [-1, 1, 6]]"), "{t}");
}

#[test]
fn lecture_flags_need_their_mode() {
    // --epochs means nothing without --train: refused, not ignored.
    let o = convnet(&["lecture", "--epochs", "2"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--train"), "{}", text(&o));
    let o = convnet(&["lecture", "--annex-runs", "0", "--annex"]);
    assert!(!o.status.success());
    // A report onto a file is refused, naming it.
    let file = tempfile::NamedTempFile::new().unwrap();
    let o = convnet(&["lecture", "--report", s(file.path())]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a folder"), "{}", text(&o));
}

/// Decodes a PNG and checks that it is a picture: a sensible size, several
/// colours, and not mostly blank.
fn assert_picture(path: &Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    assert!(
        (300..=4000).contains(&w) && (200..=4000).contains(&h),
        "{w}x{h}"
    );
    let mut colours = std::collections::HashSet::new();
    let mut ink = 0usize;
    for p in img.pixels() {
        colours.insert(p.0);
        if p.0 != [255, 255, 255] {
            ink += 1;
        }
    }
    assert!(
        colours.len() >= 4,
        "{}: {} colours",
        path.display(),
        colours.len()
    );
    let share = ink as f64 / (w * h) as f64;
    assert!(
        share > 0.02,
        "{}: {share:.3} of the pixels drawn",
        path.display()
    );
}

/// The `src="..."` of every `<img>` of a page.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img src=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_report_has_every_section_and_its_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let o = convnet(&["lecture", "--report", s(&report)]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for title in &SECTIONS[..12] {
        assert!(html.contains(title), "{title}");
    }
    // Self-contained: no script, nothing fetched from elsewhere.
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "external content"
    );
    assert_eq!(html.matches("class=\"slip\"").count(), 3);
    let sources = image_sources(&html);
    assert!(sources.len() >= 3, "{sources:?}");
    // The annex's ReLU and GELU curves, drawn by `convnet show`.
    assert!(
        sources.contains(&"activations.png".to_string()),
        "{sources:?}"
    );
    for src in &sources {
        assert!(!src.contains('/') && src.ends_with(".png"), "{src}");
        assert_picture(&report.join(src));
    }
}

/// Class `c` is a bright horizontal bar at rows `2c + 4` and `2c + 5`.
fn write_digits(dir: &Path, prefix: &str, n: usize) {
    let mut pixels = vec![0u8; n * 784];
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (i, &c) in labels.iter().enumerate() {
        let row = 2 * c as usize + 4;
        for r in [row, row + 1] {
            for x in 2..26 {
                pixels[i * 784 + r * 28 + x] = 180 + ((i * 7 + x) % 70) as u8;
            }
        }
    }
    let images = IdxArray::from_vec(&[n, 28, 28], pixels).unwrap();
    write_idx(dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
    let labels = IdxArray::from_vec(&[n], labels).unwrap();
    write_idx(dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels).unwrap();
}

#[test]
fn train_prints_the_lecture_table_beside_measured_errors() {
    let data = tempfile::tempdir().unwrap();
    let mnist = data.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_digits(&mnist, "train", 200);
    write_digits(&mnist, "t10k", 50);
    let report = data.path().join("report");
    let o = convnet(&[
        "--threads",
        "1",
        "lecture",
        "--train",
        "--epochs",
        "1",
        "--offline",
        "--data-dir",
        s(data.path()),
        "--progress",
        "plain",
        "--report",
        s(&report),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("training lenet1"), "{t}");
    assert!(t.contains("training lenet5"), "{t}");
    // Plain progress lines, not a bar, when redirected.
    assert!(t.contains("epoch 1/1"), "{t}");
    for (title, rate) in [
        ("LeNet (1989)", "1.70%"),
        ("LeNet-4", "1.10%"),
        ("LeNet-5 (1998)", "0.95%"),
    ] {
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with(title) && l.contains(rate))
            .unwrap_or_else(|| panic!("no row for {title} in:\n{t}"));
        // A measured error in percent follows the lecture's.
        let cells: Vec<&str> = line.split_whitespace().collect();
        let pos = cells.iter().position(|c| *c == rate).unwrap();
        let measured: f64 = cells[pos + 1].trim_end_matches('%').parse().unwrap();
        assert!((0.0..=100.0).contains(&measured), "{line}");
    }
    assert!(t.contains("200 training / 50 test images"), "{t}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("id=\"train\""));
    assert!(html.contains("0.95%"));
    // The error rates as a chart, in the LeNet section.
    assert!(image_sources(&html).contains(&"lenet_errors.png".to_string()));
    assert_picture(&report.join("lenet_errors.png"));
    // The data found, its samples are drawn by class.
    assert!(image_sources(&html).contains(&"samples-mnist.png".to_string()));
    assert_picture(&report.join("samples-mnist.png"));
}
