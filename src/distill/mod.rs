//! `normiqa distill`: Multi-Rate Knowledge Distillation (issue 5). [`mrkd`] trains one pair of
//! models; this module runs the experiment of the paper — baseline (λ = 0: each model alone),
//! URKD (both models at one rate) and MRKD (large-rate teacher, small-rate student) over several
//! seeds — and writes `results.json`; [`results`] holds its results as data (summary over seeds,
//! t-tests). The tables and plots are the report's (`crate::report::mrkd`, handed in by the
//! caller as a [`Report`]): distill renders nothing.

pub mod mrkd;
pub mod pair;
pub mod results;

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::run::folder::RunFolder;

pub use mrkd::{distill_term, pair_loss, Arch, Direction, DistillConfig, LrUnit, Member, MemberConfig, PairResult, PlainIqa};
pub use pair::{per_type_srcc, predict, prepare, train_pair, Inputs, Prepared};
pub use results::{
    summarise, Comparison, ExperimentResults, FailedPair, MeanStd, Selection, SummaryRow,
    VariantRuns,
};

/// The three settings of the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// λ = 0: the teacher (large rate) and the student (small rate) trained independently.
    Baseline,
    /// Both models at one rate (the student's unless `urkd_lr` is given), distilled.
    Urkd,
    /// Teacher at the large rate, student at the small rate, distilled.
    Mrkd,
}

impl Variant {
    pub fn name(&self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Urkd => "urkd",
            Variant::Mrkd => "mrkd",
        }
    }

    /// The pair configuration of this variant derived from the MRKD configuration.
    pub fn config(&self, base: &DistillConfig, urkd_lr: Option<f64>) -> DistillConfig {
        let mut c = base.clone();
        match self {
            Variant::Baseline => c.lambda = 0.0,
            Variant::Urkd => {
                let lr = urkd_lr.unwrap_or(base.student.lr);
                c.teacher.lr = lr;
                c.student.lr = lr;
            }
            Variant::Mrkd => {}
        }
        c
    }

    /// What each model of the pair is in this variant, for tables.
    pub fn label(&self, k: usize) -> &'static str {
        match (self, k) {
            (Variant::Baseline, 0) => "large-lr model alone",
            (Variant::Baseline, _) => "small-lr model alone",
            (Variant::Urkd, 0) => "URKD model 1",
            (Variant::Urkd, _) => "URKD model 2",
            (Variant::Mrkd, 0) => "MRKD teacher",
            (Variant::Mrkd, _) => "MRKD student",
        }
    }
}

/// A variant name that is not one of [`Variant`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown variant '{0}' (baseline, urkd, mrkd)")]
pub struct UnknownVariant(pub String);

impl std::str::FromStr for Variant {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, UnknownVariant> {
        match s {
            "baseline" => Ok(Variant::Baseline),
            "urkd" => Ok(Variant::Urkd),
            "mrkd" => Ok(Variant::Mrkd),
            o => Err(UnknownVariant(o.to_string())),
        }
    }
}

/// A whole experiment (what `normiqa distill --config FILE.toml` reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// The MRKD pair; the other variants are derived from it.
    pub run: DistillConfig,
    #[serde(default = "all_variants")]
    pub variants: Vec<Variant>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Rate of both URKD models (default: the student's rate).
    #[serde(default)]
    pub urkd_lr: Option<f64>,
    #[serde(default)]
    pub save_weights: bool,
    #[serde(default = "yes")]
    pub plots: bool,
}

fn all_variants() -> Vec<Variant> {
    vec![Variant::Baseline, Variant::Urkd, Variant::Mrkd]
}
fn default_seeds() -> Vec<u64> {
    mrkd::defaults::SEEDS.to_vec()
}
fn yes() -> bool {
    true
}

/// What writes an experiment's report into its folder (`results.md` and, when the experiment
/// asks for them, the plots): `crate::report::mrkd::write`. [`run_experiment`] calls it once the
/// pairs are trained, before `results.json` marks the experiment finished (and when pairs
/// failed, before it fails).
pub type Report<'a> = &'a dyn Fn(&ExperimentResults, &Path) -> Result<()>;

/// Runs every variant for every seed and writes `out/results.json`, the report (`report`:
/// `out/results.md`, the plots) and each run's `log.jsonl` under `out/<variant>/seed-<s>/`.
///
/// `out` follows the run-folder rules ([`crate::run::folder`]): `None` when it already holds the
/// finished results of this experiment (nothing is done); an error when it holds another
/// experiment, unless `overwrite`. An unfinished experiment of this configuration goes on: its
/// finished pairs are kept (`pair.json`), an interrupted pair resumes after its last finished
/// epoch (the engine's resume state), the others run.
pub fn run_experiment(
    exp: &Experiment,
    out: &Path,
    overwrite: bool,
    report: Report,
) -> Result<Option<ExperimentResults>> {
    exp.run.validate()?;
    anyhow::ensure!(!exp.seeds.is_empty(), "--seeds: give at least one seed");
    anyhow::ensure!(
        !exp.variants.is_empty(),
        "--variants: give at least one variant"
    );
    let t0 = std::time::Instant::now();
    // Run-folder rules (src/run/folder.rs): lock `out` for the whole experiment.
    let Some(folder) = RunFolder::begin(out, &crate::run::folder::DISTILL, exp, overwrite)? else {
        tracing::info!(
            "{}: this experiment already finished there; nothing to do",
            out.display()
        );
        return Ok(None);
    };
    let data = pair::prepare(&exp.run, exp.seeds[0])?;
    let (runs, failed) = train_variants(exp, &data, out)?;
    let cross = data.cross.as_ref().map(|(d, _)| d.name.clone());
    let mut res = summarise(exp, data.dataset.name.clone(), cross, runs, t0.elapsed().as_secs_f64());
    res.failed = failed;
    // The report first: results.json marks the experiment finished.
    report(&res, out)?;
    if !res.failed.is_empty() {
        // Not finished: a second run trains the failed pairs again (the others are kept).
        let list: Vec<String> = res.failed.iter().map(|f| format!("{} seed {}", f.variant.name(), f.seed)).collect();
        anyhow::bail!(
            "{} of the experiment's pairs failed ({}; see failed.txt in each pair's folder); {} holds the table of those that finished",
            res.failed.len(),
            list.join(", "),
            out.join("results.md").display()
        );
    }
    atomic::write(
        &out.join("results.json"),
        serde_json::to_string_pretty(&res)?.as_bytes(),
    )?;
    drop(folder);
    Ok(Some(res))
}

/// Trains every variant for every seed into `out/<variant>/seed-<s>/`. A pair that fails is
/// recorded (`failed.txt` in its folder) and the others still run; a failure of the run folder
/// itself (another process, a full disk) stops the experiment.
fn train_variants(
    exp: &Experiment,
    data: &pair::Prepared,
    out: &Path,
) -> Result<(Vec<VariantRuns>, Vec<FailedPair>)> {
    let (mut runs, mut failed) = (Vec::new(), Vec::new());
    for &v in &exp.variants {
        let cfg = v.config(&exp.run, exp.urkd_lr);
        let mut results = Vec::new();
        for &seed in &exp.seeds {
            tracing::info!(
                "{}: seed {seed} (teacher lr {}, student lr {}, λ {})",
                v.name(),
                cfg.teacher.lr,
                cfg.student.lr,
                cfg.lambda
            );
            let dir = out.join(v.name()).join(format!("seed-{seed}"));
            match train_pair(&cfg, data, seed, Some(&dir), exp.save_weights) {
                Ok(r) => {
                    let _ = std::fs::remove_file(dir.join(crate::run::folder::FAILED));
                    results.push(r)
                }
                Err(e) if e.downcast_ref::<crate::run::folder::RunFolderError>().is_some() => return Err(e),
                Err(e) => {
                    let error = crate::cli::error_text(&e);
                    tracing::error!("{} seed {seed} failed: {error}", v.name());
                    std::fs::create_dir_all(&dir)?;
                    atomic::write(&dir.join(crate::run::folder::FAILED), error.as_bytes())?;
                    failed.push(FailedPair { variant: v, seed, error });
                }
            }
        }
        runs.push(VariantRuns {
            variant: v,
            config: cfg,
            results,
        });
    }
    Ok((runs, failed))
}
