//! Multi-Rate Knowledge Distillation (Yuan, "Balancing easy and hard distortions: a multi-rate
//! knowledge distillation strategy for blind IQA"), built from the paper (no public code).
//!
//! Two models ("teacher": large learning rate, "student": small learning rate) are trained
//! together on the same batches. Each model's loss is its task loss plus λ times the mean squared
//! difference of the two models' predictions (eq. 5):
//!
//! L_k = task(ŷ_k, y) + λ · (1/n) Σ_i (ŷ¹_i − ŷ²_i)²
//!
//! Mutual distillation (the default) lets the eq.-5 term pull both models; one-way distillation
//! detaches the teacher's output, so the teacher gets only its task gradient. Each model has its
//! own optimiser and cosine-annealed rate (eq. 6: its own η_max, shared η_min and T_max). Since the
//! two models have disjoint parameters, one backward pass of task₁ + task₂ + λ·d gives each model
//! exactly the gradient of its own L_k.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::RgbImage;
use normiqa_core::data::{split::Split, Dataset};
use normiqa_core::metrics::{srocc, Metrics};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::batch;
use crate::loss::{self, LossConfig, LossKind};
use crate::model::linearity::{torch_linear, BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use crate::model::pooling::{pooled_len, spsp};
use crate::model::{parse_device, weights, Backbone, LinearityIqa, ModelConfig, Pool};
use crate::train::config::{eval_batch_size, DataConfig, OptimizerKind};
use crate::train::data as train_data;
use crate::train::schedule::cosine;
use crate::train::trainer::{compute_features, nan_metrics};

/// Which network a member of the pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// LinearityIQA (three heads; the fused head is the prediction).
    #[default]
    Linearity,
    /// Backbone → global average pooling of the last stage → Linear(C, 1) (the paper's
    /// "ResNet50"-style regressor).
    Plain,
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linearity" | "linearity-iqa" => Ok(Arch::Linearity),
            "plain" | "linear" => Ok(Arch::Plain),
            o => Err(format!("unknown model '{o}' (expected linearity or plain)")),
        }
    }
}

/// One model of the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberConfig {
    #[serde(default)]
    pub arch: Arch,
    #[serde(default)]
    pub model: ModelConfig,
    /// η_max of this model.
    pub lr: f64,
    /// Pretrained backbone weights; `None` = the backbone's default.
    #[serde(default)]
    pub weights: Option<PathBuf>,
}

impl MemberConfig {
    /// The model configuration whose pooled features this member reads: the plain regressor
    /// always uses global average pooling (so it shares LinearityIQA's default cached features).
    pub fn feature_config(&self) -> ModelConfig {
        match self.arch {
            Arch::Linearity => self.model.clone(),
            Arch::Plain => ModelConfig {
                pool: Pool::Avg,
                p6: 1,
                p7: 1,
                use_bn_end: false,
                ..self.model.clone()
            },
        }
    }
}

/// Direction of the eq.-5 term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Both models are pulled towards each other.
    #[default]
    Mutual,
    /// The teacher's output is detached: only the student learns from the teacher.
    OneWay,
}

/// The unit of t and T_max in eq. 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LrUnit {
    /// t = epoch (the rate is constant within an epoch).
    #[default]
    Epoch,
    /// t = iteration; T_max (given in epochs) is multiplied by the iterations per epoch.
    Step,
}

/// One two-model run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    pub data: DataConfig,
    pub teacher: MemberConfig,
    pub student: MemberConfig,
    /// Random backbone initialisation: for tests only.
    #[serde(default)]
    pub random_init: bool,
    /// Task loss (MSE as the paper; any normiqa loss).
    #[serde(default = "default_loss")]
    pub loss: LossConfig,
    /// LinearityIQA head weights [head 6, head 7, fused] of the task loss.
    #[serde(default = "default_beta")]
    pub beta: [f64; 3],
    /// λ of eq. 5; 0 = independent training.
    #[serde(default = "one")]
    pub lambda: f64,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerKind,
    #[serde(default)]
    pub weight_decay: f64,
    /// Shared η_min of eq. 6.
    #[serde(default)]
    pub eta_min: f64,
    /// Shared T_max of eq. 6, in epochs (default: the number of epochs).
    #[serde(default)]
    pub t_max: Option<usize>,
    #[serde(default)]
    pub lr_unit: LrUnit,
    /// Backbone rate = lr · ft_lr_ratio; 0 freezes the backbones and trains on cached pooled
    /// features (eval-mode BatchNorm).
    #[serde(default)]
    pub ft_lr_ratio: f64,
    /// Train on z-scored MOS (train-set mean and std): keeps MSE gradients of the same size on
    /// every dataset, so one learning-rate range fits all. Correlations are unaffected.
    #[serde(default = "yes")]
    pub normalize_mos: bool,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_bs")]
    pub batch_size: usize,
    /// Evaluation batch size (0 = automatic; cached features are evaluated in chunks of 1024).
    #[serde(default)]
    pub eval_batch_size: usize,
    #[serde(default = "default_device")]
    pub device: String,
    /// Cross-dataset test set (all of its images), evaluated every epoch (Table 6).
    #[serde(default)]
    pub cross: Option<DataConfig>,
}

fn default_loss() -> LossConfig {
    LossConfig {
        kind: LossKind::Mse,
        detach: false,
        monotonicity: None,
    }
}
fn default_beta() -> [f64; 3] {
    [0.1, 0.1, 1.0]
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Sgd { momentum: 0.9 }
}
fn default_epochs() -> usize {
    30
}
fn default_bs() -> usize {
    16
}
fn default_device() -> String {
    "auto".into()
}

impl DistillConfig {
    /// The paper's setting (MSE, SGD momentum 0.9, batch 16, cosine to 0) on a dataset, with the
    /// given rates and LinearityIQA on EfficientNet-Lite0 for both models.
    pub fn new(data: DataConfig, teacher_lr: f64, student_lr: f64) -> Self {
        let member = |lr| MemberConfig {
            arch: Arch::Linearity,
            model: ModelConfig::default(),
            lr,
            weights: None,
        };
        DistillConfig {
            data,
            teacher: member(teacher_lr),
            student: member(student_lr),
            random_init: false,
            loss: default_loss(),
            beta: default_beta(),
            lambda: 1.0,
            direction: Direction::Mutual,
            optimizer: default_optimizer(),
            weight_decay: 0.0,
            eta_min: 0.0,
            t_max: None,
            lr_unit: LrUnit::Epoch,
            ft_lr_ratio: 0.0,
            normalize_mos: true,
            epochs: default_epochs(),
            batch_size: default_bs(),
            eval_batch_size: 0,
            device: default_device(),
            cross: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.loss.kind.validate()?;
        if self.batch_size < 2 {
            bail!("--batch-size {}: must be at least 2", self.batch_size);
        }
        if self.epochs == 0 {
            bail!("--epochs 0: nothing to train");
        }
        for (name, m) in [("teacher", &self.teacher), ("student", &self.student)] {
            if !(m.lr > 0.0) {
                bail!("--{name}-lr {}: must be positive", m.lr);
            }
        }
        if !(self.lambda >= 0.0) {
            bail!("--lambda {}: must be >= 0", self.lambda);
        }
        if !(self.eta_min >= 0.0) || self.eta_min > self.teacher.lr.min(self.student.lr) {
            bail!(
                "--eta-min {}: must be >= 0 and at most both learning rates",
                self.eta_min
            );
        }
        if self.t_max == Some(0) {
            bail!("--t-max 0: must be at least 1");
        }
        if !(self.ft_lr_ratio >= 0.0) {
            bail!("--ft-lr-ratio {}: must be >= 0", self.ft_lr_ratio);
        }
        let (r1, r2) = (self.data.train_ratio, self.data.train_val_ratio);
        if !(r1 > 0.0 && r1 <= r2 && r2 <= 1.0) {
            bail!("--train-ratio {r1} --train-val-ratio {r2}: need 0 < train-ratio <= train-val-ratio <= 1");
        }
        Ok(())
    }

    pub fn frozen(&self) -> bool {
        self.ft_lr_ratio == 0.0
    }

    pub fn member(&self, k: usize) -> &MemberConfig {
        if k == 0 {
            &self.teacher
        } else {
            &self.student
        }
    }

    /// The rate of model `k` (0 = teacher, 1 = student) at 0-based `epoch` and iteration
    /// `iter` within it (eq. 6).
    pub fn lr_at(&self, k: usize, epoch: usize, iter: usize, iters_per_epoch: usize) -> f64 {
        let t_max = self.t_max.unwrap_or(self.epochs);
        let eta_max = self.member(k).lr;
        match self.lr_unit {
            LrUnit::Epoch => cosine(epoch, t_max, eta_max, self.eta_min),
            LrUnit::Step => cosine(
                epoch * iters_per_epoch + iter,
                t_max * iters_per_epoch,
                eta_max,
                self.eta_min,
            ),
        }
    }
}

/// The eq.-5 term: (1/n) Σ (y¹ᵢ − y²ᵢ)².
pub fn distill_term(y1: &Tensor, y2: &Tensor) -> Tensor {
    (y1.reshape([-1]) - y2.reshape([-1]))
        .square()
        .mean(Kind::Float)
}

/// Backbone → global average pooling of the last stage → Linear(C, 1).
#[derive(Debug)]
pub struct PlainIqa {
    pub config: ModelConfig,
    pub backbone: Box<dyn Backbone>,
    pub fc: nn::Linear,
}

impl PlainIqa {
    /// Backbone under `backbone.` (group 1), the regressor `fc.*` (group 0).
    pub fn new(vs: &nn::VarStore, config: ModelConfig) -> Self {
        let root = vs.root();
        let backbone = config.backbone.build(
            &(root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX),
            config.drop_connect,
        );
        let c = backbone.channels()[1];
        let fc = torch_linear(
            root.set_group(HEADS_GROUP) / "fc",
            pooled_len(c, Pool::Avg, 1),
            1,
        );
        PlainIqa {
            config,
            backbone,
            fc,
        }
    }
}

/// The network of a member.
#[derive(Debug)]
pub enum Net {
    Linearity(LinearityIqa),
    Plain(PlainIqa),
}

/// One model of the pair with its own variables.
pub struct Member {
    pub vs: nn::VarStore,
    pub net: Net,
    pub config: MemberConfig,
}

impl Member {
    pub fn new(config: &MemberConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = match config.arch {
            Arch::Linearity => Net::Linearity(LinearityIqa::new(&vs, config.model.clone())),
            Arch::Plain => Net::Plain(PlainIqa::new(&vs, config.feature_config())),
        };
        Member {
            vs,
            net,
            config: config.clone(),
        }
    }

    pub fn backbone(&self) -> &dyn Backbone {
        match &self.net {
            Net::Linearity(m) => m.backbone.as_ref(),
            Net::Plain(m) => m.backbone.as_ref(),
        }
    }

    /// Loads the pretrained backbone (the member's file or the backbone's default).
    pub fn load_pretrained(&self) -> Result<PathBuf> {
        let file = pretrained_file(&self.config)?;
        let n = weights::load_pth(
            &self.vs,
            BACKBONE_PREFIX,
            &file,
            self.backbone().ignored_weights(),
        )?;
        tracing::debug!("loaded {n} pretrained tensors from {}", file.display());
        Ok(file)
    }

    /// Stops gradients into the backbone (frozen mode).
    pub fn freeze_backbone(&self) {
        let prefix = format!("{BACKBONE_PREFIX}.");
        for (name, t) in self.vs.variables() {
            if name.starts_with(&prefix) {
                let _ = t.set_requires_grad(false);
            }
        }
    }

    /// Outputs from pooled features: LinearityIQA's [head 6, head 7, fused] or the plain model's
    /// single output. The last one is the prediction.
    pub fn forward_features(&self, f6: &Tensor, f7: &Tensor, train: bool) -> Vec<Tensor> {
        match &self.net {
            Net::Linearity(m) => m.heads.forward(f6, f7, train).into(),
            Net::Plain(m) => vec![f7.apply(&m.fc).reshape([-1])],
        }
    }

    /// Outputs from a normalised image batch through the backbone.
    pub fn forward_images(
        &self,
        x: &Tensor,
        train_backbone: bool,
        train_heads: bool,
    ) -> Vec<Tensor> {
        match &self.net {
            Net::Linearity(m) => m.forward(x, train_backbone, train_heads).into(),
            Net::Plain(m) => {
                let (_, m7) = m.backbone.forward_two(x, train_backbone);
                let f7 = spsp(&m7, 1, Pool::Avg);
                vec![f7.apply(&m.fc).reshape([-1])]
            }
        }
    }

    /// Task loss of the outputs (β-weighted heads for LinearityIQA).
    pub fn task_loss(
        &self,
        loss_cfg: &LossConfig,
        beta: [f64; 3],
        outs: &[Tensor],
        y: &Tensor,
    ) -> Result<Tensor> {
        Ok(match outs {
            [a, b, c] => loss::multi_head(
                loss_cfg,
                beta,
                &[a.shallow_clone(), b.shallow_clone(), c.shallow_clone()],
                y,
            )?,
            [p] => loss_cfg.compute(p, y)?,
            _ => bail!("unexpected number of outputs {}", outs.len()),
        })
    }
}

/// The pretrained-weight file of a member.
pub fn pretrained_file(m: &MemberConfig) -> Result<PathBuf> {
    m.weights
        .clone()
        .or_else(|| m.model.backbone.default_weights())
        .with_context(|| {
            format!(
                "no pretrained weights for backbone {}: give the member's weights file",
                m.model.backbone
            )
        })
}

/// The losses of one step: (total to backpropagate, teacher task, student task, eq.-5 term).
pub fn pair_loss(
    cfg: &DistillConfig,
    members: &[Member; 2],
    outs: &[Vec<Tensor>; 2],
    y: &Tensor,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let t0 = members[0].task_loss(&cfg.loss, cfg.beta, &outs[0], y)?;
    let t1 = members[1].task_loss(&cfg.loss, cfg.beta, &outs[1], y)?;
    let (p0, p1) = (outs[0].last().unwrap(), outs[1].last().unwrap());
    let d = match cfg.direction {
        Direction::Mutual => distill_term(p0, p1),
        Direction::OneWay => distill_term(&p0.detach(), p1),
    };
    let total = if cfg.lambda > 0.0 {
        &t0 + &t1 + &d * cfg.lambda
    } else {
        &t0 + &t1
    };
    Ok((total, t0, t1, d))
}

/// What the models read: cached pooled features per feature configuration, or decoded images.
pub enum Inputs {
    /// (f6, f7) for the teacher and the student (shallow clones when shared); rows = samples.
    Cached([(Tensor, Tensor); 2]),
    Images(Vec<RgbImage>),
}

/// A loaded dataset with its model inputs, reused across seeds and variants.
pub struct Prepared {
    pub dataset: Dataset,
    pub inputs: Inputs,
    pub cross: Option<(Dataset, Inputs)>,
}

/// Loads the dataset (and the cross-dataset test set) and the inputs. In frozen mode the pooled
/// features come from the feature cache of `normiqa train` (same key, so runs of either command
/// share it); images are decoded only on a cache miss.
pub fn prepare(cfg: &DistillConfig, seed: u64) -> Result<Prepared> {
    let device = parse_device(&cfg.device).map_err(anyhow::Error::msg)?;
    let dataset = train_data::load_dataset(&cfg.data.dataset, &cfg.data.loading)?;
    let inputs = prepare_inputs(cfg, &cfg.data, &dataset, seed, device)?;
    let cross = match &cfg.cross {
        Some(dc) => {
            let ds = train_data::load_dataset(&dc.dataset, &dc.loading)?;
            let inp = prepare_inputs(cfg, dc, &ds, seed, device)?;
            Some((ds, inp))
        }
        None => None,
    };
    Ok(Prepared {
        dataset,
        inputs,
        cross,
    })
}

fn prepare_inputs(
    cfg: &DistillConfig,
    dc: &DataConfig,
    dataset: &Dataset,
    seed: u64,
    device: Device,
) -> Result<Inputs> {
    let all = Split::all_test(dataset.len());
    let rules = train_data::resize_rules(dc);
    if !cfg.frozen() {
        let (images, secs) = train_data::decode_used(dataset, &all, dc)?;
        tracing::info!(
            "{}: decoded {} images in {:.1} s",
            dataset.name,
            images.len(),
            secs
        );
        return Ok(Inputs::Images(images));
    }
    let mut images: Option<Vec<RgbImage>> = None;
    let mut got: Vec<(ModelConfig, Option<PathBuf>, (Tensor, Tensor))> = Vec::new();
    let mut out = Vec::new();
    for m in [&cfg.teacher, &cfg.student] {
        let fc = m.feature_config();
        let wfile = if cfg.random_init {
            None
        } else {
            Some(pretrained_file(m)?)
        };
        let same = |(c, w, _): &&(ModelConfig, Option<PathBuf>, (Tensor, Tensor))| {
            c.backbone == fc.backbone
                && c.pool == fc.pool
                && c.p6 == fc.p6
                && c.p7 == fc.p7
                && *w == wfile
        };
        if let Some((_, _, (a, b))) = got.iter().find(same) {
            out.push((a.shallow_clone(), b.shallow_clone()));
            continue;
        }
        let paths: Vec<&Path> = dataset.samples.iter().map(|s| s.path.as_path()).collect();
        let key =
            crate::train::features::cache_key(&fc, wfile.as_deref(), &format!("{rules:?}"), &paths);
        let cached = if cfg.random_init {
            None
        } else {
            crate::train::features::load(&key, device)
        };
        let f = match cached.filter(|(f6, _)| f6.size()[0] == dataset.len() as i64) {
            Some(f) => {
                tracing::info!(
                    "{}: pooled {} features of {} images loaded from the cache",
                    dataset.name,
                    fc.backbone,
                    dataset.len()
                );
                f
            }
            None => {
                if images.is_none() {
                    let (im, secs) = train_data::decode_used(dataset, &all, dc)?;
                    tracing::info!(
                        "{}: decoded {} images in {:.1} s",
                        dataset.name,
                        im.len(),
                        secs
                    );
                    images = Some(im);
                }
                let t0 = std::time::Instant::now();
                tch::manual_seed(seed as i64);
                let vs = nn::VarStore::new(device);
                let net = LinearityIqa::new(&vs, fc.clone());
                if let Some(w) = &wfile {
                    weights::load_pth(&vs, BACKBONE_PREFIX, w, net.backbone.ignored_weights())?;
                }
                let idx: Vec<usize> = (0..dataset.len()).collect();
                let f = compute_features(
                    &net,
                    images.as_ref().unwrap(),
                    &idx,
                    eval_batch_size(cfg.eval_batch_size, device),
                    device,
                )?;
                tracing::info!(
                    "{}: computed {} features of {} images in {:.1} s",
                    dataset.name,
                    fc.backbone,
                    dataset.len(),
                    t0.elapsed().as_secs_f64()
                );
                if !cfg.random_init {
                    if let Err(e) = crate::train::features::store(&key, &f.0, &f.1) {
                        tracing::warn!("could not cache the features: {e:#}");
                    }
                }
                f
            }
        };
        out.push((f.0.shallow_clone(), f.1.shallow_clone()));
        got.push((fc, wfile, f));
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    Ok(Inputs::Cached([a, b]))
}

/// Evaluation of one model at one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Eval {
    pub val: Option<Metrics>,
    pub test: Metrics,
    /// Test SRCC per distortion type (datasets with a distortion column).
    pub test_per_type: BTreeMap<String, f64>,
    pub cross: Option<Metrics>,
    pub cross_per_type: BTreeMap<String, f64>,
}

/// One epoch of a pair run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Rates of [teacher, student] at the epoch's first step.
    pub lr: [f64; 2],
    /// Mean task loss of [teacher, student].
    pub task_loss: [f64; 2],
    /// Mean eq.-5 term (computed even when λ = 0).
    pub distill: f64,
    pub eval: [Eval; 2],
}

/// A model's results at a chosen epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub epoch: usize,
    pub eval: Eval,
}

/// The results of one model of the pair: final epoch, best-validation epoch (when there is a
/// validation set) and, for comparison with papers that report it, the oracle best-test epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    pub lr: f64,
    pub final_epoch: Snapshot,
    pub best_val: Option<Snapshot>,
    pub oracle_best_test: Snapshot,
}

/// Everything a pair run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairResult {
    pub seed: u64,
    pub sizes: [usize; 3],
    pub seconds: f64,
    pub history: Vec<EpochRecord>,
    /// [teacher, student].
    pub models: [ModelResult; 2],
}

#[derive(Serialize)]
struct IterLog {
    epoch: usize,
    iter: usize,
    lr: [f64; 2],
    task_loss: [f64; 2],
    distill: f64,
}

/// Predictions (last output) of a member for `indices`, in order.
pub fn predict(
    member: &Member,
    which: usize,
    inputs: &Inputs,
    indices: &[usize],
    eval_bs: usize,
    device: Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(indices.len());
    tch::no_grad(|| -> Result<()> {
        let chunks: Vec<Vec<usize>> = match inputs {
            Inputs::Cached(_) => indices.chunks(1024).map(|c| c.to_vec()).collect(),
            Inputs::Images(images) => batch::same_size_chunks(images, indices, eval_bs.max(1)),
        };
        for chunk in chunks {
            let o = match inputs {
                Inputs::Cached(f) => {
                    let (f6, f7) = &f[which];
                    let idx = index_tensor(&chunk, device);
                    member.forward_features(
                        &f6.index_select(0, &idx),
                        &f7.index_select(0, &idx),
                        false,
                    )
                }
                Inputs::Images(images) => {
                    let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &images[i]).collect();
                    member.forward_images(&batch::to_tensor(&refs, device)?, false, false)
                }
            };
            out.extend(Vec::<f64>::try_from(
                o.last()
                    .unwrap()
                    .to_kind(Kind::Double)
                    .to_device(Device::Cpu),
            )?);
        }
        Ok(())
    })?;
    Ok(out)
}

fn index_tensor(idx: &[usize], device: Device) -> Tensor {
    Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device)
}

/// SRCC per distortion type of `indices` (types with fewer than 3 images or an undefined SRCC
/// give NaN). Empty when the dataset has no distortion column.
pub fn per_type_srcc(dataset: &Dataset, indices: &[usize], pred: &[f64]) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (k, &i) in indices.iter().enumerate() {
        if let Some(t) = &dataset.samples[i].distortion {
            let g = groups.entry(t.clone()).or_default();
            g.0.push(pred[k]);
            g.1.push(dataset.samples[i].mos);
        }
    }
    groups
        .into_iter()
        .map(|(t, (p, m))| {
            (
                t,
                if p.len() >= 3 {
                    srocc(&p, &m).unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                },
            )
        })
        .collect()
}

fn metrics_or_nan(pred: &[f64], mos: &[f64]) -> Metrics {
    Metrics::compute(pred, mos).unwrap_or_else(|_| nan_metrics(mos.len()))
}

/// Trains the pair for one seed (initialisation, batch order and split seed). Writes
/// `log.jsonl` (and the final weights when `save_weights`) to `out` if given.
pub fn train_pair(
    cfg: &DistillConfig,
    data: &Prepared,
    seed: u64,
    out: Option<&Path>,
    save_weights: bool,
) -> Result<PairResult> {
    cfg.validate()?;
    let t_start = std::time::Instant::now();
    let device = parse_device(&cfg.device).map_err(anyhow::Error::msg)?;
    let dataset = &data.dataset;
    let split = train_data::split_dataset(&cfg.data, dataset, seed)?;
    train_data::check_trainable(&split, &cfg.data, cfg.batch_size)?;
    // Equal MOS (train/constant_mos.rs): refused only when the whole training split is constant.
    crate::train::constant_mos::check_split(dataset, &split.train, &cfg.loss)?;
    let mos = dataset.mos();
    let mos_of = |idx: &[usize]| idx.iter().map(|&i| mos[i]).collect::<Vec<f64>>();
    let (mu, sd) = if cfg.normalize_mos {
        let y = mos_of(&split.train);
        let m = y.iter().sum::<f64>() / y.len() as f64;
        let v = y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / y.len() as f64;
        (m, if v > 0.0 { v.sqrt() } else { 1.0 })
    } else {
        (0.0, 1.0)
    };

    // Teacher first, then student, from the seed: the student's initialisation does not depend
    // on the teacher's configuration.
    tch::manual_seed(seed as i64);
    let members = [
        Member::new(&cfg.teacher, device),
        Member::new(&cfg.student, device),
    ];
    for m in &members {
        if cfg.frozen() {
            m.freeze_backbone();
        } else if !cfg.random_init {
            m.load_pretrained()?;
        }
    }
    let mut opts = Vec::new();
    for m in &members {
        opts.push(crate::train::trainer::Opt::build(
            cfg.optimizer,
            &m.vs,
            m.config.lr,
            cfg.weight_decay,
        )?);
    }
    let mut log = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut l = crate::train::log::JsonlLog::create(&dir.join("log.jsonl"))?;
            l.write("start", &serde_json::json!({"config": cfg, "seed": seed, "n_train": split.train.len(), "n_val": split.val.len(), "n_test": split.test.len()}))?;
            Some(l)
        }
        None => None,
    };

    let eval_bs = eval_batch_size(cfg.eval_batch_size, device);
    let cross_idx: Vec<usize> = data
        .cross
        .as_ref()
        .map(|(d, _)| (0..d.len()).collect())
        .unwrap_or_default();
    let evaluate = |k: usize| -> Result<Eval> {
        let m = &members[k];
        let val = if split.val.is_empty() {
            None
        } else {
            Some(metrics_or_nan(
                &predict(m, k, &data.inputs, &split.val, eval_bs, device)?,
                &mos_of(&split.val),
            ))
        };
        let p = predict(m, k, &data.inputs, &split.test, eval_bs, device)?;
        let test = metrics_or_nan(&p, &mos_of(&split.test));
        let test_per_type = per_type_srcc(dataset, &split.test, &p);
        let (cross, cross_per_type) = match &data.cross {
            Some((cd, ci)) => {
                let p = predict(m, k, ci, &cross_idx, eval_bs, device)?;
                (
                    Some(metrics_or_nan(&p, &cd.mos())),
                    per_type_srcc(cd, &cross_idx, &p),
                )
            }
            None => (None, BTreeMap::new()),
        };
        Ok(Eval {
            val,
            test,
            test_per_type,
            cross,
            cross_per_type,
        })
    };

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order = split.train.clone();
    let iters = split.train.len() / cfg.batch_size;
    let mut history = Vec::with_capacity(cfg.epochs);
    let mut global = 0usize;
    for epoch in 0..cfg.epochs {
        let t_epoch = std::time::Instant::now();
        order.shuffle(&mut rng);
        let mut sums = [0.0f64; 3];
        let mut first_lr = [0.0; 2];
        for (bi, idx) in order.chunks_exact(cfg.batch_size).enumerate() {
            let mut lr = [0.0; 2];
            for k in 0..2 {
                lr[k] = cfg.lr_at(k, epoch, bi, iters);
                opts[k].set_lr_group(HEADS_GROUP, lr[k]);
                opts[k].set_lr_group(BACKBONE_GROUP, lr[k] * cfg.ft_lr_ratio);
            }
            if bi == 0 {
                first_lr = lr;
            }
            let y: Vec<f64> = idx.iter().map(|&i| (mos[i] - mu) / sd).collect();
            let y = Tensor::from_slice(&y)
                .to_kind(Kind::Float)
                .to_device(device);
            let outs: [Vec<Tensor>; 2] = match &data.inputs {
                Inputs::Cached(f) => {
                    let t = index_tensor(idx, device);
                    std::array::from_fn(|k| {
                        members[k].forward_features(
                            &f[k].0.index_select(0, &t),
                            &f[k].1.index_select(0, &t),
                            true,
                        )
                    })
                }
                Inputs::Images(images) => {
                    let refs: Vec<&RgbImage> = idx.iter().map(|&i| &images[i]).collect();
                    let x = batch::to_tensor(&refs, device)?;
                    std::array::from_fn(|k| members[k].forward_images(&x, true, true))
                }
            };
            let (total, t0, t1, d) = pair_loss(cfg, &members, &outs, &y).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}",
                    train_data::batch_context(dataset, idx, epoch, bi)
                )
            })?;
            let vals = [f64::try_from(&t0)?, f64::try_from(&t1)?, f64::try_from(&d)?];
            if vals.iter().any(|v| !v.is_finite()) {
                bail!(
                    "the loss became non-finite at epoch {}, batch {} (teacher task {}, student task {}, eq.-5 term {}); try smaller learning rates (teacher {}, student {})",
                    epoch + 1,
                    bi + 1,
                    vals[0],
                    vals[1],
                    vals[2],
                    cfg.teacher.lr,
                    cfg.student.lr
                );
            }
            for o in opts.iter_mut() {
                o.zero_grad();
            }
            total.backward();
            for o in opts.iter_mut() {
                o.step();
            }
            for (s, v) in sums.iter_mut().zip(vals) {
                *s += v;
            }
            global += 1;
            if let Some(l) = log.as_mut() {
                l.write(
                    "iter",
                    &IterLog {
                        epoch: epoch + 1,
                        iter: global,
                        lr,
                        task_loss: [vals[0], vals[1]],
                        distill: vals[2],
                    },
                )?;
            }
        }
        let nb = iters.max(1) as f64;
        let rec = EpochRecord {
            epoch: epoch + 1,
            lr: first_lr,
            task_loss: [sums[0] / nb, sums[1] / nb],
            distill: sums[2] / nb,
            eval: [evaluate(0)?, evaluate(1)?],
        };
        tracing::info!(
            "seed {seed} epoch {:>3}/{}  lr {:.2e}/{:.2e}  task {:.4}/{:.4}  d {:.4}  test SRCC {:.4}/{:.4}  {:.2} s",
            epoch + 1,
            cfg.epochs,
            rec.lr[0],
            rec.lr[1],
            rec.task_loss[0],
            rec.task_loss[1],
            rec.distill,
            rec.eval[0].test.srocc,
            rec.eval[1].test.srocc,
            t_epoch.elapsed().as_secs_f64()
        );
        if let Some(l) = log.as_mut() {
            l.write("epoch", &rec)?;
        }
        history.push(rec);
    }
    if save_weights {
        if let Some(dir) = out {
            for (m, name) in members.iter().zip(["teacher", "student"]) {
                let file = dir.join(format!("{name}.safetensors"));
                crate::atomic::write_via_path(&file, |tmp| m.vs.save(tmp))?;
            }
        }
    }

    let pick = |k: usize, e: usize| Snapshot {
        epoch: e + 1,
        eval: history[e].eval[k].clone(),
    };
    let argmax = |f: &dyn Fn(&EpochRecord) -> f64| -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (e, r) in history.iter().enumerate() {
            let v = f(r);
            if v.is_finite() && best.map_or(true, |(b, _)| v > b) {
                best = Some((v, e));
            }
        }
        best.map(|(_, e)| e)
    };
    let models: [ModelResult; 2] = std::array::from_fn(|k| ModelResult {
        lr: members[k].config.lr,
        final_epoch: pick(k, history.len() - 1),
        best_val: argmax(&|r: &EpochRecord| r.eval[k].val.map_or(f64::NAN, |m| m.srocc.abs()))
            .map(|e| pick(k, e)),
        oracle_best_test: pick(
            k,
            argmax(&|r: &EpochRecord| r.eval[k].test.srocc.abs()).unwrap_or(history.len() - 1),
        ),
    });
    let result = PairResult {
        seed,
        sizes: [split.train.len(), split.val.len(), split.test.len()],
        seconds: t_start.elapsed().as_secs_f64(),
        history,
        models,
    };
    if let Some(l) = log.as_mut() {
        l.write("end", &serde_json::json!({"teacher_final_test": result.models[0].final_epoch.eval.test, "student_final_test": result.models[1].final_epoch.eval.test}))?;
    }
    Ok(result)
}
