//! A header must never make the reader allocate memory it claims but the
//! file does not hold: checked with a counting global allocator.

use std::alloc::System;

use convnet_datasets::idx::{read_idx_bytes, IdxReader};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn header(dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// One test function: the allocator's counters are process-wide.
#[test]
fn lying_headers_allocate_nothing_of_what_they_claim() {
    // 2^31 images of 28x28 followed by 1000 real bytes.
    let mut plain = header(&[1 << 31, 28, 28]);
    plain.extend(vec![0u8; 1000]);
    let gz = gzip(&plain);
    // A header whose claim fits the gzip bound (1032:1) but not the data.
    let mut modest = header(&[1000, 28, 28]);
    let mut state = 1u32;
    modest.extend((0..1000).map(|_| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    }));
    let modest_gz = gzip(&modest);
    assert!(
        modest_gz.len() * 1032 > 1000 * 784,
        "the claim passes the bound"
    );

    let region = Region::new(GLOBAL);
    let e1 = read_idx_bytes(&plain, "plain").unwrap_err().to_string();
    let e2 = read_idx_bytes(&gz, "gz").unwrap_err().to_string();
    let e3 = read_idx_bytes(&modest_gz, "modest.gz")
        .unwrap_err()
        .to_string();
    let stats = region.change();
    // An unsized stream reserves at most 8 MiB up front, then grows with the data.
    let region = Region::new(GLOBAL);
    let e4 = IdxReader::new(&plain[..], "stream")
        .unwrap()
        .read_all()
        .unwrap_err()
        .to_string();
    let stream_stats = region.change();
    let stream_total =
        stream_stats.bytes_allocated + stream_stats.bytes_reallocated.max(0) as usize;
    assert!(
        stream_total <= 9 << 20,
        "{stream_total} bytes allocated for the stream"
    );
    let total = stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize;
    assert!(e1.contains("truncated"), "{e1}");
    assert!(e2.contains("gzip file can hold"), "{e2}");
    assert!(e3.contains("truncated"), "{e3}");
    assert!(e4.contains("truncated"), "{e4}");
    // Buffers (gzip state, read buffers), added up over the three reads,
    // but never the 1.6 TB or 784 KB claimed.
    eprintln!("allocated: {total} bytes for three lying files, {stream_total} for the stream");
    assert!(total < 1000 * 784, "{total} bytes allocated in all");
}
