//! CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) in the publisher's binary
//! format, from the archive to images in memory.
//!
//! # The format
//!
//! As documented on <https://www.cs.toronto.edu/~kriz/cifar.html>: each
//! record is the label byte(s) followed by 3072 pixel bytes, the 1024 red
//! values of the 32×32 image in row-major order, then the 1024 green, then
//! the 1024 blue (channel-first, "CHW").
//!
//! | | CIFAR-10 | CIFAR-100 |
//! |---|---|---|
//! | archive | `cifar-10-binary.tar.gz` | `cifar-100-binary.tar.gz` |
//! | folder in it | `cifar-10-batches-bin/` | `cifar-100-binary/` |
//! | record | label (0-9), 3072 pixels | coarse (0-19), fine (0-99), 3072 pixels |
//! | train | `data_batch_1.bin` … `data_batch_5.bin`, 10,000 records each | `train.bin`, 50,000 records |
//! | test | `test_batch.bin`, 10,000 records | `test.bin`, 10,000 records |
//! | class names | `batches.meta.txt` | `fine_label_names.txt`, `coarse_label_names.txt` |
//!
//! # On disk: extracted files and a manifest
//!
//! `cargo xtask download cifar10` ([`ensure_cifar`]) and its `--from` import
//! ([`import_cifar_from`]) check the archive against the publisher's MD5
//! (the one torchvision records) while they extract it in one pass, then
//! write the batch and name files into `<data dir>/cifar10/` (or
//! `cifar100/`) with a small manifest, [`MANIFEST_NAME`], holding the
//! archive's MD5 and each extracted file's size and SHA-256. The archive
//! itself is not kept.
//!
//! Why extracted files rather than reading the `.tar.gz` at every run:
//! loading is then a plain read of 180 MB (no gzip inflate of the whole
//! archive each time, and a split is read without the other), the folder
//! looks like the publisher's, and the data folder does not hold the data
//! twice. The price is that the publisher's MD5 covers only the archive, so
//! the manifest carries the check forward: [`CifarDataset::load`] refuses a
//! file whose size or SHA-256 differs from what was recorded when it was
//! extracted from a verified archive (a truncated, swapped or edited file),
//! and refuses full-size files without a manifest (copied by hand, hence
//! unverified). The manifest is written last, atomically: an interrupted
//! import leaves no manifest and the next one starts over.
//!
//! Smaller files (tests, experiments) load only on request, as MNIST's do:
//! [`LoadOptions::allow_synthetic`](crate::LoadOptions) or
//! `CONVNET_ALLOW_SYNTHETIC_DATA=1`; they are not checked against the
//! manifest, but sizes and labels still are.
//!
//! ```no_run
//! use convnet_datasets::cifar::{ensure_cifar, find_cifar, CifarDataset, CifarKind};
//! use convnet_datasets::{resolve_data_dir, Split};
//!
//! let kind = CifarKind::Cifar10;
//! let dir = match find_cifar(kind, None) {
//!     Some(dir) => dir,
//!     None => ensure_cifar(kind, &resolve_data_dir(None), &Default::default())?.dir,
//! };
//! let test = CifarDataset::load(kind, Split::Test, &dir)?;
//! assert_eq!(test.len(), 10_000);
//! let (i, label) = (0, test.label(0));
//! println!("{} is a {}", i, test.class_names()[label]);
//! assert_eq!(test.image_chw(i).len(), 3 * 32 * 32);
//! # Ok::<(), convnet_datasets::DatasetError>(())
//! ```

mod dataset;
mod fetch;
mod manifest;
mod read;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use dataset::CifarDataset;
pub use fetch::{ensure_cifar, import_cifar_from, verify_cifar_dir, CifarReport};
pub use manifest::MANIFEST_NAME;

use crate::error::DatasetError;
use crate::kind::Split;
use crate::locate::data_dir_candidates;

/// Side of the square CIFAR images.
pub const CIFAR_SIDE: usize = 32;

/// Colour channels of a CIFAR image (red, green, blue).
pub const CIFAR_CHANNELS: usize = 3;

/// Pixel bytes of one image: 3 × 32 × 32.
pub const CIFAR_IMAGE_BYTES: usize = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE;

/// Per-channel (R, G, B) mean of CIFAR-10's training pixels in [0, 1], as
/// commonly used with `transforms.Normalize`.
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel (R, G, B) standard deviation of CIFAR-10's training pixels.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// Per-channel (R, G, B) mean of CIFAR-100's training pixels in [0, 1].
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
/// Per-channel (R, G, B) standard deviation of CIFAR-100's training pixels.
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

/// The publisher's base URL (the archives are `<base><archive name>`).
pub const CIFAR_MIRRORS: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];

/// Most bytes a class-name file may have (the real ones have under 1 KiB).
pub(crate) const MAX_NAMES_FILE_LEN: u64 = 64 * 1024;

/// CIFAR-10 or CIFAR-100.
///
/// ```
/// use convnet_datasets::cifar::CifarKind;
/// let kind: CifarKind = "CIFAR-100".parse()?;
/// assert_eq!((kind.name(), kind.num_classes(), kind.record_len()), ("cifar100", 100, 3074));
/// assert_eq!(kind.archive_name(), "cifar-100-binary.tar.gz");
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CifarKind {
    /// 60,000 images in 10 classes.
    Cifar10,
    /// 60,000 images in 100 fine classes grouped in 20 coarse ones.
    Cifar100,
}

impl CifarKind {
    /// Both datasets.
    pub const ALL: [CifarKind; 2] = [CifarKind::Cifar10, CifarKind::Cifar100];

    /// The command-line and folder name: `"cifar10"`, `"cifar100"`.
    pub fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar10",
            CifarKind::Cifar100 => "cifar100",
        }
    }

    /// The name for people: `"CIFAR-10"`, `"CIFAR-100"`.
    pub fn title(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }

    /// Number of (fine) classes: 10 or 100.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    /// Number of CIFAR-100's coarse classes (20); 0 for CIFAR-10.
    pub fn num_coarse_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 0,
            CifarKind::Cifar100 => 20,
        }
    }

    /// Label bytes before the pixels of a record: 1, or 2 (coarse, fine).
    pub fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    /// Bytes per record: 3073 or 3074.
    pub fn record_len(self) -> usize {
        self.label_bytes() + CIFAR_IMAGE_BYTES
    }

    /// The publisher's archive: `"cifar-10-binary.tar.gz"`.
    pub fn archive_name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-binary.tar.gz",
            CifarKind::Cifar100 => "cifar-100-binary.tar.gz",
        }
    }

    /// The folder inside the archive: `"cifar-10-batches-bin"`.
    pub fn archive_folder(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            CifarKind::Cifar100 => "cifar-100-binary",
        }
    }

    /// MD5 of the publisher's archive, lowercase hex (as on the
    /// publisher's page and in torchvision).
    pub fn archive_md5(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "c32a1d4ab5d03f1284b67883e8d87530",
            CifarKind::Cifar100 => "03b5dce01913d631647c71ecec9e9cb8",
        }
    }

    /// The batch files, each with its split and its number of records.
    pub fn batch_files(self) -> &'static [(&'static str, Split, usize)] {
        match self {
            CifarKind::Cifar10 => &[
                ("data_batch_1.bin", Split::Train, 10_000),
                ("data_batch_2.bin", Split::Train, 10_000),
                ("data_batch_3.bin", Split::Train, 10_000),
                ("data_batch_4.bin", Split::Train, 10_000),
                ("data_batch_5.bin", Split::Train, 10_000),
                ("test_batch.bin", Split::Test, 10_000),
            ],
            CifarKind::Cifar100 => &[
                ("train.bin", Split::Train, 50_000),
                ("test.bin", Split::Test, 10_000),
            ],
        }
    }

    /// The file naming the (fine) classes, one per line, by label.
    pub fn names_file(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "batches.meta.txt",
            CifarKind::Cifar100 => "fine_label_names.txt",
        }
    }

    /// CIFAR-100's file naming the coarse classes; `None` for CIFAR-10.
    pub fn coarse_names_file(self) -> Option<&'static str> {
        match self {
            CifarKind::Cifar10 => None,
            CifarKind::Cifar100 => Some("coarse_label_names.txt"),
        }
    }

    /// The class-name files ([`CifarKind::names_file`], then the coarse one).
    pub fn meta_files(self) -> Vec<&'static str> {
        std::iter::once(self.names_file())
            .chain(self.coarse_names_file())
            .collect()
    }

    /// Every file extracted from the archive: batches, then name files.
    pub fn files(self) -> Vec<&'static str> {
        self.batch_files()
            .iter()
            .map(|(name, _, _)| *name)
            .chain(self.meta_files())
            .collect()
    }

    /// The usual per-channel normalisation constants (mean, std), see
    /// [`CIFAR10_MEAN`] and the others.
    pub fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            CifarKind::Cifar10 => (CIFAR10_MEAN, CIFAR10_STD),
            CifarKind::Cifar100 => (CIFAR100_MEAN, CIFAR100_STD),
        }
    }

    /// How to get the data without internet, for error messages.
    pub fn offline_hint(self) -> String {
        format!(
            "Without internet access, get {archive} (from {base}{archive}, MD5 {md5}) on a \
             machine that has it, then import it with the same verification: `cargo xtask \
             download {name} --from FOLDER_OR_FILE` (add `--data-dir DIR` to choose where it \
             goes).",
            archive = self.archive_name(),
            base = CIFAR_MIRRORS[0],
            md5 = self.archive_md5(),
            name = self.name(),
        )
    }
}

impl fmt::Display for CifarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CifarKind {
    type Err = DatasetError;

    /// Parses `cifar10` or `cifar100` (case-insensitive; `cifar-10`,
    /// `cifar_100` accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "cifar10" => Ok(CifarKind::Cifar10),
            "cifar100" => Ok(CifarKind::Cifar100),
            _ => Err(DatasetError::Config(format!(
                "unknown dataset `{s}`: expected cifar10 or cifar100"
            ))),
        }
    }
}

/// What the files of a dataset must be: the publisher's, or (in tests)
/// small archives in the same format with their own MD5 and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Which format (record layout, file names).
    pub kind: CifarKind,
    /// MD5 of the archive, lowercase hex.
    pub md5: String,
    /// Records per batch file, in [`CifarKind::batch_files`] order.
    pub records: Vec<usize>,
}

impl Layout {
    /// The publisher's files.
    pub fn publisher(kind: CifarKind) -> Layout {
        Layout {
            kind,
            md5: kind.archive_md5().to_string(),
            records: kind.batch_files().iter().map(|f| f.2).collect(),
        }
    }

    /// The batch files with their split and their size in bytes.
    pub fn batches(&self) -> impl Iterator<Item = (&'static str, Split, u64)> + '_ {
        let rec = self.kind.record_len() as u64;
        self.kind
            .batch_files()
            .iter()
            .zip(&self.records)
            .map(move |(&(name, split, _), &n)| (name, split, n as u64 * rec))
    }

    /// The exact size of a batch file, `None` for a name file.
    pub fn batch_len(&self, name: &str) -> Option<u64> {
        self.batches().find(|b| b.0 == name).map(|b| b.2)
    }

    /// The most bytes the archive (or its decompressed tar stream) may have:
    /// its files, tar headers and padding, and incompressible gzip overhead.
    pub fn max_archive_len(&self) -> u64 {
        let batches: u64 = self.batches().map(|b| b.2).sum();
        batches
            + batches / 64
            + self.kind.meta_files().len() as u64 * MAX_NAMES_FILE_LEN
            + (4 << 20)
    }
}

/// The dataset's folder for `dir`: `<dir>/<name>` if it is a folder, else
/// `dir` itself (the dataset's own folder given directly).
pub(crate) fn dataset_folder(kind: CifarKind, dir: &Path) -> PathBuf {
    let sub = dir.join(kind.name());
    if sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

/// `true` if `dataset_dir` holds every file of `kind` (content unchecked).
pub fn has_all_cifar_files(kind: CifarKind, dataset_dir: &Path) -> bool {
    kind.files().iter().all(|f| dataset_dir.join(f).is_file())
}

/// The folder holding the files of `kind`, searched as
/// [`find_dataset`](crate::find_dataset) searches: with `flag`
/// (`--data-dir`), only `<flag>/<name>` or `flag` itself; otherwise
/// `<dir>/<name>` for each folder of [`data_dir_candidates`]. `None` if no
/// folder has every file (`find_dataset` returns an error naming the
/// folders instead).
pub fn find_cifar(kind: CifarKind, flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(dir) => [dir.join(kind.name()), dir.to_path_buf()]
            .into_iter()
            .find(|d| has_all_cifar_files(kind, d)),
        None => data_dir_candidates(None)
            .into_iter()
            .map(|d| d.join(kind.name()))
            .find(|d| has_all_cifar_files(kind, d)),
    }
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
