//! Shared helpers of the end-to-end tests in this folder.
