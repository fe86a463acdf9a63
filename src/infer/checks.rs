//! What a loaded model must satisfy before it scores anything: `run.json` agrees with the network
//! (one mapping per head, the same head names), every mapping is usable (finite, `k ≠ 0`), and
//! every tensor of the network is finite. A model that fails is refused at load, naming the file
//! and what is wrong, so a broken model never prints NaN scores with exit 0 (issue 26, items 4
//! and 10).

use std::path::Path;

use anyhow::{bail, Result};
use normiqa_core::metrics::LinearMap;
use tch::nn;

use crate::run::info::{RunInfo, RUN_JSON, WEIGHTS};

/// `run.json`'s heads and mappings against the network's heads `names` (the prediction last).
pub fn check_run_info(dir: &Path, info: &RunInfo, names: &[&str]) -> Result<()> {
    let file = dir.join(RUN_JSON);
    if info.mapping.len() != names.len() || info.heads.len() != names.len() {
        bail!(
            "{}: {} mappings and {} head names for a model with {} heads ({}); the file does not belong to this model (retrain, or restore its run.json)",
            file.display(),
            info.mapping.len(),
            info.heads.len(),
            names.len(),
            names.join(", ")
        );
    }
    if info.heads.iter().zip(names).any(|(a, b)| a != b) {
        bail!(
            "{}: heads [{}] but the model's heads are [{}]",
            file.display(),
            info.heads.join(", "),
            names.join(", ")
        );
    }
    for (name, m) in names.iter().zip(&info.mapping) {
        check_mapping(&file, name, m)?;
    }
    Ok(())
}

/// A mapping k·ŷ+b maps outputs to scores: k and b finite and k ≠ 0 (k = 0 scores every image
/// alike). A negative k (outputs that fall as quality rises) is allowed with a warning.
fn check_mapping(file: &Path, head: &str, m: &LinearMap) -> Result<()> {
    if !m.k.is_finite() || !m.b.is_finite() || m.k == 0.0 {
        bail!(
            "{}: the mapping of head '{head}' is k = {}, b = {}; k must be a finite non-zero number and b finite (a broken or edited run.json)",
            file.display(),
            m.k,
            m.b
        );
    }
    if m.k < 0.0 {
        tracing::warn!(
            "{}: the mapping of head '{head}' has k = {} < 0: its raw outputs fall as quality rises",
            file.display(),
            m.k
        );
    }
    Ok(())
}

/// Every variable of `vs` (weights and BatchNorm statistics) is finite; the error names the
/// first few that are not.
pub fn check_finite(dir: &Path, vs: &nn::VarStore) -> Result<()> {
    let mut bad: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.isfinite().all().int64_value(&[]) == 0)
        .map(|(name, _)| name)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    let n = bad.len();
    bad.truncate(5);
    bail!(
        "{}: {n} tensor(s) hold NaN or infinite values ({}{}), read from {WEIGHTS} (backbone.* tensors: from the pretrained backbone file where the run does not hold them); the model cannot score (a diverged or corrupt run: retrain it)",
        dir.display(),
        bad.join(", "),
        if n > 5 { ", ..." } else { "" }
    )
}
