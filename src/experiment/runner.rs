//! Runs an experiment's combinations in order into `<runs>/<experiment>/<combination>/`.
//!
//! Each combination's directory follows the run-folder rules of `train` ([`crate::run_folder`]):
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

use super::spec::{Combo, Experiment, ProcedureKind};
use crate::report::results::Results;
use crate::run_folder::{self, Found, RunFolderError};
use crate::train::checkpoint;

pub use crate::report::results::FAILED;
/// The copy of the experiment file in the experiment directory.
pub const EXPERIMENT_TOML: &str = "experiment.toml";

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Parent of the experiment directory (default `runs`).
    pub runs_root: PathBuf,
    /// List what would run, run nothing.
    pub dry_run: bool,
    /// Run only these combination indices.
    pub only: Option<Vec<usize>>,
    /// Overrides every run's `device`.
    pub device: Option<String>,
    /// Replace the folders of runs of another configuration (finished runs of the same
    /// configuration are still skipped).
    pub overwrite: bool,
}

/// What a combination's directory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComboState {
    Pending,
    Interrupted,
    Failed,
    Finished,
    /// Holds a run of another configuration (or files that are no run of this kind).
    Stale,
}

impl ComboState {
    pub fn name(&self) -> &'static str {
        match self {
            ComboState::Pending => "pending",
            ComboState::Interrupted => "interrupted",
            ComboState::Failed => "failed",
            ComboState::Finished => "finished",
            ComboState::Stale => "stale",
        }
    }
}

/// The state of a combination's run directory, with what [`run_folder::inspect`] found.
pub fn state(combo: &Combo, dir: &Path) -> Result<(ComboState, Found), RunFolderError> {
    // (run folders store absolute paths; the experiment file's may be relative)
    let found = run_folder::inspect(dir, &run_folder::TRAIN, &combo.config.with_absolute_paths())?;
    Ok((combo_state(dir, &found), found))
}

/// What a combination's folder `dir` holds, from what [`run_folder::inspect`] found there.
pub(super) fn combo_state(dir: &Path, found: &Found) -> ComboState {
    match found {
        Found::Empty => ComboState::Pending,
        Found::Same { finished: true } => ComboState::Finished,
        Found::Same { finished: false } if dir.join(FAILED).exists() => ComboState::Failed,
        Found::Same { finished: false } => ComboState::Interrupted,
        // A run of another configuration that never started is replaced like an empty folder.
        Found::Other { started: false, .. } => ComboState::Pending,
        Found::Other { .. } | Found::NotARun { .. } => ComboState::Stale,
    }
}

/// Prints what happens to a combination (`head`: its "[i/n] name"); whether to run it (false:
/// finished, skipped). A folder of another configuration is refused unless `overwrite`.
pub(super) fn announce(
    head: &str,
    (st, found): (ComboState, &Found),
    run_dir: &Path,
    layout: &run_folder::Layout,
    overwrite: bool,
) -> Result<bool> {
    match st {
        ComboState::Finished => {
            crate::outln!("{head}: finished, skipped")?;
            return Ok(false);
        }
        ComboState::Stale if !overwrite => return Err(run_folder::refusal(run_dir, layout, found).into()),
        ComboState::Stale => crate::outln!("{head}: another configuration there, replaced (--overwrite)")?,
        ComboState::Interrupted | ComboState::Failed => crate::outln!("{head}: incomplete, resuming after its last finished epoch (from the start if none)")?,
        ComboState::Pending => crate::outln!("{head}")?,
    }
    Ok(true)
}

/// A combination's run failed with `e`: the error of the folder itself (another process holds
/// it, or it changed under us) stops the experiment; any other is printed, kept in `failed.txt`
/// and added to `failures`.
pub(super) fn record_failure(
    run_dir: &Path,
    name: &str,
    e: anyhow::Error,
    failures: &mut Vec<String>,
) -> Result<()> {
    if e.downcast_ref::<RunFolderError>().is_some() {
        return Err(e);
    }
    let msg = crate::cli::error_text(&e);
    eprintln!("    failed: {msg}");
    // Only beside the run's config.toml: a note alone would make the folder look like no run
    // at all (a failure before the run started is printed only).
    if run_dir.join(run_folder::CONFIG).exists() {
        checkpoint::write_atomic(&run_dir.join(FAILED), msg.as_bytes())?;
    }
    failures.push(name.to_string());
    Ok(())
}

/// Writes the experiment's results; an error naming the failed runs, if any.
pub(super) fn finish(exp: &Experiment, dir: PathBuf, failures: &[String]) -> Result<PathBuf> {
    write_results(exp, &dir)?;
    crate::outln!("results: {}", dir.join("results.md").display())?;
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed (see failed.txt in each): {}",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(dir)
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
    let _lock = run_folder::Lock::acquire(&dir)?;
    checkpoint::write_atomic(&dir.join(EXPERIMENT_TOML), exp.source.as_bytes())?;
    let mut failures = Vec::new();
    for c in selected {
        let run_dir = dir.join(&c.name);
        let head = format!("[{}/{}] {}", c.index, combos.len(), c.name);
        let (st, found) = state(c, &run_dir)?;
        if !announce(&head, (st, &found), &run_dir, &run_folder::TRAIN, opts.overwrite)? {
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
    }
    finish(exp, dir, &failures)
}

/// Writes `results.csv` and `results.md` of the experiment directory.
pub fn write_results(exp: &Experiment, dir: &Path) -> Result<Results> {
    let r = Results::collect(&exp.results_spec()?, dir)?;
    checkpoint::write_atomic(
        &dir.join("results.csv"),
        crate::report::tables::results_csv(&r)?.as_bytes(),
    )?;
    checkpoint::write_atomic(
        &dir.join("results.md"),
        crate::report::tables::results_markdown(&r).as_bytes(),
    )?;
    Ok(r)
}
