//! The interface every image dataset implements: [`ImageSource`], indexed
//! images as decoded bytes ([`RawImage`]) with their labels.
//!
//! A source knows how many images it has, their labels and class names, and
//! produces one image on request; it never has to hold its images in memory
//! (an image folder holds paths only). The [`crate::VisionLoader`] turns a
//! source into batches through a [`crate::Pipeline`] of transforms.
//!
//! Implementations: [`crate::ImageFolder`] (a folder per class, as
//! torchvision's `ImageFolder`) and the in-memory MNIST and Fashion-MNIST
//! [`Dataset`] (28×28 greyscale).
//!
//! To add a dataset (CIFAR, say): keep the labels in memory, return
//! [`ImageSource::channels`] channels from every [`ImageSource::image`] call
//! (convert if needed: [`RawImage::to_channels`]), and make
//! [`ImageSource::describe`] name the image in a way a user can find it
//! (`"data_batch_1.bin, image 17"`).

use std::path::PathBuf;
use std::sync::OnceLock;

use image::DynamicImage;

use crate::dataset::Dataset;
use crate::error::{DatasetError, Result};
use crate::kind::{DatasetKind, IMAGE_SIDE};

/// One decoded image: 8-bit pixels, channels last (`HWC`, row-major: pixel
/// `(y, x)` channel `c` is at `(y * width + x) * channels + c`), as PNG and
/// JPEG decoders give them and as torchvision's `ToTensor` reads a PIL image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
    /// `height * width * channels` bytes, `HWC`.
    pub pixels: Vec<u8>,
}

impl RawImage {
    /// An image from its pixels; errors if `channels` is not 1 or 3 or the
    /// pixel count does not match the size.
    ///
    /// ```
    /// use convnet_datasets::RawImage;
    /// let img = RawImage::new(2, 1, 3, vec![255, 0, 0, 0, 0, 255])?; // red, blue
    /// assert_eq!(img.get(1, 0, 2), 255);
    /// assert_eq!(img.to_channels(1)?.pixels.len(), 2);
    /// # Ok::<(), convnet_datasets::DatasetError>(())
    /// ```
    pub fn new(width: usize, height: usize, channels: usize, pixels: Vec<u8>) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(DatasetError::Config(format!(
                "an image has 1 (greyscale) or 3 (RGB) channels, not {channels}"
            )));
        }
        if pixels.len() != width * height * channels {
            return Err(DatasetError::Config(format!(
                "a {width}x{height} image with {channels} channels has {} bytes, got {}",
                width * height * channels,
                pixels.len()
            )));
        }
        Ok(RawImage {
            width,
            height,
            channels,
            pixels,
        })
    }

    /// An image of `width`×`height`×`channels` zeros (black).
    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        RawImage {
            width,
            height,
            channels,
            pixels: vec![0; width * height * channels],
        }
    }

    /// The value of channel `c` of pixel `(x, y)`.
    pub fn get(&self, x: usize, y: usize, c: usize) -> u8 {
        self.pixels[(y * self.width + x) * self.channels + c]
    }

    /// Bytes the pixels take.
    pub fn byte_len(&self) -> usize {
        self.pixels.len()
    }

    /// A decoded image converted to `channels` (1 or 3): greyscale as the
    /// `image` crate computes luma (ITU-R BT.709 weights), RGB by repeating
    /// the grey value; alpha is dropped, palette images are expanded,
    /// 16-bit images are reduced to 8 bits.
    pub fn from_dynamic(img: &DynamicImage, channels: usize) -> Result<Self> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        match channels {
            1 => RawImage::new(w, h, 1, img.to_luma8().into_raw()),
            3 => RawImage::new(w, h, 3, img.to_rgb8().into_raw()),
            c => RawImage::new(w, h, c, Vec::new()),
        }
    }

    /// The image with `channels` channels (1 or 3), converted as
    /// [`RawImage::from_dynamic`] does; itself if it already has them.
    pub fn to_channels(&self, channels: usize) -> Result<RawImage> {
        if channels == self.channels {
            return Ok(self.clone());
        }
        RawImage::from_dynamic(&self.to_dynamic()?, channels)
    }

    /// The image as an `image` crate buffer (for saving or conversion).
    pub fn to_dynamic(&self) -> Result<DynamicImage> {
        let (w, h) = (self.width as u32, self.height as u32);
        let bad = || DatasetError::Config(format!("bad {}x{} image", self.width, self.height));
        Ok(match self.channels {
            1 => DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, self.pixels.clone()).ok_or_else(bad)?,
            ),
            3 => DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w, h, self.pixels.clone()).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        })
    }
}

/// An indexed set of labelled images, decoded one at a time on request.
///
/// Implementations must be cheap to share between threads (the loader
/// decodes the images of a batch in parallel) and must not decode anything
/// to answer [`len`](ImageSource::len), [`label`](ImageSource::label) or
/// [`class_names`](ImageSource::class_names). Every image of a source has
/// the same number of channels, [`channels`](ImageSource::channels); sizes
/// may differ (a transform pipeline makes them equal).
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// Number of images.
    fn len(&self) -> usize;

    /// `true` if there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class names, by label (`class_names()[label(i)]` names image `i`'s
    /// class).
    fn class_names(&self) -> &[String];

    /// The label of image `index` (`< len()`), in `0..class_names().len()`.
    fn label(&self, index: usize) -> usize;

    /// The number of channels (1 or 3) of every image
    /// [`image`](ImageSource::image) returns.
    fn channels(&self) -> usize;

    /// Image `index` (`< len()`), decoded, with
    /// [`channels`](ImageSource::channels) channels. Errors name the image
    /// ([`describe`](ImageSource::describe)): a file that cannot be read or
    /// decoded, an index out of range.
    fn image(&self, index: usize) -> Result<RawImage>;

    /// What names image `index` for people: its file's path, or the file
    /// and the position in it.
    fn describe(&self, index: usize) -> String;
}

/// The class names of `kind` as owned strings, made once.
fn class_name_strings(kind: DatasetKind) -> &'static [String] {
    static NAMES: OnceLock<[Vec<String>; 2]> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        DatasetKind::ALL.map(|k| k.class_names().iter().map(|s| s.to_string()).collect())
    });
    match kind {
        DatasetKind::Mnist => &names[0],
        DatasetKind::FashionMnist => &names[1],
    }
}

/// MNIST and Fashion-MNIST as a source: 28×28 greyscale images, the bytes of
/// the IDX file (so that `ToTensor` gives exactly what [`crate::DataLoader`]
/// gives), class names from [`DatasetKind::class_names`].
impl ImageSource for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn class_names(&self) -> &[String] {
        class_name_strings(self.kind)
    }

    fn label(&self, index: usize) -> usize {
        usize::from(self.labels[index])
    }

    fn channels(&self) -> usize {
        1
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        let pixels = self.image_bytes(index).ok_or_else(|| {
            DatasetError::image(
                PathBuf::from(ImageSource::describe(self, index)),
                format!("no such image: the split has {}", Dataset::len(self)),
            )
        })?;
        RawImage::new(IMAGE_SIDE, IMAGE_SIDE, 1, pixels)
    }

    fn describe(&self, index: usize) -> String {
        format!("{} {} image {index}", self.kind.title(), self.split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Split;
    use convnet_tensor::Tensor;

    #[test]
    fn raw_image_checks_its_size_and_converts_channels() {
        assert!(RawImage::new(2, 2, 2, vec![0; 8]).is_err());
        assert!(RawImage::new(2, 2, 1, vec![0; 3]).is_err());
        let grey = RawImage::new(2, 1, 1, vec![10, 200]).unwrap();
        let rgb = grey.to_channels(3).unwrap();
        assert_eq!(rgb.pixels, [10, 10, 10, 200, 200, 200]);
        assert_eq!(
            rgb.to_channels(1).unwrap(),
            grey,
            "grey survives a round trip"
        );
        // Pure red, green and blue weigh as BT.709 luma: 0.2126, 0.7152, 0.0722.
        let colours = RawImage::new(3, 1, 3, vec![255, 0, 0, 0, 255, 0, 0, 0, 255]).unwrap();
        assert_eq!(colours.to_channels(1).unwrap().pixels, [54, 182, 18]);
    }

    #[test]
    fn mnist_dataset_is_a_source_of_its_bytes() {
        let mut values = vec![0.0f32; 2 * 784];
        values[784 + 5] = 1.0;
        values[3] = 128.0 / 255.0;
        let images = Tensor::from_vec(&[2, 1, 28, 28], values).unwrap();
        let ds = Dataset::from_parts(DatasetKind::FashionMnist, Split::Test, images, vec![7, 0])
            .unwrap();
        let src: &dyn ImageSource = &ds;
        assert_eq!((src.len(), src.channels(), src.label(0)), (2, 1, 7));
        assert_eq!(src.class_names()[7], "Sneaker");
        let img = src.image(1).unwrap();
        assert_eq!((img.width, img.height, img.channels), (28, 28, 1));
        assert_eq!(img.pixels[5], 255);
        assert_eq!(src.image(0).unwrap().pixels[3], 128);
        let e = src.image(2).unwrap_err().to_string();
        assert!(e.contains("Fashion-MNIST test image 2"), "{e}");
    }
}
