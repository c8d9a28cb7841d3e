//! Reading a CIFAR folder's files: the names file, the batches, and the
//! checks of the manifest written when the folder was verified.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{DatasetError, Result};

use super::manifest::{Manifest, MANIFEST_NAME};
use super::{hex, CifarKind, Layout, CIFAR_IMAGE_BYTES, MAX_NAMES_FILE_LEN};

/// The file `name` in `folder`, or an error saying how to get it.
pub(super) fn existing(kind: CifarKind, folder: &Path, name: &str) -> Result<PathBuf> {
    let path = folder.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DatasetError::NotFound {
            what: format!("{} file {name}", kind.title()),
            tried: path.display().to_string(),
            hint: format!(
                " Get it with `cargo xtask download {}` (verified by checksum). {}",
                kind.name(),
                kind.offline_hint()
            ),
        })
    }
}

/// The manifest of `folder`, which must come from an archive with
/// `layout`'s MD5.
pub(super) fn verified_manifest(layout: &Layout, folder: &Path) -> Result<Manifest> {
    let kind = layout.kind;
    let path = folder.join(MANIFEST_NAME);
    let manifest = Manifest::read(folder)?.ok_or_else(|| {
        DatasetError::content(
            &path,
            format!(
                "missing: the {} files in {} were not extracted by `cargo xtask download`, so \
                 they cannot be verified (the publisher's checksum is that of the archive). {}",
                kind.title(),
                folder.display(),
                kind.offline_hint()
            ),
        )
    })?;
    if manifest.kind != kind || manifest.archive_md5 != layout.md5 {
        return Err(DatasetError::content(
            &path,
            format!(
                "records {} files from an archive with md5 {}, not the publisher's {} ({}): \
                 import the archive again",
                manifest.kind.title(),
                manifest.archive_md5,
                kind.archive_name(),
                layout.md5
            ),
        ));
    }
    Ok(manifest)
}

/// The error for a file that differs from the import manifest.
pub(super) fn changed(path: &Path, what: &str, kind: CifarKind) -> DatasetError {
    DatasetError::content(
        path,
        format!(
            "changed since it was extracted from the verified archive ({what}): a truncated, \
             swapped or edited file. Import the archive again: `cargo xtask download {}`.",
            kind.name()
        ),
    )
}

/// Reads a class-name file: one name per line, blank lines ignored, exactly
/// `count` names; checks its SHA-256 if given.
pub(super) fn read_names(
    path: &Path,
    count: usize,
    sha256: Option<&str>,
    kind: CifarKind,
) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, "opening", e))?;
    let mut bytes = Vec::new();
    file.take(MAX_NAMES_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DatasetError::io(path, "reading", e))?;
    if bytes.len() as u64 > MAX_NAMES_FILE_LEN {
        return Err(DatasetError::content(
            path,
            format!(
                "more than {MAX_NAMES_FILE_LEN} bytes: not a {} class-name file",
                kind.title()
            ),
        ));
    }
    if let Some(expected) = sha256 {
        let found = hex(&Sha256::digest(&bytes));
        if found != expected {
            return Err(changed(
                path,
                &format!("sha256 {found}, {expected} recorded at import"),
                kind,
            ));
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| DatasetError::content(path, "not UTF-8 text: not a class-name file"))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != count {
        return Err(DatasetError::content(
            path,
            format!(
                "{} class names, {} expected (one per line)",
                names.len(),
                count
            ),
        ));
    }
    Ok(names)
}

/// Reads the records of the batch file `path` (`len` bytes) into the
/// buffers (one label, coarse label (CIFAR-100) and image per record),
/// checking its labels and, if given, its SHA-256.
pub(super) fn read_batch(
    kind: CifarKind,
    path: &Path,
    len: u64,
    sha256: Option<&str>,
    labels_out: &mut [u8],
    coarse_out: &mut [u8],
    pixels_out: &mut [u8],
) -> Result<()> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, "opening", e))?;
    let mut input = BufReader::with_capacity(1 << 20, file).take(len);
    let mut hasher = Sha256::new();
    let mut record = vec![0u8; kind.record_len()];
    for r in 0..len / kind.record_len() as u64 {
        input.read_exact(&mut record).map_err(|e| {
            DatasetError::content(path, format!("reading record {r}: {e} (the file shrank?)"))
        })?;
        hasher.update(&record);
        let labels = &record[..kind.label_bytes()];
        let (fine, coarse) = match kind {
            CifarKind::Cifar10 => (labels[0], None),
            CifarKind::Cifar100 => (labels[1], Some(labels[0])),
        };
        let bad = |what: &str, value: u8, limit: usize| {
            DatasetError::content(
                path,
                format!(
                    "record {r} (byte {}) has {what}label {value}, but {} {what}labels are \
                     0..={}: not a {} batch file",
                    r * kind.record_len() as u64,
                    kind.title(),
                    limit - 1,
                    kind.title()
                ),
            )
        };
        if fine as usize >= kind.num_classes() {
            return Err(bad("", fine, kind.num_classes()));
        }
        if let Some(c) = coarse {
            if c as usize >= kind.num_coarse_classes() {
                return Err(bad("coarse ", c, kind.num_coarse_classes()));
            }
            coarse_out[r as usize] = c;
        }
        labels_out[r as usize] = fine;
        pixels_out[r as usize * CIFAR_IMAGE_BYTES..(r as usize + 1) * CIFAR_IMAGE_BYTES]
            .copy_from_slice(&record[kind.label_bytes()..]);
    }
    if let Some(expected) = sha256 {
        let found = hex(&hasher.finalize());
        if found != expected {
            return Err(changed(
                path,
                &format!("sha256 {found}, {expected} recorded at import"),
                kind,
            ));
        }
    }
    Ok(())
}
