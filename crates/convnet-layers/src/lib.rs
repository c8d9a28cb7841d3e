//! convnet-layers (under construction).

#![warn(missing_docs)]
