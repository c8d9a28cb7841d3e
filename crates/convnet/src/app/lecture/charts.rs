//! Two more pictures of the report: VGG's small filters (one 5×5 against
//! two 3×3 convolutions, the window each output sees) and, after
//! `--train`, the lecture's error rates beside the measured ones.

use std::path::Path;

use plotters::prelude::*;

use super::figures::{draw_err, draw_grid, label, picture, text_style, Area, Grid, PALE, WINDOW};
use super::number;
use super::train::TrainResult;
use crate::app::Result;

const LECTURE_BAR: RGBColor = RGBColor(158, 202, 225);
const MEASURED_BAR: RGBColor = RGBColor(49, 130, 189);

fn blank(n: usize) -> Vec<Vec<String>> {
    vec![vec![String::new(); n]; n]
}

/// A 5×5 input seen through one 5×5 filter (top) and through two stacked
/// 3×3 filters (bottom), with the parameter counts of each (one channel,
/// with biases).
pub(super) fn small_filters_picture(path: &Path) -> Result<()> {
    let mut rng = convnet_tensor::Rng::seed_from(0);
    let count = |k: usize, rng: &mut convnet_tensor::Rng| -> Result<usize> {
        let conv = convnet_layers::Conv2d::new(convnet_layers::Conv2dConfig::new(1, 1, k), rng)?;
        Ok(convnet_layers::Layer::num_params(&conv))
    };
    let (p5, p3) = (count(5, &mut rng)?, count(3, &mut rng)?);
    let cell = 30;
    let grid = |n: usize, x: i32, y: i32, caption: &str, lit: fn(usize, usize) -> bool| Grid {
        cells: blank(n),
        fill: Box::new(move |r, c| if lit(r, c) { WINDOW } else { PALE }),
        caption: caption.to_string(),
        x,
        y,
        cell,
    };
    let all = |_: usize, _: usize| true;
    let grids = [
        grid(5, 40, 70, "input 5×5", all),
        grid(1, 420, 70 + 2 * cell, "output", all),
        grid(5, 40, 300, "input 5×5", all),
        grid(3, 290, 300 + cell, "after the first 3×3", all),
        grid(1, 520, 300 + 2 * cell, "output", all),
    ];
    picture(path, (720, 520), |root| {
        label(
            root,
            "Two 3×3 convolutions see the window of one 5×5",
            (360, 25),
            20.0,
            path,
        )?;
        for g in &grids {
            draw_grid(root, g, path)?;
        }
        label(root, "5×5 →", (300, 70 + 5 * cell / 2), 18.0, path)?;
        label(root, "3×3 →", (235, 300 + 5 * cell / 2), 18.0, path)?;
        label(root, "3×3 →", (460, 300 + 5 * cell / 2), 18.0, path)?;
        label(
            root,
            &format!("one 5×5: 5·5 + 1 = {} parameters", number(p5 as f64)),
            (560, 240),
            16.0,
            path,
        )?;
        label(
            root,
            &format!(
                "two 3×3: 2·(3·3 + 1) = {} parameters",
                number(2.0 * p3 as f64)
            ),
            (360, 495),
            16.0,
            path,
        )
    })
}

/// A filled bar from `base` up `height` pixels.
fn bar(
    root: &Area<'_>,
    path: &Path,
    (x, width): (i32, i32),
    (base, height): (i32, i32),
    color: RGBColor,
) -> Result<()> {
    root.draw(&Rectangle::new(
        [(x, base - height), (x + width, base)],
        color.filled(),
    ))
    .map_err(|e| draw_err(path)(e.to_string()))
}

/// The lecture's error rates beside the measured ones, as grouped bars.
pub(super) fn error_chart(rows: &[TrainResult], path: &Path) -> Result<()> {
    let (w, h) = (720u32, 420u32);
    let (base, top) = (340, 80);
    let highest = rows
        .iter()
        .flat_map(|r| [r.lecture_error, r.measured_error])
        .fold(0.1f64, f64::max);
    let scale = f64::from(base - top) / highest;
    let group = (w as i32 - 80) / rows.len().max(1) as i32;
    picture(path, (w, h), |root| {
        label(
            root,
            "Test error on MNIST (%): the lecture beside this run",
            (w as i32 / 2, 25),
            20.0,
            path,
        )?;
        let err = |e: DrawingAreaErrorKind<_>| draw_err(path)(e.to_string());
        root.draw(&PathElement::new(
            vec![(40, base), (w as i32 - 30, base)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            let x = 60 + i as i32 * group;
            let bar_w = group / 3;
            for (j, (v, color)) in [
                (r.lecture_error, LECTURE_BAR),
                (r.measured_error, MEASURED_BAR),
            ]
            .into_iter()
            .enumerate()
            {
                let bx = x + j as i32 * (bar_w + 8);
                let height = (v * scale).round() as i32;
                bar(root, path, (bx, bar_w), (base, height), color)?;
                let at = (bx + bar_w / 2, base - height - 12);
                root.draw(&Text::new(
                    format!("{v:.2}%"),
                    at,
                    text_style(14.0, &BLACK, true),
                ))
                .map_err(err)?;
            }
            label(root, &r.title, (x + bar_w + 4, base + 20), 15.0, path)?;
            label(
                root,
                &format!("{} epoch{}", r.epochs, if r.epochs == 1 { "" } else { "s" }),
                (x + bar_w + 4, base + 40),
                13.0,
                path,
            )?;
        }
        for (k, (name, color)) in [
            ("lecture (the papers)", LECTURE_BAR),
            ("measured here", MEASURED_BAR),
        ]
        .into_iter()
        .enumerate()
        {
            let y = 50;
            let x = 140 + 260 * k as i32;
            bar(root, path, (x, 16), (y + 8, 16), color)?;
            root.draw(&Text::new(
                name.to_string(),
                (x + 24, y - 6),
                text_style(14.0, &BLACK, false),
            ))
            .map_err(err)?;
        }
        Ok(())
    })
}
