//! Training one model as the reference `main.py` does, as a procedure of the engine
//! ([`super::engine`]): Adam with the heads at `lr` and the backbone at `lr·ft_lr_ratio`, the
//! StepLR rule, the β-weighted loss of the model's heads, validation SROCC per epoch to keep the
//! best epoch, then k, b per head fitted on the training set (eq. 17) and the test metrics.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use normiqa_core::data::{split::Split, Dataset};
use serde::Serialize;
use serde_json::{json, Value};
use tch::{nn, Device, Kind, Tensor};

use crate::run::info::{self, AlsoResult, HeadMetrics, RunInfo, SetSizes, Timings};
use crate::run::config::{FrozenMode, TrainConfig};
use crate::run::data::{self as train_data, LoadedData, Part};
use super::engine::{self, Batch, Evaluation, Finished, Groups, MemberRef, Plan, Procedure, StepLosses};
use super::features::{self, TapSource};
use super::{member, setup};
use super::optim::Opt;
use crate::batch;
use crate::loss;
use crate::model::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use crate::infer::trained::{fit_mapping, head_metrics, select_taps};
use crate::model::partial::PrefixFrozen;
use crate::model::{weights, Arch, IqaModel, ModelConfig};
use crate::run::folder::{self, RunFolder, Start};

pub use crate::infer::trained::{nan_metrics, predict, HeadOutputs, Inputs};

/// Result of [`train`].
pub struct TrainOutcome {
    pub dir: PathBuf,
    pub info: RunInfo,
    /// How the run folder was used: trained from the start, resumed, or already finished (then
    /// nothing was done and `info` is the finished run's).
    pub start: Start,
}

/// The β-weighted task loss of a model's outputs: LinearityIQA's three heads with `beta`
/// ([`loss::multi_head`]), a one-head model's output alone.
pub fn task_loss(
    cfg: &loss::LossConfig,
    beta: [f64; 3],
    outs: &[Tensor],
    y: &Tensor,
) -> Result<Tensor> {
    Ok(match outs {
        [a, b, c] => loss::multi_head(
            cfg,
            beta,
            &[a.shallow_clone(), b.shallow_clone(), c.shallow_clone()],
            y,
        )?,
        [p] => cfg.compute(p, y)?,
        _ => bail!("a model with {} outputs has no task loss (1 or 3)", outs.len()),
    })
}

/// Stops gradients into what a frozen backbone freezes (`backbone.*`; DBCNN's two streams).
pub fn freeze_backbone(vs: &nn::VarStore, model: &dyn IqaModel) {
    for (name, t) in vs.variables() {
        if model.is_frozen_with_backbone(&name) {
            let _ = t.set_requires_grad(false);
        }
    }
}

/// Loads a pretrained backbone into `vs`; returns the file.
pub fn load_pretrained(
    vs: &nn::VarStore,
    model: &dyn IqaModel,
    file: Option<&Path>,
) -> Result<PathBuf> {
    let backbone = model.feature_config().backbone;
    let file = file
        .map(Path::to_path_buf)
        .or_else(|| backbone.default_weights())
        .with_context(|| {
            format!("no pretrained weights for backbone {backbone}: pass --weights FILE.pth")
        })?;
    let n = weights::load_pth(vs, BACKBONE_PREFIX, &file, model.backbone().ignored_weights())?;
    tracing::info!("loaded {n} pretrained tensors from {}", file.display());
    if model.arch() == Arch::Dbcnn {
        let Some(scnn) = model.feature_config().scnn_weights else {
            bail!("DBCNN needs its pre-trained S-CNN: pass --scnn-weights FILE (made by `normiqa pretrain-scnn`)")
        };
        let n = crate::model::dbcnn::load_scnn(vs, &scnn)
            .with_context(|| format!("loading the S-CNN of DBCNN (--scnn-weights {})", scnn.display()))?;
        tracing::info!("loaded {n} S-CNN tensors from {}", scnn.display());
    }
    Ok(file)
}

/// The model's forward pass on a training batch: cached taps, or (augmented) images through
/// the backbone (a frozen backbone in `reference` mode runs in train mode without gradients; a
/// learning one in train mode when `backbone_train`, else in eval mode, as `backbone_mode`).
pub fn train_outputs(
    net: &dyn IqaModel,
    inputs: &Inputs,
    batch: &Batch,
    frozen: bool,
    backbone_train: bool,
    device: Device,
) -> Result<Vec<Tensor>> {
    let images = match inputs {
        Inputs::Cached(taps) => return Ok(net.heads(&select_taps(taps, batch.idx, device), true)),
        Inputs::Images(images) => images,
    };
    let refs: Vec<&RgbImage> = match &batch.augmented {
        Some(a) => a.iter().collect(),
        None => batch.idx.iter().map(|&i| &images[i]).collect(),
    };
    let x = batch::to_tensor(&refs, device)?;
    Ok(if frozen {
        let taps = tch::no_grad(|| net.taps(&x, true));
        net.heads(&taps, true)
    } else {
        net.outputs(&x, backbone_train, true)
    })
}

#[derive(Serialize)]
struct IterLog {
    loss: f64,
    bhat: f64,
}

/// One model with β-weighted heads.
struct SingleModel<'a> {
    cfg: &'a TrainConfig,
    out: &'a Path,
    dataset: &'a Dataset,
    split: &'a Split,
    /// The run's datasets (the main one first); `split.train` holds every part's training images,
    /// `split.val` and `split.test` the main dataset's.
    parts: &'a [Part],
    inputs: Inputs<'a>,
    vs: nn::VarStore,
    net: Box<dyn IqaModel>,
    opt: Opt,
    device: Device,
    eval_bs: usize,
    backbone_changes: bool,
    /// Partial fine-tuning from pretrained weights: the frozen block count, whose variables
    /// the run's weight file leaves out (they are the pretrained ones).
    pretrained_prefix: Option<usize>,
    /// The epoch's rate, loss and b̂ sums.
    lr: f64,
    sums: (f64, f64, usize),
    /// Validation metrics of the last evaluated epoch and of the best one.
    last_val: Option<HeadMetrics>,
    best_val: Option<HeadMetrics>,
    /// What `finish` adds to run.json.
    timings: Timings,
    t_start: Instant,
}

impl SingleModel<'_> {
    fn mos_of(&self, idx: &[usize]) -> Vec<f64> {
        idx.iter().map(|&i| self.dataset.samples[i].mos).collect()
    }

    fn outputs(&self, idx: &[usize]) -> Result<HeadOutputs> {
        predict(self.net.as_ref(), &self.inputs, idx, self.eval_bs, self.device)
    }

    /// What the run's weight file holds ([`crate::model::stored::stored_vars`]).
    fn stored(&self) -> impl Fn(&str) -> bool + '_ {
        let net = self.net.as_ref();
        let prefix = self.pretrained_prefix.is_some();
        crate::model::stored::stored_vars(self.backbone_changes, move |n| prefix && net.is_frozen_with_backbone(n))
    }

    fn metrics(&self, idx: &[usize], mapping: &[normiqa_core::metrics::LinearMap]) -> Result<HeadMetrics> {
        Ok(head_metrics(&self.outputs(idx)?, &self.mos_of(idx), Some(mapping)))
    }

    /// The main dataset's training images: its mapping is fitted on them.
    fn main_train(&self) -> &[usize] {
        &self.parts[0].split.train
    }

    /// Each `also` dataset's own mapping (fitted on its training images) and test metrics.
    fn also_results(&self) -> Result<Vec<AlsoResult>> {
        let mut out = Vec::new();
        for part in &self.parts[1..] {
            let train = part.global(&part.split.train);
            let mapping = fit_mapping(&self.outputs(&train)?, &self.mos_of(&train))
                .with_context(|| format!("fitting the mapping of {}", part.dataset.name))?;
            let test = part.global(&part.split.test);
            let metrics = match test.is_empty() {
                true => None,
                false => Some(self.metrics(&test, &mapping)?),
            };
            let sizes = SetSizes { train: train.len(), val: part.split.val.len(), test: test.len() };
            out.push(AlsoResult { dataset: part.dataset.name.clone(), mapping, sizes, test: metrics });
        }
        Ok(out)
    }
}

impl Procedure for SingleModel<'_> {
    type Output = TrainOutcome;

    fn members(&mut self) -> Vec<MemberRef<'_>> {
        vec![MemberRef {
            name: "model",
            vs: &self.vs,
            opt: &mut self.opt,
            with_backbone: self.backbone_changes,
        }]
    }

    fn set_rates(&mut self, epoch: usize, iter: usize, _iters: usize) {
        let lr = self.cfg.schedule.lr(self.cfg.lr, epoch, self.cfg.epochs);
        self.opt.set_lr_group(HEADS_GROUP, lr);
        self.opt.set_lr_group(BACKBONE_GROUP, lr * self.cfg.ft_lr_ratio);
        if iter == 0 {
            self.lr = lr;
            self.sums = (0.0, 0.0, 0);
        }
    }

    fn step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let cfg = self.cfg;
        let y = Tensor::from_slice(&self.mos_of(batch.idx))
            .to_kind(Kind::Float)
            .to_device(self.device);
        let heads = train_outputs(self.net.as_ref(), &self.inputs, batch, cfg.frozen(), cfg.backbone_mode.trains(), self.device)?;
        let mut total = task_loss(&cfg.loss, cfg.beta, &heads, &y).map_err(|e| {
            let at = train_data::batch_context(self.dataset, batch.idx, batch.epoch, batch.index);
            anyhow::anyhow!("{at}: {}", crate::cli::error_text(&e))
        })?;
        if batch.group > 0 {
            total = total * cfg.also[batch.group - 1].weight;
        }
        let lv = f64::try_from(&total)?;
        (total / batch.accumulation as f64).backward();
        let q = match cfg.loss.kind {
            loss::LossKind::NormInNorm { q, .. } => q,
            _ => 2.0,
        };
        let bh = loss::bhat(heads.last().expect("one output at least"), q);
        self.sums = (self.sums.0 + lv, self.sums.1 + bh, self.sums.2 + 1);
        Ok(StepLosses {
            checked: vec![("loss", lv)],
            log: serde_json::to_value(IterLog { loss: lv, bhat: bh })?,
        })
    }

    fn evaluate(&mut self, _epoch: usize) -> Result<Evaluation> {
        let (split, during) = (self.split, self.cfg.test_during_training);
        let identity = vec![Default::default(); self.net.head_names().len()];
        let (train_m, mapping) = if during {
            let o = self.outputs(self.main_train())?;
            let y = self.mos_of(self.main_train());
            let maps = fit_mapping(&o, &y).unwrap_or_else(|_| identity.clone());
            (Some(head_metrics(&o, &y, Some(&maps))), maps)
        } else {
            (None, identity)
        };
        let val_m = match split.val.is_empty() {
            true => None,
            false => Some(self.metrics(&split.val, &mapping)?),
        };
        let test_m = match during {
            true => Some(self.metrics(&split.test, &mapping)?),
            false => None,
        };
        let sel = self.cfg.selection_head();
        let nb = self.sums.2.max(1) as f64;
        let loss = self.sums.0 / nb;
        let line = match &val_m {
            Some(v) => format!(
                "loss {loss:.5}  val SROCC {:.4} PLCC {:.4}  lr {:.1e}",
                v[sel].srocc, v[sel].plcc, self.lr
            ),
            None => format!("loss {loss:.5}  lr {:.1e}", self.lr),
        };
        let log = json!({"lr": self.lr, "loss": loss, "bhat_mean": self.sums.1 / nb,
            "val": val_m, "train": train_m, "test": test_m});
        // |SROCC| (or |PLCC|) as the reference (it can be negative early with some losses).
        let criterion = val_m.as_ref().map(|m| self.cfg.val_criterion.of(&m[sel]));
        self.last_val = val_m;
        Ok(Evaluation { criterion, log, line })
    }

    fn save_best(&mut self) -> Result<()> {
        self.best_val = self.last_val.clone();
        let file = self.out.join(info::WEIGHTS);
        weights::save_safetensors(&self.vs, &file, self.stored())
    }

    fn state(&self) -> Value {
        json!({ "best_val": self.best_val })
    }

    fn restore(&mut self, state: Value) -> Result<()> {
        self.best_val = serde_json::from_value(state["best_val"].clone())
            .context("resume state: best_val")?;
        Ok(())
    }

    fn advice(&self) -> String {
        "try a smaller --lr".into()
    }

    fn finish(&mut self, run: &Finished) -> Result<(TrainOutcome, Value)> {
        let Some(best_epoch) = run.best_epoch else {
            bail!("no epoch produced a finite validation SROCC (the model's predictions were constant); nothing was saved")
        };
        // Reload the best epoch, fit k, b on the training set, test.
        weights::load_safetensors(&self.vs, &self.out.join(info::WEIGHTS), self.stored())?;
        let also = self.also_results()?;
        for a in &also {
            if let Some(m) = a.test.as_ref().and_then(|m| m.last()) {
                tracing::info!("also {}: test SROCC {:.4} PLCC {:.4} ({} images, its own mapping)", a.dataset, m.srocc, m.plcc, a.sizes.test);
            }
        }
        self.timings.train_s = run.train_s;
        self.timings.seconds_per_epoch = run.train_s / run.epochs as f64;
        self.timings.total_s = self.t_start.elapsed().as_secs_f64();
        let names = self.net.head_names();
        let evaluated = member::Evaluated {
            outputs: &|idx| self.outputs(idx),
            mos: &|idx| self.mos_of(idx),
            dataset: self.dataset,
            split: self.split,
            train: self.main_train(),
            heads: names,
        };
        let record = member::Record {
            config: self.cfg.clone(),
            best_epoch,
            epochs_done: run.epochs,
            backbone_in_weights: self.backbone_changes,
            pretrained_prefix: self.pretrained_prefix,
            val: member::Val::Kept(self.best_val.clone()),
            timings: self.timings.clone(),
            device: format!("{:?}", self.device),
            constant_mos_batches: run.constant_mos_batches,
            also,
        };
        let info = member::write(self.out, &evaluated, record)?;
        let test_metrics = info.test.clone().expect("written with test metrics");
        let fused = test_metrics.last().expect("one head at least");
        tracing::info!(
            "best epoch {best_epoch}; test SROCC {:.4} PLCC {:.4} KROCC {:.4} RMSE {:.3} ({} head, after the train-set mapping)",
            fused.srocc, fused.plcc, fused.krocc, fused.rmse, names[names.len() - 1]
        );
        let end = json!({"best_epoch": best_epoch, "test": &test_metrics});
        let dir = self.out.to_path_buf();
        let start = if run.resumed { Start::Resume } else { Start::Fresh };
        Ok((TrainOutcome { dir, info, start }, end))
    }
}

/// The network with its pretrained backbone (unless `random_init`), frozen when configured.
fn build_model(cfg: &TrainConfig, device: Device) -> Result<(nn::VarStore, Box<dyn IqaModel>, Option<PathBuf>)> {
    let vs = nn::VarStore::new(device);
    let mut net = cfg.arch.build(&vs, &cfg.model)?;
    let weights_file = if cfg.random_init {
        tracing::warn!("random backbone initialisation (--random-init): for tests only, the results mean nothing");
        None
    } else {
        Some(load_pretrained(&vs, net.as_ref(), cfg.weights.as_deref())?)
    };
    if let Some(run) = &cfg.init_from {
        init_from(&vs, cfg, run)?;
    }
    if let Some(k) = cfg.partial_blocks() {
        net = Box::new(PrefixFrozen::new(net, k, cfg.prefix_precision.kind())?.with_suffix_train(cfg.backbone_mode.trains()));
    }
    if cfg.frozen() || cfg.partial_blocks().is_some() {
        freeze_backbone(&vs, net.as_ref());
    }
    Ok((vs, net, weights_file))
}

/// Loads the weights of the finished run `run` (same network) into `vs`: the run's heads, and
/// its backbone when it trained it (else the pretrained one just loaded stays).
fn init_from(vs: &nn::VarStore, cfg: &TrainConfig, run: &Path) -> Result<()> {
    let info = RunInfo::load(run).with_context(|| format!("--init-from {}", run.display()))?;
    let (theirs, ours) = (&info.config, cfg);
    let same_net = theirs.arch == ours.arch
        && ModelConfig { test_crops: 0, ..theirs.model.clone() }
            == ModelConfig { test_crops: 0, ..ours.model.clone() };
    if !same_net {
        bail!(
            "--init-from {}: that run trained another network ({} on {}); this one is {} on {}",
            run.display(),
            theirs.arch,
            theirs.model.backbone,
            ours.arch,
            ours.model.backbone
        );
    }
    if info.pretrained_prefix.is_some() && cfg.random_init {
        bail!("--init-from {} with --random-init: that run's first blocks are the pretrained ones, which --random-init does not load; drop --random-init", run.display());
    }
    let net = cfg.arch.build(&nn::VarStore::new(Device::Cpu), &cfg.model)?;
    let stored = crate::model::stored::run_stored(&info, net.as_ref());
    let n = weights::load_safetensors(vs, &run.join(info::WEIGHTS), stored)
        .with_context(|| format!("--init-from {}", run.display()))?;
    tracing::info!("started from the {n} tensors of {} (epoch {})", run.display(), info.best_epoch);
    Ok(())
}

/// Trains a model as configured, writing the run directory `out`. Returns its summary. A folder
/// holding a run of another configuration is refused (see [`crate::run::folder`]).
pub fn train(cfg: &TrainConfig, out: &Path) -> Result<TrainOutcome> {
    train_with(cfg, out, false)
}

/// [`train`]; `overwrite` replaces whatever run `out` holds (`--overwrite`).
pub fn train_with(cfg: &TrainConfig, out: &Path, overwrite: bool) -> Result<TrainOutcome> {
    // Stored with absolute paths: the run folder works from any working directory.
    let cfg = &cfg.with_absolute_paths();
    cfg.validate()?;
    let t_start = Instant::now();
    // Run-folder rules (src/run/folder.rs): lock `out` for the whole run; then train, resume, or
    // stop here when this configuration already finished there.
    let Some(folder) = RunFolder::begin(out, &folder::TRAIN, cfg, overwrite)? else {
        return finished_outcome(out);
    };
    let device = setup::device_and_seed(&cfg.device, cfg.seed)?;
    let (LoadedData { dataset, split, images, decode_seconds }, parts) = train_data::load_all(cfg)?;
    // (equal MOS, train/constant_mos.rs: refused only when a whole training split is constant)
    setup::check_training_split(&parts[0].dataset, &parts[0].split, &cfg.data, cfg.batch_size, &cfg.loss)?;
    for p in &parts[1..] {
        super::constant_mos::check_split(&p.dataset, &p.split.train, &cfg.loss)?;
    }
    tracing::info!(
        "{}: {} images (train {}, val {}, test {}), decoded in {:.1} s",
        dataset.name, dataset.len(), split.train.len(), split.val.len(), split.test.len(), decode_seconds
    );
    let (vs, net, weights_file) = build_model(cfg, device)?;
    let eval_bs = crate::run::config::eval_batch_size(cfg.eval_batch_size, device);
    // Frozen heads train on cached pooled features, partial fine-tuning on the cached prefix.
    let heads_only = cfg.frozen() && cfg.frozen_mode == FrozenMode::Cached;
    let cached = heads_only || cfg.partial_blocks().is_some();
    let t_feat = Instant::now();
    let taps = match cached {
        true => Some(cached_taps(cfg, net.as_ref(), weights_file.as_deref(), &parts, &images, eval_bs, device)?),
        false => None,
    };
    let features_s = if cached { t_feat.elapsed().as_secs_f64() } else { 0.0 };
    let opt = Opt::build(cfg.optimizer, &vs, cfg.lr, cfg.weight_decay)?;
    let mut proc = SingleModel {
        cfg,
        out,
        dataset: &dataset,
        split: &split,
        parts: &parts,
        inputs: match &taps {
            Some(t) => Inputs::Cached(t),
            None => Inputs::Images(&images),
        },
        vs,
        net,
        opt,
        device,
        eval_bs,
        // The backbone's state changes when it is trained or when its BatchNorm runs in train
        // mode.
        backbone_changes: !cfg.frozen() || cfg.frozen_mode == FrozenMode::Reference || cfg.random_init,
        pretrained_prefix: cfg.partial_blocks().filter(|_| !cfg.random_init),
        lr: cfg.lr,
        sums: (0.0, 0.0, 0),
        last_val: None,
        best_val: None,
        timings: Timings { decode_s: decode_seconds, features_s, ..Default::default() },
        t_start,
    };
    // The key a resumed run must match: the run's identity (the device may change).
    let resume_key = toml::to_string_pretty(&TrainConfig {
        device: String::new(),
        ..cfg.clone()
    })?;
    let groups = train_data::groups(&parts);
    let plan = Plan {
        dataset: &dataset,
        train: &split.train,
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        accumulation_steps: cfg.accumulation_steps,
        seed: cfg.seed,
        augment: cfg.augment.as_ref().map(|a| (a, images.as_slice())),
        loss: &cfg.loss,
        config_text: resume_key,
        start: json!({"config": cfg, "n_train": split.train.len(), "n_val": split.val.len(), "n_test": split.test.len()}),
        one_thread: heads_only && device == Device::Cpu,
        out: Some(out),
        groups: (parts.len() > 1).then(|| Groups {
            of: &groups,
            per_epoch: std::iter::once(None).chain(cfg.also.iter().map(|a| a.per_epoch)).collect(),
            mixing: cfg.mixing,
        }),
    };
    let outcome = engine::run(&mut proc, &plan)?;
    drop(folder);
    Ok(outcome)
}

/// The outcome of a run that had already finished in `out` (run-folder rules: nothing to do).
fn finished_outcome(out: &Path) -> Result<TrainOutcome> {
    let info = RunInfo::load(out).with_context(|| {
        format!(
            "{}: this configuration already finished there, but its results cannot be read; pass --overwrite to train it again",
            out.display()
        )
    })?;
    tracing::info!(
        "{}: this configuration already finished there; nothing to do",
        out.display()
    );
    Ok(TrainOutcome {
        dir: out.to_path_buf(),
        info,
        start: Start::Finished,
    })
}

/// The frozen backbone's taps of every used sample of every part (the feature cache, one entry
/// per dataset), as one tensor per tap over the combined dataset.
fn cached_taps(
    cfg: &TrainConfig,
    net: &dyn IqaModel,
    weights_file: Option<&Path>,
    parts: &[Part],
    images: &[RgbImage],
    eval_bs: usize,
    device: Device,
) -> Result<Vec<Tensor>> {
    let mut per_part: Vec<Vec<Tensor>> = Vec::new();
    for p in parts {
        let s = &p.split;
        let used: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        let own = &images[p.offset..p.offset + p.dataset.len()];
        if let Some(k) = cfg.partial_blocks() {
            check_one_size(&p.dataset, own, &used, k)?;
        }
        let src = TapSource { model: net, weights: weights_file, dataset: &p.dataset, data: &p.data, indices: &used };
        per_part.push(features::load_or_compute(&src, &mut features::Images::Decoded(own), eval_bs, device)?);
    }
    if per_part.len() == 1 {
        return Ok(per_part.pop().expect("one part"));
    }
    check_one_shape(parts, &per_part)?;
    let n_taps = per_part[0].len();
    Ok((0..n_taps).map(|t| Tensor::cat(&per_part.iter().map(|p| &p[t]).collect::<Vec<_>>(), 0)).collect())
}

/// Partial fine-tuning of several datasets: their cached prefix outputs must have one shape.
fn check_one_shape(parts: &[Part], per_part: &[Vec<Tensor>]) -> Result<()> {
    for (p, taps) in parts.iter().zip(per_part).skip(1) {
        for (t, (a, b)) in per_part[0].iter().zip(taps).enumerate() {
            if a.size()[1..] != b.size()[1..] {
                bail!(
                    "also: the cached features of {} ({:?}) and {} ({:?}, tap {t}) differ in shape: the images of all datasets must have one size with --freeze-blocks (--resize H W in each data table)",
                    parts[0].dataset.name, &a.size()[1..], p.dataset.name, &b.size()[1..]
                );
            }
        }
    }
    Ok(())
}

/// The cached output of a frozen prefix is one tensor: every image must have the same size.
fn check_one_size(dataset: &Dataset, images: &[RgbImage], idx: &[usize], k: usize) -> Result<()> {
    let Some(&first) = idx.first() else {
        return Ok(());
    };
    let size = images[first].dimensions();
    if let Some(&other) = idx.iter().find(|&&i| images[i].dimensions() != size) {
        let (a, b) = (&dataset.samples[first], &dataset.samples[other]);
        let (w2, h2) = images[other].dimensions();
        bail!(
            "--freeze-blocks {k}: the output of the frozen blocks is kept for images of one size, but {} is {}x{} (width x height) and {} is {w2}x{h2}; resize every image to one size (--resize H W) or fine-tune the whole backbone (--freeze-blocks 0)",
            a.path.display(), size.0, size.1, b.path.display()
        );
    }
    Ok(())
}
