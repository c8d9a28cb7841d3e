//! Hostile and careless input to the `convnet` binary: outputs aimed at
//! inputs or at device nodes, a closed or full standard output, image files
//! whose header declares absurd sizes, truncated images, and OS errors that
//! must be said once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use convnet::tensor::Rng;
use convnet::weights::{safetensors_io, StateDict};
use convnet::zoo::ModelConfig;

fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .env_remove("CONVNET_DATA")
        .output()
        .expect("the convnet binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Untrained LeNet-5 weights as safetensors: enough for `predict --model lenet5`.
fn lenet_weights(dir: &Path) -> PathBuf {
    let entry = convnet::zoo::entry("lenet5").unwrap();
    let cfg: ModelConfig = (entry.default_config)();
    let model = convnet::zoo::build("lenet5", &cfg, &mut Rng::seed_from(1)).unwrap();
    let path = dir.join("lenet5.safetensors");
    safetensors_io::write(&path, &StateDict::from_model(&*model), None).unwrap();
    path
}

/// A 56x56 white PNG with a dark bar: a valid digit-like image.
fn good_png(dir: &Path) -> PathBuf {
    let path = dir.join("good.png");
    image::GrayImage::from_fn(56, 56, |x, _| {
        image::Luma([if (24..32).contains(&x) { 0 } else { 255 }])
    })
    .save(&path)
    .unwrap();
    path
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG of a few dozen bytes whose header declares `width`x`height`
/// greyscale pixels (no pixel data follows).
fn png_header_only(path: &Path, width: u32, height: u32) {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |bytes: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
    chunk(&mut bytes, b"IHDR", &ihdr);
    // An empty zlib stream: the decoder would need 20000 rows from it.
    chunk(
        &mut bytes,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut bytes, b"IEND", &[]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn outputs_onto_inputs_or_devices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("model.ckpt");
    std::fs::write(&ckpt, b"the checkpoint being evaluated").unwrap();
    let same = dir.path().join(".").join("model.ckpt");
    let cases: Vec<Vec<&str>> = vec![
        vec!["eval", "--checkpoint", s(&ckpt), "--plot", s(&ckpt)],
        vec!["eval", "--checkpoint", s(&ckpt), "--plot", s(&same)],
        vec!["eval", "--checkpoint", s(&ckpt), "--plot", "/dev/null"],
        vec![
            "infer",
            "--model",
            "lenet5",
            "--weights",
            s(&ckpt),
            "--input",
            "x.npy",
            "--output",
            s(&same),
        ],
        vec![
            "infer",
            "--model",
            "lenet5",
            "--weights",
            "w.pth",
            "--input",
            s(&ckpt),
            "--output",
            s(&ckpt),
        ],
    ];
    for args in cases {
        let o = convnet(&args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{args:?}: {e}");
        assert!(e.contains("refusing to write there"), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
    // A link named like an output, to a device.
    #[cfg(unix)]
    {
        let link = dir.path().join("dev.safetensors");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let o = convnet(&["weights", "convert", s(&ckpt), s(&link)]);
        assert!(stderr(&o).contains("character device"), "{}", stderr(&o));
    }
    // convert IN IN needs an output ending in .safetensors.
    let st = dir.path().join("w.safetensors");
    std::fs::write(&st, b"not really safetensors").unwrap();
    let o = convnet(&["weights", "convert", s(&st), s(&st)]);
    assert!(
        stderr(&o).contains("which this command reads"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&st).unwrap(), b"not really safetensors");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        b"the checkpoint being evaluated"
    );
}

#[test]
fn closed_standard_output_is_no_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("zoo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the program writes its table.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "a broken pipe is no error: {err}");
    assert!(matches!(status.code(), Some(0) | Some(141)), "{status:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn full_standard_output_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["summary", "lenet5"])
        .stdout(full)
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        e.contains("standard output") && e.contains("No space"),
        "{e}"
    );
}

#[test]
fn size_bombs_and_truncated_images_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let weights = lenet_weights(dir.path());
    let good = good_png(dir.path());
    let bomb = dir.path().join("bomb.png");
    png_header_only(&bomb, 20_000, 20_000);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 100);
    // A JPEG cut in half.
    let jpeg = dir.path().join("cut.jpg");
    let photo = image::RgbImage::from_fn(96, 96, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
    });
    photo.save(&jpeg).unwrap();
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(&jpeg, &bytes[..bytes.len() / 2]).unwrap();

    let o = convnet(&[
        "predict",
        "--weights",
        s(&weights),
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        s(&bomb),
        s(&jpeg),
        s(&good),
    ]);
    let (out, e) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}{e}");
    assert!(!e.contains("panicked"), "{e}");
    // The bomb is named with its declared size.
    let bomb_line = e.lines().find(|l| l.contains("bomb.png")).expect(&e);
    assert!(bomb_line.contains("20000x20000"), "{e}");
    // The truncated JPEG is an error of its own...
    assert!(e.lines().any(|l| l.contains("cut.jpg")), "{e}");
    assert!(e.contains("2 of 3 images"), "{e}");
    // ...and the good image is still classified.
    assert!(out.contains("good.png (56x56"), "{out}");
}

#[test]
fn os_errors_are_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let weights = lenet_weights(dir.path());
    let missing = dir.path().join("missing.pth");
    let runs: Vec<Vec<&str>> = vec![
        vec!["predict", "--checkpoint", s(dir.path()), "x.png"],
        vec!["weights", "inspect", s(&missing)],
        vec![
            "predict",
            "--weights",
            s(&weights),
            "--model",
            "lenet5",
            s(dir.path()),
            s(&missing),
        ],
    ];
    for args in runs {
        let o = convnet(&args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
        for line in e.lines() {
            assert!(line.matches("(os error").count() <= 1, "{args:?}: {line}");
            let parts: Vec<&str> = line.split(": ").collect();
            assert!(
                parts.windows(2).all(|w| w[0] != w[1]),
                "{args:?}: repeated: {line}"
            );
        }
    }
}

#[test]
#[cfg(not(feature = "mpi"))]
fn distributed_training_without_the_mpi_feature_says_how_to_rebuild() {
    let o = convnet(&["train", "--distributed", "--offline"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("--distributed") && e.contains("--features mpi"),
        "{e}"
    );
}

#[test]
fn sync_bn_is_refused_before_anything_starts() {
    let o = convnet(&["train", "--distributed", "--sync-bn", "--offline"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--sync-bn is not implemented"), "{e}");
}
