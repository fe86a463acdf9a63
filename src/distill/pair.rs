//! The MRKD pair as a procedure of the training engine ([`crate::train::engine`]): two members
//! trained together on the same batches, each at its own cosine rate (eq. 6), with the eq.-5
//! term; evaluation of both after every epoch; each member saved as a run folder at the end.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use normiqa_core::data::{split::Split, Dataset};
use normiqa_core::metrics::{srocc, Metrics};
use serde::Serialize;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use super::mrkd::{
    pair_loss, DistillConfig, EpochRecord, Eval, Member, MemberConfig, ModelResult, PairResult,
    Snapshot,
};
use crate::model::linearity::{BACKBONE_GROUP, HEADS_GROUP};
use crate::infer::trained::{self, nan_metrics};
use crate::model::{parse_device, IqaModel, ModelConfig};
use crate::run::info::{self, Timings};
use crate::run::config::{eval_batch_size, DataConfig, FrozenMode, TrainConfig};
use crate::run::data as train_data;
use crate::train::engine::{self, Batch, Evaluation, Finished, MemberRef, Plan, Procedure, StepLosses};
use crate::train::features::{self, Images, TapSource};
use crate::train::member;
use crate::train::optim::Opt;
use crate::run::schedule::Schedule;
use crate::train::trainer::{self, train_outputs};

/// What the models read: cached taps per member (shallow clones when shared), or decoded images.
pub enum Inputs {
    /// The taps of the teacher and of the student; rows = samples.
    Cached([Vec<Tensor>; 2]),
    Images(Vec<RgbImage>),
}

impl Inputs {
    /// Member `k`'s view.
    pub fn of(&self, k: usize) -> trained::Inputs<'_> {
        match self {
            Inputs::Cached(t) => trained::Inputs::Cached(&t[k]),
            Inputs::Images(im) => trained::Inputs::Images(im),
        }
    }

    /// Chunk size of evaluation: heads on cached taps in chunks of 1024, images in `eval_bs`.
    fn eval_chunk(&self, eval_bs: usize) -> usize {
        match self {
            Inputs::Cached(_) => 1024,
            Inputs::Images(_) => eval_bs,
        }
    }
}

/// A loaded dataset with its model inputs, reused across seeds and variants.
pub struct Prepared {
    pub dataset: Dataset,
    pub inputs: Inputs,
    pub cross: Option<(Dataset, Inputs)>,
    /// The seed of the networks that computed cached taps (their random backbones with
    /// `random_init`).
    pub seed: u64,
}

/// Loads the dataset (and the cross-dataset test set) and the inputs. In frozen mode the taps
/// come from the feature cache of `normiqa train` (same key, so runs of either command share
/// it); images are decoded only on a cache miss.
pub fn prepare(cfg: &DistillConfig, seed: u64) -> Result<Prepared> {
    let device = parse_device(&cfg.device)?;
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
        seed,
    })
}

fn prepare_inputs(
    cfg: &DistillConfig,
    dc: &DataConfig,
    dataset: &Dataset,
    seed: u64,
    device: Device,
) -> Result<Inputs> {
    let mut images = Images::Lazy {
        data: dc.clone(),
        decoded: None,
    };
    if !cfg.frozen() {
        images.get(dataset)?;
        let Images::Lazy { decoded, .. } = images else {
            unreachable!("lazy images")
        };
        return Ok(Inputs::Images(decoded.expect("decoded above")));
    }
    // (feature configuration, tap tag, weights, taps) of the members done so far
    type Done = (ModelConfig, String, Option<std::path::PathBuf>, Vec<Tensor>);
    let mut got: Vec<Done> = Vec::new();
    let mut out: Vec<Vec<Tensor>> = Vec::new();
    for m in [&cfg.teacher, &cfg.student] {
        let fc = m.feature_config();
        let wfile = match cfg.random_init {
            true => None,
            false => Some(super::mrkd::pretrained_file(m)?),
        };
        // Taps are shared when they are the same numbers: same feature configuration and tag
        // (LinearityIQA and the plain regressor share pooled levels), same weights.
        let tag = m.arch.tap_tag(&fc);
        let same = |(c, t, w, _): &&Done| {
            (c.backbone, c.pool, c.p6, c.p7) == (fc.backbone, fc.pool, fc.p6, fc.p7)
                && *t == tag
                && c.scnn_weights == fc.scnn_weights
                && *w == wfile
        };
        let taps = match got.iter().find(same) {
            Some((_, _, _, t)) => t.iter().map(|t| t.shallow_clone()).collect(),
            None => member_taps(cfg, dc, m, wfile.as_deref(), dataset, &mut images, seed, device)?,
        };
        out.push(taps.iter().map(|t| t.shallow_clone()).collect());
        got.push((fc, tag, wfile, taps));
    }
    let b = out.pop().expect("two members");
    let a = out.pop().expect("two members");
    Ok(Inputs::Cached([a, b]))
}

/// The taps a member reads, from the cache or computed by a network of its architecture built
/// from `seed` (its backbone: the pretrained one, or the seed's random one). `dc`: the data
/// configuration of `dataset` (the training data's, or the cross-dataset test set's).
#[allow(clippy::too_many_arguments)]
fn member_taps(
    cfg: &DistillConfig,
    dc: &DataConfig,
    m: &MemberConfig,
    wfile: Option<&Path>,
    dataset: &Dataset,
    images: &mut Images,
    seed: u64,
    device: Device,
) -> Result<Vec<Tensor>> {
    tch::manual_seed(seed as i64);
    let member = Member::new(m, device)?;
    if let Some(w) = wfile {
        trainer::load_pretrained(&member.vs, member.net.as_ref(), Some(w))?;
    }
    let all: Vec<usize> = (0..dataset.len()).collect();
    let src = TapSource {
        model: member.net.as_ref(),
        weights: wfile,
        dataset,
        data: dc,
        indices: &all,
    };
    let eval_bs = eval_batch_size(cfg.eval_batch_size, device);
    features::load_or_compute(&src, images, eval_bs, device)
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
    let chunk = inputs.eval_chunk(eval_bs);
    let mut out = trained::predict(member.net.as_ref(), &inputs.of(which), indices, chunk, device)?;
    Ok(out.pop().expect("one output at least"))
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
    let srcc = |p: &[f64], m: &[f64]| match p.len() >= 3 {
        true => srocc(p, m).unwrap_or(f64::NAN),
        false => f64::NAN,
    };
    groups
        .into_iter()
        .map(|(t, (p, m))| {
            let v = srcc(&p, &m);
            (t, v)
        })
        .collect()
}

fn metrics_or_nan(pred: &[f64], mos: &[f64]) -> Metrics {
    Metrics::compute(pred, mos).unwrap_or_else(|_| nan_metrics(mos.len()))
}

#[derive(Serialize)]
struct IterLog {
    lr: [f64; 2],
    task_loss: [f64; 2],
    distill: f64,
}

const NAMES: [&str; 2] = ["teacher", "student"];

/// The pair, one seed.
struct Pair<'a> {
    cfg: &'a DistillConfig,
    data: &'a Prepared,
    seed: u64,
    split: Split,
    members: [Member; 2],
    opts: [Opt; 2],
    device: Device,
    eval_bs: usize,
    /// Train-set mean and std of the MOS (z-scored targets), or (0, 1).
    mu_sd: (f64, f64),
    /// The step's rates, the epoch's first rates, and the epoch's loss sums.
    lr: [f64; 2],
    first_lr: [f64; 2],
    sums: [f64; 3],
    history: Vec<EpochRecord>,
    out: Option<&'a Path>,
    save_weights: bool,
    t_start: std::time::Instant,
    /// The resume key (configuration less the device, and the seed), stored with the result.
    key: String,
}

impl Pair<'_> {
    fn mos_of(&self, idx: &[usize]) -> Vec<f64> {
        idx.iter().map(|&i| self.data.dataset.samples[i].mos).collect()
    }

    fn predict(&self, k: usize, inputs: &Inputs, idx: &[usize]) -> Result<Vec<f64>> {
        predict(&self.members[k], k, inputs, idx, self.eval_bs, self.device)
    }

    fn evaluate_member(&self, k: usize) -> Result<Eval> {
        let (data, split) = (self.data, &self.split);
        let val = match split.val.is_empty() {
            true => None,
            false => Some(metrics_or_nan(
                &self.predict(k, &data.inputs, &split.val)?,
                &self.mos_of(&split.val),
            )),
        };
        let p = self.predict(k, &data.inputs, &split.test)?;
        let test = metrics_or_nan(&p, &self.mos_of(&split.test));
        let test_per_type = per_type_srcc(&data.dataset, &split.test, &p);
        let (cross, cross_per_type) = match &data.cross {
            Some((cd, ci)) => {
                let idx: Vec<usize> = (0..cd.len()).collect();
                let p = self.predict(k, ci, &idx)?;
                (Some(metrics_or_nan(&p, &cd.mos())), per_type_srcc(cd, &idx, &p))
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
    }

    /// The configuration of member `k` as a `train` run (its run folder's `config.toml`): the
    /// same data, split seed, model, loss, optimiser and cosine schedule.
    fn member_config(&self, k: usize) -> TrainConfig {
        let (cfg, m) = (self.cfg, self.cfg.member(k));
        let mut t = TrainConfig::new(cfg.data.dataset.clone());
        t.data = cfg.data.clone();
        t.arch = m.arch;
        t.model = m.model.clone();
        t.weights = m.weights.clone();
        t.random_init = cfg.random_init;
        t.loss = cfg.loss.clone();
        t.beta = cfg.beta;
        t.optimizer = cfg.optimizer;
        t.lr = m.lr;
        t.ft_lr_ratio = cfg.ft_lr_ratio;
        t.weight_decay = cfg.weight_decay;
        t.schedule = Schedule::Cosine {
            eta_min: cfg.eta_min,
            t_max: cfg.t_max.unwrap_or(cfg.epochs),
        };
        t.epochs = cfg.epochs;
        t.batch_size = cfg.batch_size;
        t.accumulation_steps = cfg.accumulation_steps;
        t.seed = self.seed;
        t.frozen_mode = FrozenMode::Cached;
        t.augment = cfg.augment;
        t.eval_batch_size = cfg.eval_batch_size;
        t.device = cfg.device.clone();
        t
    }

    /// Member `k`'s final weights as a run folder `dir` (what `predict`, `test` and `report`
    /// read): k, b per head fitted on the training set's raw MOS, metrics, test predictions.
    fn save_member(&self, k: usize, dir: &Path, run: &Finished) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tc = self.member_config(k);
        let config_text = toml::to_string_pretty(&tc)?;
        info::write_atomic(&dir.join(info::CONFIG_TOML), config_text.as_bytes())?;
        let with_backbone = !self.cfg.frozen() || self.cfg.random_init;
        crate::model::stored::save_weights(&self.members[k].vs, dir, with_backbone)?;
        let net: &dyn IqaModel = self.members[k].net.as_ref();
        let inputs = self.data.inputs.of(k);
        let chunk = self.data.inputs.eval_chunk(self.eval_bs);
        let evaluated = member::Evaluated {
            outputs: &|idx| trained::predict(net, &inputs, idx, chunk, self.device),
            mos: &|idx| self.mos_of(idx),
            dataset: &self.data.dataset,
            split: &self.split,
            train: &self.split.train,
            heads: net.head_names(),
        };
        let record = member::Record {
            config: tc,
            best_epoch: run.epochs,
            epochs_done: run.epochs,
            backbone_in_weights: with_backbone,
            pretrained_prefix: None,
            val: member::Val::Evaluate,
            timings: Timings {
                train_s: run.train_s,
                total_s: self.t_start.elapsed().as_secs_f64(),
                seconds_per_epoch: run.train_s / run.epochs as f64,
                ..Default::default()
            },
            device: format!("{:?}", self.device),
            constant_mos_batches: run.constant_mos_batches,
            also: Vec::new(),
        };
        member::write(dir, &evaluated, record)?;
        self.member_log(k, dir)
    }

    /// The member's per-epoch records in `train`'s log format (`epoch` events: rate, task loss,
    /// prediction-head validation and test metrics after a fit on the evaluated set).
    fn member_log(&self, k: usize, dir: &Path) -> Result<()> {
        let heads = self.members[k].net.head_names().len();
        let mut log = crate::train::log::JsonlLog::create(&dir.join(info::LOG))?;
        log.write("start", &json!({"config": self.member_config(k), "member_of": "distill", "member": NAMES[k]}))?;
        for r in &self.history {
            // The pair evaluates the prediction head only: the other heads' entries are null.
            let at_last = |m: Option<Metrics>| {
                m.map(|m| {
                    let mut v = vec![Value::Null; heads];
                    v[heads - 1] = serde_json::to_value(m).unwrap_or(Value::Null);
                    v
                })
            };
            let e = &r.eval[k];
            log.write("epoch", &json!({"epoch": r.epoch, "lr": r.lr[k], "loss": r.task_loss[k],
                "val": at_last(e.val), "test": at_last(Some(e.test))}))?;
        }
        Ok(())
    }

    /// Frozen members with random backbones read the taps of the networks `prepare` built from
    /// its seed: their run folders get those backbones, so that the folders predict what the
    /// pair evaluated.
    fn adopt_tap_backbones(&mut self) -> Result<()> {
        let prefix = format!("{}.", crate::model::linearity::BACKBONE_PREFIX);
        for m in &self.members {
            tch::manual_seed(self.data.seed as i64);
            let source = Member::new(&m.config, self.device)?;
            let src = source.vs.variables();
            tch::no_grad(|| -> Result<()> {
                for (name, mut var) in m.vs.variables() {
                    if name.starts_with(&prefix) {
                        let t = src.get(&name).context("the same backbone")?;
                        var.copy_(t);
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn result(&self) -> PairResult {
        let history = &self.history;
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
        let last = history.len() - 1;
        let models: [ModelResult; 2] = std::array::from_fn(|k| ModelResult {
            lr: self.members[k].config.lr,
            final_epoch: pick(k, last),
            best_val: argmax(&|r: &EpochRecord| r.eval[k].val.map_or(f64::NAN, |m| m.srocc.abs()))
                .map(|e| pick(k, e)),
            oracle_best_test: pick(
                k,
                argmax(&|r: &EpochRecord| r.eval[k].test.srocc.abs()).unwrap_or(last),
            ),
        });
        let split = &self.split;
        PairResult {
            seed: self.seed,
            sizes: [split.train.len(), split.val.len(), split.test.len()],
            seconds: self.t_start.elapsed().as_secs_f64(),
            history: history.clone(),
            models,
        }
    }
}

impl Procedure for Pair<'_> {
    type Output = PairResult;

    fn members(&mut self) -> Vec<MemberRef<'_>> {
        let with_backbone = !self.cfg.frozen();
        self.members
            .iter()
            .zip(self.opts.iter_mut())
            .zip(NAMES)
            .map(|((m, opt), name)| MemberRef {
                name,
                vs: &m.vs,
                opt,
                with_backbone,
            })
            .collect()
    }

    fn set_rates(&mut self, epoch: usize, iter: usize, iters: usize) {
        for k in 0..2 {
            self.lr[k] = self.cfg.lr_at(k, epoch, iter, iters);
            self.opts[k].set_lr_group(HEADS_GROUP, self.lr[k]);
            self.opts[k].set_lr_group(BACKBONE_GROUP, self.lr[k] * self.cfg.ft_lr_ratio);
        }
        if iter == 0 {
            self.first_lr = self.lr;
            self.sums = [0.0; 3];
        }
    }

    fn step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let (mu, sd) = self.mu_sd;
        let y: Vec<f64> = self.mos_of(batch.idx).iter().map(|m| (m - mu) / sd).collect();
        let y = Tensor::from_slice(&y).to_kind(Kind::Float).to_device(self.device);
        let frozen = false; // cached taps or a trained backbone: never the reference frozen mode
        let outs: Vec<Vec<Tensor>> = (0..2)
            .map(|k| {
                let inputs = self.data.inputs.of(k);
                train_outputs(self.members[k].net.as_ref(), &inputs, batch, frozen, true, self.device)
            })
            .collect::<Result<_>>()?;
        let outs: [Vec<Tensor>; 2] = outs.try_into().map_err(|_| anyhow::anyhow!("two members"))?;
        let (total, t0, t1, d) = pair_loss(self.cfg, &self.members, &outs, &y).map_err(|e| {
            let ds = &self.data.dataset;
            let at = train_data::batch_context(ds, batch.idx, batch.epoch, batch.index);
            anyhow::anyhow!("{at}: {}", crate::cli::error_text(&e))
        })?;
        let vals = [f64::try_from(&t0)?, f64::try_from(&t1)?, f64::try_from(&d)?];
        (total / batch.accumulation as f64).backward();
        for (s, v) in self.sums.iter_mut().zip(vals) {
            *s += v;
        }
        let log = IterLog {
            lr: self.lr,
            task_loss: [vals[0], vals[1]],
            distill: vals[2],
        };
        Ok(StepLosses {
            checked: vec![("teacher task", vals[0]), ("student task", vals[1]), ("eq.-5 term", vals[2])],
            log: serde_json::to_value(log)?,
        })
    }

    fn evaluate(&mut self, epoch: usize) -> Result<Evaluation> {
        let nb = (self.split.train.len() / self.cfg.batch_size).max(1) as f64;
        let rec = EpochRecord {
            epoch: epoch + 1,
            lr: self.first_lr,
            task_loss: [self.sums[0] / nb, self.sums[1] / nb],
            distill: self.sums[2] / nb,
            eval: [self.evaluate_member(0)?, self.evaluate_member(1)?],
        };
        let line = format!(
            "seed {}  lr {:.2e}/{:.2e}  task {:.4}/{:.4}  d {:.4}  test SRCC {:.4}/{:.4}",
            self.seed, rec.lr[0], rec.lr[1], rec.task_loss[0], rec.task_loss[1], rec.distill,
            rec.eval[0].test.srocc, rec.eval[1].test.srocc
        );
        let log = serde_json::to_value(&rec)?;
        self.history.push(rec);
        // No selection: the paper reports the final epoch (best-val and oracle epochs are picked
        // from the history afterwards).
        Ok(Evaluation {
            criterion: None,
            log,
            line,
        })
    }

    fn save_best(&mut self) -> Result<()> {
        Ok(())
    }

    fn state(&self) -> Value {
        json!({ "history": self.history })
    }

    fn restore(&mut self, state: Value) -> Result<()> {
        self.history = serde_json::from_value(state["history"].clone())
            .context("resume state: history")?;
        Ok(())
    }

    fn advice(&self) -> String {
        format!(
            "try smaller learning rates (teacher {}, student {})",
            self.cfg.teacher.lr, self.cfg.student.lr
        )
    }

    fn finish(&mut self, run: &Finished) -> Result<(PairResult, Value)> {
        if let Some(dir) = self.out {
            if self.cfg.frozen() && self.cfg.random_init {
                self.adopt_tap_backbones()?;
            }
            for (k, name) in NAMES.iter().enumerate() {
                if self.save_weights {
                    let file = dir.join(format!("{name}.safetensors"));
                    crate::atomic::write_via_path(&file, |tmp| self.members[k].vs.save(tmp))?;
                }
                self.save_member(k, &dir.join(name), run)?;
            }
        }
        let result = self.result();
        if let Some(dir) = self.out {
            // Last: its presence marks the pair finished (`PAIR_RESULT`).
            let done = json!({"key": self.key, "result": &result});
            info::write_atomic(&dir.join(PAIR_RESULT), serde_json::to_string_pretty(&done)?.as_bytes())?;
        }
        let end = json!({"teacher_final_test": result.models[0].final_epoch.eval.test,
            "student_final_test": result.models[1].final_epoch.eval.test});
        Ok((result, end))
    }
}

/// What a resumed pair run must match.
#[derive(Serialize)]
struct PairKey<'a> {
    seed: u64,
    run: &'a DistillConfig,
}

/// Written last into a pair's folder: `{"key": .., "result": PairResult}`. A pair whose folder
/// holds it with the same key is finished, and [`train_pair`] returns the stored result.
pub const PAIR_RESULT: &str = "pair.json";

/// The stored result of a finished pair with this key, if `dir` holds one.
fn finished_pair(dir: &Path, key: &str) -> Result<Option<PairResult>> {
    let path = dir.join(PAIR_RESULT);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Stored {
        key: String,
        result: PairResult,
    }
    let stored: Stored =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok((stored.key == key).then_some(stored.result))
}

/// Train-set mean and std of the MOS when `normalize`, else (0, 1).
fn mos_scale(normalize: bool, y: &[f64]) -> (f64, f64) {
    if !normalize {
        return (0.0, 1.0);
    }
    let m = y.iter().sum::<f64>() / y.len() as f64;
    let v = y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / y.len() as f64;
    (m, if v > 0.0 { v.sqrt() } else { 1.0 })
}

/// The two members from `seed` (teacher first, then student: the student's initialisation does
/// not depend on the teacher's configuration), frozen or with their pretrained backbones.
fn build_members(cfg: &DistillConfig, seed: u64, device: Device) -> Result<([Member; 2], [Opt; 2])> {
    tch::manual_seed(seed as i64);
    let members = [Member::new(&cfg.teacher, device)?, Member::new(&cfg.student, device)?];
    for m in &members {
        if cfg.frozen() {
            m.freeze_backbone();
        } else if !cfg.random_init {
            m.load_pretrained()?;
        }
    }
    let opt = |m: &Member| Opt::build(cfg.optimizer, &m.vs, m.config.lr, cfg.weight_decay);
    let opts = [opt(&members[0])?, opt(&members[1])?];
    Ok((members, opts))
}

/// Trains the pair for one seed (initialisation, batch order and split seed). With `out`, the
/// run folder gets `log.jsonl`, the resume state while it runs (an interrupted run goes on after
/// its last finished epoch) and a run folder per member (`teacher/`, `student/`); with
/// `save_weights` also each member's whole VarStore (`teacher.safetensors`, ...).
pub fn train_pair(
    cfg: &DistillConfig,
    data: &Prepared,
    seed: u64,
    out: Option<&Path>,
    save_weights: bool,
) -> Result<PairResult> {
    cfg.validate()?;
    let t_start = std::time::Instant::now();
    let device = parse_device(&cfg.device)?;
    let split = train_data::split_dataset(&cfg.data, &data.dataset, seed)?;
    // (equal MOS, train/constant_mos.rs: refused only when the whole training split is constant)
    crate::train::setup::check_training_split(&data.dataset, &split, &cfg.data, cfg.batch_size, &cfg.loss)?;
    let train_mos: Vec<f64> = split.train.iter().map(|&i| data.dataset.samples[i].mos).collect();
    let (members, opts) = build_members(cfg, seed, device)?;
    // The identity of the run: its configuration less the device (which may change on resume).
    let keyed = DistillConfig { device: String::new(), ..cfg.clone() };
    let config_text = toml::to_string_pretty(&PairKey { seed, run: &keyed })?;
    if let Some(result) = out.map(|d| finished_pair(d, &config_text)).transpose()?.flatten() {
        tracing::info!("{}: this pair already finished there; nothing to do", out.expect("some").display());
        return Ok(result);
    }
    let start = json!({"config": cfg, "seed": seed, "n_train": split.train.len(),
        "n_val": split.val.len(), "n_test": split.test.len()});
    let mut pair = Pair {
        cfg,
        data,
        seed,
        split,
        members,
        opts,
        device,
        eval_bs: eval_batch_size(cfg.eval_batch_size, device),
        mu_sd: mos_scale(cfg.normalize_mos, &train_mos),
        lr: [0.0; 2],
        first_lr: [0.0; 2],
        sums: [0.0; 3],
        history: Vec::with_capacity(cfg.epochs),
        out,
        save_weights,
        t_start,
        key: config_text.clone(),
    };
    let images = match &data.inputs {
        Inputs::Images(im) => Some(im.as_slice()),
        Inputs::Cached(_) => None,
    };
    let train_idx = pair.split.train.clone();
    let plan = Plan {
        dataset: &data.dataset,
        train: &train_idx,
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        accumulation_steps: cfg.accumulation_steps,
        seed,
        augment: cfg.augment.as_ref().zip(images),
        loss: &cfg.loss,
        config_text,
        start,
        one_thread: cfg.frozen() && !device.is_cuda(),
        out,
        groups: None,
    };
    engine::run(&mut pair, &plan)
}
