//! Resuming an interrupted training run exactly where it stopped.
//!
//! After every epoch the engine writes, in `RUN/resume/`: each member's variables and optimiser
//! buffers of that epoch (`NAME-E.safetensors`, `NAME-optimizer-E.safetensors`; NAME is `model`
//! for one model, `teacher`/`student` for an MRKD pair), then `state.json` (atomically; it names
//! epoch E, so it is the commit point), then removes the files of earlier epochs. A later run into
//! the same directory with the same configuration loads them and goes on with epoch E+1: same
//! weights, optimiser moments, batch order (the shuffling generator's position), libtorch seed
//! (reseeded per epoch), the procedure's own records and the log (truncated to the end of
//! epoch E). A finished run removes `resume/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::run::info;
use super::optim::Opt;
use crate::model::weights;

pub const DIR: &str = "resume";
const STATE: &str = "state.json";


/// One trained model of a procedure, as the engine sees it: its variables and optimiser.
pub struct MemberRef<'a> {
    /// Names its resume files (`model`, `teacher`, `student`).
    pub name: &'a str,
    pub vs: &'a nn::VarStore,
    pub opt: &'a mut Opt,
    /// Whether its backbone changes (and so is saved with it).
    pub with_backbone: bool,
}

/// Everything besides tensors that the epoch loop carries from one epoch to the next.
#[derive(Serialize, Deserialize)]
pub struct State {
    /// The run's configuration (TOML): a resume needs the very same one.
    config: String,
    pub epochs_done: usize,
    /// (criterion, 1-based epoch) of the best epoch so far.
    pub best: Option<(f64, usize)>,
    pub global_iter: usize,
    /// Length of log.jsonl at the end of the epoch.
    pub log_bytes: u64,
    /// The training order after the epoch's in-place shuffle.
    pub order: Vec<usize>,
    /// Word positions of the batch-order and augmentation generators (u128 as text).
    rng_pos: String,
    aug_pos: String,
    /// Adam's step count of each member (bias correction).
    pub opt_steps: Vec<i64>,
    /// Training seconds so far.
    pub train_s: f64,
    /// The procedure's own records (best validation metrics, per-epoch history, ...).
    pub procedure: serde_json::Value,
    /// Batches with all-equal MOS so far (`constant_mos.rs`).
    #[serde(default)]
    pub constant_mos_batches: usize,
    /// The labels trained on ([`labels_key`]): a resume on edited labels is refused (it would
    /// match neither the old labels nor the new). Empty in states saved before it was kept.
    #[serde(default)]
    labels: String,
}

/// The content of a dataset's labels: xxh3-64 over every sample's name, MOS (its bits), MOS
/// standard deviation, reference, distortion and level, in order; with the sample count.
pub fn labels_key(ds: &normiqa_core::data::Dataset) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for s in &ds.samples {
        let line = format!(
            "{}\0{:x}\0{:?}\0{:?}\0{:?}\0{:?}\n",
            s.name,
            s.mos.to_bits(),
            s.mos_std.map(f64::to_bits),
            s.reference,
            s.distortion,
            s.level
        );
        h.update(line.as_bytes());
    }
    format!("{}:{:016x}", ds.samples.len(), h.digest())
}

/// The engine's counters at the end of an epoch.
pub struct Progress<'a> {
    pub epochs_done: usize,
    pub best: Option<(f64, usize)>,
    pub global_iter: usize,
    pub log_bytes: u64,
    pub order: &'a [usize],
    pub rng_pos: u128,
    pub aug_pos: u128,
    pub train_s: f64,
    pub constant_mos_batches: usize,
}

impl State {
    pub fn new(config: String, labels: String, p: Progress, procedure: serde_json::Value) -> Self {
        State {
            config,
            labels,
            epochs_done: p.epochs_done,
            best: p.best,
            global_iter: p.global_iter,
            log_bytes: p.log_bytes,
            order: p.order.to_vec(),
            rng_pos: p.rng_pos.to_string(),
            aug_pos: p.aug_pos.to_string(),
            opt_steps: Vec::new(),
            train_s: p.train_s,
            procedure,
            constant_mos_batches: p.constant_mos_batches,
        }
    }
    pub fn rng_pos(&self) -> Result<(u128, u128)> {
        Ok((
            self.rng_pos.parse().context("resume state: rng_pos")?,
            self.aug_pos.parse().context("resume state: aug_pos")?,
        ))
    }
}

fn files(out: &Path, name: &str, epoch: usize) -> (PathBuf, PathBuf) {
    let d = out.join(DIR);
    (
        d.join(format!("{name}-{epoch}.safetensors")),
        d.join(format!("{name}-optimizer-{epoch}.safetensors")),
    )
}

/// Saves the end-of-epoch state (see the module doc).
pub fn save(out: &Path, members: &[MemberRef], mut st: State) -> Result<()> {
    let dir = out.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut keep = Vec::new();
    for m in members {
        let (model, optim) = files(out, m.name, st.epochs_done);
        weights::save_safetensors(m.vs, &model, crate::model::stored::stored_in_run(m.with_backbone))?;
        let (tensors, step) = m.opt.state();
        st.opt_steps.push(step);
        let named: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu)))
            .collect();
        crate::atomic::write_via_path(&optim, |tmp| Tensor::write_safetensors(&named, tmp))?;
        keep.extend([model, optim]);
    }
    info::write_atomic(&dir.join(STATE), serde_json::to_string(&st)?.as_bytes())?;
    // Files of earlier epochs are no longer referenced.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if !keep.contains(&p) && p.extension().is_some_and(|x| x == "safetensors") {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// The saved state of an interrupted run with this configuration, loaded into the members;
/// `None` when there is none (or it belongs to another configuration: the run starts over).
///
/// A state saved on other labels ([`labels_key`]) is refused: the labels file was edited
/// between the interruption and the resume.
pub fn load(out: &Path, config: &str, labels: &str, members: &mut [MemberRef]) -> Result<Option<State>> {
    let path = out.join(DIR).join(STATE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let st: State =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if st.config != config {
        tracing::warn!(
            "{}: saved by a run with another configuration; starting over",
            path.display()
        );
        return Ok(None);
    }
    if !st.labels.is_empty() && st.labels != labels {
        anyhow::bail!(
            "{}: the interrupted run was trained on other labels than those read now (labels {} then, {} now: the labels file was edited since); restore the labels, or start the run afresh with --overwrite",
            out.display(),
            st.labels,
            labels
        );
    }
    for (k, m) in members.iter_mut().enumerate() {
        let (model, optim) = files(out, m.name, st.epochs_done);
        weights::load_safetensors(m.vs, &model, crate::model::stored::stored_in_run(m.with_backbone))?;
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(&optim)
            .with_context(|| format!("reading {}", optim.display()))?
            .into_iter()
            .collect();
        let step = st.opt_steps.get(k).copied().unwrap_or(0);
        m.opt.load_state(&saved, step)?;
    }
    Ok(Some(st))
}

/// Removes the resume state (the run finished).
pub fn clear(out: &Path) {
    let _ = std::fs::remove_dir_all(out.join(DIR));
}
