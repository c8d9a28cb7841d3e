//! `convnet train`, `eval` and `predict` on CIFAR and image folders, and
//! fine-tuning a torchvision-format ResNet-18 on a folder with a frozen
//! backbone (small synthetic data written by the tests).

use std::path::Path;

use convnet::tensor::Rng;

mod common;
use common::{convnet, s, text};

/// Class `c` of `classes`: a colour of its own plus noise.
fn pixel_of(c: usize, channel: usize, rng: &mut Rng) -> u8 {
    let base = [(220, 30, 30), (30, 220, 30), (30, 30, 220)][c % 3];
    let v = [base.0, base.1, base.2][channel] as u8;
    v.saturating_add(rng.below(30) as u8)
}

/// A small CIFAR-10 in the publisher's binary format: `n` records per file.
fn fake_cifar10(dir: &Path, n: usize) {
    let d = dir.join("cifar10");
    std::fs::create_dir_all(&d).unwrap();
    let mut rng = Rng::seed_from(1);
    let mut batch = |name: &str| {
        let mut bytes = Vec::new();
        for i in 0..n {
            let c = i % 3;
            bytes.push(c as u8);
            for ch in 0..3 {
                for _ in 0..1024 {
                    bytes.push(pixel_of(c, ch, &mut rng));
                }
            }
        }
        std::fs::write(d.join(name), bytes).unwrap();
    };
    for i in 1..=5 {
        batch(&format!("data_batch_{i}.bin"));
    }
    batch("test_batch.bin");
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(d.join("batches.meta.txt"), names).unwrap();
}

/// An image folder `root/{train,val}/<class>/*.png` of RGB images of
/// varying sizes, three classes.
fn fake_folder(root: &Path, per_class: usize) {
    let mut rng = Rng::seed_from(2);
    for split in ["train", "val"] {
        for (c, class) in ["cat", "dog", "owl"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..per_class {
                let (w, h) = (30 + 3 * i as u32, 40 - 2 * i as u32);
                let img = image::RgbImage::from_fn(w, h, |_, _| {
                    image::Rgb([0, 1, 2].map(|ch| pixel_of(c, ch, &mut rng)))
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

#[test]
fn cifar10_trains_evaluates_and_predicts_with_its_class_names() {
    let dir = tempfile::tempdir().unwrap();
    fake_cifar10(dir.path(), 12);
    let run = dir.path().join("run");
    let o = convnet(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        s(dir.path()),
        "--offline",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out-dir",
        s(&run),
        "--progress",
        "plain",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("on CIFAR-10 (60 training / 12 test images"),
        "{t}"
    );
    let ck = run.join("checkpoint.ckpt");
    let header = convnet::train::Checkpoint::read_header(&ck).unwrap();
    assert_eq!(header.dataset, "cifar10");
    assert_eq!(header.class_names[9], "truck");
    let pre = header.preprocessing.unwrap();
    assert_eq!((pre.in_channels, pre.image_size), (3, 32));
    assert_eq!(pre.mean, vec![0.4914, 0.4822, 0.4465]);

    let o = convnet(&["eval", "--checkpoint", s(&ck), "--data-dir", s(dir.path())]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("on the CIFAR-10 test set (12 images)"), "{t}");
    assert!(t.contains("automobile"), "{t}");

    // A 50x40 photo is resized to 32x32 as in training's evaluation.
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_pixel(50, 40, image::Rgb([200, 40, 40]))
        .save(&photo)
        .unwrap();
    let o = convnet(&["predict", "--checkpoint", s(&ck), s(&photo)]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("photo.png (50x40)"), "{t}");
    assert!(t.contains("Resize(Exact { height: 32, width: 32 })"), "{t}");
}

#[test]
fn an_image_folder_trains_and_bad_files_are_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pets");
    fake_folder(&root, 4);
    let run = dir.path().join("run");
    let spec = format!("folder:{}", root.display());
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            &spec,
            "--image-size",
            "28",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out-dir",
            s(&run),
            "--overwrite",
            "--progress",
            "plain",
        ];
        args.extend_from_slice(extra);
        convnet(&args)
    };
    let o = train(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("12 training / 12 test images"), "{t}");
    let header = convnet::train::Checkpoint::read_header(&run.join("checkpoint.ckpt")).unwrap();
    assert_eq!(header.class_names, ["cat", "dog", "owl"]);
    assert_eq!(header.preprocessing.unwrap().in_channels, 3);
    let o = convnet(&["eval", "--checkpoint", s(&run.join("checkpoint.ckpt"))]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("(12 images)"), "{t}");

    // torchvision's other augmentations and a given normalisation.
    let o = train(&[
        "--random-resized-crop",
        "--color-jitter",
        "0.4,0.4,0.4,0.1",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let header = convnet::train::Checkpoint::read_header(&run.join("checkpoint.ckpt")).unwrap();
    let pre = header.preprocessing.unwrap();
    assert_eq!(pre.mean, vec![0.5; 3]);
    assert!(
        !pre.eval_pipeline.contains("ColorJitter"),
        "{}",
        pre.eval_pipeline
    );
    let o = train(&["--mean", "0.5,0.5", "--std", "0.2,0.2"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("got 2 means"), "{t}");
    let o = train(&["--color-jitter", "1,2"]);
    assert!(text(&o).contains("3 or 4 numbers"), "{}", text(&o));
    let o = convnet(&["train", "--color-jitter", "0.4,0.4,0.4"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("are for CIFAR and image folders"), "{t}");

    // A truncated PNG and a text file named .jpg: refused by name, or skipped.
    let good = std::fs::read(root.join("train/dog/0.png")).unwrap();
    let cut = root.join("train/dog/cut.png");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    std::fs::write(root.join("train/owl/notes.jpg"), "not an image").unwrap();
    let o = train(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("cut.png") || t.contains("notes.jpg"), "{t}");
    let o = train(&["--skip-bad-images"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("skipped") && t.contains("cut.png") && t.contains("notes.jpg"),
        "{t}"
    );
}

/// The acceptance: ResNet-18 from a torchvision-format state dict
/// (1000 classes) fine-tuned on a 3-class folder with `--freeze-backbone`:
/// the new head is trained, every other tensor is unchanged.
#[test]
fn resnet18_fine_tuned_on_a_folder_with_a_frozen_backbone_changes_only_its_head() {
    use convnet::weights::StateDict;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pets");
    fake_folder(&root, 2);
    let config = convnet::zoo::ModelConfig {
        image_size: 32,
        ..convnet::zoo::ModelConfig::imagenet()
    };
    let pre = convnet::zoo::build("resnet18", &config, &mut Rng::seed_from(7)).unwrap();
    let before = StateDict::from_model(pre.as_ref());
    let weights = dir.path().join("resnet18.safetensors");
    convnet::weights::safetensors_io::write(&weights, &before, None).unwrap();
    let run = dir.path().join("run");
    let spec = format!("folder:{}", root.display());
    let o = convnet(&[
        "train",
        "--model",
        "resnet18",
        "--dataset",
        &spec,
        "--image-size",
        "32",
        "--weights",
        s(&weights),
        "--freeze-backbone",
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--out-dir",
        s(&run),
        "--progress",
        "plain",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("re-initialised head"), "{t}");
    let after = convnet::app::weights::read_weights(&run.join("checkpoint.ckpt"))
        .unwrap()
        .state;
    let mut changed = Vec::new();
    for entry in after.iter() {
        let (key, tensor) = (&entry.name, &entry.tensor);
        if key.starts_with("fc.") {
            assert_eq!(tensor.shape()[0], 3, "{key}: a 3-class head");
            continue;
        }
        let old = before
            .get(key)
            .unwrap_or_else(|| panic!("{key} not in the weights"));
        if old.as_slice() != tensor.as_slice() {
            changed.push(key.to_string());
        }
    }
    assert!(changed.is_empty(), "frozen tensors changed: {changed:?}");
}

/// `convnet train --model googlenet_aux` trains GoogLeNet's two auxiliary
/// classifiers (their loss weighted 0.3): without weight decay, a weight
/// moves only if it got a gradient, and every head's classifier moved.
#[test]
fn googlenet_aux_trains_its_auxiliary_heads_from_the_command_line() {
    use convnet::layers::Layer;
    let dir = tempfile::tempdir().unwrap();
    fake_cifar10(dir.path(), 8);
    let run = dir.path().join("run");
    let o = convnet(&[
        "train",
        "--model",
        "googlenet_aux",
        "--dataset",
        "cifar10",
        "--data-dir",
        s(dir.path()),
        "--offline",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--weight-decay",
        "0",
        "--lr",
        "0.0001",
        "--seed",
        "7",
        "--out-dir",
        s(&run),
        "--progress",
        "plain",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let trained = convnet::load(run.join("checkpoint.ckpt")).unwrap();
    let config = convnet::zoo::ModelConfig {
        in_channels: 3,
        image_size: 32,
        num_classes: 10,
        variant: None,
    };
    let initial = convnet::zoo::build("googlenet_aux", &config, &mut Rng::seed_from(7)).unwrap();
    let mut start = std::collections::BTreeMap::new();
    initial.visit_params("", &mut |k, p| {
        start.insert(k.to_string(), p.value.as_slice().to_vec());
    });
    let mut moved = Vec::new();
    trained.visit_params("", &mut |k, p| {
        let (w0, w) = (&start[k], p.value.as_slice());
        let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x * x).sum::<f32>().sqrt();
        let step = norm(&mut w0.iter().zip(w).map(|(a, b)| a - b));
        // A training step, not another initialisation: the command built
        // the same seeded model as this test.
        assert!(
            step < 0.5 * norm(&mut w0.iter().copied()) + 0.01,
            "{k} moved by {step}"
        );
        if step > 0.0 {
            moved.push(k.to_string());
        }
    });
    for key in [
        "aux1.fc2.weight",
        "aux2.fc2.weight",
        "aux1.conv.conv.weight",
        "fc.weight",
    ] {
        assert!(
            moved.iter().any(|k| k == key),
            "{key} did not change: {moved:?}"
        );
    }
}
