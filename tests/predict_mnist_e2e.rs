//! End to end on real data: `convnet predict` recognises MNIST test digits
//! drawn small and off-centre on large sheets of light paper.
//!
//! LeNet-5 is trained for one epoch on the real MNIST (found as the binary
//! finds it, see [`convnet_tests::real_dataset`], and imported as `cargo
//! xtask download --from` does), then
//! [`PHOTOS`] test digits are rendered as dark ink on 300-600 pixel sheets
//! (scaled up 2-5×, placed at random, paper grey 230-255 with noise and a
//! lighting gradient, seeded), saved as PNG and classified through
//! `run_predict`, the code of `convnet predict`. The old whole-image resize
//! is measured on the same files for comparison. Fails (never skips) when
//! the data is missing.
//!
//! `cargo test --release -p convnet-tests --test predict_mnist_e2e -- --nocapture`
//! prints both rates.

use std::path::{Path, PathBuf};

use convnet::app::eval::load_model;
use convnet::app::predict::{classify_prepared, prepare_image, run_predict, Preprocess};
use convnet::app::train::{run_train, TrainOptions};
use convnet::app::ProgressMode;
use convnet::datasets::{download::import_from, Dataset, DatasetKind, Split};
use convnet::tensor::Rng;
use convnet_tests::real_dataset;
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};

/// How many test digits are drawn.
const PHOTOS: usize = 200;

/// Draws a 28×28 MNIST digit (light on dark, [0, 1]) as dark ink on a light
/// sheet: 300-600 pixels a side, the digit 2-5× larger at a random place.
fn draw_on_paper(digit: &[f32], rng: &mut Rng) -> GrayImage {
    let (w, h) = (300 + rng.below(301) as u32, 300 + rng.below(301) as u32);
    let size = (28.0 * rng.uniform(2.0, 5.0)).round() as u32;
    let small = GrayImage::from_fn(28, 28, |x, y| {
        Luma([(digit[(y * 28 + x) as usize] * 255.0).round() as u8])
    });
    let big = imageops::resize(&small, size, size, FilterType::CatmullRom);
    let (left, top) = (
        rng.below((w - size + 1) as usize) as u32,
        rng.below((h - size + 1) as usize) as u32,
    );
    let paper = rng.uniform(230.0, 255.0);
    let ink = rng.uniform(10.0, 70.0);
    let (gx, gy) = (rng.uniform(-10.0, 10.0), rng.uniform(-10.0, 10.0));
    GrayImage::from_fn(w, h, |x, y| {
        let light = paper + gx * (x as f32 / w as f32 - 0.5) + gy * (y as f32 / h as f32 - 0.5);
        let background = light + 3.0 * rng.normal();
        let a = if (left..left + size).contains(&x) && (top..top + size).contains(&y) {
            big.get_pixel(x - left, y - top).0[0] as f32 / 255.0
        } else {
            0.0
        };
        Luma([(background * (1.0 - a) + ink * a).round().clamp(0.0, 255.0) as u8])
    })
}

/// The share of `files` whose most probable class under the whole-image
/// recipe (the old `predict`) is the label.
fn whole_image_rate(checkpoint: &Path, files: &[PathBuf], labels: &[u8]) -> f64 {
    let loaded = load_model(checkpoint).unwrap();
    let (mean, std) = DatasetKind::Mnist.mean_std();
    let mut right = 0;
    for (f, &label) in files.iter().zip(labels) {
        let image = prepare_image(f, 28, Preprocess::WholeImage).unwrap();
        let probs = classify_prepared(&*loaded.model, &image, 28, mean, std).unwrap();
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        right += (best == label as usize) as usize;
    }
    right as f64 / files.len() as f64
}

#[test]
fn predict_recognises_small_off_centre_digits_on_paper() {
    let kind = DatasetKind::Mnist;
    let data = tempfile::tempdir().unwrap();
    import_from(kind, &real_dataset(kind), data.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new("lenet5", kind);
    opts.epochs = 1;
    opts.data_dir = Some(data.path().to_path_buf());
    opts.offline = true;
    opts.out_dir = Some(out.path().join("run"));
    opts.progress = ProgressMode::Quiet;
    let outcome = run_train(&opts, None).unwrap();
    eprintln!(
        "LeNet-5 after one epoch: {:.2}% on the MNIST test set",
        100.0 * outcome.eval.accuracy
    );

    let test = Dataset::load(kind, Split::Test, data.path()).unwrap();
    let mut rng = Rng::seed_from(2024);
    let photos = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for n in 0..PHOTOS {
        let index = rng.below(test.len());
        let label = test.labels[index];
        let sheet = draw_on_paper(test.image(index).unwrap(), &mut rng);
        let file = photos
            .path()
            .join(format!("{n:03}-test{index}-{label}.png"));
        sheet.save(&file).unwrap();
        files.push(file);
        labels.push(label);
    }
    // A file that is not an image and a blank sheet: reported, not fatal.
    let broken = photos.path().join("broken.png");
    std::fs::write(&broken, b"not a PNG").unwrap();
    let blank = photos.path().join("blank.png");
    GrayImage::from_pixel(400, 300, Luma([240]))
        .save(&blank)
        .unwrap();
    let mut all = files.clone();
    all.insert(PHOTOS / 2, broken.clone());
    all.push(blank.clone());

    let report = run_predict(&outcome.checkpoint, &all, 1).unwrap();
    let failed: Vec<&Path> = report.failures.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(failed, [broken.as_path(), blank.as_path()]);
    for f in &report.failures {
        let msg = f.error.to_string();
        assert!(msg.contains(&*f.path.to_string_lossy()), "{msg}");
    }
    assert_eq!(report.predictions.len(), PHOTOS);
    let mut right = 0;
    for (p, (file, &label)) in report.predictions.iter().zip(files.iter().zip(&labels)) {
        assert_eq!(&p.path, file);
        let image = p
            .image
            .as_ref()
            .expect("a 28x28 model records its prepared image");
        assert_eq!(image.preprocess, Preprocess::Digit);
        assert!(image.inverted);
        right += (p.top[0].0 == label as usize) as usize;
    }
    let rate = right as f64 / PHOTOS as f64;
    let old = whole_image_rate(&outcome.checkpoint, &files, &labels);
    eprintln!(
        "digits drawn small and off-centre on paper ({PHOTOS} MNIST test digits): \
         recognised {:.1}% with the MNIST recipe, {:.1}% with the whole-image resize",
        100.0 * rate,
        100.0 * old
    );
    assert!(rate >= 0.90, "recognition rate {:.1}%", 100.0 * rate);
    assert!(old < rate, "whole image {old}, digit recipe {rate}");
}
