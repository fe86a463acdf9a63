//! A run directory: everything needed to reuse and reproduce a trained model.
//! - `config.toml`: the resolved [`TrainConfig`];
//! - `run.json`: [`RunInfo`] (config, k and b per head, best epoch, metrics, versions);
//! - `weights.safetensors`: the heads, and the backbone when training changed it;
//! - `log.jsonl`, `predictions_test.csv`.
//! Files are written to a temporary name and renamed, so an interrupted run never leaves a broken
//! checkpoint in place of the last good one, and a failed write (a full disk) leaves no partial
//! temporary file ([`crate::atomic`]).

use std::path::Path;

use anyhow::{Context, Result};
use normiqa_core::metrics::{LinearMap, Metrics};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;

pub const RUN_JSON: &str = "run.json";
pub const WEIGHTS: &str = "weights.safetensors";
pub const CONFIG_TOML: &str = "config.toml";
pub const LOG: &str = "log.jsonl";

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SetSizes {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub decode_s: f64,
    pub features_s: f64,
    pub train_s: f64,
    pub total_s: f64,
    pub seconds_per_epoch: f64,
}

/// Metrics of every head, the prediction head last (LinearityIQA: [level 6, level 7, fused]).
pub type HeadMetrics = Vec<Metrics>;

/// What a multi-dataset run learnt of one of its `also` datasets: its own mapping from the
/// model's outputs to its scale (fitted on its training images) and its test metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlsoResult {
    pub dataset: String,
    /// Least-squares line per head, fitted on this dataset's training images.
    pub mapping: Vec<LinearMap>,
    pub sizes: SetSizes,
    /// With this dataset's mapping; `None` when its split has no test images.
    pub test: Option<HeadMetrics>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub normiqa_version: String,
    pub libtorch_version: String,
    pub config: TrainConfig,
    /// Names of the model's outputs, the prediction last.
    #[serde(default = "linearity_heads")]
    pub heads: Vec<String>,
    /// Least-squares line (eq. 17) per head, fitted on the training set; maps outputs to MOS.
    pub mapping: Vec<LinearMap>,
    /// 1-based epoch whose weights were kept (best validation SROCC).
    pub best_epoch: usize,
    pub epochs_done: usize,
    /// True when `weights.safetensors` also holds the backbone (fine-tuned, BatchNorm statistics
    /// updated, or random init); otherwise the backbone comes from its pretrained file.
    pub backbone_in_weights: bool,
    /// Partial fine-tuning (`freeze_blocks`): the stem and the first K backbone blocks are left
    /// out of `weights.safetensors`; they are the pretrained ones, loaded from their file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained_prefix: Option<usize>,
    pub sizes: SetSizes,
    pub val: Option<HeadMetrics>,
    pub test: Option<HeadMetrics>,
    pub train: Option<HeadMetrics>,
    pub timings: Timings,
    pub device: String,
    /// Training batches whose MOS were all equal (the loss went on with the reference's ε;
    /// `train/constant_mos.rs`). Each is a `constant_mos_batch` event in `log.jsonl`.
    #[serde(default)]
    pub constant_mos_batches: usize,
    /// The other datasets of a multi-dataset run (`config.also`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoResult>,
    /// The scale of the mapped scores where the configuration's dataset does not say it (a
    /// checkpoint imported without naming the data it was trained on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
}

fn linearity_heads() -> Vec<String> {
    super::model::Arch::Linearity
        .head_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl RunInfo {
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(RUN_JSON);
        let s = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (is '{}' a normiqa run directory?)",
                p.display(),
                dir.display()
            )
        })?;
        let mut info: RunInfo =
            serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))?;
        info.config.resolve_relative_paths(dir);
        Ok(info)
    }

    /// The scale and direction of the mapped scores (the MOS of the training data), for people.
    pub fn score_scale(&self) -> String {
        match &self.scale {
            Some(s) => s.clone(),
            None => self.config.data.dataset.score_scale(),
        }
    }

    /// What the model's training images were, for warnings about images far from them
    /// ("500x500 photos").
    pub fn training_images(&self) -> String {
        if let Some([h, w]) = self.config.data.resize {
            return format!("{w}x{h} images");
        }
        if self.scale.is_some() {
            return "the images of its training data (not named at import)".into();
        }
        self.config.data.dataset.training_images()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join(RUN_JSON),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }
}

/// Writes a file through a temporary name in the same directory and a rename; a failure leaves
/// no partial file ([`crate::atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(crate::atomic::write(path, bytes)?)
}

/// Whether the run `info` needs the pretrained backbone file (its weight file lacks all or part
/// of the backbone).
pub fn needs_pretrained(info: &RunInfo) -> bool {
    !info.backbone_in_weights || info.pretrained_prefix.is_some()
}
