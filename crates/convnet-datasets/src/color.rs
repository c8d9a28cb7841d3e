//! Colour jitter as torchvision does it on PIL images: brightness, contrast
//! and saturation blend the image with a "degenerate" image (black, its mean
//! grey, its greyscale version) as `PIL.ImageEnhance` does, truncating to 8
//! bits after each step; hue shifts the hue in HSV space.

use convnet_tensor::Rng;

use crate::source::RawImage;

/// PIL's `convert("L")` of one RGB pixel (ITU-R 601-2 luma, rounded).
fn luma_601(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// PIL's `Image.blend(degenerate, img, factor)` of one byte: `d + f (v - d)`,
/// clipped to [0, 255] and truncated.
fn blend(degenerate: u8, value: u8, factor: f64) -> u8 {
    let v = degenerate as f64 + factor * (value as f64 - degenerate as f64);
    v.clamp(0.0, 255.0) as u8
}

/// The greyscale value of each pixel.
fn grey_values(img: &RawImage) -> Vec<u8> {
    match img.channels {
        3 => img
            .pixels
            .chunks_exact(3)
            .map(|p| luma_601(p[0], p[1], p[2]))
            .collect(),
        _ => img.pixels.clone(),
    }
}

/// Brightness: blend with black.
pub fn adjust_brightness(img: &RawImage, factor: f64) -> RawImage {
    let mut out = img.clone();
    out.pixels
        .iter_mut()
        .for_each(|v| *v = blend(0, *v, factor));
    out
}

/// Contrast: blend with the mean grey (rounded) of the image.
pub fn adjust_contrast(img: &RawImage, factor: f64) -> RawImage {
    let grey = grey_values(img);
    let mean = grey.iter().map(|&v| v as f64).sum::<f64>() / grey.len().max(1) as f64;
    let mean = (mean + 0.5) as u8;
    let mut out = img.clone();
    out.pixels
        .iter_mut()
        .for_each(|v| *v = blend(mean, *v, factor));
    out
}

/// Saturation: blend with the greyscale version (identity on grey images).
pub fn adjust_saturation(img: &RawImage, factor: f64) -> RawImage {
    if img.channels != 3 {
        return img.clone();
    }
    let grey = grey_values(img);
    let mut out = img.clone();
    for (px, &g) in out.pixels.chunks_exact_mut(3).zip(&grey) {
        px.iter_mut().for_each(|v| *v = blend(g, *v, factor));
    }
    out
}

/// Hue: the hue of every pixel turned by `shift` (in turns, `[-0.5, 0.5]`);
/// identity on grey images.
pub fn adjust_hue(img: &RawImage, shift: f64) -> RawImage {
    if img.channels != 3 {
        return img.clone();
    }
    let mut out = img.clone();
    for px in out.pixels.chunks_exact_mut(3) {
        let [r, g, b] = [px[0], px[1], px[2]].map(|v| v as f64 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta == 0.0 {
            continue; // grey: no hue
        }
        let (s, v) = (delta / max, max);
        let mut h = if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        h = (h + shift).rem_euclid(1.0);
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match i as i32 % 6 {
            0 => [v, t, p],
            1 => [q, v, p],
            2 => [p, v, t],
            3 => [p, q, v],
            4 => [t, p, v],
            _ => [v, p, q],
        };
        for (o, x) in px.iter_mut().zip(rgb) {
            *o = (x * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// torchvision's `ColorJitter`: a random order of the four adjustments,
/// then a factor for each enabled one (`spreads` = brightness, contrast,
/// saturation, hue; 0 disables), each applied in that order.
pub fn jitter(img: &RawImage, spreads: [f64; 4], rng: &mut Rng) -> RawImage {
    let mut order = [0usize, 1, 2, 3];
    rng.shuffle(&mut order);
    let mut factors = [None; 4];
    for (k, &spread) in spreads.iter().enumerate() {
        if spread > 0.0 {
            let (lo, hi) = if k == 3 {
                (-spread, spread)
            } else {
                ((1.0 - spread).max(0.0), 1.0 + spread)
            };
            factors[k] = Some(lo + (hi - lo) * rng.next_f64());
        }
    }
    let mut out = img.clone();
    for k in order {
        if let Some(f) = factors[k] {
            out = match k {
                0 => adjust_brightness(&out, f),
                1 => adjust_contrast(&out, f),
                2 => adjust_saturation(&out, f),
                _ => adjust_hue(&out, f),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_contrast_saturation_hue_on_worked_pixels() {
        let img = RawImage::new(2, 1, 3, vec![100, 50, 200, 20, 40, 60]).unwrap();
        // Brightness 0.5: every byte halved, truncated.
        assert_eq!(
            adjust_brightness(&img, 0.5).pixels,
            [50, 25, 100, 10, 20, 30]
        );
        // Greys (601 luma): 100*.299+50*.587+200*.114 = 82.05 -> 82;
        // 20*.299+40*.587+60*.114 = 36.3 -> 36; mean 59.
        assert_eq!(grey_values(&img), [82, 36]);
        // Contrast 0: the mean grey everywhere; 2: 59 + 2 (v - 59), clipped.
        assert_eq!(adjust_contrast(&img, 0.0).pixels, [59; 6]);
        assert_eq!(adjust_contrast(&img, 2.0).pixels, [141, 41, 255, 0, 21, 61]);
        // Saturation 0: the grey value in every channel.
        assert_eq!(
            adjust_saturation(&img, 0.0).pixels,
            [82, 82, 82, 36, 36, 36]
        );
        // Hue: red turned by a third of a turn is green, by two thirds blue.
        let red = RawImage::new(1, 1, 3, vec![255, 0, 0]).unwrap();
        assert_eq!(adjust_hue(&red, 1.0 / 3.0).pixels, [0, 255, 0]);
        assert_eq!(adjust_hue(&red, -1.0 / 3.0).pixels, [0, 0, 255]);
        assert_eq!(adjust_hue(&img, 0.0), img, "no shift, no change");
    }

    #[test]
    fn jitter_is_seeded_and_identity_without_spread() {
        let img = RawImage::new(2, 1, 3, vec![100, 50, 200, 20, 40, 60]).unwrap();
        let mut rng = Rng::seed_from(1);
        assert_eq!(jitter(&img, [0.0; 4], &mut rng), img);
        let a = jitter(&img, [0.4, 0.4, 0.4, 0.1], &mut Rng::seed_from(3));
        let b = jitter(&img, [0.4, 0.4, 0.4, 0.1], &mut Rng::seed_from(3));
        assert_eq!(a, b);
        assert_ne!(a, img);
    }
}
