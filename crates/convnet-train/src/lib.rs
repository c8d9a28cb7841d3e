//! convnet-train (under construction).

#![warn(missing_docs)]
