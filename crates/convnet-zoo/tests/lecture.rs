//! The lecture's statements about its networks (`shared/seed/lecture-cnn.md`),
//! checked against the zoo.
//!
//! The lecture rounds: "60000" parameters for LeNet-5, "60 millions" for
//! AlexNet are one significant figure; "138 millions" for VGG16 three;
//! "2600" and "17000" for LeNet-1 and LeNet-4 two. Each count is asserted
//! to round to the lecture's figure at the lecture's precision: the
//! tolerance is exactly what its rounding implies, no more.
//!
//! One statement does not survive that test: "Inception v1 contient environ
//! 6.9 millions de paramètres". torchvision's GoogLeNet has 6,624,904
//! (6.6M: its `branch3` uses 3×3 instead of 5×5 convolutions, and
//! BatchNorm); the paper's architecture (the `paper` variant, 5×5) has
//! 7,005,832 with BatchNorm, 6,990,272 convolution and linear weights
//! (7.0M). The lecture's 6.9M is most likely the paper's Table 1 total,
//! whose "K" are 1024s (its conv2 row, 114,688 weights, reads "112K"): its
//! rows sum to 6,797.7K = 6.96M weights, written 6.9M. So the test asserts
//! what is true: the paper architecture's weights truncate to 6.9M, and
//! torchvision's count is within 5% of the lecture's figure (4.0% below),
//! the 5% stating how far "environ" is stretched, in the open.
//!
//! Depths are counted as the papers count them ([`convnet_zoo::depth`]):
//! layers with weights (convolutions, linear layers) on the longest path;
//! GoogLeNet's inception modules count 2 (a 1×1 then a 3×3 or 5×5), its
//! auxiliary classifiers are side exits.

use convnet_layers::{Conv2d, Conv2dConfig, Layer, Sequential};
use convnet_tensor::Rng;
use convnet_zoo::depth::{depth, DepthOptions};
use convnet_zoo::{build, ModelConfig};

fn model(name: &str, config: &ModelConfig) -> Box<dyn Layer> {
    build(name, config, &mut Rng::seed_from(0)).unwrap()
}

/// `n` rounded to `digits` significant figures.
fn round_sig(n: usize, digits: u32) -> usize {
    let magnitude = (n as f64).log10().floor() as i32;
    let scale = 10f64.powi(magnitude + 1 - digits as i32);
    ((n as f64 / scale).round() * scale) as usize
}

fn weight_layers(m: &dyn Layer, input: &[usize]) -> usize {
    depth(m, input, DepthOptions::default()).unwrap()
}

const IMAGENET: [usize; 4] = [1, 3, 224, 224];
const MNIST: [usize; 4] = [1, 1, 28, 28];

#[test]
fn lenet_table() {
    // | LeNet (1989) | 2600 | LeNet-4 | 17000 | LeNet-5 (1998) | 60000 |
    let mnist = ModelConfig::mnist();
    let lenet1 = model("lenet1", &mnist);
    let lenet4 = model("lenet4", &mnist);
    let lenet5 = model("lenet5", &mnist);
    assert_eq!(lenet1.num_params(), 2_646);
    assert_eq!(round_sig(lenet1.num_params(), 2), 2_600);
    assert_eq!(lenet4.num_params(), 16_950);
    assert_eq!(round_sig(lenet4.num_params(), 2), 17_000);
    assert_eq!(lenet5.num_params(), 61_706);
    assert_eq!(round_sig(lenet5.num_params(), 1), 60_000);
    // "AlexNet en avait 8 et LeNet-5 7": LeNet-5's 7 layers are the
    // paper's C1, S2, C3, S4, C5, F6 and output, pooling included.
    let with_pooling = DepthOptions {
        count_pooling: true,
    };
    assert_eq!(depth(lenet5.as_ref(), &MNIST, with_pooling).unwrap(), 7);
    assert_eq!(weight_layers(lenet5.as_ref(), &MNIST), 5);
}

#[test]
fn alexnet_60_million_parameters_8_layers() {
    let alexnet = model("alexnet", &ModelConfig::imagenet());
    assert_eq!(alexnet.num_params(), 61_100_840);
    assert_eq!(round_sig(alexnet.num_params(), 1), 60_000_000);
    // "environ 60 millions de paramètres contre environ 60 mille pour LeNet-5"
    let lenet5 = model("lenet5", &ModelConfig::mnist());
    let ratio = alexnet.num_params() as f64 / lenet5.num_params() as f64;
    assert_eq!(round_sig(ratio.round() as usize, 1), 1000);
    assert_eq!(weight_layers(alexnet.as_ref(), &IMAGENET), 8);
}

#[test]
fn inception_v1_parameters_22_layers_and_9_times_fewer_than_alexnet() {
    let imagenet = ModelConfig::imagenet();
    let torchvision = model("googlenet", &imagenet);
    let paper = model(
        "googlenet",
        &ModelConfig {
            variant: Some("paper".into()),
            ..ModelConfig::imagenet()
        },
    );
    assert_eq!(torchvision.num_params(), 6_624_904);
    assert_eq!(paper.num_params(), 7_005_832);
    // The paper's architecture: convolution and linear weights (no
    // BatchNorm, which the paper did not have, no biases, which its Table 1
    // does not count) truncate to the lecture's 6.9M.
    let weights: usize = paper
        .param_shapes()
        .iter()
        .filter(|(_, s)| s.len() >= 2)
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(weights, 6_990_272);
    assert_eq!(weights / 100_000, 69);
    // torchvision's: within 5% of 6.9M (see the module docs).
    let off = (torchvision.num_params() as f64 - 6.9e6).abs() / 6.9e6;
    assert!(off < 0.05, "{off}");
    // "22 couches" (27 with pooling, says the paper), either kernel.
    for m in [&torchvision, &paper] {
        assert_eq!(weight_layers(m.as_ref(), &IMAGENET), 22);
        let with_pooling = DepthOptions {
            count_pooling: true,
        };
        assert_eq!(depth(m.as_ref(), &IMAGENET, with_pooling).unwrap(), 27);
    }
    // The auxiliary classifiers are side exits: no deeper.
    let aux = model("googlenet_aux", &imagenet);
    assert_eq!(weight_layers(aux.as_ref(), &IMAGENET), 22);
    // "soit presque 9 fois moins qu'AlexNet"
    let alexnet = model("alexnet", &imagenet).num_params() as f64;
    for m in [&torchvision, &paper] {
        let ratio = alexnet / m.num_params() as f64;
        assert_eq!(ratio.round(), 9.0, "{ratio}");
    }
}

#[test]
fn vgg16_138_million_parameters_16_weight_layers() {
    let imagenet = ModelConfig::imagenet();
    let vgg16 = model("vgg16", &imagenet);
    assert_eq!(vgg16.num_params(), 138_357_544);
    assert_eq!(round_sig(vgg16.num_params(), 3), 138_000_000);
    assert_eq!(weight_layers(vgg16.as_ref(), &IMAGENET), 16);
    // "VGG16 contient 16 couches, VGG19 en contient 19"
    drop(vgg16);
    for (name, n) in [
        ("vgg11", 11),
        ("vgg13", 13),
        ("vgg19", 19),
        ("vgg19_bn", 19),
    ] {
        assert_eq!(
            weight_layers(model(name, &imagenet).as_ref(), &IMAGENET),
            n,
            "{name}"
        );
    }
}

#[test]
fn two_3x3_convolutions_replace_a_5x5_with_fewer_parameters() {
    // "Une couche de convolution 5×5 : 26 paramètres ; deux couches de
    // convolution 3×3 : 20 paramètres", one channel in and out, with biases,
    // for the same 5×5 receptive field.
    let mut rng = Rng::seed_from(0);
    let c5 = Conv2d::new(Conv2dConfig::new(1, 1, 5), &mut rng).unwrap();
    let c33 = Sequential::default()
        .with(Conv2d::new(Conv2dConfig::new(1, 1, 3), &mut rng).unwrap())
        .with(Conv2d::new(Conv2dConfig::new(1, 1, 3), &mut rng).unwrap());
    assert_eq!(c5.num_params(), 26);
    assert_eq!(c33.num_params(), 20);
    for size in [5, 12, 28] {
        let input = [1, 1, size, size];
        assert_eq!(
            c5.output_shape(&input).unwrap(),
            c33.output_shape(&input).unwrap()
        );
    }
}

#[test]
fn resnet50_has_50_layers() {
    let imagenet = ModelConfig::imagenet();
    let resnet50 = model("resnet50", &imagenet);
    assert_eq!(weight_layers(resnet50.as_ref(), &IMAGENET), 50);
    for (name, n) in [
        ("resnet18", 18),
        ("resnet34", 34),
        ("resnet101", 101),
        ("resnet152", 152),
    ] {
        assert_eq!(
            weight_layers(model(name, &imagenet).as_ref(), &IMAGENET),
            n,
            "{name}"
        );
    }
    let resnet20 = model("resnet20", &ModelConfig::mnist());
    assert_eq!(weight_layers(resnet20.as_ref(), &MNIST), 20);
}
