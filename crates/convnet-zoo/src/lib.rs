//! convnet-zoo (under construction).

#![warn(missing_docs)]
