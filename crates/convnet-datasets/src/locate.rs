//! Where the datasets live: `--data-dir`, then `$CONVNET_DATA`, then `./data`,
//! each holding `mnist/` and `fashion-mnist/`; Debian's
//! `/usr/share/datasets/fashion-mnist` is also read (never written).

use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};
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
    candidates_with_env(flag, std::env::var_os(DATA_DIR_ENV))
}

/// [`data_dir_candidates`] with `env` as the value of `$CONVNET_DATA`.
fn candidates_with_env(flag: Option<&Path>, env: Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    if let Some(dir) = flag {
        push(dir.to_path_buf());
    }
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        push(PathBuf::from(dir));
    }
    push(PathBuf::from(DEFAULT_DATA_DIR));
    push(PathBuf::from(SYSTEM_DATASETS_DIR));
    dirs
}

/// The folder holding the four files of `kind`.
///
/// An explicit folder (`flag`, from `--data-dir`) is the only place looked
/// at: `<flag>/<name>`, or `flag` itself if it is the dataset's own folder;
/// a dataset elsewhere is never used silently instead. Without one, the
/// folders are searched in [`data_dir_candidates`] order (`<dir>/<name>`).
///
/// # Errors
///
/// [`DatasetError::NotFound`] when no folder holds all four files: it names
/// every folder looked at and says how to get the dataset ([`way_out`]).
///
/// ```
/// use convnet_datasets::{find_dataset, DatasetKind};
/// let empty = tempfile::tempdir()?;
/// let err = find_dataset(DatasetKind::Mnist, Some(empty.path())).unwrap_err();
/// assert!(err.to_string().contains("convnet download mnist --from FOLDER"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find_dataset(kind: DatasetKind, flag: Option<&Path>) -> Result<PathBuf> {
    match flag {
        Some(dir) => {
            let places = [dir.join(kind.name()), dir.to_path_buf()];
            match places.iter().find(|d| has_all_files(kind, d)) {
                Some(found) => Ok(found.clone()),
                None => Err(not_found(
                    kind,
                    &places,
                    " (--data-dir is the only folder searched when given)",
                )),
            }
        }
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
/// `mnist/`, `fashion-mnist/`): the first `<dir>/<name>` holding all four
/// files; else [`DatasetError::NotFound`] naming each `<dir>/<name>`.
pub fn find_dataset_in(kind: DatasetKind, data_dirs: &[PathBuf]) -> Result<PathBuf> {
    let places: Vec<PathBuf> = data_dirs.iter().map(|d| d.join(kind.name())).collect();
    match places.iter().find(|d| has_all_files(kind, d)) {
        Some(found) => Ok(found.clone()),
        None => Err(not_found(kind, &places, "")),
    }
}

/// How to get `kind` when it is in none of the folders looked at: download
/// it, import a copy offline, or point `$CONVNET_DATA` at a data folder.
pub fn way_out(kind: DatasetKind) -> String {
    let name = kind.name();
    format!(
        "Get it with `convnet download {name}` (or `cargo xtask download {name}`), which \
         downloads it and verifies its SHA-256; without internet, import a copy of the \
         publisher's files with `convnet download {name} --from FOLDER` (or `cargo xtask \
         download {name} --from FOLDER`); or set ${DATA_DIR_ENV} to a data folder holding \
         {name}/."
    )
}

/// The error of [`find_dataset`]: `kind` is in none of `places`.
fn not_found(kind: DatasetKind, places: &[PathBuf], note: &str) -> DatasetError {
    DatasetError::NotFound {
        what: format!(
            "{} (its four files: {})",
            kind.title(),
            kind.files()
                .iter()
                .map(|s| format!("{}[.gz]", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        tried: format!("{}{note}", join_paths(places)),
        hint: format!(" {}", way_out(kind)),
    }
}

/// `true` if `dataset_dir` holds the four files of `kind`, each as `.gz` or
/// plain (their content is not checked).
pub fn has_all_files(kind: DatasetKind, dataset_dir: &Path) -> bool {
    kind.files()
        .iter()
        .all(|spec| existing_file(dataset_dir, spec).is_some())
}

/// `paths` for people: displayed, comma separated.
pub(crate) fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
        let err = find_dataset(kind, Some(root.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--data-dir is the only folder searched"),
            "{err}"
        );
        let dir = root.path().join(kind.name());
        std::fs::create_dir(&dir).unwrap();
        let labels = kind.file(Split::Test, Part::Labels);
        for spec in kind.files().iter().filter(|s| *s != labels) {
            std::fs::write(dir.join(spec.name), b"x").unwrap();
        }
        assert!(find_dataset(kind, Some(root.path())).is_err());
        assert_eq!(missing_files(kind, &dir), vec![dir.join(labels.gz_name())]);
        std::fs::write(dir.join(labels.name), b"x").unwrap();
        assert_eq!(find_dataset(kind, Some(root.path())).unwrap(), dir);
        // The dataset's own folder works as well.
        assert_eq!(find_dataset(kind, Some(&dir)).unwrap(), dir);
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
            assert!(find_dataset_in(kind, &roots).is_err());
            // Mix compressed and plain names.
            let name = if i % 2 == 0 {
                spec.gz_name()
            } else {
                spec.name.to_string()
            };
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(find_dataset_in(kind, &roots).unwrap(), dir);
        assert!(find_dataset_in(DatasetKind::FashionMnist, &roots).is_err());
        let labels = kind.file(Split::Train, Part::Labels);
        assert_eq!(
            existing_file(&dir, labels),
            Some(dir.join(labels.name)),
            "the plain file is found when there is no .gz"
        );
    }

    /// Writes placeholder files for the four files of `kind` in `<root>/<name>`.
    fn fake_dataset(root: &Path, kind: DatasetKind) -> PathBuf {
        let dir = root.join(kind.name());
        std::fs::create_dir_all(&dir).unwrap();
        for spec in kind.files() {
            std::fs::write(dir.join(spec.gz_name()), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn the_folder_named_by_convnet_data_is_searched_before_data() {
        let env = tempfile::tempdir().unwrap();
        let dirs = candidates_with_env(None, Some(env.path().into()));
        assert_eq!(dirs[0], env.path());
        assert_eq!(dirs[1], Path::new(DEFAULT_DATA_DIR));
        assert_eq!(dirs.last().unwrap(), Path::new(SYSTEM_DATASETS_DIR));
        // An empty value is ignored, a flag comes first.
        assert_eq!(
            candidates_with_env(None, Some("".into()))[0],
            Path::new("data")
        );
        let flag = candidates_with_env(Some(Path::new("f")), Some(env.path().into()));
        assert_eq!(flag[..2], [PathBuf::from("f"), env.path().to_path_buf()]);

        let kind = DatasetKind::FashionMnist;
        // Not there yet (unless `./data` or the system folder has it).
        let elsewhere = dirs[1..]
            .iter()
            .any(|d| has_all_files(kind, &d.join(kind.name())));
        assert_eq!(find_dataset_in(kind, &dirs).is_err(), !elsewhere);
        let dir = fake_dataset(env.path(), kind);
        assert_eq!(find_dataset_in(kind, &dirs).unwrap(), dir);
    }

    #[test]
    fn not_found_names_every_folder_looked_at_and_the_way_out() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        // A dataset of the other kind does not count.
        fake_dataset(b.path(), DatasetKind::Mnist);
        let err = find_dataset_in(DatasetKind::FashionMnist, &dirs)
            .unwrap_err()
            .to_string();
        for dir in &dirs {
            let place = dir.join("fashion-mnist").display().to_string();
            assert!(err.contains(&place), "names {place}: {err}");
        }
        assert!(
            err.starts_with("Fashion-MNIST (its four files: train-images-idx3-ubyte[.gz]"),
            "{err}"
        );
        for way in [
            "`convnet download fashion-mnist`",
            "`convnet download fashion-mnist --from FOLDER`",
            "`cargo xtask download fashion-mnist --from FOLDER`",
            "$CONVNET_DATA",
        ] {
            assert!(err.contains(way), "says {way}: {err}");
        }
    }
}
