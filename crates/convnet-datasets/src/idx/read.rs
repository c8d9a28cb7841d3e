//! Reading IDX files and streams, plain or gzip-compressed, in chunks or
//! whole.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::header::read_header;
use super::{
    IdxArray, IdxData, IdxElement, IdxHeader, GZIP_MAGIC, MAX_GZIP_RATIO,
    MAX_UNVERIFIED_RESERVATION,
};
use crate::error::{DatasetError, Result};

/// What the reader knows about the size of the stream before reading it.
#[derive(Debug, Clone, Copy)]
enum SizeBound {
    /// A plain file or byte slice of exactly this many bytes.
    Exact(u64),
    /// A gzip file of this many compressed bytes.
    Gzip(u64),
    /// An unsized stream.
    Unknown,
}

/// A streaming IDX reader: parses and checks the header, then yields the
/// elements in chunks ([`IdxReader::read_chunk`]) or all at once
/// ([`IdxReader::read_all`]).
///
/// ```
/// use convnet_datasets::idx::{write_idx_to, IdxArray, IdxReader, IdxType};
///
/// let array = IdxArray::from_vec(&[4], vec![1.5f32, -2.0, 0.25, 8.0])?;
/// let bytes = write_idx_to(Vec::new(), &array, "x")?;
/// let mut reader = IdxReader::from_bytes(&bytes, "x")?;
/// assert_eq!(reader.header().elem_type, IdxType::F32);
/// let mut chunk = [0f32; 3];
/// assert_eq!(reader.read_chunk(&mut chunk)?, 3);
/// assert_eq!(chunk, [1.5, -2.0, 0.25]);
/// assert_eq!(reader.read_chunk(&mut chunk)?, 1);
/// assert_eq!(chunk[0], 8.0);
/// reader.finish()?; // checks that nothing follows the data
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
pub struct IdxReader<R> {
    inner: R,
    path: PathBuf,
    header: IdxHeader,
    /// Data bytes not yet read.
    remaining: u64,
    gzip: bool,
    bound: SizeBound,
    scratch: Vec<u8>,
}

impl<R> fmt::Debug for IdxReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxReader")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("remaining", &self.remaining)
            .field("gzip", &self.gzip)
            .finish()
    }
}

impl IdxReader<Box<dyn Read + Send>> {
    /// Opens an IDX file, gzip-compressed or not (recognised by its first
    /// bytes, not its name), and reads and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| DatasetError::io(path, "opening", e))?;
        let len = file
            .metadata()
            .map_err(|e| DatasetError::io(path, "reading the size of", e))?
            .len();
        let mut buffered = BufReader::with_capacity(1 << 16, file);
        let gzip = starts_with_gzip_magic(&mut buffered)
            .map_err(|e| DatasetError::io(path, "reading", e))?;
        if gzip {
            let reader: Box<dyn Read + Send> = Box::new(MultiGzDecoder::new(buffered));
            IdxReader::with_bound(reader, path, true, SizeBound::Gzip(len))
        } else {
            let reader: Box<dyn Read + Send> = Box::new(buffered);
            IdxReader::with_bound(reader, path, false, SizeBound::Exact(len))
        }
    }
}

impl<'a> IdxReader<Box<dyn Read + Send + 'a>> {
    /// Reads an IDX file held in memory, gzip-compressed or not; `name` is the
    /// name used in error messages.
    pub fn from_bytes(bytes: &'a [u8], name: impl Into<PathBuf>) -> Result<Self> {
        let len = bytes.len() as u64;
        if bytes.starts_with(&GZIP_MAGIC) {
            let reader: Box<dyn Read + Send + 'a> = Box::new(MultiGzDecoder::new(bytes));
            IdxReader::with_bound(reader, name, true, SizeBound::Gzip(len))
        } else {
            let reader: Box<dyn Read + Send + 'a> = Box::new(bytes);
            IdxReader::with_bound(reader, name, false, SizeBound::Exact(len))
        }
    }
}

impl<R: Read> IdxReader<R> {
    /// Reads the header of an uncompressed IDX stream of unknown length
    /// (wrap the reader in a gzip decoder first for a compressed one); `name`
    /// is the name used in error messages.
    pub fn new(reader: R, name: impl Into<PathBuf>) -> Result<Self> {
        IdxReader::with_bound(reader, name, false, SizeBound::Unknown)
    }

    fn with_bound(
        mut inner: R,
        name: impl Into<PathBuf>,
        gzip: bool,
        bound: SizeBound,
    ) -> Result<Self> {
        let path = name.into();
        let header = read_header(&mut inner, &path, gzip)?;
        let data_len = header.data_len();
        let total = header.header_len() + data_len;
        match bound {
            SizeBound::Exact(len) if len != total => {
                let available = len.saturating_sub(header.header_len());
                let what = if available < data_len {
                    "is truncated"
                } else {
                    "has trailing bytes"
                };
                return Err(DatasetError::idx(
                    &path,
                    format!(
                        "the file {what}: its header ({header}) describes {data_len} bytes of \
                         data, but {available} bytes follow the {}-byte header",
                        header.header_len()
                    ),
                ));
            }
            SizeBound::Gzip(len) if total > len.saturating_mul(MAX_GZIP_RATIO) + 1024 => {
                return Err(DatasetError::idx(
                    &path,
                    format!(
                        "its header ({header}) describes {data_len} bytes of data, more than \
                         a {len}-byte gzip file can hold"
                    ),
                ));
            }
            _ => {}
        }
        Ok(IdxReader {
            inner,
            path,
            header,
            remaining: data_len,
            gzip,
            bound,
            scratch: Vec::new(),
        })
    }

    /// The header read from the stream.
    pub fn header(&self) -> &IdxHeader {
        &self.header
    }

    /// The name of the file, as used in error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `true` if the file is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Number of elements not read yet.
    pub fn remaining_elements(&self) -> usize {
        (self.remaining / self.header.elem_type.size() as u64) as usize
    }

    fn read_error(&self, e: std::io::Error) -> DatasetError {
        if self.gzip {
            DatasetError::Gzip {
                path: self.path.clone(),
                source: e,
            }
        } else {
            DatasetError::io(&self.path, "reading", e)
        }
    }

    fn truncated(&self, read: u64) -> DatasetError {
        let data_len = self.header.data_len();
        let got = data_len - self.remaining + read;
        let what = if self.gzip {
            "the decompressed data is truncated"
        } else {
            "the file is truncated"
        };
        DatasetError::idx(
            &self.path,
            format!(
                "{what}: its header ({}) describes {data_len} bytes of data, the stream ends \
                 after {got}",
                self.header
            ),
        )
    }

    /// Reads the next elements into `out` and returns how many were read:
    /// `out.len()` or fewer at the end of the data, 0 once every element has
    /// been read. Errors if `T` is not the file's element type or the stream
    /// ends early.
    pub fn read_chunk<T: IdxElement>(&mut self, out: &mut [T]) -> Result<usize> {
        if T::TYPE != self.header.elem_type {
            return Err(DatasetError::content(
                &self.path,
                format!(
                    "asked for {} elements, the file holds {}",
                    T::TYPE,
                    self.header.elem_type
                ),
            ));
        }
        let n = out.len().min(self.remaining_elements());
        if n == 0 {
            return Ok(0);
        }
        let bytes = n * T::TYPE.size();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(bytes, 0);
        let result = read_full(&mut self.inner, &mut scratch);
        let result = match result {
            Ok(read) if read == bytes => {
                T::decode_be(&scratch, &mut out[..n]);
                self.remaining -= bytes as u64;
                Ok(n)
            }
            Ok(read) => Err(self.truncated(read as u64)),
            Err(e) => Err(self.read_error(e)),
        };
        self.scratch = scratch;
        result
    }

    /// Reads every remaining element and checks that the stream ends right
    /// after them (for gzip, that also checks the CRC).
    pub fn read_all(mut self) -> Result<IdxArray> {
        let total = self.remaining;
        let reserve = match self.bound {
            // The file's length was checked against the header.
            SizeBound::Exact(_) => total,
            // Bounded by what the compressed size makes likely; more grows
            // with the data actually decompressed.
            SizeBound::Gzip(len) => total
                .min(MAX_UNVERIFIED_RESERVATION)
                .min(len.saturating_mul(4)),
            SizeBound::Unknown => total.min(MAX_UNVERIFIED_RESERVATION),
        };
        let mut bytes = Vec::new();
        // A sparse file can be as long as a lying header claims: fail
        // cleanly rather than abort when that much memory is not there.
        bytes.try_reserve_exact(reserve as usize).map_err(|e| {
            DatasetError::idx(
                &self.path,
                format!(
                    "its header ({}) describes {total} bytes of data, which cannot be allocated: {e}",
                    self.header
                ),
            )
        })?;
        let read = (&mut self.inner)
            .take(total)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(e))?;
        if (read as u64) < total {
            return Err(self.truncated(read as u64));
        }
        self.remaining = 0;
        self.expect_end()?;
        let dims = std::mem::take(&mut self.header.dims);
        Ok(IdxArray {
            dims,
            data: IdxData::decode(self.header.elem_type, bytes),
        })
    }

    /// Checks that every element was read and that nothing follows the data.
    pub fn finish(mut self) -> Result<()> {
        if self.remaining > 0 {
            return Err(DatasetError::content(
                &self.path,
                format!(
                    "finish() called with {} elements not read",
                    self.remaining_elements()
                ),
            ));
        }
        self.expect_end()
    }

    fn expect_end(&mut self) -> Result<()> {
        let mut buf = [0u8; 512];
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    return Err(DatasetError::idx(
                        &self.path,
                        format!(
                            "trailing data: at least {n} bytes follow the {} bytes of data \
                             its header ({}) describes",
                            self.header.data_len(),
                            self.header
                        ),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            }
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(super) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `true` if the buffered stream starts with the gzip magic (without consuming it).
pub(crate) fn starts_with_gzip_magic(reader: &mut impl BufRead) -> std::io::Result<bool> {
    let buf = reader.fill_buf()?;
    Ok(buf.starts_with(&GZIP_MAGIC))
}

/// Reads a whole IDX file, gzip-compressed or not.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    IdxReader::open(path)?.read_all()
}

/// Reads a whole IDX file held in memory, gzip-compressed or not; `name` is
/// used in error messages. This is the fuzzing entry point.
pub fn read_idx_bytes(bytes: &[u8], name: impl Into<PathBuf>) -> Result<IdxArray> {
    IdxReader::from_bytes(bytes, name)?.read_all()
}
