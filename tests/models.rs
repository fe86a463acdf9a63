//! The MRKD paper's models (DBCNN, HyperIQA, the plain regressor) through the one engine:
//! `train --model`, the run folder, inference (`TrainedModel`, `predict`), DBCNN's S-CNN
//! pre-training and its two phases (`--init-from`), and the inputs each model refuses.

mod common;

use std::path::Path;

use clap::Parser;
use normiqa::infer::trained::TrainedModel;
use normiqa::model::{Arch, IqaModel};
use normiqa::train;
use normiqa::run::{FrozenMode, TrainConfig};
use tch::Device;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["normiqa"];
    v.extend_from_slice(args);
    normiqa::cli::run(normiqa::cli::Cli::try_parse_from(v)?)
}

/// A tiny random-initialised run of `arch` on `n` synthetic images, one epoch, frozen cached.
fn tiny(dir: &Path, arch: Arch, n: usize, size: u32) -> TrainConfig {
    let mut cfg = common::tiny_train_config(dir, n, size);
    cfg.arch = arch;
    cfg.epochs = 1;
    cfg.ft_lr_ratio = 0.0;
    cfg
}

/// The run's test predictions (`predicted_mos` by image) equal what the loaded model scores.
fn check_scores_match_the_run(out: &Path, images: &Path) {
    let tm = TrainedModel::load(out, Device::Cpu, None).unwrap();
    let text = std::fs::read_to_string(out.join("predictions_test.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, ["image", "mos", "score", "predicted_mos"], "one head named score");
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let img = image::open(images.join(row[0])).unwrap().to_rgb8();
    let got = tm.score(&[img], 1).unwrap().mapped[0];
    let want: f64 = row[3].parse().unwrap();
    assert!((got - want).abs() < 1e-3 * (1.0 + want.abs()), "{got} vs {want}");
}

fn images_of(cfg: &TrainConfig) -> std::path::PathBuf {
    cfg.data.dataset.path("images").unwrap()
}

#[test]
fn dbcnn_trains_on_cached_bilinear_features_and_scores_like_its_run() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let cfg = tiny(tmp.path(), Arch::Dbcnn, 16, 48);
    let out = tmp.path().join("dbcnn");
    let o = train::train(&cfg, &out).unwrap();
    assert_eq!(o.info.heads, ["score"]);
    assert_eq!(o.info.config.arch, Arch::Dbcnn);
    check_scores_match_the_run(&out, &images_of(&cfg));
    // `predict` on the run folder: one score per image, the head named as the model names it.
    let scored = tmp.path().join("scores.jsonl");
    let img = images_of(&cfg).join("img000.png");
    cli(&["predict", img.to_str().unwrap(), "--model", out.to_str().unwrap(), "--device", "cpu",
        "--all-heads", "--format", "jsonl", "-o", scored.to_str().unwrap()])
    .unwrap();
    // the record line, then the image's
    let text = std::fs::read_to_string(&scored).unwrap();
    let line = text.lines().nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(v["score"].is_number() && v.get("fused").is_none(), "{line}");
}

#[test]
fn the_plain_regressor_fine_tunes_and_scores_like_its_run() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), Arch::Plain, 12, 40);
    cfg.ft_lr_ratio = 1.0;
    let out = tmp.path().join("plain");
    let o = train::train(&cfg, &out).unwrap();
    assert!(o.info.backbone_in_weights, "fine-tuned: the backbone is saved with the run");
    check_scores_match_the_run(&out, &images_of(&cfg));
}

#[test]
fn hyperiqa_trains_on_224_crops_and_scores_the_mean_of_grid_crops() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Images larger than 224 with random 224x224 training crops; test: the mean of 4 grid crops.
    let mut cfg = tiny(tmp.path(), Arch::HyperIqa, 10, 240);
    cfg.frozen_mode = FrozenMode::Reference;
    cfg.augment = Some(normiqa::train::augment::Augment { angle: 0.0, hflip: 0.5, crop: Some([224, 224]) });
    cfg.model.test_crops = 4;
    let out = tmp.path().join("hyper");
    train::train(&cfg, &out).unwrap();
    check_scores_match_the_run(&out, &images_of(&cfg));
    // The mean of the grid crops is what the model scores.
    let tm = TrainedModel::load(&out, Device::Cpu, None).unwrap();
    let img = image::open(images_of(&cfg).join("img001.png")).unwrap().to_rgb8();
    let x = normiqa::batch::to_tensor(&[&img], Device::Cpu).unwrap();
    let crops = normiqa::model::hyperiqa::grid_crops(240, 240, 4).unwrap();
    let per_crop: Vec<f64> = crops
        .iter()
        .map(|&(t, l)| {
            let c = x.narrow(2, t, 224).narrow(3, l, 224);
            tch::no_grad(|| tm.model.outputs(&c, false, false))[0].double_value(&[0])
        })
        .collect();
    let whole = tm.model.eval_path().outputs(&x).unwrap()[0].double_value(&[0]);
    let mean = per_crop.iter().sum::<f64>() / 4.0;
    assert!((whole - mean).abs() < 1e-4, "{whole} vs mean of crops {mean}");
}

#[test]
fn each_model_refuses_inputs_it_cannot_take() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    // HyperIQA without 224x224 inputs.
    let mut cfg = tiny(tmp.path(), Arch::HyperIqa, 8, 40);
    cfg.frozen_mode = FrozenMode::Reference;
    let err = format!("{:#}", train::train(&cfg, &tmp.path().join("h1")).err().unwrap());
    assert!(err.contains("--augment --crop 224 224"), "{err}");
    // HyperIQA with cached features of random crops.
    cfg.frozen_mode = FrozenMode::Cached;
    let err = format!("{:#}", train::train(&cfg, &tmp.path().join("h2")).err().unwrap());
    assert!(err.contains("cached only for fixed 224x224 inputs"), "{err}");
    // DBCNN with pretrained weights but no S-CNN.
    let mut cfg = tiny(tmp.path(), Arch::Dbcnn, 8, 40);
    cfg.random_init = false;
    let err = format!("{:#}", train::train(&cfg, &tmp.path().join("d")).err().unwrap());
    assert!(err.contains("--scnn-weights") && err.contains("pretrain-scnn"), "{err}");
    // A model name that does not exist, on the command line.
    let err = cli(&["train", "--model", "vgg"]).unwrap_err().to_string();
    assert!(err.contains("linearity") && err.contains("hyperiqa"), "{err}");
}

#[test]
fn dbcnn_second_phase_starts_from_the_first() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let phase1 = tiny(tmp.path(), Arch::Dbcnn, 12, 40);
    let p1 = tmp.path().join("phase1");
    train::train(&phase1, &p1).unwrap();
    // Phase 2: everything trainable, started from phase 1; at a negligible rate the weights stay.
    let mut phase2 = phase1.clone();
    phase2.ft_lr_ratio = 1.0;
    phase2.lr = 1e-12;
    phase2.init_from = Some(p1.clone());
    let p2 = tmp.path().join("phase2");
    train::train(&phase2, &p2).unwrap();
    let read = |d: &Path| {
        tch::Tensor::read_safetensors(d.join("weights.safetensors"))
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "fc.weight")
            .unwrap()
            .1
    };
    let diff = (read(&p1) - read(&p2)).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "fc moved by {diff}");
    // Another network is refused, naming both.
    let mut other = phase2.clone();
    other.arch = Arch::Plain;
    let err = format!("{:#}", train::train(&other, &tmp.path().join("p3")).err().unwrap());
    assert!(err.contains("another network") && err.contains("dbcnn"), "{err}");
}

#[test]
fn pretrain_scnn_writes_what_dbcnn_loads_and_a_second_run_is_a_no_op() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    cli(&["synth", "--embedded", "--out", synth.to_str().unwrap(), "--distortions",
        "gaussian_blur,jpeg", "--levels", "1,5"])
    .unwrap();
    let out = tmp.path().join("scnn");
    let args = [
        "pretrain-scnn", "--dataset", "csv", "--labels", &format!("{}/labels.csv", synth.display()),
        "--images", synth.to_str().unwrap(), "--mos-column", "score", "--split", "by-reference",
        "--train-ratio", "0.67", "--train-val-ratio", "0.67", "--crop", "64", "--epochs", "2",
        "-b", "4", "--device", "cpu", "--out", out.to_str().unwrap(),
    ];
    cli(&args).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scnn.json")).unwrap()).unwrap();
    assert_eq!(summary["classes"].as_array().unwrap().len(), 4, "2 types x 2 levels");
    let stamp = std::fs::metadata(out.join("scnn.json")).unwrap().modified().unwrap();
    cli(&args).unwrap();
    assert_eq!(std::fs::metadata(out.join("scnn.json")).unwrap().modified().unwrap(), stamp);
    // DBCNN loads exactly these tensors.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = Arch::Dbcnn.build(&vs, &Default::default()).unwrap();
    let n = normiqa::model::dbcnn::load_scnn(&vs, &out.join("scnn.safetensors")).unwrap();
    assert_eq!(n, 54, "9 layers: conv weight + 5 BatchNorm tensors each");
    assert_eq!(net.head_names(), ["score"]);
}
