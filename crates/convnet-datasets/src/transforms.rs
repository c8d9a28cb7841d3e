//! Image transforms as torchvision applies them to PIL images, on
//! [`RawImage`]s (8-bit, channels last), then `ToTensor` and `Normalize`:
//! a [`Pipeline`], serialisable so that a checkpoint can store the one its
//! model is evaluated with.
//!
//! | here | torchvision |
//! |---|---|
//! | [`Transform::Resize`] | `Resize(size)` / `Resize((h, w))`, bilinear, antialiased (PIL) |
//! | [`Transform::CenterCrop`] | `CenterCrop((h, w))` (zero padding if larger) |
//! | [`Transform::RandomCrop`] | `RandomCrop((h, w), padding=p)` |
//! | [`Transform::RandomResizedCrop`] | `RandomResizedCrop((h, w), scale, ratio)` |
//! | [`Transform::RandomHorizontalFlip`] | `RandomHorizontalFlip(p)` |
//! | [`Transform::ColorJitter`] | `ColorJitter(brightness, contrast, saturation, hue)` |
//! | [`Pipeline::mean`], [`Pipeline::std`] | `ToTensor()` then `Normalize(mean, std)` |
//!
//! Random transforms draw from the generator they are given, in pipeline
//! order; the loader gives image `p` of epoch `e` the generator
//! `Rng::seed_from(seed).fork(e).fork(1).fork(p)` (as [`crate::DataLoader`]
//! does), so that an epoch is a pure function of `(seed, e)`.
//!
//! Resizing follows PIL's bilinear resampling step for step: separable,
//! horizontal pass then vertical, the filter widened by the scale factor
//! when downscaling (antialiasing), fixed-point weights (22 bits) and
//! rounding to 8 bits after each pass; on PNGs the result equals
//! torchvision's (`crates/convnet/tests/imagenet_preprocess.rs`).

use convnet_tensor::Rng;

use crate::error::{DatasetError, Result};
use crate::source::RawImage;

/// Target of a [`Transform::Resize`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ResizeTo {
    /// The shorter side becomes this, the longer one keeps the aspect ratio
    /// (`int(size * long / short)`, truncated as torchvision does).
    Shorter(usize),
    /// Exactly this size.
    Exact {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

/// One image transform (see the module docs for the torchvision
/// equivalents).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Transform {
    /// Bilinear resize, antialiased when downscaling.
    Resize(ResizeTo),
    /// The centre `height`×`width` region; top and left offsets are
    /// `round((H - height) / 2)` with ties to even (Python's `round`). An
    /// image smaller than the crop is padded with zeros first.
    CenterCrop {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// A random `height`×`width` region after zero padding of `padding`
    /// pixels on every side; the (padded) image must be at least that
    /// large.
    RandomCrop {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// Zero pixels added on every side first.
        padding: usize,
    },
    /// A random region of area `scale` × the image's and aspect ratio
    /// `ratio` (log-uniform), resized to `height`×`width`; after 10 failed
    /// attempts, the centre region of the closest allowed ratio.
    RandomResizedCrop {
        /// Output height.
        height: usize,
        /// Output width.
        width: usize,
        /// Range of the region's area as a fraction of the image's
        /// (torchvision: `(0.08, 1.0)`).
        scale: (f64, f64),
        /// Range of the region's width / height (torchvision: `(3/4, 4/3)`).
        ratio: (f64, f64),
    },
    /// Mirror left-right with probability `p`.
    RandomHorizontalFlip {
        /// Probability of a flip.
        p: f64,
    },
    /// Random brightness, contrast, saturation and hue changes, applied in a
    /// random order; each factor is drawn from `[max(0, 1 - x), 1 + x]`
    /// (hue: a shift in `[-hue, hue]` turns, `hue <= 0.5`); 0 disables one.
    ColorJitter {
        /// Brightness spread.
        brightness: f64,
        /// Contrast spread.
        contrast: f64,
        /// Saturation spread.
        saturation: f64,
        /// Hue spread.
        hue: f64,
    },
}

impl Transform {
    /// [`Transform::RandomResizedCrop`] with torchvision's default scale and
    /// ratio.
    pub fn random_resized_crop(height: usize, width: usize) -> Self {
        Transform::RandomResizedCrop {
            height,
            width,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Errors on a size of 0 or a parameter out of its range.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(DatasetError::Config(format!("{self:?}: {msg}")));
        let zero = |h: usize, w: usize| h == 0 || w == 0;
        match *self {
            Transform::Resize(ResizeTo::Shorter(0)) => bad("the size must be at least 1".into()),
            Transform::Resize(ResizeTo::Exact { height, width })
            | Transform::CenterCrop { height, width }
            | Transform::RandomCrop { height, width, .. }
            | Transform::RandomResizedCrop { height, width, .. }
                if zero(height, width) =>
            {
                bad("sizes must be at least 1".into())
            }
            Transform::RandomResizedCrop { scale, ratio, .. }
                if !(scale.0 > 0.0
                    && scale.0 <= scale.1
                    && scale.1 <= 1.0
                    && ratio.0 > 0.0
                    && ratio.0 <= ratio.1
                    && ratio.1.is_finite()) =>
            {
                bad("needs 0 < scale.0 <= scale.1 <= 1 and 0 < ratio.0 <= ratio.1".into())
            }
            Transform::RandomHorizontalFlip { p } if !(0.0..=1.0).contains(&p) => {
                bad("the probability must be in [0, 1]".into())
            }
            Transform::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
            } if ![brightness, contrast, saturation, hue]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0)
                || hue > 0.5 =>
            {
                bad("spreads must be >= 0 (hue <= 0.5)".into())
            }
            _ => Ok(()),
        }
    }

    /// The output size for an input of `size` (height, width), if this
    /// transform fixes it; `None` if it keeps the input's.
    fn fixed_size(&self) -> Option<(usize, usize)> {
        match *self {
            Transform::Resize(ResizeTo::Exact { height, width })
            | Transform::CenterCrop { height, width }
            | Transform::RandomCrop { height, width, .. }
            | Transform::RandomResizedCrop { height, width, .. } => Some((height, width)),
            _ => None,
        }
    }

    /// Applies the transform, drawing any randomness from `rng`.
    pub fn apply(&self, img: &RawImage, rng: &mut Rng) -> Result<RawImage> {
        Ok(match *self {
            Transform::Resize(to) => {
                let (h, w) = resized_size(img.height, img.width, to);
                resize(img, h, w)
            }
            Transform::CenterCrop { height, width } => center_crop(img, height, width),
            Transform::RandomCrop {
                height,
                width,
                padding,
            } => {
                let padded = pad(img, padding, padding, padding, padding);
                if padded.height < height || padded.width < width {
                    return Err(DatasetError::Config(format!(
                        "random crop of {height}x{width} from an image of {}x{} (with padding \
                         {padding}): the image is too small (resize it first)",
                        padded.height, padded.width
                    )));
                }
                let top = rng.below(padded.height - height + 1);
                let left = rng.below(padded.width - width + 1);
                crop(&padded, top, left, height, width)
            }
            Transform::RandomResizedCrop {
                height,
                width,
                scale,
                ratio,
            } => {
                let (top, left, h, w) = resized_crop_region(img, scale, ratio, rng);
                resize(&crop(img, top, left, h, w), height, width)
            }
            Transform::RandomHorizontalFlip { p } => {
                if rng.next_f64() < p {
                    hflip(img)
                } else {
                    img.clone()
                }
            }
            Transform::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
            } => crate::color::jitter(img, [brightness, contrast, saturation, hue], rng),
        })
    }
}

/// Transforms, then `ToTensor` (byte / 255) and `Normalize` (per channel:
/// `(x - mean[c]) / std[c]`; empty vectors for none, one value for every
/// channel).
///
/// ```
/// use convnet_datasets::{Pipeline, RawImage, Transform};
/// use convnet_tensor::Rng;
///
/// let pipeline = Pipeline {
///     transforms: vec![Transform::CenterCrop { height: 2, width: 2 }],
///     mean: vec![0.5],
///     std: vec![0.5],
/// };
/// pipeline.validate(1)?;
/// let img = RawImage::new(4, 4, 1, (0..16).map(|v| v * 17).collect())?;
/// let (values, shape) = pipeline.apply(&img, &mut Rng::seed_from(0))?;
/// assert_eq!(shape, [1, 2, 2]);
/// assert_eq!(values[0], (5.0 * 17.0 / 255.0 - 0.5) / 0.5); // pixel (1, 1)
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    /// Applied in order to the decoded image.
    pub transforms: Vec<Transform>,
    /// Per-channel means subtracted after `ToTensor`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviations dividing after the subtraction (> 0).
    pub std: Vec<f32>,
}

impl Pipeline {
    /// `ToTensor` and `Normalize(mean, std)` only.
    pub fn normalize(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Pipeline {
            transforms: Vec::new(),
            mean,
            std,
        }
    }

    /// Errors on a bad transform, a mean and std of different lengths or of
    /// a length other than 0, 1 or `channels`, a std <= 0 or a value that is
    /// not finite.
    pub fn validate(&self, channels: usize) -> Result<()> {
        for t in &self.transforms {
            t.validate()?;
        }
        let (m, s) = (self.mean.len(), self.std.len());
        if m != s || !(m == 0 || m == 1 || m == channels) {
            return Err(DatasetError::Config(format!(
                "normalisation of {channels}-channel images needs as many means as standard \
                 deviations, 1 or {channels} of each; got {m} means and {s} stds"
            )));
        }
        if let Some((mean, std)) = self
            .mean
            .iter()
            .zip(&self.std)
            .find(|(m, s)| !(m.is_finite() && s.is_finite() && **s > 0.0))
        {
            return Err(DatasetError::Config(format!(
                "normalisation needs finite means and standard deviations > 0, got mean {mean} \
                 and std {std}"
            )));
        }
        Ok(())
    }

    /// The `(height, width)` of every output if the pipeline fixes it (its
    /// last resizing or cropping transform gives an exact size).
    pub fn output_size(&self) -> Option<(usize, usize)> {
        self.transforms.iter().rev().find_map(|t| match t {
            Transform::Resize(ResizeTo::Shorter(_)) => Some(None),
            t => t.fixed_size().map(Some),
        })?
    }

    /// `true` if the pipeline draws random numbers.
    pub fn is_random(&self) -> bool {
        self.transforms.iter().any(|t| {
            matches!(
                t,
                Transform::RandomCrop { .. }
                    | Transform::RandomResizedCrop { .. }
                    | Transform::RandomHorizontalFlip { .. }
                    | Transform::ColorJitter { .. }
            )
        })
    }

    /// The transforms applied to `img`, still 8-bit.
    pub fn transform(&self, img: &RawImage, rng: &mut Rng) -> Result<RawImage> {
        let mut out: Option<RawImage> = None;
        for t in &self.transforms {
            out = Some(t.apply(out.as_ref().unwrap_or(img), rng)?);
        }
        Ok(out.unwrap_or_else(|| img.clone()))
    }

    /// The transformed, scaled and normalised image as `f32` values in
    /// `CHW` order, with its shape `[channels, height, width]`.
    pub fn apply(&self, img: &RawImage, rng: &mut Rng) -> Result<(Vec<f32>, [usize; 3])> {
        let out = self.transform(img, rng)?;
        let mut values = vec![0f32; out.pixels.len()];
        self.to_tensor_into(&out, &mut values);
        Ok((values, [out.channels, out.height, out.width]))
    }

    /// `ToTensor` + `Normalize` of `img` into `out` (`CHW`, as many values
    /// as `img` has bytes).
    pub fn to_tensor_into(&self, img: &RawImage, out: &mut [f32]) {
        let table = crate::dataset::byte_to_pixel_table();
        let plane = img.width * img.height;
        for c in 0..img.channels {
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (o, px) in dst.iter_mut().zip(img.pixels.chunks_exact(img.channels)) {
                *o = table[px[c] as usize];
            }
            let k = if self.mean.len() == 1 { 0 } else { c };
            if let (Some(&mean), Some(&std)) = (self.mean.get(k), self.std.get(k)) {
                for o in dst.iter_mut() {
                    *o = (*o - mean) / std;
                }
            }
        }
    }
}

/// The size a [`ResizeTo`] gives an image of `h`×`w` (as torchvision
/// computes it).
pub fn resized_size(h: usize, w: usize, to: ResizeTo) -> (usize, usize) {
    match to {
        ResizeTo::Exact { height, width } => (height, width),
        ResizeTo::Shorter(size) => {
            if h <= w {
                (size, (size as f64 * w as f64 / h.max(1) as f64) as usize)
            } else {
                ((size as f64 * h as f64 / w.max(1) as f64) as usize, size)
            }
        }
    }
}

/// The region `(top, left, height, width)` torchvision's
/// `RandomResizedCrop.get_params` samples.
fn resized_crop_region(
    img: &RawImage,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let (height, width) = (img.height as f64, img.width as f64);
    let area = height * width;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * (scale.0 + (scale.1 - scale.0) * rng.next_f64());
        let aspect = (log_lo + (log_hi - log_lo) * rng.next_f64()).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= img.width && 0 < h && h <= img.height {
            let top = rng.below(img.height - h + 1);
            let left = rng.below(img.width - w + 1);
            return (top, left, h, w);
        }
    }
    // Fallback: the centre crop of the closest ratio.
    let in_ratio = width / height;
    let (w, h) = if in_ratio < ratio.0 {
        (img.width, (width / ratio.0).round_ties_even() as usize)
    } else if in_ratio > ratio.1 {
        ((height * ratio.1).round_ties_even() as usize, img.height)
    } else {
        (img.width, img.height)
    };
    ((img.height - h) / 2, (img.width - w) / 2, h, w)
}

/// The `height`×`width` region at (`top`, `left`), which must be inside.
pub fn crop(img: &RawImage, top: usize, left: usize, height: usize, width: usize) -> RawImage {
    let c = img.channels;
    let mut out = Vec::with_capacity(height * width * c);
    for y in top..top + height {
        let start = (y * img.width + left) * c;
        out.extend_from_slice(&img.pixels[start..start + width * c]);
    }
    RawImage {
        width,
        height,
        channels: c,
        pixels: out,
    }
}

/// `img` with zero rows and columns added on each side.
pub fn pad(img: &RawImage, left: usize, top: usize, right: usize, bottom: usize) -> RawImage {
    if left + top + right + bottom == 0 {
        return img.clone();
    }
    let (w, h, c) = (
        img.width + left + right,
        img.height + top + bottom,
        img.channels,
    );
    let mut out = RawImage::zeros(w, h, c);
    for y in 0..img.height {
        let src = &img.pixels[y * img.width * c..(y + 1) * img.width * c];
        let start = ((y + top) * w + left) * c;
        out.pixels[start..start + img.width * c].copy_from_slice(src);
    }
    out
}

/// torchvision's `center_crop`: zero padding if the crop is larger, then
/// offsets `round((H - h) / 2)`, `round((W - w) / 2)` (ties to even).
pub fn center_crop(img: &RawImage, height: usize, width: usize) -> RawImage {
    let padded;
    let img = if height > img.height || width > img.width {
        let (dw, dh) = (
            width.saturating_sub(img.width),
            height.saturating_sub(img.height),
        );
        padded = pad(img, dw / 2, dh / 2, dw.div_ceil(2), dh.div_ceil(2));
        &padded
    } else {
        img
    };
    let top = ((img.height - height) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - width) as f64 / 2.0).round_ties_even() as usize;
    crop(img, top, left, height, width)
}

/// Mirror image left-right.
pub fn hflip(img: &RawImage) -> RawImage {
    let c = img.channels;
    let mut out = img.clone();
    for y in 0..img.height {
        for x in 0..img.width {
            let src = (y * img.width + (img.width - 1 - x)) * c;
            let dst = (y * img.width + x) * c;
            out.pixels[dst..dst + c].copy_from_slice(&img.pixels[src..src + c]);
        }
    }
    out
}

/// PIL's bilinear resampling weights for one axis: for each output index,
/// the first input index and the normalised weights.
fn resample_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle filter's support is 1
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // C's (int) casts truncate toward zero, as `as i64` does.
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut w: Vec<f64> = (min..max)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filter_scale).abs();
                    (1.0 - t).max(0.0)
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (min, w)
        })
        .collect()
}

/// One resampling pass along x (`horizontal`) or y, rounding to 8 bits.
fn resample_pass(img: &RawImage, out_len: usize, horizontal: bool) -> RawImage {
    let c = img.channels;
    let (w, h) = if horizontal {
        (out_len, img.height)
    } else {
        (img.width, out_len)
    };
    // PIL's fixed point: weights scaled by 2^22 and rounded, the sum
    // started at one half (2^21) and shifted back, clipped to [0, 255].
    const PRECISION_BITS: u32 = 22;
    let weights: Vec<(usize, Vec<i64>)> =
        resample_weights(if horizontal { img.width } else { img.height }, out_len)
            .into_iter()
            .map(|(min, ws)| {
                let fixed = ws
                    .iter()
                    .map(|w| (w * (1u64 << PRECISION_BITS) as f64 + 0.5).floor() as i64)
                    .collect();
                (min, fixed)
            })
            .collect();
    let mut out = RawImage::zeros(w, h, c);
    for y in 0..h {
        for x in 0..w {
            let (min, ws) = &weights[if horizontal { x } else { y }];
            for ch in 0..c {
                let mut sum = 1i64 << (PRECISION_BITS - 1);
                for (k, wt) in ws.iter().enumerate() {
                    let (sx, sy) = if horizontal {
                        (min + k, y)
                    } else {
                        (x, min + k)
                    };
                    sum += wt * i64::from(img.pixels[(sy * img.width + sx) * c + ch]);
                }
                out.pixels[(y * w + x) * c + ch] = (sum >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// Bilinear resize to `height`×`width` as PIL does it (antialiased when
/// downscaling): horizontal pass, then vertical pass.
pub fn resize(img: &RawImage, height: usize, width: usize) -> RawImage {
    let horizontal = if width != img.width {
        resample_pass(img, width, true)
    } else {
        img.clone()
    };
    if height != img.height {
        resample_pass(&horizontal, height, false)
    } else {
        horizontal
    }
}

#[cfg(test)]
mod tests;
