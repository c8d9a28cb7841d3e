//! Crash-safe file writing, the lock and clean-up of a run folder, and the
//! check of where a command may write.

use std::fs::Metadata;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one, never a partial file (temporary file beside it,
/// `fsync`, rename: [`convnet_tensor::fileio::write_atomic`], the one writer
/// of the workspace).
///
/// An existing `path` must be a regular file ([`check_output`]): renaming
/// over a device node would replace the device.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_output(path, &[])?;
    convnet_tensor::fileio::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// The name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".convnet.lock";

/// An exclusive lock on a run folder, so that two trainings cannot write into
/// the same folder at once. Released (the lock file removed) when dropped.
///
/// The lock is the file [`LOCK_FILE`], created with `create_new` (so only one
/// process can create it) and holding the owner's process id. A process that
/// is killed cannot remove it: a lock whose process id is no longer running
/// is *stale* and is taken over. Liveness is read from `/proc/<pid>` where
/// the system has `/proc` (Linux); elsewhere a lock is always taken as held,
/// and the error says which file to remove. A lock file without a readable
/// process id (a run killed between creating and writing it) is also taken
/// as held, for the same reason.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
}

impl FolderLock {
    /// Locks `dir` (which must exist) for this process, taking over a stale
    /// lock; an error names the process that holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        let path = dir.join(LOCK_FILE);
        // Two attempts: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let lock = FolderLock { path };
                    writeln!(f, "{}", std::process::id())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| TrainError::io(&lock.path, e))?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if !process_is_running(pid) => {
                            // Stale: its process is gone. Take it over.
                            match std::fs::remove_file(&path) {
                                Ok(()) => continue,
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                                Err(e) => return Err(TrainError::io(&path, e)),
                            }
                        }
                        Some(pid) => {
                            return Err(TrainError::Locked {
                                path,
                                msg: format!("another run (process {pid}) is using this folder"),
                            })
                        }
                        None => {
                            return Err(TrainError::Locked {
                                path,
                                msg: "the lock file holds no process id; if no run is using \
                                      this folder, remove the file"
                                    .into(),
                            })
                        }
                    }
                }
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        }
        Err(TrainError::Locked {
            path,
            msg: "another run took the lock while a stale one was being replaced".into(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` is running: read from `/proc` where it exists;
/// without `/proc`, every process is taken as running (never steal a lock
/// that may be live).
fn process_is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// Whether `name` is a temporary file of an atomic write
/// ([`convnet_tensor::fileio::is_temporary_name`]).
pub fn is_temporary_name(name: &str) -> bool {
    convnet_tensor::fileio::is_temporary_name(name)
}

/// Removes the temporary files that atomic writes killed half-way left in
/// `dir` (not in its sub-folders) and returns them. Call it only while
/// holding the folder's [`FolderLock`], so that no live write loses its file.
pub fn remove_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && is_temporary_name(&name.to_string_lossy()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
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
        "a folder"
    } else {
        convnet_tensor::fileio::describe(&meta.file_type())
    }
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
    fn folder_lock_is_exclusive_released_and_stale_ones_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FolderLock::acquire(dir.path()).unwrap();
        let held = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(held.trim(), std::process::id().to_string());
        let e = FolderLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("another run") && e.contains(LOCK_FILE), "{e}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists(), "removed on drop");
        // A lock left by a process that has exited is stale.
        if Path::new("/proc/self").exists() {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .arg("--list")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let dead = child.id();
            child.wait().unwrap();
            std::fs::write(dir.path().join(LOCK_FILE), format!("{dead}\n")).unwrap();
            let lock = FolderLock::acquire(dir.path()).unwrap();
            let held = std::fs::read_to_string(lock.path()).unwrap();
            assert_eq!(held.trim(), std::process::id().to_string());
        }
        // No process id: taken as held, and the message says what to do.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(LOCK_FILE), "").unwrap();
        let e = FolderLock::acquire(other.path()).unwrap_err().to_string();
        assert!(e.contains("remove the file"), "{e}");
    }

    #[test]
    fn temporaries_of_killed_writes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".tmp-AbC123",
            ".checkpoint.ckpt.tmp-4242",
            "keep.csv",
            ".hidden",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".tmp-dir")).unwrap();
        let removed = remove_temporaries(dir.path()).unwrap();
        let names: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".checkpoint.ckpt.tmp-4242", ".tmp-AbC123"]);
        assert!(dir.path().join("keep.csv").exists());
        assert!(dir.path().join(".hidden").exists());
        assert!(dir.path().join(".tmp-dir").is_dir());
    }

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
            // The permissions of any file this user creates (never the
            // temporary file's private 0600).
            let plain = dir.path().join("plain.bin");
            std::fs::write(&plain, b"x").unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&p), mode(&plain));
            std::fs::remove_file(&plain).unwrap();
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
