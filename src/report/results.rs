//! What a finished (or interrupted) run directory holds, read back for tables and plots (the
//! experiment runner produces these folders; the report only reads them):
//! `run.json` (best epoch, test metrics, mapping), `log.jsonl` (per-epoch validation metrics,
//! per-iteration loss and b̂), `config.toml`. Read as JSON values so that NaN (written as null)
//! and older files load.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use normiqa_core::metrics::{fit_logistic, LinearMap, Logistic, Metrics};
use serde_json::Value as Json;

use crate::run::{info as checkpoint, TrainConfig};

/// Written into a run directory when its run failed (by `normiqa run`); removed when it is run
/// again.
pub use crate::run::folder::FAILED;

/// The last segment of a dotted key (`loss.kind` → `kind`), except for `kind`/`type`, where the
/// previous one is used (`loss.kind` → `loss`).
pub fn short_key(key: &str) -> &str {
    let key = key.split(',').next().unwrap_or(key).trim();
    let mut it = key.rsplit('.');
    let last = it.next().unwrap_or(key);
    if matches!(last, "kind" | "type") {
        it.next().unwrap_or(last)
    } else {
        last
    }
}

/// One run of an experiment as the results table lists it.
pub struct PlannedRun {
    pub index: usize,
    /// Its directory's name.
    pub name: String,
    /// (key, label) of its swept values.
    pub params: Vec<(String, String)>,
}

/// What an experiment file says about its results.
pub struct ResultsSpec {
    pub name: String,
    pub pair_over: Option<String>,
    pub threshold_metric: Option<String>,
    pub threshold: Option<f64>,
    pub threshold_baseline: Option<String>,
    pub runs: Vec<PlannedRun>,
    /// Pairs of settings to t-test ([`crate::report::tables::compare`]).
    pub compare: Vec<[String; 2]>,
}

/// One epoch of a run's log (the selection head's validation metrics; test when logged).
#[derive(Debug, Clone, Default)]
pub struct EpochPoint {
    pub epoch: usize,
    pub loss: f64,
    pub val_srocc: f64,
    pub val_plcc: f64,
    pub test_srocc: f64,
    pub test_plcc: f64,
    pub val_rmse: f64,
    pub test_rmse: f64,
    pub bhat_mean: f64,
}

/// A run directory, read back.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    pub config: Option<TrainConfig>,
    /// `run.json` exists (the run finished).
    pub finished: bool,
    pub best_epoch: Option<usize>,
    /// Test metrics of the fused head (after the train-set mapping).
    pub test: Option<Metrics>,
    /// Validation metrics of the best epoch (selection head).
    pub val: Option<Metrics>,
    /// k, b of the fused head.
    pub mapping: Option<LinearMap>,
    pub train_s: Option<f64>,
    pub epochs: Vec<EpochPoint>,
    /// (global iteration, b̂) per step.
    pub bhat: Vec<(usize, f64)>,
    /// Why the run failed, from `failed.txt` (written by `normiqa run`).
    pub failure: Option<String>,
    /// PLCC after the VQEG 4- and 5-parameter logistic mappings fitted on the run's test
    /// predictions (`predictions_test.csv`), as pyiqa and most papers report them.
    pub logistic_plcc: [Option<f64>; 2],
    /// Which epoch the test metrics are of (finished runs).
    pub epoch_kind: Option<EpochKind>,
}

/// Which epoch a finished run's test metrics are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochKind {
    /// The epoch of best validation SROCC or PLCC (`val_criterion`) of a `train` run.
    BestVal,
    /// The last epoch: a run without a validation set, or a member of an MRKD pair (which
    /// reports the final epoch, as the MRKD paper does).
    Final,
}

impl EpochKind {
    pub fn label(&self) -> &'static str {
        match self {
            EpochKind::BestVal => "best val",
            EpochKind::Final => "final",
        }
    }
}

/// PLCC after each VQEG logistic mapping of `predicted_mos` to `mos` in a run's
/// `predictions_test.csv` (none when the file is missing or a fit fails).
fn logistic_plcc(dir: &Path) -> [Option<f64>; 2] {
    let read = || -> Option<(Vec<f64>, Vec<f64>)> {
        let mut rd = csv::Reader::from_path(dir.join("predictions_test.csv")).ok()?;
        let h = rd.headers().ok()?.clone();
        let (cm, cp) = (h.iter().position(|c| c == "mos")?, h.iter().position(|c| c == "predicted_mos")?);
        let (mut mos, mut pred) = (Vec::new(), Vec::new());
        for rec in rd.records() {
            let rec = rec.ok()?;
            mos.push(rec[cm].parse().ok()?);
            pred.push(rec[cp].parse().ok()?);
        }
        Some((pred, mos))
    };
    let Some((pred, mos)) = read() else {
        return [None, None];
    };
    Logistic::ALL.map(|c| fit_logistic(c, &pred, &mos).ok().map(|f| f.plcc))
}

fn f(v: &Json) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn metrics_of(v: &Json) -> Option<Metrics> {
    if !v.is_object() {
        return None;
    }
    Some(Metrics {
        srocc: f(&v["srocc"]),
        plcc: f(&v["plcc"]),
        krocc: f(&v["krocc"]),
        rmse: f(&v["rmse"]),
        n: v["n"].as_u64().unwrap_or(0) as usize,
    })
}

impl RunData {
    /// A run folder with nothing in it yet.
    pub fn empty(dir: &Path) -> Self {
        RunData {
            dir: dir.to_path_buf(),
            config: None,
            finished: false,
            best_epoch: None,
            test: None,
            val: None,
            mapping: None,
            train_s: None,
            epochs: Vec::new(),
            bhat: Vec::new(),
            failure: None,
            logistic_plcc: [None, None],
            epoch_kind: None,
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let config: Option<TrainConfig> =
            std::fs::read_to_string(dir.join(checkpoint::CONFIG_TOML))
                .ok()
                .and_then(|s| toml::from_str(&s).ok());
        let sel = config.as_ref().map(|c| c.selection_head()).unwrap_or(2);
        let mut r = RunData {
            config,
            failure: std::fs::read_to_string(dir.join(FAILED)).ok(),
            ..RunData::empty(dir)
        };
        if let Ok(s) = std::fs::read_to_string(dir.join(checkpoint::RUN_JSON)) {
            let j: Json = serde_json::from_str(&s)
                .with_context(|| format!("parsing {}", dir.join(checkpoint::RUN_JSON).display()))?;
            r.finished = true;
            r.logistic_plcc = logistic_plcc(dir);
            r.best_epoch = j["best_epoch"].as_u64().map(|x| x as usize);
            // The prediction head is the last one.
            let last = |v: &Json| v.as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
            r.test = metrics_of(&last(&j["test"]));
            r.val = metrics_of(&j["val"][sel]);
            r.mapping = last(&j["mapping"]).as_object().map(|m| LinearMap {
                k: m.get("k").map(f).unwrap_or(f64::NAN),
                b: m.get("b").map(f).unwrap_or(f64::NAN),
            });
            r.train_s = j["timings"]["train_s"].as_f64();
            // MRKD pair members (`<pair>/teacher`, beside the pair's pair.json) keep the last epoch.
            let member = dir.file_name().is_some_and(|n| n == "teacher" || n == "student");
            let in_pair = member
                && dir.parent().is_some_and(|p| {
                    p.join(crate::distill::pair::PAIR_RESULT).exists()
                        || (p.join("teacher").is_dir() && p.join("student").is_dir())
                });
            let no_val = j["sizes"]["val"].as_u64() == Some(0);
            r.epoch_kind = Some(if in_pair || no_val { EpochKind::Final } else { EpochKind::BestVal });
            if r.config.is_none() {
                r.config = serde_json::from_value(j["config"].clone()).ok();
            }
        }
        if let Ok(s) = std::fs::read_to_string(dir.join(checkpoint::LOG)) {
            for line in s.lines() {
                let Ok(j) = serde_json::from_str::<Json>(line) else {
                    continue;
                };
                match j["event"].as_str() {
                    Some("epoch") => r.epochs.push(EpochPoint {
                        epoch: j["epoch"].as_u64().unwrap_or(0) as usize,
                        loss: f(&j["loss"]),
                        val_srocc: f(&j["val"][sel]["srocc"]),
                        val_plcc: f(&j["val"][sel]["plcc"]),
                        test_srocc: f(&j["test"][sel]["srocc"]),
                        test_plcc: f(&j["test"][sel]["plcc"]),
                        val_rmse: f(&j["val"][sel]["rmse"]),
                        test_rmse: f(&j["test"][sel]["rmse"]),
                        bhat_mean: f(&j["bhat_mean"]),
                    }),
                    Some("iter") => r
                        .bhat
                        .push((j["iter"].as_u64().unwrap_or(0) as usize, f(&j["bhat"]))),
                    _ => {}
                }
            }
        }
        Ok(r)
    }

    /// The validation metric of an epoch: `plcc` or `srocc`.
    pub fn val_metric(&self, metric: &str) -> Vec<(usize, f64)> {
        self.epochs
            .iter()
            .map(|e| {
                (
                    e.epoch,
                    if metric == "srocc" {
                        e.val_srocc
                    } else {
                        e.val_plcc
                    },
                )
            })
            .collect()
    }

    /// The first epoch (1-based) whose validation metric reaches `threshold`.
    pub fn epochs_to(&self, metric: &str, threshold: f64) -> Option<usize> {
        self.val_metric(metric)
            .into_iter()
            .find(|(_, v)| *v >= threshold)
            .map(|(e, _)| e)
    }
}

/// One row of the results table: a combination and what its run produced.
#[derive(Debug, Clone)]
pub struct ResultRow {
    pub index: usize,
    pub name: String,
    /// (key, label) of the swept values.
    pub params: Vec<(String, String)>,
    pub data: Option<RunData>,
    /// The threshold applied to this run's validation curve, and the first epoch that reached it.
    pub threshold: Option<f64>,
    pub epochs_to_threshold: Option<usize>,
}

impl ResultRow {
    pub fn status(&self) -> &'static str {
        match &self.data {
            Some(d) if d.finished => "done",
            Some(d) if d.failure.is_some() => "failed",
            Some(d) if !d.epochs.is_empty() => "interrupted",
            _ => "pending",
        }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, l)| l.as_str())
    }

    /// The name without the pairing key: runs of the same setting on other splits/seeds.
    pub fn setting(&self, pair_over: Option<&str>) -> String {
        let parts: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != pair_over)
            .map(|(k, l)| format!("{}={l}", short_key(k)))
            .collect();
        if parts.is_empty() {
            "base".into()
        } else {
            parts.join(" ")
        }
    }
}

/// An experiment's results: every combination, in order.
#[derive(Debug, Clone)]
pub struct Results {
    pub name: String,
    pub dir: PathBuf,
    pub pair_over: Option<String>,
    pub threshold_metric: String,
    /// Swept keys in order (the table's parameter columns).
    pub keys: Vec<String>,
    pub rows: Vec<ResultRow>,
    /// Pairs of settings to t-test ([`crate::report::tables::compare`]).
    pub compare: Vec<[String; 2]>,
}

impl Results {
    /// Reads the run directories of an experiment (`dir/<run name>/`).
    pub fn collect(spec: &ResultsSpec, dir: &Path) -> Result<Self> {
        let mut keys: Vec<String> = Vec::new();
        for c in &spec.runs {
            for (k, _) in &c.params {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let rows = spec
            .runs
            .iter()
            .map(|c| row_of(c, dir))
            .collect::<Result<Vec<_>>>()?;
        let mut r = Results {
            name: spec.name.clone(),
            dir: dir.to_path_buf(),
            pair_over: spec.pair_over.clone(),
            threshold_metric: spec
                .threshold_metric
                .clone()
                .unwrap_or_else(|| "plcc".into()),
            keys,
            rows,
            compare: spec.compare.clone(),
        };
        r.apply_threshold(spec.threshold, spec.threshold_baseline.as_deref());
        Ok(r)
    }

    /// A folder of run directories without an experiment file: one row per sub-folder with a
    /// `config.toml` or `run.json`, named after the folder.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.join(checkpoint::RUN_JSON).exists() || p.join(checkpoint::CONFIG_TOML).exists()
            })
            .collect();
        subs.sort();
        let rows = subs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(ResultRow {
                    index: i,
                    name: p.file_name().unwrap().to_string_lossy().into_owned(),
                    params: vec![],
                    data: Some(RunData::load(p)?),
                    threshold: None,
                    epochs_to_threshold: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Results {
            name: dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: dir.to_path_buf(),
            pair_over: None,
            threshold_metric: "plcc".into(),
            keys: vec![],
            rows,
            compare: Vec::new(),
        })
    }

    /// Sets each row's threshold (a number, or the epoch-1 value of the baseline setting with
    /// the same pairing value) and its epochs-to-threshold.
    pub fn apply_threshold(&mut self, value: Option<f64>, baseline: Option<&str>) {
        let metric = self.threshold_metric.clone();
        let pair = self.pair_over.clone();
        let firsts: Vec<(Option<String>, Option<f64>)> = self
            .rows
            .iter()
            .map(|r| {
                let first = r
                    .data
                    .as_ref()
                    .and_then(|d| d.val_metric(&metric).first().map(|x| x.1));
                (
                    pair.as_deref().and_then(|p| r.param(p)).map(str::to_string),
                    first,
                )
            })
            .collect();
        for i in 0..self.rows.len() {
            let thr = match (value, baseline) {
                (Some(v), _) => Some(v),
                (None, Some(b)) => {
                    // The baseline run with the same pairing value that shares the most swept
                    // values with this run (e.g. the same learning rate).
                    let me = &self.rows[i];
                    let shared =
                        |o: &ResultRow| o.params.iter().filter(|p| me.params.contains(p)).count();
                    (0..self.rows.len())
                        .filter(|&j| firsts[j].0 == firsts[i].0 && self.rows[j].name.contains(b))
                        .max_by_key(|&j| (shared(&self.rows[j]), std::cmp::Reverse(j)))
                        .and_then(|j| firsts[j].1)
                }
                (None, None) => None,
            };
            let row = &mut self.rows[i];
            row.threshold = thr.filter(|t| t.is_finite());
            row.epochs_to_threshold = match (&row.data, row.threshold) {
                (Some(d), Some(t)) => d.epochs_to(&metric, t),
                _ => None,
            };
        }
    }
}

fn row_of(c: &PlannedRun, dir: &Path) -> Result<ResultRow> {
    let run_dir = dir.join(&c.name);
    let mut data = if run_dir.exists() {
        Some(RunData::load(&run_dir)?)
    } else {
        None
    };
    // A member of an MRKD pair (`<pair>/teacher`): the pair run writes `failed.txt` into the
    // pair's folder, which holds the member folders (absent when it failed before training).
    if let Some((pair, _)) = c.name.split_once('/') {
        if let Ok(why) = std::fs::read_to_string(dir.join(pair).join(FAILED)) {
            let d = data.get_or_insert_with(|| RunData::empty(&run_dir));
            d.failure.get_or_insert(why);
        }
    }
    Ok(ResultRow {
        index: c.index,
        name: c.name.clone(),
        params: c.params.clone(),
        data,
        threshold: None,
        epochs_to_threshold: None,
    })
}
