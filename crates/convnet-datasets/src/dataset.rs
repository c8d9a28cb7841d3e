//! A split of MNIST or Fashion-MNIST in memory: images `[N, 1, 28, 28]` as
//! `f32` in [0, 1] and labels `0..=9`.
//!
//! A loaded split keeps the file's bytes (one byte per pixel, 47 MB for
//! MNIST's training set instead of 188 MB as `f32`); the data loader
//! converts each batch as it assembles it. [`Dataset::images`] gives the
//! whole `f32` tensor, converted on first use and kept.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use convnet_tensor::Tensor;
use rayon::prelude::*;

use crate::error::{DatasetError, Result};
use crate::idx::{IdxData, IdxHeader, IdxReader, IdxType};
use crate::kind::{DatasetKind, FileSpec, Part, Split, IMAGE_SIDE, NUM_CLASSES};
use crate::locate::candidate_files;

/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Byte to pixel value, exactly as torchvision's `ToTensor` (byte / 255).
pub(crate) fn byte_to_pixel_table() -> [f32; 256] {
    std::array::from_fn(|b| b as f32 / 255.0)
}

/// Where a dataset's pixels live.
#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    /// The file's bytes, `N·784` of them (what [`Dataset::load`] keeps).
    Bytes(Vec<u8>),
    /// Values in [0, 1] (what [`Dataset::from_parts`] is given).
    Floats(Tensor),
}

/// The environment variable that lets the `convnet` binary load synthetic
/// splits (fewer images than the publisher's, unverified): set it to `1`.
/// See [`LoadOptions::from_env`].
pub const ALLOW_SYNTHETIC_ENV: &str = "CONVNET_ALLOW_SYNTHETIC_DATA";

/// How [`Dataset::load_with`] checks the files.
///
/// ```
/// use convnet_datasets::dataset::LoadOptions;
/// assert!(!LoadOptions::default().allow_synthetic);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept a split with fewer images than the publisher's (synthetic data
    /// written by tests or experiments), without checksum. A split with the
    /// publisher's count is verified whatever this says; one with more is
    /// always rejected.
    pub allow_synthetic: bool,
}

impl LoadOptions {
    /// The default options, with [`LoadOptions::allow_synthetic`] set if
    /// the environment variable [`ALLOW_SYNTHETIC_ENV`] is `1`.
    pub fn from_env() -> LoadOptions {
        LoadOptions {
            allow_synthetic: std::env::var_os(ALLOW_SYNTHETIC_ENV).is_some_and(|v| v == "1"),
        }
    }
}

/// One split of a dataset, in memory.
///
/// ```
/// use convnet_datasets::{Dataset, DatasetKind, Split};
/// use convnet_tensor::Tensor;
///
/// // Real data comes from `Dataset::load(kind, split, dir)`; a tiny one by hand:
/// let images = Tensor::full(&[3, 1, 28, 28], 0.5);
/// let ds = Dataset::from_parts(DatasetKind::FashionMnist, Split::Test, images, vec![1, 4, 9])?;
/// assert_eq!(ds.len(), 3);
/// assert_eq!(ds.class_name(ds.labels[1]), "Coat");
/// assert_eq!(ds.class_counts()[9], 1);
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub kind: DatasetKind,
    /// Which split.
    pub split: Split,
    /// The pixels, as bytes or as values in [0, 1].
    pixels: Pixels,
    /// The `f32` images of a byte store, made by the first
    /// [`Dataset::images`] call.
    floats: OnceLock<Tensor>,
    /// Labels, `N` values in `0..=9`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Loads a split from `dir`, which is either a data folder holding
    /// `mnist/` and `fashion-mnist/` or the dataset's own folder, with the
    /// default [`LoadOptions`]: only the publisher's files are accepted.
    pub fn load(kind: DatasetKind, split: Split, dir: impl AsRef<Path>) -> Result<Dataset> {
        Dataset::load_with(kind, split, dir, &LoadOptions::default())
    }

    /// Loads a split from `dir` (a data folder or the dataset's own folder).
    /// Each file may be gzip-compressed (`train-images-idx3-ubyte.gz`) or
    /// plain.
    ///
    /// The headers are checked before any data is read: u8 images of
    /// `[N, 28, 28]`, u8 labels of `[N]`, the same `N` in both, and `N` at
    /// most the publisher's count (60,000 train, 10,000 test), so reading
    /// never goes past the size of the real files. A split with the
    /// publisher's count is then verified against the publisher's SHA-256
    /// while it is read (MNIST files in `fashion-mnist/` are rejected). A
    /// split with fewer images is synthetic data or a truncated copy: it is
    /// loaded only with [`LoadOptions::allow_synthetic`], unverified.
    /// Labels must be in `0..=9`. Temporary files (`.*.part`) an interrupted
    /// transfer left in the folder are removed.
    pub fn load_with(
        kind: DatasetKind,
        split: Split,
        dir: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Dataset> {
        let dir = dir.as_ref();
        let images_path = locate(kind, split, Part::Images, dir)?;
        let labels_path = locate(kind, split, Part::Labels, dir)?;
        if let Some(folder) = images_path.parent() {
            crate::files::remove_leftover_parts(folder);
        }
        let images = IdxReader::open(&images_path)?;
        let labels = IdxReader::open(&labels_path)?;
        let n = check_images_header(&images_path, images.header())?;
        let count = check_labels_header(&labels_path, labels.header())?;
        if n != count {
            return Err(DatasetError::content(
                &labels_path,
                format!(
                    "{count} labels, but {} holds {n} images: the counts must match",
                    images_path.display()
                ),
            ));
        }
        let expected = split.expected_len();
        if n > expected {
            return Err(DatasetError::content(
                &images_path,
                format!(
                    "its header announces {n} images, more than the {expected} of {} {split}: \
                     this is not the publisher's file. {}",
                    kind.title(),
                    fix_hint(kind)
                ),
            ));
        }
        let verify = n == expected;
        if !verify && !opts.allow_synthetic {
            return Err(DatasetError::content(
                &images_path,
                format!(
                    "{n} images, but {} {split} has {expected}: a truncated copy or synthetic \
                     data, not the publisher's file. {} (Synthetic data is loaded only on \
                     request: `LoadOptions::allow_synthetic` in the library, \
                     ${ALLOW_SYNTHETIC_ENV}=1 for the convnet binary.)",
                    kind.title(),
                    fix_hint(kind)
                ),
            ));
        }
        let check = |part| verify.then(|| kind.file(split, part));
        let (images, labels) = rayon::join(
            || read_images(images, check(Part::Images), kind),
            || read_labels(labels, check(Part::Labels), kind),
        );
        let (bytes, labels) = (images?, labels?);
        Ok(Dataset {
            kind,
            split,
            pixels: Pixels::Bytes(bytes),
            floats: OnceLock::new(),
            labels,
        })
    }

    /// A dataset from images `[N, 1, 28, 28]` and `N` labels in `0..=9`
    /// (for tests, synthetic data or subsets made elsewhere).
    pub fn from_parts(
        kind: DatasetKind,
        split: Split,
        images: Tensor,
        labels: Vec<u8>,
    ) -> Result<Dataset> {
        let shape = images.shape();
        if shape.len() != 4 || shape[1..] != [1, IMAGE_SIDE, IMAGE_SIDE] {
            return Err(DatasetError::Config(format!(
                "{} images must have shape [N, 1, 28, 28], got {shape:?}",
                kind.title()
            )));
        }
        if shape[0] != labels.len() {
            return Err(DatasetError::Config(format!(
                "{} images but {} labels",
                shape[0],
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
            return Err(DatasetError::Config(format!(
                "label {} at index {i} is outside 0..=9",
                labels[i]
            )));
        }
        Ok(Dataset {
            kind,
            split,
            pixels: Pixels::Floats(images),
            floats: OnceLock::new(),
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images, `[N, 1, 28, 28]`, pixel values in [0, 1] (byte / 255).
    ///
    /// A loaded split stores bytes: the first call converts all of them
    /// (4 bytes per pixel, 188 MB for MNIST's training set) and keeps the
    /// tensor. The data loader does not need it.
    pub fn images(&self) -> &Tensor {
        match &self.pixels {
            Pixels::Floats(t) => t,
            Pixels::Bytes(bytes) => self.floats.get_or_init(|| {
                let table = byte_to_pixel_table();
                let mut pixels = vec![0f32; bytes.len()];
                pixels
                    .par_chunks_mut(1 << 16)
                    .zip(bytes.par_chunks(1 << 16))
                    .for_each(|(out, src)| {
                        for (o, &b) in out.iter_mut().zip(src) {
                            *o = table[b as usize];
                        }
                    });
                Tensor::from_vec(&[self.len(), 1, IMAGE_SIDE, IMAGE_SIDE], pixels)
                    .expect("N·784 pixels make [N, 1, 28, 28]")
            }),
        }
    }

    /// Writes image `index` (784 values in [0, 1], row-major) into `out`;
    /// `None` past the end. Needs no [`Dataset::images`] tensor.
    pub(crate) fn image_into(&self, index: usize, out: &mut [f32]) -> Option<()> {
        let range = index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS;
        match &self.pixels {
            Pixels::Floats(t) => out.copy_from_slice(t.as_slice().get(range)?),
            Pixels::Bytes(bytes) => {
                let table = byte_to_pixel_table();
                for (o, &b) in out.iter_mut().zip(bytes.get(range)?) {
                    *o = table[b as usize];
                }
            }
        }
        Some(())
    }

    /// The 784 bytes of image `index` (row-major), `None` past the end: the
    /// file's bytes for a loaded split, `round(v * 255)` for one made of
    /// values ([`Dataset::from_parts`]). What [`crate::ImageSource`] gives.
    pub(crate) fn image_bytes(&self, index: usize) -> Option<Vec<u8>> {
        let range = index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS;
        match &self.pixels {
            Pixels::Bytes(bytes) => bytes.get(range).map(<[u8]>::to_vec),
            Pixels::Floats(t) => t.as_slice().get(range).map(|values| {
                values
                    .iter()
                    .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                    .collect()
            }),
        }
    }

    /// The pixels of image `index` (784 values, row-major), `None` past the end.
    /// On a loaded split this converts the whole set ([`Dataset::images`]).
    pub fn image(&self, index: usize) -> Option<&[f32]> {
        self.images()
            .as_slice()
            .get(index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS)
    }

    /// The name of a class (`"Trouser"` for Fashion-MNIST's 1); `"?"` for a
    /// label outside `0..=9`.
    pub fn class_name(&self, label: u8) -> &'static str {
        self.kind
            .class_names()
            .get(label as usize)
            .copied()
            .unwrap_or("?")
    }

    /// How many images of each class.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Mean and standard deviation of all pixels (population std), computed
    /// in `f64` in a fixed order.
    pub fn pixel_mean_std(&self) -> (f64, f64) {
        let pixels = match &self.pixels {
            Pixels::Floats(t) => t.as_slice(),
            Pixels::Bytes(bytes) => return byte_mean_std(bytes),
        };
        if pixels.is_empty() {
            return (0.0, 0.0);
        }
        // Fixed-size chunks summed in order: the same result for any thread count.
        let partial: Vec<(f64, f64)> = pixels
            .par_chunks(1 << 16)
            .map(|c| {
                c.iter().fold((0.0f64, 0.0f64), |(s, s2), &v| {
                    let v = v as f64;
                    (s + v, s2 + v * v)
                })
            })
            .collect();
        let (s, s2) = partial
            .iter()
            .fold((0.0, 0.0), |(a, b), &(s, s2)| (a + s, b + s2));
        let n = pixels.len() as f64;
        let mean = s / n;
        let var = (s2 / n - mean * mean).max(0.0);
        (mean, var.sqrt())
    }

    /// The images and labels of `range` as a new dataset.
    pub fn subset(&self, range: Range<usize>) -> Result<Dataset> {
        if range.start > range.end || range.end > self.len() {
            return Err(DatasetError::Config(format!(
                "subset {range:?} is outside the {} images of {} {}",
                self.len(),
                self.kind.title(),
                self.split
            )));
        }
        let pixels = range.start * IMAGE_PIXELS..range.end * IMAGE_PIXELS;
        let pixels = match &self.pixels {
            Pixels::Bytes(bytes) => Pixels::Bytes(bytes[pixels].to_vec()),
            Pixels::Floats(t) => Pixels::Floats(Tensor::from_slice(
                &[range.len(), 1, IMAGE_SIDE, IMAGE_SIDE],
                &t.as_slice()[pixels],
            )?),
        };
        Ok(self.with_images(pixels, self.labels[range].to_vec()))
    }

    /// The images and labels at `indices` (in that order) as a new dataset.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DatasetError::Config(format!(
                "index {bad} is outside the {} images of {} {}",
                self.len(),
                self.kind.title(),
                self.split
            )));
        }
        fn gather<T: Copy>(src: &[T], indices: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
            for &i in indices {
                out.extend_from_slice(&src[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
            }
            out
        }
        let pixels = match &self.pixels {
            Pixels::Bytes(bytes) => Pixels::Bytes(gather(bytes, indices)),
            Pixels::Floats(t) => Pixels::Floats(Tensor::from_vec(
                &[indices.len(), 1, IMAGE_SIDE, IMAGE_SIDE],
                gather(t.as_slice(), indices),
            )?),
        };
        Ok(self.with_images(pixels, indices.iter().map(|&i| self.labels[i]).collect()))
    }

    /// A dataset of the same kind and split holding `pixels` and `labels`.
    fn with_images(&self, pixels: Pixels, labels: Vec<u8>) -> Dataset {
        Dataset {
            kind: self.kind,
            split: self.split,
            pixels,
            floats: OnceLock::new(),
            labels,
        }
    }
}

/// The path of one file of a split in `dir` (a data folder or the dataset's
/// own folder), `.gz` preferred.
pub fn locate(kind: DatasetKind, split: Split, part: Part, dir: &Path) -> Result<PathBuf> {
    let spec: &FileSpec = kind.file(split, part);
    let mut tried = Vec::new();
    for folder in [dir.join(kind.name()), dir.to_path_buf()] {
        for path in candidate_files(&folder, spec) {
            if path.is_file() {
                return Ok(path);
            }
            tried.push(path.display().to_string());
        }
    }
    Err(DatasetError::NotFound {
        what: format!(
            "{} {split} {}",
            kind.title(),
            match part {
                Part::Images => "images",
                Part::Labels => "labels",
            }
        ),
        tried: tried.join(", "),
        hint: format!(
            " Get the files with `cargo xtask download {name} --data-dir DIR`, or without \
             internet import a copy with `cargo xtask download {name} --from FOLDER --data-dir DIR`.",
            name = kind.name()
        ),
    })
}

/// Mean and standard deviation of byte pixels taken as byte / 255, from a
/// histogram of the 256 byte values.
fn byte_mean_std(bytes: &[u8]) -> (f64, f64) {
    if bytes.is_empty() {
        return (0.0, 0.0);
    }
    let counts = bytes
        .par_chunks(1 << 16)
        .map(|c| {
            let mut h = [0u64; 256];
            c.iter().for_each(|&b| h[b as usize] += 1);
            h
        })
        .reduce(
            || [0u64; 256],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let table = byte_to_pixel_table();
    let (s, s2) = counts
        .iter()
        .zip(table)
        .fold((0.0f64, 0.0f64), |(s, s2), (&c, v)| {
            let (c, v) = (c as f64, v as f64);
            (s + c * v, s2 + c * v * v)
        });
    let n = bytes.len() as f64;
    let mean = s / n;
    let var = (s2 / n - mean * mean).max(0.0);
    (mean, var.sqrt())
}

/// How to put the publisher's files in place, for errors.
fn fix_hint(kind: DatasetKind) -> String {
    format!(
        "Re-import verified files with `cargo xtask download {name} --from FOLDER --data-dir \
         DIR`, or delete the folder's files and download them again with `cargo xtask download \
         {name} --data-dir DIR`.",
        name = kind.name()
    )
}

/// The number of images of an IDX header of u8 images `[N, 28, 28]`.
fn check_images_header(path: &Path, header: &IdxHeader) -> Result<usize> {
    if header.elem_type != IdxType::U8
        || header.dims.len() != 3
        || header.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE]
    {
        return Err(DatasetError::content(
            path,
            format!("expected u8 images of shape [N, 28, 28], found {header}"),
        ));
    }
    Ok(header.dims[0])
}

/// The number of labels of an IDX header of u8 labels `[N]`.
fn check_labels_header(path: &Path, header: &IdxHeader) -> Result<usize> {
    if header.elem_type != IdxType::U8 || header.dims.len() != 1 {
        return Err(DatasetError::content(
            path,
            format!("expected u8 labels of shape [N], found {header}"),
        ));
    }
    Ok(header.dims[0])
}

/// Reads the data of `reader`, a u8 file whose header was checked; with a
/// `spec`, checks the SHA-256 of the whole content (header and data).
fn read_checked<R: std::io::Read>(
    reader: IdxReader<R>,
    spec: Option<&FileSpec>,
    kind: DatasetKind,
) -> Result<Vec<u8>> {
    let path = reader.path().to_path_buf();
    let header = reader.header().to_bytes();
    let IdxData::U8(bytes) = reader.read_all()?.into_data() else {
        return Err(DatasetError::content(&path, "expected u8 elements"));
    };
    if let Some(spec) = spec {
        let found = sha256_hex(&[&header, &bytes]);
        if found != spec.sha256 {
            let other = DatasetKind::ALL
                .into_iter()
                .filter(|&k| k != kind)
                .flat_map(|k| k.files())
                .find(|f| f.sha256 == found)
                .map(|f| format!(" (it is {}'s {})", title_of(f.dataset), f.name))
                .unwrap_or_default();
            return Err(DatasetError::content(
                &path,
                format!(
                    "not the publisher's {}: its content has sha256 {found}{other}, expected \
                     {}. {}",
                    spec.display_name(),
                    spec.sha256,
                    fix_hint(kind)
                ),
            ));
        }
    }
    Ok(bytes)
}

/// `"MNIST"` for the folder name `"mnist"`.
fn title_of(dataset: &str) -> &str {
    dataset
        .parse::<DatasetKind>()
        .map(DatasetKind::title)
        .unwrap_or(dataset)
}

/// SHA-256 of the concatenated `parts`, lowercase hex.
fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of an IDX file of u8 images `[N, 28, 28]` (header checked).
fn read_images<R: std::io::Read>(
    reader: IdxReader<R>,
    spec: Option<&FileSpec>,
    kind: DatasetKind,
) -> Result<Vec<u8>> {
    let n = reader.header().dims[0];
    let bytes = read_checked(reader, spec, kind)?;
    debug_assert_eq!(bytes.len(), n * IMAGE_PIXELS);
    Ok(bytes)
}

/// The labels of an IDX file of u8 labels `[N]` (header checked), each in `0..=9`.
fn read_labels<R: std::io::Read>(
    reader: IdxReader<R>,
    spec: Option<&FileSpec>,
    kind: DatasetKind,
) -> Result<Vec<u8>> {
    let path = reader.path().to_path_buf();
    let labels = read_checked(reader, spec, kind)?;
    if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(DatasetError::content(
            path,
            format!("label {} at index {i} is outside 0..=9", labels[i]),
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests;
