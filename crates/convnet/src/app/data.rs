//! Finding, downloading and loading datasets for the commands.

use std::path::{Path, PathBuf};

use convnet_datasets::download::{ensure_dataset, import_from, offline_hint, DownloadOptions};
use convnet_datasets::{
    find_dataset, locate::missing_files, resolve_data_dir, DataLoader, Dataset, DatasetError,
    DatasetKind, DatasetSpec, LoadOptions, LoaderConfig, Split,
};

use super::{AppError, Result};

/// The folder holding `kind`'s four files: found in `--data-dir` if given
/// (and nowhere else), else in `$CONVNET_DATA`, `./data` or
/// `/usr/share/datasets`; else downloaded into the data folder and verified
/// (as `cargo xtask download`) unless `offline`. When that fails, the error
/// names the missing files and says how to import them.
pub fn ensure_data(kind: DatasetKind, data_dir: Option<&Path>, offline: bool) -> Result<PathBuf> {
    let not_found = match find_dataset(kind, data_dir) {
        Ok(dir) => return Ok(dir),
        Err(e) => e,
    };
    let target = resolve_data_dir(data_dir);
    if let (Some(flag), true) = (data_dir, offline) {
        let missing = missing_files(kind, &flag.join(kind.name()));
        return Err(AppError::Usage(format!(
            "--data-dir {} does not hold {}: missing {} (the plain names without .gz are \
             accepted too). Other data folders are not searched when --data-dir is given, and \
             --offline forbids downloading. {}",
            flag.display(),
            kind.title(),
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            offline_hint(kind)
        )));
    }
    if offline {
        return Err(AppError::Usage(format!(
            "{not_found}\n--offline forbids downloading it into {}. {}",
            target.join(kind.name()).display(),
            offline_hint(kind)
        )));
    }
    crate::outln!(
        "{} is not there yet: downloading it into {} (verified by SHA-256)...",
        kind.title(),
        target.join(kind.name()).display()
    )?;
    let report =
        ensure_dataset(kind, &target, &DownloadOptions::default()).map_err(|e| match e {
            // A failed download and a file not found already end with the way
            // out (`download_file` appends `offline_hint`); other failures (a
            // folder that cannot be written, ...) get it here.
            DatasetError::Download(_) | DatasetError::NotFound { .. } => AppError::Dataset(e),
            other => AppError::Usage(format!("{other}\n{}", offline_hint(kind))),
        })?;
    Ok(report.dir)
}

/// Loads a split, verified against the publisher's checksums (a split with
/// fewer images only with `$CONVNET_ALLOW_SYNTHETIC_DATA=1`), keeping only
/// its first `limit` images if given.
pub fn load_split(
    kind: DatasetKind,
    split: Split,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset> {
    // Synthetic splits (tests) only with $CONVNET_ALLOW_SYNTHETIC_DATA=1.
    let ds = Dataset::load_with(kind, split, dir, &LoadOptions::from_env())?;
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

/// `convnet data export`: writes both splits of `kind` as an image folder
/// `to` (`to/train/<class>/<index>.png`, `to/test/...`; see
/// [`convnet_datasets::export`]), replacing a non-empty `to` only with
/// `overwrite`. The dataset is found (or downloaded) as for training.
pub fn export_dataset(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    offline: bool,
    to: &Path,
    overwrite: bool,
) -> Result<convnet_datasets::ExportReport> {
    let dir = ensure_data(kind, data_dir, offline)?;
    let train = load_split(kind, Split::Train, &dir, None)?;
    let test = load_split(kind, Split::Test, &dir, None)?;
    let splits: [(&str, &dyn convnet_datasets::ImageSource); 2] =
        [("train", &train), ("test", &test)];
    Ok(convnet_datasets::export_folder(&splits, to, overwrite)?)
}

/// The training images of an image folder given as `folder:PATH` or `PATH`:
/// `PATH/train` if it exists, else every image of `PATH`.
pub fn training_folder(spec: &str) -> Result<convnet_datasets::ImageFolder> {
    let root = Path::new(spec.strip_prefix("folder:").unwrap_or(spec));
    let train = root.join("train");
    let dir = if train.is_dir() {
        train
    } else {
        root.to_path_buf()
    };
    Ok(convnet_datasets::ImageFolder::open(
        &dir,
        Default::default(),
    )?)
}

/// `convnet data stats`: per-channel mean and standard deviation of the
/// training images of a folder ([`training_folder`]) on the `ToTensor` scale
/// [0, 1], as a report for people.
pub fn folder_stats(spec: &str) -> Result<String> {
    use convnet_datasets::ImageSource as _;
    let folder = training_folder(spec)?;
    let stats = convnet_datasets::channel_stats(&folder)?;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "{}: {} images, {} classes, {} channel{}, {} pixels per channel\nmean: [{}]\nstd:  [{}]\n",
        folder.root().display(),
        stats.images,
        folder.class_names().len(),
        stats.mean.len(),
        if stats.mean.len() == 1 { "" } else { "s" },
        stats.pixels,
        list(&stats.mean),
        list(&stats.std)
    ))
}

/// Downloads each dataset of `datasets` into `data_dir` (or, with `from`,
/// imports it from a local copy: a folder of the publisher's files or, for
/// CIFAR, the archive), verified as every load verifies it; files already
/// valid are kept. `datasets` accepts `mnist`, `fashion-mnist`, `cifar10`,
/// `cifar100` and `all` (MNIST and Fashion-MNIST; CIFAR only when named);
/// none means `all`. Returns what was done, one report per dataset. What
/// `convnet download` and `cargo xtask download` run.
pub fn fetch_datasets(
    datasets: &[String],
    data_dir: &Path,
    from: Option<&Path>,
    opts: &DownloadOptions,
) -> Result<Vec<String>> {
    let mut specs: Vec<DatasetSpec> = Vec::new();
    for name in datasets {
        let add: Vec<DatasetSpec> = if name == "all" {
            DatasetKind::ALL.map(DatasetSpec::from).to_vec()
        } else {
            match name.parse::<DatasetSpec>()? {
                DatasetSpec::Folder(_) => {
                    return Err(AppError::Usage(format!(
                        "`{name}`: an image folder is not downloaded; give mnist, \
                         fashion-mnist, cifar10, cifar100 or all"
                    )))
                }
                spec => vec![spec],
            }
        };
        for spec in add {
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
    }
    if specs.is_empty() {
        specs = DatasetKind::ALL.map(DatasetSpec::from).to_vec();
    }
    let mut reports = Vec::new();
    for spec in &specs {
        let report = if let Some(kind) = spec.idx_kind() {
            match from {
                Some(dir) => import_from(kind, dir, data_dir)?.to_string(),
                None => ensure_dataset(kind, data_dir, opts)?.to_string(),
            }
        } else {
            let kind = spec.cifar_kind().expect("IDX or CIFAR");
            match from {
                Some(dir) => {
                    convnet_datasets::cifar::import_cifar_from(kind, dir, data_dir)?.to_string()
                }
                None => convnet_datasets::cifar::ensure_cifar(kind, data_dir, opts)?.to_string(),
            }
        };
        reports.push(report);
    }
    Ok(reports)
}
