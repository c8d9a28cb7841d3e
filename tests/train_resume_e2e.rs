//! End to end, offline: `convnet train` stopped after epoch 1 and resumed
//! from its checkpoint ends with weights bit-identical to an uninterrupted
//! run with the same seed and thread count. Uses small synthetic IDX files
//! written into a temporary data folder, so it needs no dataset.

use std::path::Path;

use convnet::app::train::{run_train, TrainOptions};
use convnet::app::ProgressMode;
use convnet::datasets::idx::{write_idx, IdxArray};
use convnet::datasets::{DatasetKind, ALLOW_SYNTHETIC_ENV};
use convnet::tensor::Rng;
use convnet::train::Checkpoint;

/// Writes an MNIST-shaped split: class `c` is a bright bar in column band
/// `2c + 4` plus noise.
fn write_split(dir: &Path, prefix: &str, n: usize, seed: u64) {
    let mut rng = Rng::seed_from(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 10;
        for _y in 0..28 {
            for x in 0..28 {
                let bar = x == 2 * c + 4 || x == 2 * c + 5;
                let noise = rng.below(60) as u8;
                pixels.push(if bar { 200 + noise / 2 } else { noise });
            }
        }
        labels.push(c as u8);
    }
    let images = IdxArray::from_vec(&[n, 28, 28], pixels).unwrap();
    let labels = IdxArray::from_vec(&[n], labels).unwrap();
    write_idx(dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
    write_idx(dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels).unwrap();
}

fn options(data: &Path, out: &Path) -> TrainOptions {
    // The splits these tests write are synthetic (few images): the binary's
    // code loads them only on request.
    std::env::set_var(ALLOW_SYNTHETIC_ENV, "1");
    let mut o = TrainOptions::new("lenet5", DatasetKind::Mnist);
    o.epochs = 3;
    o.batch_size = 32;
    o.warmup_steps = Some(5);
    o.data_dir = Some(data.to_path_buf());
    o.offline = true;
    o.out_dir = Some(out.to_path_buf());
    o.progress = ProgressMode::Quiet;
    o.eval_batch_size = 100;
    o
}

#[test]
fn stopped_and_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let data = tempfile::tempdir().unwrap();
    let mnist = data.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_split(&mnist, "train", 320, 1);
    write_split(&mnist, "t10k", 100, 2);
    let runs = tempfile::tempdir().unwrap();

    let full = run_train(&options(data.path(), &runs.path().join("full")), None).unwrap();
    assert!(
        full.eval.accuracy > 0.5,
        "the synthetic task is learnable: {}",
        full.eval.accuracy
    );

    let mut stopped_opts = options(data.path(), &runs.path().join("stopped"));
    stopped_opts.stop_after = Some(1);
    let stopped = run_train(&stopped_opts, None).unwrap();
    assert_eq!(stopped.history.records.len(), 1);
    let after_one = Checkpoint::load(&stopped.checkpoint).unwrap();
    assert_eq!(after_one.header.epoch, 1);

    // Resume: the saved settings are used (the defaults passed here are
    // ignored but for machine-specific ones).
    let ck = Checkpoint::load(&stopped.checkpoint).unwrap();
    let resumed_opts = convnet::app::train::resume_options(&ck, None).unwrap();
    let resumed = run_train(&resumed_opts, Some(&stopped.checkpoint)).unwrap();
    assert_eq!(resumed.out_dir, stopped.out_dir);
    assert_eq!(resumed.history.records.len(), 3);

    let a = Checkpoint::load(&full.checkpoint).unwrap();
    let b = Checkpoint::load(&resumed.checkpoint).unwrap();
    assert_eq!(a.header.params, b.header.params);
    assert!(
        a.payload.params == b.payload.params,
        "the resumed run's weights differ from the uninterrupted run's"
    );
    assert_eq!(
        a.payload.train.as_ref().unwrap().optimizer,
        b.payload.train.as_ref().unwrap().optimizer
    );
    // The epoch-1 weights really differ from the final ones (the check can fail).
    assert!(after_one.payload.params != a.payload.params);
    // Per-epoch figures agree too (times aside).
    for (x, y) in full.history.records.iter().zip(&resumed.history.records) {
        assert_eq!(
            (x.train_loss, x.test_accuracy),
            (y.train_loss, y.test_accuracy)
        );
    }
}

#[test]
fn wrong_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.ckpt");
    std::fs::write(&p, b"definitely not a checkpoint").unwrap();
    let e = convnet::app::eval::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("not a convnet checkpoint"), "{e}");
    let e = convnet::app::eval::load_model(&dir.path().join("missing.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.ckpt"), "{e}");
}
