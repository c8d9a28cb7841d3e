use super::*;
use crate::test_util::{TinyModel, TinyNet};

fn info() -> ModelInfo {
    ModelInfo {
        model: "tiny".into(),
        model_config: "{}".into(),
        dataset: "synthetic".into(),
        class_names: vec!["a".into(), "b".into()],
        preprocessing: Some(Preprocessing {
            in_channels: 1,
            image_size: 4,
            mean: vec![0.5],
            std: vec![0.25],
            eval_pipeline: r#"{"transforms":[]}"#.into(),
        }),
    }
}

#[test]
fn save_load_round_trip_restores_weights_and_rng() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ckpt");
    let mut a = TinyNet::new(4, 2, 1);
    let ck = Checkpoint::capture(&mut a, &info(), 3, None);
    ck.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, ck);
    assert_eq!(Checkpoint::read_header(&path).unwrap().epoch, 3);
    let mut b = TinyNet::new(4, 2, 99);
    loaded.apply_to(&mut b).unwrap();
    let x = convnet_tensor::Tensor::arange(&[3, 4]);
    assert_eq!(a.infer(&x).unwrap(), b.infer(&x).unwrap());
    // Same generator state: the next dropout masks agree.
    assert_eq!(a.forward(&x).unwrap(), b.forward(&x).unwrap());
}

#[test]
fn other_architecture_is_a_clear_error() {
    let mut a = TinyNet::new(4, 2, 1);
    let ck = Checkpoint::capture(&mut a, &info(), 1, None);
    let mut wider = TinyNet::new(5, 2, 1);
    let e = ck.apply_to(&mut wider).unwrap_err().to_string();
    assert!(
        e.contains("`weight` has shape [2, 4] in the checkpoint and [2, 5]"),
        "{e}"
    );
    assert!(e.contains("`tiny`"), "{e}");
    let mut other = TinyModel::new(&[2], 0.0);
    let e = ck.apply_to(&mut other).unwrap_err().to_string();
    assert!(e.contains("`w` [2] is not in the checkpoint"), "{e}");
    assert!(
        e.contains("`bias` [2] of the checkpoint is not in the model"),
        "{e}"
    );
    assert_eq!(other.values(), vec![0.0, 0.0], "nothing changed on error");
}

#[test]
fn truncation_corruption_and_garbage_are_detected() {
    let mut a = TinyNet::new(4, 2, 1);
    let bytes = Checkpoint::capture(&mut a, &info(), 1, None)
        .to_bytes()
        .unwrap();
    let p = Path::new("m.ckpt");
    for cut in [0, 5, 20, PREAMBLE + 3, bytes.len() - 1] {
        let e = Checkpoint::from_bytes(&bytes[..cut], p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truncated") || e.contains("not a convnet checkpoint"),
            "cut {cut}: {e}"
        );
    }
    // Flip one bit anywhere after the preamble: a checksum catches it.
    for at in [PREAMBLE + 1, bytes.len() / 2, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let e = Checkpoint::from_bytes(&b, p).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "byte {at}: {e}");
    }
    // In the preamble: version or lengths.
    let mut b = bytes.clone();
    b[8] = 7;
    let e = Checkpoint::from_bytes(&b, p).unwrap_err().to_string();
    assert!(e.contains("format version 7"), "{e}");
    let mut b = bytes.clone();
    b[20] ^= 1; // header checksum itself
    assert!(Checkpoint::from_bytes(&b, p).is_err());
    let mut b = bytes.clone();
    b.push(0);
    let e = Checkpoint::from_bytes(&b, p).unwrap_err().to_string();
    assert!(e.contains("unexpected bytes"), "{e}");
    let e = Checkpoint::from_bytes(b"hello world, not a checkpoint", p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.ckpt") && e.contains("not a convnet checkpoint"),
        "{e}"
    );
    let e = Checkpoint::load(Path::new("/nonexistent/x.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.ckpt"), "{e}");
}

/// A checkpoint file around `header` and `payload`, with valid checksums
/// so that decoding is reached.
fn assemble(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(header).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

/// Bincode's varint for a length above `u32::MAX`: 0xFD, then 8 bytes.
fn huge_len(len: u64) -> Vec<u8> {
    let mut v = vec![0xFD];
    v.extend_from_slice(&len.to_le_bytes());
    v
}

#[test]
fn declared_lengths_beyond_the_bytes_are_errors_not_allocations() {
    let mut a = TinyNet::new(4, 2, 1);
    let ck = Checkpoint::capture(&mut a, &info(), 1, None);
    let header = bincode::serde::encode_to_vec(&ck.header, bincode_config()).unwrap();
    let payload = bincode::serde::encode_to_vec(&ck.payload, bincode_config()).unwrap();
    assert_eq!(
        Checkpoint::from_bytes(&assemble(&header, &payload), Path::new("ok.ckpt")).unwrap(),
        ck
    );
    let dir = tempfile::tempdir().unwrap();

    // The model name declares 2^40 bytes: once a 1 TiB allocation.
    let mut bomb = huge_len(1 << 40);
    bomb.extend_from_slice(&[0; 16]);
    let file = dir.path().join("header.ckpt");
    std::fs::write(&file, assemble(&bomb, &payload)).unwrap();
    for e in [
        Checkpoint::load(&file).unwrap_err(),
        Checkpoint::read_header(&file).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(
            e.contains("header.ckpt")
                && e.contains("cannot decode the header")
                && e.contains("string or sequence longer than its 25 bytes"),
            "{e}"
        );
    }

    // The payload's first generator name declares 2^40 bytes.
    let mut bomb = vec![0, 0, 1]; // no params, no buffers, one generator
    bomb.extend(huge_len(1 << 40));
    let file = dir.path().join("payload.ckpt");
    std::fs::write(&file, assemble(&header, &bomb)).unwrap();
    let e = Checkpoint::load(&file).unwrap_err().to_string();
    assert!(e.contains("cannot decode the payload"), "{e}");
    assert_eq!(Checkpoint::read_header(&file).unwrap(), ck.header);

    // Sequences of 2^40 elements: errors once the bytes run out.
    let mut bomb = vec![0, 0, 0]; // empty model, model_config, dataset
    bomb.extend(huge_len(1 << 40)); // class_names
    bomb.extend_from_slice(&[0; 8]);
    let e = Checkpoint::from_bytes(&assemble(&bomb, &payload), Path::new("s.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot decode the header"), "{e}");
    let bomb = [vec![0, 1, 0], huge_len(1 << 40)].concat(); // params: [[f32; 2^40]]
    let e = Checkpoint::from_bytes(&assemble(&header, &bomb), Path::new("s.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot decode the payload"), "{e}");
}

/// The bytes of `ck` as format version 1 wrote them (its preprocessing
/// and frozen names dropped).
fn version1_bytes(ck: &Checkpoint) -> Vec<u8> {
    let h = &ck.header;
    let header = v1::Header {
        model: h.model.clone(),
        model_config: h.model_config.clone(),
        dataset: h.dataset.clone(),
        class_names: h.class_names.clone(),
        params: h.params.clone(),
        buffers: h.buffers.clone(),
        epoch: h.epoch,
        created_by: h.created_by.clone(),
    };
    let p = &ck.payload;
    let payload = v1::Payload {
        params: p.params.clone(),
        buffers: p.buffers.clone(),
        rngs: p.rngs.clone(),
        train: p.train.as_ref().map(|t| v1::Train {
            epochs_done: t.epochs_done,
            global_step: t.global_step,
            optimizer: t.optimizer.clone(),
            config: t.config.clone(),
            run_settings: t.run_settings.clone(),
            threads: t.threads,
            history: t.history.clone(),
        }),
    };
    let header = bincode::serde::encode_to_vec(&header, bincode_config()).unwrap();
    let payload = bincode::serde::encode_to_vec(&payload, bincode_config()).unwrap();
    let mut bytes = assemble(&header, &payload);
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes
}

#[test]
fn version_1_files_still_load() {
    let mut a = TinyNet::new(4, 2, 1);
    let mut opt = crate::optim::Optimizer::new(crate::OptimizerConfig::sgd(0.1, 0.9), &a).unwrap();
    opt.step(&mut a, 0.1).unwrap();
    let train = TrainState {
        epochs_done: 1,
        global_step: 3,
        optimizer: opt.state().clone(),
        config: "{}".into(),
        run_settings: "{}".into(),
        threads: 2,
        history: History::default(),
        frozen: vec!["weight".into()],
    };
    let ck = Checkpoint::capture(&mut a, &info(), 1, Some(train));
    let v2 = ck.to_bytes().unwrap();
    assert_eq!(&v2[8..12], &2u32.to_le_bytes());
    assert_eq!(
        Checkpoint::from_bytes(&v2, Path::new("v2.ckpt")).unwrap(),
        ck
    );
    let old = Checkpoint::from_bytes(&version1_bytes(&ck), Path::new("v1.ckpt")).unwrap();
    assert_eq!(old.header.preprocessing, None);
    assert_eq!(
        old.payload.train.as_ref().unwrap().frozen,
        Vec::<String>::new()
    );
    let mut expected = ck.clone();
    expected.header.preprocessing = None;
    expected.payload.train.as_mut().unwrap().frozen.clear();
    assert_eq!(old, expected);
    // A version-2 decoder on version-1 bytes would fail: the version matters.
    let mut mislabelled = version1_bytes(&ck);
    mislabelled[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(Checkpoint::from_bytes(&mislabelled, Path::new("x.ckpt")).is_err());
    // The header alone, from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.ckpt");
    std::fs::write(&path, version1_bytes(&ck)).unwrap();
    assert_eq!(Checkpoint::read_header(&path).unwrap(), expected.header);
    // Hostile version-1 files hit the same decode limits.
    let mut bomb = huge_len(1 << 40);
    bomb.extend_from_slice(&[0; 16]);
    let mut file = assemble(&bomb, &[0, 0, 0, 0]);
    file[8..12].copy_from_slice(&1u32.to_le_bytes());
    let e = Checkpoint::from_bytes(&file, Path::new("b.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("string or sequence longer than its 25 bytes"),
        "{e}"
    );
}

/// A checkpoint written by `convnet train` before format version 2
/// (LeNet-1, one epoch on 64 synthetic MNIST-shaped images).
#[test]
fn version_1_file_written_by_the_old_code_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-lenet1-mnist.ckpt");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes(), "a version-1 file");
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.header.model, "lenet1");
    assert_eq!(ck.header.dataset, "mnist");
    assert_eq!(ck.header.class_names.len(), 10);
    assert_eq!(ck.header.epoch, 1);
    assert_eq!(ck.header.preprocessing, None);
    assert_eq!(ck.num_params(), 2_646);
    let train = ck.payload.train.as_ref().unwrap();
    assert_eq!(train.epochs_done, 1);
    assert_eq!(train.global_step, 4);
    assert!(train.frozen.is_empty());
    assert_eq!(train.optimizer.slots.len(), ck.header.params.len());
    assert!(train.run_settings.contains("lenet1"));
    // Written again, it is a version-2 file with the same content.
    let again = Checkpoint::from_bytes(&ck.to_bytes().unwrap(), &path).unwrap();
    assert_eq!(again, ck);
}

#[test]
fn decode_limit_grows_with_the_length() {
    assert_eq!(decode_limit(0), 4096);
    assert_eq!(decode_limit(512), 4096);
    assert_eq!(decode_limit(513), 8192);
    assert_eq!(decode_limit(1 << 30), 1 << 33);
    assert_eq!(decode_limit(usize::MAX), usize::MAX);
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file: it is a directory"), "{e}");
    if cfg!(target_os = "linux") {
        let zero = Path::new("/dev/zero");
        for e in [
            Checkpoint::load(zero).unwrap_err(),
            Checkpoint::read_header(zero).unwrap_err(),
        ] {
            let e = e.to_string();
            assert!(
                e.contains("/dev/zero") && e.contains("character device"),
                "{e}"
            );
        }
        let fifo = dir.path().join("pipe.ckpt");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            // Checked before opening: no writer is needed, nothing blocks.
            let e = Checkpoint::load(&fifo).unwrap_err().to_string();
            assert!(e.contains("pipe.ckpt") && e.contains("FIFO"), "{e}");
        }
    }
}

#[test]
fn read_header_reads_no_payload_and_checks_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ckpt");
    let mut a = TinyNet::new(4, 2, 1);
    let mut bytes = Checkpoint::capture(&mut a, &info(), 2, None)
        .to_bytes()
        .unwrap();
    // A corrupt payload does not stop the header from being read...
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(Checkpoint::read_header(&path).unwrap().epoch, 2);
    assert!(Checkpoint::load(&path)
        .unwrap_err()
        .to_string()
        .contains("corrupt"));
    // ... but a file shorter than announced does.
    std::fs::write(&path, &bytes[..last]).unwrap();
    let e = Checkpoint::read_header(&path).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
