//! `normiqa distill`: Multi-Rate Knowledge Distillation (issue 5). [`mrkd`] trains one pair of
//! models; this module runs the experiment of the paper — baseline (λ = 0: each model alone),
//! URKD (both models at one rate) and MRKD (large-rate teacher, small-rate student) over several
//! seeds — and writes `results.json`, `results.md` and the plots ([`plot`]).

pub mod mrkd;
pub mod plot;

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

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "baseline" => Ok(Variant::Baseline),
            "urkd" => Ok(Variant::Urkd),
            "mrkd" => Ok(Variant::Mrkd),
            o => Err(format!("unknown variant '{o}' (baseline, urkd, mrkd)")),
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
    vec![1, 2, 3]
}
fn yes() -> bool {
    true
}

/// Mean, sample standard deviation (n − 1; 0 for one value) and count of the finite values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl MeanStd {
    pub fn of(v: &[f64]) -> MeanStd {
        let x: Vec<f64> = v.iter().copied().filter(|a| a.is_finite()).collect();
        let n = x.len();
        if n == 0 {
            return MeanStd {
                mean: f64::NAN,
                std: f64::NAN,
                n: 0,
            };
        }
        let mean = x.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std, n }
    }

    pub fn fmt(&self) -> String {
        if self.n == 0 {
            "n/a".into()
        } else {
            format!("{:.4} ± {:.4}", self.mean, self.std)
        }
    }
}

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
/// experiment, unless `overwrite`. An unfinished experiment of this configuration runs again
/// from the start (distillation saves no per-epoch state).
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
    // (After the features are computed.) Heads on cached features are tiny matrix products: one intra-op thread is as fast on an
    // idle CPU and far faster on a busy one (measured 1.5 s vs 25 s per CLIVE epoch on 2 shared
    // cores). NORMIQA_THREADS overrides.
    match std::env::var("NORMIQA_THREADS")
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        Some(n) => tch::set_num_threads(n),
        None if exp.run.frozen()
            && !crate::model::parse_device(&exp.run.device).map_or(false, |d| d.is_cuda()) =>
        {
            tch::set_num_threads(1)
        }
        None => {}
    }
    let mut runs = Vec::new();
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
            results.push(train_pair(&cfg, &data, seed, Some(&dir), exp.save_weights)?);
        }
        runs.push(VariantRuns {
            variant: v,
            config: cfg,
            results,
        });
    }
    let res = summarise(exp, &data, runs, t0.elapsed().as_secs_f64());
    // results.md and the plots first: results.json marks the experiment finished.
    atomic::write(&out.join("results.md"), markdown(&res).as_bytes())?;
    if exp.plots {
        if let Err(e) = plot::all(&res, out) {
            tracing::warn!("plots not written: {e:#}");
        }
    }
    atomic::write(
        &out.join("results.json"),
        serde_json::to_string_pretty(&res)?.as_bytes(),
    )?;
    drop(folder);
    Ok(Some(res))
}

fn summarise(
    exp: &Experiment,
    data: &mrkd::Prepared,
    runs: Vec<VariantRuns>,
    seconds: f64,
) -> ExperimentResults {
    let mut summary = Vec::new();
    for vr in &runs {
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
        if let Ok(t) = paired_t_test(&a.test_srcc_per_seed, &b.test_srcc_per_seed) {
            res.comparisons.push(Comparison {
                a: a.label.clone(),
                b: b.label.clone(),
                mean_diff: t.mean_diff,
                t: t.t,
                p_two_sided: t.p_two_sided,
                n: a.test_srcc_per_seed.len(),
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

fn f4(m: Option<&MeanStd>) -> String {
    m.map_or("–".into(), |m| {
        if m.n == 0 {
            "n/a".into()
        } else {
            format!("{:.4}", m.mean)
        }
    })
}

fn signed(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.4}", x)
    } else {
        "–".into()
    }
}

/// The markdown report: overall table, t-tests, per-type table, hardest/easiest types.
pub fn markdown(res: &ExperimentResults) -> String {
    use std::fmt::Write;
    let e = &res.experiment;
    let c = &e.run;
    let mut s = String::new();
    let _ = writeln!(s, "# MRKD: {}\n", res.dataset);
    let arch = |m: &MemberConfig| format!("{:?}/{}", m.arch, m.model.backbone).to_lowercase();
    let _ = writeln!(
        s,
        "Teacher {} at η_max {}, student {} at η_max {}; λ {} ({:?}); task loss {}; {:?}; cosine to η_min {} over {} epochs (per {:?}); batch {}; {} epochs; {}; seeds {:?} (seed = split + initialisation + batch order); URKD rate {}. {} s in all.\n",
        arch(&c.teacher),
        c.teacher.lr,
        arch(&c.student),
        c.student.lr,
        c.lambda,
        c.direction,
        c.loss.kind,
        c.optimizer,
        c.eta_min,
        c.t_max.unwrap_or(c.epochs),
        c.lr_unit,
        c.batch_size,
        c.epochs,
        if c.frozen() { "frozen backbones (cached pooled features)".to_string() } else { format!("fine-tuned backbones (ratio {})", c.ft_lr_ratio) },
        e.seeds,
        e.urkd_lr.unwrap_or(c.student.lr),
        res.seconds.round()
    );
    let sizes = res
        .runs
        .first()
        .and_then(|r| r.results.first())
        .map(|r| r.sizes)
        .unwrap_or_default();
    let _ = writeln!(s, "Split: train {}, val {}, test {} images. Metrics on the test set, mean ± std over seeds.\n", sizes[0], sizes[1], sizes[2]);
    let cross = res.cross_dataset.is_some();
    let _ = writeln!(s, "## Overall\n");
    let _ = write!(s, "| variant | model | η_max | epoch | SRCC | PLCC |");
    if cross {
        let _ = write!(
            s,
            " cross SRCC ({0}) | cross PLCC ({0}) |",
            res.cross_dataset.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        s,
        "\n|---|---|---|---|---|---|{}",
        if cross { "---|---|" } else { "" }
    );
    for sel in Selection::ALL {
        for r in res.summary.iter().filter(|r| r.selection == sel) {
            let _ = write!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.variant.name(),
                r.label,
                r.lr,
                sel.label(),
                r.test_srcc.fmt(),
                r.test_plcc.fmt()
            );
            if cross {
                let _ = write!(
                    s,
                    " {} | {} |",
                    r.cross_srcc.map_or("–".into(), |m| m.fmt()),
                    r.cross_plcc.map_or("–".into(), |m| m.fmt())
                );
            }
            let _ = writeln!(s);
        }
    }
    if !res.comparisons.is_empty() {
        let _ = writeln!(
            s,
            "\n## Paired t-tests over seeds (final-epoch test SRCC)\n"
        );
        let _ = writeln!(
            s,
            "| a | b | mean(a − b) | t | p (two-sided) | n |\n|---|---|---|---|---|---|"
        );
        for cpr in &res.comparisons {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.3} | {} |",
                cpr.a,
                cpr.b,
                signed(cpr.mean_diff),
                cpr.t,
                cpr.p_two_sided,
                cpr.n
            );
        }
    }
    let get = |v: Variant, k: usize| res.row(v, k, Selection::Final);
    let types: Vec<String> = res
        .summary
        .iter()
        .flat_map(|r| r.per_type_srcc.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !types.is_empty() {
        let _ = writeln!(
            s,
            "\n## Per distortion type (final epoch, test SRCC, mean over seeds)\n"
        );
        let _ = writeln!(s, "| type | small-lr alone (baseline) | large-lr alone | URKD | MRKD student | MRKD teacher | URKD − baseline | MRKD − baseline |\n|---|---|---|---|---|---|---|---|");
        let cell =
            |v: Variant, k: usize, t: &str| get(v, k).and_then(|r| r.per_type_srcc.get(t)).copied();
        for t in &types {
            let b = cell(Variant::Baseline, 1, t).map_or(f64::NAN, |m| m.mean);
            let u = cell(Variant::Urkd, 1, t).map_or(f64::NAN, |m| m.mean);
            let m = cell(Variant::Mrkd, 1, t).map_or(f64::NAN, |m| m.mean);
            let _ = writeln!(
                s,
                "| {t} | {} | {} | {} | {} | {} | {} | {} |",
                f4(cell(Variant::Baseline, 1, t).as_ref()),
                f4(cell(Variant::Baseline, 0, t).as_ref()),
                f4(cell(Variant::Urkd, 1, t).as_ref()),
                f4(cell(Variant::Mrkd, 1, t).as_ref()),
                f4(cell(Variant::Mrkd, 0, t).as_ref()),
                signed(u - b),
                signed(m - b)
            );
        }
        if !res.hardest.is_empty() {
            let _ = writeln!(s, "\n## Hardest and easiest types (by the baseline's SRCC), as the paper's Tables 2–4\n");
            let _ = writeln!(s, "| | type | baseline | URKD | MRKD | gain URKD | gain MRKD |\n|---|---|---|---|---|---|---|");
            for (what, list) in [("hardest", &res.hardest), ("easiest", &res.easiest)] {
                for t in list {
                    let v = |var: Variant| cell(var, 1, t).map_or(f64::NAN, |m| m.mean);
                    let (b, u, m) = (v(Variant::Baseline), v(Variant::Urkd), v(Variant::Mrkd));
                    let _ = writeln!(
                        s,
                        "| {what} | {t} | {b:.4} | {u:.4} | {m:.4} | {} | {} |",
                        signed(u - b),
                        signed(m - b)
                    );
                }
            }
            let mean_of = |var: Variant, list: &[String]| {
                let v: Vec<f64> = list
                    .iter()
                    .map(|t| cell(var, 1, t).map_or(f64::NAN, |m| m.mean))
                    .collect();
                MeanStd::of(&v).mean
            };
            for (what, list) in [
                ("hardest-2 mean", &res.hardest),
                ("easiest-2 mean", &res.easiest),
            ] {
                let (b, u, m) = (
                    mean_of(Variant::Baseline, list),
                    mean_of(Variant::Urkd, list),
                    mean_of(Variant::Mrkd, list),
                );
                let _ = writeln!(
                    s,
                    "| {what} | | {b:.4} | {u:.4} | {m:.4} | {} | {} |",
                    signed(u - b),
                    signed(m - b)
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nNotes: \"final epoch\" is what the paper reports; \"best-val epoch\" picks each model's epoch by its validation SRCC (shown only with a validation set); \"oracle\" picks the best test epoch and is optimistic. Baseline = the same pair with λ = 0 (each model trained alone, same initialisation and batches as in URKD/MRKD). PLCC/RMSE after a linear fit on the evaluated set."
    );
    s
}
