//! `normiqa run` for experiments whose runs are MRKD pairs (`procedure = "distill"`): each
//! combination is one pair run (`train_pair`) into `<experiment>/<combination>/`, whose
//! `teacher/` and `student/` folders are run folders; the results table lists both members of
//! every pair, so sweeps over rates, λ and seeds give the MRKD tables (e.g.
//! `experiments/mrkd/lr-ablation.toml`, the paper's Table 7). The skip / resume / failure rules
//! are the train runner's: a finished pair is skipped, an interrupted one resumes after its last
//! finished epoch.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::runner::{write_results, ComboState, RunOptions, EXPERIMENT_TOML, FAILED};
use super::spec::{DistillCombo, DistillRun, Experiment};
use crate::distill::mrkd;
use crate::train::checkpoint;

/// The state of a pair's folder: finished when both members' `run.json` exist and its
/// `config.toml` is this combination's.
fn state(combo: &DistillCombo, dir: &Path) -> ComboState {
    let finished = ["teacher", "student"]
        .iter()
        .all(|m| dir.join(m).join(checkpoint::RUN_JSON).exists());
    if finished {
        let saved = std::fs::read_to_string(dir.join(checkpoint::CONFIG_TOML))
            .ok()
            .and_then(|s| toml::from_str::<DistillRun>(&s).ok());
        match saved {
            Some(mut s) => {
                s.run.device = combo.run.run.device.clone();
                if s == combo.run {
                    ComboState::Finished
                } else {
                    ComboState::Stale
                }
            }
            None => ComboState::Stale,
        }
    } else if dir.join(FAILED).exists() {
        ComboState::Failed
    } else if dir.exists() {
        ComboState::Interrupted
    } else {
        ComboState::Pending
    }
}

/// One pair run into `dir`.
fn run_pair(c: &DistillCombo, dir: &Path) -> Result<mrkd::PairResult> {
    std::fs::create_dir_all(dir)?;
    let text = toml::to_string_pretty(&c.run)?;
    checkpoint::write_atomic(&dir.join(checkpoint::CONFIG_TOML), text.as_bytes())?;
    for m in ["teacher", "student"] {
        let _ = std::fs::remove_file(dir.join(m).join(checkpoint::RUN_JSON));
    }
    let data = mrkd::prepare(&c.run.run, c.run.seed)?;
    mrkd::train_pair(&c.run.run, &data, c.run.seed, Some(dir), false)
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
    println!("experiment {}: {} pair runs in {}", exp.name, combos.len(), dir.display());
    if opts.dry_run {
        for c in &combos {
            let st = format!("{:?}", state(c, &dir.join(&c.name))).to_lowercase();
            let mark = if selected(c) { " " } else { "-" };
            println!("{mark}{:>4}  {st:<12} {}", c.index, c.name);
        }
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    checkpoint::write_atomic(&dir.join(EXPERIMENT_TOML), exp.source.as_bytes())?;
    let mut failures = Vec::new();
    for c in combos.iter().filter(|c| selected(c)) {
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
            _ => println!("[{}/{}] {}", c.index, combos.len(), c.name),
        }
        let _ = std::fs::remove_file(run_dir.join(FAILED));
        match run_pair(c, &run_dir) {
            Ok(r) => println!(
                "    final test SRCC teacher {:.4}, student {:.4}",
                r.models[0].final_epoch.eval.test.srocc, r.models[1].final_epoch.eval.test.srocc
            ),
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("    failed: {msg}");
                checkpoint::write_atomic(&run_dir.join(FAILED), msg.as_bytes())?;
                failures.push(c.name.clone());
            }
        }
        write_results(exp, &dir)?;
    }
    write_results(exp, &dir)?;
    println!("results: {}", dir.join("results.md").display());
    if !failures.is_empty() {
        bail!("{} run(s) failed (see failed.txt in each): {}", failures.len(), failures.join(", "));
    }
    Ok(dir)
}
