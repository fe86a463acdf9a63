//! Training from Python: `train`, `distill` and `run` configurations, given as TOML text (a
//! file's contents) or a JSON object (a Python dict), run by the same functions as
//! `normiqa train --config`, `normiqa distill --config` and `normiqa run`. The GIL is released
//! for the whole run; log lines reach the caller through [`crate::log`].

use std::path::PathBuf;

use normiqa::experiment::spec::parse_checked;
use normiqa::experiment::{self, RunOptions};
use normiqa::run::TrainConfig;
use pyo3::prelude::*;

use crate::{py_err, to_py};

/// TOML text of a configuration: `text` itself, or the JSON object `text` converted (keys kept
/// in their order; `null` values are refused: TOML has none, leave the key out instead).
fn toml_text(text: &str, is_json: bool) -> PyResult<String> {
    if !is_json {
        return Ok(text.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| py_err(format!("config: {e}")))?;
    let t: toml::Value = serde_json::from_value(v)
        .map_err(|e| py_err(format!("config: {e} (TOML has no null: leave such keys out)")))?;
    if !t.is_table() {
        return Err(py_err("config: expected a dict (a TOML table)"));
    }
    toml::to_string(&t).map_err(|e| py_err(format!("config: {e}")))
}

/// Trains the configuration (a run's config.toml) into `out`, as `normiqa train --config`:
/// refuses a folder of another configuration unless `overwrite`, resumes an unfinished run,
/// leaves a finished one. Returns (run folder, already finished before).
#[pyfunction]
#[pyo3(signature = (config, is_json, out, overwrite=false, device=None))]
fn train(
    py: Python<'_>,
    config: &str,
    is_json: bool,
    out: PathBuf,
    overwrite: bool,
    device: Option<String>,
) -> PyResult<(PathBuf, bool)> {
    let text = toml_text(config, is_json)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| py_err(format!("config: {e}")))?;
    // Unknown keys are refused (as in experiment files): a misspelt key would otherwise train
    // with the default silently.
    let mut cfg: TrainConfig = parse_checked(table).map_err(|e| py_err(format!("config: {}", normiqa::cli::error_text(&e))))?;
    if let Some(d) = device {
        cfg.device = d;
    }
    let outcome = py
        .detach(|| normiqa::train::train_with(&cfg, &out, overwrite))
        .map_err(to_py)?;
    let finished = outcome.start == normiqa::run::folder::Start::Finished;
    Ok((outcome.dir, finished))
}

/// Runs an MRKD experiment (what `normiqa distill --config` reads) into `out`; returns whether
/// it had finished before (then nothing ran). Results: `out/results.json`.
#[pyfunction]
#[pyo3(signature = (config, is_json, out, overwrite=false))]
fn distill(py: Python<'_>, config: &str, is_json: bool, out: PathBuf, overwrite: bool) -> PyResult<bool> {
    let text = toml_text(config, is_json)?;
    let exp: normiqa::distill::Experiment =
        toml::from_str(&text).map_err(|e| py_err(format!("config: {e}")))?;
    let fresh = py
        .detach(|| normiqa::distill::run_experiment(&exp, &out, overwrite, &normiqa::report::mrkd::write))
        .map_err(to_py)?;
    Ok(fresh.is_none())
}

/// Runs an experiment file's runs (a base config plus sweeps, as `normiqa run`) under
/// `out/<experiment name>/`; returns that folder.
#[pyfunction]
#[pyo3(signature = (config, is_json, name, out, only=None, device=None, overwrite=false))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    config: &str,
    is_json: bool,
    name: &str,
    out: PathBuf,
    only: Option<Vec<usize>>,
    device: Option<String>,
    overwrite: bool,
) -> PyResult<PathBuf> {
    let text = toml_text(config, is_json)?;
    let exp = experiment::Experiment::parse(&text, name).map_err(to_py)?;
    let opts = RunOptions {
        runs_root: out,
        dry_run: false,
        only,
        device,
        overwrite,
    };
    py.detach(|| experiment::run(&exp, &opts)).map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(distill, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    Ok(())
}
