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
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use normiqa_core::metrics::Metrics;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::loss::{LossConfig, LossKind};
use crate::model::{Backbone, IqaModel, ModelConfig};
use crate::run::augment::Augment;
use crate::run::config::{DataConfig, OptimizerKind};
use crate::run::schedule::cosine;
use crate::train::trainer;

pub use crate::model::{Arch, PlainIqa};

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
        self.arch.feature_config(&self.model)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
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
    /// Batches whose gradients add up before each optimiser step (as `train`'s).
    #[serde(default = "default_accum")]
    pub accumulation_steps: usize,
    /// Training-set augmentation (as `train`'s); fine-tuning only (cached features are computed
    /// once).
    #[serde(default)]
    pub augment: Option<Augment>,
    /// Evaluation batch size (0 = automatic; cached features are evaluated in chunks of 1024).
    #[serde(default)]
    pub eval_batch_size: usize,
    #[serde(default = "default_device")]
    pub device: String,
    /// Cross-dataset test set (all of its images), evaluated every epoch (Table 6).
    #[serde(default)]
    pub cross: Option<DataConfig>,
}

/// Every default of a pair run (the MRKD paper's setting), written once: serde, [`DistillConfig::new`]
/// and `normiqa distill`'s options read them from here.
pub mod defaults {
    pub const TEACHER_LR: f64 = 0.1;
    pub const STUDENT_LR: f64 = 0.01;
    pub const LAMBDA: f64 = 1.0;
    pub const MOMENTUM: f64 = 0.9;
    pub const EPOCHS: usize = 30;
    pub const BATCH_SIZE: usize = 16;
    pub const ACCUMULATION_STEPS: usize = 1;
    pub const FT_LR_RATIO: f64 = 0.0;
    pub const SEEDS: [u64; 3] = [1, 2, 3];
    pub use crate::run::config::defaults::{BETA, DEVICE};
}

fn default_loss() -> LossConfig {
    LossConfig {
        kind: LossKind::Mse,
        detach: false,
        monotonicity: None,
    }
}
fn default_beta() -> [f64; 3] {
    defaults::BETA
}
fn one() -> f64 {
    defaults::LAMBDA
}
fn yes() -> bool {
    true
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Sgd {
        momentum: defaults::MOMENTUM,
    }
}
fn default_epochs() -> usize {
    defaults::EPOCHS
}
fn default_bs() -> usize {
    defaults::BATCH_SIZE
}
fn default_accum() -> usize {
    defaults::ACCUMULATION_STEPS
}
fn default_device() -> String {
    defaults::DEVICE.into()
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
            lambda: defaults::LAMBDA,
            direction: Direction::Mutual,
            optimizer: default_optimizer(),
            weight_decay: 0.0,
            eta_min: 0.0,
            t_max: None,
            lr_unit: LrUnit::Epoch,
            ft_lr_ratio: defaults::FT_LR_RATIO,
            normalize_mos: true,
            epochs: default_epochs(),
            batch_size: default_bs(),
            accumulation_steps: default_accum(),
            augment: None,
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
        // The checks the pair shares with `train`.
        crate::run::config::check_loop(&self.data, self.epochs, self.accumulation_steps, self.ft_lr_ratio)?;
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
        for m in [&self.teacher, &self.student] {
            // A frozen pair always reads cached features.
            crate::run::config::check_model_inputs(m.arch, self.frozen(), &self.data, self.augment.as_ref())?;
        }
        if self.augment.is_some() && self.frozen() {
            bail!("augment: cached frozen features are computed once, without augmentation; fine-tune (ft_lr_ratio > 0) to augment");
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

/// One model of the pair with its own variables.
pub struct Member {
    pub vs: nn::VarStore,
    pub net: Box<dyn IqaModel>,
    pub config: MemberConfig,
}

impl Member {
    pub fn new(config: &MemberConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let net = config.arch.build(&vs, &config.model)?;
        Ok(Member {
            vs,
            net,
            config: config.clone(),
        })
    }

    pub fn backbone(&self) -> &dyn Backbone {
        self.net.backbone()
    }

    /// Loads the pretrained backbone (the member's file or the backbone's default).
    pub fn load_pretrained(&self) -> Result<PathBuf> {
        trainer::load_pretrained(&self.vs, self.net.as_ref(), self.config.weights.as_deref())
    }

    /// Stops gradients into the backbone (frozen mode).
    pub fn freeze_backbone(&self) {
        trainer::freeze_backbone(&self.vs, self.net.as_ref());
    }

    /// Task loss of the outputs (β-weighted heads for LinearityIQA).
    pub fn task_loss(
        &self,
        loss_cfg: &LossConfig,
        beta: [f64; 3],
        outs: &[Tensor],
        y: &Tensor,
    ) -> Result<Tensor> {
        trainer::task_loss(loss_cfg, beta, outs, y)
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

/// A map of numbers whose NaN values JSON wrote as `null`.
fn map_f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

/// Evaluation of one model at one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Eval {
    pub val: Option<Metrics>,
    pub test: Metrics,
    /// Test SRCC per distortion type (datasets with a distortion column).
    #[serde(deserialize_with = "map_f64_or_nan")]
    pub test_per_type: BTreeMap<String, f64>,
    pub cross: Option<Metrics>,
    #[serde(deserialize_with = "map_f64_or_nan")]
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

