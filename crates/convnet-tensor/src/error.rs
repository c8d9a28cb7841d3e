//! The error type of the tensor crate.

use thiserror::Error;

/// Everything that can go wrong in a tensor operation or a kernel call.
///
/// Variants carry the operation that failed and what was expected and found, so
/// that a message reads on its own: `conv2d: input channels: expected 3, got 1
/// (input [8, 1, 28, 28], weight [6, 3, 5, 5])`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorError {
    /// A shape (or one dimension of it) is not the one the operation needs.
    #[error("{op}: {what}: expected {expected}, got {got}")]
    Shape {
        /// The operation, e.g. `"conv2d"`.
        op: &'static str,
        /// What was checked, e.g. `"input channels"`.
        what: String,
        /// What the operation needs.
        expected: String,
        /// What it was given.
        got: String,
    },
    /// A sliding window (convolution or pooling kernel) does not fit in the
    /// padded input.
    #[error(
        "{op}: window does not fit: input {input} + 2 x padding {padding} is smaller than the \
         dilated kernel {dilation} x ({kernel} - 1) + 1"
    )]
    WindowTooLarge {
        /// The operation.
        op: &'static str,
        /// Input size along the axis.
        input: usize,
        /// Kernel size along the axis.
        kernel: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Dilation of the kernel.
        dilation: usize,
    },
    /// A scalar argument is out of its valid range (zero stride, groups that do
    /// not divide the channels, ...).
    #[error("{op}: invalid argument: {msg}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
}

/// `Result` with [`TensorError`].
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

impl TensorError {
    /// Builds a [`TensorError::Shape`] from anything printable.
    pub fn shape(
        op: &'static str,
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        got: impl std::fmt::Display,
    ) -> Self {
        TensorError::Shape {
            op,
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// Builds a [`TensorError::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        TensorError::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}

/// Formats a shape as `[a, b, c]` for error messages.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}
