//! Ensembles: a model folder whose `ensemble.toml` lists trained models (run folders); an image's
//! score is the mean of their scores on the MOS scale (each member's k·ŷ+b of its prediction
//! head). [`super::trained::TrainedModel::load`] reads such a folder like a run folder, so
//! `predict`, `test` and `serve` take one with `--model`.
//!
//! ```toml
//! # models/clive-efficientnet-lite012/ensemble.toml
//! description = "frozen EfficientNet-Lite0, Lite1 and Lite2 heads, CLIVE exp 0 train + val"
//! members = ["../clive-efficientnet-lite0", "../clive-efficientnet-lite1", "../clive-efficientnet-lite2"]
//! ```
//!
//! Member paths are relative to the folder that holds `ensemble.toml`. The members must have
//! been trained on the same data, split and seed ([`check_members`]): their scores are then on
//! one MOS scale, and `normiqa test` on the ensemble's own split scores images none of them
//! trained on. Averaging scores of different scales would be a wrong answer that looks right.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::run::info::RunInfo;

/// The file that makes a folder an ensemble.
pub const ENSEMBLE_TOML: &str = "ensemble.toml";

/// The name of an ensemble's one output (its score is already on the MOS scale).
pub const ENSEMBLE_HEADS: &[&str] = &["ensemble"];

/// `ensemble.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// What the ensemble is (for people; not read by normiqa).
    #[serde(default)]
    pub description: Option<String>,
    /// The members' run folders, relative to the ensemble's folder.
    pub members: Vec<PathBuf>,
}

/// Whether `dir` is an ensemble folder.
pub fn is_ensemble(dir: &Path) -> bool {
    dir.join(ENSEMBLE_TOML).is_file()
}

/// The member folders of the ensemble `dir`, resolved against it: at least two, each a run
/// folder (not itself an ensemble), none twice.
pub fn member_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let file = dir.join(ENSEMBLE_TOML);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let spec: EnsembleSpec = toml::from_str(&text).with_context(|| format!("{}: not an ensemble file", file.display()))?;
    if spec.members.len() < 2 {
        bail!("{}: members lists {} run folder(s); an ensemble needs at least two", file.display(), spec.members.len());
    }
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(spec.members.len());
    for m in &spec.members {
        let d = dir.join(m);
        if is_ensemble(&d) {
            bail!("{}: member {} is itself an ensemble; list its members instead", file.display(), m.display());
        }
        if !d.join(crate::run::info::RUN_JSON).is_file() {
            bail!("{}: member {} ({}) is not a finished run folder (no run.json)", file.display(), m.display(), d.display());
        }
        if dirs.iter().any(|e| same_folder(e, &d)) {
            bail!("{}: member {} is listed twice", file.display(), m.display());
        }
        dirs.push(d);
    }
    Ok(dirs)
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Refuses members trained on other data, another split or another seed than the first: their
/// scores would be on other MOS scales, or their test sets would differ. Names both members and
/// what differs.
pub fn check_members(dir: &Path, members: &[(PathBuf, &RunInfo)]) -> Result<()> {
    let Some((first_dir, first)) = members.first() else {
        return Ok(());
    };
    for (d, info) in &members[1..] {
        let (a, b) = (&first.config, &info.config);
        let what = if a.data.dataset != b.data.dataset {
            Some(format!("the data ({:?} vs {:?})", a.data.dataset, b.data.dataset))
        } else if (a.data.split, a.data.exp_id, a.data.train_ratio, a.data.train_val_ratio)
            != (b.data.split, b.data.exp_id, b.data.train_ratio, b.data.train_val_ratio)
        {
            Some(format!("the split (split {:?}, exp_id {}, ratios {}/{} vs split {:?}, exp_id {}, ratios {}/{})", a.data.split, a.data.exp_id, a.data.train_ratio, a.data.train_val_ratio, b.data.split, b.data.exp_id, b.data.train_ratio, b.data.train_val_ratio))
        } else if a.seed != b.seed {
            Some(format!("the seed ({} vs {})", a.seed, b.seed))
        } else {
            None
        };
        if let Some(what) = what {
            bail!(
                "{}: members {} and {} differ in {what}; an ensemble's members must share data, split and seed (their scores are averaged on one MOS scale)",
                dir.join(ENSEMBLE_TOML).display(),
                first_dir.display(),
                d.display()
            );
        }
    }
    Ok(())
}

/// What an ensemble presents as its run information: the first member's, with one head
/// ([`ENSEMBLE_HEADS`]) whose output is already on the MOS scale (the identity mapping), and no
/// metrics (the members' are their own, not the ensemble's).
pub fn ensemble_info(first: &RunInfo) -> RunInfo {
    let mut info = first.clone();
    info.heads = ENSEMBLE_HEADS.iter().map(|h| h.to_string()).collect();
    info.mapping = vec![normiqa_core::metrics::LinearMap::default()];
    info.val = None;
    info.test = None;
    info.train = None;
    info
}

/// The run information of a model folder without loading its weights: `run.json`, or for an
/// ensemble its members' checked and reduced by [`ensemble_info`].
pub fn load_info(dir: &Path) -> Result<RunInfo> {
    if !is_ensemble(dir) {
        return RunInfo::load(dir);
    }
    Ok(checked_members(dir)?.1)
}

/// The ensemble `dir`'s member folders ([`member_dirs`]) once their run information passed
/// [`check_members`], and the ensemble's run information ([`ensemble_info`]).
pub fn checked_members(dir: &Path) -> Result<(Vec<PathBuf>, RunInfo)> {
    let dirs = member_dirs(dir)?;
    let infos = dirs.iter().map(|d| RunInfo::load(d)).collect::<Result<Vec<_>>>()?;
    let pairs: Vec<(PathBuf, &RunInfo)> = dirs.iter().cloned().zip(&infos).collect();
    check_members(dir, &pairs)?;
    let info = ensemble_info(&infos[0]);
    Ok((dirs, info))
}

/// The files a model folder is read from, for refusing an output that would overwrite one: a run
/// folder's `run.json`, `config.toml` and `weights.safetensors`; an ensemble's `ensemble.toml`
/// and those of each member it lists.
pub fn model_files(dir: &Path) -> Vec<PathBuf> {
    use crate::run::info::{CONFIG_TOML, RUN_JSON, WEIGHTS};
    let run = |d: &Path| [RUN_JSON, CONFIG_TOML, WEIGHTS].map(|f| d.join(f));
    if !is_ensemble(dir) {
        return run(dir).to_vec();
    }
    let mut files = vec![dir.join(ENSEMBLE_TOML)];
    for m in member_dirs(dir).unwrap_or_default() {
        files.extend(run(&m));
    }
    files
}
