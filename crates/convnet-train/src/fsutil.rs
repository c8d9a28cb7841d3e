//! Crash-safe file writing, and the check of where a command may write.

use std::fs::Metadata;
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Result, TrainError};

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one, never a partial file: the data goes to a
/// temporary file in the same folder, which is flushed to disk (`fsync`) and
/// then renamed over `path`; the folder is synced too where the platform
/// allows it.
///
/// An existing `path` must be a regular file ([`check_output`]): renaming
/// over a device node would replace the device.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_output(path, &[])?;
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

/// Checks that a command reading `inputs` may replace `output`: `output`
/// must be a new path or an existing regular file (never a device node, a
/// folder, a FIFO or a socket: an atomic write renames a file over it, which
/// would replace a device), and it must not be one of `inputs` (the same file
/// by device and inode on Unix, by canonical path elsewhere, so hard links,
/// symbolic links and `./x` against `x` are all caught).
///
/// Every command output that sits beside its inputs goes through this check
/// before any work starts (`convnet eval --plot`, `convnet infer --output`,
/// `convnet weights convert`), and [`write_atomic`] checks the first rule
/// itself. An input that cannot be inspected is skipped here: reading it
/// reports the problem.
///
/// ```
/// use convnet_train::fsutil::check_output;
///
/// let dir = tempfile::tempdir()?;
/// let ckpt = dir.path().join("model.ckpt");
/// std::fs::write(&ckpt, b"weights")?;
/// assert!(check_output(&dir.path().join("heat.png"), &[&ckpt]).is_ok());
/// assert!(check_output(&ckpt, &[&ckpt]).is_err());
/// assert!(check_output(dir.path(), &[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_output(output: &Path, inputs: &[&Path]) -> Result<()> {
    let meta = match std::fs::metadata(output) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(output, e)),
    };
    if !meta.is_file() {
        return Err(TrainError::Output {
            path: output.to_path_buf(),
            msg: format!(
                "it is {}, not a regular file (give a new path or a regular file)",
                file_kind(&meta)
            ),
        });
    }
    for input in inputs {
        let Ok(input_meta) = std::fs::metadata(input) else {
            continue;
        };
        if same_file(output, &meta, input, &input_meta) {
            return Err(TrainError::Output {
                path: output.to_path_buf(),
                msg: format!(
                    "it is {}, which this command reads (give another output path)",
                    input.display()
                ),
            });
        }
    }
    Ok(())
}

/// What a file that is not a regular file is, in words.
fn file_kind(meta: &Metadata) -> &'static str {
    if meta.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Whether `a` and `b` (with their metadata, symbolic links followed) are the
/// same file.
#[cfg(unix)]
fn same_file(_a: &Path, a_meta: &Metadata, _b: &Path, b_meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a_meta.dev() == b_meta.dev() && a_meta.ino() == b_meta.ino()
}

/// Whether `a` and `b` are the same file (by canonical path).
#[cfg(not(unix))]
fn same_file(a: &Path, _a_meta: &Metadata, b: &Path, _b_meta: &Metadata) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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

    #[test]
    fn outputs_onto_inputs_or_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model.ckpt");
        std::fs::write(&input, b"weights").unwrap();
        // A new path and an unrelated regular file are fine.
        check_output(&dir.path().join("new.png"), &[&input]).unwrap();
        let other = dir.path().join("old.png");
        std::fs::write(&other, b"old").unwrap();
        check_output(&other, &[&input]).unwrap();
        // The input itself, under another spelling, is refused.
        let spelled = dir.path().join(".").join("model.ckpt");
        let e = check_output(&spelled, &[&input]).unwrap_err().to_string();
        assert!(e.contains("which this command reads"), "{e}");
        // So is a hard link to it.
        let link = dir.path().join("link.ckpt");
        if std::fs::hard_link(&input, &link).is_ok() {
            let e = check_output(&link, &[&input]).unwrap_err().to_string();
            assert!(e.contains("model.ckpt"), "{e}");
        }
        // A folder is refused, and write_atomic refuses it before renaming.
        let e = check_output(dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let e = check_output(Path::new("/dev/null"), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("character device"), "{e}");
            let e = write_atomic(Path::new("/dev/null"), b"x")
                .unwrap_err()
                .to_string();
            assert!(e.contains("refusing to write"), "{e}");
            assert!(std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device());
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"weights");
    }
}
