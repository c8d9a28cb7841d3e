//! The element types of the IDX format and their big-endian coding.

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

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
    pub(super) fn decode(elem: IdxType, bytes: Vec<u8>) -> IdxData {
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
