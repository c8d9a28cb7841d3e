//! Classifying an image file with a trained model.
//!
//! ```text
//! cargo run --release -p convnet --example infer_image [-- IMAGE [CHECKPOINT]]
//! ```
//!
//! Without IMAGE, the first MNIST test image (a 7) is written as a PNG and
//! classified; without CHECKPOINT, LeNet-5 is first trained for one epoch
//! on 2,000 MNIST images (a second or two in release mode).

mod common;

use std::path::PathBuf;

use convnet::app::predict::{predict, PredictOptions};
use convnet::datasets::{DatasetKind, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (image, checkpoint) = (args.next(), args.next());
    let image = match image {
        Some(path) => path,
        None => {
            // A real digit as a 28x28 greyscale PNG, white on black.
            let test = common::first_images(DatasetKind::Mnist, Split::Test, 1)?;
            let pixels = test.image(0).ok_or("the test set is empty")?;
            let bytes = pixels.iter().map(|&v| (v * 255.0).round() as u8).collect();
            let png = common::out_dir()?.join("digit.png");
            image::GrayImage::from_raw(28, 28, bytes)
                .ok_or("28x28 pixels expected")?
                .save(&png)?;
            println!("wrote {} (label {})", png.display(), test.labels[0]);
            png
        }
    };
    let checkpoint = match checkpoint {
        Some(path) => path,
        None => common::quick_lenet5()?,
    };
    // The image is prepared as MNIST's were (digit centred, normalised).
    let options = PredictOptions {
        weights: &checkpoint,
        model: None,
        dataset: Some(DatasetKind::Mnist),
        top_k: Some(3),
        preprocess: None,
    };
    let report = predict(&options, &[&image])?;
    if let Some(failure) = report.failures.first() {
        return Err(format!("{}: {}", failure.path.display(), failure.error).into());
    }
    let (class, name, p) = &report.predictions[0].top[0];
    println!("{}: class {class} ({name}), p = {p:.3}", image.display());
    Ok(())
}
