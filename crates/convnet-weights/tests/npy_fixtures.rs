//! Reads the `.npy` files that real numpy wrote (`fixtures/npy/make_npy.py`
//! regenerates them) and compares each with the `np.arange`-based array the
//! script saved, computed here.

use std::path::{Path, PathBuf};

use convnet_weights::npy;
use convnet_weights::{DType, WeightsError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

/// `np.arange(start, start + n) * scale + offset` as `f32`.
fn arange(start: i32, n: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (start + i as i32) as f32 * scale + offset)
        .collect()
}

#[test]
fn numpy_files_read_as_the_arrays_numpy_saved() {
    let cases: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("f32_2x3.npy", vec![2, 3], arange(0, 6, 1.0, 0.0)),
        ("f64_3x4.npy", vec![3, 4], arange(-5, 12, 0.25, 0.0)),
        ("f16_5.npy", vec![5], arange(0, 5, 0.5, -1.0)),
        (
            "fortran_f32_2x3x4.npy",
            vec![2, 3, 4],
            arange(0, 24, 1.0, 0.0),
        ),
        ("scalar_f32.npy", vec![], vec![3.5]),
        ("empty_f32_0x3.npy", vec![0, 3], vec![]),
        ("be_f4_2x2.npy", vec![2, 2], arange(0, 4, 1.0, 0.0)),
        ("be_fortran_f8_3x2.npy", vec![3, 2], arange(0, 6, 1.0, 0.0)),
        ("u1_4.npy", vec![4], arange(252, 4, 1.0, 0.0)),
        ("i1_4.npy", vec![4], arange(-2, 4, 1.0, 0.0)),
        ("i2_4.npy", vec![4], arange(-2, 4, 1.0, 0.0)),
        ("i4_4.npy", vec![4], arange(-2, 4, 1.0, 0.0)),
        ("i8_4.npy", vec![4], arange(-2, 4, 1.0, 0.0)),
        ("b1_4.npy", vec![4], vec![0.0, 1.0, 0.0, 1.0]),
        ("v2_f32_3.npy", vec![3], arange(0, 3, 1.0, 0.0)),
        ("v3_f32_3.npy", vec![3], arange(0, 3, 1.0, 0.0)),
    ];
    for (name, shape, values) in cases {
        let t = npy::read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(t.as_slice(), values.as_slice(), "{name}");
    }
}

#[test]
fn headers_tell_dtype_order_and_version() {
    let cases = [
        ("f64_3x4.npy", (1, 0), DType::F64, false, false),
        ("f16_5.npy", (1, 0), DType::F16, false, false),
        ("fortran_f32_2x3x4.npy", (1, 0), DType::F32, false, true),
        ("be_fortran_f8_3x2.npy", (1, 0), DType::F64, true, true),
        ("b1_4.npy", (1, 0), DType::Bool, false, false),
        ("v2_f32_3.npy", (2, 0), DType::F32, false, false),
        ("v3_f32_3.npy", (3, 0), DType::F32, false, false),
    ];
    for (name, version, dtype, big_endian, fortran_order) in cases {
        let path = fixture(name);
        let bytes = std::fs::read(&path).unwrap();
        let h = npy::read_header(&bytes, &path).unwrap();
        assert_eq!(h.version, version, "{name}");
        assert_eq!(h.dtype, dtype, "{name}");
        assert_eq!(h.big_endian, big_endian, "{name}");
        assert_eq!(h.fortran_order, fortran_order, "{name}");
        assert_eq!(Some(bytes.len() - h.data_offset), h.data_len(), "{name}");
    }
}

#[test]
fn object_structured_and_complex_arrays_are_refused_by_descr() {
    let cases = [
        ("object_3.npy", "object array (descr '|O') is refused"),
        (
            "structured_2.npy",
            "structured dtype [('x', '<f4'), ('y', '<i4')]",
        ),
        ("complex_c8_2.npy", "unsupported dtype descr '<c8'"),
    ];
    for (name, expected) in cases {
        match npy::read(&fixture(name)) {
            Err(WeightsError::Format { path, msg }) => {
                assert_eq!(path, fixture(name));
                assert!(msg.contains(expected), "{name}: {msg}");
            }
            other => panic!("{name}: expected a format error, got {other:?}"),
        }
    }
}

#[test]
fn what_we_write_is_what_numpy_writes() {
    // A C-order `<f4` array: our file equals numpy's byte for byte.
    let numpy_file = std::fs::read(fixture("f32_2x3.npy")).unwrap();
    let t = npy::from_bytes(&numpy_file, Path::new("f32_2x3.npy")).unwrap();
    assert_eq!(npy::to_bytes(&t), numpy_file);
    // A Fortran-order array is written in C order and reads back equal.
    let t = npy::read(&fixture("fortran_f32_2x3x4.npy")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npy");
    npy::write(&path, &t).unwrap();
    let h = npy::read_header(&std::fs::read(&path).unwrap(), &path).unwrap();
    assert!(!h.fortran_order);
    assert_eq!(npy::read(&path).unwrap(), t);
}
