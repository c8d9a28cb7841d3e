//! Fuzzes the IDX reader: any bytes, plain or gzip, must give a value or an
//! error, never a panic, a hang or an allocation the input does not justify.
//!
//! cargo +nightly fuzz run idx -- -max_total_time=60

#![no_main]

use convnet_datasets::idx::{read_idx_bytes, IdxElement, IdxReader, IdxType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whole-file reading, with gzip detection and size checks.
    if let Ok(array) = read_idx_bytes(data, "fuzz-input") {
        assert_eq!(array.data().len(), array.header().num_elements());
        assert_eq!(array.data().elem_type(), array.header().elem_type);
    }
    // The streaming reader over an unsized stream, in small typed chunks.
    if let Ok(mut reader) = IdxReader::new(data, "fuzz-stream") {
        match reader.header().elem_type {
            IdxType::U8 => drain::<u8, _>(&mut reader),
            IdxType::I8 => drain::<i8, _>(&mut reader),
            IdxType::I16 => drain::<i16, _>(&mut reader),
            IdxType::I32 => drain::<i32, _>(&mut reader),
            IdxType::F32 => drain::<f32, _>(&mut reader),
            IdxType::F64 => drain::<f64, _>(&mut reader),
        }
        let _ = reader.finish();
    }
});

fn drain<T: IdxElement, R: std::io::Read>(reader: &mut IdxReader<R>) {
    let mut buf = [T::default(); 7];
    while let Ok(n) = reader.read_chunk(&mut buf) {
        if n == 0 {
            break;
        }
    }
}
