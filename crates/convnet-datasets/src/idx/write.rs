//! Writing IDX files and streams, plain or gzip-compressed.

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::header::checked_count;
use super::{IdxArray, IdxData, IdxElement, IdxHeader, IdxType};
use crate::error::{DatasetError, Result};

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
