//! The structs as format version 1 encoded them, and their conversion to
//! the current ones. Frozen in time: never change them.

use serde::{Deserialize, Serialize};

use super::{CheckpointHeader, CheckpointPayload, TensorInfo, TrainState};
use crate::history::History;
use crate::optim::OptimizerState;
use convnet_tensor::Rng;

/// Version 1 of [`CheckpointHeader`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Header {
    pub model: String,
    pub model_config: String,
    pub dataset: String,
    pub class_names: Vec<String>,
    pub params: Vec<TensorInfo>,
    pub buffers: Vec<TensorInfo>,
    pub epoch: usize,
    pub created_by: String,
}

/// Version 1 of [`TrainState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Train {
    pub epochs_done: usize,
    pub global_step: u64,
    pub optimizer: OptimizerState,
    pub config: String,
    pub run_settings: String,
    pub threads: usize,
    pub history: History,
}

/// Version 1 of [`CheckpointPayload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Payload {
    pub params: Vec<Vec<f32>>,
    pub buffers: Vec<Vec<f32>>,
    pub rngs: Vec<(String, Rng)>,
    pub train: Option<Train>,
}

impl From<Header> for CheckpointHeader {
    fn from(h: Header) -> Self {
        CheckpointHeader {
            model: h.model,
            model_config: h.model_config,
            dataset: h.dataset,
            class_names: h.class_names,
            params: h.params,
            buffers: h.buffers,
            epoch: h.epoch,
            created_by: h.created_by,
            preprocessing: None,
        }
    }
}

impl From<Payload> for CheckpointPayload {
    fn from(p: Payload) -> Self {
        CheckpointPayload {
            params: p.params,
            buffers: p.buffers,
            rngs: p.rngs,
            train: p.train.map(|t| TrainState {
                epochs_done: t.epochs_done,
                global_step: t.global_step,
                optimizer: t.optimizer,
                config: t.config,
                run_settings: t.run_settings,
                threads: t.threads,
                history: t.history,
                frozen: Vec::new(),
            }),
        }
    }
}
