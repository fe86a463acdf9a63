//! Trained models: loading a run folder and the inference path (`predict`, `test`, `serve` and
//! the engine's evaluation all go through [`predict`]). Nothing here imports the trainer.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use normiqa::infer::trained::TrainedModel;
//! let tm = TrainedModel::load("runs/NAME".as_ref(), tch::Device::Cpu, None)?;
//! let img = image::open("photo.jpg")?.to_rgb8();
//! let scores = tm.score(&[img], 1)?; // k·ŷ+b of the prediction head, on the MOS scale
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::RgbImage;
use normiqa_core::metrics::{LinearMap, Metrics};
use tch::{nn, Device, Kind, Tensor};

use super::ensemble;
use crate::model::iqa::IqaModel;
use crate::model::linearity::BACKBONE_PREFIX;
use crate::model::precision::Precision;
use super::tta::TestTime;
use crate::model::weights;
use crate::batch;
use crate::run::info::{needs_pretrained, RunInfo, WEIGHTS};
use crate::model::stored::run_stored;

/// Outputs of every head for a list of samples, in the list's order (the prediction last).
pub type HeadOutputs = Vec<Vec<f64>>;

/// Where a model's inputs come from.
pub enum Inputs<'a> {
    /// Taps computed once (frozen backbone, eval-mode BatchNorm): one tensor per tap, rows =
    /// samples.
    Cached(&'a [Tensor]),
    /// Decoded images, run through the backbone.
    Images(&'a [RgbImage]),
}

fn index_tensor(idx: &[usize], device: Device) -> Tensor {
    Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device)
}

/// The rows `idx` of every tap.
pub fn select_taps(taps: &[Tensor], idx: &[usize], device: Device) -> Vec<Tensor> {
    let t = index_tensor(idx, device);
    taps.iter().map(|f| f.index_select(0, &t)).collect()
}

/// Runs the model in eval mode on `indices`; chunks of at most `batch` (same-size images).
pub fn predict(
    model: &dyn IqaModel,
    inputs: &Inputs,
    indices: &[usize],
    batch: usize,
    device: Device,
) -> Result<HeadOutputs> {
    predict_as(model, inputs, indices, batch, device, Precision::Fp32, &TestTime::default(), None)
}

/// [`predict`] with the backbone at `precision` (resolved: fp32, bf16 or int8) for images
/// through it, each image's outputs the mean over its test-time views `tta` (images only: cached
/// taps have no views). `frozen`: the model's backbone at `precision`, prepared once
/// ([`IqaModel::frozen_at`]); `None` builds the eval path here.
#[allow(clippy::too_many_arguments)]
pub fn predict_as(
    model: &dyn IqaModel,
    inputs: &Inputs,
    indices: &[usize],
    batch: usize,
    device: Device,
    precision: Precision,
    tta: &TestTime,
    frozen: Option<&dyn crate::model::backbone::FrozenBackbone>,
) -> Result<HeadOutputs> {
    if let (Inputs::Cached(_), false) = (inputs, tta.is_none()) {
        bail!("--tta {}: cached features have no test-time views (score the images)", tta.views);
    }
    let mut out: HeadOutputs = vec![Vec::new(); model.head_names().len()];
    let path = match (inputs, frozen) {
        (Inputs::Images(_), Some(f)) => Some(model.eval_path_over(f)),
        (Inputs::Images(_), None) => Some(model.eval_path_at(precision)?),
        (Inputs::Cached(_), _) => None,
    };
    // Images through the backbone are the long case (`test`, evaluations of fine-tuning).
    let bar = match inputs {
        Inputs::Images(_) => crate::progress::bar(indices.len() as u64, "scoring"),
        Inputs::Cached(_) => indicatif::ProgressBar::hidden(),
    };
    tch::no_grad(|| -> Result<()> {
        let chunks: Vec<Vec<usize>> = match inputs {
            Inputs::Cached(_) => indices.chunks(batch.max(1)).map(|c| c.to_vec()).collect(),
            Inputs::Images(images) => batch::same_size_chunks(images, indices, batch.max(1)),
        };
        for chunk in chunks {
            let heads = match inputs {
                Inputs::Cached(taps) => model.heads(&select_taps(taps, &chunk, device), false),
                Inputs::Images(images) => {
                    let x = chunk_tensor(images, &chunk, device)?;
                    bar.inc(chunk.len() as u64);
                    tta.outputs(path.as_ref().expect("built for images"), &x)?
                }
            };
            for (o, h) in out.iter_mut().zip(heads.iter()) {
                o.extend(head_values(h)?);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(out)
}

/// The images `chunk` (of one size) of `images` as one normalised batch.
fn chunk_tensor(images: &[RgbImage], chunk: &[usize], device: Device) -> Result<Tensor> {
    let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &images[i]).collect();
    batch::to_tensor(&refs, device)
}

/// One head's outputs of a batch, as f64s on the CPU.
fn head_values(h: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(h.to_kind(Kind::Double).to_device(Device::Cpu))?)
}

/// The taps of every sample in `indices` (others stay zero): eval-mode backbone, no gradients.
/// Each tap keeps the shape (rows first: pooled vectors, or the maps of a frozen prefix) and
/// precision the model's eval path gives it; the samples must give taps of one shape.
pub fn compute_taps(
    model: &dyn IqaModel,
    images: &[RgbImage],
    indices: &[usize],
    batch: usize,
    device: Device,
) -> Result<Vec<Tensor>> {
    let n = images.len() as i64;
    let mut taps: Vec<Tensor> = Vec::new();
    let bar = crate::progress::bar(indices.len() as u64, "features");
    let path = model.eval_path();
    tch::no_grad(|| -> Result<()> {
        for chunk in batch::same_size_chunks(images, indices, batch.max(1)) {
            let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &images[i]).collect();
            let x = batch::to_tensor(&refs, device)?;
            let idx = index_tensor(&chunk, device);
            let values = path.taps(&x);
            if taps.is_empty() {
                taps = values.iter().map(|v| rows_like(v, n, device)).collect();
            }
            for (t, v) in taps.iter_mut().zip(values) {
                let _ = t.f_index_copy_(0, &idx, &v).with_context(|| {
                    let (w, h) = images[chunk[0]].dimensions();
                    format!("{}x{h} images give taps of another shape than the images before them; give every image one size (--resize H W)", w)
                })?;
            }
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if taps.is_empty() {
        taps = model.tap_widths().iter().map(|&w| Tensor::zeros([n, w], (Kind::Float, device))).collect();
    }
    Ok(taps)
}

/// Zeros with `n` rows and the other dimensions and kind of `v`.
fn rows_like(v: &Tensor, n: i64, device: Device) -> Tensor {
    let mut shape = v.size();
    shape[0] = n;
    Tensor::zeros(shape, (v.kind(), device))
}

/// Metrics that could not be computed (shown as NaN).
pub fn nan_metrics(n: usize) -> Metrics {
    Metrics {
        srocc: f64::NAN,
        plcc: f64::NAN,
        krocc: f64::NAN,
        rmse: f64::NAN,
        n,
    }
}

/// Metrics of each head after an optional per-head mapping; undefined metrics (e.g. constant
/// predictions of a collapsed model) become NaN instead of stopping a run.
///
/// With the run's own mapping (`test`, and training's validation, test and train-set metrics)
/// these are the metrics of the model's scores, k·ŷ+b, what `predict` prints and `serve`
/// answers: in LinearityIQA the mapping fitted on the training set is part of the model. So with
/// k < 0 the rank correlations are those of the mapped scores, of the opposite sign to the raw
/// head's, as in the reference: the model as shipped does rank images that way. `metrics --fit`
/// differs on purpose: there the mapping is fitted on the very predictions it evaluates, to
/// calibrate PLCC and RMSE, and is no part of the predictor, so it keeps the predictions' ranks.
pub fn head_metrics(outputs: &HeadOutputs, mos: &[f64], mapping: Option<&[LinearMap]>) -> Vec<Metrics> {
    outputs
        .iter()
        .enumerate()
        .map(|(h, o)| {
            Metrics::compute_mapped(o, mos, mapping.map(|m| &m[h]))
                .unwrap_or_else(|_| nan_metrics(mos.len()))
        })
        .collect()
}

/// Fits k, b per head on (outputs, MOS) — eq. (17).
pub fn fit_mapping(outputs: &HeadOutputs, mos: &[f64]) -> Result<Vec<LinearMap>> {
    outputs
        .iter()
        .enumerate()
        .map(|(h, o)| {
            LinearMap::fit(o, mos).with_context(|| {
                format!("fitting the linear mapping of head {h} on the training set")
            })
        })
        .collect()
}

/// `image,mos,<head names...>,predicted_mos` for the given samples, written atomically.
pub fn write_predictions(
    path: &Path,
    dataset: &normiqa_core::data::Dataset,
    idx: &[usize],
    names: &[&str],
    out: &HeadOutputs,
    mapping: &[LinearMap],
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["image", "mos"];
    header.extend_from_slice(names);
    header.push("predicted_mos");
    w.write_record(&header)?;
    let last = out.len() - 1;
    let mapped = mapping[last].apply(&out[last]);
    for (k, &i) in idx.iter().enumerate() {
        let s = &dataset.samples[i];
        let mut rec = vec![s.name.clone(), format!("{}", s.mos)];
        rec.extend(out.iter().map(|h| format!("{}", h[k])));
        rec.push(format!("{}", mapped[k]));
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::run::info::write_atomic(path, &bytes)
}

/// A trained model ready for inference.
pub struct TrainedModel {
    pub info: RunInfo,
    pub vs: nn::VarStore,
    pub model: Box<dyn IqaModel>,
    pub dir: PathBuf,
    /// The precision of its weights and forwards (never `auto`).
    pub precision: Precision,
    /// The views each image is scored on (`--tta`; default: the whole image).
    pub tta: TestTime,
    /// An ensemble folder ([`super::ensemble`]): `self` is its first member (its network in
    /// `vs`, `model`), and `info` that member's with one head, `ensemble`, and the identity
    /// mapping; `None` for a run folder.
    ensemble: Option<Ensemble>,
    /// The folded backbone at `precision`, prepared once ([`IqaModel::frozen_at`]; the weights
    /// never change after loading); `None` where the model has none.
    frozen: Option<Box<dyn crate::model::backbone::FrozenBackbone>>,
}

/// The rest of an ensemble: every member's prediction-head mapping (the first member's first),
/// and the members after the first.
struct Ensemble {
    mappings: Vec<LinearMap>,
    others: Vec<TrainedModel>,
}

/// The bytes of a decoded image per pixel as [`TrainedModel::memory_estimate`] counts them:
/// 8-bit RGB and the float tensor made of it.
const IMAGE_BYTES_PER_PIXEL: u64 = 3 + 12;

/// The peak memory of one fp32 forward pass per input pixel (bf16 is counted the same, which
/// overestimates it). EfficientNet-Lite: measured, the peak resident memory of `predict` at
/// 1000x1000 and 2000x2000 grows by ~316 bytes a pixel (Lite0 and Lite2, BENCHMARKS.md's 2-core
/// machine); the other backbones were not measured, and are given a conservative 1 KiB (VGG-16's
/// first stage alone holds 64 fp32 channels at full size, 256 bytes a pixel per map).
pub fn forward_bytes_per_pixel(backbone: crate::model::BackboneName) -> u64 {
    use crate::model::BackboneName::*;
    match backbone {
        EfficientNetLite0 | EfficientNetLite1 | EfficientNetLite2 => 330,
        _ => 1024,
    }
}

/// Scores of images by a trained model.
pub struct Scores {
    /// k·ŷ+b of the prediction head (the MOS scale of the training data).
    pub mapped: Vec<f64>,
    /// Raw outputs of every head.
    pub heads: HeadOutputs,
}

impl TrainedModel {
    /// Loads a run folder: builds the network from its config, loads the pretrained backbone
    /// unless the checkpoint holds it (`weights_override` first, then the run's file, then the
    /// backbone's default), then the checkpoint's tensors.
    ///
    /// An ensemble folder (`ensemble.toml`, [`super::ensemble`]) loads each member so; its score
    /// is the mean of theirs.
    pub fn load(dir: &Path, device: Device, weights_override: Option<&Path>) -> Result<Self> {
        if ensemble::is_ensemble(dir) {
            return Self::load_ensemble(dir, device, weights_override);
        }
        let info = RunInfo::load(dir)?;
        let vs = nn::VarStore::new(device);
        let cfg = &info.config;
        let model = cfg.arch.build(&vs, &cfg.model)?;
        super::checks::check_run_info(dir, &info, model.head_names())?;
        if needs_pretrained(&info) {
            let file = weights_override
                .map(Path::to_path_buf)
                .or_else(|| cfg.weights.clone())
                .or_else(|| cfg.model.backbone.default_weights());
            let Some(file) = file else {
                bail!(
                    "{}: the backbone {} is not in the checkpoint and no pretrained weights were found; pass --weights FILE.pth",
                    dir.display(),
                    cfg.model.backbone
                )
            };
            weights::load_pth(
                &vs,
                BACKBONE_PREFIX,
                &file,
                model.backbone().ignored_weights(),
            )?;
        }
        weights::load_safetensors(&vs, &dir.join(WEIGHTS), run_stored(&info, model.as_ref()))
            .context(if info.backbone_in_weights {
                "loading the run's weights (run.json says they hold the heads and the backbone)"
            } else {
                "loading the run's weights (run.json says they hold the heads only; the backbone is the pretrained one)"
            })?;
        super::checks::check_finite(dir, &vs)?;
        let frozen = model.frozen_at(Precision::Fp32)?;
        Ok(TrainedModel {
            info,
            vs,
            model,
            frozen,
            dir: dir.to_path_buf(),
            precision: Precision::Fp32,
            tta: TestTime::default(),
            ensemble: None,
        })
    }

    fn load_ensemble(dir: &Path, device: Device, weights_override: Option<&Path>) -> Result<Self> {
        if let Some(w) = weights_override {
            bail!("--weights {} with the ensemble {}: each member loads its own backbone's weights (from its run folder or the backbone's package); drop --weights", w.display(), dir.display());
        }
        // Checked before any weights are read.
        let (dirs, info) = ensemble::checked_members(dir)?;
        let mut members = Vec::new();
        for d in dirs {
            let m = Self::load(&d, device, None)
                .with_context(|| format!("{}: loading member {}", dir.display(), d.display()))?;
            members.push(m);
        }
        let mappings = members.iter().map(|m| *m.info.mapping.last().expect("a run has heads")).collect();
        let mut first = members.remove(0);
        first.info = info;
        first.dir = dir.to_path_buf();
        first.ensemble = Some(Ensemble { mappings, others: members });
        Ok(first)
    }

    /// The members of an ensemble (`self` first), or `self` alone.
    fn members(&self) -> impl Iterator<Item = &TrainedModel> {
        std::iter::once(self).chain(self.ensemble.iter().flat_map(|e| e.others.iter()))
    }

    /// Runs the model's forwards at `precision`: `auto` resolved for its device (and fp32 where
    /// the model runs only in fp32); a precision asked for explicitly that the model cannot run
    /// at is refused, naming the option.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        if let Some(e) = &mut self.ensemble {
            let others = std::mem::take(&mut e.others);
            e.others = others.into_iter().map(|m| m.with_precision(precision)).collect::<Result<_>>()?;
        }
        let p = precision.resolve(self.vs.device());
        (self.precision, self.frozen) = match self.prepare(p) {
            Ok(frozen) => (p, frozen),
            Err(_) if precision == Precision::Auto => (Precision::Fp32, self.prepare(Precision::Fp32)?),
            Err(e) => return Err(e.into()),
        };
        Ok(self)
    }

    /// The model's backbone prepared at `precision` ([`IqaModel::frozen_at`]); `None` for a model
    /// without one, once its eval path at `precision` is known to build. The preparation is
    /// itself the check: the weights are folded (for int8, packed) once.
    fn prepare(&self, precision: Precision) -> Result<Option<Box<dyn crate::model::backbone::FrozenBackbone>>, crate::model::error::ModelError> {
        match self.model.frozen_at(precision)? {
            Some(f) => Ok(Some(f)),
            None => self.model.eval_path_at(precision).map(|_| None),
        }
    }

    /// Scores each image as the mean over the views `tta` ([`super::tta`]); refused for a model
    /// that averages views of its own (HyperIQA).
    pub fn with_tta(mut self, tta: TestTime) -> Result<Self> {
        for m in self.members() {
            tta.check(m.model.as_ref())?;
        }
        if let Some(e) = &mut self.ensemble {
            e.others.iter_mut().for_each(|m| m.tta = tta);
        }
        self.tta = tta;
        Ok(self)
    }

    /// Raw outputs of every head for `images[indices]` (eval mode, at the model's precision,
    /// the mean over the model's test-time views), in batches of at most `batch` same-size
    /// images (all views of a batch in one forward pass).
    ///
    /// An ensemble has one output: the mean of its members' k·ŷ+b (the MOS scale).
    pub fn outputs(&self, images: &[RgbImage], indices: &[usize], batch: usize) -> Result<HeadOutputs> {
        let Some(e) = &self.ensemble else {
            return self.own_outputs(images, indices, batch);
        };
        let members: Vec<&TrainedModel> = self.members().collect();
        let paths = members.iter().map(|m| m.eval_path()).collect::<Result<Vec<_>>>()?;
        let mut sum = Vec::with_capacity(indices.len());
        let device = self.vs.device();
        tch::no_grad(|| -> Result<()> {
            // Each batch becomes one input tensor that every member scores (the same tensor each
            // member would build for itself: the scores are those of scoring them one by one).
            for chunk in batch::same_size_chunks(images, indices, batch.max(1)) {
                let x = chunk_tensor(images, &chunk, device)?;
                let mut total = vec![0.0; chunk.len()];
                for ((m, path), map) in members.iter().zip(&paths).zip(&e.mappings) {
                    let heads = m.tta.outputs(path, &x)?;
                    for (t, v) in total.iter_mut().zip(map.apply(&head_values(&heads[heads.len() - 1])?)) {
                        *t += v;
                    }
                }
                sum.extend(total);
            }
            Ok(())
        })?;
        let n = e.mappings.len() as f64;
        Ok(vec![sum.into_iter().map(|s| s / n).collect()])
    }

    /// This model's eval path at its precision (over its prepared backbone where it has one).
    fn eval_path(&self) -> Result<crate::model::iqa::EvalPath<'_>> {
        Ok(match &self.frozen {
            Some(f) => self.model.eval_path_over(f.as_ref()),
            None => self.model.eval_path_at(self.precision)?,
        })
    }

    /// The outputs of this model's own network (an ensemble's first member).
    fn own_outputs(&self, images: &[RgbImage], indices: &[usize], batch: usize) -> Result<HeadOutputs> {
        predict_as(
            self.model.as_ref(),
            &Inputs::Images(images),
            indices,
            batch,
            self.vs.device(),
            self.precision,
            &self.tta,
            self.frozen.as_deref(),
        )
    }

    /// About how many bytes of memory scoring one `w`×`h` image takes (its pixels as bytes and
    /// as a float tensor, and the forward pass of its views at the backbone's
    /// [`forward_bytes_per_pixel`]); an ensemble's members score one after the other, so its
    /// estimate is its largest member's. An estimate to refuse hopeless images before libtorch
    /// tries (`predict --max-image-memory`), not a measurement.
    pub fn memory_estimate(&self, w: u32, h: u32) -> u64 {
        let pixels = w as f64 * h as f64;
        let views = match self.tta.views {
            super::tta::Tta::None => 1.0,
            super::tta::Tta::Flip => 2.0,
            five_or_ten => {
                let crops: f64 = self
                    .tta
                    .crop_boxes(h as i64, w as i64)
                    .iter()
                    .map(|[_, _, ch, cw]| (*ch * *cw) as f64)
                    .sum::<f64>()
                    / pixels.max(1.0);
                if five_or_ten == super::tta::Tta::TenCrop { 2.0 * crops } else { crops }
            }
        };
        let forward = self
            .members()
            .map(|m| {
                let c = &m.info.config;
                let per_pixel = forward_bytes_per_pixel(c.model.backbone) as f64;
                match c.arch {
                    // 224x224 crops whatever the image's size.
                    crate::model::iqa::Arch::HyperIqa => c.model.test_crops as f64 * 224.0 * 224.0 * per_pixel,
                    _ => views * pixels * per_pixel,
                }
            })
            .fold(0.0, f64::max);
        (pixels * IMAGE_BYTES_PER_PIXEL as f64 + forward) as u64
    }

    /// Names of the model's outputs, the prediction last.
    pub fn head_names(&self) -> &'static [&'static str] {
        if self.ensemble.is_some() {
            return ensemble::ENSEMBLE_HEADS;
        }
        self.model.head_names()
    }

    /// Scores decoded images (eval mode), in batches of at most `batch` same-size images.
    pub fn score(&self, images: &[RgbImage], batch: usize) -> Result<Scores> {
        let idx: Vec<usize> = (0..images.len()).collect();
        let heads = self.outputs(images, &idx, batch)?;
        let last = heads.len() - 1;
        let mapped = self.info.mapping[last].apply(&heads[last]);
        Ok(Scores { mapped, heads })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a run's mapping of k < 0, `test`'s and training's metrics are those of the scores
    /// `predict` prints (k·ŷ+b): SROCC/KROCC of the mapped scores, the raw head's negated.
    #[test]
    fn a_runs_negative_mapping_gives_the_metrics_of_the_scores_predict_prints() {
        let raw = vec![1.0, 2.0, 3.0, 5.0, 4.0];
        let mos = [50.0, 40.0, 30.0, 10.0, 25.0];
        let map = LinearMap { k: -10.0, b: 60.0 };
        let printed = map.apply(&raw);
        let m = &head_metrics(&vec![raw.clone()], &mos, Some(&[map]))[0];
        let of_printed = Metrics::compute_mapped(&printed, &mos, None).unwrap();
        assert_eq!((m.srocc, m.krocc, m.plcc), (of_printed.srocc, of_printed.krocc, of_printed.plcc));
        let of_raw = Metrics::compute_mapped(&raw, &mos, None).unwrap();
        assert!(m.srocc > 0.9 && (m.srocc + of_raw.srocc).abs() < 1e-12, "{} {}", m.srocc, of_raw.srocc);
    }
}
