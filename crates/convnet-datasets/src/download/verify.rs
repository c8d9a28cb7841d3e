//! Checking a file against the publisher's checksum of its *decompressed*
//! content, so that any faithful copy passes, whatever its compression.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest as _, Sha256};

use crate::error::{DatasetError, Result};
use crate::idx::starts_with_gzip_magic;
use crate::kind::FileSpec;

/// Size and SHA-256 of a file's decompressed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    /// Decompressed size in bytes.
    pub len: u64,
    /// SHA-256 of the decompressed content, lowercase hex.
    pub sha256: String,
    /// Whether the file was gzip-compressed.
    pub gzip: bool,
}

/// Why a file's content could not be digested.
enum DigestError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The gzip stream is corrupt or truncated.
    Gzip(std::io::Error),
    /// More decompressed bytes than `limit`: reading stopped there.
    TooLong(u64),
}

/// Decompresses (if gzip) and hashes `path`, stopping after `limit` bytes.
fn digest_limited(path: &Path, limit: u64) -> std::result::Result<ContentDigest, DigestError> {
    let file = File::open(path).map_err(DigestError::Io)?;
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    let gzip = starts_with_gzip_magic(&mut buffered).map_err(DigestError::Io)?;
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    let mut len: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if gzip => return Err(DigestError::Gzip(e)),
            Err(e) => return Err(DigestError::Io(e)),
        };
        len += n as u64;
        if len > limit {
            return Err(DigestError::TooLong(limit));
        }
        hasher.update(&buf[..n]);
    }
    Ok(ContentDigest {
        len,
        sha256: hex(&hasher.finalize()),
        gzip,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and SHA-256 of the decompressed content of `path` (gzip is
/// recognised by its first bytes; a plain file is hashed as is).
pub fn digest_file(path: impl AsRef<Path>) -> Result<ContentDigest> {
    let path = path.as_ref();
    digest_limited(path, u64::MAX).map_err(|e| match e {
        DigestError::Io(e) => DatasetError::io(path, "reading", e),
        DigestError::Gzip(e) => DatasetError::Gzip {
            path: path.to_path_buf(),
            source: e,
        },
        DigestError::TooLong(_) => DatasetError::idx(path, "longer than 2^64 bytes"),
    })
}

/// Checks that `path` holds the content `spec` describes (decompressed size
/// and SHA-256). `shown_as` is the name given in the error (the source file
/// or URL the bytes came from, when `path` is a temporary copy).
pub fn verify_as(path: &Path, shown_as: &Path, spec: &FileSpec) -> Result<()> {
    let rejected = |found: String| DatasetError::Verification {
        path: shown_as.to_path_buf(),
        name: spec.display_name(),
        expected_len: spec.len,
        expected_sha256: spec.sha256.to_string(),
        found,
    };
    match digest_limited(path, spec.len) {
        Ok(d) if d.len == spec.len && d.sha256 == spec.sha256 => Ok(()),
        Ok(d) => Err(rejected(format!(
            "{} bytes with sha256 {}{}",
            d.len,
            d.sha256,
            if d.len < spec.len && d.gzip {
                " (a truncated or different file)"
            } else {
                ""
            }
        ))),
        Err(DigestError::TooLong(limit)) => Err(rejected(format!("more than {limit} bytes"))),
        Err(DigestError::Gzip(e)) => Err(rejected(format!(
            "gzip data that cannot be decompressed (corrupt or truncated: {e})"
        ))),
        Err(DigestError::Io(e)) => Err(DatasetError::io(path, "reading", e)),
    }
}

/// Checks that `path` holds the content `spec` describes.
///
/// ```no_run
/// use convnet_datasets::{download::verify_file, DatasetKind, Part, Split};
/// let spec = DatasetKind::Mnist.file(Split::Test, Part::Labels);
/// verify_file("data/mnist/t10k-labels-idx1-ubyte.gz", spec)?;
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
pub fn verify_file(path: impl AsRef<Path>, spec: &FileSpec) -> Result<()> {
    let path = path.as_ref();
    verify_as(path, path, spec)
}

/// The files of `spec` present in `dir` (`.gz` and plain), each with whether
/// it passes verification.
pub(crate) fn present_files(dir: &Path, spec: &FileSpec) -> Vec<(PathBuf, bool)> {
    crate::locate::candidate_files(dir, spec)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let ok = verify_file(&p, spec).is_ok();
            (p, ok)
        })
        .collect()
}
