//! The IDX file format of MNIST and Fashion-MNIST, read and written in full
//! or as a stream, plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 TT DD` (TT the element type
//! code, DD the number of dimensions), then DD big-endian `u32` sizes, then the
//! elements in row-major order, big-endian:
//!
//! | code | element |
//! |------|---------|
//! | 0x08 | `u8`  |
//! | 0x09 | `i8`  |
//! | 0x0B | `i16` |
//! | 0x0C | `i32` |
//! | 0x0D | `f32` |
//! | 0x0E | `f64` |
//!
//! The reader never trusts a header: the byte count the dimensions imply is
//! computed with overflow checks and compared with the file's length (plain
//! files) or with the most a gzip file of that size can hold, before anything
//! is allocated; memory then grows with the data actually read. A file with
//! fewer or more bytes than its header describes is an error, as is a gzip
//! stream that is truncated or fails its CRC.
//!
//! ```
//! use convnet_datasets::idx::{read_idx_bytes, write_idx_to, IdxArray};
//!
//! let array = IdxArray::from_vec(&[2, 3], vec![1i16, -2, 3, -4, 5, -6])?;
//! let bytes = write_idx_to(Vec::new(), &array, "example.idx")?;
//! assert_eq!(&bytes[..4], &[0, 0, 0x0B, 2]);
//! let back = read_idx_bytes(&bytes, "example.idx")?;
//! assert_eq!(back, array);
//! assert_eq!(back.as_slice::<i16>(), Some(&[1i16, -2, 3, -4, 5, -6][..]));
//! # Ok::<(), convnet_datasets::DatasetError>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{DatasetError, Result};

/// The two first bytes of every gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most bytes one byte of deflate data can expand to (the format's limit
/// is about 1032:1); used to bound what a gzip file's header may claim.
const MAX_GZIP_RATIO: u64 = 1032;

/// Upper bound of a single up-front reservation when the exact size is not
/// known from the file itself (gzip or an unsized stream): memory beyond it
/// grows with the data actually decompressed.
const MAX_UNVERIFIED_RESERVATION: u64 = 8 << 20;

/// Element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// Unsigned byte (code 0x08): MNIST pixels and labels.
    U8,
    /// Signed byte (code 0x09).
    I8,
    /// Big-endian `i16` (code 0x0B).
    I16,
    /// Big-endian `i32` (code 0x0C).
    I32,
    /// Big-endian IEEE `f32` (code 0x0D).
    F32,
    /// Big-endian IEEE `f64` (code 0x0E).
    F64,
}

impl IdxType {
    /// Every element type, in code order.
    pub const ALL: [IdxType; 6] = [
        IdxType::U8,
        IdxType::I8,
        IdxType::I16,
        IdxType::I32,
        IdxType::F32,
        IdxType::F64,
    ];

    /// The type code stored in the magic number's third byte.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type of a code, `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<IdxType> {
        IdxType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Rust name of the element type (`"u8"`, `"f32"`...).
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }
}

impl fmt::Display for IdxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A Rust type that is an IDX element type: `u8`, `i8`, `i16`, `i32`, `f32`, `f64`.
pub trait IdxElement:
    Copy + Default + PartialEq + fmt::Debug + Send + Sync + sealed::Sealed
{
    /// The IDX type of `Self`.
    const TYPE: IdxType;
    /// Decodes `out.len()` big-endian elements from `bytes` (`bytes.len()` is
    /// exactly `out.len() * size`).
    fn decode_be(bytes: &[u8], out: &mut [Self]);
    /// Appends `values` to `out`, big-endian.
    fn encode_be(values: &[Self], out: &mut Vec<u8>);
    /// Wraps a vector into [`IdxData`].
    fn into_data(values: Vec<Self>) -> IdxData;
    /// The elements of `data` if they are of type `Self`.
    fn slice_of(data: &IdxData) -> Option<&[Self]>;
}

macro_rules! idx_element {
    ($t:ty, $variant:ident, $read:ident, $write:ident) => {
        impl IdxElement for $t {
            const TYPE: IdxType = IdxType::$variant;
            fn decode_be(bytes: &[u8], out: &mut [Self]) {
                BigEndian::$read(bytes, out);
            }
            fn encode_be(values: &[Self], out: &mut Vec<u8>) {
                let start = out.len();
                out.resize(start + values.len() * std::mem::size_of::<$t>(), 0);
                BigEndian::$write(values, &mut out[start..]);
            }
            fn into_data(values: Vec<Self>) -> IdxData {
                IdxData::$variant(values)
            }
            fn slice_of(data: &IdxData) -> Option<&[Self]> {
                match data {
                    IdxData::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

impl IdxElement for u8 {
    const TYPE: IdxType = IdxType::U8;
    fn decode_be(bytes: &[u8], out: &mut [Self]) {
        out.copy_from_slice(bytes);
    }
    fn encode_be(values: &[Self], out: &mut Vec<u8>) {
        out.extend_from_slice(values);
    }
    fn into_data(values: Vec<Self>) -> IdxData {
        IdxData::U8(values)
    }
    fn slice_of(data: &IdxData) -> Option<&[Self]> {
        match data {
            IdxData::U8(v) => Some(v),
            _ => None,
        }
    }
}

impl IdxElement for i8 {
    const TYPE: IdxType = IdxType::I8;
    fn decode_be(bytes: &[u8], out: &mut [Self]) {
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = b as i8;
        }
    }
    fn encode_be(values: &[Self], out: &mut Vec<u8>) {
        out.extend(values.iter().map(|&v| v as u8));
    }
    fn into_data(values: Vec<Self>) -> IdxData {
        IdxData::I8(values)
    }
    fn slice_of(data: &IdxData) -> Option<&[Self]> {
        match data {
            IdxData::I8(v) => Some(v),
            _ => None,
        }
    }
}

idx_element!(i16, I16, read_i16_into, write_i16_into);
idx_element!(i32, I32, read_i32_into, write_i32_into);
idx_element!(f32, F32, read_f32_into, write_f32_into);
idx_element!(f64, F64, read_f64_into, write_f64_into);

/// The elements of an IDX array, one variant per element type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type.
    pub fn elem_type(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes big-endian `bytes` (a whole number of elements) of type `elem`.
    fn decode(elem: IdxType, bytes: Vec<u8>) -> IdxData {
        fn typed<T: IdxElement>(bytes: &[u8]) -> IdxData {
            let mut out = vec![T::default(); bytes.len() / T::TYPE.size()];
            T::decode_be(bytes, &mut out);
            T::into_data(out)
        }
        match elem {
            IdxType::U8 => IdxData::U8(bytes),
            IdxType::I8 => typed::<i8>(&bytes),
            IdxType::I16 => typed::<i16>(&bytes),
            IdxType::I32 => typed::<i32>(&bytes),
            IdxType::F32 => typed::<f32>(&bytes),
            IdxType::F64 => typed::<f64>(&bytes),
        }
    }
}

/// An IDX file's header: element type and dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// Element type.
    pub elem_type: IdxType,
    /// Sizes of the dimensions, outermost first (`[60000, 28, 28]`).
    pub dims: Vec<usize>,
}

impl IdxHeader {
    /// Number of elements the dimensions describe (1 for zero dimensions).
    /// Headers produced by the reader never overflow.
    pub fn num_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Size of the header in bytes: 4 + 4 per dimension.
    pub fn header_len(&self) -> u64 {
        4 + 4 * self.dims.len() as u64
    }

    /// Size of the data in bytes.
    pub fn data_len(&self) -> u64 {
        self.num_elements() as u64 * self.elem_type.size() as u64
    }

    /// The header as it is stored: the magic number, then the dimensions as
    /// big-endian `u32` (each fits: the reader and writer check it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.header_len() as usize);
        bytes.extend_from_slice(&[0, 0, self.elem_type.code(), self.dims.len() as u8]);
        for &d in &self.dims {
            bytes.extend_from_slice(&(d as u32).to_be_bytes());
        }
        bytes
    }
}

impl fmt::Display for IdxHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.elem_type, self.dims)
    }
}

/// A whole IDX array in memory: dimensions and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// An array of `dims` holding `data`; errors if the element count differs
    /// from the product of the dimensions or a dimension exceeds `u32::MAX`.
    pub fn new(dims: &[usize], data: IdxData) -> Result<Self> {
        let name = Path::new("<IdxArray>");
        let count = checked_count(name, dims)?;
        if count != data.len() as u64 {
            return Err(DatasetError::idx(
                name,
                format!(
                    "dimensions {dims:?} describe {count} elements, the data has {}",
                    data.len()
                ),
            ));
        }
        Ok(IdxArray {
            dims: dims.to_vec(),
            data,
        })
    }

    /// An array of `dims` holding `values`.
    pub fn from_vec<T: IdxElement>(dims: &[usize], values: Vec<T>) -> Result<Self> {
        IdxArray::new(dims, T::into_data(values))
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// Takes the elements.
    pub fn into_data(self) -> IdxData {
        self.data
    }

    /// The element type.
    pub fn elem_type(&self) -> IdxType {
        self.data.elem_type()
    }

    /// The header that describes this array.
    pub fn header(&self) -> IdxHeader {
        IdxHeader {
            elem_type: self.elem_type(),
            dims: self.dims.clone(),
        }
    }

    /// The elements as a slice of `T`, `None` if they are of another type.
    pub fn as_slice<T: IdxElement>(&self) -> Option<&[T]> {
        T::slice_of(&self.data)
    }
}

/// Number of elements of `dims`, checked against overflow and the format's
/// `u32` dimension sizes.
fn checked_count(path: &Path, dims: &[usize]) -> Result<u64> {
    let mut count: u64 = 1;
    for &d in dims {
        if d > u32::MAX as usize {
            return Err(DatasetError::idx(
                path,
                format!("dimension {d} does not fit the format's u32 sizes"),
            ));
        }
        count = count.checked_mul(d as u64).ok_or_else(|| {
            DatasetError::idx(
                path,
                format!("dimensions {dims:?} overflow: the product does not fit in 64 bits"),
            )
        })?;
    }
    Ok(count)
}

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
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

fn read_header(reader: &mut impl Read, path: &Path, gzip: bool) -> Result<IdxHeader> {
    let map_err = |e: std::io::Error| {
        if gzip {
            DatasetError::Gzip {
                path: path.to_path_buf(),
                source: e,
            }
        } else {
            DatasetError::io(path, "reading", e)
        }
    };
    let mut magic = [0u8; 4];
    let got = read_full(reader, &mut magic).map_err(map_err)?;
    if got < 4 {
        return Err(DatasetError::idx(
            path,
            format!("the file is truncated: {got} bytes, shorter than the 4-byte magic number"),
        ));
    }
    if magic[0] != 0 || magic[1] != 0 {
        let extra = if magic[..2] == GZIP_MAGIC {
            " (this is gzip data: decompress it first)"
        } else {
            ""
        };
        return Err(DatasetError::idx(
            path,
            format!(
                "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with \
                 00 00, a type code and the number of dimensions{extra}",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let elem_type = IdxType::from_code(magic[2]).ok_or_else(|| {
        DatasetError::idx(
            path,
            format!(
                "unknown element type code 0x{:02x}: expected 0x08 (u8), 0x09 (i8), 0x0B (i16), \
                 0x0C (i32), 0x0D (f32) or 0x0E (f64)",
                magic[2]
            ),
        )
    })?;
    let ndim = magic[3] as usize;
    let mut raw = vec![0u8; 4 * ndim];
    let got = read_full(reader, &mut raw).map_err(map_err)?;
    if got < raw.len() {
        return Err(DatasetError::idx(
            path,
            format!(
                "the file is truncated inside its header: {ndim} dimensions need {} bytes, \
                 only {got} follow the magic number",
                raw.len()
            ),
        ));
    }
    let dims: Vec<usize> = raw
        .chunks_exact(4)
        .map(|c| BigEndian::read_u32(c) as usize)
        .collect();
    let count = checked_count(path, &dims)?;
    count
        .checked_mul(elem_type.size() as u64)
        .filter(|&b| usize::try_from(b).is_ok())
        .ok_or_else(|| {
            DatasetError::idx(
                path,
                format!("dimensions {dims:?} of {elem_type} describe more bytes than memory can address"),
            )
        })?;
    Ok(IdxHeader { elem_type, dims })
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

/// A streaming IDX writer: writes the header, then elements in any number of
/// calls, and checks in [`IdxWriter::finish`] that exactly the announced
/// number of elements was written.
///
/// ```
/// use convnet_datasets::idx::{read_idx_bytes, IdxType, IdxWriter};
///
/// let mut writer = IdxWriter::new(Vec::new(), "labels", IdxType::U8, &[5])?;
/// writer.write(&[3u8, 1])?;
/// writer.write(&[4u8, 1, 5])?;
/// let bytes = writer.finish()?;
/// assert_eq!(read_idx_bytes(&bytes, "labels")?.as_slice::<u8>(), Some(&[3u8, 1, 4, 1, 5][..]));
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
pub struct IdxWriter<W: Write> {
    inner: W,
    path: PathBuf,
    header: IdxHeader,
    remaining: u64,
    scratch: Vec<u8>,
}

impl<W: Write> fmt::Debug for IdxWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxWriter")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<W: Write> IdxWriter<W> {
    /// Writes the header of an array of `elem_type` and `dims` to `inner`;
    /// `name` is used in error messages.
    pub fn new(
        mut inner: W,
        name: impl Into<PathBuf>,
        elem_type: IdxType,
        dims: &[usize],
    ) -> Result<Self> {
        let path = name.into();
        if dims.len() > u8::MAX as usize {
            return Err(DatasetError::idx(
                &path,
                format!("{} dimensions: the format allows at most 255", dims.len()),
            ));
        }
        let count = checked_count(&path, dims)?;
        let mut header = Vec::with_capacity(4 + 4 * dims.len());
        header.extend_from_slice(&[0, 0, elem_type.code(), dims.len() as u8]);
        for &d in dims {
            header.extend_from_slice(&(d as u32).to_be_bytes());
        }
        inner
            .write_all(&header)
            .map_err(|e| DatasetError::io(&path, "writing", e))?;
        Ok(IdxWriter {
            inner,
            path,
            header: IdxHeader {
                elem_type,
                dims: dims.to_vec(),
            },
            remaining: count,
            scratch: Vec::new(),
        })
    }

    /// Appends elements; errors if `T` is not the announced type or more
    /// elements than announced are written.
    pub fn write<T: IdxElement>(&mut self, values: &[T]) -> Result<()> {
        if T::TYPE != self.header.elem_type {
            return Err(DatasetError::content(
                &self.path,
                format!(
                    "writing {} elements into an IDX file of {}",
                    T::TYPE,
                    self.header.elem_type
                ),
            ));
        }
        if values.len() as u64 > self.remaining {
            return Err(DatasetError::content(
                &self.path,
                format!(
                    "writing {} elements, only {} remain of the {} that the header ({}) announces",
                    values.len(),
                    self.remaining,
                    self.header.num_elements(),
                    self.header
                ),
            ));
        }
        self.scratch.clear();
        T::encode_be(values, &mut self.scratch);
        self.inner
            .write_all(&self.scratch)
            .map_err(|e| DatasetError::io(&self.path, "writing", e))?;
        self.remaining -= values.len() as u64;
        Ok(())
    }

    /// Checks that every announced element was written, flushes and returns
    /// the inner writer.
    pub fn finish(mut self) -> Result<W> {
        if self.remaining > 0 {
            return Err(DatasetError::content(
                &self.path,
                format!(
                    "{} elements missing: the header ({}) announces {}",
                    self.remaining,
                    self.header,
                    self.header.num_elements()
                ),
            ));
        }
        self.inner
            .flush()
            .map_err(|e| DatasetError::io(&self.path, "writing", e))?;
        Ok(self.inner)
    }
}

fn write_data<W: Write>(writer: &mut IdxWriter<W>, data: &IdxData) -> Result<()> {
    // Chunked, so that the big-endian scratch buffer stays small.
    const CHUNK: usize = 1 << 16;
    fn chunks<W: Write, T: IdxElement>(writer: &mut IdxWriter<W>, values: &[T]) -> Result<()> {
        values.chunks(CHUNK).try_for_each(|c| writer.write(c))
    }
    match data {
        IdxData::U8(v) => chunks(writer, v),
        IdxData::I8(v) => chunks(writer, v),
        IdxData::I16(v) => chunks(writer, v),
        IdxData::I32(v) => chunks(writer, v),
        IdxData::F32(v) => chunks(writer, v),
        IdxData::F64(v) => chunks(writer, v),
    }
}

/// Writes `array` as an uncompressed IDX stream into `writer` and returns it.
pub fn write_idx_to<W: Write>(writer: W, array: &IdxArray, name: impl Into<PathBuf>) -> Result<W> {
    let mut w = IdxWriter::new(writer, name, array.elem_type(), array.dims())?;
    write_data(&mut w, array.data())?;
    w.finish()
}

/// Writes `array` to `path`, gzip-compressed if the name ends in `.gz`. The
/// file is written under a temporary name in the same folder and renamed into
/// place once complete, so a failure never leaves a partial file.
pub fn write_idx(path: impl AsRef<Path>, array: &IdxArray) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = crate::files::temp_file_in(dir, ".idx-")
        .map_err(|e| DatasetError::io(dir, "creating a temporary file in", e))?;
    let file = BufWriter::new(
        tmp.as_file()
            .try_clone()
            .map_err(|e| DatasetError::io(tmp.path(), "opening", e))?,
    );
    let gz = path.extension().is_some_and(|e| e == "gz");
    if gz {
        let encoder = write_idx_to(GzEncoder::new(file, Compression::default()), array, path)?;
        let mut file = encoder
            .finish()
            .map_err(|e| DatasetError::io(path, "writing", e))?;
        file.flush()
            .map_err(|e| DatasetError::io(path, "writing", e))?;
    } else {
        write_idx_to(file, array, path)?;
    }
    tmp.persist(path)
        .map_err(|e| DatasetError::io(path, "renaming the temporary file to", e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
