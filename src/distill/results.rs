//! The results of a distillation experiment, as data: the summary over seeds of each variant's
//! models (per selection of epoch), the paired t-tests between variants and the hardest and
//! easiest distortion types ([`summarise`]). The report (`crate::report::mrkd`) renders them;
//! this module renders nothing.

use std::collections::BTreeMap;

use normiqa_core::metrics::paired_t_test;
use serde::{Deserialize, Serialize};

use super::mrkd::{self, DistillConfig, PairResult};
use super::{Experiment, Variant};
pub use crate::metrics::MeanStd;

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

/// A pair of an experiment that failed (e.g. its loss became non-finite).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedPair {
    pub variant: Variant,
    pub seed: u64,
    pub error: String,
}

/// The experiment's results from its runs: the summary rows, the paired t-tests of
/// [`COMPARED`] and the hardest and easiest distortion types (`failed` is left empty).
/// `cross_dataset` names the cross-dataset test set, if any.
pub fn summarise(
    exp: &Experiment,
    dataset: String,
    cross_dataset: Option<String>,
    runs: Vec<VariantRuns>,
    seconds: f64,
) -> ExperimentResults {
    let summary = summary_rows(&runs, cross_dataset.is_some());
    let mut res = ExperimentResults {
        experiment: exp.clone(),
        dataset,
        cross_dataset,
        summary,
        comparisons: Vec::new(),
        hardest: Vec::new(),
        easiest: Vec::new(),
        seconds,
        runs,
        failed: Vec::new(),
    };
    res.comparisons = comparisons(&res);
    if let Some((hardest, easiest)) = hardest_and_easiest(&res) {
        res.hardest = hardest;
        res.easiest = easiest;
    }
    res
}

/// One row per variant with results, model (teacher, student) and selection whose snapshot
/// every seed has (no best-val rows without a validation set).
fn summary_rows(runs: &[VariantRuns], cross: bool) -> Vec<SummaryRow> {
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
                summary.push(summary_row(vr, k, sel, &snaps, cross));
            }
        }
    }
    summary
}

/// Model `k` of the variant `vr` at `sel`: mean ± std over the seeds' snapshots `snaps`.
fn summary_row(
    vr: &VariantRuns,
    k: usize,
    sel: Selection,
    snaps: &[&mrkd::Snapshot],
    cross: bool,
) -> SummaryRow {
    let over = |f: &dyn Fn(&mrkd::Snapshot) -> f64| MeanStd::of(&snaps.iter().map(|s| f(s)).collect::<Vec<_>>());
    SummaryRow {
        variant: vr.variant,
        model: k,
        label: vr.variant.label(k).into(),
        lr: vr.config.member(k).lr,
        selection: sel,
        epochs: snaps.iter().map(|s| s.epoch).collect(),
        test_srcc: over(&|s| s.eval.test.srocc),
        test_plcc: over(&|s| s.eval.test.plcc),
        test_srcc_per_seed: snaps.iter().map(|s| s.eval.test.srocc).collect(),
        seeds: vr.results.iter().map(|r| r.seed).collect(),
        cross_srcc: cross.then(|| over(&|s| s.eval.cross.map_or(f64::NAN, |m| m.srocc))),
        cross_plcc: cross.then(|| over(&|s| s.eval.cross.map_or(f64::NAN, |m| m.plcc))),
        per_type_srcc: per_type(snaps, &|s| &s.eval.test_per_type),
        cross_per_type_srcc: per_type(snaps, &|s| &s.eval.cross_per_type),
    }
}

/// Mean ± std over the snapshots of each distortion type's SRCC (`f`: the snapshot's map).
fn per_type(
    snaps: &[&mrkd::Snapshot],
    f: &dyn Fn(&mrkd::Snapshot) -> &BTreeMap<String, f64>,
) -> BTreeMap<String, MeanStd> {
    let mut types: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in snaps {
        for (t, v) in f(s) {
            types.entry(t.clone()).or_default().push(*v);
        }
    }
    types
        .into_iter()
        .map(|(t, v)| (t, MeanStd::of(&v)))
        .collect::<BTreeMap<_, _>>()
}

/// The pairs of (variant, model) whose final test SRCC is t-tested, a against b.
pub const COMPARED: [((Variant, usize), (Variant, usize)); 5] = [
    ((Variant::Mrkd, 1), (Variant::Baseline, 1)),
    ((Variant::Urkd, 1), (Variant::Baseline, 1)),
    ((Variant::Mrkd, 1), (Variant::Urkd, 1)),
    ((Variant::Mrkd, 0), (Variant::Baseline, 0)),
    ((Variant::Mrkd, 1), (Variant::Baseline, 0)),
];

/// Paired t-tests of final test SRCC over seeds (same seed = same split and initialisation) of
/// the [`COMPARED`] pairs both of whose rows exist.
fn comparisons(res: &ExperimentResults) -> Vec<Comparison> {
    let mut out = Vec::new();
    for ((va, ka), (vb, kb)) in COMPARED {
        let (Some(a), Some(b)) = (
            res.row(va, ka, Selection::Final),
            res.row(vb, kb, Selection::Final),
        ) else {
            continue;
        };
        let (xa, xb) = paired_by_seed(a, b);
        if let Ok(t) = paired_t_test(&xa, &xb) {
            out.push(Comparison {
                a: a.label.clone(),
                b: b.label.clone(),
                mean_diff: t.mean_diff,
                t: t.t,
                p_two_sided: t.p_two_sided,
                n: xa.len(),
            });
        }
    }
    out
}

/// The per-seed test SRCCs of `a` and `b` of the seeds both have (a variant whose pair failed
/// for one seed has no value for it).
fn paired_by_seed(a: &SummaryRow, b: &SummaryRow) -> (Vec<f64>, Vec<f64>) {
    a.seeds
        .iter()
        .zip(&a.test_srcc_per_seed)
        .filter_map(|(s, &x)| b.seeds.iter().position(|t| t == s).map(|j| (x, b.test_srcc_per_seed[j])))
        .unzip()
}

/// The two hardest and two easiest distortion types by the final test SRCC of the baseline's
/// small-rate model (else the first variant's); `None` with fewer than four types.
fn hardest_and_easiest(res: &ExperimentResults) -> Option<(Vec<String>, Vec<String>)> {
    let base = res
        .row(Variant::Baseline, 1, Selection::Final)
        .or_else(|| res.row(res.experiment.variants[0], 1, Selection::Final))?;
    let mut types: Vec<(String, f64)> = base
        .per_type_srcc
        .iter()
        .filter(|(_, m)| m.n > 0)
        .map(|(t, m)| (t.clone(), m.mean))
        .collect();
    types.sort_by(|a, b| a.1.total_cmp(&b.1));
    if types.len() < 4 {
        return None;
    }
    let hardest = types[..2].iter().map(|t| t.0.clone()).collect();
    let easiest = types[types.len() - 2..]
        .iter()
        .rev()
        .map(|t| t.0.clone())
        .collect();
    Some((hardest, easiest))
}
