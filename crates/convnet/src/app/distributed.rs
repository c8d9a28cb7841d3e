//! `convnet train --distributed`: this process as one rank of an MPI job
//! (`mpirun -np N convnet train --distributed ...`), data-parallel training
//! through [`convnet_train::distributed`]. Needs the `mpi` cargo feature;
//! without it, [`Job::start`] says how to rebuild.

use convnet_train::distributed::Communicator;

use super::{AppError, Result};

/// The environment variables in which MPI launchers give the number of
/// ranks on this machine (OpenMPI, then MPICH and Intel MPI).
const LOCAL_SIZE_VARS: [&str; 2] = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"];

/// The MPI job this process is a rank of.
pub struct Job {
    #[cfg(feature = "mpi")]
    runtime: convnet_train::distributed::mpi::MpiRuntime,
}

impl Job {
    /// Joins the job (initialises MPI). Without the `mpi` feature: an error
    /// saying how to rebuild.
    #[cfg(feature = "mpi")]
    pub fn start() -> Result<Job> {
        Ok(Job {
            runtime: convnet_train::distributed::mpi::MpiRuntime::init()?,
        })
    }

    /// Joins the job (initialises MPI). Without the `mpi` feature: an error
    /// saying how to rebuild.
    #[cfg(not(feature = "mpi"))]
    pub fn start() -> Result<Job> {
        Err(AppError::Usage(
            "--distributed: this convnet was built without MPI support; install an MPI \
             library (e.g. `apt-get install openmpi-bin libopenmpi-dev libclang-dev`) and \
             rebuild with `cargo build --release -p convnet --features mpi`"
                .into(),
        ))
    }

    /// The communicator of every rank of the job.
    pub fn communicator(&self) -> Box<dyn Communicator> {
        #[cfg(feature = "mpi")]
        return Box::new(self.runtime.world());
        #[cfg(not(feature = "mpi"))]
        unreachable!("a Job exists only with the mpi feature")
    }

    /// Ends every rank of the job with exit status `code`: what a rank that
    /// failed does, so that the others, waiting for it, end too.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        self.runtime.abort(code);
        #[cfg(not(feature = "mpi"))]
        std::process::exit(code)
    }
}

/// The default compute threads of each rank: this machine's `cores` shared
/// by the job's ranks on it (as the launcher says), at least 1.
pub fn default_threads(cores: usize) -> usize {
    let local = LOCAL_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    (cores / local).max(1)
}

/// The refusal of `--sync-bn`, which this version does not implement.
pub fn sync_bn_refused() -> AppError {
    AppError::Usage(
        "--sync-bn is not implemented: each rank normalises with the BatchNorm statistics \
         of its own shard (PyTorch DDP's default) and the running statistics are averaged \
         over the ranks after every epoch; leave out --sync-bn"
            .into(),
    )
}
