//! The lecture's worked examples as labelled PNG pictures, drawn from the
//! values the kernels recompute: the 4×4 ∗ 2×2 convolution and its ReLU,
//! the 2×2 max-pooling, the zero-padding of 2.
//!
//! Rendered in pure Rust: plotters' bitmap backend, the DejaVu Sans font
//! embedded in the binary, the PNG written atomically by
//! [`convnet_train::plot::save_png`].

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::checks::{
    pooling_example, rows, worked_example, EXAMPLE_FILTER, EXAMPLE_INPUT, POOL_INPUT,
};
use super::number;
use super::titles::{EXAMPLE, LENET, PADDING, POOLING, VGG};
use super::Lecture;
use crate::app::{AppError, Result};
use convnet_train::plot::{register_font, save_png, FONT};

/// A picture of the report: a PNG file beside the page, its caption and
/// the section (title) it belongs to. Other parts of the program can add
/// theirs to the list the report is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// File name, relative to the report's folder.
    pub file: String,
    /// Caption.
    pub caption: String,
    /// Title of the section it illustrates (a section of the lecture, or
    /// any other heading: figures of unknown sections get their own).
    pub section: String,
}

pub(super) fn draw_err(path: &Path) -> impl Fn(String) -> AppError + '_ {
    move |msg| AppError::Image {
        path: path.to_path_buf(),
        msg,
    }
}

/// A matrix drawn as labelled cells.
pub(super) struct Grid {
    pub(super) cells: Vec<Vec<String>>,
    pub(super) fill: Box<dyn Fn(usize, usize) -> RGBColor>,
    pub(super) caption: String,
    pub(super) x: i32,
    pub(super) y: i32,
    pub(super) cell: i32,
}

pub(super) const WINDOW: RGBColor = RGBColor(255, 214, 102);
pub(super) const PALE: RGBColor = RGBColor(245, 245, 245);
pub(super) const WINDOWS: [RGBColor; 4] = [
    RGBColor(158, 202, 225),
    RGBColor(253, 208, 162),
    RGBColor(161, 217, 155),
    RGBColor(218, 188, 231),
];

pub(super) fn text_style(size: f64, color: &RGBColor, centred: bool) -> TextStyle<'static> {
    let style = (FONT, size).into_font().color(color);
    if centred {
        style.pos(Pos::new(HPos::Center, VPos::Center))
    } else {
        style
    }
}

/// Draws an RGB picture of `w`×`h` with `draw` and writes it as a PNG.
pub(super) fn picture(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| draw_err(path)(e.to_string()))?;
        draw(&root)?;
        root.present().map_err(|e| draw_err(path)(e.to_string()))?;
    }
    save_png(path, buf, w, h).map_err(|e| draw_err(path)(e.to_string()))
}

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

pub(super) fn draw_grid(root: &Area<'_>, g: &Grid, path: &Path) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<_>| draw_err(path)(e.to_string());
    for (r, row) in g.cells.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (x, y) = (g.x + c as i32 * g.cell, g.y + r as i32 * g.cell);
            let corners = [(x, y), (x + g.cell, y + g.cell)];
            root.draw(&Rectangle::new(corners, (g.fill)(r, c).filled()))
                .map_err(err)?;
            root.draw(&Rectangle::new(corners, BLACK.stroke_width(1)))
                .map_err(err)?;
            let centre = (x + g.cell / 2, y + g.cell / 2);
            root.draw(&Text::new(
                v.clone(),
                centre,
                text_style(20.0, &BLACK, true),
            ))
            .map_err(err)?;
        }
    }
    let width = g.cells.first().map_or(0, Vec::len) as i32 * g.cell;
    let below = (g.x + width / 2, g.y + g.cells.len() as i32 * g.cell + 22);
    root.draw(&Text::new(
        g.caption.clone(),
        below,
        text_style(16.0, &BLACK, true),
    ))
    .map_err(err)?;
    Ok(())
}

pub(super) fn label(
    root: &Area<'_>,
    s: &str,
    at: (i32, i32),
    size: f64,
    path: &Path,
) -> Result<()> {
    root.draw(&Text::new(
        s.to_string(),
        at,
        text_style(size, &BLACK, true),
    ))
    .map_err(|e| draw_err(path)(e.to_string()))
}

fn strings(m: &[Vec<f32>]) -> Vec<Vec<String>> {
    m.iter()
        .map(|r| r.iter().map(|&v| number(f64::from(v))).collect())
        .collect()
}

fn to_vecs<const W: usize>(m: &[[f32; W]]) -> Vec<Vec<f32>> {
    m.iter().map(|r| r.to_vec()).collect()
}

/// The worked example: input ∗ filter = convolution, then ReLU, with the
/// first window and the value it gives highlighted.
fn convolution_picture(path: &Path) -> Result<()> {
    let (conv, activated) = worked_example()?;
    let (conv, activated) = (rows(&conv), rows(&activated));
    let cell = 56;
    let top = 70;
    let negative: Vec<Vec<bool>> = conv
        .iter()
        .map(|r| r.iter().map(|&v| v < 0.0).collect())
        .collect();
    let grids = [
        Grid {
            cells: strings(&to_vecs(&EXAMPLE_INPUT)),
            fill: Box::new(|r, c| if r < 2 && c < 2 { WINDOW } else { WHITE }),
            caption: "input 4×4".into(),
            x: 30,
            y: top,
            cell,
        },
        Grid {
            cells: strings(&to_vecs(&EXAMPLE_FILTER)),
            fill: Box::new(|_, _| WINDOW),
            caption: "filter 2×2".into(),
            x: 320,
            y: top + cell,
            cell,
        },
        Grid {
            cells: strings(&conv),
            fill: Box::new(|r, c| if r == 0 && c == 0 { WINDOW } else { WHITE }),
            caption: "convolution 3×3".into(),
            x: 500,
            y: top + cell / 2,
            cell,
        },
        Grid {
            cells: strings(&activated),
            fill: Box::new(move |r, c| if negative[r][c] { PALE } else { WHITE }),
            caption: "after ReLU".into(),
            x: 760,
            y: top + cell / 2,
            cell,
        },
    ];
    // The first value, term by term, negative factors in parentheses.
    let factor = |v: f32| {
        if v < 0.0 {
            format!("({})", number(f64::from(v)))
        } else {
            number(f64::from(v))
        }
    };
    let terms: Vec<String> = (0..2)
        .flat_map(|r| (0..2).map(move |c| (r, c)))
        .map(|(r, c)| {
            format!(
                "{}·{}",
                factor(EXAMPLE_INPUT[r][c]),
                factor(EXAMPLE_FILTER[r][c])
            )
        })
        .collect();
    let sum = format!(
        "first value: {} = {}",
        terms.join(" + "),
        number(f64::from(conv[0][0]))
    );
    picture(path, (960, 380), |root| {
        label(
            root,
            "Convolution 2×2, stride 1, no bias, then ReLU (recomputed by the conv2d kernel)",
            (480, 25),
            20.0,
            path,
        )?;
        for g in &grids {
            draw_grid(root, g, path)?;
        }
        label(root, "∗", (290, top + 2 * cell), 34.0, path)?;
        label(root, "=", (470, top + 2 * cell), 34.0, path)?;
        label(root, "ReLU →", (715, top + 2 * cell), 20.0, path)?;
        label(root, &sum, (480, 345), 17.0, path)
    })
}

/// The pooling example: each 2×2 window and its maximum in one colour.
fn pooling_picture(path: &Path) -> Result<()> {
    let out = rows(&pooling_example()?);
    let cell = 60;
    let window = |r: usize, c: usize| WINDOWS[(r / 2) * 2 + c / 2];
    let grids = [
        Grid {
            cells: strings(&to_vecs(&POOL_INPUT)),
            fill: Box::new(window),
            caption: "input 4×4".into(),
            x: 40,
            y: 70,
            cell,
        },
        Grid {
            cells: strings(&out),
            fill: Box::new(|r, c| WINDOWS[r * 2 + c]),
            caption: "after pooling 2×2".into(),
            x: 480,
            y: 70 + cell,
            cell,
        },
    ];
    picture(path, (680, 380), |root| {
        label(
            root,
            "Max-pooling 2×2, stride 2 (recomputed by the max_pool2d kernel)",
            (340, 25),
            20.0,
            path,
        )?;
        for g in &grids {
            draw_grid(root, g, path)?;
        }
        label(root, "max →", (390, 70 + 2 * cell), 22.0, path)
    })
}

/// A 7×7 image with a zero-padding of 2 (the lecture's figure), and what a
/// 3×3 filter does to its size.
fn padding_picture(path: &Path) -> Result<()> {
    let (n, p) = (7usize, 2usize);
    let side = n + 2 * p;
    let inside = move |r: usize, c: usize| (p..p + n).contains(&r) && (p..p + n).contains(&c);
    let cells: Vec<Vec<String>> = (0..side)
        .map(|r| {
            (0..side)
                .map(|c| if inside(r, c) { "" } else { "0" }.to_string())
                .collect()
        })
        .collect();
    let grow = convnet_tensor::conv_output_size(n, 3, 2, 1, 1)
        .map_err(|e| draw_err(path)(e.to_string()))?;
    let keep = convnet_tensor::conv_output_size(n, 3, 1, 1, 1)
        .map_err(|e| draw_err(path)(e.to_string()))?;
    let grid = Grid {
        cells,
        fill: Box::new(move |r, c| {
            if r < 3 && c < 3 {
                WINDOW
            } else if inside(r, c) {
                RGBColor(158, 202, 225)
            } else {
                WHITE
            }
        }),
        caption: format!("{n}×{n} image with a zero-padding of {p}: {side}×{side}"),
        x: 30,
        y: 60,
        cell: 30,
    };
    picture(path, (760, 440), |root| {
        label(
            root,
            "Zero-padding of 2, and a 3×3 filter (in yellow)",
            (380, 25),
            20.0,
            path,
        )?;
        draw_grid(root, &grid, path)?;
        let lines = [
            format!("3×3 filter, padding 2: {n} → {grow}"),
            format!("⌊({n} + 2·2 − 3)/1⌋ + 1 = {grow}: the image grows"),
            format!("3×3 filter, padding 1: {n} → {keep} (kept)"),
            "padding 2 keeps the size of a 5×5 filter".to_string(),
        ];
        for (i, l) in lines.iter().enumerate() {
            label(root, l, (560, 150 + 40 * i as i32), 16.0, path)?;
        }
        Ok(())
    })
}

/// Writes the lecture's pictures into `dir` and lists them: the worked
/// examples, VGG's small filters, and the measured error rates when
/// `lecture` has its training results.
pub fn write_figures(lecture: &Lecture, dir: &Path) -> Result<Vec<Figure>> {
    let figures = [
        (
            "convolution.png",
            "The worked example: the 4×4 input convolved with the 2×2 filter [[-1, 2], [0, 1]], \
             then ReLU (negative values, shaded, become 0).",
            EXAMPLE,
            convolution_picture as fn(&Path) -> Result<()>,
        ),
        (
            "pooling.png",
            "Max-pooling 2×2 with stride 2: each window's maximum, in its colour.",
            POOLING,
            pooling_picture,
        ),
        (
            "padding.png",
            "A 7×7 image with a zero-padding of 2 (11×11): a 3×3 filter makes it grow to 9×9; \
             padding 1 would keep 7×7.",
            PADDING,
            padding_picture,
        ),
        (
            "small_filters.png",
            "One 5×5 convolution and two 3×3 convolutions see the same 5×5 window of the \
             input (every input pixel, in yellow, reaches the output); the two 3×3 have fewer \
             parameters.",
            VGG,
            super::charts::small_filters_picture,
        ),
    ];
    let mut out = Vec::new();
    for (file, caption, section, draw) in figures {
        draw(&dir.join(file))?;
        out.push(Figure {
            file: file.to_string(),
            caption: caption.to_string(),
            section: section.to_string(),
        });
    }
    if let Some(rows) = &lecture.training {
        let file = "lenet_errors.png";
        super::charts::error_chart(rows, &dir.join(file))?;
        out.push(Figure {
            file: file.to_string(),
            caption: "Test error on MNIST: the lecture's table beside the LeNets trained here."
                .to_string(),
            section: LENET.to_string(),
        });
    }
    Ok(out)
}
