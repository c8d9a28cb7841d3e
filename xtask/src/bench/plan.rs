//! What a bench run measures: the list of jobs, their row names, and which
//! of them `--quick` and `--filter` keep.
//!
//! A job is what one child process measures (see [`super::child`]): one
//! conv case (its forward and backward rows), one training step, the real
//! MNIST epoch, or one inference batch. Its name is also the argument of the
//! hidden `--run-row` flag, so that the name alone says what to run:
//!
//! | job name                  | rows                                              |
//! |---------------------------|---------------------------------------------------|
//! | `kernel.<case>`           | `kernel.<case>.forward`, `kernel.<case>.backward` |
//! | `train.<model>.b<N>`      | one training step on synthetic data, batch N      |
//! | `train.<model>.epoch.b<N>`| one epoch of MNIST, batch N                       |
//! | `infer.<model>.b<N>`      | `infer()` on a batch of N random images           |

use anyhow::{bail, Context};
use convnet::zoo::ModelEntry;

use super::options::Options;

/// The model whose real epoch is measured, and its batch.
pub const EPOCH_MODEL: &str = "lenet5";
/// Batch of LeNet-5's training rows (the lecture's and PyTorch's reference).
pub const LENET_BATCH: usize = 64;
/// The small ResNet trained on 28×28 images, and its batch.
pub const SMALL_RESNET: (&str, usize) = ("resnet20", 128);
/// The training-step batch of every zoo model (issue 6).
pub const ZOO_TRAIN_BATCH: usize = 2;
/// The ImageNet models whose training step is also measured at
/// [`COMPARE_TRAIN_BATCH`], beside PyTorch (issue 17).
pub const COMPARE_TRAIN_MODELS: [&str; 3] = ["resnet18", "convnext_tiny", "vit_b_16"];
/// The batch of the [`COMPARE_TRAIN_MODELS`] training rows.
pub const COMPARE_TRAIN_BATCH: usize = 16;
/// Inference batches of models with 224×224 inputs.
pub const IMAGENET_BATCHES: [usize; 2] = [1, 16];
/// Inference batches of models with small (28×28) inputs.
pub const SMALL_BATCHES: [usize; 2] = [1, 256];
/// The one ImageNet model of `--quick` (batch 1 only).
pub const QUICK_MODEL: &str = "resnet18";
/// Inputs at least this large get the ImageNet batches.
const IMAGENET_MIN_SIZE: usize = 100;

/// One unit of measurement, run in its own process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A conv2d case of the kernel table: forward and backward rows.
    Kernel {
        /// The case name, e.g. `resnet.3x3`.
        case: String,
    },
    /// One training step (forward, loss, backward, optimizer) on synthetic data.
    TrainStep {
        /// Zoo model name.
        model: String,
        /// Batch size.
        batch: usize,
    },
    /// Epochs of real MNIST training.
    TrainEpoch {
        /// Zoo model name (a 1×28×28 model).
        model: String,
        /// Batch size.
        batch: usize,
    },
    /// Inference on one batch of random images.
    Infer {
        /// Zoo model name.
        model: String,
        /// Batch size.
        batch: usize,
    },
}

/// Which table a job's rows go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// The conv2d kernel table.
    Kernels,
    /// The training table.
    Training,
    /// The inference table.
    Inference,
}

impl Job {
    /// The job's name (also the `--run-row` argument).
    pub fn name(&self) -> String {
        match self {
            Job::Kernel { case } => format!("kernel.{case}"),
            Job::TrainStep { model, batch } => format!("train.{model}.b{batch}"),
            Job::TrainEpoch { model, batch } => format!("train.{model}.epoch.b{batch}"),
            Job::Infer { model, batch } => format!("infer.{model}.b{batch}"),
        }
    }

    /// The names of the rows it produces.
    pub fn row_names(&self) -> Vec<String> {
        match self {
            Job::Kernel { case } => vec![
                format!("kernel.{case}.forward"),
                format!("kernel.{case}.backward"),
            ],
            _ => vec![self.name()],
        }
    }

    /// The table of its rows.
    pub fn group(&self) -> Group {
        match self {
            Job::Kernel { .. } => Group::Kernels,
            Job::TrainStep { .. } | Job::TrainEpoch { .. } => Group::Training,
            Job::Infer { .. } => Group::Inference,
        }
    }

    /// Parses a job name made by [`Job::name`].
    pub fn parse(name: &str) -> anyhow::Result<Job> {
        let bad = || {
            format!(
                "bad job name `{name}`: expected kernel.<case>, train.<model>.b<N>, \
                 train.<model>.epoch.b<N> or infer.<model>.b<N>"
            )
        };
        if let Some(case) = name.strip_prefix("kernel.") {
            if case.is_empty() {
                bail!(bad());
            }
            return Ok(Job::Kernel {
                case: case.to_string(),
            });
        }
        let (kind, rest) = name.split_once('.').with_context(bad)?;
        let (head, batch) = rest.rsplit_once(".b").with_context(bad)?;
        let batch: usize = batch.parse().ok().filter(|&b| b > 0).with_context(bad)?;
        let (model, epoch) = match head.strip_suffix(".epoch") {
            Some(m) => (m, true),
            None => (head, false),
        };
        if model.is_empty() || model.contains('.') {
            bail!(bad());
        }
        let model = model.to_string();
        Ok(match (kind, epoch) {
            ("train", false) => Job::TrainStep { model, batch },
            ("train", true) => Job::TrainEpoch { model, batch },
            ("infer", false) => Job::Infer { model, batch },
            _ => bail!(bad()),
        })
    }

    /// Whether `--filter` keeps at least one of its rows.
    pub fn selected(&self, opts: &Options) -> bool {
        self.row_names().iter().any(|n| opts.selects(n))
    }
}

/// `(warm-up epochs, timed epochs)` of the real-epoch row: one timed epoch
/// with `--quick`, else one warm-up epoch and three timed ones.
pub fn epoch_runs(quick: bool) -> (usize, usize) {
    if quick {
        (0, 1)
    } else {
        (1, 3)
    }
}

/// The inference batches of a model with `image_size` inputs.
pub fn infer_batches(image_size: usize) -> [usize; 2] {
    if image_size >= IMAGENET_MIN_SIZE {
        IMAGENET_BATCHES
    } else {
        SMALL_BATCHES
    }
}

/// Every job of a run, in table order: the kernel cases, the training rows
/// (LeNet-5 step and epoch, the small ResNet, the [`COMPARE_TRAIN_MODELS`]
/// at batch 16, then one step at batch 2 of every zoo model), the inference
/// rows (every zoo model at its default
/// input, two batches each). `--quick` keeps the kernels, LeNet-5's rows and
/// [`QUICK_MODEL`] at batch 1; `--filter` then keeps the jobs with a
/// matching row.
pub fn plan(opts: &Options, kernel_cases: &[&str], models: &[ModelEntry]) -> Vec<Job> {
    let has = |name: &str| models.iter().any(|m| m.name == name);
    let mut jobs: Vec<Job> = kernel_cases
        .iter()
        .map(|c| Job::Kernel {
            case: c.to_string(),
        })
        .collect();
    if has(EPOCH_MODEL) {
        jobs.push(Job::TrainStep {
            model: EPOCH_MODEL.into(),
            batch: LENET_BATCH,
        });
        jobs.push(Job::TrainEpoch {
            model: EPOCH_MODEL.into(),
            batch: LENET_BATCH,
        });
    }
    if !opts.quick {
        if has(SMALL_RESNET.0) {
            jobs.push(Job::TrainStep {
                model: SMALL_RESNET.0.into(),
                batch: SMALL_RESNET.1,
            });
        }
        for model in COMPARE_TRAIN_MODELS.into_iter().filter(|m| has(m)) {
            jobs.push(Job::TrainStep {
                model: model.into(),
                batch: COMPARE_TRAIN_BATCH,
            });
        }
        for m in models {
            jobs.push(Job::TrainStep {
                model: m.name.into(),
                batch: ZOO_TRAIN_BATCH,
            });
        }
    }
    for m in models {
        let size = (m.default_config)().image_size;
        for batch in infer_batches(size) {
            let keep = !opts.quick
                || m.name == EPOCH_MODEL
                || (m.name == QUICK_MODEL && batch == IMAGENET_BATCHES[0]);
            if keep {
                jobs.push(Job::Infer {
                    model: m.name.into(),
                    batch,
                });
            }
        }
    }
    jobs.retain(|j| j.selected(opts));
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet::zoo::MODELS;

    #[test]
    fn names_round_trip() {
        let jobs = [
            Job::Kernel {
                case: "resnet.3x3".into(),
            },
            Job::TrainStep {
                model: "lenet5".into(),
                batch: 64,
            },
            Job::TrainEpoch {
                model: "lenet5".into(),
                batch: 64,
            },
            Job::Infer {
                model: "vit_b_16".into(),
                batch: 16,
            },
        ];
        for job in jobs {
            assert_eq!(Job::parse(&job.name()).unwrap(), job, "{}", job.name());
        }
        assert_eq!(
            Job::Kernel {
                case: "lenet5.conv1".into()
            }
            .row_names(),
            [
                "kernel.lenet5.conv1.forward",
                "kernel.lenet5.conv1.backward"
            ]
        );
    }

    #[test]
    fn bad_names_are_errors() {
        for bad in [
            "",
            "kernel.",
            "train",
            "train.lenet5",
            "train.lenet5.b0",
            "train.lenet5.bx",
            "infer.lenet5.epoch.b1",
            "infer..b1",
            "fit.lenet5.b1",
        ] {
            let e = Job::parse(bad).unwrap_err().to_string();
            assert!(e.contains("bad job name"), "{bad}: {e}");
        }
    }

    #[test]
    fn full_plan_covers_every_model() {
        let opts = Options::default();
        let jobs = plan(&opts, &["lenet5.conv1", "resnet.3x3"], MODELS);
        let names: Vec<String> = jobs.iter().map(Job::name).collect();
        for m in MODELS {
            let size = (m.default_config)().image_size;
            let b = infer_batches(size);
            for batch in b {
                assert!(names.contains(&format!("infer.{}.b{batch}", m.name)));
            }
            assert!(names.contains(&format!("train.{}.b2", m.name)));
        }
        for row in [
            "train.lenet5.b64",
            "train.lenet5.epoch.b64",
            "train.resnet20.b128",
            "train.resnet18.b16",
            "train.convnext_tiny.b16",
            "train.vit_b_16.b16",
        ] {
            assert!(names.contains(&row.to_string()), "{row} not planned");
        }
        assert!(names.contains(&"infer.lenet5.b256".to_string()));
        assert_eq!(names[0], "kernel.lenet5.conv1");
        // Table order: kernels, then training, then inference.
        let groups: Vec<Group> = jobs.iter().map(Job::group).collect();
        assert!(groups.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn quick_and_filter_shrink_the_plan() {
        let quick = Options {
            quick: true,
            ..Options::default()
        };
        let names: Vec<String> = plan(&quick, &["resnet.1x1"], MODELS)
            .iter()
            .map(Job::name)
            .collect();
        assert_eq!(
            names,
            [
                "kernel.resnet.1x1",
                "train.lenet5.b64",
                "train.lenet5.epoch.b64",
                "infer.lenet5.b1",
                "infer.lenet5.b256",
                "infer.resnet18.b1",
            ]
        );
        let filtered = Options {
            filter: Some("backward".into()),
            ..Options::default()
        };
        let jobs = plan(&filtered, &["resnet.1x1"], MODELS);
        assert_eq!(jobs.len(), 1);
        let filtered = Options {
            filter: Some("infer.vgg16".into()),
            ..Options::default()
        };
        let names: Vec<String> = plan(&filtered, &["resnet.1x1"], MODELS)
            .iter()
            .map(Job::name)
            .collect();
        assert!(names.contains(&"infer.vgg16.b1".to_string()));
        assert!(names.contains(&"infer.vgg16_bn.b16".to_string()));
        assert!(names.iter().all(|n| n.starts_with("infer.vgg16")));
        // The batch-16 training rows are left out of --quick, kept by a filter.
        let filtered = Options {
            filter: Some("train.vit_b_16".into()),
            ..Options::default()
        };
        let names: Vec<String> = plan(&filtered, &[], MODELS).iter().map(Job::name).collect();
        assert_eq!(names, ["train.vit_b_16.b16", "train.vit_b_16.b2"]);
    }
}
