//! Image files → the input of a greyscale model, as `convnet predict` does it.
//!
//! Two recipes ([`Preprocess`]):
//!
//! - **Digit**, MNIST's own (LeCun et al.): the ink is found against the
//!   background, cropped to its bounding box, scaled to fit a 20×20 box
//!   (for a 28×28 input) keeping its aspect ratio, and pasted so that its
//!   centre of mass is at the centre of the field. A digit written small and
//!   off-centre on a large sheet then looks like an MNIST digit.
//! - **Whole image**: the whole picture resized to the input size, for
//!   photos of objects (Fashion-MNIST).
//!
//! Both give light strokes on a dark background in [0, 1]: an image whose
//! border is light, like ink on paper, is inverted.

use std::path::Path;

use convnet_datasets::DatasetKind;
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageBuffer, Luma};

use super::{AppError, Result};

/// How an image is turned into a model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// MNIST's recipe for handwritten digits: background removed, ink
    /// cropped, fitted into a box of 20/28 of the side keeping its aspect
    /// ratio and centred by its centre of mass.
    Digit,
    /// The whole image resized to the input size (objects, as Fashion-MNIST).
    WholeImage,
}

impl Preprocess {
    /// The recipe for a model trained on `dataset`: digits for MNIST, the
    /// whole image for Fashion-MNIST and when the dataset is unknown.
    pub fn for_dataset(dataset: Option<DatasetKind>) -> Self {
        match dataset {
            Some(DatasetKind::Mnist) => Preprocess::Digit,
            Some(DatasetKind::FashionMnist) | None => Preprocess::WholeImage,
        }
    }

    /// One line for people saying what the recipe does to a `side`×`side` input.
    pub fn describe(self, side: usize) -> String {
        match self {
            Preprocess::Digit => format!(
                "the ink is cropped, scaled to fit {0}x{0} keeping its aspect ratio and centred \
                 by its centre of mass in {side}x{side} greyscale",
                digit_box(side as u32)
            ),
            Preprocess::WholeImage => {
                format!("the whole image is resized to {side}x{side} greyscale")
            }
        }
    }
}

/// A rectangle of the original image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InkBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// An image prepared for a square greyscale model, and what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedImage {
    /// `side * side` pixels in [0, 1], light strokes on a dark background.
    pub pixels: Vec<f32>,
    /// The original width and height.
    pub original_size: (u32, u32),
    /// `true` if the image was inverted (it had a light background).
    pub inverted: bool,
    /// The recipe used.
    pub preprocess: Preprocess,
    /// With [`Preprocess::Digit`]: where the ink is in the original image.
    pub ink_box: Option<InkBox>,
}

/// Reads a PNG or JPEG file and prepares it for a `side`×`side` greyscale
/// model with `preprocess`. Errors name the file: unreadable, undecodable,
/// or (for digits) without any ink.
pub fn prepare_image(path: &Path, side: u32, preprocess: Preprocess) -> Result<PreparedImage> {
    let img = decode_image(path)?;
    prepare_grey(&img.to_luma8(), side, preprocess, path)
}

pub use convnet_datasets::decode::{MAX_DECODE_BYTES, MAX_IMAGE_SIDE};

/// Reads and decodes a PNG or JPEG file (told by content); errors name the
/// file. Only a regular file is read (a FIFO would block, a device never
/// ends), and the header's dimensions are checked against
/// [`MAX_IMAGE_SIDE`] and [`MAX_DECODE_BYTES`] before any pixel is decoded
/// ([`convnet_datasets::decode::decode_image`], shared with the image
/// folders).
pub fn decode_image(path: &Path) -> Result<image::DynamicImage> {
    convnet_datasets::decode::decode_image(path).map_err(|e| match e {
        convnet_datasets::DatasetError::Io { path, source, .. } => AppError::io(path, source),
        convnet_datasets::DatasetError::Image { path, msg } => AppError::Image { path, msg },
        e => AppError::Dataset(e),
    })
}

/// [`prepare_image`] on an image already in memory; `path` only names it in
/// errors.
pub fn prepare_grey(
    grey: &GrayImage,
    side: u32,
    preprocess: Preprocess,
    path: &Path,
) -> Result<PreparedImage> {
    let original_size = grey.dimensions();
    if side == 0 || original_size.0 == 0 || original_size.1 == 0 {
        return Err(AppError::Image {
            path: path.to_path_buf(),
            msg: format!(
                "cannot prepare a {}x{} image for a {side}x{side} input",
                original_size.0, original_size.1
            ),
        });
    }
    match preprocess {
        Preprocess::WholeImage => {
            let (pixels, inverted) = whole_image(grey, side);
            Ok(PreparedImage {
                pixels,
                original_size,
                inverted,
                preprocess,
                ink_box: None,
            })
        }
        Preprocess::Digit => {
            let ink = ink_map(grey);
            let Some(bbox) = ink_bounding_box(&ink.values, grey.width(), grey.height()) else {
                return Err(AppError::Image {
                    path: path.to_path_buf(),
                    msg: "no digit found: the image is blank (nothing differs from the \
                          background by more than 10% of full scale)"
                        .into(),
                });
            };
            let pixels = fit_and_centre(&ink.values, grey.width(), bbox, side);
            Ok(PreparedImage {
                pixels,
                original_size,
                inverted: ink.inverted,
                preprocess,
                ink_box: Some(bbox),
            })
        }
    }
}

/// The side of the box a digit is fitted into: 20 for a 28×28 input.
pub fn digit_box(side: u32) -> u32 {
    ((side as f32 * 20.0 / 28.0).round() as u32).clamp(1, side)
}

/// The centre of mass `(x, y)` of a `width`-wide row-major image, in pixel
/// indices (the pixel at column 3 has x = 3); `None` if it is all zero.
pub fn centre_of_mass(pixels: &[f32], width: usize) -> Option<(f32, f32)> {
    let (mut sum, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in pixels.iter().enumerate() {
        let v = v as f64;
        sum += v;
        sx += v * (i % width) as f64;
        sy += v * (i / width) as f64;
    }
    (sum > 0.0).then(|| ((sx / sum) as f32, (sy / sum) as f32))
}

/// The old recipe: resize everything, then invert if the border's mean
/// brightness is above one half.
fn whole_image(grey: &GrayImage, side: u32) -> (Vec<f32>, bool) {
    let small = imageops::resize(grey, side, side, FilterType::Triangle);
    let mut pixels: Vec<f32> = small.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let s = side as usize;
    let border: Vec<f32> = (0..s)
        .flat_map(|i| {
            [
                pixels[i],
                pixels[(s - 1) * s + i],
                pixels[i * s],
                pixels[i * s + s - 1],
            ]
        })
        .collect();
    let inverted = border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    if inverted {
        for p in &mut pixels {
            *p = 1.0 - *p;
        }
    }
    (pixels, inverted)
}

/// Ink below this contrast over the background (fraction of full scale)
/// is no ink at all: the image is blank.
const MIN_CONTRAST: f32 = 0.1;
/// Pixels darker than this fraction of the strongest ink are background
/// (grey paper, shading, JPEG noise).
const INK_THRESHOLD: f32 = 0.25;
/// Stroke width the digit should have once fitted into a 20-pixel box;
/// MNIST's strokes are 2-3 pixels wide.
const TARGET_STROKE: f32 = 2.0;

/// The ink of an image, light on dark, background removed.
struct InkMap {
    /// Row-major, in [0, 1]: 0 is background, 1 the strongest ink.
    values: Vec<f32>,
    /// Whether the image had a light background and was inverted.
    inverted: bool,
}

/// The median of 8-bit values given their histogram.
fn histogram_median(hist: &[u64; 256]) -> u8 {
    let total: u64 = hist.iter().sum();
    let mut seen = 0;
    for (v, &n) in hist.iter().enumerate() {
        seen += n;
        if 2 * seen >= total {
            return v as u8;
        }
    }
    255
}

/// Finds the ink: the background is the border's median (light → invert),
/// its level (the lower of the border's and the whole image's median, so
/// neither a digit touching the border nor a bold tight crop fools it) is
/// subtracted, values under [`INK_THRESHOLD`] of the strongest ink are
/// zeroed, and isolated specks (fewer than 3 inked pixels in their 3×3
/// neighbourhood) are dropped.
fn ink_map(grey: &GrayImage) -> InkMap {
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    let raw = grey.as_raw();
    let mut border_hist = [0u64; 256];
    for x in 0..w {
        border_hist[raw[x] as usize] += 1;
        border_hist[raw[(h - 1) * w + x] as usize] += 1;
    }
    for y in 0..h {
        border_hist[raw[y * w] as usize] += 1;
        border_hist[raw[y * w + w - 1] as usize] += 1;
    }
    let inverted = histogram_median(&border_hist) > 127;
    let light = |g: u8| if inverted { 255 - g } else { g };
    let mut hist = [0u64; 256];
    let mut border_light = [0u64; 256];
    for &g in raw {
        hist[light(g) as usize] += 1;
    }
    for (v, &n) in border_hist.iter().enumerate() {
        border_light[light(v as u8) as usize] += n;
    }
    let background = histogram_median(&hist).min(histogram_median(&border_light));
    let mut values: Vec<f32> = raw
        .iter()
        .map(|&g| light(g).saturating_sub(background) as f32 / 255.0)
        .collect();
    let peak = values.iter().copied().fold(0.0, f32::max);
    if peak < MIN_CONTRAST {
        values.iter_mut().for_each(|v| *v = 0.0);
        return InkMap { values, inverted };
    }
    let cut = INK_THRESHOLD * peak;
    let inked: Vec<bool> = values.iter().map(|&v| v >= cut).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !inked[i] {
                values[i] = 0.0;
                continue;
            }
            let mut neighbours = 0;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    neighbours += inked[yy * w + xx] as u32;
                }
            }
            values[i] = if neighbours >= 3 {
                (values[i] / peak).min(1.0)
            } else {
                0.0
            };
        }
    }
    InkMap { values, inverted }
}

/// The smallest rectangle holding every non-zero pixel; `None` if none is.
fn ink_bounding_box(values: &[f32], width: u32, height: u32) -> Option<InkBox> {
    let (w, h) = (width as usize, height as usize);
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        let row = &values[y * w..(y + 1) * w];
        let Some(first) = row.iter().position(|&v| v > 0.0) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v > 0.0).unwrap_or(first);
        x0 = x0.min(first);
        x1 = x1.max(last);
        y0 = y0.min(y);
        y1 = y;
    }
    (x0 <= x1 && y0 < h).then(|| InkBox {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0 + 1) as u32,
        height: (y1 - y0 + 1) as u32,
    })
}

/// The stroke width of the ink in `crop` (`w` wide), in pixels: twice the
/// inked area over the number of boundary pixels (a stroke of length L and
/// width W has area L·W and about 2L boundary pixels).
fn stroke_width(crop: &[f32], w: usize) -> f32 {
    let h = crop.len() / w;
    let inked = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && crop[y as usize * w + x as usize] > 0.0
    };
    let (mut area, mut boundary) = (0usize, 0usize);
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !inked(x, y) {
                continue;
            }
            area += 1;
            if !(inked(x - 1, y) && inked(x + 1, y) && inked(x, y - 1) && inked(x, y + 1)) {
                boundary += 1;
            }
        }
    }
    if boundary == 0 {
        return 1.0;
    }
    2.0 * area as f32 / boundary as f32
}

/// The maximum over a `(2r+1)`×`(2r+1)` square around each pixel (thickens
/// strokes by `r` on each side), done as two 1-D passes.
fn dilate(values: &[f32], w: usize, r: usize) -> Vec<f32> {
    let h = values.len() / w;
    let mut rows = vec![0.0f32; values.len()];
    for y in 0..h {
        for x in 0..w {
            let lo = x.saturating_sub(r);
            let hi = (x + r + 1).min(w);
            rows[y * w + x] = values[y * w + lo..y * w + hi]
                .iter()
                .copied()
                .fold(0.0, f32::max);
        }
    }
    let mut out = vec![0.0f32; values.len()];
    for y in 0..h {
        let lo = y.saturating_sub(r);
        let hi = (y + r + 1).min(h);
        for x in 0..w {
            out[y * w + x] = (lo..hi).map(|yy| rows[yy * w + x]).fold(0.0, f32::max);
        }
    }
    out
}

/// Crops `ink` (`width` wide) to `bbox`, thickens strokes that would end up
/// thinner than MNIST's, scales the crop to fit a [`digit_box`] keeping its
/// aspect ratio (triangle filter, antialiased), stretches it so its
/// strongest pixel is 1, and pastes it into `side`×`side` with its centre
/// of mass at `(side/2, side/2)`, rounded to whole pixels. The shift is
/// clamped so the whole digit stays in the field.
fn fit_and_centre(ink: &[f32], width: u32, bbox: InkBox, side: u32) -> Vec<f32> {
    let fit = digit_box(side);
    let scale = fit as f32 / bbox.width.max(bbox.height) as f32;
    let crop_of = |pad: usize| {
        let (cw, ch) = (
            bbox.width as usize + 2 * pad,
            bbox.height as usize + 2 * pad,
        );
        let mut crop = vec![0.0f32; cw * ch];
        for y in 0..bbox.height as usize {
            let src = (bbox.y as usize + y) * width as usize + bbox.x as usize;
            let dst = (y + pad) * cw + pad;
            crop[dst..dst + bbox.width as usize]
                .copy_from_slice(&ink[src..src + bbox.width as usize]);
        }
        (crop, cw, ch)
    };
    let (mut crop, mut cw, mut ch) = crop_of(0);
    // A thin pen on a big sheet would shrink to a faint hairline: thicken
    // its strokes first so that they come out about TARGET_STROKE wide.
    let stroke = stroke_width(&crop, cw);
    if scale < 1.0 && stroke * scale < TARGET_STROKE * 0.75 {
        let r = ((TARGET_STROKE / scale - stroke) / 2.0).round().max(1.0) as usize;
        let padded = crop_of(r);
        crop = dilate(&padded.0, padded.1, r);
        (cw, ch) = (padded.1, padded.2);
    }
    // The whole (possibly thickened) crop fits the box.
    let scale = fit as f32 / cw.max(ch) as f32;
    let nw = ((cw as f32 * scale).round() as u32).clamp(1, fit);
    let nh = ((ch as f32 * scale).round() as u32).clamp(1, fit);
    let img = ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(cw as u32, ch as u32, crop)
        .expect("the crop holds width * height pixels");
    let small = imageops::resize(&img, nw, nh, FilterType::Triangle).into_raw();
    let peak = small.iter().copied().fold(0.0, f32::max);
    let small: Vec<f32> = if peak > 0.0 {
        small.iter().map(|v| v / peak).collect()
    } else {
        small
    };
    let mut out = vec![0.0f32; (side * side) as usize];
    let Some((cx, cy)) = centre_of_mass(&small, nw as usize) else {
        return out;
    };
    let centre = side as f32 / 2.0;
    let off_x = ((centre - cx).round() as i64).clamp(0, (side - nw) as i64) as usize;
    let off_y = ((centre - cy).round() as i64).clamp(0, (side - nh) as i64) as usize;
    for y in 0..nh as usize {
        let dst = (y + off_y) * side as usize + off_x;
        out[dst..dst + nw as usize].copy_from_slice(&small[y * nw as usize..(y + 1) * nw as usize]);
    }
    out
}

#[cfg(test)]
mod tests;
