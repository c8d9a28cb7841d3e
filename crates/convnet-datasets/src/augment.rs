//! Data augmentation for 28x28 grey images: random translation with zero
//! padding (torchvision's `RandomCrop(28, padding=t)`) and random horizontal
//! flip (`RandomHorizontalFlip()`, for Fashion-MNIST only: a mirrored 2 or 7
//! is no longer a digit).

use convnet_tensor::Rng;

use crate::error::{DatasetError, Result};
use crate::kind::{DatasetKind, IMAGE_SIDE};

/// Which augmentations a loader applies to each training image, drawn
/// independently per image.
///
/// ```
/// use convnet_datasets::{Augment, DatasetKind};
/// let aug = Augment { translate: 2, hflip: true };
/// assert!(aug.validate(DatasetKind::FashionMnist).is_ok());
/// assert!(aug.validate(DatasetKind::Mnist).is_err()); // digits are not flip-invariant
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Maximum shift in pixels: each image moves by `dy, dx` drawn uniformly
    /// in `-translate..=translate`, uncovered pixels set to 0 (black). 0 = off.
    pub translate: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        translate: 0,
        hflip: false,
    };

    /// `true` if nothing is changed.
    pub fn is_identity(&self) -> bool {
        self.translate == 0 && !self.hflip
    }

    /// Errors if an augmentation does not suit `kind` (flip on MNIST) or the
    /// shift would move the whole image out (`translate >= 28`).
    pub fn validate(&self, kind: DatasetKind) -> Result<()> {
        if self.hflip && !kind.flip_invariant() {
            return Err(DatasetError::Config(format!(
                "horizontal flip is not a valid augmentation for {}: a mirrored digit is not \
                 the same digit (use it for Fashion-MNIST only)",
                kind.title()
            )));
        }
        if self.translate >= IMAGE_SIDE {
            return Err(DatasetError::Config(format!(
                "translation by up to {} pixels would move whole {IMAGE_SIDE}x{IMAGE_SIDE} images \
                 out of the frame: use at most {} (2 to 4 is usual)",
                self.translate,
                IMAGE_SIDE - 1
            )));
        }
        Ok(())
    }

    /// Writes into `out` the augmented version of the 28x28 image `src`,
    /// drawing the shift (`dy`, then `dx`) and the flip from `rng` in that
    /// order.
    pub fn apply(&self, out: &mut [f32], src: &[f32], rng: &mut Rng) {
        let t = self.translate as isize;
        let (dy, dx) = if t > 0 {
            let span = 2 * self.translate + 1;
            let dy = rng.below(span) as isize - t;
            let dx = rng.below(span) as isize - t;
            (dy, dx)
        } else {
            (0, 0)
        };
        let flip = self.hflip && rng.bernoulli(0.5);
        shift_image(out, src, dy, dx, flip);
    }
}

/// `out[y][x] = src[y - dy][x' - dx]` where `x' = x` (or `27 - x` when
/// `flip`), 0 where the source falls outside: the image moves down by `dy`
/// and right by `dx` after an optional mirror. Both slices hold 28x28 pixels.
pub fn shift_image(out: &mut [f32], src: &[f32], dy: isize, dx: isize, flip: bool) {
    let side = IMAGE_SIDE as isize;
    debug_assert_eq!(out.len(), IMAGE_SIDE * IMAGE_SIDE);
    debug_assert_eq!(src.len(), IMAGE_SIDE * IMAGE_SIDE);
    for (y, row) in out.chunks_exact_mut(IMAGE_SIDE).enumerate() {
        let sy = y as isize - dy;
        if !(0..side).contains(&sy) {
            row.fill(0.0);
            continue;
        }
        let src_row = &src[sy as usize * IMAGE_SIDE..(sy as usize + 1) * IMAGE_SIDE];
        for (x, o) in row.iter_mut().enumerate() {
            let sx = x as isize - dx;
            *o = if (0..side).contains(&sx) {
                let sx = if flip { side - 1 - sx } else { sx };
                src_row[sx as usize]
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange() -> Vec<f32> {
        (0..IMAGE_SIDE * IMAGE_SIDE)
            .map(|i| i as f32 + 1.0)
            .collect()
    }

    #[test]
    fn shift_moves_pixels_and_pads_with_zero() {
        let src = arange();
        let mut out = vec![-1.0; src.len()];
        shift_image(&mut out, &src, 2, -3, false);
        // out[y][x] = src[y-2][x+3]
        assert_eq!(out[5 * 28 + 4], src[3 * 28 + 7]);
        assert!(out[..2 * 28].iter().all(|&v| v == 0.0), "top rows padded");
        for y in 0..28 {
            assert!(out[y * 28 + 25..y * 28 + 28].iter().all(|&v| v == 0.0));
        }
        shift_image(&mut out, &src, 0, 0, false);
        assert_eq!(out, src);
    }

    #[test]
    fn flip_mirrors_rows_and_twice_is_identity() {
        let src = arange();
        let mut once = vec![0.0; src.len()];
        let mut twice = vec![0.0; src.len()];
        shift_image(&mut once, &src, 0, 0, true);
        assert_eq!(once[3 * 28], src[3 * 28 + 27]);
        shift_image(&mut twice, &once, 0, 0, true);
        assert_eq!(twice, src);
    }

    #[test]
    fn apply_is_deterministic_and_covers_every_shift() {
        let src = arange();
        let aug = Augment {
            translate: 2,
            hflip: true,
        };
        let mut seen = std::collections::HashSet::new();
        let mut flips = 0;
        for i in 0..400 {
            let mut a = vec![0.0; src.len()];
            let mut b = vec![0.0; src.len()];
            aug.apply(&mut a, &src, &mut Rng::seed_from(i));
            aug.apply(&mut b, &src, &mut Rng::seed_from(i));
            assert_eq!(a, b);
            let mut r = Rng::seed_from(i);
            let dy = r.below(5) as isize - 2;
            let dx = r.below(5) as isize - 2;
            let flip = r.bernoulli(0.5);
            seen.insert((dy, dx));
            flips += flip as usize;
            let mut expect = vec![0.0; src.len()];
            shift_image(&mut expect, &src, dy, dx, flip);
            assert_eq!(a, expect);
        }
        assert_eq!(seen.len(), 25);
        assert!((150..250).contains(&flips), "{flips} flips in 400");
    }

    #[test]
    fn validation_refuses_flip_on_digits_and_huge_shifts() {
        let flip = Augment {
            translate: 0,
            hflip: true,
        };
        let err = flip.validate(DatasetKind::Mnist).unwrap_err().to_string();
        assert!(err.contains("MNIST") && err.contains("flip"), "{err}");
        assert!(flip.validate(DatasetKind::FashionMnist).is_ok());
        let far = Augment {
            translate: 28,
            hflip: false,
        };
        assert!(far.validate(DatasetKind::Mnist).is_err());
        assert!(Augment::NONE.is_identity());
    }
}
