//! The one training engine under `normiqa distill`: an interrupted pair run resumes to the same
//! numbers, accumulation and augmentation reach the pair, and every member is saved as a run
//! folder that `predict`, `test` and `report` read (tiny synthetic data, random-init backbones).

mod common;

use std::path::Path;

use clap::Parser;
use normiqa::distill::{mrkd, pair, DistillConfig};
use normiqa::train::augment::Augment;
use normiqa::run::{DataConfig, SplitProtocol};

/// The tests draw from libtorch's global generator and set process-wide variables: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny(dir: &Path, n: usize) -> DistillConfig {
    let (csv, images) = common::synthetic_dataset(dir, n, 32);
    let data = DataConfig {
        dataset: normiqa::run::dataset::csv::spec(csv, images),
        split: SplitProtocol::Random,
        exp_id: 0,
        train_ratio: 0.6,
        train_val_ratio: 0.8,
        resize: None,
        loading: Default::default(),
        splits: None,
        decoding: Default::default(),
    };
    let mut cfg = DistillConfig::new(data, 0.01, 0.001);
    cfg.random_init = true;
    cfg.epochs = 4;
    cfg.batch_size = 4;
    cfg.device = "cpu".into();
    cfg
}

/// Every number of a pair run, bit for bit.
fn numbers(r: &mrkd::PairResult) -> Vec<u64> {
    r.history
        .iter()
        .flat_map(|h| {
            let mut v = vec![h.task_loss[0], h.task_loss[1], h.distill];
            for e in &h.eval {
                v.extend([e.test.srocc, e.test.plcc, e.val.map_or(0.0, |m| m.plcc)]);
            }
            v
        })
        .map(f64::to_bits)
        .collect()
}

fn count(log: &str, event: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .count()
}

#[test]
fn an_interrupted_distill_resumes_to_the_same_numbers() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let frozen = tiny(tmp.path(), 30);
    // Fine-tuning (both backbones, SGD momentum buffers of two optimisers) as well.
    let mut ft = frozen.clone();
    ft.ft_lr_ratio = 0.1;
    ft.epochs = 3;
    ft.teacher.model.backbone = normiqa::model::BackboneName::ResNet18;
    ft.student.model.backbone = normiqa::model::BackboneName::ResNet18;
    for (name, cfg) in [("frozen", frozen), ("ft", ft)] {
        let data = pair::prepare(&cfg, 1).unwrap();
        let whole = tmp.path().join(format!("{name}-whole"));
        let cut = tmp.path().join(format!("{name}-cut"));
        let a = pair::train_pair(&cfg, &data, 1, Some(&whole), false).unwrap();
        assert!(!whole.join("resume").exists(), "{name}: a finished run leaves no resume state");
        std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "2");
        let err = pair::train_pair(&cfg, &data, 1, Some(&cut), false).err();
        std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
        let err = format!("{:#}", err.expect("stopped after epoch 2"));
        assert!(err.contains("stopped after epoch 2"), "{err}");
        assert!(cut.join("resume/state.json").exists(), "{name}");
        let b = pair::train_pair(&cfg, &data, 1, Some(&cut), false).unwrap();
        assert_eq!(a.history.len(), b.history.len(), "{name}");
        assert_eq!(numbers(&a), numbers(&b), "{name}: the resumed run's numbers");
        for member in ["teacher", "student"] {
            let preds = |d: &Path| {
                std::fs::read_to_string(d.join(member).join("predictions_test.csv")).unwrap()
            };
            assert_eq!(preds(&whole), preds(&cut), "{name} {member}: test predictions");
        }
        let (la, lb) = (
            std::fs::read_to_string(whole.join("log.jsonl")).unwrap(),
            std::fs::read_to_string(cut.join("log.jsonl")).unwrap(),
        );
        assert_eq!(count(&lb, "epoch"), cfg.epochs, "{name}: each epoch logged once");
        assert_eq!(count(&la, "iter"), count(&lb, "iter"), "{name}");
        assert_eq!(count(&lb, "resume"), 1, "{name}");
    }
}

#[test]
fn distill_accumulates_and_augments() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 20);
    cfg.epochs = 1;
    cfg.ft_lr_ratio = 0.1;
    cfg.teacher.model.backbone = normiqa::model::BackboneName::ResNet18;
    cfg.student.model.backbone = normiqa::model::BackboneName::ResNet18;
    let data = pair::prepare(&cfg, 1).unwrap();
    let run = |c: &DistillConfig| pair::train_pair(c, &data, 1, None, false).unwrap();
    let plain = run(&cfg);
    // Accumulation: the first batch's gradient waits for the second, so later losses change.
    let mut acc = cfg.clone();
    acc.accumulation_steps = 2;
    let a = run(&acc);
    assert_ne!(numbers(&plain), numbers(&a), "accumulation changed nothing");
    // Augmentation (rotation, flip, crop): other inputs, other numbers, repeatable per seed.
    let mut aug = cfg.clone();
    aug.augment = Some(Augment {
        angle: 5.0,
        hflip: 0.5,
        crop: Some([24, 24]),
    });
    let g1 = run(&aug);
    let g2 = run(&aug);
    assert_ne!(numbers(&plain), numbers(&g1), "augmentation changed nothing");
    assert_eq!(numbers(&g1), numbers(&g2), "same seed, same augmented numbers");
    assert!(g1.history[0].task_loss.iter().all(|v| v.is_finite()));
    // Cached frozen features cannot be augmented: the option is refused by name.
    let mut bad = aug.clone();
    bad.ft_lr_ratio = 0.0;
    let err = format!("{:#}", bad.validate().unwrap_err());
    assert!(err.contains("augment"), "{err}");
}

/// Every number of a predictions CSV (image names left out), row by row.
fn numbers_of(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').skip(1).map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
        .collect()
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["normiqa"];
    v.extend_from_slice(args);
    normiqa::cli::run(normiqa::cli::Cli::try_parse_from(v)?)
}

#[test]
fn every_distill_member_is_a_run_folder() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 30);
    cfg.epochs = 2;
    cfg.student.arch = mrkd::Arch::Plain;
    let data = pair::prepare(&cfg, 3).unwrap();
    let out = tmp.path().join("pair");
    let r = pair::train_pair(&cfg, &data, 3, Some(&out), false).unwrap();
    for (k, member) in ["teacher", "student"].iter().enumerate() {
        let dir = out.join(member);
        let d = dir.to_str().unwrap();
        for f in ["config.toml", "run.json", "weights.safetensors", "log.jsonl", "predictions_test.csv"] {
            assert!(dir.join(f).exists(), "{member}: missing {f}");
        }
        let info = normiqa::run::RunInfo::load(&dir).unwrap();
        assert_eq!(info.config.seed, 3, "{member}: the split seed");
        assert_eq!(info.sizes.test, r.sizes[2]);
        // The final epoch's weights: the same test SRCC as the pair's final evaluation (SRCC
        // does not change under the positive linear mapping).
        let srcc = info.test.as_ref().unwrap().last().unwrap().srocc;
        let want = r.models[k].final_epoch.eval.test.srocc;
        assert!((srcc - want).abs() < 1e-9, "{member}: {srcc} vs {want}");
        // `test` recomputes the split from the run folder alone and gets the same numbers.
        let preds = tmp.path().join(format!("{member}-preds.csv"));
        cli(&["test", "--model", d, "--device", "cpu", "--predictions", preds.to_str().unwrap()])
            .unwrap();
        // Heads on one image at a time (test) or on all cached rows at once (the pair) differ
        // in float rounding; the train-set mapping (large k for a random-init model's nearly
        // constant outputs) magnifies that in predicted_mos, the last column.
        let (a, b) = (numbers_of(&preds), numbers_of(&dir.join("predictions_test.csv")));
        assert_eq!(a.len(), b.len(), "{member}: the same images");
        let cols = 2 + info.heads.len();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let tol = if i % cols == cols - 1 { 1e-3 } else { 1e-4 };
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{member}: test --model {x} vs {y}");
        }
        let images = cfg.data.dataset.path("images").unwrap();
        let scored = tmp.path().join(format!("{member}-scores.csv"));
        let img = images.join("img000.png");
        cli(&["predict", img.to_str().unwrap(), "--model", d, "--device", "cpu", "-o", scored.to_str().unwrap()])
            .unwrap();
        // the record line, the header, the image
        assert_eq!(std::fs::read_to_string(&scored).unwrap().lines().count(), 3);
        let files = normiqa::cli::report::report(&dir, &Default::default()).unwrap();
        assert!(!files.is_empty(), "{member}: report wrote nothing");
    }
    let student = normiqa::run::RunInfo::load(&out.join("student")).unwrap();
    assert_eq!(student.heads, ["score"], "the plain regressor has one head");
}

#[test]
fn mrkd_sweeps_run_as_experiment_files_with_the_numbers_of_distill() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(tmp.path(), 30);
    let (csv, images) = (&cfg.data.dataset.path("csv").unwrap(), &cfg.data.dataset.path("images").unwrap());
    // Base keys first: in TOML, keys after a [table] header belong to that table.
    let text = format!(
        r#"
random_init = true
epochs = 2
batch_size = 4
device = "cpu"
[experiment]
name = "mrkd-sweep"
procedure = "distill"
pair_over = "seed"
[data]
split = "random"
dataset = {{ kind = "csv", csv = {csv:?}, images = {images:?} }}
[teacher]
lr = 0.01
[student]
lr = 0.001
[[sweep]]
lambda = {{ values = [0.0], labels = ["baseline"] }}
seed = [1]
[[sweep]]
"teacher.lr" = [0.001, 0.05]
seed = [1]
"#
    );
    let exp = normiqa::experiment::Experiment::parse(&text, "x").unwrap();
    let combos = exp.distill_combos().unwrap();
    let names: Vec<&str> = combos.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["lambda=baseline_seed=1", "lr=0.001_seed=1", "lr=0.05_seed=1"]);
    let opts = normiqa::experiment::RunOptions {
        runs_root: tmp.path().join("runs"),
        ..Default::default()
    };
    let dir = normiqa::experiment::run(&exp, &opts).unwrap();
    let results = normiqa::experiment::runner::write_results(&exp, &dir).unwrap();
    assert_eq!(results.rows.len(), 6, "teacher and student of 3 pairs");
    assert!(results.rows.iter().all(|r| r.status() == "done"));
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("member=student"), "{md}");

    // The same pairs through `normiqa distill`: the same final test SRCC per member.
    let distilled = normiqa::distill::run_experiment(
        &normiqa::distill::Experiment {
            run: exp.distill_combos().unwrap()[2].run.run.clone(),
            variants: vec![
                normiqa::distill::Variant::Baseline,
                normiqa::distill::Variant::Urkd,
                normiqa::distill::Variant::Mrkd,
            ],
            seeds: vec![1],
            urkd_lr: None,
            save_weights: false,
            plots: false,
        },
        &tmp.path().join("distill"),
        false,
        &normiqa::report::mrkd::write,
    )
    .unwrap()
    .expect("a fresh folder: the experiment ran");
    // (baseline = λ 0 at teacher 0.05; URKD = both at the student's 0.001; MRKD = teacher 0.05)
    let srcc = |run: &str, member: &str| {
        let row = results.rows.iter().find(|r| r.name == format!("{run}/{member}")).unwrap();
        row.data.as_ref().unwrap().test.as_ref().unwrap().srocc
    };
    use normiqa::distill::{Selection, Variant};
    let want = |v: Variant, k: usize| distilled.row(v, k, Selection::Final).unwrap().test_srcc.mean;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(srcc("lr=0.05_seed=1", "student"), want(Variant::Mrkd, 1)));
    assert!(close(srcc("lr=0.05_seed=1", "teacher"), want(Variant::Mrkd, 0)));
    assert!(close(srcc("lr=0.001_seed=1", "student"), want(Variant::Urkd, 1)));
    // The baseline's student does not depend on the teacher (λ = 0).
    assert!(close(srcc("lambda=baseline_seed=1", "student"), want(Variant::Baseline, 1)));
}

/// A pair of a `run` experiment that fails (its teacher's loss diverges) is listed as failed in
/// results.md and results.csv, as `run --dry-run` lists it, not as pending.
#[test]
fn a_failed_pair_is_listed_as_failed_in_the_results() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(tmp.path(), 24);
    let (csv, images) = (&cfg.data.dataset.path("csv").unwrap(), &cfg.data.dataset.path("images").unwrap());
    let text = format!(
        r#"
random_init = true
epochs = 1
batch_size = 4
device = "cpu"
[experiment]
name = "diverges"
procedure = "distill"
pair_over = "seed"
[data]
split = "random"
dataset = {{ kind = "csv", csv = {csv:?}, images = {images:?} }}
[teacher]
lr = 0.01
[student]
lr = 0.001
[[sweep]]
"teacher.lr" = [0.01, 1e12]
seed = [1]
"#
    );
    let exp = normiqa::experiment::Experiment::parse(&text, "x").unwrap();
    let opts = normiqa::experiment::RunOptions {
        runs_root: tmp.path().join("runs"),
        ..Default::default()
    };
    let err = format!("{:#}", normiqa::experiment::run(&exp, &opts).unwrap_err());
    assert!(err.contains("1 run(s) failed"), "{err}");
    let dir = tmp.path().join("runs/diverges");
    let results = normiqa::experiment::runner::write_results(&exp, &dir).unwrap();
    let status: Vec<(&str, &str)> = results.rows.iter().map(|r| (r.name.as_str(), r.status())).collect();
    assert_eq!(
        status,
        [
            ("lr=0.01_seed=1/teacher", "done"),
            ("lr=0.01_seed=1/student", "done"),
            ("lr=1000000000000_seed=1/teacher", "failed"),
            ("lr=1000000000000_seed=1/student", "failed"),
        ]
    );
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("failed") && !md.contains("pending"), "{md}");
}

#[test]
fn pair_folders_of_distill_experiments_follow_the_run_folder_rules() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(tmp.path(), 24);
    let (csv, images) = (&cfg.data.dataset.path("csv").unwrap(), &cfg.data.dataset.path("images").unwrap());
    let file = |lambda: f64| {
        format!(
            r#"
random_init = true
epochs = 1
batch_size = 4
device = "cpu"
lambda = {lambda}
[experiment]
name = "pairs"
procedure = "distill"
[data]
split = "random"
dataset = {{ kind = "csv", csv = {csv:?}, images = {images:?} }}
[teacher]
lr = 0.01
[student]
lr = 0.001
[[sweep]]
seed = [1]
"#
        )
    };
    let opts = normiqa::experiment::RunOptions {
        runs_root: tmp.path().join("runs"),
        ..Default::default()
    };
    let exp = normiqa::experiment::Experiment::parse(&file(0.5), "x").unwrap();
    let dir = normiqa::experiment::run(&exp, &opts).unwrap();
    let pair = dir.join(&exp.distill_combos().unwrap()[0].name);
    assert!(pair.join("pair.json").exists(), "the finished marker is written");
    let stamp = std::fs::metadata(pair.join("pair.json")).unwrap().modified().unwrap();
    // Again: the finished pair is skipped (nothing rewritten).
    normiqa::experiment::run(&exp, &opts).unwrap();
    assert_eq!(std::fs::metadata(pair.join("pair.json")).unwrap().modified().unwrap(), stamp);
    // The file edited: the pair folder holds another configuration, refused with the option named.
    let edited = normiqa::experiment::Experiment::parse(&file(0.25), "x").unwrap();
    let err = format!("{:#}", normiqa::experiment::run(&edited, &opts).unwrap_err());
    assert!(err.contains("lambda") && err.contains("--overwrite"), "{err}");
    // With --overwrite it runs again, with the new λ.
    let over = normiqa::experiment::RunOptions { overwrite: true, ..opts.clone() };
    normiqa::experiment::run(&edited, &over).unwrap();
    let stored = std::fs::read_to_string(pair.join("config.toml")).unwrap();
    assert!(stored.contains("lambda = 0.25"), "{stored}");
}
