//! convnet-datasets (under construction).

#![warn(missing_docs)]
