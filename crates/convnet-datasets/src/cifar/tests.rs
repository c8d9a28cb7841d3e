//! CIFAR tests on small files and archives written here in the publisher's
//! format (a few records per batch file).

use super::fetch::{ensure_layout, import_layout};
use super::*;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use md5::{Digest as _, Md5};

use crate::dataset::LoadOptions;
use crate::download::tests::{names_in, quiet, Reply, Server};
use crate::download::{DownloadOptions, FileAction};

const SYNTHETIC: LoadOptions = LoadOptions {
    allow_synthetic: true,
};

/// Pixel `p` (0..1024) of channel `c` of record `i`: distinct per channel.
fn pixel(i: usize, c: usize, p: usize) -> u8 {
    (c * 85 + p * 7 + i * 13) as u8
}

/// `n` records of `kind` starting at record number `first`: labels cycle
/// through the classes, coarse labels through the 20 superclasses.
fn records(kind: CifarKind, first: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + n {
        if kind == CifarKind::Cifar100 {
            out.push((i % 20) as u8);
        }
        out.push(((i * 3) % kind.num_classes()) as u8);
        for c in 0..3 {
            out.extend((0..1024).map(|p| pixel(i, c, p)));
        }
    }
    out
}

/// A name file: `count` names, then blank lines as the publisher's has.
fn names(prefix: &str, count: usize) -> Vec<u8> {
    let mut s: String = (0..count).map(|i| format!("{prefix}{i}\n")).collect();
    s.push_str("\n\n");
    s.into_bytes()
}

/// Every file of `kind` with `per_file` records per batch file.
fn files(kind: CifarKind, per_file: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut first = 0;
    for (name, _, _) in kind.batch_files() {
        out.push((*name, records(kind, first, per_file)));
        first += per_file;
    }
    out.push((kind.names_file(), names("fine", kind.num_classes())));
    if let Some(coarse) = kind.coarse_names_file() {
        out.push((coarse, names("coarse", 20)));
    }
    out
}

/// Writes the files into `<data_dir>/<name>/` as if extracted by hand.
fn write_files(data_dir: &Path, kind: CifarKind, per_file: usize) -> PathBuf {
    let dir = data_dir.join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files(kind, per_file) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

/// A tar.gz in the publisher's layout (plus a readme outside the list)
/// and the layout that accepts it (its MD5, `per_file` records).
fn archive(kind: CifarKind, per_file: usize) -> (Vec<u8>, Layout) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, bytes).unwrap();
    };
    add(
        format!("{}/readme.html", kind.archive_folder()),
        b"<p>hi</p>",
    );
    for (name, bytes) in files(kind, per_file) {
        add(format!("{}/{name}", kind.archive_folder()), &bytes);
    }
    let gz = crate::download::tests::gzip(&builder.into_inner().unwrap());
    let layout = Layout {
        kind,
        md5: hex(&Md5::digest(&gz)),
        records: vec![per_file; kind.batch_files().len()],
    };
    (gz, layout)
}

#[test]
fn kinds_parse_and_know_their_files_and_constants() {
    assert_eq!("cifar-10".parse::<CifarKind>().unwrap(), CifarKind::Cifar10);
    assert_eq!(
        "CIFAR_100".parse::<CifarKind>().unwrap(),
        CifarKind::Cifar100
    );
    let err = "cifar1000".parse::<CifarKind>().unwrap_err().to_string();
    assert!(err.contains("cifar10 or cifar100"), "{err}");
    let c10 = CifarKind::Cifar10;
    assert_eq!(c10.record_len(), 3073);
    assert_eq!(c10.files().len(), 7);
    assert_eq!(
        c10.batch_files()
            .iter()
            .filter(|b| b.1 == Split::Train)
            .map(|b| b.2)
            .sum::<usize>(),
        50_000
    );
    let c100 = CifarKind::Cifar100;
    assert_eq!(
        c100.files(),
        [
            "train.bin",
            "test.bin",
            "fine_label_names.txt",
            "coarse_label_names.txt"
        ]
    );
    assert_eq!(
        Layout::publisher(c100).batch_len("train.bin"),
        Some(50_000 * 3074)
    );
    assert_eq!(c10.mean_std().0, [0.4914, 0.4822, 0.4465]);
    assert_eq!(c100.mean_std().1, [0.2673, 0.2564, 0.2762]);
    for kind in CifarKind::ALL {
        assert_eq!(kind.archive_md5().len(), 32);
        assert!(kind.offline_hint().contains(kind.archive_md5()));
    }
}

#[test]
fn cifar10_records_give_labels_chw_pixels_and_class_names() {
    let root = tempfile::tempdir().unwrap();
    write_files(root.path(), CifarKind::Cifar10, 4);
    let train =
        CifarDataset::load_with(CifarKind::Cifar10, Split::Train, root.path(), &SYNTHETIC).unwrap();
    assert_eq!(train.len(), 20, "5 files of 4");
    assert!(!train.verified());
    assert_eq!(train.label(5), 5 * 3 % 10);
    assert_eq!(train.class_names().len(), 10);
    assert_eq!(train.class_names()[7], "fine7");
    assert_eq!(train.coarse_label(0), None);
    // Record 6 (second file): red plane first, row-major.
    let img = train.image_chw(6);
    assert_eq!(
        (img[0], img[1], img[33]),
        (pixel(6, 0, 0), pixel(6, 0, 1), pixel(6, 0, 33))
    );
    assert_eq!(
        (img[1024], img[2048 + 1023]),
        (pixel(6, 1, 0), pixel(6, 2, 1023))
    );
    // Interleaved: row 1, column 2 is pixel 34, then R, G, B.
    let hwc = train.image_hwc(6);
    assert_eq!(
        hwc[(32 + 2) * 3..(32 + 2) * 3 + 3],
        [pixel(6, 0, 34), pixel(6, 1, 34), pixel(6, 2, 34)]
    );
    let t = train.batch_tensor(&[6, 0]).unwrap();
    assert_eq!(t.shape(), [2, 3, 32, 32]);
    assert_eq!(t.as_slice()[1024], pixel(6, 1, 0) as f32 / 255.0);
    assert!(train.batch_tensor(&[20]).is_err());
    assert_eq!(train.class_counts().iter().sum::<usize>(), 20);
    // The test split, from the dataset's own folder.
    let test = CifarDataset::load_with(
        CifarKind::Cifar10,
        Split::Test,
        root.path().join("cifar10"),
        &SYNTHETIC,
    )
    .unwrap();
    assert_eq!((test.len(), test.label(0)), (4, (20 * 3) % 10));
    assert_eq!(test.image_chw(3)[5], pixel(23, 0, 5));
    // Without asking for synthetic data: refused, saying how to ask.
    let err = CifarDataset::load(CifarKind::Cifar10, Split::Test, root.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test_batch.bin")
            && err.contains("4 records")
            && err.contains("CONVNET_ALLOW_SYNTHETIC_DATA"),
        "{err}"
    );
}

#[test]
fn cifar100_records_have_fine_and_coarse_labels() {
    let root = tempfile::tempdir().unwrap();
    write_files(root.path(), CifarKind::Cifar100, 25);
    let train = CifarDataset::load_with(CifarKind::Cifar100, Split::Train, root.path(), &SYNTHETIC)
        .unwrap();
    assert_eq!(train.len(), 25);
    assert_eq!((train.label(24), train.coarse_label(24)), (72, Some(4)));
    assert_eq!(train.class_names()[99], "fine99");
    assert_eq!(train.coarse_class_names()[19], "coarse19");
    assert_eq!(train.image_chw(24)[2048], pixel(24, 2, 0));
}

#[test]
fn bad_sizes_labels_and_names_are_refused_naming_the_file() {
    let kind = CifarKind::Cifar100;
    let layout = Layout {
        kind,
        md5: "0".repeat(32),
        records: vec![3, 2],
    };
    let root = tempfile::tempdir().unwrap();
    let dir = write_files(root.path(), kind, 2);
    let load = |split| CifarDataset::load_layout(&layout, split, root.path(), &SYNTHETIC);
    assert_eq!(load(Split::Train).unwrap().len(), 2);
    let train = dir.join("train.bin");
    let good = std::fs::read(&train).unwrap();
    let expect_err = |bytes: &[u8], needle: &str| {
        std::fs::write(&train, bytes).unwrap();
        let err = load(Split::Train).unwrap_err().to_string();
        assert!(
            err.contains(&train.display().to_string()) && err.contains(needle),
            "{needle}: {err}"
        );
    };
    expect_err(&good[..good.len() - 1], "not a whole number of 3074-byte");
    expect_err(&[], "0 bytes");
    expect_err(&records(kind, 0, 4), "4 records, more than the 3");
    let mut bad = good.clone();
    bad[3074 + 1] = 100; // record 1's fine label
    expect_err(&bad, "record 1 (byte 3074) has label 100");
    let mut bad = good.clone();
    bad[0] = 20;
    expect_err(&bad, "coarse label 20");
    std::fs::write(&train, &good).unwrap();
    std::fs::write(dir.join("coarse_label_names.txt"), names("c", 19)).unwrap();
    let err = load(Split::Train).unwrap_err().to_string();
    assert!(
        err.contains("coarse_label_names.txt") && err.contains("19 class names, 20 expected"),
        "{err}"
    );
    std::fs::remove_file(dir.join("test.bin")).unwrap();
    let err = load(Split::Test).unwrap_err().to_string();
    assert!(
        err.contains("test.bin") && err.contains("cargo xtask download cifar100"),
        "{err}"
    );
}

#[test]
fn imported_files_are_verified_on_load_against_the_manifest() {
    let kind = CifarKind::Cifar10;
    let (gz, layout) = archive(kind, 3);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join(kind.archive_name()), &gz).unwrap();
    let data = tempfile::tempdir().unwrap();
    let report = import_layout(&layout, src.path(), data.path()).unwrap();
    assert_eq!(
        report.action,
        FileAction::Imported {
            from: src.path().join(kind.archive_name())
        }
    );
    let dir = data.path().join("cifar10");
    let mut expected: Vec<String> = kind.files().iter().map(|s| s.to_string()).collect();
    expected.push(MANIFEST_NAME.into());
    expected.sort();
    assert_eq!(
        names_in(&dir),
        expected,
        "no archive, readme or part file kept"
    );
    // Full size for this layout: verified, without any option.
    let test =
        CifarDataset::load_layout(&layout, Split::Test, data.path(), &LoadOptions::default())
            .unwrap();
    assert!(test.verified());
    assert_eq!(test.image_chw(2)[7], pixel(17, 0, 7));
    // A second import keeps the valid extraction.
    let again = import_layout(&layout, &src.path().join(kind.archive_name()), data.path()).unwrap();
    assert_eq!(again.action, FileAction::AlreadyValid);
    assert!(again.to_string().contains("already extracted"), "{again}");

    // An edited file of the right size: refused, even with allow_synthetic.
    let batch = dir.join("data_batch_2.bin");
    let good = std::fs::read(&batch).unwrap();
    let mut edited = good.clone();
    edited[500] ^= 1;
    std::fs::write(&batch, &edited).unwrap();
    let err = CifarDataset::load_layout(&layout, Split::Train, data.path(), &SYNTHETIC)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_2.bin") && err.contains("changed since"),
        "{err}"
    );
    // An edited name file too.
    std::fs::write(&batch, &good).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), names("other", 10)).unwrap();
    let err = CifarDataset::load_layout(&layout, Split::Test, data.path(), &SYNTHETIC)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batches.meta.txt") && err.contains("changed since"),
        "{err}"
    );
    // The next import repairs it.
    let fixed = import_layout(&layout, src.path(), data.path()).unwrap();
    assert!(matches!(fixed.action, FileAction::Imported { .. }));
    CifarDataset::load_layout(&layout, Split::Test, data.path(), &LoadOptions::default()).unwrap();
    // Full-size files without a manifest cannot be verified.
    std::fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();
    let err = CifarDataset::load_layout(&layout, Split::Train, data.path(), &SYNTHETIC)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(MANIFEST_NAME) && err.contains("cannot be verified"),
        "{err}"
    );
    // A manifest from another archive is not the publisher's.
    let err = CifarDataset::load(kind, Split::Train, data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_1.bin") && err.contains("3 records"),
        "{err}"
    );
}

#[test]
fn an_archive_without_the_publishers_md5_is_rejected_and_nothing_written() {
    let kind = CifarKind::Cifar100;
    let (gz, _) = archive(kind, 2);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join(kind.archive_name());
    std::fs::write(&file, &gz).unwrap();
    let data = tempfile::tempdir().unwrap();
    let err = import_cifar_from(kind, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&file.display().to_string())
            && err.contains("03b5dce01913d631647c71ecec9e9cb8"),
        "{err}"
    );
    assert_eq!(
        names_in(data.path()),
        Vec::<String>::new(),
        "no folder left behind"
    );
    // Not found: says what --from takes.
    let err = import_cifar_from(CifarKind::Cifar10, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cifar-10-binary.tar.gz") && err.contains("cannot be verified"),
        "{err}"
    );
}

#[test]
fn members_of_the_wrong_size_or_missing_are_refused() {
    let kind = CifarKind::Cifar10;
    let (gz, mut layout) = archive(kind, 2);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join(kind.archive_name()), &gz).unwrap();
    let data = tempfile::tempdir().unwrap();
    // The MD5 matches, the sizes do not: still refused.
    layout.records[4] = 3;
    let err = import_layout(&layout, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_5.bin has 6146 bytes, expected 9219"),
        "{err}"
    );
    assert_eq!(names_in(data.path()), Vec::<String>::new());
    // A corrupt archive: MD5 mismatch, and it says why it is unusable.
    let mut corrupt = gz.clone();
    let n = corrupt.len();
    corrupt[n / 2] ^= 0x40;
    std::fs::write(src.path().join(kind.archive_name()), &corrupt).unwrap();
    layout.records[4] = 2;
    let err = import_layout(&layout, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&layout.md5) && err.contains("not a usable"),
        "{err}"
    );
    assert_eq!(names_in(data.path()), Vec::<String>::new());
    // CIFAR-100's archive given as CIFAR-10's (with its MD5): nothing found.
    let (gz100, layout100) = archive(CifarKind::Cifar100, 2);
    std::fs::write(src.path().join(kind.archive_name()), &gz100).unwrap();
    layout.md5 = layout100.md5;
    let err = import_layout(&layout, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing cifar-10-batches-bin/data_batch_1.bin"),
        "{err}"
    );
    assert_eq!(names_in(data.path()), Vec::<String>::new());
}

#[test]
fn download_falls_back_to_a_good_mirror_then_skips() {
    let kind = CifarKind::Cifar10;
    let (gz, layout) = archive(kind, 2);
    let route = format!("/data/{}", kind.archive_name());
    let mut truncated = gz.clone();
    truncated.truncate(gz.len() / 2);
    let bad = Server::start(HashMap::from([(route.clone(), Reply::Ok(truncated))]));
    let broken = Server::start(HashMap::from([(
        route.clone(),
        Reply::BrokenOff(gz.clone(), 100),
    )]));
    let good = Server::start(HashMap::from([(route, Reply::Ok(gz))]));
    let data = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        mirrors: Some(vec![
            bad.base.clone(),
            broken.base.clone(),
            good.base.clone(),
        ]),
        ..quiet()
    };
    let report = ensure_layout(&layout, data.path(), &opts).unwrap();
    assert_eq!(
        report.action,
        FileAction::Downloaded {
            url: format!("{}{}", good.base, kind.archive_name())
        }
    );
    assert_eq!(report.files.len(), 7);
    let dir = data.path().join("cifar10");
    assert!(!names_in(&dir)
        .iter()
        .any(|n| n.ends_with(".part") || n.ends_with(".gz")));
    assert_eq!(
        CifarDataset::load_layout(&layout, Split::Train, data.path(), &LoadOptions::default())
            .unwrap()
            .len(),
        10
    );
    let again = ensure_layout(&layout, data.path(), &opts).unwrap();
    assert_eq!(again.action, FileAction::AlreadyValid);
    assert_eq!(
        (bad.requests(), broken.requests(), good.requests()),
        (1, 1, 1)
    );
}

#[test]
fn when_every_mirror_fails_the_error_lists_them_and_nothing_is_left() {
    let kind = CifarKind::Cifar100;
    let (gz, layout) = archive(kind, 2);
    let route = format!("/data/{}", kind.archive_name());
    let other = archive(kind, 3).0;
    let servers: Vec<Server> = [Reply::Ok(other), Reply::Status(404)]
        .into_iter()
        .map(|r| Server::start(HashMap::from([(route.clone(), r)])))
        .collect();
    let data = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        mirrors: Some(servers.iter().map(|s| s.base.clone()).collect()),
        ..quiet()
    };
    let err = ensure_layout(&layout, data.path(), &opts)
        .unwrap_err()
        .to_string();
    for s in &servers {
        assert!(err.contains(&s.base), "{err}");
    }
    assert!(
        err.contains(&layout.md5) && err.contains("404") && err.contains("--from"),
        "{err}"
    );
    assert_eq!(names_in(data.path()), Vec::<String>::new());
    drop(gz);
}

#[test]
fn offline_mode_explains_from_and_old_part_files_are_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar10");
    std::fs::create_dir(&dir).unwrap();
    let part = dir.join(".data_batch_1.bin.Ab12Cd.part");
    std::fs::write(&part, b"half an extraction").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&part)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    let opts = DownloadOptions {
        offline: true,
        ..quiet()
    };
    let err = ensure_cifar(CifarKind::Cifar10, root.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Offline") && err.contains("cargo xtask download cifar10 --from"),
        "{err}"
    );
    assert!(
        !part.exists(),
        "the killed extraction's part file is removed"
    );
    assert!(dir.is_dir(), "a folder that existed is kept");
    assert_eq!(find_cifar(CifarKind::Cifar10, Some(root.path())), None);
    write_files(root.path(), CifarKind::Cifar10, 1);
    assert_eq!(
        find_cifar(CifarKind::Cifar10, Some(root.path())),
        Some(dir.clone())
    );
    assert_eq!(find_cifar(CifarKind::Cifar10, Some(&dir)), Some(dir));
}

#[test]
fn a_gzip_bomb_member_is_not_inflated_past_the_bound() {
    let kind = CifarKind::Cifar10;
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, bytes).unwrap();
    };
    // 8 MiB of zeros (a few KiB compressed), more than this layout allows.
    add(
        format!("{}/junk", kind.archive_folder()),
        &vec![0u8; 8 << 20],
    );
    for (name, bytes) in files(kind, 1) {
        add(format!("{}/{name}", kind.archive_folder()), &bytes);
    }
    let gz = crate::download::tests::gzip(&builder.into_inner().unwrap());
    assert!(gz.len() < 1 << 20);
    let layout = Layout {
        kind,
        md5: hex(&Md5::digest(&gz)),
        records: vec![1; 6],
    };
    assert!(layout.max_archive_len() < 8 << 20);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join(kind.archive_name()), &gz).unwrap();
    let data = tempfile::tempdir().unwrap();
    let err = import_layout(&layout, src.path(), data.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a usable cifar-10-binary.tar.gz"), "{err}");
    assert_eq!(names_in(data.path()), Vec::<String>::new());
}

#[test]
fn cifar_is_an_image_source_with_hwc_pixels() {
    use crate::source::ImageSource;
    let mut pixels = vec![0u8; 2 * CIFAR_IMAGE_BYTES];
    // Image 1: red plane 10, green 20, blue 30.
    for (c, v) in [10u8, 20, 30].into_iter().enumerate() {
        let start = CIFAR_IMAGE_BYTES + c * 1024;
        pixels[start..start + 1024].fill(v);
    }
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    let names = names.iter().map(|s| s.to_string()).collect();
    let ds = CifarDataset::from_parts(CifarKind::Cifar10, Split::Test, names, vec![3, 7], pixels)
        .unwrap();
    let src: &dyn ImageSource = &ds;
    assert_eq!((src.len(), src.channels(), src.label(1)), (2, 3, 7));
    assert_eq!(src.class_names()[7], "horse");
    let img = src.image(1).unwrap();
    assert_eq!((img.width, img.height, img.channels), (32, 32, 3));
    assert_eq!(&img.pixels[..6], &[10, 20, 30, 10, 20, 30]);
    let e = src.image(2).unwrap_err().to_string();
    assert!(e.contains("image 2 is past the 2 images"), "{e}");
}
