//! Ensemble folders (`ensemble.toml`, src/infer/ensemble.rs): the score is the mean of the
//! members' k·ŷ+b, with the precision and test-time views passed to every member; `predict` and
//! `test` take an ensemble as `--model`; members of other data, splits or seeds and malformed
//! files are refused, naming the file and the members.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use image::RgbImage;
use normiqa::infer::trained::TrainedModel;
use normiqa::infer::{TestTime, Tta};
use normiqa::model::{Pool, Precision};
use normiqa::train;
use tch::Device;

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["normiqa"];
    v.extend_from_slice(args);
    normiqa::cli::run(normiqa::cli::Cli::try_parse_from(v)?)
}

/// Tiny LinearityIQA runs on one dataset (pretrained Lite0, frozen, one epoch of the heads on
/// cached features): average pooling and max pooling with the same seed (two members that score
/// differently), and average pooling with another seed. (the temporary folder, its image folder)
fn runs() -> (&'static Path, &'static Path) {
    static RUNS: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (tmp, images) = RUNS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = common::tiny_frozen_config(tmp.path(), 16, 64);
        train::train(&cfg, &tmp.path().join("avg")).unwrap();
        cfg.model.pool = Pool::Max;
        train::train(&cfg, &tmp.path().join("max")).unwrap();
        cfg.model.pool = Pool::Avg;
        cfg.seed += 1;
        train::train(&cfg, &tmp.path().join("avg-seed2")).unwrap();
        let images = tmp.path().join("images");
        (tmp, images)
    });
    (tmp.path(), images)
}

/// Writes `name/ensemble.toml` beside the runs with `text`; returns the folder. Written through
/// a temporary file and a rename: tests running at once write the same ensemble while others
/// read it, and a plain write would let them read it truncated.
fn ensemble(name: &str, text: &str) -> PathBuf {
    let dir = runs().0.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = tempfile::NamedTempFile::new_in(&dir).unwrap();
    std::fs::write(tmp.path(), text).unwrap();
    tmp.persist(dir.join("ensemble.toml")).unwrap();
    dir
}

fn avg_max() -> PathBuf {
    ensemble("avg-max", "description = \"test\"\nmembers = [\"../avg\", \"../max\"]\n")
}

fn images() -> Vec<RgbImage> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(runs().1).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().take(6).map(|p| image::open(p).unwrap().to_rgb8()).collect()
}

fn load(dir: &Path, precision: Precision, views: Tta) -> TrainedModel {
    TrainedModel::load(dir, Device::Cpu, None)
        .unwrap()
        .with_precision(precision)
        .unwrap()
        .with_tta(TestTime::new(views, None).unwrap())
        .unwrap()
}

#[test]
fn an_ensemble_scores_the_mean_of_its_members_scores_at_their_precision_and_views() {
    let ims = images();
    let root = runs().0;
    for (precision, views) in [(Precision::Fp32, Tta::None), (Precision::Bf16, Tta::Flip)] {
        let a = load(&root.join("avg"), precision, views).score(&ims, 4).unwrap().mapped;
        let b = load(&root.join("max"), precision, views).score(&ims, 4).unwrap().mapped;
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3), "the members score alike: {a:?} {b:?}");
        let ens = load(&avg_max(), precision, views);
        assert_eq!(ens.head_names(), ["ensemble"]);
        let s = ens.score(&ims, 4).unwrap();
        assert_eq!(s.heads.len(), 1);
        for i in 0..ims.len() {
            let want = (a[i] + b[i]) / 2.0;
            assert!((s.mapped[i] - want).abs() < 1e-9, "{precision:?} {views:?} image {i}: {} vs {want}", s.mapped[i]);
        }
    }
}

#[test]
fn predict_and_test_take_an_ensemble_folder() {
    let ens = avg_max();
    let root = runs().0;
    let out = root.join("ens-predict.csv");
    let first = runs().1.join("img000.png");
    assert!(first.exists(), "{}", first.display());
    cli(&["predict", "--model", ens.to_str().unwrap(), "--device", "cpu", "--precision", "fp32", "-o", out.to_str().unwrap(), first.to_str().unwrap()]).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let score: f64 = text.lines().last().unwrap().rsplit(',').next().unwrap().parse().unwrap();
    let img = image::open(&first).unwrap().to_rgb8();
    let want = load(&ens, Precision::Fp32, Tta::None).score(&[img], 1).unwrap().mapped[0];
    assert!((score - want).abs() < 1e-4 * want.abs().max(1.0), "predict wrote {score}, the library gives {want}");

    // `test` on the members' own split: the ensemble's one output is already on the MOS scale.
    let preds = root.join("ens-test.csv");
    cli(&["test", "--model", ens.to_str().unwrap(), "--device", "cpu", "-o", preds.to_str().unwrap()]).unwrap();
    let text = std::fs::read_to_string(&preds).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.contains("ensemble"), "{header}");
    let mut rd = csv::Reader::from_path(&preds).unwrap();
    for rec in rd.records() {
        let rec = rec.unwrap();
        let (head, mapped) = (&rec[rec.len() - 2], &rec[rec.len() - 1]);
        assert_eq!(head, mapped, "the ensemble's output is its score: {rec:?}");
    }
}

#[test]
fn members_of_another_seed_and_malformed_ensembles_are_refused_naming_them() {
    let e = common::load_refusal(&ensemble("seeds", "members = [\"../avg\", \"../avg-seed2\"]\n"));
    assert!(e.contains("ensemble.toml") && e.contains("avg-seed2") && e.contains("seed"), "{e}");
    let e = common::load_refusal(&ensemble("one", "members = [\"../avg\"]\n"));
    assert!(e.contains("at least two"), "{e}");
    let e = common::load_refusal(&ensemble("missing", "members = [\"../avg\", \"../nowhere\"]\n"));
    assert!(e.contains("nowhere") && e.contains("not a finished run folder"), "{e}");
    let e = common::load_refusal(&ensemble("twice", "members = [\"../avg\", \"../avg/\"]\n"));
    assert!(e.contains("listed twice"), "{e}");
    let e = common::load_refusal(&ensemble("typo", "member = [\"../avg\", \"../max\"]\n"));
    assert!(e.contains("ensemble.toml") && e.contains("member"), "{e}");
    let nested = ensemble("nested", "members = [\"../avg-max\", \"../avg\"]\n");
    avg_max();
    let e = common::load_refusal(&nested);
    assert!(e.contains("itself an ensemble"), "{e}");
    let e = format!(
        "{:#}",
        TrainedModel::load(&avg_max(), Device::Cpu, Some(Path::new("lite0.pth"))).err().expect("refused")
    );
    assert!(e.contains("--weights lite0.pth") && e.contains("ensemble"), "{e}");
    // An output over a member's files is refused, and the member is left as it was.
    let member_weights = runs().0.join("max/weights.safetensors");
    let before = std::fs::read(&member_weights).unwrap();
    let img = runs().1.join("img000.png");
    let e = format!(
        "{:#}",
        cli(&["predict", "--model", avg_max().to_str().unwrap(), "--device", "cpu", "-o", member_weights.to_str().unwrap(), img.to_str().unwrap()]).unwrap_err()
    );
    assert!(e.contains("-o") && e.contains("weights.safetensors"), "{e}");
    assert_eq!(std::fs::read(&member_weights).unwrap(), before);
}
