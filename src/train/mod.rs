//! Training (what a run is and its data come from [`crate::run`]): the one engine ([`engine`]: epoch loop,
//! resume, logging, evaluation hooks) with the one-model procedure ([`trainer`]), optimisers,
//! the feature cache and logs.

pub mod adadelta;
pub mod augment;
pub mod constant_mos;
pub mod engine;
pub mod features;
pub mod log;
pub mod member;
pub mod optim;
pub mod resume;
pub mod scnn_pretrain;
pub mod setup;
pub mod slots;
pub mod trainer;

pub use trainer::{train, train_with, TrainOutcome};
