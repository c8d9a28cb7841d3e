//! Each picture that needs no dataset is drawn, decoded and checked: its
//! size, and that it is not blank. (Samples and mistakes need the real
//! MNIST: `tests/show_pictures.rs` of the workspace's tests crate.)

use std::path::Path;

use convnet_layers::{Conv2d, Conv2dConfig, Layer, ReLU, Sequential};
use convnet_tensor::{Rng, Tensor};
use convnet_zoo::ModelConfig;

use super::features::{feature_maps, show_features, FeatureInput, FeaturesOptions};
use super::filters::{conv_layers, filters_picture, show_filters};
use super::*;

/// Checks that the PNG at `path` is not blank: more than `min_ink` of its
/// pixels are not white, and it has many colours. Returns its size.
fn decode_inked(path: &Path, min_ink: f64) -> (u32, u32) {
    let stats = picture_stats(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(stats.ink > min_ink, "{}: {stats:?}", path.display());
    assert!(stats.colours >= 16, "{}: {stats:?}", path.display());
    (stats.width, stats.height)
}

/// A LeNet-5 with seeded random weights, saved as a zoo checkpoint.
fn lenet_checkpoint(dir: &Path) -> std::path::PathBuf {
    let config = ModelConfig::mnist();
    let model = convnet_zoo::build("lenet5", &config, &mut Rng::seed_from(11)).unwrap();
    let path = dir.join("lenet5.ckpt");
    crate::save_zoo(model.as_ref(), "lenet5", &config, &path).unwrap();
    path
}

#[test]
fn activation_curves_are_drawn_from_the_layers() {
    let (xs, relu, gelu) = activations::activation_values(9).unwrap();
    assert_eq!(xs, [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(relu, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    // GELU(1) = Φ(1) = 0.8413, GELU(-1) = -0.1587.
    assert!((gelu[5] - 0.841_345).abs() < 1e-5, "{}", gelu[5]);
    assert!((gelu[3] + 0.158_655).abs() < 1e-5, "{}", gelu[3]);

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("activations.png");
    activation_curves(&png).unwrap();
    assert_eq!(decode_inked(&png, 0.02), activations::SIZE);
    let img = image::open(&png).unwrap().to_rgb8();
    let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
    assert!(count([0, 0, 255]) > 500, "the blue ReLU curve");
    assert!(count([255, 0, 0]) > 500, "the red GELU curve");
    let e = activation_curves(&dir.path().join("no/such/dir.png")).unwrap_err();
    assert!(e.to_string().contains("no/such"), "{e}");
}

#[test]
fn filters_of_the_first_and_of_a_named_convolution() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = lenet_checkpoint(dir.path());
    let png = dir.path().join("filters.png");
    assert_eq!(show_filters(&ckpt, None, None, &png).unwrap(), "conv1");
    let (w, h) = decode_inked(&png, 0.05);
    // Six 5×5 filters drawn 9× (45 px), in one row of tiles.
    assert!(w >= 6 * 45 && h >= 64 + 45, "{:?}", (w, h));
    assert_eq!(
        show_filters(&ckpt, None, Some("conv2"), &png).unwrap(),
        "conv2"
    );
    let (w, h) = decode_inked(&png, 0.05);
    // A row per filter (16) and a column per input channel (6).
    assert!(h >= 16 * 45 && w >= 6 * 45, "{:?}", (w, h));

    let e = show_filters(&ckpt, None, Some("fc1"), &png)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--layer fc1") && e.contains("conv1 [6, 1, 5, 5], conv2 [16, 6, 5, 5]"),
        "{e}"
    );
    let missing = dir.path().join("missing.ckpt");
    let e = show_filters(&missing, None, None, &png)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.ckpt"), "{e}");
    let e = show_filters(&ckpt, None, None, &ckpt)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lenet5.ckpt"),
        "writing over the checkpoint is refused: {e}"
    );
}

#[test]
fn filters_of_rgb_inputs_are_in_colour() {
    let conv = Conv2d::new(Conv2dConfig::new(3, 10, 3), &mut Rng::seed_from(2)).unwrap();
    let features = Sequential::new(vec![Box::new(conv), Box::new(ReLU::new())]);
    let model =
        Sequential::named(vec![("features", Box::new(features) as Box<dyn Layer>)]).unwrap();
    let convs = conv_layers(&model);
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].0, "features.0", "named by its state-dict prefix");
    assert_eq!(convs[0].1.shape(), &[10, 3, 3, 3]);
    let e = filters::conv_weight(&model, Some("features.1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("features.0 [10, 3, 3, 3]"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("rgb.png");
    filters_picture("conv", &convs[0].1, "RGB filters", &png).unwrap();
    decode_inked(&png, 0.05);
    let img = image::open(&png).unwrap().to_rgb8();
    let coloured = img
        .pixels()
        .filter(|p| p.0[0].abs_diff(p.0[1]) > 40 || p.0[1].abs_diff(p.0[2]) > 40)
        .count();
    assert!(coloured > 10 * 48 * 48 / 4, "{coloured} coloured pixels");
    let bad = Tensor::zeros(&[4, 3]);
    assert!(filters_picture("fc", &bad, "x", &png).is_err());
}

#[test]
fn feature_maps_after_each_convolution_and_pooling() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = lenet_checkpoint(dir.path());
    // A light vertical stroke on a dark background: a "1".
    let mut digit = image::GrayImage::new(28, 28);
    for y in 5..23 {
        for x in 12..16 {
            digit.put_pixel(x, y, image::Luma([255]));
        }
    }
    let image_path = dir.path().join("one.png");
    digit.save(&image_path).unwrap();
    let png = dir.path().join("features.png");
    let opts = FeaturesOptions {
        max_channels: 6,
        ..Default::default()
    };
    let layers = show_features(&ckpt, FeatureInput::Image(&image_path), &opts, &png).unwrap();
    assert_eq!(layers, ["conv1", "pool1", "conv2", "pool2"]);
    let (w, h) = decode_inked(&png, 0.1);
    // Five rows (input and four layers) of tiles at least 48 px high.
    assert!(h >= 44 + 5 * 48 && w >= 6 * 56, "{w}x{h}");

    // The maps are the layers' outputs, and the model's output follows them.
    let model = crate::load(&ckpt).unwrap();
    let x = Tensor::full(&[1, 1, 28, 28], 0.5);
    let maps = feature_maps(model.as_ref(), &x).unwrap();
    let shapes: Vec<&[usize]> = maps.iter().map(|m| m.output.shape()).collect();
    assert_eq!(
        shapes,
        [
            &[1, 6, 28, 28][..],
            &[1, 6, 14, 14],
            &[1, 16, 10, 10],
            &[1, 16, 5, 5]
        ]
    );
    let mut conv1 = None;
    model.visit_children(&mut |name, child| {
        if name == "conv1" {
            conv1 = Some(child.infer(&x).unwrap());
        }
    });
    assert_eq!(maps[0].output, conv1.unwrap());

    // Bad input: not an image, no dataset for --index.
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not a picture").unwrap();
    let e = show_features(&ckpt, FeatureInput::Image(&text), &opts, &png).unwrap_err();
    assert!(e.to_string().contains("notes.png"), "{e}");
    let e = show_features(&ckpt, FeatureInput::Index(3), &opts, &png).unwrap_err();
    assert!(e.to_string().contains("--dataset"), "{e}");
}

#[test]
fn class_labels_are_french_and_english_for_fashion_mnist() {
    use convnet_datasets::DatasetKind;
    assert_eq!(
        class_label(DatasetKind::FashionMnist, 1),
        "Pantalon / Trouser"
    );
    assert_eq!(
        class_label(DatasetKind::FashionMnist, 9),
        "Bottine / Ankle boot"
    );
    assert_eq!(class_label(DatasetKind::Mnist, 0), "0");
    assert_eq!(class_label(DatasetKind::Mnist, 12), "12");
}
