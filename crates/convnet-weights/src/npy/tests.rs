//! Tests of the `.npy` reader and writer.

use super::*;
use convnet_tensor::Rng;
use std::fs;

const MEM: &str = "<memory>";

/// A `.npy` file of the given version from a dict literal and raw data,
/// padded as numpy pads.
fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = encode_header(major, dict);
    out.extend_from_slice(data);
    out
}

/// A header dict; `fortran` is the literal text of its value.
fn dict(descr: &str, fortran: &str, shape: &str) -> String {
    format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

fn flat<const N: usize, const M: usize>(arrays: [[u8; N]; M]) -> Vec<u8> {
    arrays.concat()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn parse(bytes: &[u8]) -> Result<Tensor> {
    from_bytes(bytes, Path::new(MEM))
}

/// The message of the `Format` error `bytes` give.
fn format_error(bytes: &[u8]) -> String {
    match parse(bytes) {
        Err(WeightsError::Format { path, msg }) => {
            assert_eq!(path, Path::new(MEM));
            msg
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn round_trips_every_rank_including_0d_and_empty() {
    for shape in [&[][..], &[0], &[2, 3], &[1, 3, 4, 5]] {
        let t = Tensor::from_vec(
            shape,
            (0..convnet_tensor::numel(shape))
                .map(|i| i as f32 * 0.5 - 3.0)
                .collect(),
        )
        .unwrap();
        let bytes = to_bytes(&t);
        let header = read_header(&bytes, Path::new(MEM)).unwrap();
        assert_eq!(header.shape, shape);
        assert_eq!(header.data_offset % ALIGN, 0);
        assert_eq!(bytes.len(), header.data_offset + 4 * t.len());
        assert_eq!(parse(&bytes).unwrap(), t, "shape {shape:?}");
    }
}

#[test]
fn writes_the_header_numpy_writes() {
    let bytes = to_bytes(&Tensor::arange(&[2, 3]));
    assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00\x76\x00");
    let text = std::str::from_utf8(&bytes[10..128]).unwrap();
    assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    assert!(text.ends_with(" \n"));
    assert_eq!(&bytes[128..136], &f32_bytes(&[0.0, 1.0]));
    let header = read_header(&to_bytes(&Tensor::scalar(1.0)), Path::new(MEM)).unwrap();
    assert_eq!(header.version, (1, 0));
    assert_eq!(header.descr, "<f4");
    assert_eq!(header.shape, Vec::<usize>::new());
    assert!(!header.fortran_order && !header.big_endian);
    let bytes = to_bytes(&Tensor::zeros(&[5]));
    assert!(bytes[10..].starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"));
}

#[test]
fn write_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    write(&path, &Tensor::arange(&[4])).unwrap();
    write(&path, &Tensor::arange(&[2, 3])).unwrap();
    assert_eq!(read(&path).unwrap(), Tensor::arange(&[2, 3]));
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["x.npy"]);
    let missing = dir.path().join("nope").join("y.npy");
    assert!(matches!(
        write(&missing, &Tensor::scalar(0.0)),
        Err(WeightsError::Io { .. })
    ));
    assert!(matches!(read(&missing), Err(WeightsError::Io { .. })));
}

#[test]
fn reads_versions_2_and_3() {
    let data = f32_bytes(&[1.0, 2.0]);
    for major in [2, 3] {
        let bytes = npy(major, &dict("'<f4'", "False", "(2,)"), &data);
        let header = read_header(&bytes, Path::new(MEM)).unwrap();
        assert_eq!(header.version, (major, 0));
        assert_eq!(header.data_offset % ALIGN, 0);
        assert_eq!(parse(&bytes).unwrap().as_slice(), [1.0, 2.0]);
    }
    // Version 3.0 allows UTF-8 in the header (here in a structured field name).
    let bytes = npy(3, &dict("[('é', '<f4')]", "False", "(1,)"), &[0; 4]);
    assert!(format_error(&bytes).contains("structured dtype [('é', '<f4')]"));
}

#[test]
fn converts_every_element_type() {
    let cases: [(&str, Vec<u8>, [f32; 3]); 11] = [
        (
            "<f8",
            flat([1.5f64, -2.0, 0.25].map(f64::to_le_bytes)),
            [1.5, -2.0, 0.25],
        ),
        (
            "<f2",
            flat([0x3c00u16, 0xc000, 0x3800].map(u16::to_le_bytes)),
            [1.0, -2.0, 0.5],
        ),
        ("|u1", vec![0, 7, 255], [0.0, 7.0, 255.0]),
        ("|i1", vec![0, 7, 255], [0.0, 7.0, -1.0]),
        (
            "<i2",
            flat([-300i16, 2, 3].map(i16::to_le_bytes)),
            [-300.0, 2.0, 3.0],
        ),
        (
            "<i4",
            flat([-70000i32, 2, 3].map(i32::to_le_bytes)),
            [-70000.0, 2.0, 3.0],
        ),
        (
            "<i8",
            flat([-5i64, 1 << 40, 3].map(i64::to_le_bytes)),
            [-5.0, 2f32.powi(40), 3.0],
        ),
        (
            "<u2",
            flat([65535u16, 2, 3].map(u16::to_le_bytes)),
            [65535.0, 2.0, 3.0],
        ),
        ("|b1", vec![1, 0, 1], [1.0, 0.0, 1.0]),
        (
            ">f4",
            flat([1.5f32, -2.0, 3.0].map(f32::to_be_bytes)),
            [1.5, -2.0, 3.0],
        ),
        (
            ">i8",
            flat([-5i64, 2, 3].map(i64::to_be_bytes)),
            [-5.0, 2.0, 3.0],
        ),
    ];
    for (descr, data, expected) in cases {
        let bytes = npy(1, &dict(&format!("'{descr}'"), "False", "(3,)"), &data);
        assert_eq!(parse(&bytes).unwrap().as_slice(), expected, "{descr}");
    }
}

#[test]
fn fortran_order_is_transposed_to_c_order() {
    // np.asfortranarray(np.arange(6).reshape(2, 3)) stores 0 3 1 4 2 5.
    let bytes = npy(
        1,
        &dict("'<f4'", "True", "(2, 3)"),
        &f32_bytes(&[0., 3., 1., 4., 2., 5.]),
    );
    assert_eq!(parse(&bytes).unwrap(), Tensor::arange(&[2, 3]));
    // Three axes: element (i, j, k) at i + 2 j + 6 k.
    let shape = [2, 3, 4];
    let mut fortran = vec![0.0; 24];
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                fortran[i + 2 * j + 6 * k] = (i * 12 + j * 4 + k) as f32;
            }
        }
    }
    let bytes = npy(1, &dict("'<f4'", "True", "(2, 3, 4)"), &f32_bytes(&fortran));
    assert_eq!(parse(&bytes).unwrap(), Tensor::arange(&shape));
    // Empty and 1-d arrays are the same in both orders.
    let bytes = npy(1, &dict("'<f4'", "True", "(3, 0)"), &[]);
    assert_eq!(parse(&bytes).unwrap().shape(), [3, 0]);
}

#[test]
fn header_syntax_variants_numpy_may_write() {
    let data = f32_bytes(&[1.0, 2.0]);
    for text in [
        "{'descr':'<f4','fortran_order':False,'shape':(2,)}",
        "{\"descr\": \"<f4\", \"shape\": (2L,), \"fortran_order\": False}",
        "  { 'shape' : ( 1 , 2 ) , 'descr' : '<f4' , 'fortran_order' : False , }  ",
    ] {
        let t = parse(&npy(1, text, &data)).unwrap();
        assert_eq!(t.as_slice(), [1.0, 2.0], "{text}");
    }
}

/// Asserts that each file gives a `Format` error containing its text.
fn assert_errors(cases: &[(Vec<u8>, &str)]) {
    for (bytes, expected) in cases {
        let msg = format_error(bytes);
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
}

#[test]
fn preamble_errors_name_what_is_wrong() {
    let two = f32_bytes(&[1.0, 2.0]);
    let valid = npy(1, &dict("'<f4'", "False", "(2,)"), &two);
    assert_eq!(parse(&valid).unwrap().as_slice(), [1.0, 2.0]);
    let mut not_utf8 = npy(3, &dict("'<f4'", "False", "(2,)"), &two);
    not_utf8[14] = 0xff;
    assert_errors(&[
        (
            b"PK\x03\x04 not numpy".to_vec(),
            "bad magic 'PK\\x03\\x04 n'",
        ),
        (vec![], "truncated header: the file ends after 0 bytes"),
        (b"\x93NUMPY\x01".to_vec(), "truncated header"),
        (
            b"\x93NUMPY\x01\x00\x10".to_vec(),
            "inside the header length",
        ),
        (
            b"\x93NUMPY\x04\x00\x10\x00".to_vec(),
            "unsupported .npy format version 4.0",
        ),
        (valid[..40].to_vec(), "header length 118 goes past the end"),
        (
            b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(),
            "4294967295 goes past the end",
        ),
        (not_utf8, "header of a version 3.0 file is not UTF-8"),
    ]);
}

#[test]
fn header_dict_errors_name_what_is_wrong() {
    let two = f32_bytes(&[1.0, 2.0]);
    let good = dict("'<f4'", "False", "(2,)");
    let cases = [
        ("['descr']".to_string(), "expected a dict '{', found '['"),
        (
            "{'descr': '<f4', 'fortran_order': False}".into(),
            "'shape' is missing",
        ),
        (good.replace('}', "'x': 1}"), "unexpected key 'x'"),
        (good.replace("'shape'", "'descr'"), "'descr' appears twice"),
        (
            good.replace("'<f4'", "(2,)"),
            "descr (2,) is not a dtype string",
        ),
        ("{'descr': '<f4".into(), "unterminated string"),
        (format!("{good} x"), "unexpected 'x' after the dict"),
        (good.replace(": ", " "), "expected ':' after 'descr'"),
        (good.replace("'shape'", "1"), "dict key 1 is not a string"),
    ];
    assert_errors(&cases.map(|(text, expected)| (npy(1, &text, &two), expected)));
}

#[test]
fn descr_and_shape_errors_name_what_is_wrong() {
    let two = f32_bytes(&[1.0, 2.0]);
    let deep = format!("{}2{}", "(".repeat(20), ")".repeat(20));
    let many = format!("({})", "1, ".repeat(65));
    let cases = [
        (
            "'<f4'",
            "False",
            "(2,) x",
            "expected ',' or '}' in the dict, found 'x'",
        ),
        ("'<f4'", "False", "(2.0,)", "expected ',' or ')', found '.'"),
        ("'<f4'", "False", "(-2,)", "negative dimension -2"),
        ("'<f4'", "False", "(-x,)", "expected digits after '-'"),
        (
            "'<f4'",
            "False",
            "('2',)",
            "dimension '2' that is not an integer",
        ),
        ("'<f4'", "False", "[2]", "shape [2] is not a tuple"),
        ("'<f4'", "False", "(99999999999999999999,)", "too large"),
        ("'<f4'", "False", &many, "65 axes"),
        ("'<f4'", "False", &deep, "nested deeper than 16"),
        ("'<f4'", "0", "(2,)", "fortran_order 0 is not True or False"),
        ("'<f4'", "Flase", "(2,)", "unknown name 'Flase'"),
        (
            "'|O'",
            "False",
            "(2,)",
            "object array (descr '|O') is refused",
        ),
        (
            "[('x', '<f4'), ('y', '<i4')]",
            "False",
            "(1,)",
            "structured dtype [('x', '<f4'), ('y', '<i4')]",
        ),
        ("'<c8'", "False", "(1,)", "unsupported dtype descr '<c8'"),
        ("'<U3'", "False", "(1,)", "unsupported dtype descr '<U3'"),
        ("'|f4'", "False", "(2,)", "'|f4' gives no byte order"),
        ("None", "False", "(2,)", "descr None is not a dtype string"),
        ("'<f4'", "False", "(4294967296, 4294967296)", "overflows"),
        ("'<f8'", "False", "(1152921504606846976,)", "overflows"),
        ("'<f4'", "False", "(1000000000, 1000)", "too little data"),
        (
            "'<f4'",
            "False",
            "(3,)",
            "too little data (truncated file): shape (3,) of '<f4' needs 12 bytes, the file has 8",
        ),
        ("'<f4'", "False", "(1,)", "too much data"),
        ("'<f4'", "False", "()", "too much data"),
    ];
    assert_errors(&cases.map(|(descr, fortran, shape, expected)| {
        (npy(1, &dict(descr, fortran, shape), &two), expected)
    }));
}

#[test]
fn no_prefix_or_mutation_panics() {
    let files = [
        to_bytes(&Tensor::arange(&[2, 3])),
        npy(1, &dict("'>f8'", "True", "(2, 2)"), &[7; 32]),
        npy(2, &dict("'|b1'", "False", "(3,)"), &[0, 1, 2]),
        npy(3, &dict("'<f2'", "False", "()"), &[0, 0x3c]),
    ];
    for file in &files {
        assert!(parse(file).is_ok());
        let data_offset = read_header(file, Path::new(MEM)).unwrap().data_offset;
        for n in 0..file.len() {
            assert!(parse(&file[..n]).is_err(), "prefix of {n} bytes");
            let header = read_header(&file[..n], Path::new(MEM));
            assert_eq!(
                header.is_ok(),
                n >= data_offset,
                "header of a {n}-byte prefix"
            );
        }
    }
    let mut rng = Rng::seed_from(7);
    let interesting = [0u8, 1, b'(', b')', b',', b'\'', b'9', b'-', 0x7f, 0xff];
    for round in 0..400 {
        let mut bytes = files[round % files.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = rng.next_u64() as u8,
                1 => bytes[at] = interesting[rng.below(interesting.len())],
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, interesting[rng.below(interesting.len())]),
            }
        }
        if let Ok(t) = parse(&bytes) {
            assert_eq!(t.len(), t.shape().iter().product::<usize>());
        }
    }
}
