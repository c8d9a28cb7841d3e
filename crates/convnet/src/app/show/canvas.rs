//! A white RGB picture to paint images into and write labels on: image
//! tiles are copied pixel by pixel (nearest-neighbour enlarged), text is
//! drawn by plotters with the embedded DejaVu Sans
//! ([`convnet_train::plot::register_font`]), and the PNG is written
//! atomically ([`convnet_train::plot::save_png`]).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::app::{AppError, Result};
use convnet_train::plot::{register_font, save_png, FONT};

/// Where a label sits relative to its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The point is the label's top-left corner.
    TopLeft,
    /// The point is the middle of the label's top edge.
    TopCenter,
    /// The point is the middle of the label's left edge.
    MiddleLeft,
}

/// An RGB picture being drawn, and the file it is for (named in errors).
#[derive(Debug)]
pub struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    path: PathBuf,
}

/// Text width in pixels of `text` at font size `size`, a little more than
/// plotters draws DejaVu Sans (about 0.45 of the size per character): for
/// laying out label columns.
pub fn text_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size * 0.5).ceil() as u32
}

impl Canvas {
    /// A white `width`×`height` picture for the file `path`.
    pub fn new(path: &Path, width: u32, height: u32) -> Result<Self> {
        const MAX_SIDE: u32 = 16_384;
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(AppError::Usage(format!(
                "{}: a picture of {width}x{height} pixels cannot be drawn (1 to {MAX_SIDE} a side)",
                path.display()
            )));
        }
        register_font();
        Ok(Canvas {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
            path: path.to_path_buf(),
        })
    }

    /// Sets one pixel; outside the picture, nothing.
    fn put(&mut self, x: u32, y: u32, color: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Fills a rectangle.
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, color);
            }
        }
    }

    /// Paints an image of `w`×`h` pixels at (`x`, `y`), each pixel a
    /// `scale`×`scale` square coloured by `color(index)` (`index` row-major).
    pub fn tile(
        &mut self,
        (x, y): (u32, u32),
        (w, h): (usize, usize),
        scale: u32,
        color: impl Fn(usize) -> [u8; 3],
    ) {
        for row in 0..h {
            for col in 0..w {
                let c = color(row * w + col);
                self.fill_rect(
                    x + col as u32 * scale,
                    y + row as u32 * scale,
                    scale,
                    scale,
                    c,
                );
            }
        }
    }

    /// Draws a thin grey frame around a rectangle (just outside it).
    pub fn frame(&mut self, x: u32, y: u32, w: u32, h: u32) {
        let grey = [170, 170, 170];
        let (x0, y0) = (x.saturating_sub(1), y.saturating_sub(1));
        self.fill_rect(x0, y0, w + 2, 1, grey);
        self.fill_rect(x0, y + h, w + 2, 1, grey);
        self.fill_rect(x0, y0, 1, h + 2, grey);
        self.fill_rect(x + w, y0, 1, h + 2, grey);
    }

    /// Writes `text` at (`x`, `y`) in black, font size `size`.
    pub fn text(
        &mut self,
        text: &str,
        (x, y): (u32, u32),
        size: f64,
        anchor: Anchor,
    ) -> Result<()> {
        self.colored_text(text, (x, y), size, anchor, [0, 0, 0])
    }

    /// Writes `text` at (`x`, `y`) in `color`, font size `size`.
    pub fn colored_text(
        &mut self,
        text: &str,
        (x, y): (u32, u32),
        size: f64,
        anchor: Anchor,
        color: [u8; 3],
    ) -> Result<()> {
        let pos = match anchor {
            Anchor::TopLeft => Pos::new(HPos::Left, VPos::Top),
            Anchor::TopCenter => Pos::new(HPos::Center, VPos::Top),
            Anchor::MiddleLeft => Pos::new(HPos::Left, VPos::Center),
        };
        let style = (FONT, size)
            .into_font()
            .color(&RGBColor(color[0], color[1], color[2]))
            .pos(pos);
        let path = self.path.clone();
        let fail = |e: String| AppError::Image {
            path: path.clone(),
            msg: format!("drawing the label {text:?}: {e}"),
        };
        let root = BitMapBackend::with_buffer(&mut self.rgb, (self.width, self.height))
            .into_drawing_area();
        root.draw(&Text::new(text.to_string(), (x as i32, y as i32), style))
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Encodes the picture as PNG and writes it atomically to its path.
    pub fn save(self) -> Result<()> {
        Ok(save_png(&self.path, self.rgb, self.width, self.height)?)
    }
}

/// Grey levels for values in `lo..=hi` (black to white); a flat range is
/// mid-grey.
pub fn grey(v: f32, lo: f32, hi: f32) -> [u8; 3] {
    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let g = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
    [g, g, g]
}

/// The smallest and largest finite values of `values` (`(0, 0)` if none).
pub fn min_max(values: &[f32]) -> (f32, f32) {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 0.0)
    }
}
