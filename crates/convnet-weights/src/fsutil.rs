//! Atomic file writes, and the one way input files are read.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, WeightsError};

/// Reads the whole regular file `path` (a FIFO, a device or a directory is
/// refused before any read; see [`convnet_tensor::fileio`]).
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    convnet_tensor::fileio::read_regular(path, u64::MAX).map_err(|e| WeightsError::io(path, e))
}

/// Checks that `path` is a regular file, for readers that open it themselves.
pub(crate) fn check_regular(path: &Path) -> Result<()> {
    convnet_tensor::fileio::open_regular(path)
        .map(drop)
        .map_err(|e| WeightsError::io(path, e))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`: a crash leaves either the old file or the new one, never a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| WeightsError::format(path, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(WeightsError::io(path, e));
    }
    Ok(())
}
