//! Writing a dataset as an image folder, and per-channel statistics of any
//! image source.
//!
//! [`export_folder`] writes `DIR/<split>/<class folder>/<index>.png`, one
//! 8-bit PNG per image (greyscale or RGB as the source gives them), where
//! - the class folder is [`class_folder_name`]: the label, `_`, then the
//!   class name with `/` and `\` (and control characters) replaced by `_`,
//!   the label zero-padded to as many digits as the largest label has, so
//!   that the folders sort in label order and [`crate::ImageFolder`] gives
//!   every image its original label (Fashion-MNIST's `T-shirt/top` is
//!   `0_T-shirt_top`, MNIST's `7` is `7_7`);
//! - the file name is the image's index in the split, zero-padded to as many
//!   digits as the split's last index (`00042.png`), so that files sort in
//!   index order within a class.
//!
//! Everything is written into a temporary folder beside `DIR`, renamed to
//! `DIR` at the end: a killed export leaves no half-written `DIR` (only a
//! hidden `.NAME.export-*` folder, which a later export does not reuse).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DatasetError, Result};
use crate::source::ImageSource;

/// The folder name of class `label` named `name` among `num_classes`
/// classes: `"{label:0W}_{safe name}"` (see the module docs).
///
/// ```
/// use convnet_datasets::export::class_folder_name;
/// assert_eq!(class_folder_name(0, "T-shirt/top", 10), "0_T-shirt_top");
/// assert_eq!(class_folder_name(7, "cat", 100), "07_cat");
/// ```
pub fn class_folder_name(label: usize, name: &str, num_classes: usize) -> String {
    let width = num_classes.saturating_sub(1).max(1).to_string().len();
    let safe: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{label:0width$}_{safe}")
}

/// What [`export_folder`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The folder written.
    pub dir: PathBuf,
    /// Images written per split, in the order given.
    pub counts: Vec<(String, usize)>,
}

/// Writes `splits` (name, source) as an image folder `to` (see the module
/// docs). Refuses an existing `to` that is not an empty folder unless
/// `overwrite`, in which case it is replaced once the new folder is
/// complete. Images are encoded in parallel.
pub fn export_folder(
    splits: &[(&str, &dyn ImageSource)],
    to: &Path,
    overwrite: bool,
) -> Result<ExportReport> {
    let replace_old = match std::fs::symlink_metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(DatasetError::io(to, "inspecting", e)),
        Ok(meta) if !meta.is_dir() => {
            return Err(DatasetError::Config(format!(
                "{}: exists and is not a folder; refusing to replace it",
                to.display()
            )))
        }
        Ok(_) => {
            let empty = std::fs::read_dir(to)
                .map_err(|e| DatasetError::io(to, "listing", e))?
                .next()
                .is_none();
            if !empty && !overwrite {
                return Err(DatasetError::Config(format!(
                    "{}: the folder exists and is not empty; refusing to write into it (choose \
                     another folder, or pass --overwrite to replace it)",
                    to.display()
                )));
            }
            true
        }
    };
    let name = to
        .file_name()
        .ok_or_else(|| DatasetError::Config(format!("{}: not a folder name", to.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| DatasetError::io(&parent, "creating", e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.export-"))
        .tempdir_in(&parent)
        .map_err(|e| DatasetError::io(&parent, "creating a temporary folder in", e))?;
    let mut counts = Vec::new();
    for (split, source) in splits {
        write_split(*source, &tmp.path().join(split))?;
        counts.push((split.to_string(), source.len()));
    }
    // The complete folder replaces the old one: moved aside first, removed last.
    let old = if replace_old {
        let aside = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)
            .map_err(|e| DatasetError::io(&parent, "creating a temporary folder in", e))?;
        let aside = aside.path().join("old");
        std::fs::rename(to, &aside).map_err(|e| DatasetError::io(to, "moving aside", e))?;
        Some(aside)
    } else {
        None
    };
    let written = tmp.keep();
    if let Err(e) = std::fs::rename(&written, to) {
        let _ = std::fs::remove_dir_all(&written);
        if let Some(old) = &old {
            let _ = std::fs::rename(old, to);
        }
        return Err(DatasetError::io(
            to,
            format!("renaming {} to", written.display()),
            e,
        ));
    }
    if let Some(old) = old {
        if let Some(holder) = old.parent() {
            let _ = std::fs::remove_dir_all(holder);
        }
    }
    Ok(ExportReport {
        dir: to.to_path_buf(),
        counts,
    })
}

/// Writes one split's class folders and PNG files into `dir`.
fn write_split(source: &dyn ImageSource, dir: &Path) -> Result<()> {
    let classes = source.class_names();
    let folders: Vec<PathBuf> = classes
        .iter()
        .enumerate()
        .map(|(label, name)| dir.join(class_folder_name(label, name, classes.len())))
        .collect();
    for folder in &folders {
        std::fs::create_dir_all(folder).map_err(|e| DatasetError::io(folder, "creating", e))?;
    }
    let width = source.len().saturating_sub(1).max(1).to_string().len();
    (0..source.len()).into_par_iter().try_for_each(|i| {
        let label = source.label(i);
        let folder = folders.get(label).ok_or_else(|| {
            DatasetError::Config(format!(
                "{}: label {label} has no class name",
                source.describe(i)
            ))
        })?;
        let path = folder.join(format!("{i:0width$}.png"));
        let img = source.image(i)?.to_dynamic()?;
        img.save_with_format(&path, image::ImageFormat::Png)
            .map_err(|e| DatasetError::image(&path, format!("cannot write the PNG: {e}")))
    })
}

/// Per-channel statistics of pixel values in [0, 1] (byte / 255, the
/// `ToTensor` scale).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// Mean of each channel.
    pub mean: Vec<f64>,
    /// Population standard deviation of each channel.
    pub std: Vec<f64>,
    /// Images read.
    pub images: usize,
    /// Pixels per channel read.
    pub pixels: u64,
}

/// The mean and standard deviation of each channel over every pixel of
/// every image of `source` (what `Normalize` wants), decoded in parallel.
/// Computed from byte histograms, so the result does not depend on the
/// thread count. Errors on the first image that cannot be decoded.
pub fn channel_stats(source: &dyn ImageSource) -> Result<ChannelStats> {
    let c = source.channels();
    let histograms = (0..source.len())
        .into_par_iter()
        .map(|i| {
            let img = source.image(i)?;
            let mut h = vec![[0u64; 256]; c];
            for px in img.pixels.chunks_exact(c) {
                for (ch, &v) in px.iter().enumerate() {
                    h[ch][v as usize] += 1;
                }
            }
            Ok::<_, DatasetError>(h)
        })
        .try_reduce(
            || vec![[0u64; 256]; c],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
                }
                Ok(a)
            },
        )?;
    let mut mean = Vec::with_capacity(c);
    let mut std = Vec::with_capacity(c);
    let mut pixels = 0;
    for h in &histograms {
        let n: u64 = h.iter().sum();
        pixels = n;
        let (s, s2) = h
            .iter()
            .enumerate()
            .fold((0.0f64, 0.0f64), |(s, s2), (b, &k)| {
                let v = (b as f32 / 255.0) as f64;
                (s + k as f64 * v, s2 + k as f64 * v * v)
            });
        let m = if n > 0 { s / n as f64 } else { 0.0 };
        let var = if n > 0 {
            (s2 / n as f64 - m * m).max(0.0)
        } else {
            0.0
        };
        mean.push(m);
        std.push(var.sqrt());
    }
    Ok(ChannelStats {
        mean,
        std,
        images: source.len(),
        pixels,
    })
}
