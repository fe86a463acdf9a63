//! Experiment files: a base [`TrainConfig`] (the same keys as a run's `config.toml`) plus sweeps.
//!
//! ```toml
//! [experiment]                 # optional: everything here has a default
//! name = "fig1-clive"          # default: the file name without .toml
//! description = "..."
//! pair_over = "data.exp_id"    # paired t-tests pair runs that differ only in this key
//! threshold_metric = "plcc"    # epochs-to-threshold on the validation set: srocc or plcc
//! threshold = 0.8              # a number, or
//! threshold_baseline = "norm-in-norm"  # the epoch-1 value of the setting whose name contains this
//!
//! # the base configuration: any key of config.toml
//! epochs = 30
//! ft_lr_ratio = 0.0
//! [data.dataset]
//! kind = "clive"
//! root = "../shared/data/clive"
//!
//! [sweep]                      # the cartesian product of every key's values, in file order
//! "loss.kind" = [{ type = "mae" }, { type = "mse" }]
//! "data.exp_id" = [0, 1, 2]
//! ```
//!
//! Keys are dotted paths into the configuration (quoted, or written as nested tables). A value
//! can also be `{ values = [...], labels = [...] }` to name the values in run names. Several
//! `[[sweep]]` tables run one product after another (e.g. one-at-a-time sweeps of Fig. 5); runs
//! with identical configurations are run once.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use toml::Value;

use crate::distill::DistillConfig;
use crate::run::TrainConfig;

/// The `[experiment]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentMeta {
    #[serde(default)]
    pub name: Option<String>,
    /// What each run is: `train` (default; the base is a run's `config.toml`) or `distill` (an
    /// MRKD pair: the base is `normiqa distill`'s `[run]` table plus `seed`).
    #[serde(default)]
    pub procedure: ProcedureKind,
    #[serde(default)]
    pub description: Option<String>,
    /// The key whose values pair runs in t-tests (usually `data.exp_id` or `seed`). Default: the
    /// first of those two that is swept.
    #[serde(default)]
    pub pair_over: Option<String>,
    /// `srocc` or `plcc` (default `plcc`), of the selected head on the validation set.
    #[serde(default)]
    pub threshold_metric: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Threshold = the first-epoch value of the setting whose name contains this string (with the
    /// same `pair_over` value), as the dashed line and circles of the paper's Fig. 1.
    #[serde(default)]
    pub threshold_baseline: Option<String>,
    /// Pairs of settings to t-test against each other over the pairing key, each a list of
    /// swept `key=label` values (short keys, as the tables name them), e.g.
    /// `[["loss=p1q2", "loss=p2q1"], ["member=student lambda=baseline", "member=student lr=0.1"]]`.
    #[serde(default)]
    pub compare: Vec<[String; 2]>,
}

/// The procedure an experiment's runs use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcedureKind {
    #[default]
    Train,
    Distill,
}

/// One MRKD pair run of a `distill` experiment: the pair's configuration and its seed (split,
/// initialisation, batch order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillRun {
    pub seed: u64,
    #[serde(flatten)]
    pub run: DistillConfig,
}

/// One run of a `distill` experiment.
#[derive(Debug, Clone)]
pub struct DistillCombo {
    pub index: usize,
    pub name: String,
    pub params: Vec<(String, String, Value)>,
    pub run: DistillRun,
}

/// One swept key: its dotted path, its values and their labels in run names.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    pub key: String,
    pub values: Vec<Value>,
    pub labels: Vec<String>,
}

/// A parsed experiment file.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub meta: ExperimentMeta,
    /// The base configuration as a TOML table (the file without `[experiment]` and `[sweep]`).
    pub base: toml::Table,
    /// One cartesian product per `[[sweep]]` table (one empty product when there is no sweep).
    pub sweeps: Vec<Vec<SweepAxis>>,
    /// The file it came from (for the copy in the experiment directory).
    pub source: String,
}

/// One run of an experiment.
#[derive(Debug, Clone)]
pub struct Combo {
    /// Position in the experiment (0-based), the `--only` index.
    pub index: usize,
    /// Directory name: the swept values, e.g. `loss=mse_exp_id=3`; `base` without sweeps.
    pub name: String,
    /// (key, label, value) of every swept key of this run's product.
    pub params: Vec<(String, String, Value)>,
    pub config: TrainConfig,
}

impl Experiment {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading experiment file {}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("experiment")
            .to_string();
        Self::parse(&text, &stem).with_context(|| format!("in experiment file {}", path.display()))
    }

    /// Parses an experiment; `default_name` names it when `[experiment] name` is absent.
    pub fn parse(text: &str, default_name: &str) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text).context("TOML syntax")?;
        let meta: ExperimentMeta = match table.remove("experiment") {
            Some(v) => v.try_into().context(
                "[experiment] table (in TOML, keys written after a [table] header belong to that table: put the base configuration keys before [experiment])",
            )?,
            None => ExperimentMeta::default(),
        };
        let sweeps = match table.remove("sweep") {
            None => vec![vec![]],
            Some(Value::Table(t)) => vec![parse_sweep(&t)?],
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, t) in a.into_iter().enumerate() {
                    let Value::Table(t) = t else {
                        bail!("[[sweep]] number {}: expected a table", i + 1)
                    };
                    out.push(
                        parse_sweep(&t).with_context(|| format!("[[sweep]] number {}", i + 1))?,
                    );
                }
                out
            }
            Some(_) => bail!("`sweep` must be a table ([sweep]) or an array of tables ([[sweep]])"),
        };
        if let Some(m) = &meta.threshold_metric {
            if m != "srocc" && m != "plcc" {
                bail!("[experiment] threshold_metric = \"{m}\": expected \"srocc\" or \"plcc\"");
            }
        }
        let name = meta
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_string());
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            bail!("[experiment] name = \"{name}\": must be a plain directory name");
        }
        let base = with_defaults(table, meta.procedure)?;
        let exp = Experiment {
            name,
            meta,
            base,
            sweeps,
            source: text.to_string(),
        };
        // Check the whole product now, so that a typo fails before the first run.
        exp.check()?;
        Ok(exp)
    }

    /// Overrides a key of the base configuration (e.g. a dataset path), then checks every run.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        set_path(&mut self.base, key, value)?;
        self.check()
    }

    /// Expands every run of the experiment's procedure (errors name the run and the key).
    fn check(&self) -> Result<()> {
        match self.meta.procedure {
            ProcedureKind::Train => self.combos().map(|_| ()),
            ProcedureKind::Distill => self.distill_combos().map(|_| ()),
        }
    }

    /// The key that pairs runs in t-tests, if any.
    pub fn pair_over(&self) -> Option<String> {
        if let Some(k) = &self.meta.pair_over {
            return Some(k.clone());
        }
        let swept: Vec<&str> = self
            .sweeps
            .iter()
            .flatten()
            .map(|a| a.key.as_str())
            .collect();
        ["data.exp_id", "seed"]
            .into_iter()
            .find(|k| swept.contains(k))
            .map(str::to_string)
    }

    /// Every run, in order: each product in file order, the last key varying fastest. Runs whose
    /// configuration equals an earlier run's are left out.
    pub fn combos(&self) -> Result<Vec<Combo>> {
        if self.meta.procedure != ProcedureKind::Train {
            bail!("experiment {}: its runs are `distill` pairs, not `train` runs", self.name);
        }
        let runs = self.expand(|table| {
            let config: TrainConfig = parse_checked(table)?;
            config.validate()?;
            Ok(config)
        })?;
        Ok(runs
            .into_iter()
            .map(|(index, name, params, config)| Combo { index, name, params, config })
            .collect())
    }

    /// The runs of a `distill` experiment, in the order of [`Experiment::combos`].
    pub fn distill_combos(&self) -> Result<Vec<DistillCombo>> {
        if self.meta.procedure != ProcedureKind::Distill {
            bail!("experiment {}: set `procedure = \"distill\"` in [experiment] for MRKD pairs", self.name);
        }
        let runs = self.expand(|table| {
            let run: DistillRun = parse_checked(table)?;
            run.run.validate()?;
            Ok(run)
        })?;
        Ok(runs
            .into_iter()
            .map(|(index, name, params, run)| DistillCombo { index, name, params, run })
            .collect())
    }

    /// Every combination of every product, parsed by `parse`, without duplicates.
    #[allow(clippy::type_complexity)]
    fn expand<T: PartialEq>(
        &self,
        parse: impl Fn(toml::Table) -> Result<T>,
    ) -> Result<Vec<(usize, String, Vec<(String, String, Value)>, T)>> {
        let mut out: Vec<(usize, String, Vec<(String, String, Value)>, T)> = Vec::new();
        for axes in &self.sweeps {
            let n: usize = axes.iter().map(|a| a.values.len()).product();
            for flat in 0..n {
                // Mixed-radix digits, last axis fastest.
                let mut rem = flat;
                let mut pick = vec![0usize; axes.len()];
                for (d, a) in axes.iter().enumerate().rev() {
                    pick[d] = rem % a.values.len();
                    rem /= a.values.len();
                }
                let mut table = self.base.clone();
                let mut params = Vec::new();
                for (a, &j) in axes.iter().zip(&pick) {
                    set_swept(&mut table, &a.key, &a.values[j])
                        .with_context(|| format!("sweep key '{}'", a.key))?;
                    params.push((a.key.clone(), a.labels[j].clone(), a.values[j].clone()));
                }
                let name = combo_name(&params);
                let config = parse(table)
                    .with_context(|| format!("the configuration of run {name}"))?;
                if out.iter().any(|c| c.3 == config) {
                    continue;
                }
                if out.iter().any(|c| c.1 == name) {
                    bail!("two runs would share the directory name '{name}': give the sweep values distinct labels");
                }
                out.push((out.len(), name, params, config));
            }
        }
        Ok(out)
    }

    /// What the results table needs to know of this experiment.
    /// A `distill` experiment lists each member of each pair (`<run>/teacher`, `<run>/student`,
    /// with the swept key `member`): the run folders that `train_pair` writes.
    pub fn results_spec(&self) -> Result<crate::report::results::ResultsSpec> {
        use crate::report::results::PlannedRun;
        let plain = |params: Vec<(String, String, Value)>| -> Vec<(String, String)> {
            params.into_iter().map(|(k, l, _)| (k, l)).collect()
        };
        let runs = match self.meta.procedure {
            ProcedureKind::Train => self
                .combos()?
                .into_iter()
                .map(|c| PlannedRun { index: c.index, name: c.name, params: plain(c.params) })
                .collect(),
            ProcedureKind::Distill => {
                let mut runs = Vec::new();
                for c in self.distill_combos()? {
                    for member in ["teacher", "student"] {
                        let mut params = plain(c.params.clone());
                        params.push(("member".into(), member.into()));
                        let name = format!("{}/{member}", c.name);
                        runs.push(PlannedRun { index: c.index, name, params });
                    }
                }
                runs
            }
        };
        Ok(crate::report::results::ResultsSpec {
            name: self.name.clone(),
            pair_over: self.pair_over(),
            threshold_metric: self.meta.threshold_metric.clone(),
            threshold: self.meta.threshold,
            threshold_baseline: self.meta.threshold_baseline.clone(),
            runs,
            compare: self.meta.compare.clone(),
        })
    }

    /// `runs_root/<name>`.
    pub fn dir(&self, runs_root: &Path) -> PathBuf {
        runs_root.join(&self.name)
    }
}

fn parse_sweep(t: &toml::Table) -> Result<Vec<SweepAxis>> {
    let mut axes = Vec::new();
    collect_axes(t, "", &mut axes)?;
    for a in &axes {
        if a.values.is_empty() {
            bail!("sweep key '{}' has no values", a.key);
        }
    }
    Ok(axes)
}

fn collect_axes(t: &toml::Table, prefix: &str, out: &mut Vec<SweepAxis>) -> Result<()> {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Array(values) => {
                let labels = values.iter().map(label_of).collect();
                out.push(SweepAxis {
                    key,
                    values: values.clone(),
                    labels,
                });
            }
            Value::Table(inner) if inner.contains_key("values") => {
                let Some(Value::Array(values)) = inner.get("values") else {
                    bail!("sweep key '{key}': `values` must be an array")
                };
                let labels: Vec<String> = match inner.get("labels") {
                    None => values.iter().map(label_of).collect(),
                    Some(Value::Array(l)) if l.len() == values.len() => l
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| label_of(x))
                        })
                        .collect(),
                    Some(_) => {
                        bail!("sweep key '{key}': `labels` must be an array as long as `values`")
                    }
                };
                out.push(SweepAxis {
                    key,
                    values: values.clone(),
                    labels,
                });
            }
            Value::Table(inner) => collect_axes(inner, &key, out)?,
            other => bail!("sweep key '{key}': expected an array of values, got {other}"),
        }
    }
    Ok(())
}

/// The file's base configuration over the defaults of every key, so that a partial `[model]`
/// table (e.g. only `backbone`) is complete. Tagged tables (`type`/`kind` keys: the loss, the
/// dataset, the optimiser, the schedule) replace the default as a whole.
fn with_defaults(user: toml::Table, procedure: ProcedureKind) -> Result<toml::Table> {
    let defaults = match procedure {
        ProcedureKind::Train => toml::Value::try_from(TrainConfig::new(crate::run::dataset::clive::spec(PathBuf::new())))?,
        ProcedureKind::Distill => {
            let data = TrainConfig::new(crate::run::dataset::clive::spec(PathBuf::new())).data;
            let run = DistillConfig::new(
                data,
                crate::distill::mrkd::defaults::TEACHER_LR,
                crate::distill::mrkd::defaults::STUDENT_LR,
            );
            toml::Value::try_from(DistillRun { seed: crate::distill::mrkd::defaults::SEEDS[0], run })?
        }
    };
    let Value::Table(mut defaults) = defaults else {
        unreachable!("a struct serialises to a table")
    };
    if let Some(Value::Table(d)) = defaults.get_mut("data") {
        d.remove("dataset");
    }
    merge(&mut defaults, user);
    Ok(defaults)
}

/// Deserialises a configuration and errors on keys that deserialising ignored (also used by the
/// Python package for the configurations it is given).
pub fn parse_checked<T: serde::de::DeserializeOwned + Serialize>(table: toml::Table) -> Result<T> {
    let config: T = deserialise(&table)?;
    if let Value::Table(back) = toml::Value::try_from(&config)? {
        let ignored = |path: &[String]| is_ignored::<T>(&table, path);
        check_known_keys(&table, &back, &mut Vec::new(), &ignored)?;
    }
    Ok(config)
}

fn deserialise<T: serde::de::DeserializeOwned>(table: &toml::Table) -> Result<T> {
    Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))
}

/// Whether deserialising ignores the key at `path`: it still succeeds when the key holds a value
/// no field accepts (a table with a probe key). A key absent from the written-back configuration
/// is either unknown or a field at its default that serialising omits (`also = []`,
/// `mixing = "alternate"`); only the unknown one accepts the probe.
fn is_ignored<T: serde::de::DeserializeOwned>(root: &toml::Table, path: &[String]) -> bool {
    let mut probe = root.clone();
    let mut at = &mut probe;
    for k in &path[..path.len() - 1] {
        match at.get_mut(k) {
            Some(Value::Table(t)) => at = t,
            _ => return true,
        }
    }
    let mut marker = toml::Table::new();
    marker.insert("__normiqa_probe__".into(), Value::Boolean(true));
    at.insert(path[path.len() - 1].clone(), Value::Table(marker));
    deserialise::<T>(&probe).is_ok()
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b))
                if !a.contains_key("type")
                    && !a.contains_key("kind")
                    && !b.contains_key("type")
                    && !b.contains_key("kind") =>
            {
                merge(a, b)
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Errors on keys of `input` that deserialising ignored: absent when the config is written back,
/// and not a field at its omitted default (`ignored` decides).
fn check_known_keys(
    input: &toml::Table,
    back: &toml::Table,
    path: &mut Vec<String>,
    ignored: &dyn Fn(&[String]) -> bool,
) -> Result<()> {
    for (k, v) in input {
        path.push(k.clone());
        match (v, back.get(k)) {
            (_, None) if ignored(path) => {
                bail!("unknown configuration key '{}' (see a run's config.toml for the keys)", path.join("."))
            }
            (Value::Table(a), Some(Value::Table(b))) => check_known_keys(a, b, path, ignored)?,
            _ => {}
        }
        path.pop();
    }
    Ok(())
}

/// Sets a swept key: a dotted path, or several comma-separated paths set together from an array
/// of as many values (`"model.backbone,weights" = [["resnet18", "r18.pth"], ...]`).
fn set_swept(table: &mut toml::Table, key: &str, value: &Value) -> Result<()> {
    if !key.contains(',') {
        return set_path(table, key, value.clone());
    }
    let keys: Vec<&str> = key.split(',').map(str::trim).collect();
    match value {
        Value::Array(vs) if vs.len() == keys.len() => {
            for (k, v) in keys.iter().zip(vs) {
                set_path(table, k, v.clone())?;
            }
            Ok(())
        }
        other => bail!(
            "expected an array of {} values (one per key), got {other}",
            keys.len()
        ),
    }
}

/// Sets `a.b.c` in a table, creating intermediate tables.
pub fn set_path(table: &mut toml::Table, path: &str, value: Value) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("bad key path '{path}'");
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(toml::Table::new()));
        cur = match entry {
            Value::Table(t) => t,
            other => bail!("'{path}': '{p}' is {other}, not a table"),
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A short label for a value: numbers and strings as written; a table with `type` as the type
/// followed by its other fields (`norm-in-norm-p1-q2-alpha1,0`).
pub fn label_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Boolean(b) => b.to_string(),
        Value::Array(a) => a.iter().map(label_of).collect::<Vec<_>>().join(","),
        Value::Table(t) => {
            let mut parts = Vec::new();
            if let Some(ty) = t.get("type") {
                parts.push(label_of(ty));
            }
            for (k, x) in t.iter().filter(|(k, _)| k.as_str() != "type") {
                parts.push(format!("{k}{}", label_of(x)));
            }
            parts.join("-")
        }
        Value::Datetime(d) => d.to_string(),
    }
}

pub use crate::report::results::short_key;

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+=,".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The directory name of a run from its swept values.
pub fn combo_name(params: &[(String, String, Value)]) -> String {
    if params.is_empty() {
        return "base".into();
    }
    params
        .iter()
        .map(|(k, l, _)| sanitize(&format!("{}={l}", short_key(k))))
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
epochs = 3
[data.dataset]
kind = "clive"
root = "x"
"#;

    #[test]
    fn cartesian_product_in_file_order() {
        let text = format!("{BASE}\n[sweep]\n\"loss.kind\" = [{{ type = \"mae\" }}, {{ type = \"mse\" }}]\nlr = [1e-4, 1e-3]\n");
        let e = Experiment::parse(&text, "t").unwrap();
        let c = e.combos().unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].name, "loss=mae_lr=0.0001");
        assert_eq!(c[1].name, "loss=mae_lr=0.001");
        assert_eq!(c[3].config.lr, 1e-3);
        assert_eq!(c[3].config.loss.kind, crate::loss::LossKind::Mse);
        assert_eq!(c[0].config.epochs, 3);
    }

    #[test]
    fn nested_keys_labels_and_dedup() {
        let text = format!(
            "{BASE}\n[[sweep]]\nlr = [1e-4, 1e-3]\n[[sweep]]\nbatch_size = {{ values = [4, 8], labels = [\"bs4\", \"bs8\"] }}\n[[sweep]]\n[sweep.loss.kind]\np = [1.0, 2.0]\n"
        );
        let e = Experiment::parse(&text, "t").unwrap();
        let c = e.combos().unwrap();
        // bs 8 + lr 1e-4 + p 1 are the defaults: identical to lr=0.0001 → left out.
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["lr=0.0001", "lr=0.001", "batch_size=bs4", "p=2"]);
        assert!(
            matches!(c[3].config.loss.kind, crate::loss::LossKind::NormInNorm { p, .. } if p == 2.0)
        );
    }

    #[test]
    fn zipped_keys() {
        let text = format!(
            "{BASE}\n[sweep]\n\"loss.kind,model.use_bn_end\" = {{ values = [[{{ type = \"mse\" }}, false], [{{ type = \"mse\" }}, true]], labels = [\"MSE\", \"bnMSE\"] }}\n"
        );
        let c = Experiment::parse(&text, "t").unwrap().combos().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].name, "loss=bnMSE");
        assert!(c[1].config.model.use_bn_end && !c[0].config.model.use_bn_end);
        assert_eq!(
            c[1].config.model.backbone,
            crate::model::BackboneName::EfficientNetLite0
        );
    }

    #[test]
    fn errors_name_the_key() {
        let text = format!("{BASE}\n[sweep]\nbatch_sise = [4]\n");
        let err = format!("{:#}", Experiment::parse(&text, "t").unwrap_err());
        assert!(err.contains("batch_sise"), "{err}");
        let text = format!("{BASE}\n[sweep]\nbatch_size = [1]\n");
        let err = format!("{:#}", Experiment::parse(&text, "t").unwrap_err());
        assert!(err.contains("--batch-size"), "{err}");
    }
}
