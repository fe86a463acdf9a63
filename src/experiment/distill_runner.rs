//! `normiqa run` for experiments whose runs are MRKD pairs (`procedure = "distill"`): each
//! combination is one pair run (`train_pair`) into `<experiment>/<combination>/`, whose
//! `teacher/` and `student/` folders are run folders; the results table lists both members of
//! every pair, so sweeps over rates, λ and seeds give the MRKD tables (e.g.
//! `experiments/mrkd-lr-ablation.toml`, the paper's Table 7). The run-folder rules
//! ([`crate::run::folder::PAIR`]) and the skip / resume / failure rules are the train runner's: a
//! finished pair is skipped, an interrupted one resumes after its last finished epoch, a folder
//! of another configuration is refused unless `--overwrite`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::common::{
    announce, combo_state, finish, record_failure, write_results, ComboState, RunOptions,
    EXPERIMENT_TOML, FAILED,
};
use super::spec::{DistillCombo, Experiment};
use crate::distill::{mrkd, pair};
use crate::run::folder::{self, Found, RunFolder, RunFolderError};
use crate::run::info;

/// The state of a pair's folder under the run-folder rules ([`folder::PAIR`]), with what
/// [`folder::inspect`] found.
fn state(combo: &DistillCombo, dir: &Path) -> Result<(ComboState, Found), RunFolderError> {
    let found = folder::inspect(dir, &folder::PAIR, &combo.run)?;
    Ok((combo_state(dir, &found), found))
}

/// One pair run into `dir` (locked while it runs; resumed when interrupted).
fn run_pair(c: &DistillCombo, dir: &Path, overwrite: bool) -> Result<mrkd::PairResult> {
    let folder = RunFolder::open(dir, &folder::PAIR, &c.run, overwrite)?;
    let text = toml::to_string_pretty(&c.run)?;
    info::write_atomic(&dir.join(folder::CONFIG), text.as_bytes())?;
    let data = pair::prepare(&c.run.run, c.run.seed)?;
    let result = pair::train_pair(&c.run.run, &data, c.run.seed, Some(dir), false)?;
    drop(folder);
    Ok(result)
}

/// Runs (or lists) a `distill` experiment. Returns the experiment directory.
pub fn run(exp: &Experiment, opts: &RunOptions) -> Result<PathBuf> {
    let dir = exp.dir(&opts.runs_root);
    let mut combos = exp.distill_combos()?;
    if let Some(dev) = &opts.device {
        for c in &mut combos {
            c.run.run.device = dev.clone();
        }
    }
    if let Some(bad) = opts.only.iter().flatten().find(|&&i| i >= combos.len()) {
        bail!("--only {bad}: the experiment has {} runs (0..{})", combos.len(), combos.len() - 1);
    }
    let selected = |c: &DistillCombo| opts.only.as_ref().map_or(true, |o| o.contains(&c.index));
    crate::outln!("experiment {}: {} pair runs in {}", exp.name, combos.len(), dir.display())?;
    if opts.dry_run {
        for c in &combos {
            let (st, _) = state(c, &dir.join(&c.name))?;
            let mark = if selected(c) { " " } else { "-" };
            crate::outln!("{mark}{:>4}  {:<12} {}", c.index, st.name(), c.name)?;
        }
        return Ok(dir);
    }
    // Run-folder rules for the experiment folder: one `run` at a time writes it.
    let _lock = folder::Lock::acquire(&dir)?;
    info::write_atomic(&dir.join(EXPERIMENT_TOML), exp.source.as_bytes())?;
    let mut failures = Vec::new();
    for c in combos.iter().filter(|c| selected(c)) {
        let run_dir = dir.join(&c.name);
        let head = format!("[{}/{}] {}", c.index, combos.len(), c.name);
        let (st, found) = state(c, &run_dir)?;
        if !announce(&head, (st, &found), &run_dir, &folder::PAIR, opts.overwrite)? {
            continue;
        }
        match run_pair(c, &run_dir, st == ComboState::Stale) {
            Ok(r) => {
                let _ = std::fs::remove_file(run_dir.join(FAILED));
                crate::outln!(
                    "    final test SRCC teacher {:.4}, student {:.4}",
                    r.models[0].final_epoch.eval.test.srocc, r.models[1].final_epoch.eval.test.srocc
                )?
            }
            Err(e) => record_failure(&run_dir, &c.name, e, &mut failures)?,
        }
        write_results(exp, &dir)?;
        crate::release_free_memory();
    }
    finish(exp, dir, &failures)
}
