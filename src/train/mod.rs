//! Training: configuration, data loading for a run, the one engine ([`engine`]: epoch loop,
//! resume, logging, evaluation hooks) with the one-model procedure ([`trainer`]), optimisers,
//! schedules, the feature cache, checkpoints and logs.

pub mod adadelta;
pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod constant_mos;
pub mod data;
pub mod engine;
pub mod features;
pub mod log;
pub mod optim;
pub mod resume;
pub mod scnn_pretrain;
pub mod schedule;
pub mod trainer;

pub use checkpoint::RunInfo;
pub use config::{AlsoData, BackboneMode, DataConfig, DatasetSpec, FrozenMode, Mixing, SplitProtocol, TrainConfig};
pub use trainer::{train, train_with, TrainOutcome};
