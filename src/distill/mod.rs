//! `normiqa distill`: Multi-Rate Knowledge Distillation (issue 5). [`mrkd`] trains one pair of
//! models; this module runs the experiment of the paper — baseline (λ = 0: each model alone),
//! URKD (both models at one rate) and MRKD (large-rate teacher, small-rate student) over several
//! seeds — and writes `results.json`, `results.md` and the plots (drawn by
//! [`crate::report::mrkd`], which shares the report's statistics).

pub mod mrkd;
pub mod pair;

pub use crate::report::mrkd::markdown;
pub use crate::report::mrkd_plots as plot;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use normiqa_core::metrics::paired_t_test;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::run_folder::{RunFolder, Start};

pub use mrkd::{
    distill_term, pair_loss, train_pair, Arch, Direction, DistillConfig, LrUnit, Member,
    MemberConfig, PairResult, PlainIqa,
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

pub use crate::report::stats::MeanStd;

/// Which epoch's metrics a row reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The last epoch (what the paper reports).
    Final,
    /// The epoch with the best validation SRCC of that model (needs a validation set).
    BestVal,
    /// The epoch with the best *test* SRCC: optimistic, only for comparison with papers that
    /// report it.
    OracleBestTest,
}

impl Selection {
    pub const ALL: [Selection; 3] = [
        Selection::Final,
        Selection::BestVal,
        Selection::OracleBestTest,
    ];
    pub fn label(&self) -> &'static str {
        match self {
            Selection::Final => "final epoch",
            Selection::BestVal => "best-val epoch",
            Selection::OracleBestTest => "oracle best-test epoch (optimistic)",
        }
    }
    fn pick<'a>(&self, m: &'a mrkd::ModelResult) -> Option<&'a mrkd::Snapshot> {
        match self {
            Selection::Final => Some(&m.final_epoch),
            Selection::BestVal => m.best_val.as_ref(),
            Selection::OracleBestTest => Some(&m.oracle_best_test),
        }
    }
}

/// One row of the summary: a model of a variant at a selection, over seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    pub variant: Variant,
    /// 0 = teacher (large rate in MRKD), 1 = student.
    pub model: usize,
    pub label: String,
    pub lr: f64,
    pub selection: Selection,
    pub epochs: Vec<usize>,
    pub test_srcc: MeanStd,
    pub test_plcc: MeanStd,
    pub test_srcc_per_seed: Vec<f64>,
    /// The seed of each value of `test_srcc_per_seed` (empty in results files written before
    /// it was recorded).
    #[serde(default)]
    pub seeds: Vec<u64>,
    pub cross_srcc: Option<MeanStd>,
    pub cross_plcc: Option<MeanStd>,
    pub per_type_srcc: BTreeMap<String, MeanStd>,
    pub cross_per_type_srcc: BTreeMap<String, MeanStd>,
}

/// A paired t-test over seeds of final test SRCC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub mean_diff: f64,
    pub t: f64,
    pub p_two_sided: f64,
    pub n: usize,
}

/// The runs of one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantRuns {
    pub variant: Variant,
    pub config: DistillConfig,
    pub results: Vec<PairResult>,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentResults {
    pub experiment: Experiment,
    pub dataset: String,
    pub cross_dataset: Option<String>,
    pub summary: Vec<SummaryRow>,
    pub comparisons: Vec<Comparison>,
    /// Two hardest and two easiest distortion types by the baseline small-rate model's final
    /// test SRCC (empty without distortion types).
    pub hardest: Vec<String>,
    pub easiest: Vec<String>,
    pub seconds: f64,
    pub runs: Vec<VariantRuns>,
    /// Pairs that failed (an experiment with failures writes `results.md`, not `results.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedPair>,
}

impl ExperimentResults {
    pub fn row(&self, v: Variant, model: usize, sel: Selection) -> Option<&SummaryRow> {
        self.summary
            .iter()
            .find(|r| r.variant == v && r.model == model && r.selection == sel)
    }
}

/// Runs every variant for every seed and writes `out/results.json`, `out/results.md`, the plots
/// and each run's `log.jsonl` under `out/<variant>/seed-<s>/`.
///
/// `out` follows the run-folder rules ([`crate::run_folder`]): `None` when it already holds the
/// finished results of this experiment (nothing is done); an error when it holds another
/// experiment, unless `overwrite`. An unfinished experiment of this configuration goes on: its
/// finished pairs are kept (`pair.json`), an interrupted pair resumes after its last finished
/// epoch (the engine's resume state), the others run.
pub fn run_experiment(
    exp: &Experiment,
    out: &Path,
    overwrite: bool,
) -> Result<Option<ExperimentResults>> {
    exp.run.validate()?;
    anyhow::ensure!(!exp.seeds.is_empty(), "--seeds: give at least one seed");
    anyhow::ensure!(
        !exp.variants.is_empty(),
        "--variants: give at least one variant"
    );
    let t0 = std::time::Instant::now();
    // Run-folder rules (src/run_folder.rs): lock `out` for the whole experiment.
    let folder = RunFolder::open(out, &crate::run_folder::DISTILL, exp, overwrite)?;
    if folder.start() == Start::Finished {
        tracing::info!(
            "{}: this experiment already finished there; nothing to do",
            out.display()
        );
        return Ok(None);
    }
    crate::train::checkpoint::write_atomic(
        &out.join("config.toml"),
        toml::to_string_pretty(exp)?.as_bytes(),
    )?;
    let data = mrkd::prepare(&exp.run, exp.seeds[0])?;
    let (runs, failed) = train_variants(exp, &data, out)?;
    let mut res = summarise(exp, &data, runs, t0.elapsed().as_secs_f64());
    res.failed = failed;
    // results.md and the plots first: results.json marks the experiment finished.
    atomic::write(&out.join("results.md"), markdown(&res).as_bytes())?;
    if exp.plots {
        if let Err(e) = plot::all(&res, out) {
            tracing::warn!("plots not written: {}", crate::cli::error_text(&e));
        }
    }
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

/// A pair of an experiment that failed (e.g. its loss became non-finite).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedPair {
    pub variant: Variant,
    pub seed: u64,
    pub error: String,
}

/// Trains every variant for every seed into `out/<variant>/seed-<s>/`. A pair that fails is
/// recorded (`failed.txt` in its folder) and the others still run; a failure of the run folder
/// itself (another process, a full disk) stops the experiment.
fn train_variants(
    exp: &Experiment,
    data: &mrkd::Prepared,
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
                    let _ = std::fs::remove_file(dir.join(crate::run_folder::FAILED));
                    results.push(r)
                }
                Err(e) if e.downcast_ref::<crate::run_folder::RunFolderError>().is_some() => return Err(e),
                Err(e) => {
                    let error = crate::cli::error_text(&e);
                    tracing::error!("{} seed {seed} failed: {error}", v.name());
                    std::fs::create_dir_all(&dir)?;
                    atomic::write(&dir.join(crate::run_folder::FAILED), error.as_bytes())?;
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

fn summarise(
    exp: &Experiment,
    data: &mrkd::Prepared,
    runs: Vec<VariantRuns>,
    seconds: f64,
) -> ExperimentResults {
    let mut summary = Vec::new();
    for vr in runs.iter().filter(|vr| !vr.results.is_empty()) {
        for k in 0..2 {
            for sel in Selection::ALL {
                let snaps: Vec<&mrkd::Snapshot> = vr
                    .results
                    .iter()
                    .filter_map(|r| sel.pick(&r.models[k]))
                    .collect();
                if snaps.len() < vr.results.len() {
                    continue; // e.g. no validation set
                }
                let per_type = |f: &dyn Fn(&mrkd::Snapshot) -> &BTreeMap<String, f64>| {
                    let mut types: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                    for s in &snaps {
                        for (t, v) in f(s) {
                            types.entry(t.clone()).or_default().push(*v);
                        }
                    }
                    types
                        .into_iter()
                        .map(|(t, v)| (t, MeanStd::of(&v)))
                        .collect::<BTreeMap<_, _>>()
                };
                let cross = data.cross.is_some();
                summary.push(SummaryRow {
                    variant: vr.variant,
                    model: k,
                    label: vr.variant.label(k).into(),
                    lr: vr.config.member(k).lr,
                    selection: sel,
                    epochs: snaps.iter().map(|s| s.epoch).collect(),
                    test_srcc: MeanStd::of(
                        &snaps.iter().map(|s| s.eval.test.srocc).collect::<Vec<_>>(),
                    ),
                    test_plcc: MeanStd::of(
                        &snaps.iter().map(|s| s.eval.test.plcc).collect::<Vec<_>>(),
                    ),
                    test_srcc_per_seed: snaps.iter().map(|s| s.eval.test.srocc).collect(),
                    seeds: vr.results.iter().map(|r| r.seed).collect(),
                    cross_srcc: cross.then(|| {
                        MeanStd::of(
                            &snaps
                                .iter()
                                .map(|s| s.eval.cross.map_or(f64::NAN, |m| m.srocc))
                                .collect::<Vec<_>>(),
                        )
                    }),
                    cross_plcc: cross.then(|| {
                        MeanStd::of(
                            &snaps
                                .iter()
                                .map(|s| s.eval.cross.map_or(f64::NAN, |m| m.plcc))
                                .collect::<Vec<_>>(),
                        )
                    }),
                    per_type_srcc: per_type(&|s| &s.eval.test_per_type),
                    cross_per_type_srcc: per_type(&|s| &s.eval.cross_per_type),
                });
            }
        }
    }
    let mut res = ExperimentResults {
        experiment: exp.clone(),
        dataset: data.dataset.name.clone(),
        cross_dataset: data.cross.as_ref().map(|(d, _)| d.name.clone()),
        summary,
        comparisons: Vec::new(),
        hardest: Vec::new(),
        easiest: Vec::new(),
        seconds,
        runs,
        failed: Vec::new(),
    };
    // Paired t-tests of final test SRCC over seeds (same seed = same split and initialisation).
    let pairs = [
        ((Variant::Mrkd, 1), (Variant::Baseline, 1)),
        ((Variant::Urkd, 1), (Variant::Baseline, 1)),
        ((Variant::Mrkd, 1), (Variant::Urkd, 1)),
        ((Variant::Mrkd, 0), (Variant::Baseline, 0)),
        ((Variant::Mrkd, 1), (Variant::Baseline, 0)),
    ];
    for ((va, ka), (vb, kb)) in pairs {
        let (Some(a), Some(b)) = (
            res.row(va, ka, Selection::Final),
            res.row(vb, kb, Selection::Final),
        ) else {
            continue;
        };
        // Paired by seed: a variant whose pair failed for one seed has no value for it.
        let (xa, xb): (Vec<f64>, Vec<f64>) = a
            .seeds
            .iter()
            .zip(&a.test_srcc_per_seed)
            .filter_map(|(s, &x)| b.seeds.iter().position(|t| t == s).map(|j| (x, b.test_srcc_per_seed[j])))
            .unzip();
        if let Ok(t) = paired_t_test(&xa, &xb) {
            res.comparisons.push(Comparison {
                a: a.label.clone(),
                b: b.label.clone(),
                mean_diff: t.mean_diff,
                t: t.t,
                p_two_sided: t.p_two_sided,
                n: xa.len(),
            });
        }
    }
    if let Some(base) = res
        .row(Variant::Baseline, 1, Selection::Final)
        .or_else(|| res.row(res.experiment.variants[0], 1, Selection::Final))
    {
        let mut types: Vec<(String, f64)> = base
            .per_type_srcc
            .iter()
            .filter(|(_, m)| m.n > 0)
            .map(|(t, m)| (t.clone(), m.mean))
            .collect();
        types.sort_by(|a, b| a.1.total_cmp(&b.1));
        if types.len() >= 4 {
            res.hardest = types[..2].iter().map(|t| t.0.clone()).collect();
            res.easiest = types[types.len() - 2..]
                .iter()
                .rev()
                .map(|t| t.0.clone())
                .collect();
        }
    }
    res
}
