//! The ImageNet CNNs of the zoo against torchvision: exact parameter
//! counts, `state_dict` keys and shapes, the shapes through the network at
//! 224×224 (without running it: `output_shape` and `summary`), and the
//! multiply-adds against torchvision's published "GFLOPS" column.

use std::collections::HashMap;

use convnet_layers::{summary, Layer, Summary};
use convnet_tensor::Rng;
use convnet_zoo::flops::{flops, macs};
use convnet_zoo::{build, entry, model_names, ModelConfig};

fn imagenet(name: &str) -> Box<dyn Layer> {
    build(name, &ModelConfig::imagenet(), &mut Rng::seed_from(0)).unwrap()
}

fn shapes(model: &dyn Layer) -> HashMap<String, Vec<usize>> {
    model.param_shapes().into_iter().collect()
}

fn buffers(model: &dyn Layer) -> HashMap<String, Vec<usize>> {
    let mut m = HashMap::new();
    model.visit_buffers("", &mut |k, b| {
        m.insert(k.to_string(), b.shape().to_vec());
    });
    m
}

fn keys(model: &dyn Layer) -> Vec<String> {
    model.param_shapes().into_iter().map(|(k, _)| k).collect()
}

/// The output shape (without the batch axis) of the summary row `name`.
fn row(s: &Summary, name: &str) -> Vec<usize> {
    let r = s
        .rows
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}"));
    r.output_shape[1..].to_vec()
}

/// torchvision's parameter counts (1000 classes, 3×224×224) and "GFLOPS"
/// (fvcore multiply-adds, as its model tables publish them).
const TORCHVISION: [(&str, usize, f64); 16] = [
    ("alexnet", 61_100_840, 0.71),
    ("vgg11", 132_863_336, 7.61),
    ("vgg11_bn", 132_868_840, 7.61),
    ("vgg13", 133_047_848, 11.31),
    ("vgg13_bn", 133_053_736, 11.31),
    ("vgg16", 138_357_544, 15.47),
    ("vgg16_bn", 138_365_992, 15.47),
    ("vgg19", 143_667_240, 19.63),
    ("vgg19_bn", 143_678_248, 19.63),
    ("googlenet", 6_624_904, 1.50),
    ("googlenet_aux", 13_004_888, 1.51),
    ("resnet18", 11_689_512, 1.81),
    ("resnet34", 21_797_672, 3.66),
    ("resnet50", 25_557_032, 4.09),
    ("resnet101", 44_549_160, 7.80),
    ("resnet152", 60_192_808, 11.51),
];

#[test]
fn parameter_counts_and_multiply_adds_equal_torchvision() {
    for (name, params, gmacs) in TORCHVISION {
        let m = imagenet(name);
        assert_eq!(m.num_params(), params, "{name}");
        assert_eq!(
            m.output_shape(&[2, 3, 224, 224]).unwrap(),
            vec![2, 1000],
            "{name}"
        );
        let input = [1, 3, 224, 224];
        let g = macs(&m, &input).unwrap() as f64 / 1e9;
        // torchvision does not list googlenet with aux heads (they only run
        // in training): 1.51 is ours, the main path plus the two heads.
        assert_eq!((g * 100.0).round() / 100.0, gmacs, "{name}: {g} GMAC");
        assert_eq!(flops(&m, &input).unwrap(), 2 * macs(&m, &input).unwrap());
        assert_eq!(summary(&m, &input).unwrap().total_params, params);
        assert!(!entry(name).unwrap().description.is_empty());
    }
    let paper = ModelConfig {
        variant: Some("paper".into()),
        ..ModelConfig::imagenet()
    };
    let m = build("googlenet", &paper, &mut Rng::seed_from(0)).unwrap();
    // 5×5 instead of 3×3 in branch3: 16 more weights per (in, out) pair.
    assert_eq!(m.num_params(), 6_624_904 + 380_928);
}

#[test]
fn alexnet_keys_and_shapes() {
    let m = imagenet("alexnet");
    let mut expected = Vec::new();
    for i in [0, 3, 6, 8, 10] {
        expected.push(format!("features.{i}.weight"));
        expected.push(format!("features.{i}.bias"));
    }
    for i in [1, 4, 6] {
        expected.push(format!("classifier.{i}.weight"));
        expected.push(format!("classifier.{i}.bias"));
    }
    assert_eq!(keys(m.as_ref()), expected);
    let p = shapes(m.as_ref());
    assert_eq!(p["features.0.weight"], [64, 3, 11, 11]);
    assert_eq!(p["features.3.weight"], [192, 64, 5, 5]);
    assert_eq!(p["features.10.weight"], [256, 256, 3, 3]);
    assert_eq!(p["classifier.1.weight"], [4096, 9216]);
    assert_eq!(p["classifier.6.weight"], [1000, 4096]);
    assert_eq!(p["classifier.6.bias"], [1000]);
    let s = summary(m.as_ref(), &[1, 3, 224, 224]).unwrap();
    let flow = s.shape_flow();
    for shape in [
        vec![64, 55, 55],
        vec![64, 27, 27],
        vec![192, 27, 27],
        vec![192, 13, 13],
        vec![384, 13, 13],
        vec![256, 13, 13],
        vec![256, 6, 6],
        vec![9216],
        vec![4096],
        vec![1000],
    ] {
        assert!(flow.contains(&shape), "{shape:?} not in {flow:?}");
    }
}

#[test]
fn vgg_keys_and_shapes() {
    let m = imagenet("vgg16");
    let convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let mut expected = Vec::new();
    for i in convs {
        expected.push(format!("features.{i}.weight"));
        expected.push(format!("features.{i}.bias"));
    }
    for i in [0, 3, 6] {
        expected.push(format!("classifier.{i}.weight"));
        expected.push(format!("classifier.{i}.bias"));
    }
    assert_eq!(keys(m.as_ref()), expected);
    let p = shapes(m.as_ref());
    assert_eq!(p["features.28.weight"], [512, 512, 3, 3]);
    assert_eq!(p["classifier.0.weight"], [4096, 25088]);
    assert_eq!(p["classifier.6.weight"], [1000, 4096]);
    let s = summary(m.as_ref(), &[1, 3, 224, 224]).unwrap();
    assert_eq!(row(&s, "features"), [512, 7, 7]);
    assert_eq!(row(&s, "features.30"), [512, 7, 7]);
    assert_eq!(row(&s, "features.4"), [64, 112, 112]);
    assert_eq!(row(&s, "avgpool"), [512, 7, 7]);
    // Every convolution is 3×3 and every max-pool 2×2 stride 2: the size
    // halves at each pool, 224 -> 7.
    let pools: Vec<Vec<usize>> = s
        .rows
        .iter()
        .filter(|r| r.type_name == "MaxPool2d")
        .map(|r| r.output_shape[2..].to_vec())
        .collect();
    assert_eq!(pools, [[112, 112], [56, 56], [28, 28], [14, 14], [7, 7]]);
    assert!(m
        .param_shapes()
        .iter()
        .filter(|(_, s)| s.len() == 4)
        .all(|(_, s)| s[2..] == [3, 3]));

    let bn = imagenet("vgg16_bn");
    let p = shapes(bn.as_ref());
    let b = buffers(bn.as_ref());
    assert_eq!(p["features.0.weight"], [64, 3, 3, 3]);
    assert_eq!(p["features.1.weight"], [64]);
    assert_eq!(p["features.40.weight"], [512, 512, 3, 3]);
    assert_eq!(p["features.41.bias"], [512]);
    assert_eq!(b["features.41.running_var"], [512]);
    assert_eq!(b["features.1.running_mean"], [64]);
    assert!(b.contains_key("features.1.num_batches_tracked"));
    assert_eq!(p["classifier.6.weight"], [1000, 4096]);
}

#[test]
fn resnet_keys_and_shapes() {
    let m = imagenet("resnet50");
    let p = shapes(m.as_ref());
    let b = buffers(m.as_ref());
    // 53 convolutions, 53 BatchNorms (weight, bias), fc: 161 tensors; 3
    // buffers per BatchNorm. With them, torchvision's 320 state_dict keys.
    assert_eq!(p.len(), 161);
    assert_eq!(b.len(), 159);
    assert_eq!(p["conv1.weight"], [64, 3, 7, 7]);
    assert_eq!(p["bn1.weight"], [64]);
    assert_eq!(p["layer1.0.conv1.weight"], [64, 64, 1, 1]);
    assert_eq!(p["layer1.0.conv3.weight"], [256, 64, 1, 1]);
    assert_eq!(p["layer1.0.downsample.0.weight"], [256, 64, 1, 1]);
    assert_eq!(p["layer1.0.downsample.1.weight"], [256]);
    assert!(!p.contains_key("layer1.1.downsample.0.weight"));
    assert_eq!(p["layer2.0.conv2.weight"], [128, 128, 3, 3]);
    assert_eq!(p["layer3.5.bn3.bias"], [1024]);
    assert_eq!(p["fc.weight"], [1000, 2048]);
    assert_eq!(p["fc.bias"], [1000]);
    assert_eq!(b["layer4.2.bn3.running_var"], [2048]);
    assert!(b.contains_key("layer4.2.bn3.num_batches_tracked"));
    let k = keys(m.as_ref());
    assert_eq!(k[0], "conv1.weight");
    assert_eq!(&k[k.len() - 2..], ["fc.weight", "fc.bias"]);
    let s = summary(m.as_ref(), &[1, 3, 224, 224]).unwrap();
    assert_eq!(row(&s, "maxpool"), [64, 56, 56]);
    assert_eq!(row(&s, "layer1"), [256, 56, 56]);
    assert_eq!(row(&s, "layer2"), [512, 28, 28]);
    assert_eq!(row(&s, "layer3"), [1024, 14, 14]);
    assert_eq!(row(&s, "layer4"), [2048, 7, 7]);
    // The stride of a downsampling bottleneck is on its 3×3 (ResNet v1.5).
    assert_eq!(row(&s, "layer2.0.conv1"), [128, 56, 56]);
    assert_eq!(row(&s, "layer2.0.conv2"), [128, 28, 28]);

    let m = imagenet("resnet18");
    let p = shapes(m.as_ref());
    assert_eq!(p.len(), 62);
    assert_eq!(buffers(m.as_ref()).len(), 60);
    assert_eq!(p["layer1.0.conv2.weight"], [64, 64, 3, 3]);
    assert!(!p.contains_key("layer1.0.downsample.0.weight"));
    assert_eq!(p["layer2.0.downsample.0.weight"], [128, 64, 1, 1]);
    assert_eq!(p["fc.weight"], [1000, 512]);
    let s = summary(m.as_ref(), &[1, 3, 224, 224]).unwrap();
    assert_eq!(row(&s, "layer4"), [512, 7, 7]);
    for (name, blocks) in [
        ("resnet34", [3, 4, 6, 3]),
        ("resnet101", [3, 4, 23, 3]),
        ("resnet152", [3, 8, 36, 3]),
    ] {
        let p = shapes(imagenet(name).as_ref());
        for (i, &n) in blocks.iter().enumerate() {
            let stage = i + 1;
            assert!(
                p.contains_key(&format!("layer{stage}.{}.conv1.weight", n - 1)),
                "{name}"
            );
            assert!(
                !p.contains_key(&format!("layer{stage}.{n}.conv1.weight")),
                "{name}"
            );
        }
    }
}

#[test]
fn googlenet_keys_order_and_shapes() {
    let m = imagenet("googlenet_aux");
    let p = shapes(m.as_ref());
    let b = buffers(m.as_ref());
    assert_eq!(p["conv1.conv.weight"], [64, 3, 7, 7]);
    assert!(!p.contains_key("conv1.conv.bias"));
    assert_eq!(p["conv1.bn.weight"], [64]);
    assert_eq!(p["conv2.conv.weight"], [64, 64, 1, 1]);
    assert_eq!(p["conv3.conv.weight"], [192, 64, 3, 3]);
    assert_eq!(p["inception3a.branch1.conv.weight"], [64, 192, 1, 1]);
    assert_eq!(p["inception3a.branch2.0.conv.weight"], [96, 192, 1, 1]);
    assert_eq!(p["inception3a.branch2.1.conv.weight"], [128, 96, 3, 3]);
    assert_eq!(p["inception3a.branch3.1.conv.weight"], [32, 16, 3, 3]);
    assert_eq!(p["inception3a.branch4.1.conv.weight"], [32, 192, 1, 1]);
    assert_eq!(p["inception5b.branch4.1.bn.bias"], [128]);
    assert_eq!(b["inception3a.branch1.bn.running_mean"], [64]);
    assert_eq!(b["inception5b.branch4.1.bn.running_var"], [128]);
    assert_eq!(p["aux1.conv.conv.weight"], [128, 512, 1, 1]);
    assert_eq!(p["aux2.conv.conv.weight"], [128, 528, 1, 1]);
    assert_eq!(p["aux1.fc1.weight"], [1024, 2048]);
    assert_eq!(p["aux2.fc2.weight"], [1000, 1024]);
    assert_eq!(p["fc.weight"], [1000, 1024]);
    // torchvision's state_dict order: ..., inception5b, aux1, aux2, fc.
    let k = keys(m.as_ref());
    let first_aux = k.iter().position(|k| k.starts_with("aux1")).unwrap();
    assert!(
        k[first_aux - 1].starts_with("inception5b."),
        "{}",
        k[first_aux - 1]
    );
    assert_eq!(&k[k.len() - 2..], ["fc.weight", "fc.bias"]);
    // BasicConv2d's BatchNorm: eps 0.001 shows in inference; checked on the
    // block itself in the unit tests. Shapes at 224×224:
    let s = summary(m.as_ref(), &[1, 3, 224, 224]).unwrap();
    for (name, shape) in [
        ("conv1", vec![64, 112, 112]),
        ("maxpool1", vec![64, 56, 56]),
        ("conv3", vec![192, 56, 56]),
        ("maxpool2", vec![192, 28, 28]),
        ("inception3a", vec![256, 28, 28]),
        ("inception3b", vec![480, 28, 28]),
        ("maxpool3", vec![480, 14, 14]),
        ("inception4a", vec![512, 14, 14]),
        ("inception4d", vec![528, 14, 14]),
        ("inception4e", vec![832, 14, 14]),
        ("maxpool4", vec![832, 7, 7]),
        ("inception5b", vec![1024, 7, 7]),
        ("aux1", vec![1000]),
        ("aux1.conv", vec![128, 4, 4]),
        ("aux2.fc1", vec![1024]),
        ("avgpool", vec![1024, 1, 1]),
        ("fc", vec![1000]),
    ] {
        assert_eq!(row(&s, name), shape, "{name}");
    }
    let aux_rows: Vec<&str> = s
        .rows
        .iter()
        .filter(|r| r.type_name == "InceptionAux")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(aux_rows, ["aux1", "aux2"]);
    // Without the auxiliary heads, the same keys minus aux*.
    let plain = imagenet("googlenet");
    let plain_keys = keys(plain.as_ref());
    let without_aux: Vec<String> = k.into_iter().filter(|k| !k.starts_with("aux")).collect();
    assert_eq!(plain_keys, without_aux);
}

#[test]
fn registry_lists_the_cnns_with_their_input_sizes() {
    let names = model_names();
    for name in [
        "lenet1",
        "lenet4",
        "alexnet",
        "vgg11",
        "vgg11_bn",
        "vgg13",
        "vgg13_bn",
        "vgg16",
        "vgg16_bn",
        "vgg19",
        "vgg19_bn",
        "googlenet",
        "googlenet_aux",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet20",
        "resnet18_small",
        "vgg_small",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
        let e = entry(name).unwrap();
        let cfg = (e.default_config)();
        let small = name.starts_with("lenet") || name.ends_with("_small") || name == "resnet20";
        let expected = if small {
            ModelConfig::mnist()
        } else {
            ModelConfig::imagenet()
        };
        assert_eq!(cfg, expected, "{name}");
    }
    assert_eq!(
        entry("googlenet").unwrap().variants,
        ["torchvision", "paper"]
    );
    let bad = ModelConfig {
        variant: Some("5x5".into()),
        ..ModelConfig::imagenet()
    };
    let e = build("googlenet_aux", &bad, &mut Rng::seed_from(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("googlenet_aux") && e.contains("torchvision, paper"),
        "{e}"
    );
}

#[test]
fn other_class_counts_and_channels() {
    // The classifier follows num_classes, the stem in_channels.
    let cfg = ModelConfig {
        in_channels: 1,
        num_classes: 10,
        ..ModelConfig::imagenet()
    };
    for (name, first, last) in [
        ("resnet18", "conv1.weight", "fc.weight"),
        ("googlenet", "conv1.conv.weight", "fc.weight"),
    ] {
        let m = build(name, &cfg, &mut Rng::seed_from(0)).unwrap();
        let p = shapes(m.as_ref());
        assert_eq!(p[first][1], 1, "{name}");
        assert_eq!(p[last][0], 10, "{name}");
        assert_eq!(m.output_shape(&[1, 1, 224, 224]).unwrap(), vec![1, 10]);
    }
}
