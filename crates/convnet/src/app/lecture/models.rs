//! The lecture's famous architectures recomputed: each model is built from
//! the zoo, its parameters counted and its layers with weights counted on
//! the longest path ([`convnet_zoo::depth`]), and VGG's small-filter
//! argument with real layers.

use convnet_layers::{Conv2d, Conv2dConfig, Layer, Sequential};
use convnet_tensor::Rng;
use convnet_zoo::depth::{depth, DepthOptions};
use convnet_zoo::ModelConfig;

use super::checks::{section, try_check};
use super::titles::{ALEXNET, CONVNEXT, INCEPTION, LENET, RESNET, VGG};
use super::{check, src, stated, Check, Got, Said, Section};
use crate::app::Result;

const IMAGENET: [usize; 4] = [1, 3, 224, 224];
const MNIST: [usize; 4] = [1, 1, 28, 28];

/// The parameter counts the zoo's models must have (torchvision's for the
/// ImageNet models, see `convnet zoo`).
pub const EXPECTED_PARAMS: &[(&str, usize)] = &[
    ("lenet1", 2_646),
    ("lenet4", 16_950),
    ("lenet5", 61_706),
    ("alexnet", 61_100_840),
    ("googlenet", 6_624_904),
    ("vgg16", 138_357_544),
    ("resnet50", 25_557_032),
    ("convnext_tiny", 28_589_128),
];

fn expected(name: &str) -> f64 {
    EXPECTED_PARAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(f64::NAN, |(_, p)| *p as f64)
}

fn build(name: &str, config: &ModelConfig) -> Result<Box<dyn Layer>> {
    Ok(convnet_zoo::build(name, config, &mut Rng::seed_from(0))?)
}

fn layers(model: &dyn Layer, input: &[usize], count_pooling: bool) -> Result<Got> {
    Ok(Got::Number(
        depth(model, input, DepthOptions { count_pooling })? as f64,
    ))
}

fn count(model: &dyn Layer) -> Got {
    Got::Number(model.num_params() as f64)
}

/// The sections from LeNet to ResNet, and the annex's ConvNeXt.
pub(super) fn model_sections() -> Result<Vec<Section>> {
    let mnist = ModelConfig::mnist();
    let imagenet = ModelConfig::imagenet();

    // LeNet: the table of line 285, and "LeNet-5 7" (line 336).
    let mut lenet = Vec::new();
    for (name, text, value, digits, line) in [
        ("lenet1", "2600", 2600.0, 2, 287),
        ("lenet4", "17000", 17_000.0, 2, 288),
        ("lenet5", "60000", 60_000.0, 1, 289),
    ] {
        let what = format!("parameters of {}", title(name));
        lenet.push(
            try_check(
                stated(
                    &what,
                    src(LENET, line),
                    text,
                    Said::Rounded { value, digits },
                ),
                Got::Number(expected(name)),
                build(name, &mnist).map(|m| count(m.as_ref())),
                None,
            )
            .with_note(format!(
                "{name} built from the zoo (1×28×28 input); the lecture's figure has {digits} \
                 significant figure{}",
                if digits == 1 { "" } else { "s" }
            )),
        );
    }
    let lenet5 = build("lenet5", &mnist)?;
    // "un réseau dense de 120, 84 puis 10 neurones": the linear layers'
    // output widths, in order.
    let widths: Vec<String> = lenet5
        .param_shapes()
        .iter()
        .filter(|(k, s)| k.starts_with("fc") && k.ends_with("weight") && s.len() == 2)
        .map(|(_, s)| s[0].to_string())
        .collect();
    let widths = widths.join(", ");
    lenet.push(
        check(
            stated(
                "dense layers after LeNet-5's convolutions",
                src(LENET, 306),
                "120, 84 puis 10 neurones",
                Said::Holds,
            ),
            Got::Holds(true, "120, 84, 10".into()),
            Got::Holds(widths == "120, 84, 10", widths),
            None,
        )
        .with_note("the output widths of lenet5's linear layers fc1, fc2, fc3"),
    );
    lenet.push(
        try_check(
            stated(
                "layers of LeNet-5",
                src(INCEPTION, 336),
                "7",
                Said::Exact(7.0),
            ),
            Got::Number(7.0),
            layers(lenet5.as_ref(), &MNIST, true),
            None,
        )
        .with_note(
            "C1, S2, C3, S4, C5, F6 and the output: pooling layers counted, as the paper does",
        ),
    );

    let alexnet = build("alexnet", &imagenet)?;
    let alex_params = alexnet.num_params() as f64;
    let alex = vec![
        check(
            stated(
                "parameters of AlexNet",
                src(ALEXNET, 320),
                "environ 60 millions",
                Said::Rounded {
                    value: 60e6,
                    digits: 1,
                },
            ),
            Got::Number(expected("alexnet")),
            count(alexnet.as_ref()),
            None,
        )
        .with_note("torchvision's AlexNet (one GPU column), 224×224 input"),
        check(
            stated(
                "AlexNet's parameters over LeNet-5's",
                src(ALEXNET, 320),
                "60 millions contre 60 mille: ×1000",
                Said::Rounded {
                    value: 1000.0,
                    digits: 1,
                },
            ),
            Got::Number((expected("alexnet") / expected("lenet5")).round()),
            Got::Number((alex_params / lenet5.num_params() as f64).round()),
            None,
        ),
        try_check(
            stated(
                "layers of AlexNet",
                src(INCEPTION, 336),
                "8",
                Said::Exact(8.0),
            ),
            Got::Number(8.0),
            layers(alexnet.as_ref(), &IMAGENET, false),
            None,
        )
        .with_note("5 convolutions and 3 linear layers"),
    ];
    drop(lenet5);

    let googlenet = build("googlenet", &imagenet)?;
    let paper = build(
        "googlenet",
        &ModelConfig {
            variant: Some("paper".into()),
            ..ModelConfig::imagenet()
        },
    )?;
    // The paper's Table 1 counts convolution and linear weights only.
    let paper_weights: usize = paper
        .param_shapes()
        .iter()
        .filter(|(_, s)| s.len() >= 2)
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let inception =
        vec![
        check(
            stated(
                "weights of Inception v1 (the paper's architecture)",
                src(INCEPTION, 335),
                "environ 6.9 millions",
                Said::Truncated {
                    value: 6.9e6,
                    digits: 2,
                },
            ),
            Got::Number(6_990_272.0),
            Got::Number(paper_weights as f64),
            None,
        )
        .with_note(
            "googlenet's paper variant (5×5 branches), convolution and linear weights as the \
             paper's Table 1 counts them (no BatchNorm, no biases)",
        ),
        check(
            stated(
                "parameters of torchvision's GoogLeNet",
                src(INCEPTION, 335),
                "environ 6.9 millions",
                Said::About {
                    value: 6.9e6,
                    relative: 0.05,
                },
            ),
            Got::Number(expected("googlenet")),
            count(googlenet.as_ref()),
            None,
        )
        .with_note(
            "4.0% below the lecture's figure (within the 5% taken for \"environ\"): torchvision's \
             branch uses 3×3 where the paper has 5×5, and adds BatchNorm",
        ),
        check(
            stated(
                "AlexNet's parameters over Inception v1's",
                src(INCEPTION, 335),
                "presque 9 fois moins",
                Said::Exact(9.0),
            ),
            Got::Number(9.0),
            Got::Number((alex_params / paper.num_params() as f64).round()),
            None,
        )
        .with_note(format!(
            "61.1M / 7.0M = {:.2} (paper's architecture), 61.1M / 6.6M = {:.2} (torchvision's)",
            alex_params / paper.num_params() as f64,
            alex_params / googlenet.num_params() as f64
        )),
        try_check(
            stated("layers of Inception v1", src(INCEPTION, 336), "22", Said::Exact(22.0)),
            Got::Number(22.0),
            layers(googlenet.as_ref(), &IMAGENET, false),
            None,
        )
        .with_note("layers with weights on the longest path; 27 with pooling, as the paper says"),
    ];
    drop((alexnet, googlenet, paper));

    let mut vgg = small_filters()?;
    let vgg16 = build("vgg16", &imagenet)?;
    vgg.push(
        check(
            stated(
                "parameters of VGG-16",
                src(VGG, 364),
                "138 millions",
                Said::Rounded {
                    value: 138e6,
                    digits: 3,
                },
            ),
            Got::Number(expected("vgg16")),
            count(vgg16.as_ref()),
            None,
        )
        .with_note("torchvision's vgg16, 224×224 input"),
    );
    vgg.push(try_check(
        stated("layers of VGG-16", src(VGG, 369), "16", Said::Exact(16.0)),
        Got::Number(16.0),
        layers(vgg16.as_ref(), &IMAGENET, false),
        None,
    ));
    drop(vgg16);

    let resnet50 = build("resnet50", &imagenet)?;
    let resnet = vec![try_check(
        stated(
            "layers of ResNet-50",
            src(RESNET, 383),
            "50",
            Said::Exact(50.0),
        ),
        Got::Number(50.0),
        layers(resnet50.as_ref(), &IMAGENET, false),
        None,
    )
    .with_note(format!(
        "49 convolutions and the linear layer on the longest path ({} parameters)",
        super::number(resnet50.num_params() as f64)
    ))];
    drop(resnet50);

    let convnext = build("convnext_tiny", &imagenet)?;
    let shapes = convnext.param_shapes();
    let depthwise: Vec<&Vec<usize>> = shapes
        .iter()
        .filter(|(k, s)| k.ends_with("block.0.weight") && s.len() == 4)
        .map(|(_, s)| s)
        .collect();
    let all_7x7 = !depthwise.is_empty() && depthwise.iter().all(|s| s[2] == 7 && s[3] == 7);
    let n = depthwise.len();
    let convnext_checks = vec![check(
        stated(
            "filter size in ConvNeXt's blocks",
            src(CONVNEXT, 487),
            "7 × 7",
            Said::Holds,
        ),
        Got::Holds(true, "7 × 7 in all 18 blocks".into()),
        Got::Holds(
            all_7x7,
            if all_7x7 {
                format!("7 × 7 in all {n} blocks")
            } else {
                format!("not 7 × 7 in every one of the {n} blocks")
            },
        ),
        None,
    )
    .with_note(
        "convnext_tiny's depthwise convolutions (the stem is a 4×4 patchify, the downsampling \
         layers 2×2)",
    )];

    Ok(vec![
        section(LENET, lenet),
        section(ALEXNET, alex),
        section(INCEPTION, inception),
        section(VGG, vgg),
        section(RESNET, resnet),
        section(CONVNEXT, convnext_checks),
    ])
}

/// `LeNet-5` for `lenet5`.
fn title(name: &str) -> String {
    match name {
        "lenet1" => "LeNet-1 (1989)".into(),
        "lenet4" => "LeNet-4".into(),
        "lenet5" => "LeNet-5 (1998)".into(),
        n => n.to_string(),
    }
}

/// A stack of `n` k×k convolutions, one channel in and out, with biases.
fn stack(n: usize, k: usize, rng: &mut Rng) -> Result<Sequential> {
    let mut s = Sequential::default();
    for _ in 0..n {
        s = s.with(Conv2d::new(Conv2dConfig::new(1, 1, k), rng)?);
    }
    Ok(s)
}

/// Whether two stacks see the same window: same output shape on several
/// inputs, and one output pixel's gradient reaches `side`² input pixels.
fn same_window(a: &mut Sequential, b: &mut Sequential, side: usize) -> Result<(bool, usize)> {
    let mut same = true;
    for n in [side, 12, 28] {
        let input = [1, 1, n, n];
        same &= a.output_shape(&input)? == b.output_shape(&input)?;
    }
    let mut reached = Vec::new();
    for s in [a, b] {
        let x = convnet_tensor::Tensor::ones(&[1, 1, side, side]);
        let y = s.forward(&x)?;
        let g = convnet_tensor::Tensor::ones(y.shape());
        let gx = s.backward(&g)?;
        reached.push(gx.as_slice().iter().filter(|v| **v != 0.0).count());
    }
    Ok((same && reached[0] == reached[1], reached[0]))
}

/// "Une couche de convolution 5×5 : 26 paramètres ; deux couches 3×3 : 20",
/// and the footnote's 7×7 against three 3×3.
fn small_filters() -> Result<Vec<Check>> {
    let mut rng = Rng::seed_from(1);
    let mut c5 = stack(1, 5, &mut rng)?;
    let mut c33 = stack(2, 3, &mut rng)?;
    let mut c7 = stack(1, 7, &mut rng)?;
    let mut c333 = stack(3, 3, &mut rng)?;
    let (same5, reach5) = same_window(&mut c5, &mut c33, 5)?;
    let (same7, reach7) = same_window(&mut c7, &mut c333, 7)?;
    let window = |ok: bool, reach: usize, k: usize| {
        let text = if ok {
            format!("same {k}×{k} window ({reach} pixels)")
        } else {
            "different windows".to_string()
        };
        Got::Holds(ok, text)
    };
    Ok(vec![
        check(
            stated(
                "parameters of one 5×5 convolution (1 channel, bias)",
                src(VGG, 361),
                "26",
                Said::Exact(26.0),
            ),
            Got::Number(26.0),
            count(&c5),
            None,
        ),
        check(
            stated(
                "parameters of two 3×3 convolutions (1 channel, biases)",
                src(VGG, 362),
                "20",
                Said::Exact(20.0),
            ),
            Got::Number(20.0),
            count(&c33),
            None,
        ),
        check(
            stated(
                "two 3×3 convolutions see what one 5×5 sees",
                src(VGG, 359),
                "répliquée",
                Said::Holds,
            ),
            Got::Holds(true, "same 5×5 window (25 pixels)".into()),
            window(same5, reach5, 5),
            None,
        )
        .with_note("same output shapes, and one output's gradient reaches the same input pixels"),
        check(
            stated(
                "three 3×3 convolutions see what one 7×7 sees (footnote 7)",
                src(VGG, 371),
                "équivalentes",
                Said::Holds,
            ),
            Got::Holds(true, "same 7×7 window (49 pixels)".into()),
            window(same7, reach7, 7),
            None,
        )
        .with_note(format!(
            "with {} parameters instead of {} (1 channel, biases)",
            c333.num_params(),
            c7.num_params()
        )),
    ])
}
