//! The [`Communicator`] over MPI (the `mpi` cargo feature): the processes
//! `mpirun -np N` starts, through the system's MPI library (OpenMPI, MPICH).
//!
//! [`MpiRuntime::init`] initialises MPI once per process; keep it alive until
//! the program ends (dropping it finalises MPI, which waits for the other
//! ranks). A rank that fails must call [`MpiRuntime::abort`] rather than
//! return: the others, waiting in a collective operation, are then ended by
//! the MPI launcher instead of hanging.

use std::cell::RefCell;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};
use mpi::Threading;

use super::{Communicator, ReduceOp};
use crate::error::{Result, TrainError};

/// MPI, initialised for this process.
pub struct MpiRuntime {
    universe: Universe,
}

impl MpiRuntime {
    /// Initialises MPI (only the main thread calls it: `Funneled`). An
    /// error if MPI was initialised already or cannot start.
    pub fn init() -> Result<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| {
                TrainError::Distributed("MPI is already initialised in this process".into())
            })?;
        Ok(MpiRuntime { universe })
    }

    /// The communicator of every process of the job (`MPI_COMM_WORLD`).
    pub fn world(&self) -> MpiCommunicator {
        MpiCommunicator {
            world: self.universe.world(),
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// Ends every process of the job with exit status `code`
    /// (`MPI_Abort`): what a rank that failed calls, so that the others do
    /// not wait for it forever.
    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}

/// [`Communicator`] over the processes of an MPI job.
pub struct MpiCommunicator {
    world: SimpleCommunicator,
    /// The receive buffer of the allreduces (the bindings have no in-place
    /// form).
    scratch: RefCell<Vec<f32>>,
}

/// The MPI operation of `op`.
fn system_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum => SystemOperation::sum(),
        ReduceOp::Min => SystemOperation::min(),
        ReduceOp::Max => SystemOperation::max(),
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn allreduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut recv = self.scratch.borrow_mut();
        recv.clear();
        recv.resize(values.len(), 0.0);
        self.world
            .all_reduce_into(&*values, &mut recv[..], SystemOperation::sum());
        values.copy_from_slice(&recv);
        Ok(())
    }

    fn allreduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let mut recv = vec![0.0f64; values.len()];
        self.world
            .all_reduce_into(&*values, &mut recv[..], SystemOperation::sum());
        values.copy_from_slice(&recv);
        Ok(())
    }

    fn allreduce_u64(&self, values: &mut [u64], op: ReduceOp) -> Result<()> {
        let mut recv = vec![0u64; values.len()];
        self.world
            .all_reduce_into(&*values, &mut recv[..], system_op(op));
        values.copy_from_slice(&recv);
        Ok(())
    }

    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(TrainError::Distributed(format!(
                "broadcast from rank {root} in a job of {} processes",
                self.size()
            )));
        }
        self.world
            .process_at_rank(root as i32)
            .broadcast_into(values);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
}
