//! The training loop of LinearityIQA as the reference `main.py` runs it: Adam with the heads at
//! `lr` and the backbone at `lr·ft_lr_ratio`, the StepLR rule, shuffled batches without a batch of
//! one (`drop_last`), validation SROCC per epoch to keep the best epoch, then k, b per head fitted
//! on the training set (eq. 17) and the test metrics.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use normiqa_core::metrics::{LinearMap, Metrics};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self, HeadMetrics, RunInfo, SetSizes, Timings};
use super::config::{FrozenMode, OptimizerKind, TrainConfig};
use super::constant_mos::ConstantBatches;
use super::data::{self as train_data, LoadedData};
use crate::batch;
use crate::loss;
use crate::model::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use crate::model::{parse_device, weights, LinearityIqa};
use crate::run_folder::{self, RunFolder, Start};

/// Outputs of the three heads for a list of samples, in the list's order.
pub type HeadOutputs = [Vec<f64>; 3];

/// Where the heads' inputs come from.
pub enum Inputs<'a> {
    /// Pooled features computed once (frozen backbone, eval-mode BatchNorm): rows = samples.
    Cached { f6: &'a Tensor, f7: &'a Tensor },
    /// Decoded images, run through the backbone.
    Images(&'a [RgbImage]),
}

/// Runs the model in eval mode on `indices`; batches of at most `batch` same-size images.
pub fn predict(
    model: &LinearityIqa,
    inputs: &Inputs,
    indices: &[usize],
    batch: usize,
    device: Device,
) -> Result<HeadOutputs> {
    let mut out: HeadOutputs = Default::default();
    let inference = matches!(inputs, Inputs::Images(_)).then(|| model.inference());
    tch::no_grad(|| -> Result<()> {
        let chunks: Vec<Vec<usize>> = match inputs {
            Inputs::Cached { .. } => indices.chunks(batch.max(1)).map(|c| c.to_vec()).collect(),
            Inputs::Images(images) => batch::same_size_chunks(images, indices, batch.max(1)),
        };
        for chunk in chunks {
            let heads = match inputs {
                Inputs::Cached { f6, f7 } => {
                    let idx =
                        Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>())
                            .to_device(device);
                    model
                        .heads
                        .forward(&f6.index_select(0, &idx), &f7.index_select(0, &idx), false)
                }
                Inputs::Images(images) => {
                    let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &images[i]).collect();
                    let x = batch::to_tensor(&refs, device)?;
                    inference.as_ref().expect("built for images").forward(&x)
                }
            };
            for (o, h) in out.iter_mut().zip(heads.iter()) {
                o.extend(Vec::<f64>::try_from(
                    h.to_kind(Kind::Double).to_device(Device::Cpu),
                )?);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// What a stopped run leaves behind: the best checkpoint so far, or nothing.
fn kept_checkpoint(best_epoch: Option<usize>, out: &Path) -> String {
    match best_epoch {
        Some(e) => format!(
            "The best checkpoint so far (epoch {e}) is kept in {}",
            out.display()
        ),
        None => "No checkpoint was written: no epoch finished before this one".to_string(),
    }
}

/// Metrics of each head after an optional per-head mapping; undefined metrics (e.g. constant
/// predictions of a collapsed model) become NaN instead of stopping a run.
pub fn head_metrics(
    outputs: &HeadOutputs,
    mos: &[f64],
    mapping: Option<&[LinearMap; 3]>,
) -> HeadMetrics {
    std::array::from_fn(|h| {
        Metrics::compute_mapped(&outputs[h], mos, mapping.map(|m| &m[h]))
            .unwrap_or_else(|_| nan_metrics(mos.len()))
    })
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

/// Fits k, b per head on (outputs, MOS) — eq. (17).
pub fn fit_mapping(outputs: &HeadOutputs, mos: &[f64]) -> Result<[LinearMap; 3]> {
    let maps: Result<Vec<LinearMap>> = (0..3)
        .map(|h| {
            LinearMap::fit(&outputs[h], mos).with_context(|| {
                format!("fitting the linear mapping of head {h} on the training set")
            })
        })
        .collect();
    Ok(maps?.try_into().expect("three heads"))
}

/// Pooled features of every sample in `indices` (others stay zero): eval-mode backbone, no grad.
pub fn compute_features(
    model: &LinearityIqa,
    images: &[RgbImage],
    indices: &[usize],
    batch: usize,
    device: Device,
) -> Result<(Tensor, Tensor)> {
    let n = images.len() as i64;
    let [c6, c7] = model.backbone.channels();
    let l6 = crate::model::pooling::pooled_len(c6, model.config.pool, model.config.p6);
    let l7 = crate::model::pooling::pooled_len(c7, model.config.pool, model.config.p7);
    let mut f6 = Tensor::zeros([n, l6], (Kind::Float, device));
    let mut f7 = Tensor::zeros([n, l7], (Kind::Float, device));
    let bar = progress(indices.len() as u64, "features");
    let inference = model.inference();
    tch::no_grad(|| -> Result<()> {
        for chunk in batch::same_size_chunks(images, indices, batch.max(1)) {
            let refs: Vec<&RgbImage> = chunk.iter().map(|&i| &images[i]).collect();
            let x = batch::to_tensor(&refs, device)?;
            let (a, b) = inference.features(&x);
            let idx = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to_device(device);
            let _ = f6.index_copy_(0, &idx, &a);
            let _ = f7.index_copy_(0, &idx, &b);
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok((f6, f7))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

#[derive(Serialize)]
struct EpochLog<'a> {
    epoch: usize,
    lr: f64,
    loss: f64,
    bhat_mean: f64,
    seconds: f64,
    val: Option<&'a HeadMetrics>,
    train: Option<&'a HeadMetrics>,
    test: Option<&'a HeadMetrics>,
    best: bool,
}

#[derive(Serialize)]
struct IterLog {
    epoch: usize,
    iter: usize,
    loss: f64,
    bhat: f64,
}

/// The configured optimiser (ours, with libtorch's update rules, so that its state can be saved
/// and a run resumed; `optim.rs`, `adadelta.rs`).
pub enum Opt {
    Adam(super::optim::Adam),
    Sgd(super::optim::Sgd),
    Adadelta(super::adadelta::Adadelta),
}

impl Opt {
    /// Builds the configured optimiser over all trainable variables of `vs` at rate `lr`.
    pub fn build(
        kind: OptimizerKind,
        vs: &nn::VarStore,
        lr: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        Ok(match kind {
            OptimizerKind::Adam => Opt::Adam(super::optim::Adam::new(vs, lr, weight_decay)),
            OptimizerKind::Sgd { momentum } => {
                Opt::Sgd(super::optim::Sgd::new(vs, lr, momentum, weight_decay))
            }
            OptimizerKind::Adadelta { rho, eps } => Opt::Adadelta(super::adadelta::Adadelta::new(
                vs,
                lr,
                rho,
                eps,
                weight_decay,
            )),
        })
    }
    pub fn set_lr_group(&mut self, group: usize, lr: f64) {
        match self {
            Opt::Adam(o) => o.set_lr_group(group, lr),
            Opt::Sgd(o) => o.set_lr_group(group, lr),
            Opt::Adadelta(o) => o.set_lr_group(group, lr),
        }
    }
    /// The variables with their buffers (every optimiser keeps them the same way).
    fn slots(&self) -> &[super::optim::Slot] {
        match self {
            Opt::Adam(o) => &o.slots,
            Opt::Sgd(o) => &o.slots,
            Opt::Adadelta(o) => &o.slots,
        }
    }
    pub fn zero_grad(&mut self) {
        super::optim::zero_grad(self.slots());
    }
    pub fn step(&mut self) {
        match self {
            Opt::Adam(o) => o.step(),
            Opt::Sgd(o) => o.step(),
            Opt::Adadelta(o) => o.step(),
        }
    }
    /// The optimiser's buffers as named tensors, and its step count (Adam's bias correction).
    pub fn state(&self) -> (Vec<(String, Tensor)>, i64) {
        let step = match self {
            Opt::Adam(o) => o.step,
            _ => 0,
        };
        (super::optim::state(self.slots()), step)
    }
    /// Restores what [`Opt::state`] returned.
    pub fn load_state(
        &mut self,
        saved: &std::collections::HashMap<String, Tensor>,
        step: i64,
    ) -> Result<()> {
        // Buffers per variable: Adam [m, v], SGD [momentum], Adadelta [E[g²], E[Δ²]].
        match self {
            Opt::Adam(o) => {
                o.step = step;
                super::optim::load_state(&mut o.slots, saved, 2)
            }
            Opt::Sgd(o) => super::optim::load_state(&mut o.slots, saved, 1),
            Opt::Adadelta(o) => super::optim::load_state(&mut o.slots, saved, 2),
        }
    }
}

/// Result of [`train`].
pub struct TrainOutcome {
    pub dir: PathBuf,
    pub info: RunInfo,
    /// How the run folder was used: trained from the start, resumed, or already finished (then
    /// nothing was done and `info` is the finished run's).
    pub start: Start,
}

/// Trains a model as configured, writing the run directory `out`. Returns its summary. A folder
/// holding a run of another configuration is refused (see [`crate::run_folder`]).
pub fn train(cfg: &TrainConfig, out: &Path) -> Result<TrainOutcome> {
    train_with(cfg, out, false)
}

/// [`train`]; `overwrite` replaces whatever run `out` holds (`--overwrite`).
pub fn train_with(cfg: &TrainConfig, out: &Path, overwrite: bool) -> Result<TrainOutcome> {
    // Stored with absolute paths: the run folder works from any working directory.
    let cfg = &cfg.with_absolute_paths();
    cfg.validate()?;
    let t_start = Instant::now();
    // Run-folder rules (src/run_folder.rs): lock `out` for the whole run; then train, resume, or
    // stop here when this configuration already finished there.
    let folder = RunFolder::open(out, &run_folder::TRAIN, cfg, overwrite)?;
    if folder.start() == Start::Finished {
        return finished_outcome(out);
    }
    let config_text = toml::to_string_pretty(cfg)?;
    checkpoint::write_atomic(&out.join(checkpoint::CONFIG_TOML), config_text.as_bytes())?;
    // The key a resumed run must match: the run's identity (the device may change).
    let resume_key = toml::to_string_pretty(&TrainConfig {
        device: String::new(),
        ..cfg.clone()
    })?;
    let device = parse_device(&cfg.device).map_err(anyhow::Error::msg)?;
    tch::manual_seed(cfg.seed as i64);

    let LoadedData {
        dataset,
        split,
        images,
        decode_seconds,
    } = train_data::load(&cfg.data, cfg.seed)?;
    train_data::check_trainable(&split, &cfg.data, cfg.batch_size)?;
    // Equal MOS (train/constant_mos.rs): refused only when the whole training split is constant.
    super::constant_mos::check_split(&dataset, &split.train, &cfg.loss)?;
    tracing::info!(
        "{}: {} images (train {}, val {}, test {}), decoded in {:.1} s",
        dataset.name,
        dataset.len(),
        split.train.len(),
        split.val.len(),
        split.test.len(),
        decode_seconds
    );
    let mos: Vec<f64> = dataset.mos();
    let mos_of = |idx: &[usize]| idx.iter().map(|&i| mos[i]).collect::<Vec<f64>>();

    let mut vs = nn::VarStore::new(device);
    let model = LinearityIqa::new(&vs, cfg.model.clone());
    let weights_file = if cfg.random_init {
        tracing::warn!("random backbone initialisation (--random-init): for tests only, the results mean nothing");
        None
    } else {
        let file = cfg
            .weights
            .clone()
            .or_else(|| cfg.model.backbone.default_weights())
            .with_context(|| {
                format!(
                    "no pretrained weights for backbone {}: pass --weights FILE.pth",
                    cfg.model.backbone
                )
            })?;
        let n = weights::load_pth(
            &vs,
            BACKBONE_PREFIX,
            &file,
            model.backbone.ignored_weights(),
        )?;
        tracing::info!("loaded {n} pretrained tensors from {}", file.display());
        Some(file)
    };

    let eval_bs = super::config::eval_batch_size(cfg.eval_batch_size, device);
    let frozen = cfg.frozen();
    let cached = frozen && cfg.frozen_mode == FrozenMode::Cached;
    // The backbone's state changes when it is trained or when its BatchNorm runs in train mode.
    let backbone_changes = !frozen || cfg.frozen_mode == FrozenMode::Reference || cfg.random_init;
    if frozen {
        let prefix = format!("{BACKBONE_PREFIX}.");
        for (name, t) in vs.variables() {
            if name.starts_with(&prefix) {
                let _ = t.set_requires_grad(false);
            }
        }
    }

    let t_feat = Instant::now();
    let all: Vec<usize> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .copied()
        .collect();
    let features = if cached {
        let mut sorted = all.clone();
        sorted.sort_unstable();
        let paths: Vec<&Path> = sorted
            .iter()
            .map(|&i| dataset.samples[i].path.as_path())
            .collect();
        let rules = format!("{:?}", train_data::resize_rules(&cfg.data));
        let key = super::features::cache_key(&cfg.model, weights_file.as_deref(), &rules, &paths);
        match super::features::load(&key, device)
            .filter(|(f6, _)| f6.size()[0] == images.len() as i64)
        {
            Some(f) => {
                tracing::info!(
                    "frozen-backbone features of {} images loaded from the cache {}",
                    all.len(),
                    super::features::cache_dir().display()
                );
                Some(f)
            }
            None => {
                let (f6, f7) = compute_features(&model, &images, &all, eval_bs, device)?;
                tracing::info!(
                    "computed frozen-backbone features of {} images in {:.1} s",
                    all.len(),
                    t_feat.elapsed().as_secs_f64()
                );
                if !cfg.random_init {
                    if let Err(e) = super::features::store(&key, &f6, &f7) {
                        tracing::warn!("could not cache the features: {e:#}");
                    }
                }
                Some((f6, f7))
            }
        }
    } else {
        None
    };
    let features_s = if cached {
        t_feat.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let inputs = match &features {
        Some((f6, f7)) => Inputs::Cached { f6, f7 },
        None => Inputs::Images(&images),
    };

    let mut opt = Opt::build(cfg.optimizer, &vs, cfg.lr, cfg.weight_decay)?;

    // An interrupted run with this configuration goes on from its last finished epoch.
    let resumed = super::resume::load(out, &resume_key, &vs, &mut opt, backbone_changes)?;
    let mut log = match &resumed {
        Some(st) => {
            let mut log =
                super::log::JsonlLog::append_at(&out.join(checkpoint::LOG), st.log_bytes)?;
            log.write(
                "resume",
                &serde_json::json!({"after_epoch": st.epochs_done}),
            )?;
            tracing::info!(
                "resuming {} after epoch {} of {}",
                out.display(),
                st.epochs_done,
                cfg.epochs
            );
            log
        }
        None => {
            let mut log = super::log::JsonlLog::create(&out.join(checkpoint::LOG))?;
            log.write("start", &serde_json::json!({"config": cfg, "n_train": split.train.len(), "n_val": split.val.len(), "n_test": split.test.len()}))?;
            log
        }
    };

    // Heads on cached features are tiny matrix products: one thread is faster than two (thread
    // hand-offs dominate; measured 0.5 s vs 2–20 s per CLIVE epoch on a busy 2-core machine).
    // Restored when training ends, also by an error (a later run in this process must not
    // inherit one thread).
    struct Threads(i32);
    impl Drop for Threads {
        fn drop(&mut self) {
            tch::set_num_threads(self.0);
        }
    }
    let threads_guard = Threads(tch::get_num_threads());
    if cached && device == Device::Cpu {
        tch::set_num_threads(1);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    // A separate stream, so that turning augmentation on does not change the batch order.
    let mut aug_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_a06e);
    let sel = cfg.selection_head();
    let mut best: Option<(f64, usize)> = None;
    let mut best_val: Option<HeadMetrics> = None;
    let mut identity = [
        LinearMap::default(),
        LinearMap::default(),
        LinearMap::default(),
    ];
    let t_train = Instant::now();
    let mut order = split.train.clone();
    let mut global_iter = 0usize;
    let (mut start_epoch, mut train_s_before) = (0, 0.0);
    if let Some(st) = &resumed {
        let (rp, ap) = st.rng_pos()?;
        rng.set_word_pos(rp);
        aug_rng.set_word_pos(ap);
        order = st.order.clone();
        best = st.best;
        best_val = st.best_val();
        global_iter = st.global_iter;
        start_epoch = st.epochs_done;
        train_s_before = st.train_s;
    }
    let mut constant = ConstantBatches::new(
        &cfg.loss,
        resumed.as_ref().map_or(0, |st| st.constant_mos_batches),
    );
    let stop_after: Option<usize> = std::env::var("NORMIQA_STOP_AFTER_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok());
    for epoch in start_epoch..cfg.epochs {
        let t_epoch = Instant::now();
        // libtorch's generator (drop connect) restarts from a per-epoch seed, so that a resumed
        // run draws what an uninterrupted one would.
        tch::manual_seed((cfg.seed as i64).wrapping_add(1_000_003 * (epoch as i64 + 1)));
        let lr = cfg.schedule.lr(cfg.lr, epoch, cfg.epochs);
        opt.set_lr_group(HEADS_GROUP, lr);
        opt.set_lr_group(BACKBONE_GROUP, lr * cfg.ft_lr_ratio);
        order.shuffle(&mut rng);
        let batches: Vec<&[usize]> = order.chunks_exact(cfg.batch_size).collect();
        let bar = progress(batches.len() as u64, &format!("epoch {}", epoch + 1));
        let (mut loss_sum, mut bhat_sum) = (0.0, 0.0);
        opt.zero_grad();
        for (bi, idx) in batches.iter().enumerate() {
            let batch_mos = mos_of(idx);
            // A batch of equal MOS goes on with the reference's ε; counted and logged.
            if constant.observe(&batch_mos) {
                let ev = super::constant_mos::event(&dataset, idx, epoch, bi, &constant);
                log.write("constant_mos_batch", &ev)?;
            }
            let y = Tensor::from_slice(&batch_mos)
                .to_kind(Kind::Float)
                .to_device(device);
            let heads = match &inputs {
                Inputs::Cached { f6, f7 } => {
                    let t = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>())
                        .to_device(device);
                    model
                        .heads
                        .forward(&f6.index_select(0, &t), &f7.index_select(0, &t), true)
                }
                Inputs::Images(images) => {
                    let augmented: Vec<RgbImage>;
                    let refs: Vec<&RgbImage> = match &cfg.augment {
                        Some(a) => {
                            augmented = idx
                                .iter()
                                .map(|&i| a.apply(&images[i], &mut aug_rng))
                                .collect::<Result<_>>()?;
                            augmented.iter().collect()
                        }
                        None => idx.iter().map(|&i| &images[i]).collect(),
                    };
                    let x = batch::to_tensor(&refs, device)?;
                    if frozen {
                        // Reference mode: BatchNorm in train mode, no gradient through the backbone.
                        let (f6, f7) = tch::no_grad(|| model.features(&x, true));
                        model.heads.forward(&f6, &f7, true)
                    } else {
                        model.forward(&x, true, true)
                    }
                }
            };
            let total = loss::multi_head(&cfg.loss, cfg.beta, &heads, &y).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}",
                    train_data::batch_context(&dataset, idx, epoch, bi)
                )
            })?;
            let lv = f64::try_from(&total)?;
            if !lv.is_finite() {
                bail!(
                    "the loss became {lv} at {}; stopping. {} (try a smaller --lr)",
                    train_data::batch_context(&dataset, idx, epoch, bi),
                    kept_checkpoint(best.map(|(_, e)| e), out)
                );
            }
            (total / cfg.accumulation_steps as f64).backward();
            if (bi + 1) % cfg.accumulation_steps == 0 || bi + 1 == batches.len() {
                opt.step();
                opt.zero_grad();
            }
            let q = match cfg.loss.kind {
                loss::LossKind::NormInNorm { q, .. } => q,
                _ => 2.0,
            };
            let bh = loss::bhat(&heads[2], q);
            loss_sum += lv;
            bhat_sum += bh;
            global_iter += 1;
            log.write(
                "iter",
                &IterLog {
                    epoch: epoch + 1,
                    iter: global_iter,
                    loss: lv,
                    bhat: bh,
                },
            )?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let nb = batches.len().max(1) as f64;

        // Per-epoch evaluation (eval mode everywhere).
        let (train_m, mapping_now) = if cfg.test_during_training {
            let o = predict(&model, &inputs, &split.train, eval_bs, device)?;
            let y = mos_of(&split.train);
            let maps = fit_mapping(&o, &y).unwrap_or_else(|_| identity.clone());
            (Some(head_metrics(&o, &y, Some(&maps))), maps)
        } else {
            (None, identity.clone())
        };
        let val_m = if split.val.is_empty() {
            None
        } else {
            let o = predict(&model, &inputs, &split.val, eval_bs, device)?;
            Some(head_metrics(&o, &mos_of(&split.val), Some(&mapping_now)))
        };
        let test_m = if cfg.test_during_training {
            let o = predict(&model, &inputs, &split.test, eval_bs, device)?;
            Some(head_metrics(&o, &mos_of(&split.test), Some(&mapping_now)))
        } else {
            None
        };
        // |SROCC| as the reference (it can be negative early with some losses); no validation set:
        // the last epoch is kept.
        let criterion = val_m
            .as_ref()
            .map(|m| m[sel].srocc.abs())
            .unwrap_or(epoch as f64);
        let improved = criterion.is_finite() && best.map_or(true, |(b, _)| criterion > b);
        if improved {
            best = Some((criterion, epoch + 1));
            best_val = val_m.clone();
            checkpoint::save_weights(&vs, out, backbone_changes)?;
        }
        let secs = t_epoch.elapsed().as_secs_f64();
        log.write(
            "epoch",
            &EpochLog {
                epoch: epoch + 1,
                lr,
                loss: loss_sum / nb,
                bhat_mean: bhat_sum / nb,
                seconds: secs,
                val: val_m.as_ref(),
                train: train_m.as_ref(),
                test: test_m.as_ref(),
                best: improved,
            },
        )?;
        let log_bytes = log.bytes_written()?;
        super::resume::save(
            out,
            &vs,
            &opt,
            super::resume::State::new(
                resume_key.clone(),
                epoch + 1,
                best,
                best_val.as_ref(),
                global_iter,
                log_bytes,
                &order,
                rng.get_word_pos(),
                aug_rng.get_word_pos(),
                train_s_before + t_train.elapsed().as_secs_f64(),
                constant.count,
            ),
            backbone_changes,
        )?;
        if stop_after == Some(epoch + 1) && epoch + 1 < cfg.epochs {
            // Test hook: behave as a run killed after this epoch.
            bail!(
                "stopped after epoch {} (NORMIQA_STOP_AFTER_EPOCH)",
                epoch + 1
            );
        }
        match &val_m {
            Some(v) => tracing::info!(
                "epoch {:>3}/{}  loss {:.5}  val SROCC {:.4} PLCC {:.4}  lr {:.1e}  {:.1} s{}",
                epoch + 1,
                cfg.epochs,
                loss_sum / nb,
                v[sel].srocc,
                v[sel].plcc,
                lr,
                secs,
                if improved { "  *best" } else { "" }
            ),
            None => tracing::info!(
                "epoch {:>3}/{}  loss {:.5}  lr {:.1e}  {:.1} s",
                epoch + 1,
                cfg.epochs,
                loss_sum / nb,
                lr,
                secs
            ),
        }
        identity = [
            LinearMap::default(),
            LinearMap::default(),
            LinearMap::default(),
        ];
    }
    let train_s = train_s_before + t_train.elapsed().as_secs_f64();
    drop(threads_guard);
    let Some((_, best_epoch)) = best else {
        bail!("no epoch produced a finite validation SROCC (the model's predictions were constant); nothing was saved")
    };

    // Reload the best epoch, fit k, b on the training set, test.
    weights::load_safetensors(
        &vs,
        &out.join(checkpoint::WEIGHTS),
        checkpoint::stored_in_run(backbone_changes),
    )?;
    let inputs = match &features {
        Some((f6, f7)) => Inputs::Cached { f6, f7 },
        None => Inputs::Images(&images),
    };
    let train_out = predict(&model, &inputs, &split.train, eval_bs, device)?;
    let y_train = mos_of(&split.train);
    let mapping = fit_mapping(&train_out, &y_train)?;
    let train_metrics = head_metrics(&train_out, &y_train, Some(&mapping));
    let test_out = predict(&model, &inputs, &split.test, eval_bs, device)?;
    let y_test = mos_of(&split.test);
    let test_metrics = head_metrics(&test_out, &y_test, Some(&mapping));
    write_predictions(
        &out.join("predictions_test.csv"),
        &dataset,
        &split.test,
        &test_out,
        &mapping,
    )?;
    vs.freeze();

    let info = RunInfo {
        normiqa_version: env!("CARGO_PKG_VERSION").to_string(),
        libtorch_version: "2.13.0".to_string(),
        config: cfg.clone(),
        mapping,
        best_epoch,
        epochs_done: cfg.epochs,
        backbone_in_weights: backbone_changes,
        sizes: SetSizes {
            train: split.train.len(),
            val: split.val.len(),
            test: split.test.len(),
        },
        val: best_val,
        test: Some(test_metrics.clone()),
        train: Some(train_metrics),
        timings: Timings {
            decode_s: decode_seconds,
            features_s,
            train_s,
            total_s: t_start.elapsed().as_secs_f64(),
            seconds_per_epoch: train_s / cfg.epochs as f64,
        },
        device: format!("{device:?}"),
        constant_mos_batches: constant.count,
    };
    if constant.count > 0 {
        tracing::warn!(
            "{} training batches had all-equal MOS; the loss went on with the reference's ε (constant_mos_batch events in {})",
            constant.count,
            out.join(checkpoint::LOG).display()
        );
    }
    info.save(out)?;
    super::resume::clear(out);
    log.write(
        "end",
        &serde_json::json!({"best_epoch": best_epoch, "test": &test_metrics, "constant_mos_batches": constant.count}),
    )?;
    tracing::info!(
        "best epoch {best_epoch}; test SROCC {:.4} PLCC {:.4} KROCC {:.4} RMSE {:.3} (fused head, after the train-set mapping)",
        test_metrics[2].srocc,
        test_metrics[2].plcc,
        test_metrics[2].krocc,
        test_metrics[2].rmse
    );
    drop(folder);
    Ok(TrainOutcome {
        dir: out.to_path_buf(),
        info,
        start: match resumed {
            Some(_) => Start::Resume,
            None => Start::Fresh,
        },
    })
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

/// `image,mos,head6,head7,fused,predicted_mos` for the given samples.
pub fn write_predictions(
    path: &Path,
    dataset: &normiqa_core::data::Dataset,
    idx: &[usize],
    out: &HeadOutputs,
    mapping: &[LinearMap; 3],
) -> Result<()> {
    let mapped = mapping[2].apply(&out[2]);
    // Atomic: a failed write leaves no partial file (src/atomic.rs).
    crate::atomic::write_with(path, |w| -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(w);
        w.write_record(["image", "mos", "head6", "head7", "fused", "predicted_mos"])?;
        for (k, &i) in idx.iter().enumerate() {
            let s = &dataset.samples[i];
            w.write_record([
                s.name.clone(),
                format!("{}", s.mos),
                format!("{}", out[0][k]),
                format!("{}", out[1][k]),
                format!("{}", out[2][k]),
                format!("{}", mapped[k]),
            ])?;
        }
        w.flush()?;
        Ok(())
    })?;
    Ok(())
}
