//! Atomic file writes, and the one way input files are read.

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

/// Writes `bytes` to `path` atomically: a crash leaves either the old file
/// or the new one, never a half-written file (see
/// [`convnet_tensor::fileio::write_atomic`], the one writer of the workspace).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    convnet_tensor::fileio::write_atomic(path, bytes).map_err(|e| WeightsError::io(path, e))
}
