//! Getting the publishers' files, verified: downloading from their mirrors
//! ([`ensure_dataset`]) or importing a local copy ([`import_from`]).
//!
//! Every file is checked against the SHA-256 and size of its *decompressed*
//! content (so a faithful recompressed copy, like Debian's, passes), is
//! written under a temporary name in the destination folder and renamed into
//! place only once verified: an interrupted or rejected transfer leaves
//! nothing behind. Files already present and valid are skipped; present but
//! invalid ones are replaced.
//!
//! ```no_run
//! use std::path::Path;
//! use convnet_datasets::{download, resolve_data_dir, DatasetKind};
//!
//! let data_dir = resolve_data_dir(None); // $CONVNET_DATA or ./data
//! // With internet: download what is missing.
//! download::ensure_dataset(DatasetKind::Mnist, &data_dir, &Default::default())?;
//! // Without: import a copy (gzip-compressed or plain files).
//! let report = download::import_from(DatasetKind::FashionMnist, Path::new("/media/usb"), &data_dir)?;
//! println!("{report}");
//! # Ok::<(), convnet_datasets::DatasetError>(())
//! ```

pub(crate) mod http;
mod verify;

use std::fmt;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use verify::{digest_file, verify_as, verify_file, ContentDigest};

use crate::error::{DatasetError, Result};
use crate::kind::{DatasetKind, FileSpec};
use crate::locate::{candidate_files, existing_file, find_dataset_in, join_paths};

/// How download progress is shown (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A progress bar if stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// Always a progress bar.
    Bar,
    /// One line when a download starts and one when it ends.
    Log,
    /// Nothing.
    Quiet,
}

/// Options of [`ensure_dataset`] and [`download_file`].
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadOptions {
    /// Base URLs to try in order instead of the publishers' (a file's URL is
    /// the base followed by its `.gz` name). For tests and private mirrors.
    pub mirrors: Option<Vec<String>>,
    /// Never use the network: a missing file is an error that explains how
    /// to import one.
    pub offline: bool,
    /// How progress is shown.
    pub progress: Progress,
    /// Limit for name resolution, connecting and the response's headers.
    pub connect_timeout: Duration,
    /// Limit for each read of the body (the whole transfer may take longer).
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            mirrors: None,
            offline: false,
            progress: Progress::Auto,
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl DownloadOptions {
    /// The base URLs tried for `kind`: the override, else the publishers'.
    pub fn mirrors_for(&self, kind: DatasetKind) -> Vec<String> {
        match &self.mirrors {
            Some(m) => m.clone(),
            None => kind.mirrors().iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// It was already there and passed verification.
    AlreadyValid,
    /// It was downloaded from this URL and verified.
    Downloaded {
        /// Where it came from.
        url: String,
    },
    /// It was copied from this file and verified.
    Imported {
        /// Where it came from.
        from: PathBuf,
    },
}

/// One file of a [`DatasetReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Which file.
    pub spec: FileSpec,
    /// Where it is now.
    pub path: PathBuf,
    /// What was done.
    pub action: FileAction,
}

/// What [`ensure_dataset`] or [`import_from`] did, file by file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetReport {
    /// Which dataset.
    pub kind: DatasetKind,
    /// The dataset's folder (`<data dir>/mnist`).
    pub dir: PathBuf,
    /// The four files.
    pub files: Vec<FileReport>,
}

/// The report of [`import_from`].
pub type ImportReport = DatasetReport;

impl fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} in {}:", self.kind.title(), self.dir.display())?;
        for file in &self.files {
            let what = match &file.action {
                FileAction::AlreadyValid => "already present, verified".to_string(),
                FileAction::Downloaded { url } => format!("downloaded from {url}, verified"),
                FileAction::Imported { from } => {
                    format!("imported from {}, verified", from.display())
                }
            };
            writeln!(f, "  {:28} {what}", file.spec.name)?;
        }
        Ok(())
    }
}

/// How to get the files without internet, appended to download errors.
pub fn offline_hint(kind: DatasetKind) -> String {
    format!(
        "Without internet access, copy the four files of {title} ({files}; gzip-compressed or \
         not) from a machine that has them into a folder, then import them with the same \
         verification: `cargo xtask download {name} --from FOLDER` or, with only the binary, \
         `convnet download {name} --from FOLDER` (add `--data-dir DIR` to choose where they \
         go).",
        title = kind.title(),
        files = kind
            .files()
            .iter()
            .map(|s| s.gz_name())
            .collect::<Vec<_>>()
            .join(", "),
        name = kind.name(),
    )
}

/// The folder of `kind` inside `data_dir`, created if needed, and cleared
/// of the temporary files an interrupted transfer left there.
pub(crate) struct DatasetDir {
    /// `<data_dir>/<name>`.
    path: PathBuf,
    /// The folders this call created, deepest first.
    created: Vec<PathBuf>,
}

impl DatasetDir {
    /// Creates `<data_dir>/<name>` if needed and removes its leftovers.
    pub(crate) fn prepare(name: &str, data_dir: &Path) -> Result<DatasetDir> {
        let path = data_dir.join(name);
        let mut created = Vec::new();
        let mut missing = Some(path.as_path());
        while let Some(dir) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            created.push(dir.to_path_buf());
            missing = dir.parent();
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| DatasetError::io(&path, "creating the folder", e))?;
        crate::files::remove_leftover_parts(&path);
        Ok(DatasetDir { path, created })
    }

    /// Runs `fill` on the folder; if it fails, removes the folders
    /// [`DatasetDir::prepare`] created, if they are still empty, so that a
    /// failed first download leaves no empty `data/mnist/` behind.
    pub(crate) fn fill<T>(self, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let result = fill(&self.path);
        if result.is_err() {
            for dir in &self.created {
                // `remove_dir` removes only empty folders.
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
        result
    }
}

/// The report of a valid copy of `spec` already in `dir` (the invalid
/// copies beside it removed); else `Err` with the invalid copies, to be
/// removed once a valid one replaces them.
fn keep_present(dir: &Path, spec: &FileSpec) -> Result<Result<FileReport, Vec<PathBuf>>> {
    let mut valid = None;
    let mut invalid = Vec::new();
    for (path, ok) in verify::present_files(dir, spec) {
        if ok && valid.is_none() {
            valid = Some(path);
        } else if !ok {
            invalid.push(path);
        }
    }
    let Some(path) = valid else {
        return Ok(Err(invalid));
    };
    remove_stale(&invalid, &path)?;
    Ok(Ok(FileReport {
        spec: *spec,
        path,
        action: FileAction::AlreadyValid,
    }))
}

/// Removes files that failed verification, except `keep`.
fn remove_stale(stale: &[PathBuf], keep: &Path) -> Result<()> {
    for path in stale.iter().filter(|p| p.as_path() != keep) {
        std::fs::remove_file(path)
            .map_err(|e| DatasetError::io(path, "removing the invalid file", e))?;
    }
    Ok(())
}

/// Makes sure the four files of `kind` are in `<data_dir>/<name>/`, valid:
/// present and valid ones are kept, the others downloaded from the mirrors
/// (the publisher's first, then the fallback) and verified. Returns what was
/// done. With `opts.offline`, or when every mirror fails, the error explains
/// how to import the files with `--from`.
pub fn ensure_dataset(
    kind: DatasetKind,
    data_dir: &Path,
    opts: &DownloadOptions,
) -> Result<DatasetReport> {
    let mirrors = opts.mirrors_for(kind);
    DatasetDir::prepare(kind.name(), data_dir)?.fill(|dir| {
        let mut files = Vec::new();
        for spec in kind.files() {
            files.push(download_file(spec, &mirrors, dir, opts)?);
        }
        Ok(DatasetReport {
            kind,
            dir: dir.to_path_buf(),
            files,
        })
    })
}

/// Finds `kind` in the data folders `data_dirs` (`<dir>/<name>`, see
/// [`find_dataset_in`]); if none holds it, downloads it into `download_to`
/// with [`ensure_dataset`] (verified), unless `opts.offline`. Returns the
/// dataset's folder.
///
/// What the end-to-end tests use to reach the real data the way the CLI
/// does: `data_dirs` are [`data_dir_candidates`](crate::locate::data_dir_candidates)
/// plus the workspace's `data/`.
///
/// # Errors
///
/// When the dataset is nowhere and cannot be downloaded: an error naming
/// every folder looked at, why the download failed (or that `opts.offline`
/// forbade it), and how to get the files ([`crate::locate::way_out`]).
pub fn find_or_download(
    kind: DatasetKind,
    data_dirs: &[PathBuf],
    download_to: &Path,
    opts: &DownloadOptions,
) -> Result<PathBuf> {
    let not_found = match find_dataset_in(kind, data_dirs) {
        Ok(dir) => return Ok(dir),
        Err(e) => e,
    };
    if opts.offline {
        return Err(DatasetError::Download(format!(
            "{not_found}\nOffline: not downloading it into {}.",
            download_to.display()
        )));
    }
    match ensure_dataset(kind, download_to, opts) {
        Ok(report) => Ok(report.dir),
        Err(e) => Err(DatasetError::Download(format!(
            "{not_found}\nDownloading it into {} failed too: {e}",
            download_to.display()
        ))),
    }
}

/// Makes sure the file of `spec` is in `dir`, valid: keeps a present valid
/// copy, else downloads `<mirror><name>.gz` from each mirror in turn until
/// one passes verification, and renames it into place.
pub fn download_file(
    spec: &FileSpec,
    mirrors: &[String],
    dir: &Path,
    opts: &DownloadOptions,
) -> Result<FileReport> {
    let stale = match keep_present(dir, spec)? {
        Ok(present) => return Ok(present),
        Err(stale) => stale,
    };
    let kind: Option<DatasetKind> = spec.dataset.parse().ok();
    let hint = kind.map(offline_hint).unwrap_or_default();
    if opts.offline {
        return Err(DatasetError::NotFound {
            what: spec.display_name(),
            tried: join_paths(&candidate_files(dir, spec)),
            hint: format!(" Offline mode: not downloading. {hint}"),
        });
    }
    let dest = dir.join(spec.gz_name());
    let mut failures = Vec::new();
    for base in mirrors {
        let url = join_url(base, &spec.gz_name());
        let max_len = max_source_len(spec);
        let label = format!("{}-{}", spec.dataset, spec.gz_name());
        let tmp = match http::fetch_to_temp(&url, dir, &label, max_len, opts) {
            Ok(tmp) => tmp,
            Err(e) => {
                if opts.progress != Progress::Quiet {
                    eprintln!("{url}: {e}");
                }
                failures.push(format!("{url}: {e}"));
                continue;
            }
        };
        match verify_as(tmp.path(), Path::new(&url), spec) {
            Ok(()) => {}
            Err(e) => {
                if opts.progress != Progress::Quiet {
                    eprintln!("{e}");
                }
                failures.push(e.to_string());
                continue; // `tmp` is deleted here
            }
        }
        tmp.persist(&dest)
            .map_err(|e| DatasetError::io(&dest, "renaming the verified download to", e.error))?;
        remove_stale(&stale, &dest)?;
        return Ok(FileReport {
            spec: *spec,
            path: dest,
            action: FileAction::Downloaded { url },
        });
    }
    Err(DatasetError::Download(format!(
        "could not get {} from any mirror:\n  {}\n{hint}",
        spec.display_name(),
        if failures.is_empty() {
            "no mirror configured".to_string()
        } else {
            failures.join("\n  ")
        }
    )))
}

/// The most bytes a faithful copy of `spec` can have: a gzip file is
/// smaller than its content (give or take a header), a plain one as large.
fn max_source_len(spec: &FileSpec) -> u64 {
    spec.len + (1 << 20)
}

pub(crate) fn join_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// Imports the four files of `kind` from the folder `from` (or its
/// `<name>/` subfolder, if there is one) into `<data_dir>/<name>/`, each
/// `.gz` or plain as found, verified like a download. Files already present
/// and valid in the destination are kept. A file that fails verification is
/// rejected with an error naming it and the expected checksum, and is not
/// written.
pub fn import_from(kind: DatasetKind, from: &Path, data_dir: &Path) -> Result<ImportReport> {
    let sub = from.join(kind.name());
    let src_dir = if sub.is_dir() {
        sub
    } else {
        from.to_path_buf()
    };
    if !src_dir.is_dir() {
        return Err(DatasetError::NotFound {
            what: format!("folder to import {} from", kind.title()),
            tried: src_dir.display().to_string(),
            hint: String::new(),
        });
    }
    DatasetDir::prepare(kind.name(), data_dir)?.fill(|dir| {
        let mut files = Vec::new();
        for spec in kind.files() {
            files.push(import_file(spec, &src_dir, dir)?);
        }
        Ok(DatasetReport {
            kind,
            dir: dir.to_path_buf(),
            files,
        })
    })
}

fn import_file(spec: &FileSpec, src_dir: &Path, dir: &Path) -> Result<FileReport> {
    let stale = match keep_present(dir, spec)? {
        Ok(present) => return Ok(present),
        Err(stale) => stale,
    };
    let source = existing_file(src_dir, spec).ok_or_else(|| DatasetError::NotFound {
        what: format!("{} to import", spec.display_name()),
        tried: join_paths(&candidate_files(src_dir, spec)),
        hint: format!(
            " The folder given to --from must hold the publisher's files ({}.gz or plain).",
            spec.name
        ),
    })?;
    let file_name = source
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(spec.gz_name()));
    let dest = dir.join(file_name);
    let max_len = max_source_len(spec);
    let too_long = |found: String| DatasetError::Verification {
        path: source.clone(),
        name: spec.display_name(),
        expected_len: spec.len,
        expected_sha256: spec.sha256.to_string(),
        found: format!("{found}, more than a copy of it (plain or gzip) can hold"),
    };
    let source_len = std::fs::metadata(&source)
        .map_err(|e| DatasetError::io(&source, "reading the size of", e))?
        .len();
    if source_len > max_len {
        return Err(too_long(format!("{source_len} bytes")));
    }
    let mut tmp = crate::files::temp_file_in(dir, &format!(".{}.", spec.name))
        .map_err(|e| DatasetError::io(dir, "creating a temporary file in", e))?;
    {
        let mut input = BufReader::new(
            std::fs::File::open(&source).map_err(|e| DatasetError::io(&source, "opening", e))?,
        );
        let mut out = BufWriter::new(tmp.as_file_mut());
        // Stop one byte past the most a valid copy can hold, so that a huge
        // (or sparse, or growing) source is rejected without being copied.
        let copied = std::io::copy(&mut (&mut input).take(max_len + 1), &mut out)
            .map_err(|e| DatasetError::io(&source, "copying", e))?;
        if copied > max_len {
            return Err(too_long(format!("more than {max_len} bytes")));
        }
        out.flush()
            .map_err(|e| DatasetError::io(dir, "writing a temporary file in", e))?;
    }
    // Verify the copy, which is what stays; a rejected one is deleted with `tmp`.
    verify_as(tmp.path(), &source, spec)?;
    tmp.persist(&dest)
        .map_err(|e| DatasetError::io(&dest, "renaming the verified copy to", e.error))?;
    remove_stale(&stale, &dest)?;
    Ok(FileReport {
        spec: *spec,
        path: dest,
        action: FileAction::Imported { from: source },
    })
}

#[cfg(test)]
pub(crate) mod tests;
