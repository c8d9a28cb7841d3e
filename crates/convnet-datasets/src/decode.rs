//! Reading PNG and JPEG files safely: only regular files, with limits on the
//! file size and on the decoded size checked from the header before any
//! pixel is decoded, and truncated JPEGs refused (the decoder would fill
//! them with grey and say nothing). Used by the image folders and by
//! `convnet predict`.

use std::path::Path;

use image::DynamicImage;

use crate::error::{DatasetError, Result};

/// The widest and tallest image decoded, in pixels. This only refuses files
/// whose header declares absurd sizes: a 389 KB PNG can claim 20000x20000
/// pixels and cost 779 MB to decode.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most memory the decoder may allocate for one image (and the largest
/// file read): 256 MiB, a 16384x16384 greyscale image or about 89 megapixels
/// of RGB (more than any camera photo).
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads and decodes a PNG or JPEG file (told by content); errors name the
/// file. Only a regular file is read (a FIFO would block, a device never
/// ends: [`convnet_tensor::fileio::open_regular`]), and the header's
/// dimensions are checked against [`MAX_IMAGE_SIDE`] and
/// [`MAX_DECODE_BYTES`] before any pixel is decoded.
///
/// Errors are [`DatasetError::Io`] when the file cannot be read and
/// [`DatasetError::Image`] when its content is not a decodable image
/// (empty, corrupt, truncated, another format, too large).
pub fn decode_image(path: &Path) -> Result<DynamicImage> {
    let (file, len) = convnet_tensor::fileio::open_regular(path)
        .map_err(|e| DatasetError::io(path, "opening", e))?;
    if len > MAX_DECODE_BYTES {
        return Err(DatasetError::image(
            path,
            format!(
                "the file is {} MiB, more than an image may take once decoded ({} MiB)",
                len >> 20,
                MAX_DECODE_BYTES >> 20
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_DECODE_BYTES), &mut bytes)
        .map_err(|e| DatasetError::io(path, "reading", e))?;
    decode_image_bytes(&bytes, path)
}

/// [`decode_image`] on bytes already in memory; `path` only names them in
/// errors.
pub fn decode_image_bytes(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(DatasetError::image(
            path,
            "the file is empty (0 bytes): not an image",
        ));
    }
    let open = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DatasetError::io(path, "reading", e))
    };
    let undecodable =
        |e: image::ImageError| format!("cannot decode the image (PNG and JPEG are supported): {e}");
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| DatasetError::image(path, undecodable(e)))?;
    let too_large = |why: &str| {
        DatasetError::image(
            path,
            format!(
                "the image is {width}x{height} pixels, {why} (images of at most \
                 {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels and {} MiB are decoded; shrink it \
                 first)",
                MAX_DECODE_BYTES >> 20
            ),
        )
    };
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(too_large("too large"));
    }
    if open()?.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(DatasetError::image(
            path,
            "the JPEG is truncated: its last scan has no end-of-image marker",
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = open()?;
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large("too large to decode"),
        e => DatasetError::image(path, undecodable(e)),
    })
}

/// The number of channels a decoded image naturally has for a model: 1 for
/// greyscale (with or without alpha, 8 or 16 bits), 3 for everything else
/// (RGB, RGBA, palette PNGs, which the decoder expands to RGB(A)).
pub fn natural_channels(color: image::ColorType) -> usize {
    if color.has_color() {
        3
    } else {
        1
    }
}

/// The colour type declared by the header of `path`, read without decoding
/// the pixels.
pub fn peek_color_type(path: &Path) -> Result<image::ColorType> {
    use image::ImageDecoder as _;
    let (file, _) = convnet_tensor::fileio::open_regular(path)
        .map_err(|e| DatasetError::io(path, "opening", e))?;
    let decoder = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| DatasetError::io(path, "reading", e))?
        .into_decoder()
        .map_err(|e| {
            DatasetError::image(
                path,
                format!("cannot decode the image (PNG and JPEG are supported): {e}"),
            )
        })?;
    Ok(decoder.color_type())
}

/// Whether a JPEG file's last scan (start-of-scan marker `FF DA`) is followed
/// by the end-of-image marker `FF D9`. The decoder fills a truncated scan
/// with grey and says nothing; a marker byte `FF` inside scan data is always
/// stuffed (`FF 00`), so this marker cannot appear by chance.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}
