//! Fuzzes the weight-file readers convnet owns on top of its format crates:
//! detection by content, the safetensors conversion and the `.pth` checks
//! (refusal of pickled objects, location of the state dict). Any bytes must
//! give a state dict or an error, never a panic.
//!
//! cargo +nightly fuzz run weights fuzz/corpus/weights fuzz/seeds/weights -- -max_total_time=60

#![no_main]

use std::io::Write;

use convnet_weights::{detect, read_state_dict, safetensors_io, FileKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The safetensors path reads from memory.
    if let Ok(sd) = safetensors_io::from_bytes(data, "fuzz-input".as_ref()) {
        for e in sd.iter() {
            assert_eq!(e.tensor.len(), e.tensor.shape().iter().product::<usize>());
        }
    }
    // The PyTorch reader reads files: give it one.
    if detect(data) == Some(FileKind::Pytorch) {
        let mut f = tempfile::NamedTempFile::new().expect("a temporary file");
        f.write_all(data).expect("writing the temporary file");
        if let Ok(sd) = read_state_dict(f.path()) {
            for e in sd.iter() {
                assert_eq!(e.tensor.len(), e.tensor.shape().iter().product::<usize>());
            }
        }
    }
});
