//! Finding, downloading and loading datasets for the commands.

use std::path::{Path, PathBuf};

use convnet_datasets::download::{ensure_dataset, offline_hint, DownloadOptions};
use convnet_datasets::{
    find_dataset, resolve_data_dir, DataLoader, Dataset, DatasetKind, LoaderConfig, Split,
};

use super::{AppError, Result};

/// The folder holding `kind`'s four files: found in `--data-dir`,
/// `$CONVNET_DATA`, `./data` or `/usr/share/datasets`, else downloaded into
/// the data folder and verified (as `cargo xtask download`) unless
/// `offline`. When that fails, the error says how to import the files.
pub fn ensure_data(kind: DatasetKind, data_dir: Option<&Path>, offline: bool) -> Result<PathBuf> {
    if let Some(dir) = find_dataset(kind, data_dir) {
        return Ok(dir);
    }
    let target = resolve_data_dir(data_dir);
    if offline {
        return Err(AppError::Usage(format!(
            "{} is not in {} (nor in $CONVNET_DATA, ./data or /usr/share/datasets) and \
             --offline forbids downloading it. {}",
            kind.title(),
            target.join(kind.name()).display(),
            offline_hint(kind)
        )));
    }
    crate::outln!(
        "{} is not there yet: downloading it into {} (verified by SHA-256)...",
        kind.title(),
        target.join(kind.name()).display()
    )?;
    let report = ensure_dataset(kind, &target, &DownloadOptions::default()).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("--from") {
            AppError::Dataset(e)
        } else {
            AppError::Usage(format!("{msg}\n{}", offline_hint(kind)))
        }
    })?;
    Ok(report.dir)
}

/// Loads a split, keeping only its first `limit` images if given.
pub fn load_split(
    kind: DatasetKind,
    split: Split,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset> {
    let ds = Dataset::load(kind, split, dir)?;
    match limit {
        Some(n) if n < ds.len() => {
            if n == 0 {
                return Err(AppError::Usage(format!(
                    "--limit-{} 0 leaves no image",
                    split.name()
                )));
            }
            Ok(ds.subset(0..n)?)
        }
        _ => Ok(ds),
    }
}

/// A loader over the test split in file order (normalised like training).
pub fn test_loader(ds: Dataset, batch_size: usize) -> Result<DataLoader> {
    Ok(DataLoader::new(ds, LoaderConfig::eval(batch_size))?)
}
