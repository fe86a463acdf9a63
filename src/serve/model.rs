//! The one place where `serve` reaches a trained model: loading a run folder and scoring decoded
//! images with the same library calls as `normiqa predict` (native size, the prediction head, the run's
//! k·ŷ+b mapping), so a served score equals predict's score of the same file.

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use tch::Device;

use crate::infer::trained::TrainedModel;
use crate::infer::TestTime;
use crate::model::Precision;
use crate::run::DatasetSpec;

/// What the service says about its model (in `/healthz`, every `/score` answer and the page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The run folder's name, e.g. `clive-efficientnet-lite0`.
    pub name: String,
    /// The dataset whose MOS scale the scores are on, e.g. `CLIVE`.
    pub trained_on: String,
    /// The precision of its forward passes (`fp32` or `bf16`).
    pub precision: crate::model::Precision,
    /// The views each image is scored on (`--tta`).
    pub tta: TestTime,
}

/// Scores batches of decoded images; the batcher's worker thread owns it.
pub trait Scorer {
    /// The mapped quality score of every image, in the order given. The images of one call may
    /// have different sizes; same-size images are run through the network together.
    fn score(&mut self, images: &[RgbImage]) -> Result<Vec<f64>>;
}

/// A trained run folder loaded for inference on one device.
pub struct RunScorer {
    trained: TrainedModel,
    /// `--max-image-memory` in bytes (0 = none): a larger image is an error of its request.
    max_image_memory: u64,
}

impl RunScorer {
    /// Sets the memory bound of one image ([`crate::infer::pool::over_memory`]); by default
    /// half of this machine's memory.
    pub fn with_max_image_memory(mut self, bytes: u64) -> Self {
        self.max_image_memory = bytes;
        self
    }
}

/// Loads the run folder `dir` (the backbone's pretrained weights from `weights` or where the
/// run says) for scoring on `device`, at `precision`, on the views `tta`.
pub fn load(
    dir: &Path,
    device: Device,
    weights: Option<&Path>,
    precision: Precision,
    tta: TestTime,
) -> Result<(ModelInfo, RunScorer)> {
    let trained = TrainedModel::load(dir, device, weights)
        .with_context(|| format!("loading the model {}", dir.display()))?
        .with_precision(precision)?
        .with_tta(tta)?;
    let info = ModelInfo {
        name: run_name(dir),
        trained_on: dataset_label(&trained.info.config.data.dataset),
        precision: trained.precision,
        tta,
    };
    let max_image_memory = crate::infer::pool::default_max_image_memory();
    Ok((info, RunScorer { trained, max_image_memory }))
}

impl Scorer for RunScorer {
    fn score(&mut self, images: &[RgbImage]) -> Result<Vec<f64>> {
        for im in images {
            let (w, h) = im.dimensions();
            if let Some(why) = crate::infer::pool::over_memory(&self.trained, w, h, self.max_image_memory) {
                anyhow::bail!("the image is too large for this server: {why}");
            }
        }
        // Same-size images next to each other: the batch path needs one size per forward pass.
        let mut order: Vec<usize> = (0..images.len()).collect();
        order.sort_by_key(|&i| images[i].dimensions());
        let heads = self.trained.outputs(images, &order, images.len().max(1))?;
        let last = heads.len() - 1;
        let mapped = self.trained.info.mapping[last].apply(&heads[last]);
        let mut scores = vec![0.0; images.len()];
        for (&i, s) in order.iter().zip(mapped) {
            scores[i] = s;
        }
        Ok(scores)
    }
}

fn run_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn dataset_label(spec: &DatasetSpec) -> String {
    spec.label()
}
