//! ImageNet input for models with torchvision's pretrained weights: the
//! preprocessing of each model's `IMAGENET1K_V1` weights, an image loader
//! that reproduces it, the 1,000 class names and a top-k helper.
//!
//! PyTorch equivalent of [`load_imagenet_image`]:
//!
//! ```python
//! weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
//! x = weights.transforms()(PIL.Image.open(path).convert("RGB")).unsqueeze(0)
//! ```
//!
//! which resizes the shorter side with PIL's antialiased filter, centre
//! crops, scales to [0, 1] and normalises per channel. The resampling here
//! follows PIL's arithmetic (separable passes, horizontal first, fixed-point
//! weights, uint8 rounding after each pass), so on PNGs the result equals
//! torchvision's (measured max difference 1.2e-7). JPEGs differ by the
//! decoders' rounding, the `image` crate's zune-jpeg against PIL's
//! libjpeg-turbo: up to 2 uint8 levels after the resize with 4:4:4 chroma,
//! 3 with 4:2:0 (0.035 and 0.052 in normalised units, means 2e-4 and 7e-3;
//! see `tests/imagenet_preprocess.rs`).
//!
//! # Shapes
//! Any PNG/JPEG (greyscale, RGB, with or without alpha) → `[1, 3, crop, crop]`.

use std::path::Path;

use convnet_tensor::Tensor;
use image::RgbImage;

use super::{AppError, Result};

/// Per-channel mean of ImageNet (RGB, in [0, 1]), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];

/// Per-channel standard deviation of ImageNet (RGB, in [0, 1]).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The resampling filter of the resize, as PIL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Triangle filter, support 1 (PIL `BILINEAR`).
    Bilinear,
    /// Keys cubic with a = -0.5, support 2 (PIL `BICUBIC`).
    Bicubic,
}

impl Interpolation {
    /// Half-width of the filter at scale 1, in input pixels.
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }

    /// The filter's weight at distance `x` (in output-scaled pixels).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// How an image becomes a model input: resize the shorter side to `resize`,
/// centre crop `crop`×`crop`, scale to [0, 1], then `(x - mean) / std` per
/// RGB channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagenetPreprocess {
    /// Length of the shorter side after resizing (the longer one keeps the
    /// aspect ratio, truncated as torchvision does).
    pub resize: u32,
    /// Side of the square centre crop.
    pub crop: u32,
    /// The resize filter (antialiased when downscaling).
    pub interpolation: Interpolation,
    /// Per-channel mean subtracted, RGB.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by, RGB.
    pub std: [f32; 3],
}

impl ImagenetPreprocess {
    /// One line saying what is done to an image, for the user.
    pub fn describe(&self) -> String {
        let filter = match self.interpolation {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        };
        format!(
            "RGB, shorter side resized to {} ({filter}, antialiased), centre crop {}x{}, \
             normalised with mean {:?} and std {:?}",
            self.resize, self.crop, self.crop, self.mean, self.std
        )
    }

    /// The preprocessing of most `IMAGENET1K_V1` weights: shorter side 256,
    /// bilinear, 224 crop, ImageNet mean and std.
    pub const fn standard(resize: u32) -> Self {
        ImagenetPreprocess {
            resize,
            crop: 224,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// [`ImagenetPreprocess::standard`] with bicubic resizing: torchvision's
    /// Swin weights.
    pub const fn bicubic(resize: u32) -> Self {
        ImagenetPreprocess {
            interpolation: Interpolation::Bicubic,
            ..Self::standard(resize)
        }
    }
}

/// The preprocessing of torchvision's `IMAGENET1K_V1` weights for a zoo
/// model name, or `None` for a model without such weights.
///
/// As torchvision 0.29's `weights.transforms()` prints them, all with a
/// 224 crop and ImageNet mean/std:
///
/// | models | resize | interpolation |
/// |---|---|---|
/// | alexnet, vgg11…19(_bn), googlenet, resnet18…152, vit_b_16 | 256 | bilinear |
/// | convnext_tiny | 236 | bilinear |
/// | convnext_small | 230 | bilinear |
/// | convnext_base | 232 | bilinear |
/// | swin_t | 232 | bicubic |
/// | swin_s | 246 | bicubic |
/// | swin_b | 238 | bicubic |
///
/// **GoogLeNet** is the exception in normalisation: torchvision builds the
/// pretrained GoogLeNet with `transform_input=True`, whose first step maps
/// the ImageNet-normalised input `(v - m) / s` to
/// `(v - m) / s * (s / 0.5) + (m - 0.5) / 0.5 = (v - 0.5) / 0.5` per channel.
/// So for `googlenet` this returns mean 0.5 and std 0.5 for every channel,
/// to feed a model that does *not* apply `transform_input` itself (the
/// fixture script checks the equivalence numerically: max difference
/// 1.2e-7).
///
/// ```
/// use convnet::app::imagenet::{imagenet_preprocess, Interpolation};
/// let p = imagenet_preprocess("convnext_tiny").unwrap();
/// assert_eq!((p.resize, p.crop, p.interpolation), (236, 224, Interpolation::Bilinear));
/// assert!(imagenet_preprocess("lenet5").is_none());
/// ```
pub fn imagenet_preprocess(model: &str) -> Option<ImagenetPreprocess> {
    let p = match model {
        "alexnet" | "vgg11" | "vgg11_bn" | "vgg13" | "vgg13_bn" | "vgg16" | "vgg16_bn"
        | "vgg19" | "vgg19_bn" | "resnet18" | "resnet34" | "resnet50" | "resnet101"
        | "resnet152" | "vit_b_16" => ImagenetPreprocess::standard(256),
        "googlenet" => ImagenetPreprocess {
            mean: [0.5; 3],
            std: [0.5; 3],
            ..ImagenetPreprocess::standard(256)
        },
        "convnext_tiny" => ImagenetPreprocess::standard(236),
        "convnext_small" => ImagenetPreprocess::standard(230),
        "convnext_base" => ImagenetPreprocess::standard(232),
        "swin_t" => ImagenetPreprocess::bicubic(232),
        "swin_s" => ImagenetPreprocess::bicubic(246),
        "swin_b" => ImagenetPreprocess::bicubic(238),
        _ => return None,
    };
    Some(p)
}

/// Reads a PNG or JPEG and prepares it as torchvision's `IMAGENET1K_V1`
/// transforms do (see [`imagenet_preprocess`]): greyscale and alpha are
/// converted to RGB (alpha dropped), the shorter side resized to
/// `p.resize` (antialiased like PIL), a centre crop of `p.crop` (offsets
/// rounded as torchvision's `center_crop`, half to even; zero padding when
/// the crop is larger than the image), scaled to [0, 1] and normalised.
///
/// # Shapes
/// Returns `[1, 3, p.crop, p.crop]`, NCHW.
///
/// # Errors
/// [`AppError::Io`] if the file cannot be read, [`AppError::Image`] naming
/// the path if it cannot be decoded, [`AppError::Usage`] if `resize` or
/// `crop` is 0.
pub fn load_imagenet_image(path: &Path, p: &ImagenetPreprocess) -> Result<Tensor> {
    if p.resize == 0 || p.crop == 0 {
        return Err(AppError::Usage(format!(
            "resize ({}) and crop ({}) must be positive",
            p.resize, p.crop
        )));
    }
    let img = super::prepare::decode_image(path)?;
    let rgb = img.to_rgb8();
    let resized = resize_shorter_side(&rgb, p.resize, p.interpolation);
    let data = crop_and_normalise(&resized, p);
    let side = p.crop as usize;
    Tensor::from_vec(&[1, 3, side, side], data).map_err(|e| AppError::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Output size (width, height) when the shorter side becomes `short`:
/// torchvision's `int(short * long / short_in)` for the longer side.
fn resized_size(width: u32, height: u32, short: u32) -> (u32, u32) {
    let (s, l) = (width.min(height), width.max(height));
    let long = (u64::from(short) * u64::from(l)) as f64 / f64::from(s);
    let long = long as u32;
    if width <= height {
        (short, long)
    } else {
        (long, short)
    }
}

/// Resizes so the shorter side is `short`, as PIL's `Image.resize`.
fn resize_shorter_side(img: &RgbImage, short: u32, filter: Interpolation) -> RgbImage {
    let (w, h) = img.dimensions();
    let (out_w, out_h) = resized_size(w, h, short);
    if (out_w, out_h) == (w, h) {
        return img.clone();
    }
    resize_like_pil(img, out_w, out_h, filter)
}

/// Fixed-point fraction bits of the resampling weights, as PIL's 8-bit path
/// (32-bit accumulator: 8 bits of value, 2 of headroom for filter overshoot).
const PRECISION_BITS: u32 = 22;

/// The taps of a 1-D resampling from `in_size` to `out_size` pixels.
struct Taps {
    /// Per output pixel: first input pixel and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `out_size * stride` fixed-point weights; row `i` holds output `i`'s.
    weights: Vec<i32>,
    /// Weights per output pixel (the widest footprint).
    stride: usize,
}

/// PIL's antialiased taps: output pixel `i` is centred at input coordinate
/// `(i + 0.5) * scale`; when downscaling (`scale > 1`) the filter is
/// stretched by `scale`, so every input pixel contributes. Weights are
/// normalised to sum 1, then rounded to `PRECISION_BITS` fixed point.
fn taps(in_size: usize, out_size: usize, filter: Interpolation) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let stride = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * stride];
    let mut w = vec![0f64; stride];
    for (i, row) in weights.chunks_exact_mut(stride).enumerate() {
        let center = (i as f64 + 0.5) * scale;
        // `as` truncates toward zero, as C's `(int)` does in PIL.
        let first = ((center - support + 0.5) as i64).max(0) as usize;
        let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = end - first;
        let mut total = 0.0;
        for (k, wk) in w[..count].iter_mut().enumerate() {
            *wk = filter.weight(((first + k) as f64 - center + 0.5) / filter_scale);
            total += *wk;
        }
        for (k, out) in row[..count].iter_mut().enumerate() {
            let wk = if total != 0.0 { w[k] / total } else { w[k] };
            let fixed = wk * f64::from(1u32 << PRECISION_BITS);
            *out = if fixed < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((first, count));
    }
    Taps {
        bounds,
        weights,
        stride,
    }
}

/// One weighted sum in fixed point, rounded half up and clamped to a byte.
fn fixed_to_u8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB image to `out_w`×`out_h` with PIL's algorithm: a
/// horizontal pass then a vertical one (each skipped if that side keeps its
/// size), each rounding to uint8.
fn resize_like_pil(img: &RgbImage, out_w: u32, out_h: u32, filter: Interpolation) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (out_w as usize, out_h as usize);
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut data: Vec<u8> = img.as_raw().clone();
    // Row-major, 3 bytes per pixel: data[(y * width + x) * 3 + c].
    if out_w != in_w {
        let t = taps(in_w, out_w, filter);
        let mut out = vec![0u8; out_w * in_h * 3];
        for (src, dst) in data
            .chunks_exact(in_w * 3)
            .zip(out.chunks_exact_mut(out_w * 3))
        {
            for (x, &(first, count)) in t.bounds.iter().enumerate() {
                let k = &t.weights[x * t.stride..x * t.stride + count];
                for c in 0..3 {
                    let acc = k.iter().enumerate().fold(half, |acc, (j, &wj)| {
                        acc + i64::from(src[(first + j) * 3 + c]) * i64::from(wj)
                    });
                    dst[x * 3 + c] = fixed_to_u8(acc);
                }
            }
        }
        data = out;
    }
    if out_h != in_h {
        let t = taps(in_h, out_h, filter);
        let row = out_w * 3;
        let mut out = vec![0u8; row * out_h];
        for (y, dst) in out.chunks_exact_mut(row).enumerate() {
            let (first, count) = t.bounds[y];
            let k = &t.weights[y * t.stride..y * t.stride + count];
            for (i, d) in dst.iter_mut().enumerate() {
                let acc = k.iter().enumerate().fold(half, |acc, (j, &wj)| {
                    acc + i64::from(data[(first + j) * row + i]) * i64::from(wj)
                });
                *d = fixed_to_u8(acc);
            }
        }
        data = out;
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, data)
        .expect("the buffer has out_w * out_h * 3 bytes")
}

/// Offset of a centred window of `crop` in `size`: torchvision's
/// `int(round((size - crop) / 2.0))` (Python rounds half to even), or minus
/// the left/top zero padding when the window is larger.
fn crop_offset(size: u32, crop: u32) -> i64 {
    if crop > size {
        -i64::from((crop - size) / 2)
    } else {
        (f64::from(size - crop) / 2.0).round_ties_even() as i64
    }
}

/// Centre crop, to [0, 1], normalise: CHW `3 * crop * crop` floats.
/// Pixels outside the image (crop larger than it) are 0 before normalising.
fn crop_and_normalise(img: &RgbImage, p: &ImagenetPreprocess) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (left, top) = (crop_offset(w, p.crop), crop_offset(h, p.crop));
    let side = p.crop as usize;
    let mut out = vec![0f32; 3 * side * side];
    for (c, plane) in out.chunks_exact_mut(side * side).enumerate() {
        for (y, line) in plane.chunks_exact_mut(side).enumerate() {
            let sy = top + y as i64;
            for (x, v) in line.iter_mut().enumerate() {
                let sx = left + x as i64;
                let byte = if (0..i64::from(w)).contains(&sx) && (0..i64::from(h)).contains(&sy) {
                    img.get_pixel(sx as u32, sy as u32).0[c]
                } else {
                    0
                };
                // As torchvision: `byte.float() / 255`, then `.sub_(mean).div_(std)`.
                *v = (f32::from(byte) / 255.0 - p.mean[c]) / p.std[c];
            }
        }
    }
    out
}

/// The class names file, one per line (see `make_imagenet_classes.py`).
const CLASSES_TXT: &str = include_str!("imagenet_classes.txt");

/// The 1,000 ImageNet-1k class names in index order, as torchvision's
/// weights metadata gives them (`weights.meta["categories"]`): index 0 is
/// "tench", 207 "golden retriever".
pub fn imagenet_classes() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| CLASSES_TXT.lines().collect())
}

/// The `k` largest probabilities with their indices, largest first; ties
/// keep the lower index first. `k` larger than `probs.len()` returns all.
///
/// ```
/// use convnet::app::imagenet::top_k;
/// assert_eq!(top_k(&[0.1, 0.4, 0.1, 0.4], 3), vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
/// ```
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    // A stable sort on descending probability keeps ties in index order.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.into_iter().take(k).map(|i| (i, probs[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_classes_are_torchvisions() {
        let names = imagenet_classes();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench");
        assert_eq!(names[1], "goldfish");
        assert_eq!(names[207], "golden retriever");
        assert_eq!(names[999], "toilet tissue");
        assert!(names.iter().all(|n| !n.trim().is_empty()));
    }

    #[test]
    fn imagenet_preprocess_knows_the_torchvision_models() {
        let r = imagenet_preprocess("resnet50").unwrap();
        assert_eq!(r, ImagenetPreprocess::standard(256));
        assert_eq!(imagenet_preprocess("convnext_small").unwrap().resize, 230);
        assert_eq!(imagenet_preprocess("convnext_base").unwrap().resize, 232);
        assert_eq!(imagenet_preprocess("googlenet").unwrap().mean, [0.5; 3]);
        let swin = imagenet_preprocess("swin_s").unwrap();
        assert_eq!((swin.resize, swin.crop), (246, 224));
        assert_eq!(swin.interpolation, Interpolation::Bicubic);
        assert_eq!(imagenet_preprocess("swin_t").unwrap().resize, 232);
        assert_eq!(imagenet_preprocess("swin_b").unwrap().resize, 238);
        assert!(imagenet_preprocess("resnet20").is_none());
    }

    #[test]
    fn imagenet_resized_size_truncates_the_long_side() {
        assert_eq!(resized_size(400, 300, 256), (341, 256));
        assert_eq!(resized_size(61, 97, 256), (256, 407));
        assert_eq!(resized_size(256, 256, 256), (256, 256));
    }

    #[test]
    fn imagenet_crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(341, 224), 58); // 58.5
        assert_eq!(crop_offset(259, 224), 18); // 17.5
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(200, 224), -12);
    }

    #[test]
    fn imagenet_taps_sum_to_one_and_widen_when_downscaling() {
        for (n_in, n_out) in [(300, 256), (61, 256), (97, 32), (10, 3)] {
            for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
                let t = taps(n_in, n_out, f);
                for (i, &(first, count)) in t.bounds.iter().enumerate() {
                    assert!(first + count <= n_in);
                    let sum: i64 = t.weights[i * t.stride..][..count]
                        .iter()
                        .map(|&w| i64::from(w))
                        .sum();
                    assert!((sum - (1 << PRECISION_BITS)).abs() <= count as i64, "{sum}");
                }
            }
        }
        // 97 -> 32 bilinear: support 97/32 ≈ 3.03 each side, 7 taps or so.
        assert!(taps(97, 32, Interpolation::Bilinear).bounds[10].1 >= 6);
    }

    #[test]
    fn imagenet_resize_keeps_a_flat_image_flat() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 250]));
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let out = resize_like_pil(&img, 11, 64, f);
            assert_eq!(out.dimensions(), (11, 64));
            assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
        }
    }

    #[test]
    fn imagenet_load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = ImagenetPreprocess::standard(256);
        let missing = dir.path().join("missing.jpg");
        let e = load_imagenet_image(&missing, &p).unwrap_err().to_string();
        assert!(e.contains("missing.jpg"), "{e}");
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        let e = load_imagenet_image(&bad, &p).unwrap_err().to_string();
        assert!(e.contains("bad.png"), "{e}");
    }

    #[test]
    fn imagenet_load_small_rgba_gives_the_crop_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.png");
        image::RgbaImage::from_pixel(5, 3, image::Rgba([255, 0, 0, 7]))
            .save(&path)
            .unwrap();
        let p = ImagenetPreprocess::standard(256);
        let x = load_imagenet_image(&path, &p).unwrap();
        assert_eq!(x.shape(), &[1, 3, 224, 224]);
        // Pure red, alpha dropped: channel 0 is (1 - mean) / std everywhere.
        let red = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        assert!(x.as_slice()[..224 * 224]
            .iter()
            .all(|&v| (v - red).abs() < 1e-6));
    }

    #[test]
    fn imagenet_top_k_is_stable_on_ties() {
        assert_eq!(top_k(&[0.2, 0.5, 0.2, 0.1], 2), vec![(1, 0.5), (0, 0.2)]);
        assert_eq!(top_k(&[0.3, 0.3], 5), vec![(0, 0.3), (1, 0.3)]);
        assert!(top_k(&[], 3).is_empty());
    }
}
