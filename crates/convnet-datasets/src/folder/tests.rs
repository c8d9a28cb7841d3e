use super::*;
use std::fs;

/// Writes a `w`×`h` greyscale PNG of constant value `v` at `path`.
fn png(path: &Path, w: usize, h: usize, v: u8) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    RawImage::new(w, h, 1, vec![v; w * h])
        .unwrap()
        .to_dynamic()
        .unwrap()
        .save_with_format(path, image::ImageFormat::Png)
        .unwrap();
}

/// Relative paths of a folder's images with their labels.
fn listing(folder: &ImageFolder) -> Vec<(String, usize)> {
    (0..folder.len())
        .map(|i| {
            let (p, l) = folder.sample(i).unwrap();
            let rel = p.strip_prefix(folder.root()).unwrap();
            (rel.to_string_lossy().replace('\\', "/"), l)
        })
        .collect()
}

#[test]
fn classes_and_files_are_sorted_as_torchvision_and_labelled_by_class() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for class in ["b", "a", "B", "10", "2"] {
        png(&r.join(class).join("x10.png"), 2, 2, 1);
    }
    png(&r.join("a/x2.PNG"), 2, 2, 2);
    png(&r.join("a/sub/w.png"), 2, 2, 3);
    png(&r.join("a/y.Jpeg"), 2, 2, 4); // a PNG named .Jpeg: told by content
    fs::write(r.join("a/notes.txt"), "not an image").unwrap();
    png(&r.join("stray.png"), 2, 2, 5); // files beside the classes are ignored
    let folder = ImageFolder::open(r, FolderOptions::default()).unwrap();
    assert_eq!(folder.class_names(), ["10", "2", "B", "a", "b"]);
    assert_eq!(
        listing(&folder),
        [
            ("10/x10.png".to_string(), 0),
            ("2/x10.png".into(), 1),
            ("B/x10.png".into(), 2),
            ("a/x10.png".into(), 3),
            ("a/x2.PNG".into(), 3),
            ("a/y.Jpeg".into(), 3),
            ("a/sub/w.png".into(), 3),
            ("b/x10.png".into(), 4),
        ]
    );
    assert_eq!(folder.channels(), 1);
    assert_eq!(folder.image(6).unwrap().pixels, [3; 4]);
    assert!(folder.describe(6).ends_with("w.png"));
}

#[test]
fn empty_classes_and_folders_without_classes_are_errors_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let e = ImageFolder::open(root.path(), FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no class folder"), "{e}");
    png(&root.path().join("cat/1.png"), 2, 2, 0);
    fs::create_dir(root.path().join("dog")).unwrap();
    fs::write(root.path().join("dog/readme.md"), "").unwrap();
    let e = ImageFolder::open(root.path(), FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("dog") && e.contains("without any image"), "{e}");
    let e = ImageFolder::open(root.path().join("missing"), FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn train_and_val_folders_are_detected_and_share_the_training_labels() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for (split, class, n) in [
        ("train", "cat", 2),
        ("train", "dog", 3),
        ("train", "eel", 1),
        ("val", "dog", 2),
    ] {
        for i in 0..n {
            png(&r.join(split).join(class).join(format!("{i}.png")), 3, 2, i);
        }
    }
    let detect = FolderSplit::Detect {
        val_fraction: 0.2,
        seed: 1,
    };
    let s = open_split(r, detect, FolderOptions::default()).unwrap();
    assert_eq!(s.train.len(), 6);
    let val = s.val.unwrap();
    // Only `dog` in val, labelled as in train (1), not 0.
    assert_eq!((val.len(), val.label(0), val.label(1)), (2, 1, 1));
    assert_eq!(val.class_names(), ["cat", "dog", "eel"]);
    assert!(s.description.contains("val"), "{}", s.description);
    // A validation class that training does not have is refused.
    png(&r.join("val/fox/0.png"), 3, 2, 0);
    let e = open_split(r, FolderSplit::Folders, FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fox"), "{e}");
    // test/ is accepted in place of val/.
    fs::rename(r.join("val"), r.join("test")).unwrap();
    fs::remove_dir_all(r.join("test/fox")).unwrap();
    let s = open_split(r, FolderSplit::Folders, FolderOptions::default()).unwrap();
    assert!(s.description.contains("test"));
    // Without train/, Folders is an error and Detect splits by ratio.
    let flat = tempfile::tempdir().unwrap();
    png(&flat.path().join("a/0.png"), 2, 2, 0);
    assert!(open_split(flat.path(), FolderSplit::Folders, FolderOptions::default()).is_err());
    let s = open_split(flat.path(), detect, FolderOptions::default()).unwrap();
    assert!(s.description.contains("seed 1"), "{}", s.description);
}

#[test]
fn ratio_split_is_stratified_seeded_and_complete() {
    let root = tempfile::tempdir().unwrap();
    for (class, n) in [("a", 10), ("b", 5), ("c", 1)] {
        for i in 0..n {
            png(
                &root.path().join(class).join(format!("{i:02}.png")),
                1,
                1,
                i,
            );
        }
    }
    let all = ImageFolder::open(root.path(), FolderOptions::default()).unwrap();
    let (train, val) = split_by_ratio(&all, 0.3, 42).unwrap();
    // round(10 * 0.3) = 3, round(5 * 0.3) = round(1.5) = 2, round(0.3) = 0.
    let count = |f: &ImageFolder, l: usize| (0..f.len()).filter(|&i| f.label(i) == l).count();
    assert_eq!([count(&val, 0), count(&val, 1), count(&val, 2)], [3, 2, 0]);
    assert_eq!(train.len() + val.len(), 16);
    let mut paths: Vec<String> = listing(&train)
        .into_iter()
        .chain(listing(&val))
        .map(|(p, _)| p)
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 16, "disjoint and complete");
    // Both halves keep the folder's order.
    let t = listing(&train);
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
    let (_, again) = split_by_ratio(&all, 0.3, 42).unwrap();
    assert_eq!(listing(&again), listing(&val), "same seed, same split");
    let (_, other) = split_by_ratio(&all, 0.3, 43).unwrap();
    assert_ne!(listing(&other), listing(&val), "other seed, other split");
    assert!(split_by_ratio(&all, 1.0, 0).is_err());
}

/// A folder with good images and one of each kind of bad file; returns the
/// bad files' names.
fn folder_with_bad_files(r: &Path) -> Vec<&'static str> {
    png(&r.join("a/good1.png"), 4, 4, 10);
    png(&r.join("b/good2.png"), 4, 4, 20);
    let mut full = Vec::new();
    RawImage::new(8, 8, 1, (0..64).collect())
        .unwrap()
        .to_dynamic()
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut full),
            image::ImageFormat::Png,
        )
        .unwrap();
    fs::write(r.join("a/truncated.png"), &full[..full.len() / 2]).unwrap();
    fs::write(r.join("a/zero.png"), b"").unwrap();
    fs::write(r.join("b/text.jpg"), b"hello, I am not a picture").unwrap();
    let mut corrupt = full.clone();
    corrupt[40..60].iter_mut().for_each(|b| *b ^= 0x5A);
    fs::write(r.join("b/corrupt.png"), &corrupt).unwrap();
    let mut jpeg = Vec::new();
    RawImage::new(16, 16, 3, vec![128; 768])
        .unwrap()
        .to_dynamic()
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    fs::write(r.join("b/cut.jpeg"), &jpeg[..jpeg.len() - 2]).unwrap();
    vec![
        "truncated.png",
        "zero.png",
        "corrupt.png",
        "cut.jpeg",
        "text.jpg",
    ]
}

#[test]
fn bad_files_are_refused_by_name_or_skipped_with_a_report() {
    let root = tempfile::tempdir().unwrap();
    let bad = folder_with_bad_files(root.path());
    // Refuse: indexing decodes nothing; each bad image is an error naming it.
    let folder = ImageFolder::open(root.path(), FolderOptions::default()).unwrap();
    assert_eq!(folder.len(), 7);
    for i in 0..folder.len() {
        let name = folder.describe(i);
        match folder.image(i) {
            Ok(_) => assert!(name.contains("good"), "{name} decoded"),
            Err(e) => {
                let e = e.to_string();
                assert!(bad.iter().any(|b| e.contains(b)), "{e}");
                assert!(e.starts_with(&name), "the error names the file: {e}");
            }
        }
    }
    let e = folder.check().unwrap_err().to_string();
    assert!(e.contains("5 of 7 images"), "{e}");
    for b in &bad {
        assert!(e.contains(b), "{b} missing from {e}");
    }
    assert!(e.contains("empty"), "{e}");
    assert!(e.contains("truncated"), "{e}");
    // Skip: the scan at opening leaves them out and reports each.
    let options = FolderOptions {
        on_error: OnError::Skip,
        ..FolderOptions::default()
    };
    let folder = ImageFolder::open(root.path(), options).unwrap();
    assert_eq!(folder.len(), 2);
    assert_eq!(folder.skipped().len(), 5);
    for s in folder.skipped() {
        let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(bad.contains(&name.as_str()), "{name}");
        assert!(!s.reason.is_empty());
    }
    assert_eq!((folder.label(0), folder.label(1)), (0, 1));
    folder.check().unwrap();
}

#[test]
fn grey_and_colour_images_are_kept_or_converted() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    png(&r.join("a/0grey.png"), 2, 1, 100);
    fs::create_dir_all(r.join("b")).unwrap();
    image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255])
        .unwrap()
        .save(r.join("b/1rgb.png"))
        .unwrap();
    image::RgbaImage::from_raw(1, 1, vec![0, 255, 0, 7])
        .unwrap()
        .save(r.join("b/2rgba.png"))
        .unwrap();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(1, 1, vec![257 * 200])
        .unwrap()
        .save(r.join("b/3grey16.png"))
        .unwrap();
    // Auto: the first image is grey, so every image is delivered grey.
    let auto = ImageFolder::open(r, FolderOptions::default()).unwrap();
    assert_eq!(auto.channels(), 1);
    assert_eq!(auto.image(0).unwrap().pixels, [100, 100]);
    assert_eq!(auto.image(1).unwrap().pixels, [54, 18]); // BT.709 luma of red, blue
    assert_eq!(auto.image(2).unwrap().pixels, [182]); // green, alpha dropped
    assert_eq!(auto.image(3).unwrap().pixels, [200]); // 16 bits reduced
    let rgb = ImageFolder::open(
        r,
        FolderOptions {
            color: ColorMode::Rgb,
            ..FolderOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rgb.channels(), 3);
    assert_eq!(rgb.image(0).unwrap().pixels, [100; 6]);
    assert_eq!(rgb.image(1).unwrap().pixels, [255, 0, 0, 0, 0, 255]);
    assert_eq!(rgb.image(2).unwrap().pixels, [0, 255, 0]);
    // Auto on a colour folder gives RGB.
    fs::remove_file(r.join("a/0grey.png")).unwrap();
    fs::remove_dir(r.join("a")).unwrap();
    let colour = ImageFolder::open(r, FolderOptions::default()).unwrap();
    assert_eq!(colour.channels(), 3);
    assert_eq!(colour.image(2).unwrap().pixels, [200; 3]);
}
