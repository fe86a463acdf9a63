//! Tables of an experiment: every run (CSV and markdown), the mean over splits/seeds of each
//! setting, and paired t-tests between settings over the same splits/seeds
//! ([`normiqa_core::metrics::paired_t_test`], as `scipy.stats.ttest_rel`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use normiqa_core::metrics::paired_t_test;

use super::results::{short_key, ResultRow, Results};

fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(_) => "NaN".into(),
        None => String::new(),
    }
}

fn test_of(r: &ResultRow) -> Option<normiqa_core::metrics::Metrics> {
    r.data.as_ref().and_then(|d| d.test.clone())
}

/// One line per run: parameters, status, best epoch, fused-head test metrics, epochs to the
/// validation threshold, training time.
pub fn results_csv(r: &Results) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["index".into(), "run".into()];
    header.extend(r.keys.iter().cloned());
    header.extend(
        [
            "status",
            "best_epoch",
            "epoch_kind",
            "test_srocc",
            "test_plcc",
            "test_krocc",
            "test_rmse",
            "val_srocc_best",
            "val_plcc_best",
            "threshold",
            "epochs_to_threshold",
            "train_seconds",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for row in &r.rows {
        let t = test_of(row);
        let d = row.data.as_ref();
        let mut rec = vec![row.index.to_string(), row.name.clone()];
        rec.extend(
            r.keys
                .iter()
                .map(|k| row.param(k).unwrap_or("").to_string()),
        );
        rec.push(row.status().into());
        rec.push(
            d.and_then(|d| d.best_epoch)
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
        rec.push(d.and_then(|d| d.epoch_kind).map(|k| k.label().to_string()).unwrap_or_default());
        rec.push(num(t.as_ref().map(|m| m.srocc), 6));
        rec.push(num(t.as_ref().map(|m| m.plcc), 6));
        rec.push(num(t.as_ref().map(|m| m.krocc), 6));
        rec.push(num(t.as_ref().map(|m| m.rmse), 6));
        rec.push(num(d.and_then(|d| d.val.as_ref().map(|m| m.srocc)), 6));
        rec.push(num(d.and_then(|d| d.val.as_ref().map(|m| m.plcc)), 6));
        rec.push(num(row.threshold, 6));
        rec.push(
            row.epochs_to_threshold
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
        rec.push(num(d.and_then(|d| d.train_s), 1));
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Mean and sample standard deviation ([`super::stats::MeanStd`]'s rule).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = super::stats::MeanStd::of(v);
    (m.mean, m.std)
}

/// Per setting (all swept values but the pairing key): its finished runs.
pub struct SettingSummary {
    pub setting: String,
    pub n: usize,
    pub srocc: (f64, f64),
    pub plcc: (f64, f64),
    pub rmse: (f64, f64),
    /// Mean epochs to the threshold over the runs that reached it, and how many did.
    pub epochs_to_threshold: Option<(f64, usize)>,
    /// Runs with a threshold; and the mean with "never" counted as (epochs + 1): a lower bound.
    pub with_threshold: usize,
    pub epochs_lower_bound: Option<f64>,
}

pub fn summaries(r: &Results) -> Vec<SettingSummary> {
    let pair = r.pair_over.as_deref();
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&ResultRow>> = BTreeMap::new();
    for row in &r.rows {
        let s = row.setting(pair);
        if !order.contains(&s) {
            order.push(s.clone());
        }
        groups.entry(s).or_default().push(row);
    }
    order
        .into_iter()
        .filter_map(|s| {
            let rows = &groups[&s];
            let tests: Vec<_> = rows
                .iter()
                .filter_map(|r| test_of(r))
                .filter(|m| m.srocc.is_finite())
                .collect();
            if tests.is_empty() {
                return None;
            }
            let ett: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.epochs_to_threshold.map(|e| e as f64))
                .collect();
            let thr_rows: Vec<f64> = rows
                .iter()
                .filter(|r| r.threshold.is_some() && r.status() == "done")
                .map(|r| match r.epochs_to_threshold {
                    Some(e) => e as f64,
                    None => r
                        .data
                        .as_ref()
                        .and_then(|d| d.config.as_ref())
                        .map(|c| c.epochs as f64 + 1.0)
                        .unwrap_or(f64::NAN),
                })
                .collect();
            Some(SettingSummary {
                setting: s,
                n: tests.len(),
                srocc: mean_sd(&tests.iter().map(|m| m.srocc).collect::<Vec<_>>()),
                plcc: mean_sd(&tests.iter().map(|m| m.plcc).collect::<Vec<_>>()),
                rmse: mean_sd(&tests.iter().map(|m| m.rmse).collect::<Vec<_>>()),
                epochs_to_threshold: (!ett.is_empty())
                    .then(|| (ett.iter().sum::<f64>() / ett.len() as f64, ett.len())),
                with_threshold: thr_rows.len(),
                epochs_lower_bound: (!thr_rows.is_empty())
                    .then(|| thr_rows.iter().sum::<f64>() / thr_rows.len() as f64),
            })
        })
        .collect()
}

/// A paired t-test between two values of one swept key, the other keys fixed, paired over the
/// pairing key.
pub struct TTestRow {
    pub key: String,
    pub a: String,
    pub b: String,
    /// The other swept values held fixed.
    pub fixed: String,
    pub n: usize,
    pub srocc_diff: f64,
    pub srocc_p: f64,
    pub plcc_diff: f64,
    pub plcc_p: f64,
}

/// Every paired t-test the experiment allows: needs a pairing key with at least two values.
pub fn ttests(r: &Results) -> Vec<TTestRow> {
    let Some(pair) = r.pair_over.as_deref() else {
        return vec![];
    };
    let mut out = Vec::new();
    for key in r.keys.iter().filter(|k| k.as_str() != pair) {
        let mut values: Vec<String> = Vec::new();
        for row in &r.rows {
            if let Some(l) = row.param(key) {
                if !values.iter().any(|v| v == l) {
                    values.push(l.to_string());
                }
            }
        }
        // The other keys' values, as a string, for grouping.
        let others = |row: &ResultRow| -> String {
            row.params
                .iter()
                .filter(|(k, _)| k != key && k != pair)
                .map(|(k, l)| format!("{}={l}", short_key(k)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut fixed_groups: Vec<String> = Vec::new();
        for row in &r.rows {
            let o = others(row);
            if !fixed_groups.contains(&o) {
                fixed_groups.push(o);
            }
        }
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                for fixed in &fixed_groups {
                    let pick = |v: &str| -> BTreeMap<String, (f64, f64)> {
                        r.rows
                            .iter()
                            .filter(|row| row.param(key) == Some(v) && &others(row) == fixed)
                            .filter_map(|row| Some((row.param(pair)?.to_string(), test_of(row)?)))
                            .filter(|(_, m)| m.srocc.is_finite() && m.plcc.is_finite())
                            .map(|(p, m)| (p, (m.srocc, m.plcc)))
                            .collect()
                    };
                    let (ma, mb) = (pick(a), pick(b));
                    let common: Vec<&String> = ma.keys().filter(|k| mb.contains_key(*k)).collect();
                    if common.len() < 2 {
                        continue;
                    }
                    let xa: Vec<(f64, f64)> = common.iter().map(|k| ma[*k]).collect();
                    let xb: Vec<(f64, f64)> = common.iter().map(|k| mb[*k]).collect();
                    let ts = paired_t_test(
                        &xa.iter().map(|x| x.0).collect::<Vec<_>>(),
                        &xb.iter().map(|x| x.0).collect::<Vec<_>>(),
                    );
                    let tp = paired_t_test(
                        &xa.iter().map(|x| x.1).collect::<Vec<_>>(),
                        &xb.iter().map(|x| x.1).collect::<Vec<_>>(),
                    );
                    out.push(TTestRow {
                        key: key.clone(),
                        a: a.clone(),
                        b: b.clone(),
                        fixed: fixed.clone(),
                        n: common.len(),
                        srocc_diff: ts.as_ref().map(|t| t.mean_diff).unwrap_or(0.0),
                        srocc_p: ts.map(|t| t.p_two_sided).unwrap_or(1.0),
                        plcc_diff: tp.as_ref().map(|t| t.mean_diff).unwrap_or(0.0),
                        plcc_p: tp.map(|t| t.p_two_sided).unwrap_or(1.0),
                    });
                }
            }
        }
    }
    out
}

fn pm(x: (f64, f64)) -> String {
    if x.1.is_finite() {
        format!("{:.4} ± {:.4}", x.0, x.1)
    } else {
        format!("{:.4}", x.0)
    }
}

fn p_fmt(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The markdown report: all runs, the per-setting means (with epochs to the threshold and their
/// ratio to the fastest setting), and the paired t-tests.
pub fn results_markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Experiment `{}`\n", r.name);
    let metric = r.threshold_metric.to_uppercase();
    runs_table(&mut s, r, &metric);
    let sums = summaries(r);
    if r.pair_over.is_some() || sums.iter().any(|x| x.n > 1) {
        setting_means(&mut s, r, &sums);
    } else if sums.iter().any(|x| x.epochs_to_threshold.is_some()) {
        threshold_ratios(&mut s, r, &sums);
    }
    ttests_table(&mut s, r);
    if !r.compare.is_empty() {
        comparisons_table(&mut s, r);
    }
    s
}

/// What the columns mean (`metric`: the threshold's), and one line per run.
fn runs_table(s: &mut String, r: &Results, metric: &str) {
    let _ = writeln!(
        s,
        "Test metrics of the fused head after the train-set linear mapping (eq. 17), at the epoch the `epoch` column names: \
         `best val`, the epoch of best validation SROCC (PLCC with `val_criterion = \"plcc\"`) of a run with a validation set; \
         `final`, the last epoch (a run without a validation set, or a member of an MRKD pair, as the MRKD paper reports). \
         PLCC (logistic4/5): after the VQEG 4-/5-parameter logistic fitted on the test predictions. \
         Epochs to threshold: the first epoch whose validation {metric} reaches the threshold.\n"
    );
    let mut header: Vec<String> = vec!["#".into(), "run".into()];
    header.extend(r.keys.iter().map(|k| short_key(k).to_string()));
    header.extend(
        [
            "status",
            "epoch",
            "SROCC",
            "PLCC",
            "KROCC",
            "RMSE",
            "PLCC (logistic4)",
            "PLCC (logistic5)",
            "threshold",
            "epochs to thr.",
        ]
        .map(String::from),
    );
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for row in &r.rows {
        let t = test_of(row);
        let mut cells = vec![row.index.to_string(), format!("`{}`", row.name)];
        cells.extend(
            r.keys
                .iter()
                .map(|k| row.param(k).unwrap_or("").to_string()),
        );
        cells.push(row.status().into());
        cells.push(
            row.data
                .as_ref()
                .and_then(|d| Some(format!("{} ({})", d.best_epoch?, d.epoch_kind?.label())))
                .unwrap_or_default(),
        );
        let getters: [fn(&normiqa_core::metrics::Metrics) -> f64; 4] =
            [|m| m.srocc, |m| m.plcc, |m| m.krocc, |m| m.rmse];
        for f in getters {
            cells.push(num(t.as_ref().map(f), 4));
        }
        let logistic = row.data.as_ref().map_or([None, None], |d| d.logistic_plcc);
        cells.extend(logistic.map(|p| num(p, 4)));
        cells.push(num(row.threshold, 4));
        cells.push(match (row.threshold, row.epochs_to_threshold) {
            (Some(_), Some(e)) => e.to_string(),
            (Some(_), None) if row.status() == "done" => "never".into(),
            _ => String::new(),
        });
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
}

/// The mean ± std of each setting over its runs (over the pairing key), with the mean epochs to
/// the threshold and their ratio to the fastest setting.
fn setting_means(s: &mut String, r: &Results, sums: &[SettingSummary]) {
    let _ = writeln!(
        s,
        "\n## Mean ± standard deviation per setting{}\n",
        r.pair_over
            .as_deref()
            .map(|p| format!(" (over `{p}`)"))
            .unwrap_or_default()
    );
    let fastest = sums
        .iter()
        .filter(|x| {
            x.epochs_to_threshold
                .map_or(false, |e| e.1 == x.with_threshold)
        })
        .filter_map(|x| x.epochs_to_threshold.map(|e| e.0))
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        s,
        "| setting | runs | SROCC | PLCC | RMSE | epochs to thr. (reached/runs) | × fastest |\n|---|---|---|---|---|---|---|"
    );
    for x in sums {
        // Runs that never reached the threshold count as (epochs + 1): the ratio is then a
        // lower bound (≥).
        let (ett, ratio) = match (x.epochs_to_threshold, x.epochs_lower_bound) {
            (Some((e, k)), Some(lb)) if k == x.with_threshold => (
                format!("{e:.1} ({k}/{})", x.with_threshold),
                format!("{:.2}", lb / fastest),
            ),
            (Some((e, k)), Some(lb)) => (
                format!("{e:.1} ({k}/{})", x.with_threshold),
                format!("≥ {:.2}", lb / fastest),
            ),
            (None, Some(lb)) if x.with_threshold > 0 => (
                format!("never (0/{})", x.with_threshold),
                format!("≥ {:.2}", lb / fastest),
            ),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {ett} | {ratio} |",
            x.setting,
            x.n,
            pm(x.srocc),
            pm(x.plcc),
            pm(x.rmse)
        );
    }
}

/// Without a pairing key or repeated settings: each run's epochs to the threshold, relative to
/// the fastest.
fn threshold_ratios(s: &mut String, r: &Results, sums: &[SettingSummary]) {
    let fastest = sums
        .iter()
        .filter_map(|x| x.epochs_to_threshold.map(|e| e.0))
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        s,
        "\n## Epochs to threshold, relative to the fastest\n\n\"never\" counts as epochs + 1, so its ratio is a lower bound.\n\n| run | threshold | epochs | × fastest |\n|---|---|---|---|"
    );
    for (x, row) in sums.iter().zip(
        r.rows
            .iter()
            .filter(|row| test_of(row).map_or(false, |m| m.srocc.is_finite())),
    ) {
        match (x.epochs_to_threshold, x.epochs_lower_bound) {
            (Some((e, _)), _) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {e:.0} | {:.2} |",
                    x.setting,
                    num(row.threshold, 4),
                    e / fastest
                );
            }
            (None, Some(lb)) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | never | ≥ {:.2} |",
                    x.setting,
                    num(row.threshold, 4),
                    lb / fastest
                );
            }
            _ => {}
        }
    }
}

/// Every paired t-test the experiment allows ([`ttests`]), if any.
fn ttests_table(s: &mut String, r: &Results) {
    let tt = ttests(r);
    if !tt.is_empty() {
        let _ = writeln!(
            s,
            "\n## Paired t-tests over `{}`\n\nTwo-sided p-values of `scipy.stats.ttest_rel(a, b)` on the test metrics; Δ = mean(a − b).\n",
            r.pair_over.as_deref().unwrap_or("")
        );
        let _ = writeln!(s, "| key | a | b | others fixed | pairs | Δ SROCC | p (SROCC) | Δ PLCC | p (PLCC) |\n|---|---|---|---|---|---|---|---|---|");
        for t in &tt {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:+.4} | {} | {:+.4} | {} |",
                short_key(&t.key),
                t.a,
                t.b,
                if t.fixed.is_empty() { "—" } else { &t.fixed },
                t.n,
                t.srocc_diff,
                p_fmt(t.srocc_p),
                t.plcc_diff,
                p_fmt(t.plcc_p)
            );
        }
    }
}

/// The comparisons asked for (`--compare A B`).
fn comparisons_table(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "\n## Requested comparisons, paired over `{}`\n\nEach side is the runs whose swept values include the listed `key=label`s; Δ = mean(a − b) of the test metrics at each run's epoch (table above); two-sided p of `scipy.stats.ttest_rel`.\n",
        r.pair_over.as_deref().unwrap_or("(no pairing key)")
    );
    let _ = writeln!(s, "| a | b | pairs | Δ SROCC | p (SROCC) | Δ PLCC | p (PLCC) |\n|---|---|---|---|---|---|---|");
    for [a, b] in &r.compare {
        let _ = match compare(r, a, b) {
            Ok(c) => writeln!(
                s,
                "| {a} | {b} | {} | {:+.4} | {} | {:+.4} | {} |",
                c.n, c.srocc_diff, p_fmt(c.srocc_p), c.plcc_diff, p_fmt(c.plcc_p)
            ),
            Err(e) => writeln!(s, "| {a} | {b} | not computed: {} | | | | |", crate::cli::error_text(&e).replace('|', "/")),
        };
    }
}

/// A paired t-test between two settings a user names ([`compare`]).
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The pairing values both sides have (in the order of the rows of `a`).
    pub pairs: Vec<String>,
    pub n: usize,
    pub srocc_diff: f64,
    pub srocc_p: f64,
    pub plcc_diff: f64,
    pub plcc_p: f64,
}

/// `key=label` filters of a side of a comparison, checked against the swept keys.
fn filters<'a>(r: &Results, side: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    let mut out = Vec::new();
    for f in side.split_whitespace() {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("'{f}' in '{side}': expected key=label, e.g. loss=mse");
        };
        if !r.keys.iter().any(|key| key == k || short_key(key) == k) {
            let names: Vec<&str> = r.keys.iter().map(|k| short_key(k)).collect();
            anyhow::bail!("'{f}' in '{side}': no swept key '{k}' (the experiment sweeps {})", names.join(", "));
        }
        out.push((k, v));
    }
    anyhow::ensure!(!out.is_empty(), "an empty side: name the runs by their swept values, e.g. 'loss=mse'");
    Ok(out)
}

/// The finished runs of one side, by pairing value (one run per value, or an error naming two).
fn side_runs(r: &Results, side: &str, pair: &str) -> Result<BTreeMap<String, (f64, f64)>> {
    let fs = filters(r, side)?;
    let matches = |row: &ResultRow| {
        fs.iter().all(|(k, v)| row.params.iter().any(|(key, l)| (key == k || short_key(key) == *k) && l == v))
    };
    let mut out: BTreeMap<String, (f64, f64, String)> = BTreeMap::new();
    for row in r.rows.iter().filter(|row| matches(row)) {
        let (Some(p), Some(t)) = (row.param(pair), test_of(row)) else {
            continue;
        };
        if !(t.srocc.is_finite() && t.plcc.is_finite()) {
            continue;
        }
        if let Some((_, _, other)) = out.insert(p.to_string(), (t.srocc, t.plcc, row.name.clone())) {
            anyhow::bail!("'{side}' names more than one run for {}={p} ({other} and {}): add the key that tells them apart", short_key(pair), row.name);
        }
    }
    Ok(out.into_iter().map(|(k, (s, p, _))| (k, (s, p))).collect())
}

/// The paired t-test of the runs named by `a` against those named by `b` (each side: swept
/// `key=label` values, e.g. `"p=1 q=2"` or `"member=student lambda=baseline"`), paired over the
/// experiment's pairing key (split or seed): any two settings, not only those that differ in
/// one swept value.
pub fn compare(r: &Results, a: &str, b: &str) -> Result<Comparison> {
    let Some(pair) = r.pair_over.as_deref() else {
        anyhow::bail!("the experiment has no pairing key (pair_over): runs cannot be paired");
    };
    let (ma, mb) = (side_runs(r, a, pair)?, side_runs(r, b, pair)?);
    let pairs: Vec<String> = ma.keys().filter(|k| mb.contains_key(*k)).cloned().collect();
    anyhow::ensure!(
        pairs.len() >= 2,
        "'{a}' ({} finished runs) and '{b}' ({}) share {} value(s) of {}: a paired t-test needs 2 or more",
        ma.len(), mb.len(), pairs.len(), short_key(pair)
    );
    let col = |m: &BTreeMap<String, (f64, f64)>, k: usize| -> Vec<f64> {
        pairs.iter().map(|p| if k == 0 { m[p].0 } else { m[p].1 }).collect()
    };
    let ts = paired_t_test(&col(&ma, 0), &col(&mb, 0))?;
    let tp = paired_t_test(&col(&ma, 1), &col(&mb, 1))?;
    Ok(Comparison {
        n: pairs.len(),
        pairs,
        srocc_diff: ts.mean_diff,
        srocc_p: ts.p_two_sided,
        plcc_diff: tp.mean_diff,
        plcc_p: tp.p_two_sided,
    })
}

#[cfg(test)]
mod compare_tests {
    use super::*;
    use crate::report::results::RunData;
    use normiqa_core::metrics::Metrics;

    /// An experiment sweeping p and q over 3 splits, with the test SROCC/PLCC given.
    fn results(values: &[(&str, &str, usize, f64)]) -> Results {
        let rows = values
            .iter()
            .enumerate()
            .map(|(i, &(p, q, split, srocc))| {
                let mut d = RunData::empty(std::path::Path::new("x"));
                d.finished = true;
                d.test = Some(Metrics { srocc, plcc: srocc + 0.01, krocc: 0.0, rmse: 1.0, n: 10 });
                ResultRow {
                    index: i,
                    name: format!("p={p}_q={q}_exp_id={split}"),
                    params: vec![
                        ("loss.kind.p".into(), p.into()),
                        ("loss.kind.q".into(), q.into()),
                        ("data.exp_id".into(), split.to_string()),
                    ],
                    data: Some(d),
                    threshold: None,
                    epochs_to_threshold: None,
                }
            })
            .collect();
        Results {
            name: "pq".into(),
            dir: "x".into(),
            pair_over: Some("data.exp_id".into()),
            threshold_metric: "plcc".into(),
            keys: vec!["loss.kind.p".into(), "loss.kind.q".into(), "data.exp_id".into()],
            rows,
            compare: vec![],
        }
    }

    #[test]
    fn settings_that_differ_in_two_keys_are_compared_paired_by_split() {
        let r = results(&[
            ("1", "2", 0, 0.80), ("1", "2", 1, 0.82), ("1", "2", 2, 0.85),
            ("2", "1", 0, 0.78), ("2", "1", 1, 0.81), ("2", "1", 2, 0.81),
            ("2", "2", 0, 0.70),
        ]);
        let c = compare(&r, "p=1 q=2", "p=2 q=1").unwrap();
        assert_eq!(c.pairs, ["0", "1", "2"]);
        let want = paired_t_test(&[0.80, 0.82, 0.85], &[0.78, 0.81, 0.81]).unwrap();
        assert!((c.srocc_diff - want.mean_diff).abs() < 1e-12 && (c.srocc_p - want.p_two_sided).abs() < 1e-12);
        // A side naming two runs per split, an unknown key, one shared split: refused, saying why.
        let e = compare(&r, "p=2", "p=1").unwrap_err().to_string();
        assert!(e.contains("more than one run for exp_id=0"), "{e}");
        let e = compare(&r, "lr=1", "p=1").unwrap_err().to_string();
        assert!(e.contains("no swept key 'lr'") && e.contains("p, q, exp_id"), "{e}");
        let e = compare(&r, "p=2 q=2", "p=1 q=2").unwrap_err().to_string();
        assert!(e.contains("share 1 value(s) of exp_id"), "{e}");
        let mut r = r;
        r.compare = vec![["p=1 q=2".into(), "p=2 q=1".into()]];
        let md = results_markdown(&r);
        assert!(md.contains("## Requested comparisons") && md.contains("| p=1 q=2 | p=2 q=1 | 3 |"), "{md}");
    }
}
