//! What the command-line tests share: running the binary and reading what
//! it said.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

use convnet::datasets::idx::{write_idx, IdxArray};
use convnet::datasets::ALLOW_SYNTHETIC_ENV;
use convnet::tensor::Rng;

/// Runs `convnet` with `args`, without `$CONVNET_DATA`, accepting the small
/// synthetic datasets the tests write.
pub fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .env_remove("CONVNET_DATA")
        .env(ALLOW_SYNTHETIC_ENV, "1")
        .output()
        .expect("the convnet binary runs")
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A temporary path as the `&str` an argument needs.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Class `c` is a bright vertical bar at column `2c + 4`, plus noise.
pub fn write_split(dir: &Path, prefix: &str, n: usize, seed: u64) {
    let mut rng = Rng::seed_from(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 10;
        for _ in 0..28 {
            for x in 0..28 {
                let noise = rng.below(60) as u8;
                pixels.push(if x == 2 * c + 4 || x == 2 * c + 5 {
                    200 + noise / 2
                } else {
                    noise
                });
            }
        }
        labels.push(c as u8);
    }
    write_mnist_files(dir, prefix, pixels, labels);
}

/// Writes an MNIST-format split `<prefix>-images-idx3-ubyte` and
/// `<prefix>-labels-idx1-ubyte` of 28×28 images into `dir`.
pub fn write_mnist_files(dir: &Path, prefix: &str, pixels: Vec<u8>, labels: Vec<u8>) {
    let n = labels.len();
    write_idx(
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        &IdxArray::from_vec(&[n, 28, 28], pixels).unwrap(),
    )
    .unwrap();
    write_idx(
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
        &IdxArray::from_vec(&[n], labels).unwrap(),
    )
    .unwrap();
}

/// Fake MNIST in a fresh folder: `n_train` training and `n_test` test images.
pub fn fake_mnist(n_train: usize, n_test: usize) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let mnist = data.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_split(&mnist, "train", n_train, 1);
    write_split(&mnist, "t10k", n_test, 2);
    data
}
