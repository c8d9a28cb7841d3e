//! Getting CIFAR: downloading the publisher's archive ([`ensure_cifar`]) or
//! importing a local copy ([`import_cifar_from`]), checked against the
//! publisher's MD5 and extracted in the same pass.
//!
//! The archive is read once, through a reader that computes its MD5: gzip
//! inflates it, tar walks it, and the files of the dataset are written to
//! temporary files (`.<name>.XXXXXX.part`) in the dataset's folder, each
//! bounded by its known size and hashed with SHA-256. Only if the whole
//! archive has the publisher's MD5 are they renamed into place, followed by
//! the manifest; otherwise they are deleted. Nothing of a rejected archive
//! is left behind, and a valid extraction already present is kept.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use md5::Md5;
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::download::{http, join_url, DatasetDir, DownloadOptions, FileAction, Progress};
use crate::error::{DatasetError, Result};

use super::manifest::{Entry, Manifest};
use super::{hex, CifarKind, Layout, CIFAR_MIRRORS, MAX_NAMES_FILE_LEN};

/// What [`ensure_cifar`] or [`import_cifar_from`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarReport {
    /// Which dataset.
    pub kind: CifarKind,
    /// The dataset's folder (`<data dir>/cifar10`).
    pub dir: PathBuf,
    /// Already valid, downloaded (from a URL) or imported (from a file).
    pub action: FileAction,
    /// The extracted files, batches then class names.
    pub files: Vec<PathBuf>,
}

impl fmt::Display for CifarReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} in {}:", self.kind.title(), self.dir.display())?;
        let what = match &self.action {
            FileAction::AlreadyValid => "already extracted, verified against the manifest".into(),
            FileAction::Downloaded { url } => {
                format!("downloaded from {url}, md5 verified, extracted")
            }
            FileAction::Imported { from } => {
                format!("imported from {}, md5 verified, extracted", from.display())
            }
        };
        writeln!(f, "  {:28} {what}", self.kind.archive_name())?;
        writeln!(
            f,
            "  {} files: {}",
            self.files.len(),
            self.kind.files().join(", ")
        )
    }
}

/// Makes sure the files of `kind` are in `<data_dir>/<name>/`, extracted
/// from an archive with the publisher's MD5: a valid extraction is kept
/// (every file checked against the manifest); otherwise the archive is
/// downloaded from each mirror in turn (`opts.mirrors`, else the
/// publisher's) until one passes, and extracted. With `opts.offline`, or
/// when every mirror fails, the error explains how to import it.
pub fn ensure_cifar(
    kind: CifarKind,
    data_dir: &Path,
    opts: &DownloadOptions,
) -> Result<CifarReport> {
    ensure_layout(&Layout::publisher(kind), data_dir, opts)
}

pub(crate) fn ensure_layout(
    layout: &Layout,
    data_dir: &Path,
    opts: &DownloadOptions,
) -> Result<CifarReport> {
    let kind = layout.kind;
    let mirrors = match &opts.mirrors {
        Some(m) => m.clone(),
        None => CIFAR_MIRRORS.iter().map(|s| s.to_string()).collect(),
    };
    DatasetDir::prepare(kind.name(), data_dir)?.fill(|dir| {
        if let Ok(files) = check_extracted(layout, dir) {
            return Ok(report(kind, dir, FileAction::AlreadyValid, files));
        }
        if opts.offline {
            return Err(DatasetError::NotFound {
                what: format!("{} (a verified extraction)", kind.title()),
                tried: dir.display().to_string(),
                hint: format!(" Offline mode: not downloading. {}", kind.offline_hint()),
            });
        }
        let mut failures = Vec::new();
        for base in &mirrors {
            let url = join_url(base, kind.archive_name());
            let label = kind.archive_name();
            let fetched = http::fetch_to_temp(&url, dir, label, layout.max_archive_len(), opts);
            let result = match fetched {
                Ok(tmp) => extract_verified(tmp.path(), Path::new(&url), layout, dir),
                Err(e) => Err(DatasetError::Download(format!("{url}: {e}"))),
            };
            match result {
                Ok(files) => return Ok(report(kind, dir, FileAction::Downloaded { url }, files)),
                Err(e) => {
                    if opts.progress != Progress::Quiet {
                        eprintln!("{e}");
                    }
                    failures.push(e.to_string());
                }
            }
        }
        Err(DatasetError::Download(format!(
            "could not get {} from any mirror:\n  {}\n{}",
            kind.archive_name(),
            if failures.is_empty() {
                "no mirror configured".to_string()
            } else {
                failures.join("\n  ")
            },
            kind.offline_hint()
        )))
    })
}

/// Imports `kind` from `from`: the archive itself, or a folder holding it
/// (directly or in `<name>/`), checked against the publisher's MD5 while it
/// is extracted into `<data_dir>/<name>/`. A valid extraction already there
/// is kept. An archive that fails is named in the error with the expected
/// MD5, and nothing of it is written.
pub fn import_cifar_from(kind: CifarKind, from: &Path, data_dir: &Path) -> Result<CifarReport> {
    import_layout(&Layout::publisher(kind), from, data_dir)
}

pub(crate) fn import_layout(layout: &Layout, from: &Path, data_dir: &Path) -> Result<CifarReport> {
    let kind = layout.kind;
    let candidates = [
        from.to_path_buf(),
        from.join(kind.archive_name()),
        from.join(kind.name()).join(kind.archive_name()),
    ];
    let source = candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DatasetError::NotFound {
            what: format!("{} to import", kind.archive_name()),
            tried: candidates[1..]
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hint: format!(
            " --from takes the publisher's archive or a folder holding it (extracted files cannot \
             be verified: the publisher's MD5 is that of the archive). {}",
            kind.offline_hint()
        ),
        })?;
    DatasetDir::prepare(kind.name(), data_dir)?.fill(|dir| {
        if let Ok(files) = check_extracted(layout, dir) {
            return Ok(report(kind, dir, FileAction::AlreadyValid, files));
        }
        let files = extract_verified(&source, &source, layout, dir)?;
        Ok(report(
            kind,
            dir,
            FileAction::Imported {
                from: source.clone(),
            },
            files,
        ))
    })
}

/// Checks the extracted files of `kind` in `dataset_dir` (the dataset's own
/// folder) against its manifest: every file present with the recorded size
/// and SHA-256, from an archive with the publisher's MD5.
pub fn verify_cifar_dir(kind: CifarKind, dataset_dir: &Path) -> Result<()> {
    check_extracted(&Layout::publisher(kind), dataset_dir).map(|_| ())
}

fn report(kind: CifarKind, dir: &Path, action: FileAction, files: Vec<PathBuf>) -> CifarReport {
    CifarReport {
        kind,
        dir: dir.to_path_buf(),
        action,
        files,
    }
}

/// The files of `layout` in `dir` if they all match the manifest.
fn check_extracted(layout: &Layout, dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest_path = dir.join(super::MANIFEST_NAME);
    let manifest = Manifest::read(dir)?.ok_or_else(|| {
        DatasetError::content(&manifest_path, "missing: nothing verified here yet")
    })?;
    if manifest.kind != layout.kind || manifest.archive_md5 != layout.md5 {
        return Err(DatasetError::content(
            &manifest_path,
            "records another archive",
        ));
    }
    let mut files = Vec::new();
    for name in layout.kind.files() {
        let path = dir.join(name);
        let entry = manifest.entry(name).ok_or_else(|| {
            DatasetError::content(&manifest_path, format!("does not list {name}"))
        })?;
        if layout.batch_len(name).is_some_and(|len| len != entry.len) {
            return Err(DatasetError::content(
                &manifest_path,
                format!("wrong size for {name}"),
            ));
        }
        let file = File::open(&path).map_err(|e| DatasetError::io(&path, "opening", e))?;
        let mut hasher = Sha256::new();
        let len = std::io::copy(
            &mut BufReader::with_capacity(1 << 20, file).take(entry.len + 1),
            &mut hasher,
        )
        .map_err(|e| DatasetError::io(&path, "reading", e))?;
        if len != entry.len || hex(&hasher.finalize()) != entry.sha256 {
            return Err(DatasetError::content(&path, "differs from the manifest"));
        }
        files.push(path);
    }
    Ok(files)
}

/// A reader that computes the MD5 and length of what passes through it.
struct Md5Reader<R> {
    inner: R,
    md5: Md5,
    len: u64,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// One file written from the archive to a temporary file.
struct Extracted {
    name: &'static str,
    tmp: NamedTempFile,
    entry: Entry,
}

/// Extracts the files of `layout` from the archive `archive` into `dir`
/// if the archive has the layout's MD5; `shown_as` names it in errors (the
/// URL of a download). Returns the files, batches then class names.
fn extract_verified(
    archive: &Path,
    shown_as: &Path,
    layout: &Layout,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let kind = layout.kind;
    let max = layout.max_archive_len();
    let rejected = |found: String| {
        DatasetError::content(
            shown_as,
            format!(
                "rejected as {}: expected md5 {} (the publisher's), found {found}",
                kind.archive_name(),
                layout.md5
            ),
        )
    };
    let len = std::fs::metadata(archive)
        .map_err(|e| DatasetError::io(archive, "reading the size of", e))?
        .len();
    if len > max {
        return Err(rejected(format!(
            "{len} bytes, more than the archive can hold ({max})"
        )));
    }
    let file = File::open(archive).map_err(|e| DatasetError::io(archive, "opening", e))?;
    let mut reader = Md5Reader {
        inner: BufReader::with_capacity(1 << 20, file).take(max + 1),
        md5: Md5::new(),
        len: 0,
    };
    let extracted = extract_entries(&mut reader, layout, dir, shown_as);
    // Hash what tar did not need to read (padding, other members).
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| DatasetError::io(archive, "reading", e))?;
    if reader.len > max {
        return Err(rejected(format!("more than {max} bytes")));
    }
    let md5 = hex(&reader.md5.finalize());
    if md5 != layout.md5 {
        let why = extracted.err().map(|e| match e {
            DatasetError::Content { reason, .. } => format!("; and it is {reason}"),
            other => format!("; and reading it failed: {other}"),
        });
        return Err(rejected(format!(
            "md5 {md5} ({} bytes){}",
            reader.len,
            why.unwrap_or_default()
        )));
    }
    let extracted = extracted?;
    // The old manifest goes first: if this is interrupted, no manifest
    // vouches for a mix of old and new files.
    Manifest::remove(dir)?;
    let mut paths = Vec::new();
    let mut entries = Vec::new();
    for x in extracted {
        let dest = dir.join(x.name);
        x.tmp
            .persist(&dest)
            .map_err(|e| DatasetError::io(&dest, "renaming the extracted file to", e.error))?;
        paths.push(dest);
        entries.push(x.entry);
    }
    Manifest {
        kind,
        archive_md5: md5,
        files: entries,
    }
    .write(dir)?;
    Ok(paths)
}

/// Walks the tar.gz stream and writes the files of `layout` to temporary
/// files in `dir`, each checked against its expected size.
fn extract_entries(
    input: impl Read,
    layout: &Layout,
    dir: &Path,
    shown_as: &Path,
) -> Result<Vec<Extracted>> {
    let kind = layout.kind;
    let bad = |why: String| {
        DatasetError::content(
            shown_as,
            format!("not a usable {}: {why}", kind.archive_name()),
        )
    };
    let wanted = kind.files();
    let mut got: Vec<Option<Extracted>> =
        std::iter::repeat_with(|| None).take(wanted.len()).collect();
    // The inflated stream is bounded too: a gzip bomb among the members
    // ends as a truncated archive, not as an endless read.
    let inflated = flate2::read::MultiGzDecoder::new(input).take(layout.max_archive_len());
    let mut archive = tar::Archive::new(inflated);
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let parts: Vec<String> = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let [folder, name] = parts.as_slice() else {
            continue;
        };
        if folder != kind.archive_folder() {
            continue;
        }
        let Some(index) = wanted.iter().position(|w| w == name) else {
            continue;
        };
        let shown = path.display();
        if got[index].is_some() {
            return Err(bad(format!("{shown} appears twice")));
        }
        if !entry.header().entry_type().is_file() {
            return Err(bad(format!("{shown} is not a regular file")));
        }
        let size = entry.size();
        let limit = match layout.batch_len(name) {
            Some(exact) if size != exact => {
                return Err(bad(format!(
                    "{shown} has {size} bytes, expected {exact} ({} records of {} bytes)",
                    exact / kind.record_len() as u64,
                    kind.record_len()
                )))
            }
            Some(exact) => exact,
            None if size > MAX_NAMES_FILE_LEN => {
                return Err(bad(format!(
                    "{shown} has {size} bytes, more than a name file can"
                )))
            }
            None => MAX_NAMES_FILE_LEN,
        };
        let mut tmp = crate::files::temp_file_in(dir, &format!(".{name}."))
            .map_err(|e| DatasetError::io(dir, "creating a temporary file in", e))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        {
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut buf = vec![0u8; 1 << 16];
            let mut body = (&mut entry).take(limit + 1);
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(bad(format!("reading {shown}: {e}"))),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| DatasetError::io(dir, "writing a temporary file in", e))?;
                written += n as u64;
            }
            out.flush()
                .map_err(|e| DatasetError::io(dir, "writing a temporary file in", e))?;
        }
        if written != size {
            return Err(bad(format!(
                "{shown} is truncated: {written} of {size} bytes"
            )));
        }
        got[index] = Some(Extracted {
            name: wanted[index],
            tmp,
            entry: Entry {
                name: name.clone(),
                len: written,
                sha256: hex(&hasher.finalize()),
            },
        });
    }
    let missing: Vec<String> = wanted
        .iter()
        .zip(&got)
        .filter(|(_, g)| g.is_none())
        .map(|(w, _)| format!("{}/{w}", kind.archive_folder()))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("missing {}", missing.join(", "))));
    }
    Ok(got.into_iter().flatten().collect())
}
