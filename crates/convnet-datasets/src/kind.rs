//! Which dataset and which split: names, class names, normalisation
//! constants, the publishers' files, their checksums and mirrors.

use std::fmt;
use std::str::FromStr;

use crate::error::DatasetError;

/// One of the lecture's two datasets.
///
/// ```
/// use convnet_datasets::DatasetKind;
///
/// let kind: DatasetKind = "fashion-mnist".parse()?;
/// assert_eq!(kind, DatasetKind::FashionMnist);
/// assert_eq!(kind.class_names()[4], "Coat"); // the lecture's "Veste"
/// assert!("cifar10".parse::<DatasetKind>().unwrap_err().to_string().contains("mnist, fashion-mnist"));
/// # Ok::<(), convnet_datasets::DatasetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DatasetKind {
    /// Handwritten digits 0-9 (LeCun, Cortes, Burges).
    Mnist,
    /// Zalando's articles of clothing (Xiao, Rasul, Vollgraf, 2017).
    FashionMnist,
}

/// The ten Fashion-MNIST classes, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The ten Fashion-MNIST classes in French, by label, as the lecture labels
/// its figures ("Pantalon : y = 1", "Veste : y = 4", "Pull : y = 2",
/// "Bottine : y = 9").
pub const FASHION_MNIST_CLASSES_FR: [&str; 10] = [
    "T-shirt/haut",
    "Pantalon",
    "Pull",
    "Robe",
    "Veste",
    "Sandale",
    "Chemise",
    "Basket",
    "Sac",
    "Bottine",
];

/// The ten MNIST classes, by label.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Side of the square images of both datasets.
pub const IMAGE_SIDE: usize = 28;

/// Number of classes of both datasets.
pub const NUM_CLASSES: usize = 10;

impl DatasetKind {
    /// Both datasets.
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// The name used on the command line and as the folder name: `"mnist"`,
    /// `"fashion-mnist"`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// The name for people: `"MNIST"`, `"Fashion-MNIST"`.
    pub fn title(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
        }
    }

    /// The class names, by label.
    pub fn class_names(self) -> &'static [&'static str; NUM_CLASSES] {
        match self {
            DatasetKind::Mnist => &MNIST_CLASSES,
            DatasetKind::FashionMnist => &FASHION_MNIST_CLASSES,
        }
    }

    /// The class names in French, by label, as the lecture's figures name
    /// them (the digits for MNIST; [`FASHION_MNIST_CLASSES_FR`]).
    pub fn class_names_fr(self) -> &'static [&'static str; NUM_CLASSES] {
        match self {
            DatasetKind::Mnist => &MNIST_CLASSES,
            DatasetKind::FashionMnist => &FASHION_MNIST_CLASSES_FR,
        }
    }

    /// The usual normalisation constants (mean, standard deviation of the
    /// training pixels in [0, 1]): MNIST 0.1307 / 0.3081, Fashion-MNIST
    /// 0.2860 / 0.3530.
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            DatasetKind::Mnist => (0.1307, 0.3081),
            DatasetKind::FashionMnist => (0.2860, 0.3530),
        }
    }

    /// Whether a horizontal flip keeps an image in its class: true for
    /// clothes, false for digits.
    pub fn flip_invariant(self) -> bool {
        matches!(self, DatasetKind::FashionMnist)
    }

    /// The publishers' base URLs, primary first, then the fallback.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
        }
    }

    /// The four files of the dataset (train images, train labels, test
    /// images, test labels) with their checksums.
    pub fn files(self) -> &'static [FileSpec; 4] {
        match self {
            DatasetKind::Mnist => &MNIST_FILES,
            DatasetKind::FashionMnist => &FASHION_MNIST_FILES,
        }
    }

    /// The file holding the images or labels of a split.
    pub fn file(self, split: Split, part: Part) -> &'static FileSpec {
        let files = self.files();
        match (split, part) {
            (Split::Train, Part::Images) => &files[0],
            (Split::Train, Part::Labels) => &files[1],
            (Split::Test, Part::Images) => &files[2],
            (Split::Test, Part::Labels) => &files[3],
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    /// Parses `mnist` or `fashion-mnist` (case-insensitive; `fashion_mnist`
    /// and `fashionmnist` are accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            _ => Err(DatasetError::Config(format!(
                "unknown dataset `{s}`: expected one of mnist, fashion-mnist"
            ))),
        }
    }
}

/// The training or the test part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    /// Both splits.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// Number of images of the split in both datasets.
    pub fn expected_len(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DatasetError;

    /// Parses `train` or `test` (`t10k` is accepted for the test split).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" | "t10k" => Ok(Split::Test),
            _ => Err(DatasetError::Config(format!(
                "unknown split `{s}`: expected train or test"
            ))),
        }
    }
}

/// Images or labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The `*-images-idx3-ubyte` file.
    Images,
    /// The `*-labels-idx1-ubyte` file.
    Labels,
}

/// One file a publisher distributes, and what its decompressed content must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// The dataset's folder name (`"mnist"`).
    pub dataset: &'static str,
    /// The file name without `.gz` (`"train-images-idx3-ubyte"`).
    pub name: &'static str,
    /// Size of the decompressed content in bytes.
    pub len: u64,
    /// SHA-256 of the decompressed content, lowercase hex.
    pub sha256: &'static str,
}

impl FileSpec {
    /// The compressed file name, as published (`"train-images-idx3-ubyte.gz"`).
    pub fn gz_name(&self) -> String {
        format!("{}.gz", self.name)
    }

    /// `"mnist/train-images-idx3-ubyte"`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.dataset, self.name)
    }
}

/// The checksums are those of the decompressed files, so that any faithful
/// copy passes, whatever its compression (Debian recompresses Fashion-MNIST).
const MNIST_FILES: [FileSpec; 4] = [
    FileSpec {
        dataset: "mnist",
        name: "train-images-idx3-ubyte",
        len: 47_040_016,
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    FileSpec {
        dataset: "mnist",
        name: "train-labels-idx1-ubyte",
        len: 60_008,
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    FileSpec {
        dataset: "mnist",
        name: "t10k-images-idx3-ubyte",
        len: 7_840_016,
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    FileSpec {
        dataset: "mnist",
        name: "t10k-labels-idx1-ubyte",
        len: 10_008,
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

const FASHION_MNIST_FILES: [FileSpec; 4] = [
    FileSpec {
        dataset: "fashion-mnist",
        name: "train-images-idx3-ubyte",
        len: 47_040_016,
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    FileSpec {
        dataset: "fashion-mnist",
        name: "train-labels-idx1-ubyte",
        len: 60_008,
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    FileSpec {
        dataset: "fashion-mnist",
        name: "t10k-images-idx3-ubyte",
        len: 7_840_016,
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    FileSpec {
        dataset: "fashion-mnist",
        name: "t10k-labels-idx1-ubyte",
        len: 10_008,
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for kind in DatasetKind::ALL {
            assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            "Fashion_MNIST".parse::<DatasetKind>().unwrap(),
            DatasetKind::FashionMnist
        );
        let err = "cifar".parse::<DatasetKind>().unwrap_err().to_string();
        assert!(
            err.contains("cifar") && err.contains("mnist, fashion-mnist"),
            "{err}"
        );
        assert_eq!("t10k".parse::<Split>().unwrap(), Split::Test);
        assert!("val".parse::<Split>().is_err());
    }

    #[test]
    fn the_lectures_figure_labels() {
        // Figure "Exemples d'images du dataset Fashion MNIST": Pantalon y=1,
        // Veste y=4, Bottine y=9; and Pull y=2.
        let names = DatasetKind::FashionMnist.class_names();
        assert_eq!(names[1], "Trouser");
        assert_eq!(names[2], "Pullover");
        assert_eq!(names[4], "Coat");
        assert_eq!(names[9], "Ankle boot");
        assert_eq!(DatasetKind::Mnist.class_names()[7], "7");
        let fr = DatasetKind::FashionMnist.class_names_fr();
        assert_eq!(
            [fr[1], fr[2], fr[4], fr[9]],
            ["Pantalon", "Pull", "Veste", "Bottine"]
        );
        assert_eq!(DatasetKind::Mnist.class_names_fr()[7], "7");
    }

    #[test]
    fn file_specs_are_the_publishers_names_with_hex_checksums() {
        for kind in DatasetKind::ALL {
            let f = kind.file(Split::Test, Part::Labels);
            assert_eq!(f.name, "t10k-labels-idx1-ubyte");
            assert_eq!(f.gz_name(), "t10k-labels-idx1-ubyte.gz");
            assert_eq!(f.dataset, kind.name());
            for spec in kind.files() {
                assert_eq!(spec.sha256.len(), 64);
                assert!(spec.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            assert_eq!(
                kind.file(Split::Train, Part::Images).len,
                16 + 60_000 * 28 * 28
            );
        }
        assert!(!DatasetKind::Mnist.flip_invariant());
        assert!(DatasetKind::FashionMnist.flip_invariant());
    }
}
