//! What describes a run, and its record: the configuration ([`config`]: dataset, split, model,
//! loss, optimiser, schedule, augmentation), what names a network ([`model`]), the run folder's
//! files and rules ([`info`]: `run.json`'s [`RunInfo`] and the file names; [`folder`]: locks,
//! resume-or-refuse), the datasets ([`dataset`]: one file each) and the run's data
//! loading ([`data`]).
//!
//! Every layer above reads it (`train/`, `distill/`, `infer/`, `model/`, `serve/`, `cli/`); it
//! imports none of them.

pub mod augment;
pub mod config;
pub mod data;
pub mod dataset;
pub mod folder;
pub mod info;
pub mod model;
pub mod schedule;

pub use config::{AlsoData, BackboneMode, DataConfig, DatasetSpec, FrozenMode, Mixing, SplitProtocol, TrainConfig};
pub use info::RunInfo;
