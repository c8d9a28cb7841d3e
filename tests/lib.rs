//! Shared helpers of the end-to-end tests in this folder.
//!
//! The tests that need the real MNIST and Fashion-MNIST find them the way
//! the `convnet` binary does ([`data_dir_candidates`]: `$CONVNET_DATA`, then
//! `./data`, then `/usr/share/datasets`), plus the workspace's own `data/`
//! folder (`cargo test` runs in `tests/`, not at the workspace root, and
//! `cargo xtask download` fills `<workspace>/data`). When the dataset is in
//! none of them, it is downloaded and verified into `$CONVNET_DATA` (if set)
//! or the workspace's `data/`; offline, the test fails with a message naming
//! every folder looked at and the way out. It never skips.

use std::path::PathBuf;
use std::sync::Mutex;

use convnet::datasets::download::{find_or_download, DownloadOptions, Progress};
use convnet::datasets::locate::{data_dir_candidates, DEFAULT_DATA_DIR};
use convnet::datasets::{DatasetKind, DATA_DIR_ENV};

/// The workspace's root folder (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// The data folders searched for the real datasets, in order: the CLI's
/// ([`data_dir_candidates`]), with the workspace's `data/` right after
/// `./data`.
pub fn test_data_dirs() -> Vec<PathBuf> {
    let mut dirs = data_dir_candidates(None);
    let workspace_data = workspace_root().join(DEFAULT_DATA_DIR);
    if !dirs.contains(&workspace_data) {
        let after = dirs
            .iter()
            .position(|d| d == std::path::Path::new(DEFAULT_DATA_DIR))
            .map_or(dirs.len(), |i| i + 1);
        dirs.insert(after, workspace_data);
    }
    dirs
}

/// Where a missing dataset is downloaded: `$CONVNET_DATA` if set, else the
/// workspace's `data/`.
pub fn test_download_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(DEFAULT_DATA_DIR),
    }
}

/// The folder of the real files of `kind`, found in [`test_data_dirs`] or
/// downloaded (verified) into [`test_download_dir`]. Panics with where it
/// looked, why it could not download and the way out when neither works.
pub fn real_dataset(kind: DatasetKind) -> PathBuf {
    // The tests of one binary run in parallel: one download at a time.
    static FETCHING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = FETCHING.lock().unwrap_or_else(|e| e.into_inner());
    let opts = DownloadOptions {
        progress: Progress::Log,
        ..DownloadOptions::default()
    };
    find_or_download(kind, &test_data_dirs(), &test_download_dir(), &opts).unwrap_or_else(|e| {
        panic!(
            "this test needs the real {} files, and they are neither found nor downloadable: {e}",
            kind.title()
        )
    })
}
