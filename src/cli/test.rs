//! `normiqa test`: a trained model on a dataset. Without dataset options it uses the run's own
//! dataset and split (test set); with `--dataset ...` it tests on all images of that dataset
//! (cross-dataset) unless `--set` says otherwise. Datasets with a distortion column also get a
//! per-distortion table. PLCC and RMSE of the fused head are also given after the VQEG 4- and
//! 5-parameter logistic mappings fitted on the tested images (`fused_logistic` in JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use normiqa_core::metrics::Metrics;

use super::args::{
    dataset_input_ids, head_metrics_json, parse_device, print_head_metrics, DataArgs,
};
use crate::run;
use crate::data::Dataset;
use crate::inputs::FileId;
use crate::output::refuse_file_over_ids;
use crate::infer::trained::{
    head_metrics, nan_metrics, write_predictions, HeadOutputs, TrainedModel,
};
use crate::run::DatasetSpec;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetArg {
    Train,
    Val,
    Test,
    All,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Run directory of a trained model (contains run.json and weights.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which images: default `test` on the run's own dataset, `all` on another dataset.
    #[arg(long, value_enum)]
    pub set: Option<SetArg>,
    /// Pretrained backbone weights, if the run's are elsewhere.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Write the per-image predictions (CSV: image, MOS, each head, predicted_mos) to this file
    /// (`--predictions` is the former name).
    #[arg(short = 'o', long = "output", alias = "predictions", value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// Images per forward pass; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
    /// cpu, cuda, cuda:N or auto (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Numeric precision of the forward pass: fp32 (as trained; reproducible across machines),
    /// bf16, int8 (EfficientNet-Lite models), or auto (predict's rule): measures what predict's
    /// --precision costs in accuracy.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: crate::model::Precision,
    #[command(flatten)]
    pub tta: super::args::TtaArgs,
    /// Print the metrics as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Write a per-distortion-type SROCC bar chart (PNG) here (datasets with a distortion column).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl SetArg {
    /// The option value, as typed (`train`, `test`, ...).
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// An error when a head's correlations are undefined (its scores are all equal), instead of
/// printing NaN.
fn check_defined(names: &[String], metrics: &[Metrics], out: &HeadOutputs) -> Result<()> {
    for ((name, m), o) in names.iter().zip(metrics).zip(out) {
        if !(m.srocc.is_finite() && m.plcc.is_finite()) {
            bail!(
                "the {name} head gave the same score ({}) to all {} images: SROCC and PLCC are undefined; the model or its weights are broken (retrain it)",
                o.first().copied().unwrap_or(f64::NAN),
                o.len()
            );
        }
    }
    Ok(())
}

/// SROCC/PLCC of the fused head per distortion type, sorted from hardest (lowest SROCC).
pub fn per_distortion(
    names: &[Option<String>],
    pred: &[f64],
    mos: &[f64],
) -> Vec<(String, Metrics)> {
    let mut groups: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for ((n, p), m) in names.iter().zip(pred).zip(mos) {
        if let Some(n) = n {
            let g = groups.entry(n.as_str()).or_default();
            g.0.push(*p);
            g.1.push(*m);
        }
    }
    let mut out: Vec<(String, Metrics)> = groups
        .into_iter()
        .map(|(k, (p, m))| {
            (
                k.to_string(),
                Metrics::compute_mapped(&p, &m, None)
                    .unwrap_or_else(|_| nan_metrics(p.len())),
            )
        })
        .collect();
    out.sort_by(|a, b| {
        a.1.srocc
            .partial_cmp(&b.1.srocc)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

/// Refuses `--predictions` or `--plot` naming one of the command's inputs: an image or labels
/// file of the dataset, a file of the model's run folder, or the backbone weights.
fn refuse_outputs_over_inputs(args: &TestArgs, spec: &DatasetSpec, dataset: &Dataset) -> Result<()> {
    let mut ids = dataset_input_ids(spec, dataset);
    let model = crate::infer::ensemble::model_files(&args.model);
    let files = model.iter().chain(args.weights.iter());
    ids.extend(files.filter_map(|f| FileId::of(f).ok()));
    for (option, out) in [("-o", &args.predictions), ("--plot", &args.plot)] {
        if let Some(out) = out {
            refuse_file_over_ids(option, out, "input (labels, image or model file)", &ids)?;
        }
    }
    Ok(())
}

pub fn run(args: TestArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let tta = args.tta.test_time()?;
    let tm = TrainedModel::load(&args.model, device, args.weights.as_deref())?
        .with_precision(args.precision)?
        .with_tta(tta)?;
    let own = !args.data.given();
    let data_cfg = data_config(&args, &tm, own)?;
    let set = args
        .set
        .unwrap_or(if own { SetArg::Test } else { SetArg::All });
    let dataset = run::data::load_dataset(&data_cfg.dataset, &data_cfg.loading)?;
    refuse_outputs_over_inputs(&args, &data_cfg.dataset, &dataset)?;
    let idx = tested_images(set, &data_cfg, &dataset, tm.info.config.seed)?;
    let mos: Vec<f64> = idx.iter().map(|&i| dataset.samples[i].mos).collect();
    check_mos(set, &dataset, &mos)?;
    let only = normiqa_core::data::split::Split {
        train: vec![],
        val: vec![],
        test: idx.clone(),
    };
    let (images, decode_s) = run::data::decode_used(&dataset, &only, &data_cfg)?;
    tracing::info!("decoded {} images in {:.1} s", idx.len(), decode_s);
    let t0 = std::time::Instant::now();
    let out = tm.outputs(&images, &idx, crate::run::config::eval_batch_size(args.batch_size, device))?;
    let secs = t0.elapsed().as_secs_f64();
    tracing::info!(
        "scored {} images in {secs:.2} s ({:.1} ms per image, --tta {})",
        idx.len(),
        1e3 * secs / idx.len() as f64,
        tm.tta
    );
    let metrics = head_metrics(&out, &mos, Some(&tm.info.mapping));
    check_defined(&tm.info.heads, &metrics, &out)?;
    let last = metrics.len() - 1;
    if let Some(p) = &args.predictions {
        write_predictions(p, &dataset, &idx, tm.head_names(), &out, &tm.info.mapping)?;
    }
    let dist: Vec<Option<String>> = idx
        .iter()
        .map(|&i| dataset.samples[i].distortion.clone())
        .collect();
    let mapped = tm.info.mapping[last].apply(&out[last]);
    let per_type = if dist.iter().any(|d| d.is_some()) {
        per_distortion(&dist, &mapped, &mos)
    } else {
        vec![]
    };
    let tested = Tested { tm: &tm, dataset: &dataset, set, n: idx.len(), metrics, mapped, mos, per_type };
    if let Some(p) = &args.plot {
        tested.plot(p)?;
    }
    if args.json {
        tested.print_json(&args.model)
    } else {
        tested.print()
    }
}

/// The data to test on: the run's own (its dataset, with `--data-root`-style path overrides and
/// the input flags) when no dataset option is given (`own`), else the options' dataset.
fn data_config(args: &TestArgs, tm: &TrainedModel, own: bool) -> Result<crate::run::DataConfig> {
    if own {
        let mut cfg = tm.info.config.data.clone();
        cfg.dataset = args.data.override_paths(&cfg.dataset)?;
        args.data.apply_input_flags(&mut cfg);
        Ok(cfg)
    } else {
        args.data.to_config()
    }
}

/// The indices of the images of `set` (`seed`: the run's, for its split); an error when none.
fn tested_images(set: SetArg, data_cfg: &crate::run::DataConfig, dataset: &Dataset, seed: u64) -> Result<Vec<usize>> {
    let idx: Vec<usize> = match set {
        SetArg::All => (0..dataset.len()).collect(),
        s => {
            let split = run::data::split_dataset(data_cfg, dataset, seed)?;
            match s {
                SetArg::Train => split.train,
                SetArg::Val => split.val,
                _ => split.test,
            }
        }
    };
    if idx.is_empty() {
        bail!("the {} set of {} is empty", set.name(), dataset.name);
    }
    Ok(idx)
}

/// An error when the correlations of the tested images' `mos` are undefined (one image, or all
/// alike).
fn check_mos(set: SetArg, dataset: &Dataset, mos: &[f64]) -> Result<()> {
    if mos.len() < 2 {
        bail!(
            "the {} set of {} has 1 image: SROCC, PLCC and KROCC need at least 2",
            set.name(),
            dataset.name
        );
    }
    if mos.iter().all(|&m| m == mos[0]) {
        bail!(
            "the {} images tested ({} set of {}) all have the same MOS ({}): SROCC, PLCC and KROCC are undefined; test on images whose MOS differ",
            mos.len(),
            set.name(),
            dataset.name,
            mos[0]
        );
    }
    Ok(())
}

/// What `normiqa test` measured, to plot and print.
struct Tested<'a> {
    tm: &'a TrainedModel,
    dataset: &'a Dataset,
    set: SetArg,
    /// Images tested.
    n: usize,
    /// Per head.
    metrics: Vec<Metrics>,
    /// The last head's outputs after its mapping.
    mapped: Vec<f64>,
    mos: Vec<f64>,
    /// Per distortion type, hardest first (empty without a distortion column).
    per_type: Vec<(String, Metrics)>,
}

impl Tested<'_> {
    /// `--plot`: the per-type SROCC chart (an error without distortion types).
    fn plot(&self, p: &std::path::Path) -> Result<()> {
        if self.per_type.is_empty() {
            bail!(
                "--plot: {} has no distortion column, nothing to plot per type",
                self.dataset.name
            );
        }
        let title = format!(
            "{} ({} set, {} images): SROCC per distortion type",
            self.dataset.name,
            self.set.name(),
            self.n
        );
        let last = self.metrics.len() - 1;
        crate::report::per_type::plot_per_type(&self.per_type, &title, Some(self.metrics[last].srocc), p)?;
        tracing::info!("per-type chart written to {}", p.display());
        Ok(())
    }

    /// `--json`: one document (`model`: the option's folder, as given).
    fn print_json(&self, model: &std::path::Path) -> Result<()> {
        let tm = self.tm;
        let types: Vec<_> = self
            .per_type
            .iter()
            .map(|(n, m)| serde_json::json!({"distortion": n, "metrics": m}))
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model, "precision": tm.precision, "tta": tm.tta, "dataset": self.dataset.name, "set": self.set.name(),
                "n": self.n, "metrics": head_metrics_json(&tm.info.heads, &self.metrics), "per_distortion": types,
                "fused_logistic": super::args::logistic_json(&self.mapped, &self.mos),
            }))?
        )
    }

    /// The metrics per head, the logistic fits and the per-type table, as text.
    fn print(&self) -> Result<()> {
        let tm = self.tm;
        let last = self.metrics.len() - 1;
        print_head_metrics(
            &format!(
                "{} ({} set, {} images, mapping from the training set, {}{})",
                self.dataset.name,
                self.set.name(),
                self.n,
                tm.precision,
                match tm.tta.is_none() {
                    true => String::new(),
                    false => format!(", --tta {}", tm.tta),
                }
            ),
            &tm.info.heads,
            &self.metrics,
        )?;
        super::args::print_logistic(&tm.info.heads[last], &self.mapped, &self.mos)?;
        let per_type = &self.per_type;
        if !per_type.is_empty() {
            crate::outln!("per distortion type ({} head), hardest first:", tm.info.heads[last])?;
            crate::outln!(
                "  {:<30} {:>8} {:>8} {:>5}",
                "distortion", "SROCC", "PLCC", "n"
            )?;
            for (n, m) in per_type {
                crate::outln!("  {:<30} {:>8.4} {:>8.4} {:>5}", n, m.srocc, m.plcc, m.n)?;
            }
            crate::outln!(
                "hardest: {}   easiest: {}",
                per_type[0].0,
                per_type[per_type.len() - 1].0
            )?;
        }
        Ok(())
    }
}
