//! The classifier head of a model: the parameters that depend on the number
//! of classes, re-initialised when fine-tuning on another dataset and the
//! only ones trained with a frozen backbone.

use convnet_layers::Layer;

/// The keys of the classifier head of `model`, built for `num_classes`
/// classes, in visiting order: the `weight` (and `bias`, if any) of every
/// linear layer that outputs the class scores.
///
/// Derived from the parameters, without a table: a linear layer's weight is
/// a 2-D `[out, in]` tensor named `….weight`; the head is every one with
/// `out == num_classes` whose output no later linear layer reads (no later
/// 2-D weight has `in == num_classes`), which tells a hidden layer that
/// happens to have `num_classes` outputs from the classifier. For the zoo:
/// ResNet and GoogLeNet `fc`, AlexNet and VGG `classifier.6`, ConvNeXt
/// `classifier.2`, ViT `heads.head`, Swin `head`, LeNet-5 `fc3`, LeNet-4 `fc2`, LeNet-1
/// `fc`; GoogLeNet with its
/// auxiliary classifiers adds `aux1.fc2` and `aux2.fc2`. Empty if there is
/// no such layer.
///
/// ```
/// use convnet_tensor::Rng;
/// use convnet_zoo::{build, head_keys, ModelConfig};
///
/// let model = build("resnet20", &ModelConfig::mnist(), &mut Rng::seed_from(0))?;
/// assert_eq!(head_keys(model.as_ref(), 10), ["fc.weight", "fc.bias"]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
pub fn head_keys(model: &dyn Layer, num_classes: usize) -> Vec<String> {
    let mut params: Vec<(String, Vec<usize>)> = Vec::new();
    model.visit_params("", &mut |name, p| {
        params.push((name.to_string(), p.shape().to_vec()))
    });
    let is_linear_weight = |(name, shape): &(String, Vec<usize>)| {
        shape.len() == 2 && (name == "weight" || name.ends_with(".weight"))
    };
    let mut keys = Vec::new();
    for (i, param) in params.iter().enumerate() {
        let (name, shape) = param;
        if !is_linear_weight(param) || shape[0] != num_classes {
            continue;
        }
        let read_later = params[i + 1..]
            .iter()
            .any(|p| is_linear_weight(p) && p.1[1] == num_classes);
        if read_later {
            continue;
        }
        keys.push(name.clone());
        let bias = format!("{}bias", &name[..name.len() - "weight".len()]);
        if params
            .iter()
            .any(|(n, s)| *n == bias && *s == [num_classes])
        {
            keys.push(bias);
        }
    }
    keys
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ModelConfig;
    use convnet_tensor::Rng;

    /// The classifier of every zoo model, as torchvision names it (checked
    /// against [`head_keys`] for every model of [`crate::MODELS`] by the
    /// registry test, which builds them all once).
    pub(crate) fn expected(model: &str) -> &'static [&'static str] {
        match model {
            "lenet5" => &["fc3.weight", "fc3.bias"],
            "lenet4" => &["fc2.weight", "fc2.bias"],
            "lenet1" => &["fc.weight", "fc.bias"],
            "googlenet_aux" => &[
                "aux1.fc2.weight",
                "aux1.fc2.bias",
                "aux2.fc2.weight",
                "aux2.fc2.bias",
                "fc.weight",
                "fc.bias",
            ],
            m if m.starts_with("resnet") || m == "googlenet" => &["fc.weight", "fc.bias"],
            m if m.starts_with("vgg") || m == "alexnet" => {
                &["classifier.6.weight", "classifier.6.bias"]
            }
            m if m.starts_with("convnext") => &["classifier.2.weight", "classifier.2.bias"],
            m if m.starts_with("vit") => &["heads.head.weight", "heads.head.bias"],
            m if m.starts_with("swin") => &["head.weight", "head.bias"],
            m => panic!("no expected head for {m}: add it"),
        }
    }

    #[test]
    fn a_hidden_layer_with_as_many_outputs_is_not_the_head() {
        // LeNet-5's fc2 has 84 outputs: with 84 classes, fc3 is [84, 84].
        let config = ModelConfig {
            num_classes: 84,
            ..ModelConfig::mnist()
        };
        let model = crate::build("lenet5", &config, &mut Rng::seed_from(0)).unwrap();
        assert_eq!(head_keys(model.as_ref(), 84), ["fc3.weight", "fc3.bias"]);
        assert!(head_keys(model.as_ref(), 7).is_empty());
    }
}
