//! What a procedure does before the engine runs, written once: the device and the seed, and the
//! checks of a training split. (The run folder's part is [`crate::run::folder::RunFolder::begin`].)

use anyhow::Result;
use normiqa_core::data::{split::Split, Dataset};
use tch::Device;

use crate::loss::LossConfig;
use crate::model::parse_device;
use crate::run::config::DataConfig;

/// The run's device (`cpu`, `cuda`, `cuda:N`, `auto`), with libtorch's generator seeded.
pub fn device_and_seed(device: &str, seed: u64) -> Result<Device> {
    let device = parse_device(device)?;
    tch::manual_seed(seed as i64);
    Ok(device)
}

/// A split a procedure can train on: a full batch of training images, a test set, and training
/// MOS that are not all equal ([`super::constant_mos`]).
pub fn check_training_split(dataset: &Dataset, split: &Split, data: &DataConfig, batch_size: usize, loss: &LossConfig) -> Result<()> {
    crate::run::data::check_trainable(split, data, batch_size)?;
    Ok(super::constant_mos::check_split(dataset, &split.train, loss)?)
}
