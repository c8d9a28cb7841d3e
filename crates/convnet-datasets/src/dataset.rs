//! A split of MNIST or Fashion-MNIST in memory: images `[N, 1, 28, 28]` as
//! `f32` in [0, 1] and labels `0..=9`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use convnet_tensor::Tensor;
use rayon::prelude::*;

use crate::error::{DatasetError, Result};
use crate::idx::{IdxData, IdxReader, IdxType};
use crate::kind::{DatasetKind, FileSpec, Part, Split, IMAGE_SIDE, NUM_CLASSES};
use crate::locate::candidate_files;

/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

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
    /// Images, `[N, 1, 28, 28]`, pixel values in [0, 1] (byte / 255).
    pub images: Tensor,
    /// Labels, `N` values in `0..=9`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Loads a split from `dir`, which is either a data folder holding
    /// `mnist/` and `fashion-mnist/` or the dataset's own folder. Each file
    /// may be gzip-compressed (`train-images-idx3-ubyte.gz`) or plain.
    ///
    /// The files' structure is checked (u8 images of `[N, 28, 28]`, u8 labels
    /// of `[N]`, equal counts, labels in `0..=9`); their checksums are not
    /// (that is the job of [`crate::download`], once, when they arrive).
    pub fn load(kind: DatasetKind, split: Split, dir: impl AsRef<Path>) -> Result<Dataset> {
        let dir = dir.as_ref();
        let images_path = locate(kind, split, Part::Images, dir)?;
        let labels_path = locate(kind, split, Part::Labels, dir)?;
        let (images, labels) =
            rayon::join(|| read_images(&images_path), || read_labels(&labels_path));
        let (images, labels) = (images?, labels?);
        let n = images.shape()[0];
        if n != labels.len() {
            return Err(DatasetError::content(
                &labels_path,
                format!(
                    "{} labels, but {} holds {n} images: the counts must match",
                    labels.len(),
                    images_path.display()
                ),
            ));
        }
        Ok(Dataset {
            kind,
            split,
            images,
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
            images,
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

    /// The pixels of image `index` (784 values, row-major), `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[f32]> {
        self.images
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
        let pixels = self.images.as_slice();
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
        let pixels = &self.images.as_slice()[range.start * IMAGE_PIXELS..range.end * IMAGE_PIXELS];
        let images = Tensor::from_slice(&[range.len(), 1, IMAGE_SIDE, IMAGE_SIDE], pixels)?;
        Ok(Dataset {
            kind: self.kind,
            split: self.split,
            images,
            labels: self.labels[range].to_vec(),
        })
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
        let src = self.images.as_slice();
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
        for &i in indices {
            pixels.extend_from_slice(&src[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
        }
        let images = Tensor::from_vec(&[indices.len(), 1, IMAGE_SIDE, IMAGE_SIDE], pixels)?;
        Ok(Dataset {
            kind: self.kind,
            split: self.split,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
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

fn read_images(path: &Path) -> Result<Tensor> {
    let reader = IdxReader::open(path)?;
    let header = reader.header();
    if header.elem_type != IdxType::U8
        || header.dims.len() != 3
        || header.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE]
    {
        return Err(DatasetError::content(
            path,
            format!("expected u8 images of shape [N, 28, 28], found {header}"),
        ));
    }
    let n = header.dims[0];
    let IdxData::U8(bytes) = reader.read_all()?.into_data() else {
        return Err(DatasetError::content(path, "expected u8 images"));
    };
    debug_assert_eq!(bytes.len(), n * IMAGE_PIXELS);
    // byte / 255 exactly as torchvision's ToTensor, through a lookup table.
    let table: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
    let mut pixels = vec![0f32; bytes.len()];
    pixels
        .par_chunks_mut(1 << 16)
        .zip(bytes.par_chunks(1 << 16))
        .for_each(|(out, src)| {
            for (o, &b) in out.iter_mut().zip(src) {
                *o = table[b as usize];
            }
        });
    Ok(Tensor::from_vec(&[n, 1, IMAGE_SIDE, IMAGE_SIDE], pixels)?)
}

fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let reader = IdxReader::open(path)?;
    let header = reader.header();
    if header.elem_type != IdxType::U8 || header.dims.len() != 1 {
        return Err(DatasetError::content(
            path,
            format!("expected u8 labels of shape [N], found {header}"),
        ));
    }
    let IdxData::U8(labels) = reader.read_all()?.into_data() else {
        return Err(DatasetError::content(path, "expected u8 labels"));
    };
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
