//! The IDX header (element type and dimensions), its parsing, and a whole
//! array in memory.

use std::fmt;
use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::read::read_full;
use super::{IdxData, IdxElement, IdxType, GZIP_MAGIC};
use crate::error::{DatasetError, Result};

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
    pub(super) dims: Vec<usize>,
    pub(super) data: IdxData,
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
pub(super) fn checked_count(path: &Path, dims: &[usize]) -> Result<u64> {
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

pub(super) fn read_header(reader: &mut impl Read, path: &Path, gzip: bool) -> Result<IdxHeader> {
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
