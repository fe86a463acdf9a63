//! `normiqa report`: figures and tables of a run directory or an experiment directory.
//!
//! Run directory: validation (and train/test, when logged) SROCC/PLCC per epoch with the first
//! epoch past `--threshold` circled, b̂ per iteration, predicted-vs-MOS scatter with the fitted
//! line, `report.md`.
//!
//! Experiment directory (written by `normiqa run`, or any folder of run directories): the same
//! curves with one line per setting (the first split/seed of each), circles at the first epoch
//! past the experiment's threshold (Fig. 1), sweep curves for numeric swept keys (Fig. 5), bars
//! for the others (backbones, Fig. 6; losses), b̂ curves (suppl. B), scatter plots (Fig. 7), and
//! `report.md`: all runs, means per setting, paired t-tests (suppl. E).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::experiment::runner::EXPERIMENT_TOML;
use crate::experiment::Experiment;
use crate::report::results::{short_key, EpochPoint, ResultRow, Results, RunData};
use crate::report::plots::{self, LineChart, Series};
use crate::report::tables;
use crate::run::info;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run directory (config.toml, log.jsonl, run.json) or an experiment directory.
    pub dir: PathBuf,
    /// Output folder (default: <dir>/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Threshold on the validation metric for the circles (default: the experiment's).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Threshold metric: plcc or srocc (default: the experiment's, else plcc).
    #[arg(long, value_parser = ["plcc", "srocc"])]
    pub metric: Option<String>,
    /// At most this many scatter plots.
    #[arg(long, default_value_t = 8)]
    pub max_scatter: usize,
    /// Also write TensorBoard event files from each run's log.jsonl, into the report's folder
    /// (<out>/tensorboard/<run>/; the run folders are only read).
    #[arg(long)]
    pub tensorboard: bool,
    /// A paired t-test (over the experiment's splits or seeds) between the runs named by A and
    /// those named by B, each a quoted list of swept key=label values as the tables show them,
    /// e.g. --compare "loss=p1q2" "loss=p2q1", --compare "member=student lambda=baseline"
    /// "member=student lr=0.1"; repeatable. Printed and added to report.md.
    #[arg(long, num_args = 2, value_names = ["A", "B"], action = clap::ArgAction::Append)]
    pub compare: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub out: Option<PathBuf>,
    pub threshold: Option<f64>,
    pub metric: Option<String>,
    pub max_scatter: usize,
    pub tensorboard: bool,
    /// Pairs of settings to t-test (`--compare A B`).
    pub compare: Vec<[String; 2]>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            out: None,
            threshold: None,
            metric: None,
            max_scatter: 8,
            tensorboard: false,
            compare: Vec::new(),
        }
    }
}

pub fn run(args: ReportArgs) -> Result<()> {
    let opts = ReportOptions {
        out: args.out,
        threshold: args.threshold,
        metric: args.metric,
        max_scatter: args.max_scatter,
        tensorboard: args.tensorboard,
        compare: args.compare.chunks(2).map(|c| [c[0].clone(), c[1].clone()]).collect(),
    };
    let files = report(&args.dir, &opts)?;
    for f in &files {
        crate::outln!("{}", f.display())?;
    }
    Ok(())
}

fn is_run_dir(dir: &Path) -> bool {
    [
        info::RUN_JSON,
        info::CONFIG_TOML,
        info::LOG,
    ]
    .iter()
    .any(|f| dir.join(f).exists())
}

/// Writes the report of `dir`; returns the files written.
pub fn report(dir: &Path, opts: &ReportOptions) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let out = opts.out.clone().unwrap_or_else(|| dir.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut results = collect(dir)?;
    apply_options(&mut results, opts)?;

    let mut files = Vec::new();
    let reps = representatives(&results);
    let single = is_run_dir(dir);
    files.extend(metric_curves(&reps, &results, &out)?);
    files.extend(loss_curve(&reps, &results, &out)?);
    if let Some(f) = bhat_per_epoch(&reps, &results, &out)? {
        files.push(f);
    }
    files.extend(bhat_curve(&reps, &results, &out)?);
    // Sweeps (numeric keys) and bars (other keys).
    if !single {
        files.extend(sweep_figures(&results, &out)?);
    }
    files.extend(scatter_plots(&reps, &results, single, opts.max_scatter, &out)?);
    if opts.tensorboard {
        files.extend(tensorboard_events(&results, dir, &out)?);
    }
    files.extend(write_tables(&results, &files, &out)?);
    Ok(files)
}

/// The results of `dir`: one run directory, an experiment directory (its `experiment.toml`) or
/// a folder of run directories.
fn collect(dir: &Path) -> Result<Results> {
    if is_run_dir(dir) {
        let mut r = Results {
            name: dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into()),
            dir: dir.to_path_buf(),
            pair_over: None,
            threshold_metric: "plcc".into(),
            keys: vec![],
            compare: Vec::new(),
            rows: vec![ResultRow {
                index: 0,
                name: String::new(),
                params: vec![],
                data: Some(RunData::load(dir)?),
                threshold: None,
                epochs_to_threshold: None,
            }],
        };
        r.rows[0].name = r.name.clone();
        Ok(r)
    } else if dir.join(EXPERIMENT_TOML).exists() {
        let text = std::fs::read_to_string(dir.join(EXPERIMENT_TOML))?;
        let name = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exp = Experiment::parse(&text, &name)
            .with_context(|| format!("in {}", dir.join(EXPERIMENT_TOML).display()))?;
        Results::collect(&exp.results_spec()?, dir)
    } else {
        let r = Results::from_folder(dir)?;
        if r.rows.is_empty() {
            bail!(
                "{}: neither a run directory nor a folder of run directories",
                dir.display()
            );
        }
        Ok(r)
    }
}

/// `--metric` and `--threshold` (the circles again), and each `--compare` (printed, and kept for
/// report.md).
fn apply_options(results: &mut Results, opts: &ReportOptions) -> Result<()> {
    if let Some(m) = &opts.metric {
        results.threshold_metric = m.clone();
    }
    if opts.threshold.is_some() || opts.metric.is_some() {
        let thr = opts
            .threshold
            .or_else(|| results.rows.iter().find_map(|r| r.threshold));
        results.apply_threshold(thr, None);
    }
    for [a, b] in &opts.compare {
        let c = tables::compare(results, a, b).with_context(|| format!("--compare '{a}' '{b}'"))?;
        crate::outln!(
            "{a} vs {b}: {} pairs, Δ SROCC {:+.4} (p = {:.4}), Δ PLCC {:+.4} (p = {:.4})",
            c.n, c.srocc_diff, c.srocc_p, c.plcc_diff, c.plcc_p
        )?;
        results.compare.push([a.clone(), b.clone()]);
    }
    Ok(())
}

/// Metric-vs-epoch curves (the paper's Fig. 1: PLCC, SROCC and RMSE per epoch), validation and
/// test: `curves_<stage>_<metric>.png`.
fn metric_curves(reps: &[&ResultRow], results: &Results, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for m in ["plcc", "srocc", "rmse"] {
        for stage in ["val", "test"] {
            let chart = metric_chart(reps, results, stage, m);
            if chart.series.is_empty() {
                continue;
            }
            let f = out.join(format!("curves_{stage}_{m}.png"));
            plots::line_chart(&f, &chart)?;
            files.push(f);
        }
    }
    Ok(files)
}

/// The chart of metric `m` on `stage` per epoch, one line per setting; on the threshold's
/// metric of validation, circles at each run's first epoch past it and the thresholds' lines.
fn metric_chart(reps: &[&ResultRow], results: &Results, stage: &str, m: &str) -> LineChart {
    let metric = results.threshold_metric.as_str();
    let mut chart = LineChart {
        title: format!(
            "{} {} per epoch{}",
            stage,
            m.to_uppercase(),
            pair_note(results)
        ),
        x_label: "Epoch".into(),
        y_label: format!("{stage} {}", m.to_uppercase()),
        ..Default::default()
    };
    for row in reps {
        let d = row.data.as_ref().unwrap();
        let pts: Vec<(f64, f64)> = d
            .epochs
            .iter()
            .map(|e| (e.epoch as f64, epoch_value(e, stage, m)))
            .collect();
        if pts.iter().all(|p| !p.1.is_finite()) {
            continue;
        }
        let mut markers = Vec::new();
        if stage == "val" && m == metric {
            if let Some(e) = row.epochs_to_threshold {
                markers.extend(pts.iter().filter(|p| p.0 as usize == e).copied());
            }
        }
        chart.series.push(Series {
            label: label_of(row, results),
            points: pts,
            markers,
            thin: false,
        });
    }
    if !chart.series.is_empty() && stage == "val" && m == metric {
        for t in reps.iter().filter_map(|r| r.threshold) {
            if !chart.hlines.iter().any(|h| h.0 == t) {
                chart.hlines.push((t, format!("threshold {t:.4}")));
            }
        }
    }
    chart
}

/// An epoch's metric `m` (plcc, srocc or rmse) on `stage` (val or test).
fn epoch_value(e: &EpochPoint, stage: &str, m: &str) -> f64 {
    match (stage, m) {
        ("val", "plcc") => e.val_plcc,
        ("val", "rmse") => e.val_rmse,
        ("val", _) => e.val_srocc,
        (_, "plcc") => e.test_plcc,
        (_, "rmse") => e.test_rmse,
        _ => e.test_srocc,
    }
}

/// Training loss per epoch (`loss.png`), one line per setting.
fn loss_curve(reps: &[&ResultRow], results: &Results, out: &Path) -> Result<Option<PathBuf>> {
    let chart = LineChart {
        title: format!("training loss per epoch{}", pair_note(results)),
        x_label: "Epoch".into(),
        y_label: "loss (mean over batches)".into(),
        series: reps
            .iter()
            .filter_map(|row| {
                let d = row.data.as_ref()?;
                (!d.epochs.is_empty()).then(|| Series {
                    label: label_of(row, results),
                    points: d.epochs.iter().map(|e| (e.epoch as f64, e.loss)).collect(),
                    ..Default::default()
                })
            })
            .collect(),
        ..Default::default()
    };
    if chart.series.is_empty() {
        return Ok(None);
    }
    let f = out.join("loss.png");
    plots::line_chart(&f, &chart)?;
    Ok(Some(f))
}

/// b̂ per iteration (`bhat.png`), one thin line per setting.
fn bhat_curve(reps: &[&ResultRow], results: &Results, out: &Path) -> Result<Option<PathBuf>> {
    let chart = LineChart {
        title: format!(
            "b-hat (norm of the centred fused predictions) per iteration{}",
            pair_note(results)
        ),
        x_label: "Iteration".into(),
        y_label: "b-hat".into(),
        series: reps
            .iter()
            .filter_map(|row| {
                let d = row.data.as_ref()?;
                (!d.bhat.is_empty()).then(|| Series {
                    label: label_of(row, results),
                    points: d.bhat.iter().map(|(i, b)| (*i as f64, *b)).collect(),
                    thin: true,
                    ..Default::default()
                })
            })
            .collect(),
        ..Default::default()
    };
    if chart.series.is_empty() {
        return Ok(None);
    }
    let f = out.join("bhat.png");
    plots::line_chart(&f, &chart)?;
    Ok(Some(f))
}

/// Predicted-vs-MOS scatter plots of the test set with the fitted line, of at most `max` runs
/// with `predictions_test.csv` (`scatter.png` for one run directory, else
/// `scatter_<run>.png`).
fn scatter_plots(
    reps: &[&ResultRow],
    results: &Results,
    single: bool,
    max: usize,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for row in reps.iter().take(max) {
        let d = row.data.as_ref().unwrap();
        let p = d.dir.join("predictions_test.csv");
        if !p.exists() {
            continue;
        }
        let (x, y) = read_predictions(&p)?;
        let line = d.mapping.as_ref().map(|m| (m.k, m.b));
        let note = d
            .test
            .as_ref()
            .map(|t| {
                format!(
                    "test SROCC {:.4}, PLCC {:.4} (n = {})",
                    t.srocc, t.plcc, t.n
                )
            })
            .unwrap_or_default();
        let f = out.join(if single {
            "scatter.png".to_string()
        } else {
            format!("scatter_{}.png", row.name)
        });
        plots::scatter(
            &f,
            &format!("{}: test set", label_of(row, results)),
            "fused-head output",
            &x,
            &y,
            line,
            &note,
        )?;
        files.push(f);
    }
    Ok(files)
}

/// TensorBoard event files of every run with a log, into the report's folder (the runs are
/// only read): one sub-folder per run, as TensorBoard lists runs (`dir` itself: `tensorboard/`).
fn tensorboard_events(results: &Results, dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let single = results.rows.len() == 1 && results.rows[0].data.as_ref().is_some_and(|d| d.dir == dir);
    for row in &results.rows {
        if let Some(d) = row
            .data
            .as_ref()
            .filter(|d| d.dir.join(info::LOG).exists())
        {
            let dest = match single {
                true => out.join("tensorboard"),
                false => out.join("tensorboard").join(&row.name),
            };
            files.push(crate::report::tensorboard::write_events(&d.dir, &dest)?);
        }
    }
    Ok(files)
}

/// `report.md` (the tables, then the PNGs among `figures`) and `results.csv`; returns both.
fn write_tables(results: &Results, figures: &[PathBuf], out: &Path) -> Result<[PathBuf; 2]> {
    let mut md = tables::results_markdown(results);
    md.push_str("\n## Figures\n\n");
    for f in figures
        .iter()
        .filter(|f| f.extension().and_then(|x| x.to_str()) == Some("png"))
    {
        let name = f.file_name().unwrap().to_string_lossy();
        md.push_str(&format!("![{name}]({name})\n\n"));
    }
    let f = out.join("report.md");
    info::write_atomic(&f, md.as_bytes())?;
    let csv = out.join("results.csv");
    info::write_atomic(&csv, tables::results_csv(results)?.as_bytes())?;
    Ok([f, csv])
}

fn pair_note(r: &Results) -> String {
    match (&r.pair_over, r.rows.len()) {
        (Some(p), _) => {
            let first = r
                .rows
                .iter()
                .find_map(|row| row.param(p).map(str::to_string))
                .unwrap_or_default();
            format!(" ({}={first})", short_key(p))
        }
        _ => String::new(),
    }
}

fn label_of(row: &ResultRow, r: &Results) -> String {
    let s = row.setting(r.pair_over.as_deref());
    if s == "base" {
        row.name.clone()
    } else {
        s
    }
}

/// The first run with data of each setting (one curve per setting).
fn representatives(r: &Results) -> Vec<&ResultRow> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for row in &r.rows {
        let Some(d) = &row.data else { continue };
        if d.epochs.is_empty() && !d.finished {
            continue;
        }
        let s = row.setting(r.pair_over.as_deref());
        if r.pair_over.is_some() && seen.contains(&s) {
            continue;
        }
        seen.push(s);
        out.push(row);
    }
    out
}

fn read_predictions(p: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut rd = csv::Reader::from_path(p).with_context(|| format!("reading {}", p.display()))?;
    let h = rd.headers()?.clone();
    let col = |n: &str| {
        h.iter()
            .position(|c| c == n)
            .with_context(|| format!("{}: no column {n}", p.display()))
    };
    // The prediction head's raw output: the column before `predicted_mos` (`fused` for
    // LinearityIQA, `score` for one-head models).
    let cf = col("predicted_mos")?
        .checked_sub(1)
        .filter(|&c| c > 0)
        .with_context(|| format!("{}: no head column before predicted_mos", p.display()))?;
    let cm = col("mos")?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for rec in rd.records() {
        let rec = rec?;
        x.push(rec[cf].parse::<f64>().unwrap_or(f64::NAN));
        y.push(rec[cm].parse::<f64>().unwrap_or(f64::NAN));
    }
    Ok((x, y))
}

/// The distinct labels of a swept key, in order.
fn distinct(r: &Results, key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for row in &r.rows {
        if let Some(l) = row.param(key) {
            if !out.iter().any(|x| x == l) {
                out.push(l.to_string());
            }
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sweep curves (numeric keys; log x when the values span ≥ 100×) and bar charts (other keys):
/// mean test SROCC and PLCC over the runs with each value.
fn sweep_figures(r: &Results, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for key in r
        .keys
        .iter()
        .filter(|k| Some(k.as_str()) != r.pair_over.as_deref())
    {
        let values = tested_values(r, key);
        if values.len() < 2 {
            continue;
        }
        let nums: Option<Vec<f64>> = values.iter().map(|l| l.parse::<f64>().ok()).collect();
        // Lines (sweeps) or bar colours (categories): the first other non-pairing key with
        // several values (e.g. the loss).
        let group_key = r.keys.iter().find(|k| {
            *k != key && Some(k.as_str()) != r.pair_over.as_deref() && distinct(r, k).len() >= 2
        });
        let sweep = Sweep {
            r,
            key,
            group_key: group_key.map(String::as_str),
            groups: group_key
                .map(|g| distinct(r, g))
                .unwrap_or_else(|| vec![String::new()]),
        };
        match nums {
            Some(xs) => files.extend(sweep.lines(&values, &xs, out)?),
            None => files.push(sweep.bars(values, out)?),
        }
    }
    Ok(files)
}

/// The values of `key` (in order) of the runs with a finite test SROCC.
fn tested_values(r: &Results, key: &str) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for row in &r.rows {
        let (Some(l), Some(t)) = (
            row.param(key),
            row.data.as_ref().and_then(|d| d.test.clone()),
        ) else {
            continue;
        };
        if t.srocc.is_finite() && !values.iter().any(|v| v == l) {
            values.push(l.to_string());
        }
    }
    values
}

/// The figures of one swept key: one line (or bar colour) per value of `group_key`.
struct Sweep<'a> {
    r: &'a Results,
    key: &'a str,
    group_key: Option<&'a str>,
    /// The values of `group_key` (one empty group without it).
    groups: Vec<String>,
}

impl Sweep<'_> {
    /// The key as the figures name it, and as their file names spell it.
    fn names(&self) -> (&str, String) {
        let sk = short_key(self.key);
        (sk, sk.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"))
    }

    /// The finite test SROCCs (`which` 0) or PLCCs (1) of the runs with `value` in group `g`.
    fn tested(&self, value: &str, g: &str, which: usize) -> Vec<f64> {
        self.r
            .rows
            .iter()
            .filter(|row| {
                row.param(self.key) == Some(value)
                    && self.group_key.map_or(true, |gk| row.param(gk) == Some(g))
            })
            .filter_map(|row| row.data.as_ref().and_then(|d| d.test.clone()))
            .map(|t| if which == 0 { t.srocc } else { t.plcc })
            .filter(|x| x.is_finite())
            .collect()
    }

    /// A numeric key: `sweep_<key>_srocc.png` and `sweep_<key>_plcc.png`, the mean over the
    /// runs of each value (`values`, as numbers `xs`) per group.
    fn lines(&self, values: &[String], xs: &[f64], out: &Path) -> Result<Vec<PathBuf>> {
        let (sk, fname) = self.names();
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &x| {
            (a.0.min(x), a.1.max(x))
        });
        let log_x = lo > 0.0 && hi / lo >= 100.0;
        let mut files = Vec::new();
        for (which, mname) in [(0usize, "SROCC"), (1, "PLCC")] {
            let mut series = Vec::new();
            for g in &self.groups {
                let mut pts: Vec<(f64, f64)> = Vec::new();
                for (l, x) in values.iter().zip(xs) {
                    let v = self.tested(l, g, which);
                    if !v.is_empty() {
                        pts.push((*x, mean(&v)));
                    }
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let label = match self.group_key {
                    Some(gk) => format!("{}={g}", short_key(gk)),
                    None => mname.to_string(),
                };
                series.push(Series {
                    label,
                    points: pts,
                    ..Default::default()
                });
            }
            let chart = LineChart {
                title: format!("test {mname} vs {sk}"),
                x_label: sk.to_string(),
                y_label: format!("test {mname}"),
                series,
                log_x,
                dots: true,
                ..Default::default()
            };
            let f = out.join(format!("sweep_{fname}_{}.png", mname.to_lowercase()));
            plots::line_chart(&f, &chart)?;
            files.push(f);
        }
        Ok(files)
    }

    /// Another key: `bars_<key>.png`, test SROCC and PLCC per value (`cats`) and group, the mean
    /// over the runs (no bar without runs).
    fn bars(&self, cats: Vec<String>, out: &Path) -> Result<PathBuf> {
        let (sk, fname) = self.names();
        let cell = |c: &str, g: &str, which: usize| -> f64 {
            let v = self.tested(c, g, which);
            if v.is_empty() {
                f64::NAN
            } else {
                mean(&v)
            }
        };
        let table = |which: usize| -> Vec<Vec<f64>> {
            cats.iter()
                .map(|c| self.groups.iter().map(|g| cell(c, g, which)).collect())
                .collect()
        };
        let title = match self.group_key {
            Some(g) => format!("test performance per {sk} and {}", short_key(g)),
            None => format!("test performance per {sk}"),
        };
        let f = out.join(format!("bars_{fname}.png"));
        plots::bar_chart(
            &f,
            &title,
            &cats,
            &self.groups,
            &[
                ("test SROCC".into(), table(0)),
                ("test PLCC".into(), table(1)),
            ],
        )?;
        Ok(f)
    }
}

/// The paper's Fig. 9: the mean b̂ of each epoch (`bhat_per_epoch.png`), one line per setting.
fn bhat_per_epoch(reps: &[&ResultRow], results: &Results, out: &Path) -> Result<Option<PathBuf>> {
    let series: Vec<Series> = reps
        .iter()
        .filter_map(|row| {
            let d = row.data.as_ref()?;
            let points: Vec<(f64, f64)> =
                d.epochs.iter().filter(|e| e.bhat_mean.is_finite()).map(|e| (e.epoch as f64, e.bhat_mean)).collect();
            (!points.is_empty()).then(|| Series { label: label_of(row, results), points, ..Default::default() })
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let chart = LineChart {
        title: format!("b-hat per epoch (mean over its iterations){}", pair_note(results)),
        x_label: "Epoch".into(),
        y_label: "b-hat".into(),
        series,
        ..Default::default()
    };
    let f = out.join("bhat_per_epoch.png");
    plots::line_chart(&f, &chart)?;
    Ok(Some(f))
}
