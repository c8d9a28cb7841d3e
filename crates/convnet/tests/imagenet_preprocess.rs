//! `load_imagenet_image` against torchvision's `IMAGENET1K_V1` transforms.
//!
//! The fixtures (images, torchvision's tensors as raw little-endian f32 and
//! `cases.json`) come from `tests/fixtures/imagenet/make_fixture.py`.

use std::path::{Path, PathBuf};

use convnet::app::imagenet::{imagenet_preprocess, load_imagenet_image, Interpolation};
use serde_json::Value;

/// Largest allowed difference on PNGs, in normalised units: the resize,
/// crop and normalisation follow PIL and torchvision step for step, so only
/// float rounding is left.
const PNG_TOLERANCE: f32 = 1e-6;

/// Largest allowed difference on JPEGs. The `image` crate's decoder
/// (zune-jpeg) and PIL's (libjpeg-turbo) round the IDCT and, with 4:2:0
/// chroma, the upsampling differently: decoded pixels differ by up to 3–4
/// levels near saturated edges (4:4:4: 0.9% of the pixels, 4:2:0: 25%).
/// After the resize that is up to 3 levels, 3 / 255 / 0.224 = 0.053.
const JPEG_TOLERANCE: f32 = 0.06;

/// Largest allowed mean difference on JPEGs (measured: 2e-4 with 4:4:4
/// chroma, 6.6e-3 with 4:2:0), under half a level.
const JPEG_MEAN_TOLERANCE: f32 = 0.01;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn interpolation(v: &Value) -> Interpolation {
    match v.as_str().unwrap() {
        "bilinear" => Interpolation::Bilinear,
        "bicubic" => Interpolation::Bicubic,
        other => panic!("unknown interpolation {other}"),
    }
}

fn triple(v: &Value) -> [f32; 3] {
    let a: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    [a[0], a[1], a[2]]
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn presets_match_torchvision() {
    let doc = cases();
    let presets = doc["presets"].as_object().unwrap();
    assert_eq!(presets.len(), 19);
    for (model, t) in presets {
        let p = imagenet_preprocess(model).unwrap_or_else(|| panic!("no preset for {model}"));
        assert_eq!(
            u64::from(p.resize),
            t["resize"].as_u64().unwrap(),
            "{model}"
        );
        assert_eq!(u64::from(p.crop), t["crop"].as_u64().unwrap(), "{model}");
        assert_eq!(
            p.interpolation,
            interpolation(&t["interpolation"]),
            "{model}"
        );
        if model == "googlenet" {
            // transform_input folded into the normalisation.
            assert_eq!((p.mean, p.std), ([0.5; 3], [0.5; 3]));
        } else {
            assert_eq!(
                (p.mean, p.std),
                (triple(&t["mean"]), triple(&t["std"])),
                "{model}"
            );
        }
    }
}

#[test]
fn images_match_torchvision_transforms() {
    let doc = cases();
    let dir = fixture_dir();
    let mut report = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let model = case["model"].as_str().unwrap();
        let t = &case["preprocess"];
        // The model's preset, with the case's resize/crop/filter (smaller
        // crops keep the fixture small; the resampling is the real one).
        let mut p = imagenet_preprocess(model).unwrap();
        p.resize = t["resize"].as_u64().unwrap() as u32;
        p.crop = t["crop"].as_u64().unwrap() as u32;
        p.interpolation = interpolation(&t["interpolation"]);
        let image = dir.join(case["image"].as_str().unwrap());
        let x = load_imagenet_image(&image, &p).unwrap();
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(x.shape()[0], 1);
        assert_eq!(&x.shape()[1..], &shape[..], "{name}");
        let want = read_f32(&dir.join(format!("{name}.bin")));
        assert_eq!(want.len(), x.as_slice().len(), "{name}");
        let diffs: Vec<f32> = x
            .as_slice()
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max_diff = diffs.iter().copied().fold(0f32, f32::max);
        let mean_diff = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let png = image.extension().is_some_and(|e| e == "png");
        report.push((name.to_string(), png, max_diff, mean_diff));
    }
    for (name, _, max_diff, mean_diff) in &report {
        println!("{name:<28} max abs diff {max_diff:.3e}  mean {mean_diff:.3e}");
    }
    for (name, png, max_diff, mean_diff) in report {
        if png {
            assert!(max_diff <= PNG_TOLERANCE, "{name}: max abs diff {max_diff}");
        } else {
            assert!(
                max_diff <= JPEG_TOLERANCE,
                "{name}: max abs diff {max_diff}"
            );
            assert!(
                mean_diff <= JPEG_MEAN_TOLERANCE,
                "{name}: mean abs diff {mean_diff}"
            );
        }
    }
}

/// The datasets crate's transform pipeline (`Resize` of the shorter side,
/// `CenterCrop`, `Normalize`) against the same torchvision tensors, on the
/// bilinear PNG cases: its resampling follows PIL's fixed-point arithmetic,
/// so only float rounding of the normalisation is left.
#[test]
fn the_datasets_pipeline_matches_torchvision_on_bilinear_pngs() {
    use convnet::datasets::{decode::decode_image, Pipeline, RawImage, ResizeTo, Transform};
    let doc = cases();
    let dir = fixture_dir();
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let t = &case["preprocess"];
        let image = dir.join(case["image"].as_str().unwrap());
        if t["interpolation"].as_str() != Some("bilinear")
            || image.extension().is_none_or(|e| e != "png")
        {
            continue;
        }
        let p = imagenet_preprocess(case["model"].as_str().unwrap()).unwrap();
        let crop = t["crop"].as_u64().unwrap() as usize;
        let pipeline = Pipeline {
            transforms: vec![
                Transform::Resize(ResizeTo::Shorter(t["resize"].as_u64().unwrap() as usize)),
                Transform::CenterCrop {
                    height: crop,
                    width: crop,
                },
            ],
            mean: p.mean.to_vec(),
            std: p.std.to_vec(),
        };
        let img = RawImage::from_dynamic(&decode_image(&image).unwrap(), 3).unwrap();
        let (x, shape) = pipeline
            .apply(&img, &mut convnet::tensor::Rng::seed_from(0))
            .unwrap();
        assert_eq!(shape, [3, crop, crop], "{name}");
        let want = read_f32(&dir.join(format!("{name}.bin")));
        let max_diff = x
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name:<28} pipeline max abs diff {max_diff:.3e}");
        assert!(max_diff <= PNG_TOLERANCE, "{name}: max abs diff {max_diff}");
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} bilinear PNG cases");
}
