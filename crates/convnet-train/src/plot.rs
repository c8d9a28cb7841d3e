//! PNG plots: training curves and a confusion-matrix heat map.
//!
//! Rendered in pure Rust (plotters' bitmap backend, the DejaVu Sans font
//! embedded in the binary, PNG encoding by the `image` crate): no system
//! library, no fontconfig.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Result, TrainError};
use crate::fsutil::write_atomic;
use crate::history::History;
use crate::metrics::ConfusionMatrix;

/// The family name the embedded DejaVu Sans is registered under (after
/// [`register_font`]): `(FONT, size)` is a plotters font.
pub const FONT: &str = "sans-serif";

/// Registers the embedded DejaVu Sans (regular and bold) as [`FONT`] with
/// plotters, once per process. Call it before drawing any text.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; a failure would only lose the labels.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Plot {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Encodes an RGB buffer (`width * height * 3` bytes, row-major) as PNG and
/// writes it atomically ([`crate::fsutil::write_atomic`]); a buffer of the
/// wrong size is an error naming `path`.
pub fn save_png(path: &Path, rgb: Vec<u8>, width: u32, height: u32) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| plot_err(path, "pixel buffer of the wrong size"))?;
    // Best compression: pictures kept in a repository stay small.
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    img.write_with_encoder(encoder)
        .map_err(|e| plot_err(path, e))?;
    write_atomic(path, &bytes)
}

/// A value range with some margin, never empty.
fn padded(values: impl Iterator<Item = f64>, floor_zero: bool) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let span = (hi - lo).max(1e-3);
    let lo = if floor_zero {
        (lo - 0.1 * span).max(0.0)
    } else {
        lo - 0.1 * span
    };
    lo..hi + 0.1 * span
}

/// Draws the training curves of `history` into a PNG: loss (train and test)
/// on the left, accuracy in percent on the right, against the epoch.
pub fn plot_history(history: &History, title: &str, path: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1100u32, 460u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let root = root
            .titled(title, (FONT, 22))
            .map_err(|e| plot_err(path, e))?;
        let (left, right) = root.split_horizontally(w / 2);
        let recs = &history.records;
        let n = recs.iter().map(|r| r.epoch).max().unwrap_or(1).max(2) as f64;
        let x_range = 0.8..n + 0.2;
        let train_loss: Vec<(f64, f64)> = recs
            .iter()
            .map(|r| (r.epoch as f64, r.train_loss))
            .collect();
        let test_loss: Vec<(f64, f64)> = recs
            .iter()
            .filter_map(|r| r.test_loss.map(|v| (r.epoch as f64, v)))
            .collect();
        let train_acc: Vec<(f64, f64)> = recs
            .iter()
            .map(|r| (r.epoch as f64, 100.0 * r.train_accuracy))
            .collect();
        let test_acc: Vec<(f64, f64)> = recs
            .iter()
            .filter_map(|r| r.test_accuracy.map(|v| (r.epoch as f64, 100.0 * v)))
            .collect();
        let panels = [
            (&left, "loss", "cross-entropy", train_loss, test_loss, true),
            (
                &right,
                "accuracy",
                "accuracy (%)",
                train_acc,
                test_acc,
                false,
            ),
        ];
        for (area, caption, y_desc, train, test, is_loss) in panels {
            // Loss falls and accuracy rises: keep the legend out of the way.
            let legend_at = if is_loss {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            };
            let y_range = padded(train.iter().chain(&test).map(|p| p.1), is_loss);
            let mut chart = ChartBuilder::on(area)
                .caption(caption, (FONT, 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(x_range.clone(), y_range)
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(y_desc)
                .x_labels(recs.len().clamp(2, 12))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 13))
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for (points, color, label) in [(train, BLUE, "train"), (test, RED, "test")] {
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| plot_err(path, e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| plot_err(path, e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT, 14))
                .position(legend_at)
                .draw()
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    save_png(path, buf, w, h)
}

/// Draws a confusion matrix as a heat map PNG: rows are true classes (with
/// their names), columns predicted classes (by index), each cell shaded by the
/// fraction of its row and labelled with its count; the row's accuracy is
/// written on the right.
pub fn plot_confusion(
    matrix: &ConfusionMatrix,
    class_names: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    let k = matrix.classes().max(1) as i32;
    let cell = 52i32;
    let name = |i: usize| class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
    let label_w = 40
        + 8 * (0..matrix.classes())
            .map(|i| name(i).len() + 4)
            .max()
            .unwrap_or(4) as i32;
    let (x0, y0) = (label_w, 80);
    let w = (x0 + k * cell + 110) as u32;
    let h = (y0 + k * cell + 50) as u32;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let draw_err = |e| plot_err(path, e);
        let text = |s: String, pos: (i32, i32), size: f64, color: &RGBColor| {
            Text::new(s, pos, (FONT, size).into_font().color(color))
        };
        let centered =
            |s: String, pos: (i32, i32), size: f64, color: &RGBColor| {
                let style = (FONT, size).into_font().color(color).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                );
                Text::new(s, pos, style)
            };
        root.draw(&text(title.to_string(), (10, 8), 20.0, &BLACK))
            .map_err(draw_err)?;
        root.draw(&centered(
            "predicted class".into(),
            (x0 + k * cell / 2, y0 - 45),
            15.0,
            &BLACK,
        ))
        .map_err(draw_err)?;
        root.draw(&text("true class".into(), (10, y0 - 22), 15.0, &BLACK))
            .map_err(draw_err)?;
        root.draw(&text(
            "accuracy".into(),
            (x0 + k * cell + 12, y0 - 22),
            15.0,
            &BLACK,
        ))
        .map_err(draw_err)?;
        let per_class = matrix.per_class_accuracy();
        for (t, acc) in per_class.iter().enumerate() {
            let row_total: u64 = (0..matrix.classes()).map(|p| matrix.count(t, p)).sum();
            let y = y0 + t as i32 * cell;
            root.draw(&text(
                if name(t) == t.to_string() {
                    name(t)
                } else {
                    format!("{} ({t})", name(t))
                },
                (10, y + cell / 2 - 8),
                14.0,
                &BLACK,
            ))
            .map_err(draw_err)?;
            for p in 0..matrix.classes() {
                let x = x0 + p as i32 * cell;
                let count = matrix.count(t, p);
                let frac = if row_total > 0 {
                    count as f64 / row_total as f64
                } else {
                    0.0
                };
                // White to dark blue, by the square root so small confusions show.
                let s = frac.sqrt();
                let lerp = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
                let color = RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0));
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))
                .map_err(draw_err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))
                .map_err(draw_err)?;
                let fg = if s > 0.6 { WHITE } else { BLACK };
                root.draw(&centered(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    13.0,
                    &fg,
                ))
                .map_err(draw_err)?;
            }
            let acc = acc
                .map(|a| format!("{:.1}%", 100.0 * a))
                .unwrap_or("-".into());
            root.draw(&text(
                acc,
                (x0 + k * cell + 12, y + cell / 2 - 8),
                14.0,
                &BLACK,
            ))
            .map_err(draw_err)?;
        }
        for p in 0..matrix.classes() {
            root.draw(&centered(
                p.to_string(),
                (x0 + p as i32 * cell + cell / 2, y0 - 14),
                14.0,
                &BLACK,
            ))
            .map_err(draw_err)?;
        }
        root.draw(&text(
            format!(
                "overall accuracy {:.2}% on {} images",
                100.0 * matrix.accuracy(),
                matrix.total()
            ),
            (10, y0 + k * cell + 16),
            15.0,
            &BLACK,
        ))
        .map_err(draw_err)?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    save_png(path, buf, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EpochRecord;

    fn is_png(path: &Path) -> (u32, u32) {
        let img = image::open(path).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn history_plot_is_a_png_with_ink() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::default();
        for e in 1..=3 {
            h.records.push(EpochRecord {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_accuracy: 0.8 + 0.05 * e as f64,
                test_loss: Some(0.9 / e as f64),
                test_accuracy: Some(0.82 + 0.05 * e as f64),
                test_top5: Some(0.99),
                lr: 0.1,
                train_seconds: 1.0,
                eval_seconds: 0.1,
                images_per_second: 100.0,
            });
        }
        let p = dir.path().join("curves.png");
        plot_history(&h, "test run", &p).unwrap();
        assert_eq!(is_png(&p), (1100, 460));
        // Blue and red curves are there.
        let img = image::open(&p).unwrap().to_rgb8();
        let blue = img.pixels().filter(|px| px.0 == [0, 0, 255]).count();
        let red = img.pixels().filter(|px| px.0 == [255, 0, 0]).count();
        assert!(blue > 100 && red > 100, "blue {blue} red {red}");
        // A single epoch, no test set: still a plot.
        h.records.truncate(1);
        h.records[0].test_loss = None;
        h.records[0].test_accuracy = None;
        plot_history(&h, "one epoch", &p).unwrap();
    }

    #[test]
    fn confusion_heat_map_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ConfusionMatrix::new(3);
        for (t, p, n) in [(0, 0, 50), (0, 1, 3), (1, 1, 40), (2, 0, 7), (2, 2, 30)] {
            for _ in 0..n {
                m.add(t, p);
            }
        }
        let names: Vec<String> = ["cat", "dog", "bird"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = dir.path().join("confusion.png");
        plot_confusion(&m, &names, "confusion", &p).unwrap();
        let (w, h) = is_png(&p);
        assert!(w > 200 && h > 200);
        let img = image::open(&p).unwrap().to_rgb8();
        let dark = img.pixels().filter(|px| px.0 == [8, 48, 107]).count();
        assert!(
            dark > 52 * 40,
            "the full diagonal cell of class 1 is dark: {dark}"
        );
        let e = plot_confusion(&m, &names, "x", &dir.path().join("no/such/dir.png")).unwrap_err();
        assert!(e.to_string().contains("no/such"), "{e}");
    }
}
