//! `convnet summary` and `convnet zoo`.

use convnet_layers::summary;
use convnet_tensor::Rng;
use convnet_train::progress::thousands;
use convnet_zoo::{ModelConfig, MODELS};

use super::Result;

/// The layer table of model `name` for a batch of one input of its default
/// configuration (or `config`).
pub fn model_summary(name: &str, config: Option<&ModelConfig>) -> Result<String> {
    let entry = convnet_zoo::entry(name)?;
    let config = config.cloned().unwrap_or_else(|| (entry.default_config)());
    let model = entry.build(&config, &mut Rng::seed_from(0))?;
    let s = summary(&model, &config.input_shape(1))?;
    let mut text = format!("{name}: {}\n{s}", entry.description);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// One line per registry model: name, parameters for its default
/// configuration, input shape, GFLOPs of one forward pass on one such input
/// (2 × the multiply-adds of its convolution, linear and attention layers,
/// [`convnet_zoo::flops`]) and description.
pub fn zoo_table() -> Result<String> {
    let mut rows = Vec::new();
    for m in MODELS {
        let cfg = (m.default_config)();
        let model = m.build(&cfg, &mut Rng::seed_from(0))?;
        let gflops = convnet_zoo::flops::flops(&model, &cfg.input_shape(1))? as f64 / 1e9;
        rows.push((
            m.name.to_string(),
            thousands(model.num_params() as f64),
            format!("{}x{}x{}", cfg.in_channels, cfg.image_size, cfg.image_size),
            format!("{gflops:.4}"),
            m.description.to_string(),
        ));
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(10);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(5);
    let w3 = rows.iter().map(|r| r.3.len()).max().unwrap_or(0).max(6);
    let mut out = String::from(
        "GFLOPs: one forward pass on one image of the input shown, 2 x the multiply-adds of the \
         convolution, linear and attention layers (torchvision's GFLOPS tables count \
         multiply-adds: half)\n",
    );
    out.push_str(&format!(
        "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  description\n",
        "model", "parameters", "input", "GFLOPs"
    ));
    for (a, b, c, f, d) in rows {
        out.push_str(&format!("{a:<w0$}  {b:>w1$}  {c:<w2$}  {f:>w3$}  {d}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_zoo_list_lenet() {
        let s = model_summary("lenet5", None).unwrap();
        assert!(s.contains("conv1") && s.contains("61,706"), "{s}");
        let e = model_summary("nope", None).unwrap_err().to_string();
        assert!(e.contains("lenet5"), "{e}");
        let z = zoo_table().unwrap();
        assert!(z.contains("lenet5") && z.contains("61,706"), "{z}");
        // The FLOPs column: ResNet-50's 4.09 G multiply-adds, twice.
        let resnet50 = z.lines().find(|l| l.starts_with("resnet50 ")).unwrap();
        assert!(
            resnet50.contains("25,557,032") && resnet50.contains("8.1784"),
            "{resnet50}"
        );
        assert!(z.contains("GFLOPs"), "{z}");
    }

    #[test]
    fn summary_of_swin_t() {
        let s = model_summary("swin_t", None).unwrap();
        for part in [
            "ShiftedWindowAttention",
            "PatchMerging",
            "features.1.1.attn",
            "28,288,354",
        ] {
            assert!(s.contains(part), "{part}: {s}");
        }
    }
}
