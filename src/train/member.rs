//! The one writer of a trained member's run folder, for `train`'s run and for each member of an
//! MRKD pair: k, b per head fitted on the training set (eq. 17), the metrics after that mapping,
//! `predictions_test.csv` and `run.json`. The member's `config.toml` and weights are written by
//! its procedure before (a `train` run keeps its best epoch's weights as it goes).

use std::path::Path;

use anyhow::Result;
use normiqa_core::data::{split::Split, Dataset};

use crate::infer::trained::{fit_mapping, head_metrics, write_predictions, HeadOutputs};
use crate::run::info::{AlsoResult, HeadMetrics, RunInfo, SetSizes, Timings};
use crate::run::config::TrainConfig;

/// A trained member's network on its data, as the writer evaluates it.
pub struct Evaluated<'a> {
    /// The network's eval-mode outputs (every head) for images of `dataset`.
    pub outputs: &'a dyn Fn(&[usize]) -> Result<HeadOutputs>,
    /// The MOS of images of `dataset`.
    pub mos: &'a dyn Fn(&[usize]) -> Vec<f64>,
    pub dataset: &'a Dataset,
    pub split: &'a Split,
    /// The training images the mapping is fitted on (a multi-dataset run's main dataset's).
    pub train: &'a [usize],
    pub heads: &'static [&'static str],
}

/// The validation metrics of `run.json`.
pub enum Val {
    /// Those of the kept epoch, as the procedure evaluated them.
    Kept(Option<HeadMetrics>),
    /// Evaluated now, after the mapping (none without validation images).
    Evaluate,
}

/// What `run.json` records of the training itself.
pub struct Record {
    pub config: TrainConfig,
    pub best_epoch: usize,
    pub epochs_done: usize,
    pub backbone_in_weights: bool,
    pub pretrained_prefix: Option<usize>,
    pub val: Val,
    pub timings: Timings,
    pub device: String,
    pub constant_mos_batches: usize,
    pub also: Vec<AlsoResult>,
}

/// The test predictions' file of a run folder.
pub const PREDICTIONS_TEST: &str = "predictions_test.csv";

/// Fits the mapping, evaluates, and writes `predictions_test.csv` and `run.json` into `dir`.
pub fn write(dir: &Path, e: &Evaluated, r: Record) -> Result<RunInfo> {
    let train_out = (e.outputs)(e.train)?;
    let mapping = fit_mapping(&train_out, &(e.mos)(e.train))?;
    let metrics = |out: &HeadOutputs, idx: &[usize]| head_metrics(out, &(e.mos)(idx), Some(&mapping));
    let test_out = (e.outputs)(&e.split.test)?;
    let val = match r.val {
        Val::Kept(v) => v,
        Val::Evaluate if e.split.val.is_empty() => None,
        Val::Evaluate => Some(metrics(&(e.outputs)(&e.split.val)?, &e.split.val)),
    };
    write_predictions(&dir.join(PREDICTIONS_TEST), e.dataset, &e.split.test, e.heads, &test_out, &mapping)?;
    let info = RunInfo {
        normiqa_version: env!("CARGO_PKG_VERSION").to_string(),
        libtorch_version: "2.13.0".to_string(),
        config: r.config,
        heads: e.heads.iter().map(|s| s.to_string()).collect(),
        best_epoch: r.best_epoch,
        epochs_done: r.epochs_done,
        backbone_in_weights: r.backbone_in_weights,
        pretrained_prefix: r.pretrained_prefix,
        sizes: SetSizes { train: e.train.len(), val: e.split.val.len(), test: e.split.test.len() },
        val,
        test: Some(metrics(&test_out, &e.split.test)),
        train: Some(metrics(&train_out, e.train)),
        mapping,
        timings: r.timings,
        device: r.device,
        constant_mos_batches: r.constant_mos_batches,
        also: r.also,
        scale: None,
    };
    info.save(dir)?;
    Ok(info)
}
