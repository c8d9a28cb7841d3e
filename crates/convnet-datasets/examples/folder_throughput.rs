//! Loader throughput on an image folder: one epoch of the training images
//! decoded, augmented (random crop with padding 2, horizontal flip) and
//! normalised in batches of 128 prepared ahead, as training would ask for
//! them; prints images/s and the process's peak resident memory.
//!
//! ```text
//! convnet data export fashion-mnist --to /tmp/fm-folder
//! RAYON_NUM_THREADS=2 cargo run --release -p convnet-datasets --example folder_throughput -- /tmp/fm-folder
//! ```

use std::sync::Arc;
use std::time::Instant;

use convnet_datasets::{
    open_split, FolderOptions, FolderSplit, ImageSource, Pipeline, Transform, VisionConfig,
    VisionLoader,
};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .ok_or("usage: folder_throughput FOLDER [BATCH]")?;
    let batch: usize = std::env::args()
        .nth(2)
        .map(|b| b.parse())
        .transpose()?
        .unwrap_or(128);
    let start = Instant::now();
    let splits = open_split(
        root.as_ref(),
        FolderSplit::Detect {
            val_fraction: 0.1,
            seed: 0,
        },
        FolderOptions::default(),
    )?;
    let train = splits.train;
    println!(
        "indexed {} training images in {} classes in {:.2?} ({})",
        train.len(),
        train.class_names().len(),
        start.elapsed(),
        splits.description
    );
    let (h, w) = match train.image(0) {
        Ok(img) => (img.height, img.width),
        Err(e) => return Err(e.into()),
    };
    let pipeline = Pipeline {
        transforms: vec![
            Transform::RandomCrop {
                height: h,
                width: w,
                padding: 2,
            },
            Transform::RandomHorizontalFlip { p: 0.5 },
        ],
        ..Pipeline::normalize(vec![0.286], vec![0.353])
    };
    let loader = VisionLoader::new(Arc::new(train), pipeline, VisionConfig::train(batch, 42))?;
    let start = Instant::now();
    let mut images = 0;
    for b in loader.epoch(0) {
        images += b?.labels.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{images} images decoded and augmented in {secs:.2} s: {:.0} images/s with {} threads \
         (batch {batch}, prefetch 2); peak resident memory {:.0} MiB",
        images as f64 / secs,
        rayon::current_num_threads(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
