//! `convnet show samples` and `convnet show mistakes` on the real MNIST and
//! Fashion-MNIST (found as the binary finds them, see
//! [`convnet_tests::real_dataset`]; never skipped): each PNG is decoded and
//! checked for its size and that it is not blank.

use std::path::Path;

use convnet::app::show::{
    dataset_samples, mistakes::find_mistakes, picture_stats, show_mistakes, MistakesOptions,
    SamplesOptions,
};
use convnet::datasets::{Dataset, DatasetKind, ImageSource, Split};
use convnet::tensor::Rng;
use convnet::zoo::ModelConfig;
use convnet_tests::real_dataset;

/// Checks that the PNG at `path` is not blank: more than `min_ink` of its
/// pixels are not white, and it has many colours. Returns its size.
fn decode_inked(path: &Path, min_ink: f64) -> (u32, u32) {
    let stats = picture_stats(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(stats.ink > min_ink, "{}: {stats:?}", path.display());
    assert!(stats.colours >= 32, "{}: {stats:?}", path.display());
    (stats.width, stats.height)
}

#[test]
fn samples_of_both_datasets_a_row_per_class() {
    let dir = tempfile::tempdir().unwrap();
    for kind in DatasetKind::ALL {
        let data = real_dataset(kind);
        let sizes: Vec<(u32, u32)> = [3, 5]
            .into_iter()
            .map(|per_class| {
                let png = dir.path().join(format!("{}-{per_class}.png", kind.name()));
                let opts = SamplesOptions {
                    per_class,
                    ..SamplesOptions::default()
                };
                dataset_samples(kind, &data, &opts, &png).unwrap();
                decode_inked(&png, 0.3)
            })
            .collect();
        // Ten rows of 56-pixel images (28 drawn 2x) and 4-pixel gaps...
        assert_eq!(sizes[0].1, 44 + 10 * 60 + 8, "{kind}");
        assert_eq!(sizes[0].1, sizes[1].1, "{kind}");
        // ...and two more images per row are 120 pixels wider (past the title's width).
        assert!(
            sizes[1].0 == sizes[0].0 + 120 || sizes[0].0 == 420,
            "{kind}: {sizes:?}"
        );
    }
    let e = dataset_samples(
        DatasetKind::Mnist,
        &real_dataset(DatasetKind::Mnist),
        &SamplesOptions {
            per_class: 0,
            ..SamplesOptions::default()
        },
        &dir.path().join("none.png"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--per-class 0"), "{e}");
}

#[test]
fn the_worst_mistakes_of_a_model_ranked_and_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let kind = DatasetKind::Mnist;
    let data = real_dataset(kind);
    // An untrained LeNet-5 gets most images wrong.
    let config = ModelConfig::mnist();
    let model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(5)).unwrap();
    let ckpt = dir.path().join("lenet5.ckpt");
    convnet::save_zoo(model.as_ref(), "lenet5", &config, &ckpt).unwrap();
    let png = dir.path().join("mistakes.png");
    let opts = MistakesOptions {
        model: None,
        dataset: Some(kind),
        data_dir: Some(&data),
        offline: true,
        count: 12,
        limit: Some(400),
    };
    let found = show_mistakes(&ckpt, &opts, &png).unwrap();
    assert_eq!(found.len(), 12);
    let (w, h) = decode_inked(&png, 0.1);
    // Two rows of six images drawn 3x (84 pixels) with four lines of labels.
    assert_eq!(h, 44 + 2 * (84 + 4 * 14 + 12) + 8);
    assert!(w > 6 * 84, "{w}x{h}");
    let test = Dataset::load(kind, Split::Test, &data).unwrap();
    for pair in found.windows(2) {
        assert!(pair[0].loss() >= pair[1].loss(), "worst first: {pair:?}");
    }
    for m in &found {
        assert!(m.index < 400);
        assert_eq!(m.label, ImageSource::label(&test, m.index));
        assert_ne!(m.predicted, m.label);
        assert!(m.predicted_probability > m.true_probability);
    }
    // The same search, by the library call.
    let subset = test.subset(0..400).unwrap();
    let again = find_mistakes(model.as_ref(), &subset, kind.mean_std(), 12).unwrap();
    assert_eq!(again, found);

    let e = show_mistakes(&ckpt, &MistakesOptions { count: 0, ..opts }, &png).unwrap_err();
    assert!(e.to_string().contains("--count 0"), "{e}");
    let e = show_mistakes(
        &ckpt,
        &MistakesOptions {
            dataset: None,
            ..opts
        },
        &png,
    )
    .unwrap_err();
    assert!(e.to_string().contains("pass --dataset"), "{e}");
}
