//! Image folders as torchvision's `ImageFolder` reads them:
//! `ROOT/<class>/**/*.{png,jpg,jpeg}`.
//!
//! - Classes are the sub-folders of `ROOT`, sorted by name (byte order, as
//!   Python sorts strings); a class's label is its position in that order.
//! - A class's images are all the files with a PNG or JPEG extension
//!   (case-insensitive) in its folder and the folders below it, sorted as
//!   torchvision's `sorted(os.walk(...))` then `sorted(fnames)` does: by
//!   folder path, then by file name. Other files are ignored.
//! - Indexing reads the folder tree only: no image is decoded, and the index
//!   holds one path and one label per image.
//!
//! Splits ([`FolderSplit`]): `ROOT/train/` with `ROOT/val/` (or
//! `ROOT/test/`) when present, else a seeded split by ratio of `ROOT`'s
//! images ([`split_by_ratio`]).
//!
//! Bad files ([`OnError`]): refused (the default: the first unreadable file
//! met is an error naming it, during an epoch or up front with
//! [`ImageFolder::scan`]), or skipped: the folder is scanned once when opened
//! (every file decoded in parallel, nothing kept) and the bad files are left
//! out of the index and reported ([`ImageFolder::skipped`]).

use std::path::{Path, PathBuf};

use convnet_tensor::Rng;
use rayon::prelude::*;

use crate::decode::{decode_image, natural_channels, peek_color_type};
use crate::error::{DatasetError, Result};
use crate::source::{ImageSource, RawImage};

/// The file extensions read (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// How deep class folders are searched (guards against symbolic-link loops).
const MAX_DEPTH: usize = 32;

/// The channels images are delivered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ColorMode {
    /// Those of the first image of the index (read from its header: 1 for
    /// greyscale, 3 for colour); every other image is converted to them.
    #[default]
    Auto,
    /// Greyscale (1 channel).
    Grey,
    /// RGB (3 channels).
    Rgb,
}

impl ColorMode {
    /// `Grey` for 1, `Rgb` for 3, an error otherwise.
    pub fn from_channels(channels: usize) -> Result<Self> {
        match channels {
            1 => Ok(ColorMode::Grey),
            3 => Ok(ColorMode::Rgb),
            c => Err(DatasetError::Config(format!(
                "images have 1 (greyscale) or 3 (RGB) channels, not {c}"
            ))),
        }
    }
}

/// What to do with a file that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum OnError {
    /// The first bad file met is an error naming it.
    #[default]
    Refuse,
    /// Bad files are found when the folder is opened (every image decoded
    /// once, in parallel), left out and reported in [`ImageFolder::skipped`].
    Skip,
}

/// How an [`ImageFolder`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderOptions {
    /// The channels of the images delivered.
    pub color: ColorMode,
    /// What to do with unreadable files.
    pub on_error: OnError,
}

/// A file left out of a folder, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out (the decoding error).
    pub reason: String,
}

/// A folder of images, a sub-folder per class (see the module docs).
///
/// ```
/// use convnet_datasets::{FolderOptions, ImageFolder, ImageSource, RawImage};
///
/// let root = tempfile::tempdir()?;
/// for (class, n) in [("dog", 2), ("cat", 1)] {
///     std::fs::create_dir(root.path().join(class))?;
///     for i in 0..n {
///         RawImage::new(4, 3, 1, vec![i as u8; 12])?
///             .to_dynamic()?
///             .save(root.path().join(class).join(format!("{i}.png")))
///             .unwrap();
///     }
/// }
/// let folder = ImageFolder::open(root.path(), FolderOptions::default())?;
/// assert_eq!(folder.class_names(), ["cat", "dog"]);
/// assert_eq!((folder.len(), folder.label(0), folder.label(2)), (3, 0, 1));
/// assert_eq!(folder.image(2)?.pixels, vec![1; 12]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    channels: usize,
    skipped: Vec<SkippedFile>,
}

impl ImageFolder {
    /// Indexes `root` (classes are its sub-folders). Errors if `root` has no
    /// class folder or a class has no image. With [`OnError::Skip`] every
    /// image is decoded once to leave the bad ones out.
    pub fn open(root: impl AsRef<Path>, options: FolderOptions) -> Result<Self> {
        let root = root.as_ref();
        let classes = find_classes(root)?;
        ImageFolder::open_with_classes(root, &classes, options)
    }

    /// Indexes `root` with the given class list (labels are positions in
    /// it): every sub-folder of `root` must be one of `classes`; classes
    /// without a folder have no images. Used for a validation folder, which
    /// must label its images as the training folder does.
    pub fn open_with_classes(
        root: impl AsRef<Path>,
        classes: &[String],
        options: FolderOptions,
    ) -> Result<Self> {
        let root = root.as_ref();
        let found = find_classes(root)?;
        if let Some(extra) = found.iter().find(|c| !classes.contains(c)) {
            return Err(DatasetError::content(
                root.join(extra),
                format!(
                    "a class folder that the training classes do not have (they are: {})",
                    classes.join(", ")
                ),
            ));
        }
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            if !found.contains(class) {
                continue;
            }
            let files = image_files(&dir)?;
            if files.is_empty() {
                return Err(DatasetError::content(
                    &dir,
                    format!(
                        "class folder without any image (files ending in {}, any case)",
                        IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
                    ),
                ));
            }
            samples.extend(files.into_iter().map(|p| (p, label)));
        }
        let mut folder = ImageFolder {
            root: root.to_path_buf(),
            classes: classes.to_vec(),
            samples,
            channels: 1,
            skipped: Vec::new(),
        };
        if options.on_error == OnError::Skip {
            let bad = folder.scan();
            let bad_paths: std::collections::HashSet<&Path> =
                bad.iter().map(|s| s.path.as_path()).collect();
            folder
                .samples
                .retain(|(p, _)| !bad_paths.contains(p.as_path()));
            folder.skipped = bad;
        }
        folder.channels = match options.color {
            ColorMode::Grey => 1,
            ColorMode::Rgb => 3,
            ColorMode::Auto => match folder.samples.first() {
                Some((path, _)) => natural_channels(peek_color_type(path)?),
                None => 1,
            },
        };
        Ok(folder)
    }

    /// The folder indexed.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of image `index` and its label.
    pub fn sample(&self, index: usize) -> Option<(&Path, usize)> {
        self.samples.get(index).map(|(p, l)| (p.as_path(), *l))
    }

    /// The files left out because they could not be decoded
    /// ([`OnError::Skip`]); empty with [`OnError::Refuse`].
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// Decodes every image once, in parallel, keeping nothing, and returns
    /// the files that cannot be read or decoded with the reason, in index
    /// order. Use it to refuse a folder with bad files before training.
    pub fn scan(&self) -> Vec<SkippedFile> {
        let results: Vec<Option<SkippedFile>> = self
            .samples
            .par_iter()
            .map(|(path, _)| {
                decode_image(path).err().map(|e| SkippedFile {
                    path: path.clone(),
                    reason: reason_of(&e),
                })
            })
            .collect();
        results.into_iter().flatten().collect()
    }

    /// [`ImageFolder::scan`] as a check: an error naming every bad file (up
    /// to 20 of them), or `Ok`.
    pub fn check(&self) -> Result<()> {
        let bad = self.scan();
        match bad.first() {
            None => Ok(()),
            Some(first) => {
                let mut list: Vec<String> = bad
                    .iter()
                    .take(20)
                    .map(|s| format!("{}: {}", s.path.display(), s.reason))
                    .collect();
                if bad.len() > 20 {
                    list.push(format!("and {} more", bad.len() - 20));
                }
                Err(DatasetError::image(
                    &first.path,
                    format!(
                        "{} of {} images cannot be decoded:\n  {}",
                        bad.len(),
                        self.samples.len(),
                        list.join("\n  ")
                    ),
                ))
            }
        }
    }

    /// The images at `indices` (of this folder, in that order), as a new
    /// folder with the same classes.
    pub fn select(&self, indices: &[usize]) -> Result<ImageFolder> {
        let samples = indices
            .iter()
            .map(|&i| {
                self.samples.get(i).cloned().ok_or_else(|| {
                    DatasetError::Config(format!(
                        "index {i} is outside the {} images of {}",
                        self.samples.len(),
                        self.root.display()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(ImageFolder {
            samples,
            skipped: Vec::new(),
            ..self.clone()
        })
    }
}

/// The reason of a decoding error, without the path it starts with.
fn reason_of(e: &DatasetError) -> String {
    match e {
        DatasetError::Image { msg, .. } => msg.clone(),
        DatasetError::Io { action, source, .. } => format!("{action}: {source}"),
        e => e.to_string(),
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> usize {
        self.samples[index].1
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        let (path, _) = self.samples.get(index).ok_or_else(|| {
            DatasetError::Config(format!(
                "image {index} does not exist: {} has {}",
                self.root.display(),
                self.samples.len()
            ))
        })?;
        let img = decode_image(path)?;
        RawImage::from_dynamic(&img, self.channels)
    }

    fn describe(&self, index: usize) -> String {
        match self.samples.get(index) {
            Some((p, _)) => p.display().to_string(),
            None => format!("{} image {index}", self.root.display()),
        }
    }
}

/// The class folders of `root`, sorted by name. Errors if `root` is not a
/// folder or has no sub-folder, or a name is not UTF-8.
pub fn find_classes(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| DatasetError::io(root, "listing", e))?;
    let mut classes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DatasetError::io(root, "listing", e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|name| {
            DatasetError::content(
                root.join(&name),
                "a class folder name must be valid UTF-8 (it becomes a class name)",
            )
        })?;
        classes.push(name);
    }
    if classes.is_empty() {
        return Err(DatasetError::content(
            root,
            "no class folder: an image folder holds a sub-folder per class \
             (ROOT/<class>/<image>.png)",
        ));
    }
    classes.sort();
    Ok(classes)
}

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`], any case.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The image files under `dir` (recursively), sorted by folder then name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    // (folder, file name) pairs, sorted as Python sorts os.walk's tuples.
    let mut found: Vec<(PathBuf, std::ffi::OsString)> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| DatasetError::io(&folder, "listing", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DatasetError::io(&folder, "listing", e))?;
            let path = entry.path();
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if has_image_extension(&path) {
                found.push((folder.clone(), entry.file_name()));
            }
        }
    }
    found.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
            .then_with(|| a.1.as_encoded_bytes().cmp(b.1.as_encoded_bytes()))
    });
    Ok(found.into_iter().map(|(d, f)| d.join(f)).collect())
}

/// How a folder is split into training and validation images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FolderSplit {
    /// `ROOT/train/` and `ROOT/val/` (or `ROOT/test/`) if both exist, else
    /// [`FolderSplit::Ratio`] with the given fraction and seed.
    Detect {
        /// Fraction of each class held out when there is no split on disk.
        val_fraction: f64,
        /// Seed of that split.
        seed: u64,
    },
    /// `ROOT/train/` and `ROOT/val/` (or `ROOT/test/`); an error if missing.
    Folders,
    /// `ROOT`'s classes, a seeded fraction of each held out
    /// ([`split_by_ratio`]).
    Ratio {
        /// Fraction of each class held out, in `[0, 1)`.
        val_fraction: f64,
        /// Seed.
        seed: u64,
    },
    /// Everything is for training; no validation images.
    None,
}

/// A folder split into training and validation images.
#[derive(Debug, Clone)]
pub struct FolderSplits {
    /// The training images.
    pub train: ImageFolder,
    /// The validation images (same classes, same labels), if any.
    pub val: Option<ImageFolder>,
    /// What was found: `"ROOT/train and ROOT/val"` or `"10% of ROOT, seed 42"`.
    pub description: String,
}

/// The training and validation folders of `root`, if it has them: `train/`
/// with `val/`, else `train/` with `test/`.
pub fn split_folders(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let train = root.join("train");
    if !train.is_dir() {
        return None;
    }
    ["val", "test"]
        .iter()
        .map(|v| root.join(v))
        .find(|v| v.is_dir())
        .map(|v| (train, v))
}

/// Opens `root` split as `split` says. Validation images are labelled with
/// the training folder's classes.
pub fn open_split(root: &Path, split: FolderSplit, options: FolderOptions) -> Result<FolderSplits> {
    let ratio = |val_fraction: f64, seed: u64| -> Result<FolderSplits> {
        let all = ImageFolder::open(root, options)?;
        let (train, val) = split_by_ratio(&all, val_fraction, seed)?;
        Ok(FolderSplits {
            train,
            val: Some(val),
            description: format!(
                "{} split at random: {:.0}% of each class held out for validation (seed {seed})",
                root.display(),
                val_fraction * 100.0
            ),
        })
    };
    match split {
        FolderSplit::None => Ok(FolderSplits {
            train: ImageFolder::open(root, options)?,
            val: None,
            description: format!("{} (every image for training)", root.display()),
        }),
        FolderSplit::Ratio { val_fraction, seed } => ratio(val_fraction, seed),
        FolderSplit::Folders | FolderSplit::Detect { .. } => match split_folders(root) {
            Some((train_dir, val_dir)) => {
                let train = ImageFolder::open(&train_dir, options)?;
                // The validation images take the training images' channels.
                let val_options = FolderOptions {
                    color: ColorMode::from_channels(train.channels())?,
                    ..options
                };
                let val = ImageFolder::open_with_classes(&val_dir, &train.classes, val_options)?;
                Ok(FolderSplits {
                    train,
                    val: Some(val),
                    description: format!("{} and {}", train_dir.display(), val_dir.display()),
                })
            }
            None => match split {
                FolderSplit::Detect { val_fraction, seed } => ratio(val_fraction, seed),
                _ => Err(DatasetError::content(
                    root,
                    "expected a train/ folder and a val/ (or test/) folder",
                )),
            },
        },
    }
}

/// Splits `folder` into (train, val): in each class, the images are shuffled
/// with `Rng::seed_from(seed).fork(label)` and the first
/// `round(n * val_fraction)` go to validation, the rest to training; both
/// keep the folder's order. The same seed gives the same split on every
/// machine, and a class's split does not depend on the other classes.
pub fn split_by_ratio(
    folder: &ImageFolder,
    val_fraction: f64,
    seed: u64,
) -> Result<(ImageFolder, ImageFolder)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DatasetError::Config(format!(
            "the validation fraction must be in [0, 1), got {val_fraction}"
        )));
    }
    let mut is_val = vec![false; folder.samples.len()];
    for label in 0..folder.classes.len() {
        let mut members: Vec<usize> = (0..folder.samples.len())
            .filter(|&i| folder.samples[i].1 == label)
            .collect();
        let n_val = (members.len() as f64 * val_fraction).round() as usize;
        Rng::seed_from(seed)
            .fork(label as u64)
            .shuffle(&mut members);
        for &i in &members[..n_val] {
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<usize>, Vec<usize>) =
        (0..folder.samples.len()).partition(|&i| is_val[i]);
    Ok((folder.select(&train)?, folder.select(&val)?))
}

#[cfg(test)]
mod tests;
