//! Fuzzes the `.npy` reader: any bytes must give a tensor or an error, never
//! a panic, a hang or an allocation the input does not justify.
//!
//! cargo +nightly fuzz run npy -- -max_total_time=60

#![no_main]

use std::path::Path;

use convnet_weights::npy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    let header = npy::read_header(data, path);
    if let Ok(tensor) = npy::from_bytes(data, path) {
        let numel: usize = tensor.shape().iter().product();
        assert_eq!(tensor.len(), numel);
        // A file that reads has a header that reads, whose data fills the rest.
        let header = header.expect("the header of a file that reads");
        assert_eq!(header.shape, tensor.shape());
        assert_eq!(header.data_len(), Some(data.len() - header.data_offset));
        // What we write reads back as the same tensor (bit for bit, NaNs too).
        let again = npy::from_bytes(&npy::to_bytes(&tensor), path).expect("our own file");
        assert_eq!(again.shape(), tensor.shape());
        assert!(again
            .as_slice()
            .iter()
            .zip(tensor.as_slice())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
});
