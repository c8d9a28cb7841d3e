//! The `convnet` binary end to end, offline, on small synthetic MNIST-shaped
//! files: flag validation, train, stop and resume, eval, predict, summary
//! and zoo.

use std::process::Command;

use convnet::datasets::ALLOW_SYNTHETIC_ENV;
use convnet::tensor::Rng;
use convnet::train::Checkpoint;

mod common;
use common::{convnet, fake_mnist, text, write_split};

#[test]
fn invalid_flags_list_the_valid_values() {
    let o = convnet(&["train", "--model", "lenet6"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("valid models are lenet5"), "{}", text(&o));
    let o = convnet(&["train", "--dataset", "svhn"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("mnist, fashion-mnist, cifar10, cifar100, folder:PATH"),
        "{t}"
    );
    let o = convnet(&["train", "--optimizer", "rmsprop"]);
    assert!(text(&o).contains("sgd, adam, adamw"), "{}", text(&o));
    let o = convnet(&["train", "--schedule", "linear"]);
    assert!(text(&o).contains("cosine"), "{}", text(&o));
    let o = convnet(&["train", "--variant", "1989"]);
    assert!(text(&o).contains("modern, 1998"), "{}", text(&o));
    let o = convnet(&["train", "--hflip", "true"]);
    assert!(
        text(&o).contains("not a valid augmentation"),
        "{}",
        text(&o)
    );
    let o = convnet(&["train", "--batch-size", "0"]);
    assert!(!o.status.success());
    let o = convnet(&["summary", "alexnet9"]);
    assert!(text(&o).contains("lenet5"), "{}", text(&o));
}

#[test]
fn an_explicit_data_dir_without_the_dataset_never_falls_back() {
    // $CONVNET_DATA holds a (synthetic) MNIST; --data-dir names a folder
    // with only three of its four files: the run must stop and name the
    // missing one, not train on the other folder's data.
    let other = tempfile::tempdir().unwrap();
    let mnist = other.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_split(&mnist, "train", 20, 1);
    write_split(&mnist, "t10k", 10, 2);
    let given = tempfile::tempdir().unwrap();
    let partial = given.path().join("mnist");
    std::fs::create_dir_all(&partial).unwrap();
    write_split(&partial, "train", 20, 1);
    std::fs::copy(
        mnist.join("t10k-images-idx3-ubyte"),
        partial.join("t10k-images-idx3-ubyte"),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["train", "--offline", "--epochs", "1", "--data-dir"])
        .arg(given.path())
        .current_dir(given.path())
        .env("CONVNET_DATA", other.path())
        .env(ALLOW_SYNTHETIC_ENV, "1")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    // Only the missing file is named as missing.
    let missing = partial.join("t10k-labels-idx1-ubyte.gz");
    assert!(
        t.contains(&format!("missing {} (", missing.display())),
        "{t}"
    );
    assert!(t.contains("--data-dir"), "{t}");
    // A run that could not start leaves no run folder behind.
    assert!(!given.path().join("runs").exists(), "{t}");
}

#[test]
fn synthetic_data_is_refused_unless_asked_for() {
    let data = fake_mnist(20, 10);
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["train", "--offline", "--epochs", "1", "--data-dir"])
        .arg(data.path())
        .current_dir(data.path())
        .env_remove("CONVNET_DATA")
        .env_remove(ALLOW_SYNTHETIC_ENV)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("train-images-idx3-ubyte"), "{t}");
    assert!(t.contains("20 images") && t.contains("60000"), "{t}");
    assert!(t.contains(ALLOW_SYNTHETIC_ENV), "{t}");
}

#[test]
fn missing_dataset_offline_says_how_to_import_it() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["train", "--offline", "--data-dir", dir])
        .current_dir(empty.path())
        .env_remove("CONVNET_DATA")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("cargo xtask download mnist --from"), "{t}");
}

#[test]
fn summary_and_zoo() {
    let o = convnet(&["summary", "lenet5"]);
    assert!(o.status.success());
    let t = text(&o);
    assert!(
        t.contains("conv1 (Conv2d)") && t.contains("Total params: 61,706"),
        "{t}"
    );
    let t = text(&convnet(&["summary", "lenet5", "--variant", "1998"]));
    assert!(t.contains("Tanh") && t.contains("AvgPool2d"), "{t}");
    let t = text(&convnet(&["zoo"]));
    assert!(t.contains("lenet5") && t.contains("61,706"), "{t}");
}

#[test]
fn train_stop_resume_eval_predict() {
    let data = tempfile::tempdir().unwrap();
    let mnist = data.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_split(&mnist, "train", 960, 1);
    write_split(&mnist, "t10k", 100, 2);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let (d, r) = (data.path().to_str().unwrap(), run.to_str().unwrap());
    let common = [
        "--threads",
        "2",
        "train",
        "--offline",
        "--data-dir",
        d,
        "--out-dir",
        r,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--warmup-steps",
        "4",
        "--progress",
        "plain",
    ];
    let mut args = common.to_vec();
    args.extend(["--stop-after-epoch", "1"]);
    let o = convnet(&args);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("epoch 1/2: train loss"), "{t}");
    assert!(!t.contains("epoch 2/2"), "{t}");
    let ck = run.join("checkpoint.ckpt");
    assert_eq!(Checkpoint::read_header(&ck).unwrap().epoch, 1);

    let ck_s = ck.to_str().unwrap();
    let o = convnet(&[
        "--threads",
        "2",
        "train",
        "--resume",
        ck_s,
        "--progress",
        "quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("resuming lenet5 from epoch 1 of 2"), "{t}");
    assert!(t.contains("epoch 2/2: train loss"), "{t}");
    assert!(t.contains("final test accuracy"), "{t}");
    for f in [
        "history.csv",
        "history.json",
        "curves.png",
        "confusion.txt",
        "confusion.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing:\n{t}");
    }
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let o = convnet(&["eval", "--checkpoint", ck_s, "--data-dir", d, "--offline"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("accuracy") && t.contains("true \\ pred"), "{t}");

    // A bright bar at column 8..10 (class 2) on a dark background, 56x56.
    let img = image::GrayImage::from_fn(56, 56, |x, _| {
        image::Luma([if (16..20).contains(&x) { 230 } else { 10 }])
    });
    let png = out.path().join("bar.png");
    img.save(&png).unwrap();
    // The classes are bar positions: the whole image, not MNIST's centring.
    let o = convnet(&[
        "predict",
        "--checkpoint",
        ck_s,
        "--preprocess",
        "whole",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("28x28 greyscale"), "{t}");
    assert!(t.contains("1. 2"), "class 2 first:\n{t}");

    // A corrupted checkpoint is refused with a clear message.
    let mut bytes = std::fs::read(&ck).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = out.path().join("bad.ckpt");
    std::fs::write(&bad, &bytes).unwrap();
    let o = convnet(&[
        "eval",
        "--checkpoint",
        bad.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("corrupt"), "{}", text(&o));
}

#[test]
fn eval_of_nan_weights_is_zero_percent_not_a_hundred() {
    use convnet::layers::Layer;
    let data = fake_mnist(32, 20);
    let config = convnet::zoo::ModelConfig::mnist();
    let mut model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(0)).unwrap();
    model.visit_params_mut("", &mut |_, p| {
        p.value
            .as_slice_mut()
            .iter_mut()
            .for_each(|v| *v = f32::NAN)
    });
    let info = convnet::train::ModelInfo {
        model: "lenet5".into(),
        model_config: serde_json::to_string(&config).unwrap(),
        dataset: "mnist".into(),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let ck = data.path().join("nan.ckpt");
    Checkpoint::capture(model.as_mut(), &info, 1, None)
        .save(&ck)
        .unwrap();
    let o = convnet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--offline",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("accuracy 0.00% (0 / 20)"), "{t}");
    assert!(t.contains("20 sample(s) had NaN logits"), "{t}");
}
