//! A split of CIFAR-10 or CIFAR-100 in memory: the pixel bytes as the
//! files hold them (3 × 32 × 32 per image, channel-first), the labels and
//! the class names.

use std::path::Path;

use convnet_tensor::Tensor;
use rayon::prelude::*;

use crate::dataset::{LoadOptions, ALLOW_SYNTHETIC_ENV};
use crate::error::{DatasetError, Result};
use crate::kind::Split;

use super::manifest::MANIFEST_NAME;
use super::read::{changed, existing, read_batch, read_names, verified_manifest};
use super::{dataset_folder, CifarKind, Layout, CIFAR_IMAGE_BYTES, CIFAR_SIDE};

/// One split of CIFAR-10 or CIFAR-100, in memory (about 31 MB per 10,000
/// images: one byte per pixel).
///
/// ```
/// use convnet_datasets::cifar::{CifarDataset, CifarKind};
/// use convnet_datasets::Split;
///
/// // Real data comes from `CifarDataset::load(kind, split, dir)`; by hand:
/// let names: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
/// let ds = CifarDataset::from_parts(CifarKind::Cifar10, Split::Test, names, vec![3, 7], vec![128; 2 * 3072])?;
/// assert_eq!((ds.len(), ds.label(1)), (2, 7));
/// assert_eq!(ds.image_chw(0).len(), 3 * 32 * 32);
/// assert_eq!(ds.image_hwc(0).len(), 32 * 32 * 3);
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CifarDataset {
    kind: CifarKind,
    split: Split,
    class_names: Vec<String>,
    coarse_class_names: Vec<String>,
    labels: Vec<u8>,
    coarse_labels: Vec<u8>,
    /// `N · 3072` bytes, each image R plane, G plane, B plane (row-major).
    pixels: Vec<u8>,
    verified: bool,
}

impl CifarDataset {
    /// Loads a split from `dir` (a data folder holding `cifar10/`, or the
    /// dataset's own folder) accepting only the publisher's files, verified
    /// against the import manifest. See [`CifarDataset::load_with`].
    pub fn load(kind: CifarKind, split: Split, dir: impl AsRef<Path>) -> Result<CifarDataset> {
        CifarDataset::load_with(kind, split, dir, &LoadOptions::default())
    }

    /// Loads a split from `dir` (a data folder or the dataset's own folder).
    ///
    /// Sizes are checked before any data is read: every batch file must be
    /// a whole number of records, at most the publisher's count. When every
    /// file of the split has the publisher's count, the files must be those
    /// recorded in the manifest ([`MANIFEST_NAME`]) of a verified import:
    /// same size and SHA-256 (checked while reading), from an archive with
    /// the publisher's MD5. Fewer records (a truncated copy or synthetic
    /// data) load only with [`LoadOptions::allow_synthetic`], unverified.
    /// Labels must be below 10 (CIFAR-100: fine below 100, coarse below
    /// 20), and the class-name files must name exactly that many classes.
    /// Temporary files (`.*.part`) an interrupted import left are removed.
    pub fn load_with(
        kind: CifarKind,
        split: Split,
        dir: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<CifarDataset> {
        CifarDataset::load_layout(&Layout::publisher(kind), split, dir.as_ref(), opts)
    }

    /// [`CifarDataset::load_with`] against `layout` (tests use small ones).
    pub(crate) fn load_layout(
        layout: &Layout,
        split: Split,
        dir: &Path,
        opts: &LoadOptions,
    ) -> Result<CifarDataset> {
        let kind = layout.kind;
        let folder = dataset_folder(kind, dir);
        crate::files::remove_leftover_parts(&folder);
        let rec = kind.record_len() as u64;
        let mut files = Vec::new();
        let mut full = true;
        for (name, _, expected) in layout.batches().filter(|b| b.1 == split) {
            let path = existing(kind, &folder, name)?;
            let len = std::fs::metadata(&path)
                .map_err(|e| DatasetError::io(&path, "reading the size of", e))?
                .len();
            if len == 0 || len % rec != 0 {
                return Err(DatasetError::content(
                    &path,
                    format!(
                        "{len} bytes, not a whole number of {rec}-byte {} records: a truncated \
                         or foreign file. {}",
                        kind.title(),
                        kind.offline_hint()
                    ),
                ));
            }
            if len > expected {
                return Err(DatasetError::content(
                    &path,
                    format!(
                        "{} records, more than the {} of the publisher's file: not a {} batch \
                         file. {}",
                        len / rec,
                        expected / rec,
                        kind.title(),
                        kind.offline_hint()
                    ),
                ));
            }
            if len < expected {
                if !opts.allow_synthetic {
                    return Err(DatasetError::content(
                        &path,
                        format!(
                            "{} records, but the publisher's file has {}: a truncated copy or \
                             synthetic data. {} (Synthetic data is loaded only on request: \
                             `LoadOptions::allow_synthetic` in the library, \
                             ${ALLOW_SYNTHETIC_ENV}=1 for the convnet binary.)",
                            len / rec,
                            expected / rec,
                            kind.offline_hint()
                        ),
                    ));
                }
                full = false;
            }
            files.push((path, len));
        }
        let manifest = if full {
            Some(verified_manifest(layout, &folder)?)
        } else {
            None
        };
        let check = |path: &Path| -> Result<Option<String>> {
            let Some(m) = &manifest else { return Ok(None) };
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let manifest_path = folder.join(MANIFEST_NAME);
            let entry = m.entry(&name).ok_or_else(|| {
                DatasetError::content(
                    &manifest_path,
                    format!("does not list {name}: import the archive again"),
                )
            })?;
            let len = std::fs::metadata(path)
                .map_err(|e| DatasetError::io(path, "reading the size of", e))?
                .len();
            if len != entry.len {
                return Err(changed(
                    path,
                    &format!("{len} bytes, {} recorded at import", entry.len),
                    kind,
                ));
            }
            Ok(Some(entry.sha256.clone()))
        };

        let total: u64 = files.iter().map(|f| f.1 / rec).sum();
        let mut ds = CifarDataset {
            kind,
            split,
            class_names: Vec::new(),
            coarse_class_names: Vec::new(),
            labels: vec![0; total as usize],
            coarse_labels: vec![
                0;
                if kind.num_coarse_classes() > 0 {
                    total as usize
                } else {
                    0
                }
            ],
            pixels: vec![0; total as usize * CIFAR_IMAGE_BYTES],
            verified: manifest.is_some(),
        };
        // Each file into its own part of the buffers, the files in parallel.
        let mut jobs = Vec::new();
        let (mut labels, mut coarse, mut pixels) = (
            &mut ds.labels[..],
            &mut ds.coarse_labels[..],
            &mut ds.pixels[..],
        );
        for (path, len) in &files {
            let n = (len / rec) as usize;
            let (l, rest_l) = std::mem::take(&mut labels).split_at_mut(n);
            let c_len = n.min(coarse.len());
            let (c, rest_c) = std::mem::take(&mut coarse).split_at_mut(c_len);
            let (p, rest_p) = std::mem::take(&mut pixels).split_at_mut(n * CIFAR_IMAGE_BYTES);
            (labels, coarse, pixels) = (rest_l, rest_c, rest_p);
            jobs.push((path, *len, check(path)?, l, c, p));
        }
        jobs.into_par_iter()
            .map(|(path, len, sha, l, c, p)| read_batch(kind, path, len, sha.as_deref(), l, c, p))
            .collect::<Result<Vec<()>>>()?;
        let names_path = existing(kind, &folder, kind.names_file())?;
        ds.class_names = read_names(
            &names_path,
            kind.num_classes(),
            check(&names_path)?.as_deref(),
            kind,
        )?;
        if let Some(coarse) = kind.coarse_names_file() {
            let path = existing(kind, &folder, coarse)?;
            ds.coarse_class_names = read_names(
                &path,
                kind.num_coarse_classes(),
                check(&path)?.as_deref(),
                kind,
            )?;
        }
        Ok(ds)
    }

    /// A split from its parts (tests, subsets, synthetic data): class names
    /// (as many as the kind has classes), labels, and `labels.len() · 3072`
    /// pixel bytes, each image channel-first. CIFAR-100's coarse labels and
    /// names are left empty.
    pub fn from_parts(
        kind: CifarKind,
        split: Split,
        class_names: Vec<String>,
        labels: Vec<u8>,
        pixels: Vec<u8>,
    ) -> Result<CifarDataset> {
        if class_names.len() != kind.num_classes() {
            return Err(DatasetError::Config(format!(
                "{} has {} classes, {} names given",
                kind.title(),
                kind.num_classes(),
                class_names.len()
            )));
        }
        if pixels.len() != labels.len() * CIFAR_IMAGE_BYTES {
            return Err(DatasetError::Config(format!(
                "{} labels need {} pixel bytes, {} given",
                labels.len(),
                labels.len() * CIFAR_IMAGE_BYTES,
                pixels.len()
            )));
        }
        if let Some(i) = labels
            .iter()
            .position(|&l| l as usize >= kind.num_classes())
        {
            return Err(DatasetError::Config(format!(
                "label {} at index {i} is outside 0..{}",
                labels[i],
                kind.num_classes()
            )));
        }
        Ok(CifarDataset {
            kind,
            split,
            class_names,
            coarse_class_names: Vec::new(),
            labels,
            coarse_labels: Vec::new(),
            pixels,
            verified: false,
        })
    }

    /// Which dataset.
    pub fn kind(&self) -> CifarKind {
        self.kind
    }

    /// Which split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the files were checked against the import manifest (false
    /// for synthetic data and [`CifarDataset::from_parts`]).
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// Number of colour channels: 3.
    pub fn channels(&self) -> usize {
        3
    }

    /// The (fine) class names, by label, as the publisher's name file has them.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// CIFAR-100's 20 coarse class names; empty for CIFAR-10.
    pub fn coarse_class_names(&self) -> &[String] {
        &self.coarse_class_names
    }

    /// The (fine) label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i] as usize
    }

    /// All (fine) labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// CIFAR-100's coarse label of image `i`; `None` for CIFAR-10 (or
    /// past the end).
    pub fn coarse_label(&self, i: usize) -> Option<usize> {
        self.coarse_labels.get(i).map(|&l| l as usize)
    }

    /// The 3072 bytes of image `i` as stored: red plane, green plane, blue
    /// plane, each 32 rows of 32. Panics if `i >= len()`.
    pub fn image_chw(&self, i: usize) -> &[u8] {
        &self.pixels[i * CIFAR_IMAGE_BYTES..(i + 1) * CIFAR_IMAGE_BYTES]
    }

    /// Image `i` interleaved, as image libraries want it: for each row, for
    /// each column, R, G, B. Panics if `i >= len()`.
    pub fn image_hwc(&self, i: usize) -> Vec<u8> {
        let chw = self.image_chw(i);
        let plane = CIFAR_SIDE * CIFAR_SIDE;
        let mut out = vec![0u8; CIFAR_IMAGE_BYTES];
        for (p, px) in out.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = chw[c * plane + p];
            }
        }
        out
    }

    /// All pixel bytes, `len() · 3072`, image after image (each CHW).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// How many images of each (fine) class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.kind.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The images at `indices` as a tensor `[B, 3, 32, 32]`, values
    /// byte / 255 in [0, 1] (torchvision's `ToTensor`), not normalised.
    pub fn batch_tensor(&self, indices: &[usize]) -> Result<Tensor> {
        let mut data = Vec::with_capacity(indices.len() * CIFAR_IMAGE_BYTES);
        for &i in indices {
            if i >= self.len() {
                return Err(DatasetError::Config(format!(
                    "image {i} is past the {} images of {} {}",
                    self.len(),
                    self.kind.title(),
                    self.split
                )));
            }
            data.extend(self.image_chw(i).iter().map(|&b| b as f32 / 255.0));
        }
        Ok(Tensor::from_vec(
            &[indices.len(), 3, CIFAR_SIDE, CIFAR_SIDE],
            data,
        )?)
    }

    /// A short description of image `i` for messages: `"cifar10 test #12"`.
    pub fn describe(&self, i: usize) -> String {
        format!("{} {} #{i}", self.kind.name(), self.split)
    }
}

/// CIFAR as a source for the [`crate::VisionLoader`]: 32×32 RGB images with
/// their (fine) labels and class names.
impl crate::source::ImageSource for CifarDataset {
    fn len(&self) -> usize {
        CifarDataset::len(self)
    }

    fn class_names(&self) -> &[String] {
        CifarDataset::class_names(self)
    }

    fn label(&self, index: usize) -> usize {
        CifarDataset::label(self, index)
    }

    fn channels(&self) -> usize {
        CifarDataset::channels(self)
    }

    fn image(&self, index: usize) -> Result<crate::source::RawImage> {
        if index >= self.len() {
            return Err(DatasetError::Config(format!(
                "image {index} is past the {} images of {} {}",
                self.len(),
                self.kind.title(),
                self.split
            )));
        }
        crate::source::RawImage::new(CIFAR_SIDE, CIFAR_SIDE, 3, self.image_hwc(index))
    }

    fn describe(&self, index: usize) -> String {
        CifarDataset::describe(self, index)
    }
}
