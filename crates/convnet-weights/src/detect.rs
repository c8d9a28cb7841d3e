//! Telling weight files apart by their content, not their extension.

use std::io::Read;
use std::path::Path;

use crate::error::{Result, WeightsError};
use crate::state_dict::StateDict;

/// The kinds of files convnet reads weights and tensors from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A safetensors file.
    Safetensors,
    /// A PyTorch file (`torch.save`: zip archive, legacy pickle stream or
    /// plain pickle).
    Pytorch,
    /// A numpy `.npy` array.
    Npy,
    /// A checkpoint written by `convnet train` (magic `CNVNCKPT`).
    ConvnetCheckpoint,
}

impl FileKind {
    /// A short human name (`"safetensors"`, `"PyTorch"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Safetensors => "safetensors",
            FileKind::Pytorch => "PyTorch",
            FileKind::Npy => "numpy .npy",
            FileKind::ConvnetCheckpoint => "convnet checkpoint",
        }
    }
}

/// The magic bytes opening a convnet checkpoint.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"CNVNCKPT";

/// What the first bytes of a file say it is, or `None`.
pub fn detect(prefix: &[u8]) -> Option<FileKind> {
    if prefix.starts_with(CHECKPOINT_MAGIC) {
        return Some(FileKind::ConvnetCheckpoint);
    }
    if prefix.starts_with(b"\x93NUMPY") {
        return Some(FileKind::Npy);
    }
    if prefix.len() >= 9 && prefix[8] == b'{' {
        let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
        if n <= 100_000_000 {
            return Some(FileKind::Safetensors);
        }
    }
    if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
        return Some(FileKind::Pytorch);
    }
    // A pickle (protocol 2+ opens with PROTO), or a legacy torch.save stream.
    if prefix.first() == Some(&0x80) {
        return Some(FileKind::Pytorch);
    }
    None
}

/// Reads the first bytes of `path` and tells its kind; an unknown kind is an
/// error naming the formats convnet reads. Anything but a regular file (a
/// FIFO, `/dev/zero`, a directory) is refused before any read.
pub fn detect_file(path: &Path) -> Result<FileKind> {
    let mut prefix = Vec::with_capacity(16);
    convnet_tensor::fileio::open_regular(path)
        .and_then(|(f, _)| f.take(16).read_to_end(&mut prefix))
        .map_err(|e| WeightsError::io(path, e))?;
    detect(&prefix).ok_or_else(|| {
        let what = if prefix.is_empty() {
            "the file is empty".to_string()
        } else {
            format!(
                "its first bytes are {:02x?}",
                &prefix[..prefix.len().min(8)]
            )
        };
        WeightsError::format(
            path,
            format!(
                "not a weight file convnet reads ({what}); expected a PyTorch .pth/.pt, a \
                 .safetensors, a .npy or a convnet checkpoint"
            ),
        )
    })
}

/// Reads a state dict from a PyTorch or safetensors file, told apart by
/// content. A convnet checkpoint is read by `convnet_train::Checkpoint` (the
/// facade crate's `convnet::app::weights::read_weights` reads all three).
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    match detect_file(path)? {
        FileKind::Safetensors => crate::safetensors_io::read(path),
        FileKind::Pytorch => crate::pth::read(path),
        other => Err(WeightsError::format(
            path,
            format!(
                "this is a {} file, not a state dict of PyTorch or safetensors",
                other.name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_kind_by_its_first_bytes() {
        assert_eq!(detect(b"CNVNCKPT\x01"), Some(FileKind::ConvnetCheckpoint));
        assert_eq!(detect(b"\x93NUMPY\x01\x00"), Some(FileKind::Npy));
        assert_eq!(detect(b"PK\x03\x04rest"), Some(FileKind::Pytorch));
        assert_eq!(detect(b"\x80\x02\x8a\x0a"), Some(FileKind::Pytorch));
        // A 128-byte safetensors header starts with 0x80 too: the '{' decides.
        assert_eq!(
            detect(b"\x80\x00\x00\x00\x00\x00\x00\x00{\"a\""),
            Some(FileKind::Safetensors)
        );
        assert_eq!(detect(b"GIF89a"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn unknown_and_empty_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.bin");
        std::fs::write(&p, b"").unwrap();
        let msg = detect_file(&p).unwrap_err().to_string();
        assert!(msg.contains("w.bin") && msg.contains("empty"), "{msg}");
        std::fs::write(&p, b"hello world").unwrap();
        let msg = read_state_dict(&p).unwrap_err().to_string();
        assert!(msg.contains("not a weight file"), "{msg}");
        let msg = read_state_dict(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("none"), "{msg}");
    }

    /// Every reader of the crate on a path that is not a regular file.
    fn every_reader(path: &Path) -> Vec<String> {
        vec![
            detect_file(path).unwrap_err().to_string(),
            read_state_dict(path).unwrap_err().to_string(),
            crate::npy::read(path).unwrap_err().to_string(),
            crate::safetensors_io::read(path).unwrap_err().to_string(),
            crate::pth::read(path).unwrap_err().to_string(),
        ]
    }

    #[test]
    fn directories_devices_and_fifos_are_refused_before_any_read() {
        let dir = tempfile::tempdir().unwrap();
        for msg in every_reader(dir.path()) {
            assert!(
                msg.contains("not a regular file: it is a directory"),
                "{msg}"
            );
        }
        if cfg!(target_os = "linux") {
            // Read, /dev/zero never ends.
            for msg in every_reader(Path::new("/dev/zero")) {
                assert!(
                    msg.contains("/dev/zero: not a regular file: it is a character device"),
                    "{msg}"
                );
            }
            // Opened for reading, a FIFO blocks until a writer comes.
            let fifo = dir.path().join("weights.pth");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.map(|s| s.success()).unwrap_or(false) {
                for msg in every_reader(&fifo) {
                    assert!(
                        msg.contains("weights.pth") && msg.contains("a FIFO"),
                        "{msg}"
                    );
                }
            }
        }
    }
}
