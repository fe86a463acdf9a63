//! Test-time views (`--tta`): what each view choice scores, computed by hand through the model,
//! at fp32 and bf16 and with batching; `predict` and `test` agreeing under `--tta`; the options
//! and models that are refused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use image::{imageops, RgbImage};
use normiqa::infer::trained::{HeadOutputs, TrainedModel};
use normiqa::infer::{TestTime, Tta};
use normiqa::model::{Arch, ModelConfig, Precision};
use normiqa::train;
use tch::Device;

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["normiqa"];
    v.extend_from_slice(args);
    normiqa::cli::run(normiqa::cli::Cli::try_parse_from(v)?)
}

/// One tiny LinearityIQA run (pretrained Lite0, frozen: 16 images of 64 px, one epoch of the heads
/// on cached features), trained once for every test of this file: (its folder, its image
/// folder). A random-initialised backbone would give nearly the same output for every image.
fn run() -> (&'static Path, &'static Path) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    let (_, out, images) = RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = common::tiny_frozen_config(tmp.path(), 16, 64);
        let out = tmp.path().join("run");
        train::train(&cfg, &out).unwrap();
        let images = tmp.path().join("images");
        (tmp, out, images)
    });
    (out, images)
}

/// The shipped model (pretrained Lite0: outputs that move with the image's content, unlike a
/// random-initialised network's) with the views asked for.
fn model(precision: Precision, views: Tta, fraction: Option<f64>) -> TrainedModel {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0");
    TrainedModel::load(&shipped, Device::Cpu, None)
        .unwrap()
        .with_precision(precision)
        .unwrap()
        .with_tta(TestTime::new(views, fraction).unwrap())
        .unwrap()
}

/// CLIVE sample photo number `k` (sorted names) shrunk to `w`×`h`; `mirror_x`: its left half
/// mirrored onto its right half (left-right symmetric).
fn photo(k: usize, w: u32, h: u32, mirror_x: bool) -> RgbImage {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clive-sample/images");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let img = image::open(&names[k]).unwrap().to_rgb8();
    let small = imageops::resize(&img, w, h, imageops::FilterType::Triangle);
    RgbImage::from_fn(w, h, |x, y| *small.get_pixel(if mirror_x { x.min(w - 1 - x) } else { x }, y))
}

/// Every head's output of each image, scored alone.
fn outputs(tm: &TrainedModel, images: &[RgbImage]) -> HeadOutputs {
    let idx: Vec<usize> = (0..images.len()).collect();
    tm.outputs(images, &idx, 1).unwrap()
}

fn assert_close(a: &HeadOutputs, b: &HeadOutputs, tol: f64, what: &str) {
    for (ha, hb) in a.iter().zip(b) {
        for (x, y) in ha.iter().zip(hb) {
            assert!((x - y).abs() <= tol * (1.0 + x.abs()), "{what}: {x} vs {y}");
        }
    }
}

fn differs(a: &HeadOutputs, b: &HeadOutputs) -> bool {
    let d = a.iter().flatten().zip(b.iter().flatten()).any(|(x, y)| (x - y).abs() > 1e-4 * (1.0 + x.abs()));
    if !d {
        eprintln!("the same outputs: {a:?} and {b:?}");
    }
    d
}

#[test]
fn flip_of_a_left_right_symmetric_image_equals_the_whole_image() {
    let img = photo(0, 72, 56, true);
    let none = outputs(&model(Precision::Fp32, Tta::None, None), &[img.clone()]);
    let flip = outputs(&model(Precision::Fp32, Tta::Flip, None), &[img.clone()]);
    assert_close(&none, &flip, 1e-5, "flip of a symmetric image");
    // The image is not symmetric top to bottom: a vertical mirror would have changed the score.
    let upside_down = outputs(&model(Precision::Fp32, Tta::None, None), &[imageops::flip_vertical(&img)]);
    assert!(differs(&none, &upside_down), "the test image must tell the two mirrors apart");
}

/// The ten views of `img` cut by hand (corner and centre crops of `fraction` of each side, then
/// their mirrors), each scored alone with no views, averaged per head.
fn ten_views_by_hand(tm: &TrainedModel, img: &RgbImage, fraction: f64) -> HeadOutputs {
    let (w, h) = img.dimensions();
    let (cw, ch) = ((w as f64 * fraction).round() as u32, (h as f64 * fraction).round() as u32);
    let at = [(0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch), ((w - cw) / 2, (h - ch) / 2)];
    let crops: Vec<RgbImage> = at.iter().map(|&(x, y)| imageops::crop_imm(img, x, y, cw, ch).to_image()).collect();
    let mirrors: Vec<RgbImage> = crops.iter().map(imageops::flip_horizontal).collect();
    let views: Vec<RgbImage> = crops.into_iter().chain(mirrors).collect();
    let each = outputs(tm, &views);
    each.iter().map(|h| vec![h.iter().sum::<f64>() / h.len() as f64]).collect()
}

#[test]
fn ten_crop_is_the_mean_of_the_ten_views_scored_one_by_one_in_fp32_and_bf16() {
    let img = photo(1, 72, 56, false);
    for (precision, tol) in [(Precision::Fp32, 1e-5), (Precision::Bf16, 2e-2)] {
        if precision == Precision::Bf16 && !common::bf16_hardware("ten-crop at bf16") {
            continue;
        }
        let none = model(precision, Tta::None, None);
        let want = ten_views_by_hand(&none, &img, 0.75);
        let got = outputs(&model(precision, Tta::TenCrop, None), &[img.clone()]);
        assert_close(&want, &got, tol, &format!("ten-crop at {precision}"));
        assert!(differs(&got, &outputs(&none, &[img.clone()])), "views change the score");
    }
    // Another fraction: other crops.
    let none = model(Precision::Fp32, Tta::None, None);
    let want = ten_views_by_hand(&none, &img, 0.5);
    let got = outputs(&model(Precision::Fp32, Tta::TenCrop, Some(0.5)), &[img.clone()]);
    assert_close(&want, &got, 1e-5, "ten-crop at 0.5");
}

#[test]
fn views_of_a_batch_score_each_image_as_alone() {
    // Three same-size images in one forward (30 views), against each scored alone.
    let images: Vec<RgbImage> = (2..5).map(|k| photo(k, 64, 48, false)).collect();
    for views in [Tta::Flip, Tta::FiveCrop, Tta::TenCrop] {
        let tm = model(Precision::Fp32, views, None);
        let alone = outputs(&tm, &images);
        let together = tm.outputs(&images, &[0, 1, 2], 3).unwrap();
        assert_close(&alone, &together, 1e-5, &format!("{views} in a batch of 3"));
        let fused = &alone[alone.len() - 1];
        assert!((fused[0] - fused[1]).abs() > 1e-4, "the images must score differently: {fused:?}");
    }
}

#[test]
fn a_crop_fraction_outside_zero_to_one_is_refused_naming_the_option() {
    let (dir, images) = run();
    let img = images.join("img000.png");
    for f in ["0", "1.5", "-0.2"] {
        let f = &format!("--tta-crop-fraction={f}");
        let err = cli(&["predict", img.to_str().unwrap(), "--model", dir.to_str().unwrap(),
            "--device", "cpu", "--tta", "five-crop", f])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--tta-crop-fraction"), "{err}");
        let err = cli(&["test", "--model", dir.to_str().unwrap(), "--device", "cpu", "--tta", "ten-crop", f])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--tta-crop-fraction"), "{err}");
    }
    let err = cli(&["predict", img.to_str().unwrap(), "--model", dir.to_str().unwrap(), "--device", "cpu",
        "--tta", "flip", "--tta-crop-fraction", "0.5"])
    .unwrap_err()
    .to_string();
    assert!(err.contains("--tta-crop-fraction") && err.contains("--tta flip"), "{err}");
}

/// `image -> predicted_mos` of `test -o`.
fn test_predictions(dir: &Path, out: &Path, extra: &[&str]) -> Vec<(String, f64)> {
    let mut args = vec!["test", "--model", dir.to_str().unwrap(), "--device", "cpu", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&args).unwrap();
    let mut r = csv::Reader::from_path(out).unwrap();
    let h = r.headers().unwrap().clone();
    let (i, p) = (h.iter().position(|c| c == "image").unwrap(), h.iter().position(|c| c == "predicted_mos").unwrap());
    r.records().map(|rec| { let rec = rec.unwrap(); (rec[i].to_string(), rec[p].parse().unwrap()) }).collect()
}

#[test]
fn predict_and_test_agree_under_tta() {
    let (dir, images) = run();
    let tmp = tempfile::tempdir().unwrap();
    let tta = ["--tta", "five-crop", "--tta-crop-fraction", "0.6"];
    let tested = test_predictions(dir, &tmp.path().join("t.csv"), &tta);
    let whole = test_predictions(dir, &tmp.path().join("w.csv"), &[]);
    assert!(tested.iter().zip(&whole).any(|(a, b)| (a.1 - b.1).abs() > 1e-3), "the views change test's scores");
    let files: Vec<String> = tested.iter().map(|(n, _)| images.join(n).display().to_string()).collect();
    let scores = tmp.path().join("p.csv");
    let mut args = vec!["predict", "--model", dir.to_str().unwrap(), "--device", "cpu", "--precision", "fp32",
        "-o", scores.to_str().unwrap()];
    args.extend_from_slice(&tta);
    args.extend(files.iter().map(String::as_str));
    cli(&args).unwrap();
    // The first line is the record of the model and options, a `#` comment.
    let mut r = csv::ReaderBuilder::new().comment(Some(b'#')).from_path(&scores).unwrap();
    let predicted: std::collections::HashMap<String, f64> = r
        .records()
        .map(|rec| { let rec = rec.unwrap(); (rec[0].to_string(), rec[1].parse().unwrap()) })
        .collect();
    for ((name, t), f) in tested.iter().zip(&files) {
        let p = predicted[f];
        assert!((p - t).abs() < 1e-3, "{name}: predict {p}, test {t}");
    }
    // test's JSON records the views.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_normiqa"))
        .args(["test", "--model", dir.to_str().unwrap(), "--device", "cpu", "--json"])
        .args(tta)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tta"], serde_json::json!({"views": "five-crop", "crop_fraction": 0.6}));
}

#[test]
fn hyperiqa_refuses_views_naming_the_option() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let m = Arch::HyperIqa.build(&vs, &ModelConfig::default()).unwrap();
    for views in [Tta::Flip, Tta::FiveCrop, Tta::TenCrop] {
        let err = TestTime::new(views, None).unwrap().check(m.as_ref()).unwrap_err().to_string();
        assert!(err.contains(&format!("--tta {views}")) && err.contains("--tta none"), "{err}");
    }
    assert!(TestTime::default().check(m.as_ref()).is_ok());
    let lin = Arch::Linearity.build(&vs, &ModelConfig::default()).unwrap();
    assert!(TestTime::new(Tta::TenCrop, None).unwrap().check(lin.as_ref()).is_ok());
}
