//! `convnet show ...` through the binary: the pictures are written and
//! decode, and bad input is a one-line error with a non-zero exit, never a
//! panic. (The pictures themselves are checked in `app::show::tests` and in
//! the workspace's `tests/show_pictures.rs`.)

mod common;

use common::{convnet, s, text};
use convnet::tensor::Rng;
use convnet::zoo::ModelConfig;

#[test]
fn show_writes_pictures_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let act = dir.path().join("act.png");
    let o = convnet(&["show", "activations", "-o", s(&act)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ReLU and GELU curves written to"),
        "{}",
        text(&o)
    );
    assert_eq!(image::image_dimensions(&act).unwrap(), (800, 500));

    let config = ModelConfig::mnist();
    let model = convnet::zoo::build("lenet5", &config, &mut Rng::seed_from(1)).unwrap();
    let ckpt = dir.path().join("lenet5.ckpt");
    convnet::save_zoo(model.as_ref(), "lenet5", &config, &ckpt).unwrap();
    let png = dir.path().join("filters.png");
    let o = convnet(&[
        "show",
        "filters",
        "--checkpoint",
        s(&ckpt),
        "--layer",
        "conv2",
        "-o",
        s(&png),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("filters of conv2 written to"),
        "{}",
        text(&o)
    );
    let (w, h) = image::image_dimensions(&png).unwrap();
    assert!(w > 200 && h > 16 * 45, "{w}x{h}");

    let none = dir.path().join("none.ckpt");
    let refused: [(&[&str], &str); 4] = [
        (
            &[
                "show",
                "filters",
                "--checkpoint",
                s(&ckpt),
                "--layer",
                "fc3",
                "-o",
                s(&png),
            ],
            "conv1",
        ),
        (
            &["show", "filters", "--checkpoint", s(&none), "-o", s(&png)],
            "none.ckpt",
        ),
        (
            &["show", "features", "--checkpoint", s(&ckpt), "-o", s(&png)],
            "--image",
        ),
        (
            &["show", "samples", "--dataset", "cifar10", "-o", s(&png)],
            "cifar10",
        ),
    ];
    for (args, says) in refused {
        let o = convnet(args);
        let t = text(&o);
        assert_eq!(
            o.status.code(),
            Some(if args[1] == "filters" { 1 } else { 2 }),
            "{args:?}: {t}"
        );
        assert!(t.contains(says) && !t.contains("panicked"), "{args:?}: {t}");
    }
}
