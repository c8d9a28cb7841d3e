//! # convnet-datasets
//!
//! The lecture's two datasets, MNIST and Fashion-MNIST, from the publishers'
//! files to training batches:
//!
//! - [`idx`]: the IDX file format (every element type, plain or gzip,
//!   streaming), which never trusts a header and never panics on bad input;
//! - [`Dataset`]: one split in memory, images `[N, 1, 28, 28]` in [0, 1] and
//!   labels `0..=9`, loaded from a data folder found by [`find_dataset`]
//!   (`--data-dir`, `$CONVNET_DATA`, `./data`, Debian's `/usr/share/datasets`;
//!   when it is in none, the error names each folder and how to get it);
//! - [`download`]: verified downloads from the publishers' mirrors and
//!   imports of local copies, checked against the SHA-256 of the decompressed
//!   content, written atomically (what `cargo xtask download` and
//!   `convnet train` use);
//! - [`cifar`]: CIFAR-10 and CIFAR-100 in the publisher's binary format,
//!   downloaded or imported from the archive (checked against its MD5) and
//!   verified on load against a manifest written at import;
//! - [`DataLoader`]: batches with seeded per-epoch shuffling, drop-last,
//!   normalisation and augmentation ([`Augment`]), a pure function of
//!   `(seed, epoch)`.
//!
//! Any images, in colour and at any size:
//!
//! - [`ImageSource`]: the interface of an image dataset (decoded 8-bit
//!   [`RawImage`]s with labels and class names), implemented by
//!   [`ImageFolder`] (`ROOT/<class>/*.png`, as torchvision's `ImageFolder`,
//!   with [`FolderSplit`]s and bad files refused or skipped) and by
//!   [`Dataset`];
//! - [`Pipeline`]: torchvision-like [`Transform`]s (resize, crops, flip,
//!   colour jitter) then `ToTensor` and per-channel `Normalize`;
//! - [`VisionLoader`]: batches `[B, C, H, W]` decoded and transformed in
//!   parallel and prepared ahead, memory bounded by the prefetch depth and a
//!   cache budget ([`folder_loaders`] makes the loaders of a folder);
//! - [`export_folder`] writes a dataset as an image folder and
//!   [`channel_stats`] computes per-channel mean and std.
//!
//! ```no_run
//! use convnet_datasets::{download, find_dataset, resolve_data_dir, Augment, DataLoader,
//!                        Dataset, DatasetKind, LoaderConfig, Split};
//!
//! let kind = DatasetKind::FashionMnist;
//! // `$CONVNET_DATA`, `./data`, `/usr/share/datasets`; else download it.
//! let dir = match find_dataset(kind, None) {
//!     Ok(dir) => dir,
//!     Err(_) => download::ensure_dataset(kind, &resolve_data_dir(None), &Default::default())?.dir,
//! };
//! let train = Dataset::load(kind, Split::Train, &dir)?;
//! let config = LoaderConfig {
//!     augment: Augment { translate: 2, hflip: true },
//!     ..LoaderConfig::train(64, 42)
//! };
//! let loader = DataLoader::new(train, config)?;
//! for (epoch, batch) in loader.epoch(0).enumerate() {
//!     assert_eq!(batch.images.shape()[1..], [1, 28, 28]);
//! #   let _ = epoch;
//! }
//! # Ok::<(), convnet_datasets::DatasetError>(())
//! ```

#![warn(missing_docs)]

pub mod augment;
pub mod cifar;
mod color;
pub mod dataset;
pub mod decode;
pub mod download;
pub mod error;
pub mod export;
mod files;
pub mod folder;
pub mod idx;
pub mod kind;
pub mod loader;
pub mod locate;
pub mod source;
pub mod spec;
pub mod transforms;
pub mod vision_loader;

pub use augment::Augment;
pub use cifar::{CifarDataset, CifarKind};
pub use dataset::{Dataset, LoadOptions, ALLOW_SYNTHETIC_ENV, IMAGE_PIXELS};
pub use download::{
    ensure_dataset, find_or_download, import_from, DatasetReport, DownloadOptions, FileAction,
    ImportReport, Progress,
};
pub use error::{DatasetError, Result};
pub use export::{channel_stats, export_folder, ChannelStats, ExportReport};
pub use files::remove_leftover_parts;
pub use folder::{
    open_split, split_by_ratio, ColorMode, FolderOptions, FolderSplit, FolderSplits, ImageFolder,
    OnError, SkippedFile,
};
pub use kind::{DatasetKind, FileSpec, Part, Split, IMAGE_SIDE, NUM_CLASSES};
pub use loader::{Batch, DataLoader, Epoch, LoaderConfig, Normalize};
pub use locate::{data_dir_candidates, find_dataset, resolve_data_dir, way_out, DATA_DIR_ENV};
pub use source::{ImageSource, RawImage};
pub use spec::DatasetSpec;
pub use transforms::{Pipeline, ResizeTo, Transform};
pub use vision_loader::{
    folder_loaders, FolderData, ImageCache, VisionConfig, VisionEpoch, VisionLoader,
};
