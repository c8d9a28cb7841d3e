//! File-system chores shared by the writers, downloads and imports:
//! temporary files that become ordinary files once renamed, and the removal
//! of temporary files a killed process left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

/// Temporary files younger than this are left alone by
/// [`remove_leftover_parts`]: another process may still be writing them.
pub(crate) const LEFTOVER_GRACE: Duration = Duration::from_secs(30);

/// A temporary file `<prefix>XXXXXX.part` in `dir`, created with the mode an
/// ordinary file gets (0666 less the umask: 0644 under umask 022), so that
/// renaming it into place gives a file like any other, not tempfile's 0600.
pub(crate) fn temp_file_in(dir: &Path, prefix: &str) -> std::io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode is given to open(2), which applies the umask.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Removes from `dir` the temporary files (`.*.part`) that an interrupted
/// download, import or write left behind, except those modified less than
/// [`LEFTOVER_GRACE`] ago (a transfer in progress in another process).
/// Returns the files removed; a folder that cannot be read or a file that
/// cannot be removed (a read-only folder) is skipped silently.
pub fn remove_leftover_parts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".part")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age < LEFTOVER_GRACE {
            continue;
        }
        let path = entry.path();
        if std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_part_files_are_removed_fresh_ones_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".train-images-idx3-ubyte.abc123.part");
        let fresh = dir.path().join(".idx-xyz.part");
        let data = dir.path().join("train-images-idx3-ubyte.gz");
        for p in [&old, &fresh, &data] {
            std::fs::write(p, b"x").unwrap();
        }
        let past = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(remove_leftover_parts(dir.path()), vec![old.clone()]);
        assert!(!old.exists() && fresh.exists() && data.exists());
        assert!(remove_leftover_parts(&dir.path().join("missing")).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn temporary_files_get_the_usual_mode_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // What an ordinary file gets under the current umask.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let usual = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let tmp = temp_file_in(dir.path(), ".t.").unwrap();
        let dest = dir.path().join("renamed");
        tmp.persist(&dest).unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, usual,
            "renamed temporary file: {mode:o}, usual {usual:o}"
        );
    }
}
