//! Which data a command trains or evaluates on, as users name it:
//! `mnist`, `fashion-mnist`, `cifar10`, `cifar100` or `folder:PATH`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::DatasetError;
use crate::kind::DatasetKind;

/// A dataset named on the command line or saved with a run.
///
/// The two lecture datasets keep the variant names of [`DatasetKind`], so
/// run settings saved as JSON before the other datasets existed still read.
///
/// ```
/// use convnet_datasets::{DatasetKind, DatasetSpec};
/// use std::path::PathBuf;
///
/// let s: DatasetSpec = "fashion-mnist".parse()?;
/// assert_eq!(s, DatasetSpec::FashionMnist);
/// assert_eq!(s.idx_kind(), Some(DatasetKind::FashionMnist));
/// let f: DatasetSpec = "folder:photos/cats-and-dogs".parse()?;
/// assert_eq!(f, DatasetSpec::Folder(PathBuf::from("photos/cats-and-dogs")));
/// assert_eq!(f.to_string(), "folder:photos/cats-and-dogs");
/// assert_eq!(f.name(), "cats-and-dogs");
/// let e = "imagenet".parse::<DatasetSpec>().unwrap_err().to_string();
/// assert!(e.contains("mnist, fashion-mnist, cifar10, cifar100, folder:PATH"), "{e}");
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DatasetSpec {
    /// MNIST's IDX files.
    Mnist,
    /// Fashion-MNIST's IDX files.
    FashionMnist,
    /// CIFAR-10's binary batches.
    Cifar10,
    /// CIFAR-100's binary files (fine labels).
    Cifar100,
    /// An image folder, `ROOT/<class>/*.png` (with `train/` and `val/`
    /// inside, or split by ratio).
    Folder(PathBuf),
}

impl DatasetSpec {
    /// The names accepted by [`DatasetSpec::from_str`], for messages.
    pub const VALID: &'static str = "mnist, fashion-mnist, cifar10, cifar100, folder:PATH";

    /// MNIST or Fashion-MNIST as a [`DatasetKind`]; `None` for the others.
    pub fn idx_kind(&self) -> Option<DatasetKind> {
        match self {
            DatasetSpec::Mnist => Some(DatasetKind::Mnist),
            DatasetSpec::FashionMnist => Some(DatasetKind::FashionMnist),
            _ => None,
        }
    }

    /// CIFAR-10 or CIFAR-100 as a [`crate::CifarKind`]; `None` for the
    /// others.
    pub fn cifar_kind(&self) -> Option<crate::CifarKind> {
        match self {
            DatasetSpec::Cifar10 => Some(crate::CifarKind::Cifar10),
            DatasetSpec::Cifar100 => Some(crate::CifarKind::Cifar100),
            _ => None,
        }
    }

    /// A short name for folder names and checkpoints: `mnist`, `cifar10`,
    /// or a folder's last path component.
    pub fn name(&self) -> String {
        match self {
            DatasetSpec::Mnist => "mnist".into(),
            DatasetSpec::FashionMnist => "fashion-mnist".into(),
            DatasetSpec::Cifar10 => "cifar10".into(),
            DatasetSpec::Cifar100 => "cifar100".into(),
            DatasetSpec::Folder(root) => root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "folder".into()),
        }
    }

    /// The name for people: `MNIST`, `CIFAR-10`, `image folder photos`.
    pub fn title(&self) -> String {
        match self {
            DatasetSpec::Mnist => "MNIST".into(),
            DatasetSpec::FashionMnist => "Fashion-MNIST".into(),
            DatasetSpec::Cifar10 => "CIFAR-10".into(),
            DatasetSpec::Cifar100 => "CIFAR-100".into(),
            DatasetSpec::Folder(root) => format!("image folder {}", root.display()),
        }
    }
}

impl From<DatasetKind> for DatasetSpec {
    fn from(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Mnist => DatasetSpec::Mnist,
            DatasetKind::FashionMnist => DatasetSpec::FashionMnist,
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Folder(root) => write!(f, "folder:{}", root.display()),
            other => f.write_str(&other.name()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = DatasetError;

    /// Parses a dataset name (case-insensitive, `_` for `-`) or
    /// `folder:PATH` (the path as given, not empty).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("folder:") {
            if path.is_empty() {
                return Err(DatasetError::Config(
                    "folder: needs the folder's path, as in folder:photos".into(),
                ));
            }
            return Ok(DatasetSpec::Folder(PathBuf::from(path)));
        }
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "cifar10" | "cifar-10" => Ok(DatasetSpec::Cifar10),
            "cifar100" | "cifar-100" => Ok(DatasetSpec::Cifar100),
            other => match other.parse::<DatasetKind>() {
                Ok(kind) => Ok(kind.into()),
                Err(_) => Err(DatasetError::Config(format!(
                    "unknown dataset `{s}`: valid datasets are {}",
                    DatasetSpec::VALID
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_text_and_json() {
        for spec in [
            DatasetSpec::Mnist,
            DatasetSpec::FashionMnist,
            DatasetSpec::Cifar10,
            DatasetSpec::Cifar100,
            DatasetSpec::Folder(PathBuf::from("a b/c")),
        ] {
            assert_eq!(spec.to_string().parse::<DatasetSpec>().unwrap(), spec);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<DatasetSpec>(&json).unwrap(), spec);
        }
        assert_eq!(
            "CIFAR-10".parse::<DatasetSpec>().unwrap(),
            DatasetSpec::Cifar10
        );
        assert_eq!(
            "Fashion_MNIST".parse::<DatasetSpec>().unwrap(),
            DatasetSpec::FashionMnist
        );
    }

    #[test]
    fn settings_saved_with_a_dataset_kind_still_read() {
        for kind in DatasetKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            let spec: DatasetSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(spec.idx_kind(), Some(kind));
        }
    }

    #[test]
    fn bad_names_say_what_is_valid() {
        let e = "folder:".parse::<DatasetSpec>().unwrap_err().to_string();
        assert!(e.contains("needs the folder's path"), "{e}");
        let e = "svhn".parse::<DatasetSpec>().unwrap_err().to_string();
        assert!(
            e.contains("unknown dataset `svhn`") && e.contains("cifar100"),
            "{e}"
        );
    }
}
