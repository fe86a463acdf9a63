//! Runs an experiment's combinations in order into `<runs>/<experiment>/<combination>/`.
//!
//! - A combination whose directory has a readable `run.json` with the same configuration is
//!   finished and skipped.
//! - One with a directory but no `run.json` was interrupted (or failed): the trainer resumes it
//!   after its last finished epoch (`train/resume.rs`), or runs it again from
//!   the start (the trainer truncates its log; its checkpoint is overwritten epoch by epoch).
//! - A finished run whose configuration differs from the file's (the experiment was edited) is an
//!   error unless `force`, which runs it again.
//! - A run that fails (e.g. the loss diverges) leaves `failed.txt` and the next ones still run;
//!   the command then exits with an error.
//!
//! After each run `results.csv` and `results.md` are rewritten, so partial results are visible.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::results::Results;
use super::spec::{Combo, Experiment};
use crate::train::{checkpoint, TrainConfig};

/// Written into a run directory when its run failed; removed when it is run again.
pub const FAILED: &str = "failed.txt";
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
    /// Re-run finished runs whose configuration changed.
    pub force: bool,
}

/// What a combination's directory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComboState {
    Pending,
    Interrupted,
    Failed,
    Finished,
    /// Finished with another configuration.
    Stale,
}

fn same_config(a: &TrainConfig, b: &TrainConfig) -> bool {
    // (run folders store absolute paths; the experiment file's may be relative)
    let mut b = b.with_absolute_paths();
    b.device = a.device.clone();
    *a == b
}

/// The state of a combination's run directory.
pub fn state(combo: &Combo, dir: &Path) -> ComboState {
    if dir.join(checkpoint::RUN_JSON).exists() {
        match checkpoint::RunInfo::load(dir) {
            Ok(info) if same_config(&info.config, &combo.config) => ComboState::Finished,
            Ok(_) => ComboState::Stale,
            // Unreadable run.json (NaN metrics are written as null): compare config.toml.
            Err(_) => match std::fs::read_to_string(dir.join(checkpoint::CONFIG_TOML))
                .ok()
                .and_then(|s| toml::from_str::<TrainConfig>(&s).ok())
            {
                Some(c) if same_config(&c, &combo.config) => ComboState::Finished,
                _ => ComboState::Stale,
            },
        }
    } else if dir.join(FAILED).exists() {
        ComboState::Failed
    } else if dir.exists() {
        ComboState::Interrupted
    } else {
        ComboState::Pending
    }
}

/// Runs (or lists, with `dry_run`) the experiment. Returns the experiment directory.
pub fn run(exp: &Experiment, opts: &RunOptions) -> Result<PathBuf> {
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
    println!(
        "experiment {}: {} runs in {}",
        exp.name,
        combos.len(),
        dir.display()
    );
    if opts.dry_run {
        for c in &combos {
            let st = state(c, &dir.join(&c.name));
            let mark = if selected.iter().any(|s| s.index == c.index) {
                " "
            } else {
                "-"
            };
            println!(
                "{mark}{:>4}  {:<12} {}",
                c.index,
                format!("{st:?}").to_lowercase(),
                c.name
            );
        }
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    checkpoint::write_atomic(&dir.join(EXPERIMENT_TOML), exp.source.as_bytes())?;
    let mut failures = Vec::new();
    for c in selected {
        let run_dir = dir.join(&c.name);
        match state(c, &run_dir) {
            ComboState::Finished => {
                println!("[{}/{}] {}: finished, skipped", c.index, combos.len(), c.name);
                continue;
            }
            ComboState::Stale if !opts.force => bail!(
                "{}: finished with another configuration (the experiment file changed); delete it or pass --force to run it again",
                run_dir.display()
            ),
            ComboState::Interrupted | ComboState::Failed => println!("[{}/{}] {}: incomplete, resuming after its last finished epoch (from the start if none)", c.index, combos.len(), c.name),
            _ => println!("[{}/{}] {}", c.index, combos.len(), c.name),
        }
        let _ = std::fs::remove_file(run_dir.join(FAILED));
        let _ = std::fs::remove_file(run_dir.join(checkpoint::RUN_JSON));
        match crate::train::train(&c.config, &run_dir) {
            Ok(o) => {
                if let Some(t) = &o.info.test {
                    println!(
                        "    best epoch {}: test SROCC {:.4} PLCC {:.4}",
                        o.info.best_epoch, t[2].srocc, t[2].plcc
                    );
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("    failed: {msg}");
                std::fs::create_dir_all(&run_dir)?;
                std::fs::write(run_dir.join(FAILED), &msg)?;
                failures.push(c.name.clone());
            }
        }
        write_results(exp, &dir)?;
    }
    write_results(exp, &dir)?;
    println!("results: {}", dir.join("results.md").display());
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
    let r = Results::collect(exp, dir)?;
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
