//! Resuming an interrupted training run exactly where it stopped.
//!
//! After every epoch the trainer writes, in `RUN/resume/`: the model's variables and the
//! optimiser's buffers of that epoch (`model-E.safetensors`, `optimizer-E.safetensors`), then
//! `state.json` (atomically; it names epoch E, so it is the commit point), then removes the files
//! of earlier epochs. A later `train` into the same directory with the same configuration loads
//! them and goes on with epoch E+1: same weights, optimiser moments, batch order (the shuffling
//! generator's position), libtorch seed (reseeded per epoch) and log (truncated to the end of
//! epoch E). A finished run removes `resume/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use normiqa_core::metrics::Metrics;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::checkpoint::{self, HeadMetrics};
use super::trainer::Opt;
use crate::model::weights;

pub const DIR: &str = "resume";
const STATE: &str = "state.json";

/// Metrics with NaN written as null (JSON has no NaN).
#[derive(Serialize, Deserialize, Clone, Copy)]
struct M {
    srocc: Option<f64>,
    krocc: Option<f64>,
    plcc: Option<f64>,
    rmse: Option<f64>,
    n: usize,
}

fn enc(m: &HeadMetrics) -> Vec<M> {
    let f = |x: f64| x.is_finite().then_some(x);
    m.iter()
        .map(|m| M {
            srocc: f(m.srocc),
            krocc: f(m.krocc),
            plcc: f(m.plcc),
            rmse: f(m.rmse),
            n: m.n,
        })
        .collect()
}

fn dec(v: &[M]) -> Option<HeadMetrics> {
    let f = |x: Option<f64>| x.unwrap_or(f64::NAN);
    let ms: Vec<Metrics> = v
        .iter()
        .map(|m| Metrics {
            srocc: f(m.srocc),
            krocc: f(m.krocc),
            plcc: f(m.plcc),
            rmse: f(m.rmse),
            n: m.n,
        })
        .collect();
    ms.try_into().ok()
}

/// Everything besides tensors that the epoch loop carries from one epoch to the next.
#[derive(Serialize, Deserialize)]
pub struct State {
    /// The run's configuration (TOML): a resume needs the very same one.
    config: String,
    pub epochs_done: usize,
    pub best: Option<(f64, usize)>,
    best_val: Option<Vec<M>>,
    pub global_iter: usize,
    /// Length of log.jsonl at the end of the epoch.
    pub log_bytes: u64,
    /// The training order after the epoch's in-place shuffle.
    pub order: Vec<usize>,
    /// Word positions of the batch-order and augmentation generators (u128 as text).
    rng_pos: String,
    aug_pos: String,
    pub opt_step: i64,
    /// Training seconds so far.
    pub train_s: f64,
    /// Batches with all-equal MOS so far (`constant_mos.rs`).
    #[serde(default)]
    pub constant_mos_batches: usize,
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: String,
        epochs_done: usize,
        best: Option<(f64, usize)>,
        best_val: Option<&HeadMetrics>,
        global_iter: usize,
        log_bytes: u64,
        order: &[usize],
        rng_pos: u128,
        aug_pos: u128,
        train_s: f64,
        constant_mos_batches: usize,
    ) -> Self {
        State {
            config,
            epochs_done,
            best,
            best_val: best_val.map(enc),
            global_iter,
            log_bytes,
            order: order.to_vec(),
            rng_pos: rng_pos.to_string(),
            aug_pos: aug_pos.to_string(),
            opt_step: 0,
            train_s,
            constant_mos_batches,
        }
    }
    pub fn best_val(&self) -> Option<HeadMetrics> {
        self.best_val.as_deref().and_then(dec)
    }
    pub fn rng_pos(&self) -> Result<(u128, u128)> {
        Ok((
            self.rng_pos.parse().context("resume state: rng_pos")?,
            self.aug_pos.parse().context("resume state: aug_pos")?,
        ))
    }
}

fn files(out: &Path, epoch: usize) -> (PathBuf, PathBuf) {
    let d = out.join(DIR);
    (
        d.join(format!("model-{epoch}.safetensors")),
        d.join(format!("optimizer-{epoch}.safetensors")),
    )
}

/// Saves the end-of-epoch state (see the module doc); `with_backbone` as the checkpoint's.
pub fn save(
    out: &Path,
    vs: &nn::VarStore,
    opt: &Opt,
    mut st: State,
    with_backbone: bool,
) -> Result<()> {
    let dir = out.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (model, optim) = files(out, st.epochs_done);
    weights::save_safetensors(vs, &model, checkpoint::stored_in_run(with_backbone))?;
    let (tensors, step) = opt.state();
    st.opt_step = step;
    let named: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu)))
        .collect();
    crate::atomic::write_via_path(&optim, |tmp| Tensor::write_safetensors(&named, tmp))?;
    checkpoint::write_atomic(&dir.join(STATE), serde_json::to_string(&st)?.as_bytes())?;
    // Files of earlier epochs are no longer referenced.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p != model && p != optim && p.extension().is_some_and(|x| x == "safetensors") {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// The saved state of an interrupted run with this configuration, loaded into `vs` and `opt`;
/// `None` when there is none (or it belongs to another configuration: the run starts over).
pub fn load(
    out: &Path,
    config: &str,
    vs: &nn::VarStore,
    opt: &mut Opt,
    with_backbone: bool,
) -> Result<Option<State>> {
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
    let (model, optim) = files(out, st.epochs_done);
    weights::load_safetensors(vs, &model, checkpoint::stored_in_run(with_backbone))?;
    let saved: HashMap<String, Tensor> = Tensor::read_safetensors(&optim)
        .with_context(|| format!("reading {}", optim.display()))?
        .into_iter()
        .collect();
    opt.load_state(&saved, st.opt_step)?;
    Ok(Some(st))
}

/// Removes the resume state (the run finished).
pub fn clear(out: &Path) {
    let _ = std::fs::remove_dir_all(out.join(DIR));
}
