//! `convnet train`: a whole training run and its output folder.

use std::path::{Path, PathBuf};

use convnet_datasets::{Augment, DatasetSpec};
use convnet_tensor::Rng;
use convnet_train::distributed::Communicator;
use convnet_train::progress::thousands;
use convnet_train::{
    defaults, plot, Callback, Checkpoint, CheckpointTarget, EvalReport, History, HistoryWriter,
    ModelInfo, OptimizerConfig, OptimizerKind, Preprocessing, ProgressPrinter, ScheduleKind,
    TrainConfig, TrainError, Trainer,
};
use convnet_zoo::ModelConfig;
use serde::{Deserialize, Serialize};

use super::sources::{open_run_data, DataRequest};
use super::{AppError, ProgressMode, Result};

mod options;
mod weights;

pub use options::TrainOptions;
pub use weights::{load_initial_weights, InitialWeights};

/// The file names inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.ckpt";

/// `convnet train`'s training batch size unless `--batch-size` says
/// otherwise (the trainer's own defaults are in [`convnet_train::defaults`]).
pub const BATCH_SIZE: usize = 64;

/// `convnet train`'s evaluation batch size.
pub const EVAL_BATCH_SIZE: usize = 1000;

/// `convnet train`'s seed of the weights, shuffling, dropout and
/// augmentation.
pub const SEED: u64 = 42;

/// Fraction of an image folder held out for validation when it has no
/// `train/` and `val/` folders.
pub const VAL_FRACTION: f64 = 0.1;

/// What a run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The run folder.
    pub out_dir: PathBuf,
    /// The checkpoint of the last epoch.
    pub checkpoint: PathBuf,
    /// Per-epoch figures.
    pub history: History,
    /// The final evaluation on the test set.
    pub eval: EvalReport,
    /// Every file written, for the final message.
    pub files: Vec<PathBuf>,
}

/// `YYYYMMDD-HHMMSS` in UTC, for run folder names.
pub fn timestamp() -> String {
    crate::tensor::format::utc_timestamp(std::time::SystemTime::now())
}

/// `1 epoch`, `2 epochs`.
fn epochs_text(n: usize) -> String {
    if n == 1 {
        "1 epoch".into()
    } else {
        format!("{n} epochs")
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(dir) {
        if !meta.is_dir() {
            return Err(AppError::Usage(format!(
                "{}: the output folder is {}, not a folder",
                dir.display(),
                convnet_tensor::fileio::describe(&meta.file_type())
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| AppError::io(dir, e))
}

/// Options of a resumed run: the saved ones, with `epochs` replaced if given
/// (it may not be below the epochs already done).
pub fn resume_options(checkpoint: &Checkpoint, epochs: Option<usize>) -> Result<TrainOptions> {
    let state = checkpoint.payload.train.as_ref().ok_or_else(|| {
        AppError::Usage(
            "this checkpoint holds weights only (no training state): it cannot be resumed".into(),
        )
    })?;
    let mut opts: TrainOptions = serde_json::from_str(&state.run_settings).map_err(|e| {
        AppError::Usage(format!(
            "this checkpoint was not written by `convnet train` (its run settings do not parse: \
             {e})"
        ))
    })?;
    if let Some(e) = epochs {
        if e < state.epochs_done {
            return Err(AppError::Usage(format!(
                "--epochs {e} is below the {} epochs this checkpoint has already done",
                state.epochs_done
            )));
        }
        opts.epochs = e;
    }
    opts.stop_after = None;
    opts.overwrite = false;
    Ok(opts)
}

/// Prepares a run folder for writing: creates it, locks it against other
/// runs (the lock is released when the returned guard is dropped, see
/// [`convnet_train::fsutil::FolderLock`] for stale locks), removes the
/// temporary files a killed run left, and, for a new run (`resuming` false),
/// refuses a folder that holds another run's checkpoint unless `overwrite`.
pub fn prepare_run_folder(
    out_dir: &Path,
    resuming: bool,
    overwrite: bool,
) -> Result<convnet_train::fsutil::FolderLock> {
    create_dir(out_dir)?;
    let lock = convnet_train::fsutil::FolderLock::acquire(out_dir)?;
    let removed = convnet_train::fsutil::remove_temporaries(out_dir)?;
    if !removed.is_empty() {
        println!(
            "removed {} temporary file(s) left by an interrupted run in {}",
            removed.len(),
            out_dir.display()
        );
    }
    let checkpoint = out_dir.join(CHECKPOINT_FILE);
    if !resuming && overwrite && checkpoint.exists() {
        // The old run's checkpoint must not pass for this run's.
        std::fs::remove_file(&checkpoint).map_err(|e| AppError::io(&checkpoint, e))?;
    }
    if !resuming && !overwrite && checkpoint.exists() {
        let what = match Checkpoint::read_header(&checkpoint) {
            Ok(h) => format!(
                "a checkpoint of another run ({}, epoch {})",
                h.model, h.epoch
            ),
            Err(_) => "a checkpoint of another run".to_string(),
        };
        return Err(AppError::Usage(format!(
            "{} holds {what}: give --resume {} to continue it, --overwrite to replace it, or \
             another --out-dir",
            out_dir.display(),
            checkpoint.display()
        )));
    }
    Ok(lock)
}

/// Runs `convnet train`: finds (or downloads) the dataset, builds the model,
/// trains with progress, evaluates after each epoch, writes the checkpoint,
/// the history (CSV, JSON), the curves and the confusion matrix (text and
/// PNG) into the run folder, and returns what it did.
///
/// With `resume`, the model, optimizer, schedule position and generators are
/// restored from the checkpoint and training goes on from the next epoch in
/// the checkpoint's folder; with the same thread count the final weights are
/// bit-identical to an uninterrupted run's.
pub fn run_train(opts: &TrainOptions, resume: Option<&Path>) -> Result<TrainOutcome> {
    run_train_on(opts, resume, None)
}

/// [`run_train`] as one rank of a data-parallel job over `comm` (`None`:
/// alone): every rank trains on its shard of each global batch of
/// `opts.batch_size`; rank 0 alone prints, locks and writes the run folder
/// (the others return an outcome without files).
pub fn run_train_on(
    opts: &TrainOptions,
    resume: Option<&Path>,
    comm: Option<Box<dyn Communicator>>,
) -> Result<TrainOutcome> {
    opts.validate()?;
    let checkpoint = match resume {
        Some(path) => Some(Checkpoint::load(path)?),
        None => None,
    };
    let out_dir = match (resume, &opts.out_dir) {
        (Some(path), _) => path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        (None, Some(dir)) => dir.clone(),
        (None, None) => opts.runs_dir.join(format!(
            "{}-{}-{}",
            opts.model,
            opts.dataset.name(),
            timestamp()
        )),
    };
    if let (Some(stop), Some(ck)) = (opts.stop_after, &checkpoint) {
        if stop <= ck.header.epoch {
            return Err(AppError::Usage(format!(
                "--stop-after-epoch {stop}: the checkpoint has already done {} epochs",
                ck.header.epoch
            )));
        }
    }
    // The data first: a missing dataset leaves no run folder behind.
    let entry = convnet_zoo::entry(&opts.model)?;
    let data = open_run_data(&opts.data_request((entry.default_config)().image_size))?;
    let leader = comm.as_ref().is_none_or(|c| c.rank() == 0);
    let created = leader && !out_dir.exists();
    // Held until the run ends, whichever way.
    let lock = match leader {
        true => Some(prepare_run_folder(
            &out_dir,
            resume.is_some(),
            opts.overwrite,
        )?),
        false => None,
    };
    let result = train_in_folder(opts, resume, checkpoint, data, &out_dir, comm);
    if result.is_err() && created {
        // A run that failed before its first checkpoint leaves no folder.
        drop(lock);
        let _ = std::fs::remove_dir(&out_dir);
    }
    result
}

/// The part of [`run_train`] that runs in the locked run folder.
fn train_in_folder(
    opts: &TrainOptions,
    resume: Option<&Path>,
    checkpoint: Option<Checkpoint>,
    data: super::sources::RunData,
    out_dir: &Path,
    comm: Option<Box<dyn Communicator>>,
) -> Result<TrainOutcome> {
    let out_dir = out_dir.to_path_buf();
    let ranks = comm.as_ref().map_or(1, |c| c.size());
    let leader = comm.as_ref().is_none_or(|c| c.rank() == 0);
    // Rank 0 alone speaks.
    macro_rules! println {
        ($($arg:tt)*) => { if leader { std::println!($($arg)*) } };
    }
    let (n_train, n_test) = (data.n_train, data.n_test);
    let (loader, test) = (data.train, data.test);
    let class_names = data.class_names.clone();
    let model_config = ModelConfig {
        num_classes: class_names.len(),
        in_channels: data.in_channels,
        image_size: data.image_size,
        ..opts.model_config()
    };
    let mut rng = Rng::seed_from(opts.seed);
    let mut model = convnet_zoo::build(&opts.model, &model_config, &mut rng)?;
    if let (Some(path), None) = (&opts.weights, &checkpoint) {
        load_initial_weights(
            model.as_mut(),
            path,
            opts.weights_non_strict,
            model_config.num_classes,
        )?;
    }
    let head = convnet_zoo::head_keys(model.as_ref(), model_config.num_classes);
    let info = ModelInfo {
        model: opts.model.clone(),
        model_config: serde_json::to_string(&model_config)
            .map_err(|e| AppError::Usage(e.to_string()))?,
        dataset: opts.dataset.to_string(),
        class_names: class_names.clone(),
        preprocessing: Some(Preprocessing {
            in_channels: model_config.in_channels,
            image_size: model_config.image_size,
            mean: data.mean.clone(),
            std: data.std.clone(),
            eval_pipeline: match &data.eval_pipeline {
                Some(p) => serde_json::to_string(p).map_err(|e| AppError::Usage(e.to_string()))?,
                None => String::new(),
            },
        }),
    };
    let checkpoint_path = out_dir.join(CHECKPOINT_FILE);
    let settings = serde_json::to_string(opts).map_err(|e| AppError::Usage(e.to_string()))?;
    let threads = rayon::current_num_threads();
    let title = format!(
        "{} on {} (seed {}, batch {}, {})",
        opts.model,
        opts.dataset.title(),
        opts.seed,
        opts.batch_size,
        opts.optimizer
    );

    let mut trainer = Trainer::new(model, opts.train_config()?, class_names.len())?;
    if let Some(comm) = comm {
        trainer.distribute(comm);
    }
    if opts.freeze_backbone && checkpoint.is_none() {
        if head.is_empty() {
            return Err(AppError::Usage(format!(
                "--freeze-backbone: {} has no linear layer with {} outputs to train as its head",
                opts.model, model_config.num_classes
            )));
        }
        trainer.freeze(&|k| !head.iter().any(|h| h == k))?;
    }
    if !trainer.frozen().is_empty() {
        let (mut trained, mut total) = (0usize, 0usize);
        let frozen = trainer.frozen();
        trainer.model().visit_params("", &mut |k, p| {
            total += p.len();
            if !frozen.iter().any(|f| f == k) {
                trained += p.len();
            }
        });
        println!(
            "frozen backbone: training {} of {} parameters ({})",
            thousands(trained as f64),
            thousands(total as f64),
            head.join(", ")
        );
    }
    if let Some(ck) = &checkpoint {
        if ck.header.model != opts.model {
            return Err(AppError::Usage(format!(
                "the checkpoint holds `{}`, not `{}`",
                ck.header.model, opts.model
            )));
        }
        trainer.resume(ck)?;
        let saved_threads = ck
            .payload
            .train
            .as_ref()
            .map(|t| t.threads)
            .unwrap_or(threads);
        println!(
            "resuming {} from epoch {} of {} ({})",
            opts.model,
            trainer.epochs_done(),
            opts.epochs,
            resume.map(|p| p.display().to_string()).unwrap_or_default()
        );
        if saved_threads != threads {
            println!(
                "note: the run used {saved_threads} threads, this one {threads}: the result is \
                 as good but not bit-identical to an uninterrupted run (use --threads \
                 {saved_threads} for that)"
            );
        }
    }
    println!(
        "training {} ({} parameters) on {} ({} training / {} test images from {}) for {}, \
         batch {}, {} threads, seed {}",
        opts.model,
        thousands(trainer.model().num_params() as f64),
        opts.dataset.title(),
        thousands(n_train as f64),
        thousands(n_test as f64),
        data.origin,
        epochs_text(opts.epochs),
        opts.batch_size,
        threads,
        opts.seed
    );
    if ranks > 1 {
        println!(
            "distributed over {ranks} ranks: shards of about {} images per rank and step, {} \
             threads each, {} bytes of gradients summed per step",
            opts.batch_size.div_ceil(ranks),
            threads,
            thousands(4.0 * trainer.model().num_params() as f64)
        );
    }
    println!("output folder: {}", out_dir.display());
    trainer.checkpoint_to(CheckpointTarget {
        path: checkpoint_path.clone(),
        info: info.clone(),
        run_settings: settings,
    });
    let progress: Box<dyn Callback> = Box::new(match opts.progress {
        ProgressMode::Auto => ProgressPrinter::auto(),
        ProgressMode::Plain => ProgressPrinter::plain(Box::new(std::io::stdout())),
        ProgressMode::Quiet => ProgressPrinter::quiet(),
    });
    let writer = HistoryWriter::new(&out_dir, title.clone());
    if leader {
        trainer.add_callback(progress);
        trainer.add_callback(Box::new(writer.clone()));
    }
    if let Err(e) = trainer.fit_until(
        &*loader,
        Some(&*test),
        opts.stop_after.unwrap_or(opts.epochs),
    ) {
        if leader
            && matches!(
                e,
                TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteTestLoss { .. }
            )
        {
            match Checkpoint::read_header(&checkpoint_path) {
                Ok(h) => eprintln!(
                    "the checkpoint kept is {} (epoch {}, its evaluation was finite)",
                    checkpoint_path.display(),
                    h.epoch
                ),
                Err(_) => eprintln!("no checkpoint was saved (no epoch evaluated finite)"),
            }
        }
        return Err(e.into());
    }
    let history = trainer.history().clone();
    // Final evaluation: the confusion matrix, as text and as a heat map.
    let eval = trainer.evaluate(&*test)?;
    drop(trainer);
    if !leader {
        return Ok(TrainOutcome {
            out_dir,
            checkpoint: checkpoint_path,
            history,
            eval,
            files: Vec::new(),
        });
    }
    writer.write(&history)?;

    let confusion_txt = out_dir.join("confusion.txt");
    let confusion_png = out_dir.join("confusion.png");
    let table = eval.confusion.render(&class_names);
    convnet_train::fsutil::write_atomic(&confusion_txt, table.as_bytes())?;
    plot::plot_confusion(
        &eval.confusion,
        &class_names,
        &format!("{} on {} test set", opts.model, opts.dataset.title()),
        &confusion_png,
    )?;
    println!("\nconfusion matrix on the test set (rows: true class, columns: predicted):");
    print!("{table}");
    let total_train: f64 = history.records.iter().map(|r| r.train_seconds).sum();
    println!(
        "\nfinal test accuracy {:.2}% (top-5 {:.2}%, loss {:.4}) after {} ({:.0} s of \
         training)",
        100.0 * eval.accuracy,
        100.0 * eval.top5,
        eval.loss,
        epochs_text(history.records.len()),
        total_train
    );
    let files = vec![
        checkpoint_path.clone(),
        writer.csv_path(),
        writer.json_path(),
        writer.plot_path(),
        confusion_txt,
        confusion_png,
    ];
    println!("wrote {}:", out_dir.display());
    for f in &files {
        println!("  {}", f.display());
    }
    Ok(TrainOutcome {
        out_dir,
        checkpoint: checkpoint_path,
        history,
        eval,
        files,
    })
}

#[cfg(test)]
mod tests;
