//! The MRKD experiment's report: the markdown tables of `normiqa distill` (overall, paired
//! t-tests, per distortion type, hardest/easiest types) from its results
//! ([`crate::distill::results`]), with the report's statistics ([`super::stats::MeanStd`]); its
//! figures are in [`super::mrkd_plots`]; [`write`] writes both.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::distill::results::{ExperimentResults, Selection};
use crate::distill::{MemberConfig, Variant};
use super::stats::MeanStd;

/// Writes the experiment's report into `out`: `results.md` and, when the experiment asks for
/// them, the plots ([`super::mrkd_plots::all`]; a plot that fails is a warning). What the CLI
/// hands to [`crate::distill::run_experiment`].
pub fn write(res: &ExperimentResults, out: &Path) -> Result<()> {
    crate::atomic::write(&out.join("results.md"), markdown(res).as_bytes())?;
    if res.experiment.plots {
        if let Err(e) = super::mrkd_plots::all(res, out) {
            tracing::warn!("plots not written: {}", crate::cli::error_text(&e));
        }
    }
    Ok(())
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

/// The name a value has in configuration files (its serde name: `linearity`, `one-way`).
fn config_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// An optimiser with its parameters, as a person writes it.
fn optimizer(o: &crate::run::config::OptimizerKind) -> String {
    use crate::run::config::OptimizerKind as O;
    match o {
        O::Adam => "Adam".into(),
        O::Sgd { momentum } => format!("SGD (momentum {momentum})"),
        O::Adadelta { rho, eps } => format!("Adadelta (rho {rho}, eps {eps})"),
    }
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
    let mut s = String::new();
    let _ = writeln!(s, "# MRKD: {}\n", res.dataset);
    setup(&mut s, res);
    failed_pairs(&mut s, res);
    split_sizes(&mut s, res);
    overall(&mut s, res);
    ttests(&mut s, res);
    per_type(&mut s, res);
    let _ = writeln!(
        s,
        "\nNotes: \"final epoch\" is what the paper reports; \"best-val epoch\" picks each model's epoch by its validation SRCC (shown only with a validation set); \"oracle\" picks the best test epoch and is optimistic. Baseline = the same pair with λ = 0 (each model trained alone, same initialisation and batches as in URKD/MRKD). PLCC/RMSE after a linear fit on the evaluated set."
    );
    s
}

/// The sentence on the experiment's configuration (models, rates, loss, schedule, seeds).
fn setup(s: &mut String, res: &ExperimentResults) {
    let e = &res.experiment;
    let c = &e.run;
    let arch = |m: &MemberConfig| format!("{}/{}", config_name(&m.arch), m.model.backbone);
    let seeds: Vec<String> = e.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(
        s,
        "Teacher {} at η_max {}, student {} at η_max {}; λ {} ({}); task loss {}; {}; cosine to η_min {} over {} epochs (per {}); batch {}; {} epochs; {}; seeds {} (seed = split + initialisation + batch order); URKD rate {}. {} s in all.\n",
        arch(&c.teacher),
        c.teacher.lr,
        arch(&c.student),
        c.student.lr,
        c.lambda,
        config_name(&c.direction),
        c.loss.kind,
        optimizer(&c.optimizer),
        c.eta_min,
        c.t_max.unwrap_or(c.epochs),
        config_name(&c.lr_unit),
        c.batch_size,
        c.epochs,
        if c.frozen() { "frozen backbones (cached pooled features)".to_string() } else { format!("fine-tuned backbones (ratio {})", c.ft_lr_ratio) },
        seeds.join(", "),
        e.urkd_lr.unwrap_or(c.student.lr),
        res.seconds.round()
    );
}

/// The pairs that failed, if any.
fn failed_pairs(s: &mut String, res: &ExperimentResults) {
    if res.failed.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Failed pairs (not in the tables below)\n");
    for f in &res.failed {
        let _ = writeln!(s, "- {} seed {}: {}", f.variant.name(), f.seed, f.error.replace('\n', " "));
    }
    let _ = writeln!(s);
}

/// The split's sizes (of the first pair that finished).
fn split_sizes(s: &mut String, res: &ExperimentResults) {
    let sizes = res
        .runs
        .iter()
        .find_map(|r| r.results.first())
        .map(|r| r.sizes)
        .unwrap_or_default();
    let _ = writeln!(s, "Split: train {}, val {}, test {} images. Metrics on the test set, mean ± std over seeds.\n", sizes[0], sizes[1], sizes[2]);
}

/// The overall table: every summary row, by selection (with the cross-dataset columns when
/// there is a cross-dataset test set).
fn overall(s: &mut String, res: &ExperimentResults) {
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
}

/// The paired t-tests, if any.
fn ttests(s: &mut String, res: &ExperimentResults) {
    if res.comparisons.is_empty() {
        return;
    }
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

/// The final test SRCC over seeds of model `k` of variant `v` on distortion type `t`.
fn type_srcc(res: &ExperimentResults, v: Variant, k: usize, t: &str) -> Option<MeanStd> {
    res.row(v, k, Selection::Final)
        .and_then(|r| r.per_type_srcc.get(t))
        .copied()
}

/// The mean of [`type_srcc`] (NaN without a value).
fn type_mean(res: &ExperimentResults, v: Variant, k: usize, t: &str) -> f64 {
    type_srcc(res, v, k, t).map_or(f64::NAN, |m| m.mean)
}

/// The per-distortion-type table and the hardest/easiest types (datasets with types).
fn per_type(s: &mut String, res: &ExperimentResults) {
    let types: Vec<String> = res
        .summary
        .iter()
        .flat_map(|r| r.per_type_srcc.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if types.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Per distortion type (final epoch, test SRCC, mean over seeds)\n"
    );
    let _ = writeln!(s, "| type | small-lr alone (baseline) | large-lr alone | URKD | MRKD student | MRKD teacher | URKD − baseline | MRKD − baseline |\n|---|---|---|---|---|---|---|---|");
    let cell = |v: Variant, k: usize, t: &str| type_srcc(res, v, k, t);
    for t in &types {
        let b = type_mean(res, Variant::Baseline, 1, t);
        let u = type_mean(res, Variant::Urkd, 1, t);
        let m = type_mean(res, Variant::Mrkd, 1, t);
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
        hardest_easiest(s, res);
    }
}

/// The hardest and easiest types by the baseline's SRCC, and their means (the paper's Tables
/// 2–4).
fn hardest_easiest(s: &mut String, res: &ExperimentResults) {
    let _ = writeln!(s, "\n## Hardest and easiest types (by the baseline's SRCC), as the paper's Tables 2–4\n");
    let _ = writeln!(s, "| | type | baseline | URKD | MRKD | gain URKD | gain MRKD |\n|---|---|---|---|---|---|---|");
    for (what, list) in [("hardest", &res.hardest), ("easiest", &res.easiest)] {
        for t in list {
            let v = |var: Variant| type_mean(res, var, 1, t);
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
        let v: Vec<f64> = list.iter().map(|t| type_mean(res, var, 1, t)).collect();
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
