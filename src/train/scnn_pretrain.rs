//! DBCNN's S-CNN pre-training (`normiqa pretrain-scnn`), as a procedure of the one engine
//! ([`super::engine`]): the S-CNN classifier ([`crate::model::scnn::Scnn`]) learns the
//! distortion type and level of synthetic images — one class per (type, level) pair present in
//! the dataset. The paper pre-trains on Waterloo + PASCAL images distorted by nine types at four
//! or five levels (39 classes); here the images come from normiqa's own generator
//! (`normiqa synth`: 25 types × 5 levels = 125 classes on the Kodak references), the same idea.
//!
//! Training: Adam at a constant rate, cross-entropy, random crops (`crop`, with horizontal flips)
//! of the training images; the split is by reference (unseen references validate); the epoch with
//! the best validation accuracy (whole images, eval mode) is kept. The run folder gets
//! `scnn.safetensors` — exactly the `scnn.features.*` variables DBCNN loads (`--scnn-weights`) —
//! and `scnn.json` (classes, accuracies), written last.
//!
//! ```toml
//! # config.toml of a pre-training run (what `normiqa pretrain-scnn` writes)
//! epochs = 8
//! batch_size = 32
//! lr = 0.001
//! crop = 112
//! seed = 1
//! device = "cpu"
//! [data]
//! split = "by-reference"
//! train_ratio = 0.8
//! train_val_ratio = 0.8
//! dataset = { kind = "csv", csv = "runs/synth/kodak24/labels.csv", images = "runs/synth/kodak24", mos_column = "score" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use normiqa_core::data::{split::Split, Dataset};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::{nn, Device, Kind, Tensor};

use super::augment::Augment;
use crate::run::info;
use crate::run::config::DataConfig;
use crate::run::data::{self as train_data, LoadedData};
use super::engine::{self, Batch, Evaluation, Finished, MemberRef, Plan, Procedure, StepLosses};
use super::optim::Opt;
use crate::batch;
use crate::loss::{LossConfig, LossKind};
use crate::model::dbcnn::SCNN_PREFIX;
use crate::model::scnn::Scnn;
use crate::model::weights;
use crate::run::folder::{self, RunFolder};

/// The S-CNN features DBCNN loads.
pub const SCNN_FILE: &str = "scnn.safetensors";
/// The summary, written last (the finished marker of the run folder).
pub const SUMMARY: &str = "scnn.json";

/// A pre-training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScnnConfig {
    /// A synthetic dataset with `distortion` and `level` columns (`normiqa synth`'s labels.csv).
    pub data: DataConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's rate (constant).
    pub lr: f64,
    /// Side of the square random training crops (the authors: 224).
    pub crop: u32,
    pub seed: u64,
    pub device: String,
}

/// What `scnn.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScnnSummary {
    /// Class `i` is `classes[i]`: "distortion level".
    pub classes: Vec<String>,
    pub best_epoch: usize,
    pub epochs_done: usize,
    /// Accuracy on the held-out references at the best epoch, and its chance level.
    pub val_accuracy: f64,
    pub chance: f64,
    pub train_images: usize,
    pub val_images: usize,
    pub train_s: f64,
}

/// The class of every sample: the index of its (distortion, level) pair, pairs sorted.
fn classes(dataset: &Dataset) -> Result<(Vec<String>, Vec<i64>)> {
    let mut pairs: BTreeMap<(String, u32), i64> = BTreeMap::new();
    let mut keys = Vec::with_capacity(dataset.len());
    for s in &dataset.samples {
        let (Some(d), Some(l)) = (&s.distortion, s.level) else {
            bail!(
                "{}: image {} has no distortion type and level; pretrain-scnn needs a synthetic dataset with `distortion` and `level` columns (made by `normiqa synth`)",
                dataset.name,
                s.name
            );
        };
        pairs.insert((d.clone(), l), 0);
        keys.push((d.clone(), l));
    }
    for (i, v) in pairs.values_mut().enumerate() {
        *v = i as i64;
    }
    let names = pairs.keys().map(|(d, l)| format!("{d} {l}")).collect();
    Ok((names, keys.iter().map(|k| pairs[k]).collect()))
}

struct Pretrain<'a> {
    cfg: &'a ScnnConfig,
    out: &'a Path,
    split: &'a Split,
    /// Held-out samples: the split's validation and test references.
    val: Vec<usize>,
    images: &'a [RgbImage],
    labels: Vec<i64>,
    classes: Vec<String>,
    vs: nn::VarStore,
    net: Scnn,
    opt: Opt,
    device: Device,
    sums: (f64, usize, usize),
    last_acc: f64,
    best_acc: f64,
}

impl Pretrain<'_> {
    fn targets(&self, idx: &[usize]) -> Tensor {
        let y: Vec<i64> = idx.iter().map(|&i| self.labels[i]).collect();
        Tensor::from_slice(&y).to_device(self.device)
    }

    /// Accuracy on `idx`, whole images, eval mode.
    fn accuracy(&self, idx: &[usize]) -> Result<f64> {
        let mut right = 0i64;
        tch::no_grad(|| -> Result<()> {
            for chunk in batch::same_size_chunks(self.images, idx, 16) {
                let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &self.images[i]).collect();
                let x = batch::to_tensor(&refs, self.device)?;
                let pred = self.net.forward(&x, false).argmax(1, false);
                right += pred.eq_tensor(&self.targets(&chunk)).sum(Kind::Int64).int64_value(&[]);
            }
            Ok(())
        })?;
        Ok(right as f64 / idx.len().max(1) as f64)
    }

    /// The S-CNN features, named as DBCNN's (`scnn.features.*`).
    fn save_features(&self) -> Result<()> {
        let prefix = format!("{SCNN_PREFIX}.features.");
        weights::save_safetensors(&self.vs, &self.out.join(SCNN_FILE), |n| n.starts_with(&prefix))
    }
}

impl Procedure for Pretrain<'_> {
    type Output = ScnnSummary;

    fn members(&mut self) -> Vec<MemberRef<'_>> {
        vec![MemberRef { name: "scnn", vs: &self.vs, opt: &mut self.opt, with_backbone: true }]
    }

    fn set_rates(&mut self, _epoch: usize, iter: usize, _iters: usize) {
        if iter == 0 {
            self.sums = (0.0, 0, 0);
        }
    }

    fn step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let refs: Vec<&RgbImage> = match &batch.augmented {
            Some(a) => a.iter().collect(),
            None => batch.idx.iter().map(|&i| &self.images[i]).collect(),
        };
        let x = batch::to_tensor(&refs, self.device)?;
        let logits = self.net.forward(&x, true);
        let y = self.targets(batch.idx);
        let loss = logits.cross_entropy_for_logits(&y);
        let lv = f64::try_from(&loss)?;
        (loss / batch.accumulation as f64).backward();
        let right = tch::no_grad(|| logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]));
        self.sums = (self.sums.0 + lv, self.sums.1 + right as usize, self.sums.2 + batch.idx.len());
        Ok(StepLosses { checked: vec![("cross-entropy", lv)], log: json!({"loss": lv}) })
    }

    fn evaluate(&mut self, _epoch: usize) -> Result<Evaluation> {
        let acc = self.accuracy(&self.val)?;
        self.last_acc = acc;
        let n = self.sums.2.max(1) as f64;
        let (loss, train_acc) = (self.sums.0 * self.cfg.batch_size as f64 / n, self.sums.1 as f64 / n);
        Ok(Evaluation {
            criterion: Some(acc),
            log: json!({"loss": loss, "train_accuracy": train_acc, "val_accuracy": acc}),
            line: format!("loss {loss:.4}  train acc {train_acc:.3}  val acc {acc:.3}"),
        })
    }

    fn save_best(&mut self) -> Result<()> {
        self.best_acc = self.last_acc;
        self.save_features()
    }

    fn state(&self) -> Value {
        json!({ "best_acc": self.best_acc })
    }

    fn restore(&mut self, state: Value) -> Result<()> {
        self.best_acc = state["best_acc"].as_f64().context("resume state: best_acc")?;
        Ok(())
    }

    fn advice(&self) -> String {
        "try a smaller --lr".into()
    }

    fn finish(&mut self, run: &Finished) -> Result<(ScnnSummary, Value)> {
        let Some(best_epoch) = run.best_epoch else {
            bail!("no epoch gave a finite validation accuracy; nothing was saved")
        };
        let summary = ScnnSummary {
            classes: self.classes.clone(),
            best_epoch,
            epochs_done: run.epochs,
            val_accuracy: self.best_acc,
            chance: 1.0 / self.classes.len() as f64,
            train_images: self.split.train.len(),
            val_images: self.val.len(),
            train_s: run.train_s,
        };
        let text = serde_json::to_string_pretty(&summary)?;
        info::write_atomic(&self.out.join(SUMMARY), text.as_bytes())?;
        tracing::info!(
            "best epoch {best_epoch}: validation accuracy {:.3} over {} classes (chance {:.3}); DBCNN loads {}",
            summary.val_accuracy,
            summary.classes.len(),
            summary.chance,
            self.out.join(SCNN_FILE).display()
        );
        Ok((summary.clone(), json!({"best_epoch": best_epoch, "val_accuracy": summary.val_accuracy})))
    }
}

/// Pre-trains the S-CNN into the run folder `out` (run-folder rules: locked; resumed when
/// interrupted; nothing to do when this configuration finished there; another configuration
/// refused unless `overwrite`). Returns the summary.
pub fn pretrain(cfg: &ScnnConfig, out: &Path, overwrite: bool) -> Result<ScnnSummary> {
    validate(cfg)?;
    let cfg = &ScnnConfig { data: absolute_data(&cfg.data), ..cfg.clone() };
    let Some(folder) = RunFolder::begin(out, &folder::SCNN, cfg, overwrite)? else {
        let p = out.join(SUMMARY);
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        tracing::info!("{}: this pre-training already finished there; nothing to do", out.display());
        return Ok(serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?);
    };
    let device = super::setup::device_and_seed(&cfg.device, cfg.seed)?;
    let LoadedData { dataset, split, images, .. } = train_data::load(&cfg.data, cfg.seed)?;
    let (classes, labels) = classes(&dataset)?;
    let val: Vec<usize> = split.val.iter().chain(&split.test).copied().collect();
    if split.train.len() < cfg.batch_size || val.is_empty() {
        bail!(
            "{}: {} training and {} held-out images; pretrain-scnn needs at least --batch-size {} training images and some held out (--train-ratio below 1)",
            dataset.name,
            split.train.len(),
            val.len(),
            cfg.batch_size
        );
    }
    let vs = nn::VarStore::new(device);
    let net = Scnn::new(&(vs.root() / SCNN_PREFIX), classes.len() as i64);
    let opt = Opt::build(crate::run::config::OptimizerKind::Adam, &vs, cfg.lr, 0.0)?;
    tracing::info!(
        "{}: {} classes, {} training and {} held-out images",
        dataset.name,
        classes.len(),
        split.train.len(),
        val.len()
    );
    let n_classes = classes.len();
    let mut proc = Pretrain {
        cfg,
        out,
        split: &split,
        val,
        images: &images,
        labels,
        classes,
        vs,
        net,
        opt,
        device,
        sums: (0.0, 0, 0),
        last_acc: 0.0,
        best_acc: 0.0,
    };
    let augment = Augment { angle: 0.0, hflip: 0.5, crop: Some([cfg.crop, cfg.crop]) };
    let plan = Plan {
        dataset: &dataset,
        train: &split.train,
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        accumulation_steps: 1,
        seed: cfg.seed,
        augment: Some((&augment, images.as_slice())),
        // (the MOS play no part: a loss that does not normalise them, so nothing is counted)
        loss: &LossConfig { kind: LossKind::Mse, ..Default::default() },
        config_text: toml::to_string_pretty(&ScnnConfig { device: String::new(), ..cfg.clone() })?,
        start: json!({"config": cfg, "classes": n_classes}),
        one_thread: false,
        out: Some(out),
        groups: None,
    };
    let summary = engine::run(&mut proc, &plan)?;
    drop(folder);
    Ok(summary)
}

fn absolute_data(data: &DataConfig) -> DataConfig {
    let mut t = crate::run::TrainConfig::new(data.dataset.clone());
    t.data = data.clone();
    t.with_absolute_paths().data
}

fn validate(cfg: &ScnnConfig) -> Result<()> {
    if cfg.epochs == 0 {
        bail!("--epochs 0: nothing to train");
    }
    if cfg.batch_size < 2 {
        bail!("--batch-size {}: must be at least 2", cfg.batch_size);
    }
    if !(cfg.lr > 0.0) {
        bail!("--lr {}: must be positive", cfg.lr);
    }
    if cfg.crop < 16 {
        bail!("--crop {}: must be at least 16 pixels (the S-CNN's map is at stride 16)", cfg.crop);
    }
    Ok(())
}
