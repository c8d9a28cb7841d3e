//! The bytes of a checkpoint file: the preamble, the bincode encoding with a
//! byte limit tied to each part's length, the checksums, and reading no
//! more than the preamble announces.

use std::io::Read;
use std::path::Path;

use convnet_tensor::fileio::open_regular;
use serde::de::DeserializeOwned;

use super::*;
use crate::error::{Result, TrainError};

pub(super) fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The most bytes bincode claims against its limit per encoded byte for the
/// checkpoint's types: a number claims its in-memory size (at most 8 bytes:
/// `u64`, `usize`, `f64`) for an encoding of at least one byte, a string its
/// length for at least as many bytes.
pub(super) const CLAIMS_PER_BYTE: usize = 8;

/// The bincode byte limit used to decode `len` encoded bytes: the smallest
/// power of two (at least 4 KiB) that is at least [`CLAIMS_PER_BYTE`] times
/// `len`. Bincode checks a declared string length against it *before*
/// allocating, so no part of a checkpoint can make the decoder allocate more
/// than 16 times its own length (plus 4 KiB) at once.
pub fn decode_limit(len: usize) -> usize {
    len.saturating_mul(CLAIMS_PER_BYTE)
        .max(1 << 12)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
}

/// Decodes `bytes` as a `T` with the byte limit [`decode_limit`] of their
/// length. Bincode's limit is a const generic, so the limit is chosen among
/// the powers of two from 2^12 to 2^46 (a 8 TiB part is refused).
pub(super) fn decode_limited<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    let limit = decode_limit(bytes.len());
    macro_rules! with_limit_tiers {
        ($($bits:literal)*) => {
            $(
                if limit <= 1usize << $bits {
                    let config = bincode_config().with_limit::<{ 1usize << $bits }>();
                    return bincode::serde::decode_from_slice(bytes, config);
                }
            )*
        };
    }
    with_limit_tiers!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34
        35 36 37 38 39 40 41 42 43 44 45 46);
    Err(bincode::error::DecodeError::LimitExceeded)
}

/// The message of a decoding error of the checkpoint's `part`.
pub(super) fn decode_error(part: &str, len: usize, e: bincode::error::DecodeError) -> String {
    match e {
        bincode::error::DecodeError::LimitExceeded => format!(
            "cannot decode the {part}: it declares a string or sequence longer than its {len} \
             bytes can hold (limit {} bytes)",
            decode_limit(len)
        ),
        e => format!("cannot decode the {part}: {e}"),
    }
}

pub(super) const HEADER_CORRUPT: &str = "the header is corrupt (checksum mismatch)";
pub(super) const PAYLOAD_CORRUPT: &str = "the weights are corrupt (payload checksum mismatch)";

/// The lengths and checksums of the preamble.
pub(super) struct Preamble {
    pub(super) version: u32,
    pub(super) header_len: u64,
    pub(super) header_crc: u32,
    pub(super) payload_len: u64,
    pub(super) payload_crc: u32,
}

impl Preamble {
    /// Checks magic and version of `bytes` (the file's first bytes) and
    /// that the lengths they announce add up to `file_len`.
    fn parse(bytes: &[u8], file_len: u64, path: &Path) -> Result<Self> {
        let bad = |msg: String| Err(TrainError::checkpoint(path, msg));
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return bad(format!(
                "not a convnet checkpoint (the file does not start with {:?})",
                String::from_utf8_lossy(MAGIC)
            ));
        }
        if bytes.len() < PREAMBLE {
            return bad(format!(
                "truncated: {file_len} bytes, shorter than the {PREAMBLE}-byte preamble"
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return bad(format!(
                "format version {version}, this program reads versions \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
            ));
        }
        let p = Preamble {
            version,
            header_len: u64_at(12),
            header_crc: u32_at(20),
            payload_len: u64_at(24),
            payload_crc: u32_at(32),
        };
        let expected = (PREAMBLE as u128) + p.header_len as u128 + p.payload_len as u128;
        if (file_len as u128) < expected {
            return bad(format!(
                "truncated: {file_len} bytes, the header announces {expected}"
            ));
        }
        if (file_len as u128) > expected {
            return bad(format!(
                "{} unexpected bytes after the end of the checkpoint ({expected} bytes)",
                file_len as u128 - expected
            ));
        }
        Ok(p)
    }
}

/// Reads the regular file `path`: its preamble, then, once the lengths it
/// announces are checked against the file's size, the header and (if
/// `with_payload`) the payload. Returns the preamble and the bytes read.
pub(super) fn read_announced(path: &Path, with_payload: bool) -> Result<(Preamble, Vec<u8>)> {
    let (file, file_len) = open_regular(path).map_err(|e| TrainError::io(path, e))?;
    let mut reader = file.take(file_len);
    let mut bytes = Vec::with_capacity(PREAMBLE);
    (&mut reader)
        .take(PREAMBLE as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| TrainError::io(path, e))?;
    let preamble = Preamble::parse(&bytes, file_len, path)?;
    let wanted = preamble.header_len
        + if with_payload {
            preamble.payload_len
        } else {
            0
        };
    bytes.reserve_exact(wanted as usize);
    reader
        .take(wanted)
        .read_to_end(&mut bytes)
        .map_err(|e| TrainError::io(path, e))?;
    if (bytes.len() as u64) < PREAMBLE as u64 + wanted {
        return Err(TrainError::checkpoint(
            path,
            format!(
                "the file shrank while being read ({} bytes read)",
                bytes.len()
            ),
        ));
    }
    Ok((preamble, bytes))
}

/// Checks magic, version, lengths and checksums; returns the version and
/// the header and payload bytes.
pub(super) fn split<'a>(bytes: &'a [u8], path: &Path) -> Result<(u32, &'a [u8], &'a [u8])> {
    let p = Preamble::parse(bytes, bytes.len() as u64, path)?;
    let header = &bytes[PREAMBLE..PREAMBLE + p.header_len as usize];
    let payload = &bytes[PREAMBLE + p.header_len as usize..];
    check_crc(header, p.header_crc, HEADER_CORRUPT, path)?;
    check_crc(payload, p.payload_crc, PAYLOAD_CORRUPT, path)?;
    Ok((p.version, header, payload))
}

/// An error with `msg` unless `bytes` have the checksum `crc`.
pub(super) fn check_crc(bytes: &[u8], crc: u32, msg: &str, path: &Path) -> Result<()> {
    if crc32fast::hash(bytes) != crc {
        return Err(TrainError::checkpoint(path, msg.to_string()));
    }
    Ok(())
}

/// Decodes a header of format `version` (already checked to be readable).
pub(super) fn decode_header(bytes: &[u8], version: u32, path: &Path) -> Result<CheckpointHeader> {
    let err = |e| TrainError::checkpoint(path, decode_error("header", bytes.len(), e));
    if version == 1 {
        let (header, _): (v1::Header, usize) = decode_limited(bytes).map_err(err)?;
        return Ok(header.into());
    }
    let (header, _): (CheckpointHeader, usize) = decode_limited(bytes).map_err(err)?;
    Ok(header)
}
