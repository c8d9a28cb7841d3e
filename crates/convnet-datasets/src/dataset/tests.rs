use super::*;
use crate::idx::{write_idx, IdxArray, IdxHeader, IdxType};

/// Writes a tiny split of `n` images (pixel = (i + p) % 256) into
/// `<root>/<kind>/`, images gzip-compressed and labels plain.
fn write_split(root: &Path, kind: DatasetKind, split: Split, n: usize, labels: Vec<u8>) {
    let dir = root.join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    let pixels: Vec<u8> = (0..n * IMAGE_PIXELS)
        .map(|p| ((p / IMAGE_PIXELS + p) % 256) as u8)
        .collect();
    let images = kind.file(split, Part::Images);
    write_idx(
        dir.join(images.gz_name()),
        &IdxArray::from_vec(&[n, 28, 28], pixels).unwrap(),
    )
    .unwrap();
    let l = kind.file(split, Part::Labels);
    let count = labels.len();
    write_idx(
        dir.join(l.name),
        &IdxArray::from_vec(&[count], labels).unwrap(),
    )
    .unwrap();
}

/// Loads a split of fewer images than the publisher's, as tests write them.
fn load_synthetic(kind: DatasetKind, split: Split, dir: &Path) -> Result<Dataset> {
    let opts = LoadOptions {
        allow_synthetic: true,
    };
    Dataset::load_with(kind, split, dir, &opts)
}

/// Writes an IDX header of u8 `dims` and makes the file as long as the
/// header says, sparse (its data reads as zeros).
fn write_sparse(path: &Path, dims: &[usize]) -> std::io::Result<()> {
    let header = IdxHeader {
        elem_type: IdxType::U8,
        dims: dims.to_vec(),
    };
    let mut file = std::fs::File::create(path)?;
    std::io::Write::write_all(&mut file, &header.to_bytes())?;
    file.set_len(header.header_len() + header.data_len())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn more_images_than_the_dataset_has_are_rejected_from_the_header() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    let dir = root.path().join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    let images = dir.join("train-images-idx3-ubyte");
    let labels = dir.join("train-labels-idx1-ubyte");
    // Consistent headers and sizes, 70,000 images (sparse, zeros).
    write_sparse(&images, &[70_000, 28, 28]).unwrap();
    write_sparse(&labels, &[70_000]).unwrap();
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            allow_synthetic: true,
        },
    ] {
        let err = Dataset::load_with(kind, Split::Train, root.path(), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
        assert!(
            err.contains("70000 images") && err.contains("60000"),
            "{err}"
        );
        assert!(err.contains("cargo xtask download mnist --from"), "{err}");
    }
    // 1.6 TB, sparse, if the file system allows it: rejected before any
    // allocation (it aborted the process before).
    let n = 2_040_000_000;
    if write_sparse(&images, &[n, 28, 28]).is_ok() && write_sparse(&labels, &[n]).is_ok() {
        let err = Dataset::load(kind, Split::Train, root.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{n} images")), "{err}");
    }
}

#[test]
fn a_small_gzip_that_inflates_past_the_dataset_is_rejected_unread() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::FashionMnist;
    let dir = root.path().join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    // 70,000 images of zeros: ~55 MB inflated from ~0.2 MB, header consistent.
    let header = IdxHeader {
        elem_type: IdxType::U8,
        dims: vec![70_000, 28, 28],
    };
    let mut content = header.to_bytes();
    content.resize(content.len() + 70_000 * IMAGE_PIXELS, 0);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&content)).unwrap();
    drop(content);
    write_sparse(&dir.join("train-labels-idx1-ubyte"), &[70_000]).unwrap();
    let err = Dataset::load(kind, Split::Train, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("70000 images"), "{err}");
}

#[test]
fn image_and_label_counts_are_compared_from_the_headers_before_reading() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    let dir = root.path().join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    // The images' header announces 6, the data holds 2: reading them would
    // fail on the truncated data; the count mismatch must be found first.
    let header = IdxHeader {
        elem_type: IdxType::U8,
        dims: vec![6, 28, 28],
    };
    let mut content = header.to_bytes();
    content.resize(content.len() + 2 * IMAGE_PIXELS, 7);
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&content)).unwrap();
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &IdxArray::from_vec(&[5], vec![1u8; 5]).unwrap(),
    )
    .unwrap();
    let err = load_synthetic(kind, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("5 labels") && err.contains("6 images"),
        "{err}"
    );
}

#[test]
fn a_split_of_the_publishers_count_is_verified_by_checksum() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::FashionMnist;
    let dir = root.path().join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    // 10,000 well-formed test images and labels, but not Zalando's.
    write_sparse(&dir.join("t10k-images-idx3-ubyte"), &[10_000, 28, 28]).unwrap();
    write_sparse(&dir.join("t10k-labels-idx1-ubyte"), &[10_000]).unwrap();
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            allow_synthetic: true,
        },
    ] {
        let err = Dataset::load_with(kind, Split::Test, root.path(), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("t10k-"), "{err}");
        assert!(
            err.contains("not the publisher's fashion-mnist/t10k-"),
            "{err}"
        );
        let spec = kind.file(Split::Test, Part::Images);
        let labels = kind.file(Split::Test, Part::Labels);
        assert!(
            err.contains(spec.sha256) || err.contains(labels.sha256),
            "{err}"
        );
        assert!(
            err.contains("cargo xtask download fashion-mnist --from"),
            "{err}"
        );
    }
}

#[test]
fn a_synthetic_split_is_loaded_only_on_request() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    write_split(root.path(), kind, Split::Test, 3, vec![1, 2, 3]);
    let err = Dataset::load(kind, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("3 images") && err.contains("10000"), "{err}");
    assert!(err.contains(ALLOW_SYNTHETIC_ENV), "{err}");
    assert_eq!(
        load_synthetic(kind, Split::Test, root.path())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn loads_from_the_data_folder_or_the_dataset_folder() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::FashionMnist;
    write_split(root.path(), kind, Split::Test, 5, vec![0, 1, 4, 9, 4]);
    for dir in [root.path().to_path_buf(), root.path().join(kind.name())] {
        let ds = load_synthetic(kind, Split::Test, &dir).unwrap();
        assert_eq!(ds.len(), 5);
        assert_eq!(ds.images().shape(), &[5, 1, 28, 28]);
        assert_eq!(ds.labels, [0, 1, 4, 9, 4]);
        assert_eq!(ds.class_counts(), [1, 1, 0, 0, 2, 0, 0, 0, 0, 1]);
        // Pixel p of image i is ((i + p) % 256) / 255.
        let img = ds.image(2).unwrap();
        assert_eq!(img[0], ((2 + 2 * 784) % 256) as f32 / 255.0);
        assert_eq!(img[300], ((2 + 2 * 784 + 300) % 256) as f32 / 255.0);
        assert!(ds.image(5).is_none());
        assert_eq!(ds.class_name(4), "Coat");
    }
}

#[test]
fn a_missing_split_names_where_it_looked_and_how_to_get_it() {
    let root = tempfile::tempdir().unwrap();
    let err = Dataset::load(DatasetKind::Mnist, Split::Train, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("MNIST train images not found"), "{err}");
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("cargo xtask download mnist"), "{err}");
    assert!(err.contains("--from"), "{err}");
}

#[test]
fn images_and_labels_of_different_counts_are_an_error() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        DatasetKind::Mnist,
        Split::Train,
        4,
        vec![1, 2, 3],
    );
    let err = load_synthetic(DatasetKind::Mnist, Split::Train, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-labels-idx1-ubyte"), "{err}");
    assert!(
        err.contains("3 labels") && err.contains("4 images"),
        "{err}"
    );
}

#[test]
fn a_label_outside_0_to_9_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        DatasetKind::Mnist,
        Split::Test,
        3,
        vec![1, 10, 3],
    );
    let err = load_synthetic(DatasetKind::Mnist, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
    assert!(err.contains("label 10 at index 1"), "{err}");
}

#[test]
fn wrong_shapes_or_types_are_errors_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    write_split(root.path(), kind, Split::Test, 2, vec![1, 2]);
    let dir = root.path().join("mnist");
    // Images of 27x28.
    write_idx(
        dir.join("t10k-images-idx3-ubyte.gz"),
        &IdxArray::from_vec(&[2, 27, 28], vec![0u8; 2 * 27 * 28]).unwrap(),
    )
    .unwrap();
    let err = load_synthetic(kind, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    assert!(err.contains("[N, 28, 28], found u8 [2, 27, 28]"), "{err}");
    // Labels stored as i32.
    write_split(root.path(), kind, Split::Test, 2, vec![1, 2]);
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &IdxArray::from_vec(&[2], vec![1i32, 2]).unwrap(),
    )
    .unwrap();
    let err = load_synthetic(kind, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected u8 labels of shape [N], found i32 [2]"),
        "{err}"
    );
}

#[test]
fn a_corrupt_file_is_an_error_not_a_panic() {
    let root = tempfile::tempdir().unwrap();
    write_split(
        root.path(),
        DatasetKind::Mnist,
        Split::Test,
        3,
        vec![1, 2, 3],
    );
    let path = root.path().join("mnist/t10k-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 20);
    std::fs::write(&path, &bytes).unwrap();
    let err = load_synthetic(DatasetKind::Mnist, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
}

#[test]
fn subset_select_and_statistics() {
    let images = Tensor::from_vec(
        &[4, 1, 28, 28],
        (0..4 * 784).map(|i| (i / 784) as f32 / 4.0).collect(),
    )
    .unwrap();
    let ds =
        Dataset::from_parts(DatasetKind::Mnist, Split::Train, images, vec![0, 1, 2, 3]).unwrap();
    let sub = ds.subset(1..3).unwrap();
    assert_eq!(sub.labels, [1, 2]);
    assert_eq!(sub.image(0).unwrap()[0], 0.25);
    assert!(ds.subset(3..5).is_err());
    let sel = ds.select(&[3, 0]).unwrap();
    assert_eq!(sel.labels, [3, 0]);
    assert_eq!(sel.image(0).unwrap()[10], 0.75);
    assert!(ds.select(&[4]).is_err());
    // Pixel values 0, .25, .5, .75 in equal numbers: mean .375, std sqrt(.078125).
    let (mean, std) = ds.pixel_mean_std();
    assert!((mean - 0.375).abs() < 1e-12);
    assert!((std - 0.078125f64.sqrt()).abs() < 1e-9);
}

#[test]
fn from_parts_checks_shape_count_and_labels() {
    let img = |n| Tensor::zeros(&[n, 1, 28, 28]);
    assert!(Dataset::from_parts(DatasetKind::Mnist, Split::Test, img(2), vec![1]).is_err());
    assert!(Dataset::from_parts(DatasetKind::Mnist, Split::Test, img(1), vec![10]).is_err());
    let flat = Tensor::zeros(&[1, 784]);
    let err = Dataset::from_parts(DatasetKind::Mnist, Split::Test, flat, vec![1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("[N, 1, 28, 28]"), "{err}");
}

#[test]
fn a_loaded_split_kept_as_bytes_gives_the_same_pixels_as_floats() {
    let root = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    write_split(root.path(), kind, Split::Train, 6, vec![0, 1, 2, 3, 4, 5]);
    let bytes = load_synthetic(kind, Split::Train, root.path()).unwrap();
    let floats = Dataset::from_parts(
        kind,
        Split::Train,
        bytes.images().clone(),
        bytes.labels.clone(),
    )
    .unwrap();
    // Statistics from the byte histogram match the f32 sums.
    let (bm, bs) = bytes.pixel_mean_std();
    let (fm, fs) = floats.pixel_mean_std();
    assert!(
        (bm - fm).abs() < 1e-9 && (bs - fs).abs() < 1e-9,
        "{bm} {bs} vs {fm} {fs}"
    );
    // Subsets, selections and loader batches agree pixel for pixel.
    let (b, f) = (bytes.subset(1..4).unwrap(), floats.subset(1..4).unwrap());
    assert_eq!(b.images().as_slice(), f.images().as_slice());
    let (b, f) = (
        bytes.select(&[5, 0, 3]).unwrap(),
        floats.select(&[5, 0, 3]).unwrap(),
    );
    assert_eq!(b.images().as_slice(), f.images().as_slice());
    assert_eq!(b.labels, [5, 0, 3]);
    let config = crate::LoaderConfig {
        augment: crate::Augment {
            translate: 2,
            ..crate::Augment::NONE
        },
        ..crate::LoaderConfig::train(4, 9)
    };
    let (lb, lf) = (
        crate::DataLoader::new(bytes, config.clone()).unwrap(),
        crate::DataLoader::new(floats, config).unwrap(),
    );
    for (x, y) in lb.epoch(1).zip(lf.epoch(1)) {
        assert_eq!(x.images.as_slice(), y.images.as_slice());
        assert_eq!(x.labels, y.labels);
    }
}
