//! Training: configuration, data loading for a run, the epoch loop, checkpoints and logs.

pub mod adadelta;
pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod constant_mos;
pub mod data;
pub mod features;
pub mod log;
pub mod optim;
pub mod resume;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{RunInfo, TrainedModel};
pub use config::{DataConfig, DatasetSpec, FrozenMode, SplitProtocol, TrainConfig};
pub use trainer::{predict, train, train_with, HeadOutputs, Inputs, TrainOutcome};
