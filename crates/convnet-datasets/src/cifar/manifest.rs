//! The manifest written next to the extracted CIFAR files: which archive
//! they came from (its MD5) and each file's size and SHA-256, so that a file
//! changed after the import is refused when loaded.
//!
//! A small text file, one fact per line:
//!
//! ```text
//! convnet cifar manifest 1
//! dataset cifar10
//! archive cifar-10-binary.tar.gz md5 c32a1d4ab5d03f1284b67883e8d87530
//! file data_batch_1.bin 30730000 <sha256>
//! ```

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{DatasetError, Result};

use super::CifarKind;

/// The manifest's file name in the dataset's folder.
pub const MANIFEST_NAME: &str = "convnet-manifest.txt";

const HEADER: &str = "convnet cifar manifest 1";

/// Most bytes a manifest may have.
const MAX_LEN: u64 = 16 * 1024;

/// One extracted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// File name in the dataset's folder.
    pub name: String,
    /// Size in bytes.
    pub len: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// What the manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Which dataset.
    pub kind: CifarKind,
    /// MD5 of the archive the files were extracted from.
    pub archive_md5: String,
    /// The extracted files.
    pub files: Vec<Entry>,
}

impl Manifest {
    /// The entry of `name`, if recorded.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.files.iter().find(|e| e.name == name)
    }

    /// The manifest as text.
    fn to_text(&self) -> String {
        let mut s = format!(
            "{HEADER}\ndataset {}\narchive {} md5 {}\n",
            self.kind.name(),
            self.kind.archive_name(),
            self.archive_md5
        );
        for e in &self.files {
            s.push_str(&format!("file {} {} {}\n", e.name, e.len, e.sha256));
        }
        s
    }

    /// Parses the text of `path`.
    fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let bad = |line: usize, why: &str| {
            DatasetError::content(
                path,
                format!(
                    "not a convnet CIFAR manifest (line {line}: {why}); import the archive again"
                ),
            )
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(bad(1, &format!("expected `{HEADER}`"))),
        }
        let (mut kind, mut archive_md5, mut files) = (None, None, Vec::new());
        for (n, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["dataset", name] => {
                    kind = Some(
                        name.parse::<CifarKind>()
                            .map_err(|_| bad(n, "unknown dataset"))?,
                    )
                }
                ["archive", _, "md5", md5] if is_hex(md5, 32) => {
                    archive_md5 = Some(md5.to_string())
                }
                ["file", name, len, sha] if is_hex(sha, 64) => files.push(Entry {
                    name: name.to_string(),
                    len: len.parse().map_err(|_| bad(n, "bad size"))?,
                    sha256: sha.to_string(),
                }),
                _ => return Err(bad(n, "unexpected line")),
            }
        }
        match (kind, archive_md5) {
            (Some(kind), Some(archive_md5)) => Ok(Manifest {
                kind,
                archive_md5,
                files,
            }),
            _ => Err(bad(0, "missing `dataset` or `archive` line")),
        }
    }

    /// Reads the manifest of `dir`; `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_NAME);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DatasetError::io(&path, "opening", e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DatasetError::io(&path, "reading", e))?;
        if bytes.len() as u64 > MAX_LEN {
            return Err(DatasetError::content(
                &path,
                format!("more than {MAX_LEN} bytes: not a convnet CIFAR manifest"),
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| DatasetError::content(&path, "not UTF-8: not a convnet CIFAR manifest"))?;
        Manifest::parse(&path, &text).map(Some)
    }

    /// Writes the manifest into `dir` atomically (a temporary file renamed).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_NAME);
        let mut tmp = crate::files::temp_file_in(dir, ".manifest.")
            .map_err(|e| DatasetError::io(dir, "creating a temporary file in", e))?;
        tmp.write_all(self.to_text().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| DatasetError::io(tmp.path(), "writing", e))?;
        tmp.persist(&path)
            .map_err(|e| DatasetError::io(&path, "renaming the manifest to", e.error))?;
        Ok(())
    }

    /// Removes the manifest of `dir`, if any (before its files are replaced).
    pub fn remove(dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DatasetError::io(&path, "removing", e)),
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        let m = Manifest {
            kind: CifarKind::Cifar100,
            archive_md5: "0".repeat(32),
            files: vec![Entry {
                name: "train.bin".into(),
                len: 3074,
                sha256: "a".repeat(64),
            }],
        };
        m.write(dir.path()).unwrap();
        let back = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, m);
        assert_eq!(back.entry("train.bin").unwrap().len, 3074);
        let path = dir.path().join(MANIFEST_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("3074", "3O74")).unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(MANIFEST_NAME) && err.contains("line 4"),
            "{err}"
        );
        Manifest::remove(dir.path()).unwrap();
        Manifest::remove(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
    }
}
