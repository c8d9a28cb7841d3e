//! Atomic file writes.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, WeightsError};

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
