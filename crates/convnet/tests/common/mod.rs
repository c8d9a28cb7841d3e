//! What the command-line tests share: running the binary and reading what
//! it said.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

use convnet::datasets::ALLOW_SYNTHETIC_ENV;

/// Runs `convnet` with `args`, without `$CONVNET_DATA`, accepting the small
/// synthetic datasets the tests write.
pub fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .env_remove("CONVNET_DATA")
        .env(ALLOW_SYNTHETIC_ENV, "1")
        .output()
        .expect("the convnet binary runs")
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A temporary path as the `&str` an argument needs.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}
