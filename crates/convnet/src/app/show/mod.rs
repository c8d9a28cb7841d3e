//! `convnet show`: labelled PNG pictures of what the lecture shows and what
//! a network learns.
//!
//! - [`samples::dataset_samples`]: dataset images, a row per class, named as
//!   the lecture's figures name them (French and English for Fashion-MNIST);
//! - [`filters::show_filters`]: the learned filters of a convolution;
//! - [`features::show_features`]: the feature maps of one image after every
//!   convolution and pooling layer;
//! - [`activations::activation_curves`]: the ReLU and GELU curves (the
//!   lecture's annex);
//! - [`mistakes::show_mistakes`]: the test images a model gets most wrong.
//!
//! Pictures are drawn in pure Rust (plotters' bitmap backend and the
//! embedded DejaVu Sans, as the training plots) and written atomically.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let png = dir.path().join("relu_gelu.png");
//! convnet::app::show::activation_curves(&png)?;
//! assert_eq!(image::image_dimensions(&png)?, convnet::app::show::activations::SIZE);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod activations;
mod canvas;
pub mod features;
pub mod filters;
pub mod mistakes;
pub mod samples;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use convnet_datasets::{DatasetKind, Split};

pub use activations::activation_curves;
pub use features::{show_features, FeatureInput, FeaturesOptions};
pub use filters::show_filters;
pub use mistakes::{show_mistakes, MistakesOptions};
pub use samples::{dataset_samples, SamplesOptions};

use super::Result;

/// How a class is named on the pictures: the digit for MNIST, the French
/// and English names for Fashion-MNIST (`"Veste / Coat"`), as the lecture's
/// figures label them.
///
/// ```
/// use convnet::app::show::class_label;
/// use convnet::datasets::DatasetKind;
/// assert_eq!(class_label(DatasetKind::FashionMnist, 4), "Veste / Coat");
/// assert_eq!(class_label(DatasetKind::Mnist, 7), "7");
/// ```
pub fn class_label(kind: DatasetKind, label: usize) -> String {
    let (fr, en) = (kind.class_names_fr(), kind.class_names());
    match (fr.get(label), en.get(label)) {
        (Some(f), Some(e)) if f != e => format!("{f} / {e}"),
        (_, Some(e)) => e.to_string(),
        _ => label.to_string(),
    }
}

/// What a PNG picture holds, to check that it is not blank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PictureStats {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The fraction of its pixels that are not white.
    pub ink: f64,
    /// How many distinct colours it has.
    pub colours: usize,
}

/// Decodes the picture at `path` and measures it ([`PictureStats`]).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let png = dir.path().join("curves.png");
/// convnet::app::show::activation_curves(&png)?;
/// let stats = convnet::app::show::picture_stats(&png)?;
/// assert!(stats.ink > 0.02 && stats.colours > 16, "{stats:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn picture_stats(path: &Path) -> Result<PictureStats> {
    let img = super::prepare::decode_image(path)?.to_rgb8();
    let total = (img.width() as f64 * img.height() as f64).max(1.0);
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64 / total;
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    Ok(PictureStats {
        width: img.width(),
        height: img.height(),
        ink,
        colours: colours.len(),
    })
}

/// The pictures `convnet show` draws.
#[derive(Subcommand, Debug)]
pub enum ShowCommand {
    /// Dataset images, a row per class, named as the lecture names them.
    Samples(SamplesArgs),
    /// The learned filters of a checkpoint's first convolution (or --layer).
    Filters(FiltersArgs),
    /// The feature maps of one image after every convolution and pooling layer.
    Features(FeaturesArgs),
    /// The ReLU and GELU curves (the lecture's annex figure).
    Activations(OutputArg),
    /// The test images a model gets most wrong, with true and predicted class.
    Mistakes(MistakesArgs),
}

/// The PNG file to write.
#[derive(Args, Debug)]
pub struct OutputArg {
    /// The PNG file to write (replaced atomically).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// The model and its weights.
#[derive(Args, Debug)]
pub struct WeightsArgs {
    /// A checkpoint written by `convnet train` (or a PyTorch/safetensors file with --model).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The zoo model of a PyTorch or safetensors file.
    #[arg(long)]
    pub model: Option<String>,
}

/// Where the dataset is found.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Data folder holding the IDX files (default: $CONVNET_DATA, else ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download; fail with instructions if the dataset is missing.
    #[arg(long)]
    pub offline: bool,
}

/// `convnet show samples`.
#[derive(Args, Debug)]
#[allow(missing_docs)] // the flattened groups are documented where defined
pub struct SamplesArgs {
    /// mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Images per class (1 to 32).
    #[arg(long, default_value_t = 8)]
    pub per_class: usize,
    /// train or test.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Screen pixels per image pixel (1 to 8).
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub out: OutputArg,
}

/// `convnet show filters`.
#[derive(Args, Debug)]
#[allow(missing_docs)] // the flattened groups are documented where defined
pub struct FiltersArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// The convolution, by its state-dict prefix (conv1, features.0) [default: the first].
    #[arg(long)]
    pub layer: Option<String>,
    #[command(flatten)]
    pub out: OutputArg,
}

/// `convnet show features`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["image", "index"])))]
#[allow(missing_docs)] // the flattened groups are documented where defined
pub struct FeaturesArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// A PNG or JPEG image, prepared as `convnet predict` prepares it.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Image N of the test set of the checkpoint's dataset (or --dataset).
    #[arg(long)]
    pub index: Option<usize>,
    /// mnist or fashion-mnist [default: the checkpoint's].
    #[arg(long)]
    pub dataset: Option<DatasetKind>,
    /// Feature maps drawn per layer.
    #[arg(long, default_value_t = features::DEFAULT_CHANNELS)]
    pub channels: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub out: OutputArg,
}

/// `convnet show mistakes`.
#[derive(Args, Debug)]
#[allow(missing_docs)] // the flattened groups are documented where defined
pub struct MistakesArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// mnist or fashion-mnist [default: the checkpoint's].
    #[arg(long)]
    pub dataset: Option<DatasetKind>,
    /// How many images to show (1 to 60).
    #[arg(long, default_value_t = 24)]
    pub count: usize,
    /// Search only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub out: OutputArg,
}

/// Runs `convnet show ...` and says what was written.
pub fn run_show(command: &ShowCommand) -> Result<String> {
    let (path, what): (&Path, String) = match command {
        ShowCommand::Samples(a) => {
            let dir =
                super::data::ensure_data(a.dataset, a.data.data_dir.as_deref(), a.data.offline)?;
            let opts = SamplesOptions {
                per_class: a.per_class,
                split: a.split,
                scale: a.scale,
            };
            dataset_samples(a.dataset, &dir, &opts, &a.out.output)?;
            (&a.out.output, format!("{} samples", a.dataset.title()))
        }
        ShowCommand::Filters(a) => {
            let layer = show_filters(
                &a.weights.checkpoint,
                a.weights.model.as_deref(),
                a.layer.as_deref(),
                &a.out.output,
            )?;
            (&a.out.output, format!("filters of {layer}"))
        }
        ShowCommand::Features(a) => {
            let input = match (&a.image, a.index) {
                (Some(p), _) => FeatureInput::Image(p),
                (None, Some(i)) => FeatureInput::Index(i),
                (None, None) => {
                    return Err(super::AppError::Usage("give --image or --index".into()))
                }
            };
            let opts = FeaturesOptions {
                model: a.weights.model.as_deref(),
                dataset: a.dataset,
                data_dir: a.data.data_dir.as_deref(),
                offline: a.data.offline,
                max_channels: a.channels,
            };
            let layers = show_features(&a.weights.checkpoint, input, &opts, &a.out.output)?;
            (
                &a.out.output,
                format!("feature maps after {}", layers.join(", ")),
            )
        }
        ShowCommand::Activations(a) => {
            activation_curves(&a.output)?;
            (&a.output, "ReLU and GELU curves".into())
        }
        ShowCommand::Mistakes(a) => {
            let opts = MistakesOptions {
                model: a.weights.model.as_deref(),
                dataset: a.dataset,
                data_dir: a.data.data_dir.as_deref(),
                offline: a.data.offline,
                count: a.count,
                limit: a.limit,
            };
            let found = show_mistakes(&a.weights.checkpoint, &opts, &a.out.output)?;
            (&a.out.output, format!("{} mistakes", found.len()))
        }
    };
    Ok(format!("{what} written to {}", path.display()))
}
