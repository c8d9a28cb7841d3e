//! The real MNIST and Fashion-MNIST, found the way the `convnet` binary
//! finds them (`$CONVNET_DATA`, `./data`, the workspace's `data/`, ... see
//! [`convnet_tests::real_dataset`], else downloaded and verified), imported
//! through the same verified `import_from` path as `cargo xtask download
//! --from`, then loaded and checked against their known statistics.
//!
//! If the data is neither found nor downloadable these tests fail with the
//! way out (they never skip silently).

use std::time::Instant;

use convnet::datasets::{
    download::{import_from, FileAction},
    Augment, DataLoader, Dataset, DatasetKind, LoaderConfig, Normalize, Split,
};
use convnet_tests::real_dataset;

/// Imports `kind` into a fresh temporary data folder and loads both splits.
fn import_and_load(kind: DatasetKind) -> (tempfile::TempDir, Dataset, Dataset) {
    let data = tempfile::tempdir().unwrap();
    let from = real_dataset(kind);
    let report = import_from(kind, &from, data.path()).unwrap();
    assert_eq!(report.files.len(), 4);
    assert!(report
        .files
        .iter()
        .all(|f| matches!(f.action, FileAction::Imported { .. })));
    // A second import finds everything present and valid.
    let again = import_from(kind, &from, data.path()).unwrap();
    assert!(again
        .files
        .iter()
        .all(|f| f.action == FileAction::AlreadyValid));

    let start = Instant::now();
    let train = Dataset::load(kind, Split::Train, data.path()).unwrap();
    let elapsed = start.elapsed();
    eprintln!(
        "{}: loaded 60,000 training images in {elapsed:.2?}",
        kind.title()
    );
    let test = Dataset::load(kind, Split::Test, data.path()).unwrap();
    (data, train, test)
}

#[test]
fn mnist_counts_labels_and_pixel_mean() {
    let (_dir, train, test) = import_and_load(DatasetKind::Mnist);
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(train.images().shape(), &[60_000, 1, 28, 28]);
    assert_eq!(test.images().shape(), &[10_000, 1, 28, 28]);
    assert_eq!(
        train.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(test.class_counts().iter().sum::<usize>(), 10_000);
    let (mean, std) = train.pixel_mean_std();
    assert!(
        (mean - 0.1307).abs() < 1e-4,
        "MNIST train pixel mean {mean}"
    );
    assert!((std - 0.3081).abs() < 1e-4, "MNIST train pixel std {std}");
    let pixels = train.images().as_slice();
    assert!(pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(pixels.contains(&1.0) && pixels.contains(&0.0));
    // The first training digit is the famous 5.
    assert_eq!(train.labels[0], 5);
}

#[test]
fn fashion_mnist_counts_and_the_lectures_labels() {
    let (_dir, train, test) = import_and_load(DatasetKind::FashionMnist);
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(train.class_counts(), [6000; 10]);
    assert_eq!(test.class_counts(), [1000; 10]);
    // The lecture's figure: Pantalon y = 1, Veste y = 4, Bottine y = 9.
    assert_eq!(train.class_name(1), "Trouser");
    assert_eq!(train.class_name(4), "Coat");
    assert_eq!(train.class_name(9), "Ankle boot");
    let (mean, std) = train.pixel_mean_std();
    let (m, s) = DatasetKind::FashionMnist.mean_std();
    assert!((mean - m as f64).abs() < 1e-3, "Fashion-MNIST mean {mean}");
    assert!((std - s as f64).abs() < 1e-3, "Fashion-MNIST std {std}");

    // A training epoch over the real data: normalised, augmented, complete.
    let config = LoaderConfig {
        augment: Augment {
            translate: 2,
            hflip: true,
        },
        normalize: Normalize::Dataset,
        prefetch: 2,
        ..LoaderConfig::train(128, 7)
    };
    let loader = DataLoader::new(train, config).unwrap();
    let mut seen = vec![false; 60_000];
    let mut sum = 0.0f64;
    for batch in loader.epoch(3) {
        for &i in &batch.indices {
            assert!(!seen[i], "image {i} twice in one epoch");
            seen[i] = true;
        }
        sum += batch.images.sum();
    }
    assert!(seen.iter().all(|&s| s), "every image once per epoch");
    // Normalised pixels average about 0 (a bit less: translation pads with black).
    let mean_norm = sum / (60_000.0 * 784.0);
    assert!(mean_norm.abs() < 0.1, "normalised mean {mean_norm}");
}

#[test]
fn a_corrupted_copy_is_rejected_and_nothing_is_left_behind() {
    let src = real_dataset(DatasetKind::Mnist);
    let bad = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ] {
        std::fs::copy(src.join(name), bad.path().join(name)).unwrap();
    }
    // The test labels, decompressed and with one label changed: a plain,
    // well-formed IDX file that is not the publisher's.
    let mut labels = Vec::new();
    std::io::Read::read_to_end(
        &mut decompressed(&src.join("t10k-labels-idx1-ubyte.gz")),
        &mut labels,
    )
    .unwrap();
    labels[8 + 17] = (labels[8 + 17] + 1) % 10;
    std::fs::write(bad.path().join("t10k-labels-idx1-ubyte"), &labels).unwrap();

    let data = tempfile::tempdir().unwrap();
    let err = import_from(DatasetKind::Mnist, bad.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte"),
        "names the file: {err}"
    );
    assert!(
        err.contains("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        "says what was expected: {err}"
    );
    let mut left: Vec<String> = std::fs::read_dir(data.path().join("mnist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "t10k-images-idx3-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz"
        ],
        "the verified files stay, the rejected one and no temporary file"
    );
}

/// The decompressed bytes of an IDX file, through the crate's own reader and writer.
fn decompressed(path: &std::path::Path) -> impl std::io::Read {
    let array = convnet::datasets::idx::read_idx(path).unwrap();
    let bytes = convnet::datasets::idx::write_idx_to(Vec::new(), &array, path).unwrap();
    std::io::Cursor::new(bytes)
}

/// MNIST's files placed in `fashion-mnist/` have the right counts and
/// shapes: they used to train as Fashion-MNIST. The checksum on load
/// rejects them and says what they are and how to fix it.
#[test]
fn mnist_files_in_the_fashion_folder_are_rejected_on_load() {
    let data = tempfile::tempdir().unwrap();
    let fashion = data.path().join("fashion-mnist");
    std::fs::create_dir(&fashion).unwrap();
    let mnist = real_dataset(DatasetKind::Mnist);
    for entry in std::fs::read_dir(&mnist).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("t10k-") {
            std::fs::copy(&path, fashion.join(&name)).unwrap();
        }
    }
    let err = Dataset::load(DatasetKind::FashionMnist, Split::Test, data.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("fashion-mnist/t10k-"), "{err}");
    assert!(err.contains("it is MNIST's t10k-"), "{err}");
    assert!(
        err.contains("cargo xtask download fashion-mnist --from"),
        "{err}"
    );
}
