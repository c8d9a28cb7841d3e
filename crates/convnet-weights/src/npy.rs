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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use convnet_tensor::Tensor;

use crate::dtype::{to_f32, DType};
use crate::error::{Result, WeightsError};

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

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        WeightsError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (tmp_path, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| WeightsError::io(&tmp_path, e));
    drop(file);
    let renamed =
        written.and_then(|()| fs::rename(&tmp_path, path).map_err(|e| WeightsError::io(path, e)));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp_path);
        return renamed;
    }
    // Make the rename itself durable. Some file systems refuse to sync a
    // folder; the file is complete either way, so that is not an error.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new file `.NAME.PID.N.tmp` in `dir` that did not exist before.
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // A leftover of a crashed process that had the same id.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(WeightsError::io(tmp, e)),
        }
    }
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

/// How the header's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Versions 1.0 and 2.0.
    Latin1,
    /// Version 3.0.
    Utf8,
}

/// The values a header may hold: a subset of Python literals.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
}

impl Value {
    /// The value as Python prints it, for messages.
    fn repr(&self) -> String {
        let join = |items: &[Value]| items.iter().map(Value::repr).collect::<Vec<_>>().join(", ");
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(i) => i.to_string(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::None => "None".into(),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            Value::Tuple(items) => format!("({})", join(items)),
            Value::List(items) => format!("[{}]", join(items)),
        }
    }
}

/// Turns the header dict into an [`NpyHeader`] (version and data offset
/// left for the caller to fill).
fn parse_header(text: &[u8], encoding: Encoding) -> Result<NpyHeader, String> {
    let mut parser = Parser {
        text,
        pos: 0,
        encoding,
    };
    let entries = parser.dict()?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(format!(
            "unexpected {} after the dict, at byte {}",
            escape_bytes(&text[parser.pos..(parser.pos + 1)]),
            parser.pos
        ));
    }

    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in entries {
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran_order,
            "shape" => &mut shape,
            _ => {
                return Err(format!(
                    "unexpected key '{key}' (the header has exactly 'descr', 'fortran_order' \
                     and 'shape')"
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("the key '{key}' appears twice"));
        }
    }
    let missing = |key: &str| format!("the key '{key}' is missing");
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran_order = fortran_order.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;

    let descr = match descr {
        Value::Str(s) => s,
        Value::List(_) => {
            return Err(format!(
                "structured dtype {} is refused (only plain numeric arrays are read)",
                descr.repr()
            ))
        }
        other => return Err(format!("descr {} is not a dtype string", other.repr())),
    };
    let (dtype, big_endian) = parse_descr(&descr)?;
    let fortran_order = match fortran_order {
        Value::Bool(b) => b,
        other => {
            return Err(format!(
                "fortran_order {} is not True or False",
                other.repr()
            ))
        }
    };
    let shape = parse_shape(&shape)?;
    let data_len = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .filter(|&n| n <= isize::MAX as usize);
    if data_len.is_none() {
        return Err(format!(
            "shape {} of '{descr}' overflows: its size in bytes does not fit in memory",
            fmt_shape(&shape)
        ));
    }
    Ok(NpyHeader {
        version: (0, 0),
        descr,
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset: 0,
    })
}

/// The element type and byte order of a descr such as `<f4`.
fn parse_descr(descr: &str) -> Result<(DType, bool), String> {
    let mut chars = descr.chars();
    let order = chars.next();
    let code = chars.as_str();
    if code.starts_with('O') {
        return Err(format!(
            "object array (descr '{descr}') is refused: it holds pickled Python objects"
        ));
    }
    let dtype = match code {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        _ => {
            return Err(format!(
                "unsupported dtype descr '{descr}' (read: f2 f4 f8, i1 i2 i4 i8, u1 u2 u4 u8, b1)"
            ))
        }
    };
    match order {
        Some('<') => Ok((dtype, false)),
        Some('>') => Ok((dtype, true)),
        Some('|' | '=') if dtype.size() == 1 => Ok((dtype, false)),
        _ => Err(format!(
            "dtype descr '{descr}' gives no byte order: expected '<' (little-endian) or '>' \
             (big-endian)"
        )),
    }
}

/// The shape tuple as dimensions.
fn parse_shape(shape: &Value) -> Result<Vec<usize>, String> {
    let Value::Tuple(dims) = shape else {
        return Err(format!("shape {} is not a tuple", shape.repr()));
    };
    if dims.len() > MAX_DIMS {
        return Err(format!(
            "shape has {} axes, more than the {MAX_DIMS} numpy allows",
            dims.len()
        ));
    }
    dims.iter()
        .map(|d| match d {
            Value::Int(i) => usize::try_from(*i)
                .map_err(|_| format!("shape {} has a negative dimension {i}", shape.repr())),
            other => Err(format!(
                "shape {} has a dimension {} that is not an integer",
                shape.repr(),
                other.repr()
            )),
        })
        .collect()
}

/// A recursive-descent parser of the Python literals a header holds.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    encoding: Encoding,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// What is at the current position, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the header".into(),
            Some(_) => format!(
                "{} at byte {}",
                escape_bytes(&self.text[self.pos..(self.pos + 1)]),
                self.pos
            ),
        }
    }

    /// `{key: value, ...}` with string keys, in order.
    fn dict(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.skip_whitespace();
        if self.peek() != Some(b'{') {
            return Err(format!("expected a dict '{{', found {}", self.found()));
        }
        self.pos += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(entries);
            }
            let key = match self.value(1)? {
                Value::Str(s) => s,
                other => return Err(format!("dict key {} is not a string", other.repr())),
            };
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(format!(
                    "expected ':' after '{key}', found {}",
                    self.found()
                ));
            }
            self.pos += 1;
            let value = self.value(1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '}}' in the dict, found {}",
                        self.found()
                    ))
                }
            }
        }
    }

    /// One literal; `depth` counts the enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.skip_whitespace();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'(') => self.sequence(b')', depth),
            Some(b'[') => self.sequence(b']', depth),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(c) if c.is_ascii_alphabetic() => self.name(),
            _ => Err(format!("expected a value, found {}", self.found())),
        }
    }

    /// A quoted string; backslash escapes keep the escaped character.
    fn string(&mut self, quote: u8) -> Result<Value, String> {
        let start = self.pos;
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return Err(format!("unterminated string starting at byte {start}"))
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.text.get(self.pos + 1).copied();
                    let Some(c) = escaped else {
                        return Err(format!("unterminated string starting at byte {start}"));
                    };
                    bytes.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    bytes.push(c);
                    self.pos += 1;
                }
            }
        }
        let s = match self.encoding {
            Encoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
            Encoding::Utf8 => String::from_utf8(bytes)
                .map_err(|_| format!("string at byte {start} is not UTF-8"))?,
        };
        Ok(Value::Str(s))
    }

    /// `(a, b)`, `(a,)`, `()` or `[a, b]`. A parenthesised value without a
    /// comma is that value, as in Python.
    fn sequence(&mut self, close: u8, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}', found {}",
                        char::from(close),
                        self.found()
                    ))
                }
            }
        }
        Ok(match close {
            b']' => Value::List(items),
            _ if items.len() == 1 && !comma => items.pop().expect("one item"),
            _ => Value::Tuple(items),
        })
    }

    /// A decimal integer, with Python 2's `L` suffix accepted.
    fn integer(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
                .ok_or_else(|| format!("integer at byte {start} is too large"))?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(format!("expected digits after '-', found {}", self.found()));
        }
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        Ok(Value::Int(if negative { -value } else { value }))
    }

    /// `True`, `False` or `None`.
    fn name(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match &self.text[start..self.pos] {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::None),
            other => Err(format!(
                "unknown name '{}' at byte {start} (only True, False and None are read)",
                String::from_utf8_lossy(other)
            )),
        }
    }
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
mod tests {
    use super::*;
    use convnet_tensor::Rng;

    const MEM: &str = "<memory>";

    /// A `.npy` file of the given version from a dict literal and raw data,
    /// padded as numpy pads.
    fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = encode_header(major, dict);
        out.extend_from_slice(data);
        out
    }

    /// A header dict; `fortran` is the literal text of its value.
    fn dict(descr: &str, fortran: &str, shape: &str) -> String {
        format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}")
    }

    fn flat<const N: usize, const M: usize>(arrays: [[u8; N]; M]) -> Vec<u8> {
        arrays.concat()
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn parse(bytes: &[u8]) -> Result<Tensor> {
        from_bytes(bytes, Path::new(MEM))
    }

    /// The message of the `Format` error `bytes` give.
    fn format_error(bytes: &[u8]) -> String {
        match parse(bytes) {
            Err(WeightsError::Format { path, msg }) => {
                assert_eq!(path, Path::new(MEM));
                msg
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_every_rank_including_0d_and_empty() {
        for shape in [&[][..], &[0], &[2, 3], &[1, 3, 4, 5]] {
            let t = Tensor::from_vec(
                shape,
                (0..convnet_tensor::numel(shape))
                    .map(|i| i as f32 * 0.5 - 3.0)
                    .collect(),
            )
            .unwrap();
            let bytes = to_bytes(&t);
            let header = read_header(&bytes, Path::new(MEM)).unwrap();
            assert_eq!(header.shape, shape);
            assert_eq!(header.data_offset % ALIGN, 0);
            assert_eq!(bytes.len(), header.data_offset + 4 * t.len());
            assert_eq!(parse(&bytes).unwrap(), t, "shape {shape:?}");
        }
    }

    #[test]
    fn writes_the_header_numpy_writes() {
        let bytes = to_bytes(&Tensor::arange(&[2, 3]));
        assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00\x76\x00");
        let text = std::str::from_utf8(&bytes[10..128]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(&bytes[128..136], &f32_bytes(&[0.0, 1.0]));
        let header = read_header(&to_bytes(&Tensor::scalar(1.0)), Path::new(MEM)).unwrap();
        assert_eq!(header.version, (1, 0));
        assert_eq!(header.descr, "<f4");
        assert_eq!(header.shape, Vec::<usize>::new());
        assert!(!header.fortran_order && !header.big_endian);
        let bytes = to_bytes(&Tensor::zeros(&[5]));
        assert!(
            bytes[10..].starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }")
        );
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write(&path, &Tensor::arange(&[4])).unwrap();
        write(&path, &Tensor::arange(&[2, 3])).unwrap();
        assert_eq!(read(&path).unwrap(), Tensor::arange(&[2, 3]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.npy"]);
        let missing = dir.path().join("nope").join("y.npy");
        assert!(matches!(
            write(&missing, &Tensor::scalar(0.0)),
            Err(WeightsError::Io { .. })
        ));
        assert!(matches!(read(&missing), Err(WeightsError::Io { .. })));
    }

    #[test]
    fn reads_versions_2_and_3() {
        let data = f32_bytes(&[1.0, 2.0]);
        for major in [2, 3] {
            let bytes = npy(major, &dict("'<f4'", "False", "(2,)"), &data);
            let header = read_header(&bytes, Path::new(MEM)).unwrap();
            assert_eq!(header.version, (major, 0));
            assert_eq!(header.data_offset % ALIGN, 0);
            assert_eq!(parse(&bytes).unwrap().as_slice(), [1.0, 2.0]);
        }
        // Version 3.0 allows UTF-8 in the header (here in a structured field name).
        let bytes = npy(3, &dict("[('é', '<f4')]", "False", "(1,)"), &[0; 4]);
        assert!(format_error(&bytes).contains("structured dtype [('é', '<f4')]"));
    }

    #[test]
    fn converts_every_element_type() {
        let cases: [(&str, Vec<u8>, [f32; 3]); 11] = [
            (
                "<f8",
                flat([1.5f64, -2.0, 0.25].map(f64::to_le_bytes)),
                [1.5, -2.0, 0.25],
            ),
            (
                "<f2",
                flat([0x3c00u16, 0xc000, 0x3800].map(u16::to_le_bytes)),
                [1.0, -2.0, 0.5],
            ),
            ("|u1", vec![0, 7, 255], [0.0, 7.0, 255.0]),
            ("|i1", vec![0, 7, 255], [0.0, 7.0, -1.0]),
            (
                "<i2",
                flat([-300i16, 2, 3].map(i16::to_le_bytes)),
                [-300.0, 2.0, 3.0],
            ),
            (
                "<i4",
                flat([-70000i32, 2, 3].map(i32::to_le_bytes)),
                [-70000.0, 2.0, 3.0],
            ),
            (
                "<i8",
                flat([-5i64, 1 << 40, 3].map(i64::to_le_bytes)),
                [-5.0, 2f32.powi(40), 3.0],
            ),
            (
                "<u2",
                flat([65535u16, 2, 3].map(u16::to_le_bytes)),
                [65535.0, 2.0, 3.0],
            ),
            ("|b1", vec![1, 0, 1], [1.0, 0.0, 1.0]),
            (
                ">f4",
                flat([1.5f32, -2.0, 3.0].map(f32::to_be_bytes)),
                [1.5, -2.0, 3.0],
            ),
            (
                ">i8",
                flat([-5i64, 2, 3].map(i64::to_be_bytes)),
                [-5.0, 2.0, 3.0],
            ),
        ];
        for (descr, data, expected) in cases {
            let bytes = npy(1, &dict(&format!("'{descr}'"), "False", "(3,)"), &data);
            assert_eq!(parse(&bytes).unwrap().as_slice(), expected, "{descr}");
        }
    }

    #[test]
    fn fortran_order_is_transposed_to_c_order() {
        // np.asfortranarray(np.arange(6).reshape(2, 3)) stores 0 3 1 4 2 5.
        let bytes = npy(
            1,
            &dict("'<f4'", "True", "(2, 3)"),
            &f32_bytes(&[0., 3., 1., 4., 2., 5.]),
        );
        assert_eq!(parse(&bytes).unwrap(), Tensor::arange(&[2, 3]));
        // Three axes: element (i, j, k) at i + 2 j + 6 k.
        let shape = [2, 3, 4];
        let mut fortran = vec![0.0; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    fortran[i + 2 * j + 6 * k] = (i * 12 + j * 4 + k) as f32;
                }
            }
        }
        let bytes = npy(1, &dict("'<f4'", "True", "(2, 3, 4)"), &f32_bytes(&fortran));
        assert_eq!(parse(&bytes).unwrap(), Tensor::arange(&shape));
        // Empty and 1-d arrays are the same in both orders.
        let bytes = npy(1, &dict("'<f4'", "True", "(3, 0)"), &[]);
        assert_eq!(parse(&bytes).unwrap().shape(), [3, 0]);
    }

    #[test]
    fn header_syntax_variants_numpy_may_write() {
        let data = f32_bytes(&[1.0, 2.0]);
        for text in [
            "{'descr':'<f4','fortran_order':False,'shape':(2,)}",
            "{\"descr\": \"<f4\", \"shape\": (2L,), \"fortran_order\": False}",
            "  { 'shape' : ( 1 , 2 ) , 'descr' : '<f4' , 'fortran_order' : False , }  ",
        ] {
            let t = parse(&npy(1, text, &data)).unwrap();
            assert_eq!(t.as_slice(), [1.0, 2.0], "{text}");
        }
    }

    /// Asserts that each file gives a `Format` error containing its text.
    fn assert_errors(cases: &[(Vec<u8>, &str)]) {
        for (bytes, expected) in cases {
            let msg = format_error(bytes);
            assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
        }
    }

    #[test]
    fn preamble_errors_name_what_is_wrong() {
        let two = f32_bytes(&[1.0, 2.0]);
        let valid = npy(1, &dict("'<f4'", "False", "(2,)"), &two);
        assert_eq!(parse(&valid).unwrap().as_slice(), [1.0, 2.0]);
        let mut not_utf8 = npy(3, &dict("'<f4'", "False", "(2,)"), &two);
        not_utf8[14] = 0xff;
        assert_errors(&[
            (
                b"PK\x03\x04 not numpy".to_vec(),
                "bad magic 'PK\\x03\\x04 n'",
            ),
            (vec![], "truncated header: the file ends after 0 bytes"),
            (b"\x93NUMPY\x01".to_vec(), "truncated header"),
            (
                b"\x93NUMPY\x01\x00\x10".to_vec(),
                "inside the header length",
            ),
            (
                b"\x93NUMPY\x04\x00\x10\x00".to_vec(),
                "unsupported .npy format version 4.0",
            ),
            (valid[..40].to_vec(), "header length 118 goes past the end"),
            (
                b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(),
                "4294967295 goes past the end",
            ),
            (not_utf8, "header of a version 3.0 file is not UTF-8"),
        ]);
    }

    #[test]
    fn header_dict_errors_name_what_is_wrong() {
        let two = f32_bytes(&[1.0, 2.0]);
        let good = dict("'<f4'", "False", "(2,)");
        let cases = [
            ("['descr']".to_string(), "expected a dict '{', found '['"),
            (
                "{'descr': '<f4', 'fortran_order': False}".into(),
                "'shape' is missing",
            ),
            (good.replace('}', "'x': 1}"), "unexpected key 'x'"),
            (good.replace("'shape'", "'descr'"), "'descr' appears twice"),
            (
                good.replace("'<f4'", "(2,)"),
                "descr (2,) is not a dtype string",
            ),
            ("{'descr': '<f4".into(), "unterminated string"),
            (format!("{good} x"), "unexpected 'x' after the dict"),
            (good.replace(": ", " "), "expected ':' after 'descr'"),
            (good.replace("'shape'", "1"), "dict key 1 is not a string"),
        ];
        assert_errors(&cases.map(|(text, expected)| (npy(1, &text, &two), expected)));
    }

    #[test]
    fn descr_and_shape_errors_name_what_is_wrong() {
        let two = f32_bytes(&[1.0, 2.0]);
        let deep = format!("{}2{}", "(".repeat(20), ")".repeat(20));
        let many = format!("({})", "1, ".repeat(65));
        let cases = [
            ("'<f4'", "False", "(2,) x", "expected ',' or '}' in the dict, found 'x'"),
            ("'<f4'", "False", "(2.0,)", "expected ',' or ')', found '.'"),
            ("'<f4'", "False", "(-2,)", "negative dimension -2"),
            ("'<f4'", "False", "(-x,)", "expected digits after '-'"),
            ("'<f4'", "False", "('2',)", "dimension '2' that is not an integer"),
            ("'<f4'", "False", "[2]", "shape [2] is not a tuple"),
            ("'<f4'", "False", "(99999999999999999999,)", "too large"),
            ("'<f4'", "False", &many, "65 axes"),
            ("'<f4'", "False", &deep, "nested deeper than 16"),
            ("'<f4'", "0", "(2,)", "fortran_order 0 is not True or False"),
            ("'<f4'", "Flase", "(2,)", "unknown name 'Flase'"),
            ("'|O'", "False", "(2,)", "object array (descr '|O') is refused"),
            ("[('x', '<f4'), ('y', '<i4')]", "False", "(1,)", "structured dtype [('x', '<f4'), ('y', '<i4')]"),
            ("'<c8'", "False", "(1,)", "unsupported dtype descr '<c8'"),
            ("'<U3'", "False", "(1,)", "unsupported dtype descr '<U3'"),
            ("'|f4'", "False", "(2,)", "'|f4' gives no byte order"),
            ("None", "False", "(2,)", "descr None is not a dtype string"),
            ("'<f4'", "False", "(4294967296, 4294967296)", "overflows"),
            ("'<f8'", "False", "(1152921504606846976,)", "overflows"),
            ("'<f4'", "False", "(1000000000, 1000)", "too little data"),
            ("'<f4'", "False", "(3,)", "too little data (truncated file): shape (3,) of '<f4' needs 12 bytes, the file has 8"),
            ("'<f4'", "False", "(1,)", "too much data"),
            ("'<f4'", "False", "()", "too much data"),
        ];
        assert_errors(&cases.map(|(descr, fortran, shape, expected)| {
            (npy(1, &dict(descr, fortran, shape), &two), expected)
        }));
    }

    #[test]
    fn no_prefix_or_mutation_panics() {
        let files = [
            to_bytes(&Tensor::arange(&[2, 3])),
            npy(1, &dict("'>f8'", "True", "(2, 2)"), &[7; 32]),
            npy(2, &dict("'|b1'", "False", "(3,)"), &[0, 1, 2]),
            npy(3, &dict("'<f2'", "False", "()"), &[0, 0x3c]),
        ];
        for file in &files {
            assert!(parse(file).is_ok());
            let data_offset = read_header(file, Path::new(MEM)).unwrap().data_offset;
            for n in 0..file.len() {
                assert!(parse(&file[..n]).is_err(), "prefix of {n} bytes");
                let header = read_header(&file[..n], Path::new(MEM));
                assert_eq!(
                    header.is_ok(),
                    n >= data_offset,
                    "header of a {n}-byte prefix"
                );
            }
        }
        let mut rng = Rng::seed_from(7);
        let interesting = [0u8, 1, b'(', b')', b',', b'\'', b'9', b'-', 0x7f, 0xff];
        for round in 0..400 {
            let mut bytes = files[round % files.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next_u64() as u8,
                    1 => bytes[at] = interesting[rng.below(interesting.len())],
                    2 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, interesting[rng.below(interesting.len())]),
                }
            }
            if let Ok(t) = parse(&bytes) {
                assert_eq!(t.len(), t.shape().iter().product::<usize>());
            }
        }
    }
}
