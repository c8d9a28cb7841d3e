//! # convnet-tensor
//!
//! The numeric core of convnet: [`Tensor`] (owned, contiguous, row-major `f32`,
//! NCHW for images), a seeded portable [`Rng`], PyTorch's weight initialisers
//! ([`init`]), the sliding-window arithmetic ([`conv_output_size`],
//! [`Conv2dGeometry`], [`Pool2dGeometry`]) and the CPU compute [`kernels`]
//! (sgemm, conv2d, pooling, activations, softmax), each with its backward pass,
//! vectorised for the widest instruction set the CPU has, chosen at run time
//! ([`simd`]).
//!
//! Kernels take **outputs first, then inputs and weights, then geometry**;
//! backward passes **overwrite** input gradients and **accumulate** parameter
//! gradients.
//!
//! ```
//! use convnet_tensor::{conv_output_size, Rng, Tensor};
//!
//! // The lecture: a 25x25 image and a 5x5 filter, stride 1, no padding, give 21x21.
//! assert_eq!(conv_output_size(25, 5, 0, 1, 1)?, 21);
//!
//! let mut rng = Rng::seed_from(0);
//! let x = Tensor::randn(&[2, 1, 28, 28], 0.0, 1.0, &mut rng);
//! assert_eq!(x.dims4("example")?, [2, 1, 28, 28]);
//! # Ok::<(), convnet_tensor::TensorError>(())
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod fileio;
pub mod format;
pub mod geometry;
pub mod gradcheck;
pub mod init;
pub mod kernels;
pub mod memory;
pub mod rng;
pub mod simd;
pub mod tensor;

pub use error::{Result, TensorError};
pub use geometry::{conv_output_size, pool_output_size, Conv2dGeometry, Pool2dGeometry};
pub use ndarray;
pub use rng::Rng;
pub use tensor::{numel, Tensor};
