//! Crash-safe file writing.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, TrainError};

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one, never a partial file: the data goes to a
/// temporary file in the same folder, which is flushed to disk (`fsync`) and
/// then renamed over `path`; the folder is synced too where the platform
/// allows it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Temporary files are private (0600) by default; the result is an
    // ordinary file, readable by others as any file this user writes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(|e| TrainError::io(&dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| TrainError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    // Make the rename itself durable (not supported on every platform; a
    // failure here does not make the file less complete).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let e = write_atomic(&dir.path().join("missing/x.bin"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
