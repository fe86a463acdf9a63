//! The one training engine. It owns, for every procedure (one model with β-weighted heads, an
//! MRKD pair, ...): the epoch/batch loop, shuffling (one generator from the seed, positions saved
//! for resume), the per-epoch reseed of libtorch's generator, gradient accumulation, training-set
//! augmentation, non-finite checks, the JSONL log, the thread guard, resume, evaluation after each
//! epoch and the choice of the best epoch.
//!
//! What differs between procedures is behind [`Procedure`]: the forward pass and loss of a batch,
//! the rates of each member, what an evaluation measures, what is saved at the best epoch and at
//! the end.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use image::RgbImage;
use normiqa_core::data::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::loss::LossConfig;

use super::augment::Augment;
use crate::run::info;
use super::constant_mos::{self, ConstantBatches};
use super::log::JsonlLog;
use super::resume;

pub use super::resume::MemberRef;

/// A batch of training samples.
pub struct Batch<'a> {
    /// 0-based epoch and batch index, and batches per epoch.
    pub epoch: usize,
    pub index: usize,
    pub iters: usize,
    /// Dataset indices of the samples.
    pub idx: &'a [usize],
    /// The dataset of every sample of the batch ([`Groups`]; 0 with one dataset).
    pub group: usize,
    /// The augmented images of the samples, in `idx` order (when augmentation is on).
    pub augmented: Option<Vec<RgbImage>>,
    /// The loss is divided by this before `backward` (gradient accumulation).
    pub accumulation: usize,
}

/// What a step reports.
pub struct StepLosses {
    /// Values that must be finite, with their names (for the error).
    pub checked: Vec<(&'static str, f64)>,
    /// Fields of the step's `iter` log event.
    pub log: Value,
}

/// What an evaluation reports.
pub struct Evaluation {
    /// The number the best epoch maximises (|validation SROCC|); `None`: no selection, the last
    /// epoch is kept.
    pub criterion: Option<f64>,
    /// Fields of the `epoch` log event.
    pub log: Value,
    /// A short summary for the terminal.
    pub line: String,
}

/// How the loop ended.
pub struct Finished {
    /// 1-based epoch the engine kept (best criterion), `None` when no epoch had a finite one.
    pub best_epoch: Option<usize>,
    pub train_s: f64,
    pub epochs: usize,
    /// The run went on from a saved state (an interrupted run of this configuration).
    pub resumed: bool,
    /// Training batches whose MOS were all equal ([`super::constant_mos`]).
    pub constant_mos_batches: usize,
}

/// What differs between training one model and training an MRKD pair.
pub trait Procedure {
    type Output;
    /// The trained members (for the optimiser steps and resume).
    fn members(&mut self) -> Vec<MemberRef<'_>>;
    /// Sets every member's rates for step `iter` of `epoch` (`iters` steps per epoch).
    fn set_rates(&mut self, epoch: usize, iter: usize, iters: usize);
    /// Forward, loss and `backward` of one batch (loss divided by `batch.accumulation`).
    fn step(&mut self, batch: &Batch) -> Result<StepLosses>;
    /// Evaluation after `epoch` (0-based), in eval mode.
    fn evaluate(&mut self, epoch: usize) -> Result<Evaluation>;
    /// The last evaluated epoch is the best so far: keep what it needs (a checkpoint, metrics).
    fn save_best(&mut self) -> Result<()>;
    /// The procedure's records for resume, and their restoration.
    fn state(&self) -> Value;
    fn restore(&mut self, state: Value) -> Result<()>;
    /// Advice for a non-finite loss (e.g. "try a smaller --lr").
    fn advice(&self) -> String;
    /// After the loop (thread count restored): final evaluation and artifacts. Returns the output
    /// and the fields of the log's `end` event.
    fn finish(&mut self, run: &Finished) -> Result<(Self::Output, Value)>;
}

/// The loop's settings, the same for every procedure.
pub struct Plan<'a> {
    pub dataset: &'a Dataset,
    /// Training indices (the batch order is a shuffle of these).
    pub train: &'a [usize],
    pub epochs: usize,
    pub batch_size: usize,
    pub accumulation_steps: usize,
    /// Drives shuffling, augmentation and the per-epoch libtorch seed.
    pub seed: u64,
    /// With the decoded images it applies to.
    pub augment: Option<(&'a Augment, &'a [RgbImage])>,
    /// The task loss: batches of all-equal MOS are counted and logged when it normalises the MOS
    /// ([`super::constant_mos`]).
    pub loss: &'a LossConfig,
    /// The configuration as text: a resumed run must have the same one.
    pub config_text: String,
    /// Fields of the log's `start` event.
    pub start: Value,
    /// Run the loop on one intra-op thread (heads on cached features: thread hand-offs dominate;
    /// measured 0.5 s vs 2–20 s per CLIVE epoch on a busy 2-core machine). `NORMIQA_THREADS`
    /// overrides the loop's thread count.
    pub one_thread: bool,
    /// Run folder for the log and the resume state; none: neither is written.
    pub out: Option<&'a Path>,
    /// Several datasets in `dataset` (multi-dataset training): every batch is drawn from one.
    pub groups: Option<Groups<'a>>,
}

/// The datasets of a multi-dataset run ([`crate::run::config::AlsoData`]) as the loop sees them.
pub struct Groups<'a> {
    /// The dataset (0 = the main one) of every sample index of [`Plan::dataset`].
    pub of: &'a [usize],
    /// Per dataset: training images per epoch (a fresh random subset each epoch; `None` = all).
    pub per_epoch: Vec<Option<usize>>,
    pub mixing: crate::run::config::Mixing,
}

impl Groups<'_> {
    /// The epoch's batches from the shuffled training order: each dataset's samples in that
    /// order (cut to its `per_epoch`), in whole batches, mixed as configured.
    fn batches(&self, order: &[usize], batch_size: usize, rng: &mut ChaCha8Rng) -> Vec<(usize, Vec<usize>)> {
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); self.per_epoch.len()];
        for &i in order {
            per[self.of[i]].push(i);
        }
        let mut batches: Vec<(f64, usize, Vec<usize>)> = Vec::new();
        for (g, mut idx) in per.into_iter().enumerate() {
            if let Some(k) = self.per_epoch[g] {
                idx.truncate(k);
            }
            let chunks: Vec<Vec<usize>> = idx.chunks_exact(batch_size).map(<[usize]>::to_vec).collect();
            let n = chunks.len() as f64;
            // Alternate: batch j of a dataset with n batches sits at (j + 0.5) / n of the epoch.
            batches.extend(chunks.into_iter().enumerate().map(|(j, c)| ((j as f64 + 0.5) / n, g, c)));
        }
        match self.mixing {
            crate::run::config::Mixing::Alternate => {
                batches.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            }
            crate::run::config::Mixing::Shuffled => batches.shuffle(rng),
        }
        batches.into_iter().map(|(_, g, c)| (g, c)).collect()
    }
}

/// Restores the process's intra-op thread count when the loop ends, also by an error (a later
/// run in this process must not inherit the loop's count).
struct Threads(i32);

impl Threads {
    fn set(one_thread: bool) -> Threads {
        let guard = Threads(tch::get_num_threads());
        let env = std::env::var("NORMIQA_THREADS").ok().and_then(|s| s.parse::<i32>().ok());
        match env {
            Some(n) if n > 0 => tch::set_num_threads(n),
            _ if one_thread => tch::set_num_threads(1),
            _ => {}
        }
        guard
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

/// The generators and counters the loop carries from epoch to epoch.
struct Cursor {
    rng: ChaCha8Rng,
    /// A separate stream, so that turning augmentation on does not change the batch order.
    aug_rng: ChaCha8Rng,
    order: Vec<usize>,
    best: Option<(f64, usize)>,
    global_iter: usize,
    start_epoch: usize,
    train_s_before: f64,
    resumed: bool,
    constant: ConstantBatches,
}

impl Cursor {
    fn new(plan: &Plan) -> Self {
        Cursor {
            rng: ChaCha8Rng::seed_from_u64(plan.seed),
            aug_rng: ChaCha8Rng::seed_from_u64(plan.seed ^ 0x5eed_a06e),
            order: plan.train.to_vec(),
            best: None,
            global_iter: 0,
            start_epoch: 0,
            train_s_before: 0.0,
            resumed: false,
            constant: ConstantBatches::new(plan.loss, 0),
        }
    }

    fn resume(&mut self, st: &resume::State) -> Result<()> {
        let (rp, ap) = st.rng_pos()?;
        self.rng.set_word_pos(rp);
        self.aug_rng.set_word_pos(ap);
        self.order = st.order.clone();
        self.best = st.best;
        self.global_iter = st.global_iter;
        self.start_epoch = st.epochs_done;
        self.train_s_before = st.train_s;
        self.resumed = true;
        self.constant.count = st.constant_mos_batches;
        Ok(())
    }
}

/// Opens the log (truncated to the saved epoch when resuming) and loads a saved state.
fn open<P: Procedure>(
    proc: &mut P,
    plan: &Plan,
    cur: &mut Cursor,
) -> Result<Option<JsonlLog>> {
    let Some(out) = plan.out else {
        return Ok(None);
    };
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("creating run directory {}: {e}", out.display()))?;
    let log_path = out.join(info::LOG);
    let labels = resume::labels_key(plan.dataset);
    let saved = resume::load(out, &plan.config_text, &labels, &mut proc.members())?;
    let Some(st) = saved else {
        let mut log = JsonlLog::create(&log_path)?;
        log.write("start", &plan.start)?;
        return Ok(Some(log));
    };
    cur.resume(&st)?;
    proc.restore(st.procedure.clone())?;
    let mut log = JsonlLog::append_at(&log_path, st.log_bytes)?;
    log.write("resume", &json!({"after_epoch": st.epochs_done}))?;
    tracing::info!(
        "resuming {} after epoch {} of {}",
        out.display(),
        st.epochs_done,
        plan.epochs
    );
    Ok(Some(log))
}

/// Merges `extra` into the JSON object `v`.
fn with(mut v: Value, extra: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    v
}

/// Trains with `proc` as planned; returns the procedure's output.
pub fn run<P: Procedure>(proc: &mut P, plan: &Plan) -> Result<P::Output> {
    let mut cur = Cursor::new(plan);
    let mut log = open(proc, plan, &mut cur)?;
    let threads = Threads::set(plan.one_thread);
    let t_train = Instant::now();
    let stop_after: Option<usize> = std::env::var("NORMIQA_STOP_AFTER_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok());
    for epoch in cur.start_epoch..plan.epochs {
        let t_epoch = Instant::now();
        train_epoch(proc, plan, &mut cur, log.as_mut(), epoch)?;
        let eval = proc.evaluate(epoch)?;
        // No selection (no validation set): the last epoch is kept.
        let criterion = eval.criterion.unwrap_or(epoch as f64);
        let improved = criterion.is_finite() && cur.best.map_or(true, |(b, _)| criterion > b);
        if improved {
            cur.best = Some((criterion, epoch + 1));
            proc.save_best()?;
        }
        let secs = t_epoch.elapsed().as_secs_f64();
        if let Some(log) = log.as_mut() {
            let fields = json!({"epoch": epoch + 1, "seconds": secs, "best": improved});
            log.write("epoch", &with(eval.log, fields))?;
            save_resume(proc, plan, &cur, log, epoch, t_train.elapsed().as_secs_f64())?;
        }
        if stop_after == Some(epoch + 1) && epoch + 1 < plan.epochs {
            // Test hook: behave as a run killed after this epoch.
            bail!("stopped after epoch {} (NORMIQA_STOP_AFTER_EPOCH)", epoch + 1);
        }
        tracing::info!(
            "epoch {:>3}/{}  {}  {secs:.1} s{}",
            epoch + 1,
            plan.epochs,
            eval.line,
            if improved { "  *best" } else { "" }
        );
    }
    let finished = Finished {
        best_epoch: cur.best.map(|(_, e)| e),
        train_s: cur.train_s_before + t_train.elapsed().as_secs_f64(),
        epochs: plan.epochs,
        resumed: cur.resumed,
        constant_mos_batches: cur.constant.count,
    };
    drop(threads);
    if cur.constant.count > 0 {
        let at = plan.out.map_or(String::new(), |o| {
            format!(" (constant_mos_batch events in {})", o.join(info::LOG).display())
        });
        tracing::warn!(
            "{} training batches had all-equal MOS; the loss went on with the reference's ε{at}",
            cur.constant.count
        );
    }
    let (output, end) = proc.finish(&finished)?;
    if let (Some(out), Some(log)) = (plan.out, log.as_mut()) {
        resume::clear(out);
        let counted = json!({"constant_mos_batches": cur.constant.count});
        log.write("end", &with(end, counted))?;
    }
    Ok(output)
}

fn save_resume<P: Procedure>(
    proc: &mut P,
    plan: &Plan,
    cur: &Cursor,
    log: &mut JsonlLog,
    epoch: usize,
    train_s: f64,
) -> Result<()> {
    let Some(out) = plan.out else {
        return Ok(());
    };
    let progress = resume::Progress {
        epochs_done: epoch + 1,
        best: cur.best,
        global_iter: cur.global_iter,
        log_bytes: log.bytes_written()?,
        order: &cur.order,
        rng_pos: cur.rng.get_word_pos(),
        aug_pos: cur.aug_rng.get_word_pos(),
        train_s: cur.train_s_before + train_s,
        constant_mos_batches: cur.constant.count,
    };
    let labels = resume::labels_key(plan.dataset);
    let state = resume::State::new(plan.config_text.clone(), labels, progress, proc.state());
    resume::save(out, &proc.members(), state)
}

/// One pass over the shuffled training set.
fn train_epoch<P: Procedure>(
    proc: &mut P,
    plan: &Plan,
    cur: &mut Cursor,
    mut log: Option<&mut JsonlLog>,
    epoch: usize,
) -> Result<()> {
    // libtorch's generator (drop connect, ...) restarts from a per-epoch seed, so that a resumed
    // run draws what an uninterrupted one would.
    tch::manual_seed((plan.seed as i64).wrapping_add(1_000_003 * (epoch as i64 + 1)));
    cur.order.shuffle(&mut cur.rng);
    let batches: Vec<(usize, Vec<usize>)> = match &plan.groups {
        Some(g) => g.batches(&cur.order, plan.batch_size, &mut cur.rng),
        None => cur.order.chunks_exact(plan.batch_size).map(|c| (0, c.to_vec())).collect(),
    };
    let bar = crate::progress::bar(batches.len() as u64, &format!("epoch {}", epoch + 1));
    for m in proc.members() {
        m.opt.zero_grad();
    }
    for (bi, (group, idx)) in batches.iter().enumerate() {
        proc.set_rates(epoch, bi, batches.len());
        let augmented = match plan.augment {
            Some((a, images)) => Some(
                idx.iter()
                    .map(|&i| a.apply(&images[i], &mut cur.aug_rng))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        // A batch of equal MOS goes on with the reference's ε; counted and logged.
        let mos: Vec<f64> = idx.iter().map(|&i| plan.dataset.samples[i].mos).collect();
        if cur.constant.observe(&mos) {
            if let Some(log) = log.as_deref_mut() {
                let ev = constant_mos::event(plan.dataset, idx, epoch, bi, &cur.constant);
                log.write("constant_mos_batch", &ev)?;
            }
        }
        let batch = Batch {
            epoch,
            index: bi,
            iters: batches.len(),
            idx,
            group: *group,
            augmented,
            accumulation: plan.accumulation_steps,
        };
        let losses = proc.step(&batch)?;
        check_finite(proc, plan, &losses, &batch, cur.best.map(|(_, e)| e))?;
        if (bi + 1) % plan.accumulation_steps == 0 || bi + 1 == batches.len() {
            for m in proc.members() {
                m.opt.step();
                m.opt.zero_grad();
            }
        }
        cur.global_iter += 1;
        if let Some(log) = log.as_deref_mut() {
            let at = json!({"epoch": epoch + 1, "iter": cur.global_iter});
            log.write("iter", &with(losses.log, at))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

fn check_finite<P: Procedure>(
    proc: &P,
    plan: &Plan,
    losses: &StepLosses,
    batch: &Batch,
    best_epoch: Option<usize>,
) -> Result<()> {
    if losses.checked.iter().all(|(_, v)| v.is_finite()) {
        return Ok(());
    }
    let values: Vec<String> = losses
        .checked
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let kept = match (plan.out, best_epoch) {
        (Some(out), Some(e)) => {
            format!(". The best checkpoint so far (epoch {e}) is kept in {}", out.display())
        }
        (Some(_), None) => ". No checkpoint was written: no epoch finished before this one".into(),
        (None, _) => String::new(),
    };
    bail!(
        "the loss became non-finite ({}) at {}; stopping{kept} ({})",
        values.join(", "),
        crate::run::data::batch_context(plan.dataset, batch.idx, batch.epoch, batch.index),
        proc.advice()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::config::Mixing;

    fn groups(of: &[usize], per_epoch: Vec<Option<usize>>, mixing: Mixing) -> Vec<(usize, Vec<usize>)> {
        let g = Groups { of, per_epoch, mixing };
        let order: Vec<usize> = (0..of.len()).collect();
        g.batches(&order, 2, &mut ChaCha8Rng::seed_from_u64(1))
    }

    #[test]
    fn every_batch_holds_one_dataset_and_alternate_spreads_them() {
        // 6 samples of dataset 0 (3 batches), 2 of dataset 1 (1 batch), one left over.
        let of = [0, 1, 0, 0, 1, 0, 0, 0, 1];
        let b = groups(&of, vec![None, None], Mixing::Alternate);
        assert_eq!(b.len(), 4);
        for (g, idx) in &b {
            assert!(idx.iter().all(|&i| of[i] == *g), "{b:?}");
        }
        let order: Vec<usize> = b.iter().map(|(g, _)| *g).collect();
        assert_eq!(order, [0, 0, 1, 0], "dataset 1's one batch sits in the middle");
        let shuffled = groups(&of, vec![None, None], Mixing::Shuffled);
        assert_eq!(shuffled.len(), 4);
        assert!(shuffled.iter().all(|(g, idx)| idx.iter().all(|&i| of[i] == *g)));
    }

    #[test]
    fn per_epoch_cuts_a_dataset_to_its_share() {
        let of = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0];
        let b = groups(&of, vec![None, Some(2)], Mixing::Alternate);
        let ones: Vec<&Vec<usize>> = b.iter().filter(|(g, _)| *g == 1).map(|(_, i)| i).collect();
        assert_eq!(ones, [&vec![2, 3]]);
        assert_eq!(b.len(), 3);
    }
}
