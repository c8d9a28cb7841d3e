//! `convnet data export` and `convnet data stats` end to end, offline, on
//! tiny synthetic Fashion-MNIST files written by the test.

use std::path::Path;

use convnet::datasets::{ImageFolder, ImageSource};

mod common;
use common::{convnet, text, write_mnist_files};

/// `n` images of a split: image `i` is uniformly `10 * i`, label `(i * 3) % 10`.
fn write_fake_split(dir: &Path, prefix: &str, n: usize) {
    let pixels = (0..n).flat_map(|i| [(10 * i) as u8; 784]).collect();
    let labels = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    write_mnist_files(dir, prefix, pixels, labels);
}

#[test]
fn export_writes_labelled_class_folders_refuses_to_overwrite_and_stats_reads_them() {
    let data = tempfile::tempdir().unwrap();
    let fm = data.path().join("fashion-mnist");
    std::fs::create_dir_all(&fm).unwrap();
    write_fake_split(&fm, "train", 12);
    write_fake_split(&fm, "t10k", 5);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("fm");
    let dir_s = dir.to_str().unwrap();
    let data_s = data.path().to_str().unwrap();
    let export = ["data", "export", "fashion-mnist", "--to", dir_s];
    let o = convnet(&[&export[..], &["--data-dir", data_s, "--offline"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("12 train, 5 test"), "{}", text(&o));

    let train = ImageFolder::open(dir.join("train"), Default::default()).unwrap();
    assert_eq!(train.class_names()[0], "0_T-shirt_top");
    assert_eq!(train.class_names()[9], "9_Ankle boot");
    assert_eq!((train.len(), train.channels()), (12, 1));
    // Labels survive: image i (file i.png) has label 3i mod 10 and value 10i.
    for k in 0..train.len() {
        let (path, label) = train.sample(k).unwrap();
        let i: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        assert_eq!(label, i * 3 % 10);
        assert_eq!(train.image(k).unwrap().pixels, vec![(10 * i) as u8; 784]);
    }
    // Zero-padded indices: 12 training images are 00..11, 5 test images 0..4.
    assert!(dir.join("train/1_Trouser/07.png").is_file());
    assert!(dir.join("test/9_Ankle boot/3.png").is_file());
    // No temporary folder is left beside the export.
    let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(names.len(), 1);

    // A non-empty folder is refused without --overwrite, replaced with it.
    let o = convnet(&[&export[..], &["--data-dir", data_s, "--offline"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--overwrite"), "{}", text(&o));
    std::fs::write(dir.join("stale.txt"), "old").unwrap();
    let o = convnet(
        &[
            &export[..],
            &["--data-dir", data_s, "--offline", "--overwrite"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!dir.join("stale.txt").exists());
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

    // Stats over the 12 training images: values 0, 10, ..., 110 (/255).
    let o = convnet(&["data", "stats", &format!("folder:{dir_s}")]);
    assert!(o.status.success(), "{}", text(&o));
    let values: Vec<f64> = (0..12).map(|i| (10 * i) as f64 / 255.0).collect();
    let mean = values.iter().sum::<f64>() / 12.0;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 12.0).sqrt();
    let report = text(&o);
    assert!(
        report.contains("12 images, 10 classes, 1 channel"),
        "{report}"
    );
    assert!(report.contains(&format!("mean: [{mean:.4}]")), "{report}");
    assert!(report.contains(&format!("std:  [{std:.4}]")), "{report}");

    let o = convnet(&[
        "data",
        "stats",
        out.path().join("nothing").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing"), "{}", text(&o));
}

/// `convnet download --from` imports with the publisher's checksums (a file
/// that is not the publisher's is refused by name, nothing is written), and
/// names that cannot be downloaded are errors listing the valid ones.
#[test]
fn download_imports_verified_copies_and_refuses_the_rest() {
    let src = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write_fake_split(src.path(), "train", 5);
    write_fake_split(src.path(), "t10k", 5);
    let o = convnet(&[
        "download",
        "mnist",
        "--from",
        src.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("train-images-idx3-ubyte"), "{t}");
    assert!(!data.path().join("mnist").exists(), "{t}");
    for (name, msg) in [
        ("folder:photos", "an image folder is not downloaded"),
        ("svhn", "cifar10, cifar100"),
    ] {
        let o = convnet(&["download", name, "--offline"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains(msg), "{t}");
    }
}
