//! Reading input files without trusting them: only regular files are opened
//! (a FIFO would block forever, `/dev/zero` would never end, a directory
//! cannot be read), and never more bytes than the caller allows. And the one
//! way every crate writes a file: [`write_atomic`], which a crash cannot
//! leave half-written.
//!
//! Errors are [`std::io::Error`]s of kind [`ErrorKind::InvalidInput`] whose
//! message says what the path is instead (`a FIFO (named pipe)`, `a
//! character device`...) or how large it is; callers add the path.
//!
//! ```
//! use convnet_tensor::fileio::{open_regular, read_regular};
//!
//! let dir = std::env::temp_dir();
//! let e = open_regular(&dir).unwrap_err();
//! assert!(e.to_string().contains("a directory"), "{e}");
//! if cfg!(unix) {
//!     let e = read_regular(std::path::Path::new("/dev/zero"), 16).unwrap_err();
//!     assert!(e.to_string().contains("a character device"), "{e}");
//! }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a file type is, in words, for an error message (`"a FIFO (named
/// pipe)"`, `"a character device"`, `"a directory"`, ...).
pub fn describe(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (symbolic links are
/// followed) and returns it with its length in bytes.
///
/// The type is checked on the path *before* opening, so a FIFO is refused
/// without blocking in `open`, and again on the opened file, so a file
/// swapped in between is refused as well.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let not_regular = |ft: &std::fs::FileType| {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file: it is {}", describe(ft)),
        )
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta.file_type()));
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// Reads the whole of the regular file `path`, refusing it if it holds more
/// than `max` bytes (before reading anything, from its size, and while
/// reading, should it grow meanwhile).
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let too_large = |len: u64| {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!("the file is {len} bytes, more than the {max} bytes allowed"),
        )
    };
    if len > max {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Marks the temporary files of [`write_atomic`]: `.<file>.tmp-<pid>-<n>`.
const TEMP_MARK: &str = ".tmp-";

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the new one, never a partial file: the data goes to a new
/// temporary file beside `path` (`.<name>.tmp-<pid>-<n>`, see
/// [`is_temporary_name`]), which is flushed to disk (`fsync`) and renamed
/// over `path`; the folder is synced too where the platform allows it. On
/// failure the temporary file is removed.
///
/// An existing `path` must be a regular file: renaming over a device node
/// or a FIFO would replace it, so those (and folders) are refused with an
/// [`ErrorKind::InvalidInput`] error saying what the path is. The file gets
/// the permissions of any file this user creates (the umask's).
///
/// ```
/// use convnet_tensor::fileio::write_atomic;
///
/// let path = std::env::temp_dir().join(format!("convnet-doc-{}.txt", std::process::id()));
/// write_atomic(&path, b"first")?;
/// write_atomic(&path, b"second")?;
/// assert_eq!(std::fs::read(&path)?, b"second");
/// std::fs::remove_file(&path)?;
/// assert!(write_atomic(&std::env::temp_dir(), b"x").is_err()); // a folder
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "it is {}, not a regular file (give a new path or a regular file)",
                    describe(&meta.file_type())
                ),
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable. Some file systems refuse to sync a
    // folder; the file is complete either way, so that is not an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new file `.<name>.tmp-<pid>-<n>` in `dir` that did not exist before.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}{TEMP_MARK}{pid}-{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // A leftover of a crashed process that had the same id.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Whether a file name is one of [`write_atomic`]'s temporary files (which a
/// write killed half-way leaves behind): `.<file>.tmp-*`, or `.tmp-*` as
/// earlier versions named them.
///
/// ```
/// use convnet_tensor::fileio::is_temporary_name;
///
/// assert!(is_temporary_name(".model.ckpt.tmp-4242-0"));
/// assert!(!is_temporary_name("model.ckpt"));
/// ```
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_files_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("convnet-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["out.bin"]);
        // A folder in the way is refused and left alone.
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_atomic(&sub, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a directory"), "{e}");
        assert!(sub.is_dir());
        // A missing folder: the error is the creation's, and nothing is left.
        let e = write_atomic(&dir.join("missing/out.bin"), b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(is_temporary_name(&format!(".out.bin{TEMP_MARK}1-0")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn atomic_writes_never_replace_a_device() {
        let e = write_atomic(Path::new("/dev/null"), b"x").unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
    }

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = std::env::temp_dir().join(format!("convnet-fileio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.bin");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"hello");
        let e = read_regular(&p, 4).unwrap_err().to_string();
        assert!(e.contains("5 bytes, more than the 4 bytes"), "{e}");
        let e = open_regular(&dir).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        assert_eq!(
            open_regular(&dir.join("missing")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn devices_and_fifos_are_refused_before_any_read() {
        let e = read_regular(Path::new("/dev/zero"), u64::MAX).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let dir = std::env::temp_dir().join(format!("convnet-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            // Opening a FIFO for reading would block until a writer comes.
            let e = open_regular(&fifo).unwrap_err();
            assert!(e.to_string().contains("a FIFO"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
