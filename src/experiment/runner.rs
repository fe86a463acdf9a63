//! Runs an experiment's combinations in order into `<runs>/<experiment>/<combination>/`.
//!
//! Each combination's directory follows the run-folder rules of `train` ([`crate::run::folder`]):
//! - a finished run of the same configuration is skipped;
//! - an unfinished one (interrupted, or failed: `failed.txt`) is resumed after its last finished
//!   epoch (`train/resume.rs`), or run again from the start when it saved no epoch;
//! - a run of another configuration (the experiment file was edited), finished or not, or a
//!   folder of other files, stops the experiment with an error naming the differing options,
//!   unless `overwrite` (`--overwrite`), which replaces it;
//! - a run that fails (e.g. the loss diverges) leaves `failed.txt` and the next ones still run;
//!   the command then exits with an error. A folder locked by another process is not a failure
//!   of the run: the experiment stops with that error.
//!
//! The experiment directory itself is locked while `run` writes it. After each run
//! `results.csv` and `results.md` are rewritten (atomically), so partial results are visible.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use super::common::{
    write_results, ComboState, RunOptions, EXPERIMENT_TOML, FAILED,
};
use super::common::{announce, combo_state, finish, record_failure};
use super::spec::{Combo, Experiment, ProcedureKind};
use crate::run::folder::{self, Found, RunFolderError};
use crate::run::info;

/// The state of a combination's run directory, with what [`folder::inspect`] found.
pub fn state(combo: &Combo, dir: &Path) -> Result<(ComboState, Found), RunFolderError> {
    // (run folders store absolute paths; the experiment file's may be relative)
    let found = folder::inspect(dir, &folder::TRAIN, &combo.config.with_absolute_paths())?;
    Ok((combo_state(dir, &found), found))
}

/// Runs (or lists, with `dry_run`) the experiment. Returns the experiment directory.
pub fn run(exp: &Experiment, opts: &RunOptions) -> Result<PathBuf> {
    if exp.meta.procedure == ProcedureKind::Distill {
        return super::distill_runner::run(exp, opts);
    }
    let dir = exp.dir(&opts.runs_root);
    let mut combos = exp.combos()?;
    if let Some(dev) = &opts.device {
        for c in &mut combos {
            c.config.device = dev.clone();
        }
    }
    if let Some(only) = &opts.only {
        if let Some(bad) = only.iter().find(|&&i| i >= combos.len()) {
            bail!(
                "--only {bad}: the experiment has {} runs (0..{})",
                combos.len(),
                combos.len() - 1
            );
        }
    }
    let selected: Vec<&Combo> = combos
        .iter()
        .filter(|c| opts.only.as_ref().map_or(true, |o| o.contains(&c.index)))
        .collect();
    crate::outln!(
        "experiment {}: {} runs in {}",
        exp.name,
        combos.len(),
        dir.display()
    )?;
    if opts.dry_run {
        for c in &combos {
            let (st, _) = state(c, &dir.join(&c.name))?;
            let mark = if selected.iter().any(|s| s.index == c.index) {
                " "
            } else {
                "-"
            };
            crate::outln!("{mark}{:>4}  {:<12} {}", c.index, st.name(), c.name)?;
        }
        return Ok(dir);
    }
    // Run-folder rules for the experiment folder: one `run` at a time writes it.
    let _lock = folder::Lock::acquire(&dir)?;
    info::write_atomic(&dir.join(EXPERIMENT_TOML), exp.source.as_bytes())?;
    let mut failures = Vec::new();
    for c in selected {
        let run_dir = dir.join(&c.name);
        let head = format!("[{}/{}] {}", c.index, combos.len(), c.name);
        let (st, found) = state(c, &run_dir)?;
        if !announce(&head, (st, &found), &run_dir, &folder::TRAIN, opts.overwrite)? {
            continue;
        }
        // Only a run of another configuration is replaced; an unfinished one of this
        // configuration is resumed.
        let overwrite = st == ComboState::Stale;
        match crate::train::train_with(&c.config, &run_dir, overwrite) {
            Ok(o) => {
                let _ = std::fs::remove_file(run_dir.join(FAILED));
                if let Some(t) = o.info.test.as_ref().and_then(|t| t.last()) {
                    crate::outln!(
                        "    best epoch {}: test SROCC {:.4} PLCC {:.4}",
                        o.info.best_epoch, t.srocc, t.plcc
                    )?;
                }
            }
            Err(e) => record_failure(&run_dir, &c.name, e, &mut failures)?,
        }
        write_results(exp, &dir)?;
        crate::release_free_memory();
    }
    finish(exp, dir, &failures)
}
