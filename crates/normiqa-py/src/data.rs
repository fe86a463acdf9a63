//! Dataset loaders with the reference splits: a `[data]` table of a run's config.toml (as a
//! JSON object) → the samples and the train/val/test indices that `normiqa train` would use.

use normiqa::run::data::{load_dataset, split_dataset};
use normiqa::experiment::spec::parse_checked;
use normiqa::run::DataConfig;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{py_err, to_py};

/// The data configuration of a JSON object, refusing unknown keys (as experiment files do) and
/// bad ratios.
pub fn data_config(json: &str) -> PyResult<DataConfig> {
    let table: toml::Table = serde_json::from_str(json).map_err(|e| py_err(format!("data config: {e}")))?;
    let cfg: DataConfig = parse_checked(table).map_err(|e| py_err(format!("data config: {}", normiqa::cli::error_text(&e))))?;
    if !cfg.ratios_valid() {
        return Err(py_err(format!(
            "data config: train_ratio {} and train_val_ratio {}: expected 0 < train_ratio <= train_val_ratio <= 1",
            cfg.train_ratio, cfg.train_val_ratio
        )));
    }
    Ok(cfg)
}

/// Loads and splits the dataset of `config` (JSON of a `[data]` table); `seed` seeds the random
/// splits as the run's `seed` does. Returns a dict: name, higher_is_better, names, paths, mos,
/// train, val, test (index lists).
#[pyfunction]
fn load_data<'py>(py: Python<'py>, config: &str, seed: u64) -> PyResult<Bound<'py, PyDict>> {
    let cfg = data_config(config)?;
    let (dataset, split) = py
        .detach(|| -> anyhow::Result<_> {
            let ds = load_dataset(&cfg.dataset, &cfg.loading)?;
            let split = split_dataset(&cfg, &ds, seed)?;
            Ok((ds, split))
        })
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("name", &dataset.name)?;
    d.set_item("higher_is_better", dataset.higher_is_better)?;
    let names: Vec<&str> = dataset.samples.iter().map(|s| s.name.as_str()).collect();
    let paths: Vec<String> = dataset.samples.iter().map(|s| s.path.display().to_string()).collect();
    d.set_item("names", names)?;
    d.set_item("paths", paths)?;
    d.set_item("mos", dataset.mos())?;
    d.set_item("train", &split.train)?;
    d.set_item("val", &split.val)?;
    d.set_item("test", &split.test)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_data, m)?)?;
    m.add("DEFAULT_SEED", normiqa::run::config::defaults::SEED)?;
    Ok(())
}
