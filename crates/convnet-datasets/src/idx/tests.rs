use super::*;
use convnet_tensor::Rng;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// One small array of each element type, with extreme values.
fn sample_arrays() -> Vec<IdxArray> {
    vec![
        IdxArray::from_vec(&[2, 3], vec![0u8, 1, 127, 128, 254, 255]).unwrap(),
        IdxArray::from_vec(&[5], vec![i8::MIN, -1, 0, 1, i8::MAX]).unwrap(),
        IdxArray::from_vec(&[2, 2], vec![i16::MIN, -300, 300, i16::MAX]).unwrap(),
        IdxArray::from_vec(&[1, 2, 2], vec![i32::MIN, -70_000, 70_000, i32::MAX]).unwrap(),
        IdxArray::from_vec(
            &[3, 2],
            vec![
                0.0f32,
                -0.0,
                1.5,
                f32::MIN_POSITIVE,
                f32::MAX,
                f32::INFINITY,
            ],
        )
        .unwrap(),
        IdxArray::from_vec(&[2], vec![std::f64::consts::PI, -1e300]).unwrap(),
    ]
}

#[test]
fn round_trip_every_element_type_in_memory_plain_and_gzip() {
    for array in sample_arrays() {
        let bytes = write_idx_to(Vec::new(), &array, "mem").unwrap();
        assert_eq!(bytes[2], array.elem_type().code());
        assert_eq!(bytes[3] as usize, array.dims().len());
        assert_eq!(
            bytes.len() as u64,
            array.header().header_len() + array.header().data_len()
        );
        assert_eq!(read_idx_bytes(&bytes, "mem").unwrap(), array);
        assert_eq!(read_idx_bytes(&gzip(&bytes), "mem.gz").unwrap(), array);
    }
}

#[test]
fn big_endian_layout_is_the_formats() {
    let a = IdxArray::from_vec(&[1], vec![0x0102_0304i32]).unwrap();
    let bytes = write_idx_to(Vec::new(), &a, "x").unwrap();
    assert_eq!(bytes, [0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
    let f = IdxArray::from_vec(&[1], vec![1.0f32]).unwrap();
    let bytes = write_idx_to(Vec::new(), &f, "x").unwrap();
    assert_eq!(&bytes[8..], &1.0f32.to_be_bytes());
}

#[test]
fn round_trip_every_element_type_through_files() {
    let dir = tempfile::tempdir().unwrap();
    for (i, array) in sample_arrays().into_iter().enumerate() {
        for name in [format!("a{i}.idx"), format!("a{i}.idx.gz")] {
            let path = dir.path().join(&name);
            write_idx(&path, &array).unwrap();
            let raw = std::fs::read(&path).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), name.ends_with(".gz"));
            assert_eq!(read_idx(&path).unwrap(), array, "{name}");
        }
    }
    // Nothing but the files themselves: no temporary left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 12);
}

#[test]
fn zero_dimensions_and_empty_arrays() {
    let scalar = IdxArray::from_vec(&[], vec![7.0f64]).unwrap();
    let bytes = write_idx_to(Vec::new(), &scalar, "s").unwrap();
    assert_eq!(read_idx_bytes(&bytes, "s").unwrap(), scalar);
    let empty = IdxArray::from_vec::<u8>(&[0, 28, 28], vec![]).unwrap();
    let bytes = write_idx_to(Vec::new(), &empty, "e").unwrap();
    assert_eq!(read_idx_bytes(&bytes, "e").unwrap().dims(), &[0, 28, 28]);
}

#[test]
fn streaming_reads_in_chunks_and_checks_the_type() {
    let values: Vec<i16> = (0..1000).map(|i| (i * 37 % 2001 - 1000) as i16).collect();
    let array = IdxArray::from_vec(&[10, 100], values.clone()).unwrap();
    let bytes = gzip(&write_idx_to(Vec::new(), &array, "s").unwrap());
    let mut reader = IdxReader::from_bytes(&bytes, "s.gz").unwrap();
    assert!(reader.is_gzip());
    let mut wrong = [0u8; 4];
    let err = reader.read_chunk(&mut wrong).unwrap_err().to_string();
    assert!(err.contains("u8") && err.contains("i16"), "{err}");
    let mut got = Vec::new();
    let mut chunk = [0i16; 64];
    loop {
        let n = reader.read_chunk(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, values);
    reader.finish().unwrap();
}

#[test]
fn streaming_writer_checks_type_and_count() {
    let mut w = IdxWriter::new(Vec::new(), "w", IdxType::F32, &[2, 2]).unwrap();
    assert!(w.write(&[1u8]).is_err(), "wrong element type");
    w.write(&[1.0f32, 2.0, 3.0]).unwrap();
    assert!(w.write(&[4.0f32, 5.0]).is_err(), "more than announced");
    let err = IdxWriter::new(Vec::new(), "w", IdxType::F32, &[2, 2])
        .unwrap()
        .finish()
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 elements missing"), "{err}");
    w.write(&[4.0f32]).unwrap();
    let bytes = w.finish().unwrap();
    let back = read_idx_bytes(&bytes, "w").unwrap();
    assert_eq!(back.as_slice::<f32>(), Some(&[1.0f32, 2.0, 3.0, 4.0][..]));
    assert!(IdxArray::from_vec(&[3], vec![1u8, 2]).is_err());
}

fn err_of(bytes: &[u8]) -> String {
    let e = read_idx_bytes(bytes, "data/bad-file")
        .unwrap_err()
        .to_string();
    assert!(e.contains("data/bad-file"), "the error names the file: {e}");
    e
}

fn valid_u8() -> Vec<u8> {
    let a = IdxArray::from_vec(&[3, 2, 2], (0..12u8).collect()).unwrap();
    write_idx_to(Vec::new(), &a, "v").unwrap()
}

#[test]
fn wrong_magic_is_an_error() {
    let mut b = valid_u8();
    b[0] = 8;
    let e = err_of(&b);
    assert!(e.contains("wrong magic number 08 00 08 03"), "{e}");
    assert!(err_of(&[0, 0]).contains("truncated"));
    assert!(err_of(&[]).contains("truncated"));
    // A gzip stream given to the plain reader says so.
    let e = IdxReader::new(&gzip(&valid_u8())[..], "x.gz")
        .unwrap_err()
        .to_string();
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn unknown_type_code_is_an_error() {
    let mut b = valid_u8();
    b[2] = 0x0A;
    let e = err_of(&b);
    assert!(e.contains("unknown element type code 0x0a"), "{e}");
    assert!(e.contains("0x0D (f32)"), "lists the valid codes: {e}");
}

#[test]
fn dimensions_that_do_not_match_the_byte_count_are_errors() {
    let b = valid_u8();
    let e = err_of(&b[..b.len() - 1]);
    assert!(
        e.contains("truncated") && e.contains("12 bytes of data"),
        "{e}"
    );
    let mut longer = b.clone();
    longer.push(0);
    let e = err_of(&longer);
    assert!(e.contains("trailing"), "{e}");
    // The same inside gzip, where the size is only known after decompressing.
    let e = err_of(&gzip(&b[..b.len() - 1]));
    assert!(
        e.contains("truncated") && e.contains("ends after 11"),
        "{e}"
    );
    let e = err_of(&gzip(&longer));
    assert!(e.contains("trailing"), "{e}");
    // Truncated inside the dimension list.
    let e = err_of(&b[..9]);
    assert!(e.contains("inside its header"), "{e}");
    // Dimensions whose product overflows.
    let mut huge = vec![0, 0, 0x0E, 4];
    for _ in 0..4 {
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    let e = err_of(&huge);
    assert!(e.contains("overflow"), "{e}");
}

#[test]
fn a_header_claiming_2_pow_31_images_fails_before_allocating() {
    // 2^31 images of 28x28: 1.6 TB claimed by a 16-byte file.
    let mut b = vec![0, 0, 0x08, 3];
    for d in [1u32 << 31, 28, 28] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let e = err_of(&b);
    assert!(e.contains("1683627180032 bytes of data"), "{e}");
    // In gzip: more than the compressed size can hold.
    let e = err_of(&gzip(&b));
    assert!(
        e.contains("more than") && e.contains("gzip file can hold"),
        "{e}"
    );
    // (tests/idx_alloc.rs checks the allocations themselves.)
}

#[test]
fn truncated_or_corrupt_gzip_is_an_error() {
    let gz = gzip(&valid_u8());
    // Truncated: the end of the deflate stream and the trailer are missing.
    let e = err_of(&gz[..gz.len() - 6]);
    assert!(e.contains("gzip") || e.contains("truncated"), "{e}");
    // Cut inside the 8-byte trailer.
    let e = err_of(&gz[..gz.len() - 3]);
    assert!(e.contains("gzip") || e.contains("truncated"), "{e}");
    // A wrong CRC.
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let e = err_of(&bad_crc);
    assert!(e.contains("corrupt or truncated gzip"), "{e}");
    // Garbage in the deflate data.
    let mut garbage = gz.clone();
    for b in &mut garbage[10..n - 8] {
        *b = 0xff;
    }
    let e = err_of(&garbage);
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn mutated_files_never_panic_and_successes_are_consistent() {
    // A quick in-tree fuzz (the real one is `cargo fuzz run idx`).
    let mut seeds: Vec<Vec<u8>> = sample_arrays()
        .iter()
        .map(|a| write_idx_to(Vec::new(), a, "s").unwrap())
        .collect();
    let gz: Vec<Vec<u8>> = seeds.iter().map(|s| gzip(s)).collect();
    seeds.extend(gz);
    let mut rng = Rng::seed_from(11);
    let mut ok = 0;
    for i in 0..20_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 if !b.is_empty() => {
                    let j = rng.below(b.len());
                    b[j] = rng.next_u64() as u8;
                }
                1 if !b.is_empty() => b.truncate(rng.below(b.len())),
                2 => {
                    let j = rng.below(b.len() + 1);
                    b.insert(j, rng.next_u64() as u8);
                }
                _ if b.len() > 3 => b[3] = rng.below(6) as u8,
                _ => {}
            }
        }
        if let Ok(a) = read_idx_bytes(&b, "m") {
            ok += 1;
            assert_eq!(a.data().len(), a.header().num_elements());
        }
        // The plain streaming reader over an unsized stream must not panic either.
        if let Ok(r) = IdxReader::new(&b[..], "m") {
            let _ = r.read_all();
        }
    }
    assert!(ok > 0, "some mutations (a changed value) stay valid");
}

#[test]
fn gzip_decoder_matches_flate2s_plain_decoder() {
    // Multi-member gzip (two concatenated streams) is one file.
    let b = valid_u8();
    let mut two = gzip(&b[..7]);
    two.extend(gzip(&b[7..]));
    assert_eq!(
        read_idx_bytes(&two, "two.gz").unwrap(),
        read_idx_bytes(&b, "one").unwrap()
    );
    let mut single = Vec::new();
    GzDecoder::new(&gzip(&b)[..])
        .read_to_end(&mut single)
        .unwrap();
    assert_eq!(single, b);
}
