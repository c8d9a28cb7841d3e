//! Reading input files without trusting them: only regular files are opened
//! (a FIFO would block forever, `/dev/zero` would never end, a directory
//! cannot be read), and never more bytes than the caller allows.
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

use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
