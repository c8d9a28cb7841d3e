//! numpy `.npy` files: one array per file, read into an `f32` [`Tensor`] and
//! written from one. The CLI's inputs and outputs (`--input X.npy`,
//! `--output Y.npy`) go through here.
//!
//! numpy equivalent: `np.load(path)` and `np.save(path, a.astype('<f4'))`.
//!
//! # The format
//!
//! ```text
//! \x93NUMPY  major minor  header_len  header                          data
//! 6 bytes    1     1      u16 LE (1.0) a Python dict literal, padded    numel x itemsize bytes
//!                         u32 LE (2.0, 3.0)  with spaces and a final '\n'
//! ```
//!
//! The header reads `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`:
//! latin-1 text in versions 1.0 and 2.0, UTF-8 in 3.0. It is parsed by a small
//! parser that knows strings, integers, `True`, `False`, `None`, tuples and
//! lists, and nothing else: nothing is evaluated.
//!
//! # What is read
//!
//! - versions 1.0, 2.0 and 3.0;
//! - descrs `f2 f4 f8`, `i1 i2 i4 i8`, `u1 u2 u4 u8` and `b1`, little-endian
//!   (`<`) **or big-endian** (`>`, bytes swapped on load), converted to `f32`
//!   with [`crate::to_f32`] (`f8` and wide integers round to the nearest `f32`);
//! - `fortran_order: True` (what `np.asfortranarray` saves): the data is
//!   transposed into C order, so the tensor holds the same array;
//! - refused with a [`WeightsError::Format`] naming the descr: object arrays
//!   (`|O`, pickled Python objects), structured dtypes, strings, complex,
//!   datetimes and any other descr.
//!
//! Hostile bytes give a `Format` error, never a panic: every length in the
//! header is checked, with checked arithmetic, against the bytes present
//! before anything is allocated from it, and the data must fill the rest of
//! the file exactly.
//!
//! # What is written
//!
//! Always `<f4` in C order, format version 1.0 (2.0 only for a header past
//! 65535 bytes, as numpy does), the header padded so the data starts at a
//! multiple of 64 bytes. [`write()`] replaces the file atomically.
//!
//! ```
//! use std::path::Path;
//! use convnet_tensor::Tensor;
//! use convnet_weights::npy;
//!
//! let t = Tensor::arange(&[2, 3]);
//! let bytes = npy::to_bytes(&t);
//! assert_eq!(&bytes[..6], b"\x93NUMPY");
//! let header = npy::read_header(&bytes, Path::new("<memory>"))?;
//! assert_eq!(header.shape, [2, 3]);
//! assert_eq!(npy::from_bytes(&bytes, Path::new("<memory>"))?, t);
//! # Ok::<(), convnet_weights::WeightsError>(())
//! ```

use std::path::Path;

use convnet_tensor::Tensor;

use crate::dtype::{to_f32, DType};
use crate::error::{Result, WeightsError};
use crate::fsutil::write_atomic;

mod header;

use header::{parse_header, Encoding};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The most axes a header may give (numpy 2's `NPY_MAXDIMS`).
const MAX_DIMS: usize = 64;
/// The deepest nesting of tuples and lists the header parser follows.
const MAX_DEPTH: usize = 16;
/// Written files start their data at a multiple of this.
const ALIGN: usize = 64;

/// What the header of a `.npy` file says, known before any data is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`: `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// The descr as written in the header (`"<f4"`).
    pub descr: String,
    /// The element type of the data.
    pub dtype: DType,
    /// Whether multi-byte elements are stored big-endian (`>f4`).
    pub big_endian: bool,
    /// Whether the data is in Fortran order (first axis varies fastest).
    pub fortran_order: bool,
    /// The shape, outermost axis first; `[]` for a 0-d array.
    pub shape: Vec<usize>,
    /// Offset of the first data byte: magic, version, header length and header.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements; `None` if the product overflows `usize`
    /// (never for a header returned by [`read_header`]).
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Number of data bytes the shape and dtype need; `None` on overflow
    /// (never for a header returned by [`read_header`]).
    pub fn data_len(&self) -> Option<usize> {
        self.numel()?.checked_mul(self.dtype.size())
    }
}

/// Reads a `.npy` file into an `f32` tensor (any shape, including 0-d).
/// Only a regular file is read (a FIFO, a device or a directory is refused
/// before any read), and its shape must account for its size exactly.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = crate::fsutil::read_input(path)?;
    from_bytes(&bytes, path)
}

/// Parses the bytes of a `.npy` file into an `f32` tensor; `path` only names
/// the source in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Tensor> {
    let header = read_header(bytes, path)?;
    let err = |msg: String| WeightsError::format(path, msg);
    // read_header guarantees data_offset <= bytes.len() and that data_len fits.
    let data = &bytes[header.data_offset..];
    let need = header
        .data_len()
        .ok_or_else(|| err(format!("shape {} is too large", fmt_shape(&header.shape))))?;
    if data.len() != need {
        let what = if data.len() < need {
            "too little data (truncated file)"
        } else {
            "too much data (trailing bytes)"
        };
        return Err(err(format!(
            "{what}: shape {} of '{}' needs {need} bytes, the file has {} after the header",
            fmt_shape(&header.shape),
            header.descr,
            data.len()
        )));
    }
    let size = header.dtype.size();
    let values = if header.big_endian && size > 1 {
        let swapped: Vec<u8> = data
            .chunks_exact(size)
            .flat_map(|c| c.iter().rev().copied())
            .collect();
        to_f32(&swapped, header.dtype)
    } else {
        to_f32(data, header.dtype)
    };
    let values = if header.fortran_order {
        fortran_to_c(&values, &header.shape)
    } else {
        values
    };
    Tensor::from_vec(&header.shape, values).map_err(|e| err(e.to_string()))
}

/// Encodes a tensor as a little-endian `float32` `.npy` file (format version
/// 1.0, C order).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        fmt_shape(t.shape())
    );
    // Version 1.0 has a u16 header length; numpy moves to 2.0 past it.
    let major = if padded_len(10, dict.len()) - 10 <= usize::from(u16::MAX) {
        1
    } else {
        2
    };
    let mut out = encode_header(major, &dict);
    out.reserve(4 * t.len());
    for v in t.as_slice() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Magic, version `major`.0, header length and `dict` padded as numpy pads
/// (spaces, then `'\n'`, to a multiple of [`ALIGN`]).
fn encode_header(major: u8, dict: &str) -> Vec<u8> {
    let preamble = if major == 1 { 10 } else { 12 };
    let header_len = padded_len(preamble, dict.len()) - preamble;
    let mut out = Vec::with_capacity(preamble + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(preamble + header_len - 1, b' ');
    out.push(b'\n');
    out
}

/// Preamble + dict + at least the final `'\n'`, rounded up to [`ALIGN`].
fn padded_len(preamble: usize, dict_len: usize) -> usize {
    (preamble + dict_len + 1).div_ceil(ALIGN) * ALIGN
}

/// Writes a tensor as a `.npy` file ([`to_bytes`]) atomically: the bytes go
/// to a temporary file in the same folder, which is flushed to disk and then
/// renamed over `path`, so a crash leaves the old file or the new one, never
/// half of one.
///
/// ```
/// use convnet_tensor::Tensor;
/// use convnet_weights::npy;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("y.npy");
/// npy::write(&path, &Tensor::arange(&[1, 3, 4, 5]))?;
/// assert_eq!(npy::read(&path)?, Tensor::arange(&[1, 3, 4, 5]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    write_atomic(path, &to_bytes(t))
}

/// Reads the header of a `.npy` file without touching its data: version,
/// dtype, byte order, shape, Fortran order and where the data starts.
///
/// Checks everything the header alone can tell (magic, version, lengths,
/// syntax, keys, descr, shape and that its size in bytes fits `usize`), but
/// not that the data present matches the shape: [`from_bytes`] does.
pub fn read_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    let err = |msg: String| WeightsError::format(path, msg);
    let found = &bytes[..bytes.len().min(MAGIC.len())];
    if found != &MAGIC[..found.len()] {
        return Err(err(format!(
            "not a .npy file: bad magic {}, expected \\x93NUMPY",
            escape_bytes(found)
        )));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => {
            return Err(err(format!(
                "truncated header: the file ends after {} bytes, inside the magic and version",
                bytes.len()
            )))
        }
    };
    let len_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            )))
        }
    };
    let start = 8 + len_size;
    let header_len = match bytes.get(8..start) {
        Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => {
            return Err(err(format!(
                "truncated header: the file ends after {} bytes, inside the header length",
                bytes.len()
            )))
        }
    };
    let end = start.saturating_add(header_len);
    let text = bytes.get(start..end).ok_or_else(|| {
        err(format!(
            "truncated header: header length {header_len} goes past the end of the file \
             ({} bytes after the header length)",
            bytes.len() - start
        ))
    })?;
    let encoding = if major == 3 {
        if let Err(e) = std::str::from_utf8(text) {
            return Err(err(format!(
                "header of a version 3.0 file is not UTF-8: {e}"
            )));
        }
        Encoding::Utf8
    } else {
        Encoding::Latin1
    };
    let header = parse_header(text, encoding).map_err(|msg| err(format!("header: {msg}")))?;
    Ok(NpyHeader {
        version: (major, minor),
        data_offset: end,
        ..header
    })
}

/// Re-lays Fortran-order data of `shape` in C order.
///
/// In Fortran order the element `(i0, i1, .., ik)` sits at
/// `i0 + d0 * (i1 + d1 * (i2 + ..))`: the first axis moves fastest. The loop
/// walks the C-order indices (last axis fastest) and keeps the Fortran
/// offset up to date with the Fortran strides.
fn fortran_to_c(data: &[f32], shape: &[usize]) -> Vec<f32> {
    if data.is_empty() || shape.len() < 2 {
        return data.to_vec();
    }
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1;
    for &d in shape {
        strides.push(stride);
        stride *= d;
    }
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0;
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..data.len() {
        out.push(data[offset]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            offset -= index[axis] * strides[axis];
            index[axis] = 0;
        }
    }
    out
}

/// A shape as Python prints a tuple: `()`, `(3,)`, `(2, 3)`.
fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Bytes as a quoted string with non-printable ones escaped.
fn escape_bytes(bytes: &[u8]) -> String {
    format!("'{}'", bytes.escape_ascii())
}

#[cfg(test)]
mod tests;
