//! Where the datasets live: `--data-dir`, then `$CONVNET_DATA`, then `./data`,
//! each holding `mnist/` and `fashion-mnist/`; Debian's
//! `/usr/share/datasets/fashion-mnist` is also read (never written).

use std::path::{Path, PathBuf};

use crate::kind::{DatasetKind, FileSpec};

/// The environment variable naming the data folder.
pub const DATA_DIR_ENV: &str = "CONVNET_DATA";

/// The data folder used when neither a flag nor `$CONVNET_DATA` names one.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Where Debian's `dataset-*` packages install datasets (read-only).
pub const SYSTEM_DATASETS_DIR: &str = "/usr/share/datasets";

/// The data folder to download into: `flag` if given, else `$CONVNET_DATA`
/// if set and not empty, else `./data`.
///
/// ```
/// use std::path::Path;
/// use convnet_datasets::resolve_data_dir;
/// assert_eq!(resolve_data_dir(Some(Path::new("/tmp/d"))), Path::new("/tmp/d"));
/// ```
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// The data folders searched for a dataset, in order: `flag`, `$CONVNET_DATA`,
/// `./data`, then the system folder (read-only), without duplicates.
pub fn data_dir_candidates(flag: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    if let Some(dir) = flag {
        push(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        push(PathBuf::from(dir));
    }
    push(PathBuf::from(DEFAULT_DATA_DIR));
    push(PathBuf::from(SYSTEM_DATASETS_DIR));
    dirs
}

/// The folder holding the four files of `kind`; `None` if none has all four.
///
/// An explicit folder (`flag`, from `--data-dir`) is the only place looked
/// at: `<flag>/<name>`, or `flag` itself if it is the dataset's own folder;
/// a dataset elsewhere is never used silently instead. Without one, the
/// folders are searched in [`data_dir_candidates`] order (`<dir>/<name>`).
pub fn find_dataset(kind: DatasetKind, flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(dir) => [dir.join(kind.name()), dir.to_path_buf()]
            .into_iter()
            .find(|d| has_all_files(kind, d)),
        None => find_dataset_in(kind, &data_dir_candidates(None)),
    }
}

/// The files of `kind` missing from `dataset_dir` (each named by its `.gz`
/// path; the plain name is accepted too).
pub fn missing_files(kind: DatasetKind, dataset_dir: &Path) -> Vec<PathBuf> {
    kind.files()
        .iter()
        .filter(|spec| existing_file(dataset_dir, spec).is_none())
        .map(|spec| dataset_dir.join(spec.gz_name()))
        .collect()
}

/// Like [`find_dataset`], over the given data folders (each holding
/// `mnist/`, `fashion-mnist/`).
pub fn find_dataset_in(kind: DatasetKind, data_dirs: &[PathBuf]) -> Option<PathBuf> {
    data_dirs
        .iter()
        .map(|d| d.join(kind.name()))
        .find(|d| has_all_files(kind, d))
}

/// `true` if `dataset_dir` holds the four files of `kind`, each as `.gz` or
/// plain (their content is not checked).
pub fn has_all_files(kind: DatasetKind, dataset_dir: &Path) -> bool {
    kind.files()
        .iter()
        .all(|spec| existing_file(dataset_dir, spec).is_some())
}

/// The file of `spec` in `dir`: `<name>.gz` if it exists, else `<name>`.
pub fn existing_file(dir: &Path, spec: &FileSpec) -> Option<PathBuf> {
    candidate_files(dir, spec).into_iter().find(|p| p.is_file())
}

/// The paths where the file of `spec` may be in `dir`, preferred first.
pub fn candidate_files(dir: &Path, spec: &FileSpec) -> [PathBuf; 2] {
    [dir.join(spec.gz_name()), dir.join(spec.name)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Part, Split};

    #[test]
    fn flag_comes_first_and_system_folder_last() {
        let dirs = data_dir_candidates(Some(Path::new("/x/flag")));
        assert_eq!(dirs[0], Path::new("/x/flag"));
        assert_eq!(dirs.last().unwrap(), Path::new(SYSTEM_DATASETS_DIR));
        assert!(dirs.contains(&PathBuf::from(DEFAULT_DATA_DIR)));
    }

    #[test]
    fn an_explicit_folder_never_falls_back_to_another() {
        // `./data` and `$CONVNET_DATA` may hold MNIST on this machine: an
        // explicit folder without it must still find nothing.
        let root = tempfile::tempdir().unwrap();
        let kind = DatasetKind::Mnist;
        assert_eq!(find_dataset(kind, Some(root.path())), None);
        let dir = root.path().join(kind.name());
        std::fs::create_dir(&dir).unwrap();
        let labels = kind.file(Split::Test, Part::Labels);
        for spec in kind.files().iter().filter(|s| *s != labels) {
            std::fs::write(dir.join(spec.name), b"x").unwrap();
        }
        assert_eq!(find_dataset(kind, Some(root.path())), None);
        assert_eq!(missing_files(kind, &dir), vec![dir.join(labels.gz_name())]);
        std::fs::write(dir.join(labels.name), b"x").unwrap();
        assert_eq!(find_dataset(kind, Some(root.path())), Some(dir.clone()));
        // The dataset's own folder works as well.
        assert_eq!(find_dataset(kind, Some(&dir)), Some(dir.clone()));
        assert!(missing_files(kind, &dir).is_empty());
    }

    #[test]
    fn a_dataset_is_found_only_when_all_four_files_exist() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mnist");
        std::fs::create_dir(&dir).unwrap();
        let roots = vec![root.path().to_path_buf()];
        let kind = DatasetKind::Mnist;
        for (i, spec) in kind.files().iter().enumerate() {
            assert_eq!(find_dataset_in(kind, &roots), None);
            // Mix compressed and plain names.
            let name = if i % 2 == 0 {
                spec.gz_name()
            } else {
                spec.name.to_string()
            };
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(find_dataset_in(kind, &roots), Some(dir.clone()));
        assert_eq!(find_dataset_in(DatasetKind::FashionMnist, &roots), None);
        let labels = kind.file(Split::Train, Part::Labels);
        assert_eq!(
            existing_file(&dir, labels),
            Some(dir.join(labels.name)),
            "the plain file is found when there is no .gz"
        );
    }
}
