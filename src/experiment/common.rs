//! What both runners of `normiqa run` share (the train runner, [`super::runner`], and the
//! distillation runner, [`super::distill_runner`]): the options, the states of a combination's
//! folder and what is done about them, the failures, and the results tables written after each
//! run. Both import this module; neither imports the other's internals (the train runner hands
//! `distill` experiments to the distillation runner).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::spec::Experiment;
use crate::report::results::Results;
use crate::run::folder::{self, Found, RunFolderError};
use crate::run::info;

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

/// What a combination's folder `dir` holds, from what [`folder::inspect`] found there.
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
    layout: &folder::Layout,
    overwrite: bool,
) -> Result<bool> {
    match st {
        ComboState::Finished => {
            crate::outln!("{head}: finished, skipped")?;
            return Ok(false);
        }
        ComboState::Stale if !overwrite => return Err(folder::refusal(run_dir, layout, found).into()),
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
    if run_dir.join(folder::CONFIG).exists() {
        info::write_atomic(&run_dir.join(FAILED), msg.as_bytes())?;
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

/// Writes `results.csv` and `results.md` of the experiment directory.
pub fn write_results(exp: &Experiment, dir: &Path) -> Result<Results> {
    let r = Results::collect(&exp.results_spec()?, dir)?;
    info::write_atomic(
        &dir.join("results.csv"),
        crate::report::tables::results_csv(&r)?.as_bytes(),
    )?;
    info::write_atomic(
        &dir.join("results.md"),
        crate::report::tables::results_markdown(&r).as_bytes(),
    )?;
    Ok(r)
}
