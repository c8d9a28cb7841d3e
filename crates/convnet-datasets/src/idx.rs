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
//!
//! The code is split by concern: [`IdxType`], [`IdxElement`] and [`IdxData`]
//! (element types), [`IdxHeader`] and [`IdxArray`] (the header and a whole
//! array), [`IdxReader`] (reading, plain or gzip) and [`IdxWriter`] (writing).

mod elements;
mod header;
mod read;
mod write;

pub use elements::{IdxData, IdxElement, IdxType};
pub use header::{IdxArray, IdxHeader};
pub use read::{read_idx, read_idx_bytes, IdxReader};
pub use write::{write_idx, write_idx_to, IdxWriter};

pub(crate) use read::starts_with_gzip_magic;

/// The two first bytes of every gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most bytes one byte of deflate data can expand to (the format's limit
/// is about 1032:1); used to bound what a gzip file's header may claim.
pub(crate) const MAX_GZIP_RATIO: u64 = 1032;

/// Upper bound of a single up-front reservation when the exact size is not
/// known from the file itself (gzip or an unsized stream): memory beyond it
/// grows with the data actually decompressed.
pub(crate) const MAX_UNVERIFIED_RESERVATION: u64 = 8 << 20;

#[cfg(test)]
mod tests;
