//! What the `convnet` command does, as a library: training runs with their
//! output folder, evaluation of a checkpoint, prediction on image files
//! (and how images are prepared for it),
//! model summaries and the zoo listing. The binary only parses flags and
//! calls these; the end-to-end tests call them directly.

pub mod data;
pub mod distributed;
pub mod eval;
pub mod imagenet;
pub mod lecture;
pub mod predict;
pub mod prepare;
pub mod show;
pub mod sources;
pub mod summary;
pub mod train;
pub mod weights;

use std::path::PathBuf;

use thiserror::Error;

/// Everything a command can fail with.
#[derive(Debug, Error)]
pub enum AppError {
    /// Training, evaluation or a checkpoint failed.
    #[error(transparent)]
    Train(#[from] convnet_train::TrainError),
    /// A dataset is missing or invalid.
    #[error(transparent)]
    Dataset(#[from] convnet_datasets::DatasetError),
    /// An unknown model or a bad model configuration.
    #[error(transparent)]
    Zoo(#[from] convnet_zoo::ZooError),
    /// A layer failed.
    #[error(transparent)]
    Layer(#[from] convnet_layers::LayerError),
    /// A weight file cannot be read, written or loaded.
    #[error(transparent)]
    Weights(#[from] convnet_weights::WeightsError),
    /// A flag or a combination of flags is invalid.
    #[error("{0}")]
    Usage(String),
    /// An image cannot be read.
    #[error("{path}: {msg}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A file or folder cannot be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AppError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Worker threads per core beyond which `--threads` is capped.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The worker-thread count to use for a requested `--threads` on a machine
/// with `cores` cores: at most [`MAX_THREADS_PER_CORE`] per core (more only
/// adds scheduling overhead: 1024 threads made a 0.6 s run take 120 s), with
/// the warning to print when the request was capped.
pub fn cap_threads(requested: usize, cores: usize) -> (usize, Option<String>) {
    let max = MAX_THREADS_PER_CORE * cores.max(1);
    if requested > max {
        (
            max,
            Some(format!(
                "--threads {requested} is more than {MAX_THREADS_PER_CORE} per core on this \
                 machine ({} cores): using {max}",
                cores.max(1)
            )),
        )
    } else {
        (requested, None)
    }
}

/// Writes `args` to standard output. Unlike `print!`, which panics when the
/// reader has gone (`convnet zoo | head -1`) or the disk is full, the failure
/// is returned as an [`AppError::Io`] on "standard output"; the binary exits
/// quietly on a broken pipe ([`is_broken_pipe`]) and reports anything else.
/// Use it through [`out!`](crate::out) and [`outln!`](crate::outln).
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| AppError::io("standard output", e))
}

/// `print!` that returns a [`Result`] instead of panicking on a write
/// failure (see [`write_stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::app::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns a [`Result`] instead of panicking on a write
/// failure (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::app::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::app::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Whether `error`, or any error it wraps, is a write to a closed pipe: the
/// reader stopped reading, which is no failure of the command.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// The message of `error` and of the errors it wraps, joined by `": "`, each
/// said once: an error whose text already includes its cause (`"file: Is a
/// directory (os error 21)"` over the I/O error) or that is a transparent
/// wrapper of it does not repeat it.
///
/// ```
/// use convnet::app::{error_message, AppError};
///
/// let e = AppError::io("runs", std::io::Error::from(std::io::ErrorKind::NotFound));
/// assert_eq!(error_message(&e), "runs: entity not found");
/// ```
pub fn error_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = e.source();
    }
    msg
}

/// How a command reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ProgressMode {
    /// A progress bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines.
    Plain,
    /// Only one line per epoch.
    Quiet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_above_four_per_core_are_capped_with_a_warning() {
        assert_eq!(cap_threads(2, 2), (2, None));
        assert_eq!(cap_threads(8, 2), (8, None));
        let (n, w) = cap_threads(1024, 2);
        assert_eq!(n, 8);
        assert!(w.unwrap().contains("--threads 1024"));
        assert_eq!(cap_threads(5, 0).0, 4, "no core count: one core");
    }
}
