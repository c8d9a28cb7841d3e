//! The `convnet` binary end to end, offline, on small synthetic MNIST-shaped
//! files: run folders and their locks, resources (threads, sizes, memory),
//! special files, training from weights with a frozen backbone, and eval's
//! plots.

use std::process::Command;

use convnet::datasets::ALLOW_SYNTHETIC_ENV;
use convnet::tensor::Rng;
use convnet::train::Checkpoint;

mod common;
use common::{convnet, fake_mnist, text};

#[test]
fn run_folders_are_locked_cleaned_and_not_overwritten_and_resume_flags_checked() {
    let data = fake_mnist(64, 20);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let (d, r) = (data.path().to_str().unwrap(), run.to_str().unwrap());
    let new_run = |extra: &[&str]| {
        let mut args = vec![
            "--threads",
            "2",
            "train",
            "--offline",
            "--data-dir",
            d,
            "--out-dir",
            r,
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--warmup-steps",
            "0",
            "--progress",
            "quiet",
        ];
        args.extend_from_slice(extra);
        convnet(&args)
    };
    let o = new_run(&["--stop-after-epoch", "0"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--stop-after-epoch 0"), "{}", text(&o));
    assert!(!run.exists(), "nothing written");

    let o = new_run(&["--stop-after-epoch", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let ck = run.join("checkpoint.ckpt");
    let ck_s = ck.to_str().unwrap();
    assert!(!run.join(".convnet.lock").exists(), "lock released");

    // A second new run in the same folder would overwrite the first.
    let before = std::fs::read(&ck).unwrap();
    let o = new_run(&["--stop-after-epoch", "1"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("--resume") && t.contains("--overwrite"), "{t}");
    assert_eq!(std::fs::read(&ck).unwrap(), before, "checkpoint untouched");

    // Flags that contradict the run are named; agreeing ones are fine.
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "--threads",
            "2",
            "train",
            "--resume",
            ck_s,
            "--progress",
            "quiet",
        ];
        args.extend_from_slice(extra);
        convnet(&args)
    };
    let o = resume(&[
        "--model",
        "lenet5",
        "--lr",
        "0.5",
        "--seed",
        "7",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--out-dir",
        out.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    for flag in ["--lr 0.5", "--seed 7", "--optimizer adam", "--out-dir"] {
        assert!(t.contains(flag), "{flag} not named:\n{t}");
    }
    assert!(!t.contains("--model") && !t.contains("--batch-size"), "{t}");
    let o = resume(&["--epochs", "1"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--epochs 1 is below the 2 epochs"),
        "{}",
        text(&o)
    );

    // A live run holds the folder (this test's process stands in for it).
    let lock = run.join(".convnet.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let o = resume(&[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("another run"), "{}", text(&o));
    assert_eq!(std::fs::read(&ck).unwrap(), before, "checkpoint untouched");
    std::fs::remove_file(&lock).unwrap();

    // Temporaries of a killed write are removed by the next use.
    for name in [".tmp-kIlLeD", ".checkpoint.ckpt.tmp-12345"] {
        std::fs::write(run.join(name), b"half").unwrap();
    }
    let o = resume(&["--out-dir", r]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("removed 2 temporary file(s)"), "{t}");
    assert!(t.contains("epoch 3/3"), "{t}");
    assert!(!run.join(".tmp-kIlLeD").exists());
    assert!(!run.join(".checkpoint.ckpt.tmp-12345").exists());
    assert_eq!(Checkpoint::read_header(&ck).unwrap().epoch, 3);

    // --overwrite starts afresh.
    let o = new_run(&["--stop-after-epoch", "1", "--overwrite"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(Checkpoint::read_header(&ck).unwrap().epoch, 1);
}

#[test]
fn threads_far_above_the_cores_are_capped_with_a_warning() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = 4 * cores + 1;
    if requested > 1024 {
        return; // the flag's own range already stops it
    }
    let o = convnet(&["--threads", &requested.to_string(), "summary", "lenet5"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("warning: --threads {requested}"))
            && err.contains(&format!("using {}", 4 * cores)),
        "{err}"
    );
    let o = convnet(&["--threads", "1", "summary", "lenet5"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
}

/// Sizes are never trusted: absurd model sizes from flags or from a
/// checkpoint, and checkpoint paths that are not regular files, are errors
/// naming the value or the path, never an abort or a hang.
#[test]
fn absurd_sizes_and_special_files_are_clear_errors() {
    for (flag, value, msg) in [
        (
            "--num-classes",
            "1000000000000",
            "num_classes is 1000000000000, more than the 1000000",
        ),
        (
            "--image-size",
            "100000",
            "image_size is 100000, more than the 4096",
        ),
        (
            "--in-channels",
            "1000000000",
            "in_channels is 1000000000, more than the 4096",
        ),
    ] {
        let o = convnet(&["summary", "lenet5", flag, value]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {t}");
        assert!(t.contains(msg) && !t.contains("memory allocation"), "{t}");
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // A well-formed checkpoint whose configuration asks for 10^12 classes.
    let mut net = convnet::layers::Linear::new(
        convnet::layers::LinearConfig::new(2, 2),
        &mut Rng::seed_from(0),
    )
    .unwrap();
    let info = convnet::train::ModelInfo {
        model: "lenet5".into(),
        model_config:
            r#"{"in_channels":1,"image_size":1000000,"num_classes":1000000000000,"variant":null}"#
                .into(),
        ..Default::default()
    };
    let ck = dir.path().join("huge.ckpt");
    Checkpoint::capture(&mut net, &info, 0, None)
        .save(&ck)
        .unwrap();
    let o = convnet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data-dir",
        d,
        "--offline",
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("image_size is 1000000") && !t.contains("memory allocation"),
        "{t}"
    );

    // A folder, and on Linux /dev/zero (never ends) and a FIFO (blocks).
    let mut specials = vec![(d.to_string(), "a directory")];
    if cfg!(target_os = "linux") {
        specials.push(("/dev/zero".to_string(), "a character device"));
        let fifo = dir.path().join("pipe.ckpt");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            specials.push((fifo.to_str().unwrap().to_string(), "a FIFO"));
        }
    }
    for (path, what) in specials {
        let o = convnet(&["eval", "--checkpoint", &path, "--data-dir", d, "--offline"]);
        let t = text(&o);
        assert!(!o.status.success(), "{path}: {t}");
        assert!(t.contains(&path) && t.contains(what), "{path}: {t}");
    }
}

/// A model or batch that needs more memory than is available is refused
/// before it is allocated; `CONVNET_MEMORY_LIMIT` lowers what is available
/// (as a small machine would), and a cap that is not a size is an error.
#[test]
fn runs_that_would_not_fit_in_memory_are_refused_before_allocating() {
    let data = fake_mnist(64, 16);
    let out = data.path().join("run");
    let train = |limit: &str| {
        Command::new(env!("CARGO_BIN_EXE_convnet"))
            .args(["train", "--offline", "--epochs", "1", "--batch-size", "64"])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--out-dir")
            .arg(&out)
            .env_remove("CONVNET_DATA")
            .env(ALLOW_SYNTHETIC_ENV, "1")
            .env("CONVNET_MEMORY_LIMIT", limit)
            .output()
            .unwrap()
    };
    let o = train("2M");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("training on batches of shape [64, 1, 28, 28] would need at least")
            && t.contains("more than the 2.0 MiB available"),
        "{t}"
    );
    assert!(!out.join("checkpoint.ckpt").exists());
    // LeNet-5's 61,706 weights and their gradients (482 KiB) do not fit in
    // 256 KiB: refused while the model is built.
    let o = train("256K");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("weight elements") && t.contains("256.0 KiB"),
        "{t}"
    );
    let o = train("lots");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("CONVNET_MEMORY_LIMIT=\"lots\" is not a size"),
        "{t}"
    );
}

#[test]
fn train_from_weights_with_another_head_and_a_frozen_backbone() {
    use convnet::layers::Layer;
    use convnet::weights::StateDict;
    let data = fake_mnist(32, 20);
    // "Pretrained" ResNet-20 with a 5-class head, BatchNorm statistics set.
    let pre_config = convnet::zoo::ModelConfig {
        num_classes: 5,
        ..convnet::zoo::ModelConfig::mnist()
    };
    let mut pre = convnet::zoo::build("resnet20", &pre_config, &mut Rng::seed_from(1)).unwrap();
    pre.visit_buffers_mut("", &mut |k, t| {
        if k.ends_with("running_var") {
            t.as_slice_mut().iter_mut().for_each(|v| *v = 2.0);
        }
    });
    let pretrained = StateDict::from_model(pre.as_ref());
    let weights = data.path().join("pre.safetensors");
    convnet::weights::safetensors_io::write(&weights, &pretrained, None).unwrap();
    let out = data.path().join("run");
    let base = [
        "train",
        "--model",
        "resnet20",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--warmup-steps",
        "0",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--offline",
        "--progress",
        "plain",
        "--out-dir",
        out.to_str().unwrap(),
    ];
    // Freezing needs trained weights.
    let o = convnet(&[&base[..], &["--freeze-backbone"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--weights"), "{}", text(&o));

    let o = convnet(
        &[
            &base[..],
            &["--weights", weights.to_str().unwrap(), "--freeze-backbone"],
        ]
        .concat(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("re-initialised head (the weights' head has 5 classes, this model 10): fc.weight, fc.bias"),
        "{t}"
    );
    assert!(t.contains("frozen backbone: training 650 of"), "{t}");
    let check = |ck: &Checkpoint| {
        assert_eq!(ck.header.class_names.len(), 10);
        let pre = ck.header.preprocessing.as_ref().unwrap();
        assert_eq!((pre.in_channels, pre.image_size), (1, 28));
        assert_eq!(
            (pre.mean.as_slice(), pre.std.as_slice()),
            (&[0.1307f32][..], &[0.3081f32][..])
        );
        let frozen = &ck.payload.train.as_ref().unwrap().frozen;
        assert!(!frozen.is_empty() && !frozen.iter().any(|k| k.starts_with("fc.")));
        let sd = convnet::app::weights::checkpoint_state_dict(ck).unwrap();
        for e in sd.iter() {
            let was = pretrained.get(&e.name).unwrap();
            if e.name.starts_with("fc.") {
                assert_ne!(e.tensor.shape(), was.shape());
            } else {
                assert_eq!(e.tensor.as_slice(), was.as_slice(), "{} changed", e.name);
            }
        }
    };
    let ckpt = out.join("checkpoint.ckpt");
    check(&Checkpoint::load(&ckpt).unwrap());
    // Resumed, the backbone stays frozen (the checkpoint says so).
    let o = convnet(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "2",
        "--progress",
        "plain",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ck = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(ck.header.epoch, 2);
    check(&ck);
    // eval reports the checkpoint's class names.
    let o = convnet(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--offline",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

/// `eval --plot` onto the checkpoint it evaluates or onto the test set it
/// reads is refused before anything is written (a plot once replaced
/// both); a new path gets the heat map. Special files are refused as
/// `--resume` checkpoints and `infer` inputs too (both once read
/// `/dev/zero` until memory ran out).
#[test]
fn eval_plot_never_replaces_its_inputs_and_special_inputs_are_refused() {
    let data = fake_mnist(32, 20);
    let config = convnet::zoo::ModelConfig::mnist();
    let mut model = convnet::zoo::build("lenet1", &config, &mut Rng::seed_from(0)).unwrap();
    let info = convnet::train::ModelInfo {
        model: "lenet1".into(),
        model_config: serde_json::to_string(&config).unwrap(),
        dataset: "mnist".into(),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let ck = data.path().join("model.ckpt");
    Checkpoint::capture(model.as_mut(), &info, 1, None)
        .save(&ck)
        .unwrap();
    let test_images = data.path().join("mnist").join("t10k-images-idx3-ubyte");
    let d = data.path().to_str().unwrap();
    for target in [&ck, &test_images] {
        let before = std::fs::read(target).unwrap();
        let o = convnet(&[
            "eval",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--data-dir",
            d,
            "--offline",
            "--plot",
            target.to_str().unwrap(),
        ]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("refusing to write there"), "{t}");
        assert_eq!(std::fs::read(target).unwrap(), before, "{target:?} changed");
    }
    let heat = data.path().join("heat.png");
    let o = convnet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data-dir",
        d,
        "--offline",
        "--plot",
        heat.to_str().unwrap(),
    ]);
    assert!(o.status.success() && heat.is_file(), "{}", text(&o));

    if cfg!(target_os = "linux") {
        let o = convnet(&["train", "--resume", "/dev/zero"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("a character device"), "{t}");
        let out = data.path().join("y.npy");
        let o = convnet(&[
            "infer",
            "--model",
            "lenet5",
            "--weights",
            ck.to_str().unwrap(),
            "--input",
            "/dev/zero",
            "--output",
            out.to_str().unwrap(),
        ]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("a character device"), "{t}");
    }
}
