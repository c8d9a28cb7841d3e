//! `convnet lecture --annex`: the annex's table (line 491), ConvNeXt-T/S/B
//! against Swin-T/S/B, measured on this machine: parameters and images per
//! second of inference at 224×224. The accuracies and the papers' images/s
//! (on an A100 GPU) are quoted, not measured.

use std::fmt::Write;
use std::time::Instant;

use convnet_tensor::{Rng, Tensor};
use convnet_train::progress::thousands;
use convnet_zoo::ModelConfig;

use crate::app::{AppError, Result};

/// The annex's rows in its order: zoo name, the lecture's name, images/s
/// and ImageNet-1k top-1 accuracy (%) at 224×224 as the lecture quotes
/// them from Liu et al. (2022).
pub const ANNEX_MODELS: [(&str, &str, f64, f64); 6] = [
    ("swin_t", "Swin-T (ViT)", 1325.6, 81.3),
    ("convnext_tiny", "ConvNeXt-T", 1943.5, 82.1),
    ("swin_s", "Swin-S (ViT)", 857.3, 83.0),
    ("convnext_small", "ConvNeXt-S", 1275.3, 83.1),
    ("swin_b", "Swin-B (ViT)", 662.8, 83.5),
    ("convnext_base", "ConvNeXt-B", 969.0, 83.8),
];

/// How the annex is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnexOptions {
    /// Images per timed batch.
    pub batch_size: usize,
    /// Timed runs (after one untimed warm-up run).
    pub runs: usize,
    /// Input side (224 as in the papers; smaller for quick tests).
    pub image_size: usize,
}

impl Default for AnnexOptions {
    fn default() -> Self {
        AnnexOptions {
            batch_size: 2,
            runs: 2,
            image_size: 224,
        }
    }
}

impl AnnexOptions {
    /// `inference in batches of 2, 2 timed runs at 224×224`.
    pub fn describe(&self) -> String {
        format!(
            "inference in batches of {}, {} timed run{} at {}×{}",
            self.batch_size,
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            self.image_size,
            self.image_size
        )
    }
}

/// What was measured for one model.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// Parameters and inference images per second.
    Done {
        /// Parameters.
        params: usize,
        /// Images per second of inference (`infer`, no gradients).
        images_per_s: f64,
    },
    /// The zoo has no model of that name.
    NotInZoo,
    /// Building or running it failed.
    Failed(String),
}

/// One row of the annex's table.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnexRow {
    /// Zoo name.
    pub model: String,
    /// The lecture's name.
    pub title: String,
    /// Images/s the lecture quotes (the paper's, on an A100 GPU).
    pub quoted_images_per_s: f64,
    /// Top-1 accuracy the lecture quotes (ImageNet-1k, 224×224).
    pub quoted_top1: f64,
    /// What was measured here.
    pub measured: Measured,
    /// How it was measured.
    pub options: AnnexOptions,
}

impl AnnexRow {
    /// The parameters and images/s cells of a table: the figures, or why
    /// there are none.
    pub fn cells(&self) -> (String, String) {
        match &self.measured {
            Measured::Done {
                params,
                images_per_s,
            } => (thousands(*params as f64), format!("{images_per_s:.2}")),
            Measured::NotInZoo => ("not in the zoo".into(), "-".into()),
            Measured::Failed(_) => ("failed".into(), "-".into()),
        }
    }
}

/// Builds each model of the annex ([`ANNEX_MODELS`]) by name and times
/// its inference; a name the zoo does not know gives a
/// [`Measured::NotInZoo`] row.
pub fn measure_annex(options: &AnnexOptions) -> Result<Vec<AnnexRow>> {
    measure_models(&ANNEX_MODELS, options)
}

/// [`measure_annex`] for other rows: zoo name, title, quoted images/s,
/// quoted top-1.
pub fn measure_models(
    models: &[(&str, &str, f64, f64)],
    options: &AnnexOptions,
) -> Result<Vec<AnnexRow>> {
    if options.batch_size == 0 || options.runs == 0 || options.image_size == 0 {
        return Err(AppError::Usage(
            "--annex-batch, --annex-runs and the image size must be >= 1".into(),
        ));
    }
    let mut rows = Vec::new();
    for &(name, title, ips, top1) in models {
        let measured = if convnet_zoo::entry(name).is_err() {
            Measured::NotInZoo
        } else {
            match time_model(name, options) {
                Ok((params, images_per_s)) => Measured::Done {
                    params,
                    images_per_s,
                },
                Err(e) => Measured::Failed(super::super::error_message(&e)),
            }
        };
        rows.push(AnnexRow {
            model: name.to_string(),
            title: title.to_string(),
            quoted_images_per_s: ips,
            quoted_top1: top1,
            measured,
            options: *options,
        });
    }
    Ok(rows)
}

fn time_model(name: &str, options: &AnnexOptions) -> Result<(usize, f64)> {
    let config = ModelConfig {
        image_size: options.image_size,
        ..ModelConfig::imagenet()
    };
    let mut rng = Rng::seed_from(0);
    let model = convnet_zoo::build(name, &config, &mut rng)?;
    let x = Tensor::randn(&config.input_shape(options.batch_size), 0.0, 1.0, &mut rng);
    model.infer(&x)?; // warm-up: buffers, caches
    let start = Instant::now();
    for _ in 0..options.runs {
        model.infer(&x)?;
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let images = (options.batch_size * options.runs) as f64;
    Ok((model.num_params(), images / seconds))
}

/// The annex's table: measured here beside the quoted figures.
pub fn render_table(rows: &[AnnexRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Annexe : ConvNeXt against Swin (line 491): measured here (CPU, {} threads, {}) beside \
         the figures the lecture quotes",
        rayon::current_num_threads(),
        rows.first().map_or(String::new(), |r| r.options.describe())
    );
    let _ = writeln!(
        out,
        "  {:<14} {:<15} {:>14}  {:>13}  {:>16}  {:>14}",
        "model", "zoo name", "parameters", "images/s here", "images/s quoted", "top-1 quoted"
    );
    for r in rows {
        let (params, here) = r.cells();
        let _ = writeln!(
            out,
            "  {:<14} {:<15} {:>14}  {:>13}  {:>16.1}  {:>13.1}%",
            r.title, r.model, params, here, r.quoted_images_per_s, r.quoted_top1
        );
        if let Measured::Failed(e) = &r.measured {
            let _ = writeln!(out, "    → {e}");
        }
    }
    let _ = writeln!(
        out,
        "  (quoted: Liu et al. 2022, ImageNet-1k at 224×224; their images/s are on an A100 GPU)"
    );
    out
}
