//! Experiment files: every shipped file parses into the expected runs; the paper's KonIQ-10k and
//! other-backbone experiments run unchanged except for the data and weights, on a tiny synthetic
//! stand-in (KonIQ-10k layout with the official `set` column; random-init backbones: these
//! runs check the machinery, not accuracy); skip / re-run semantics; results tables, t-tests and
//! the report's PNGs.

mod common;

use std::path::{Path, PathBuf};

use normiqa::experiment::{self, Experiment, RunOptions};
use toml::Value;

fn experiments_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

/// A KonIQ-10k-layout stand-in: `koniq10k_distributions_sets.csv` (image_name, c1..c5, c_total,
/// MOS, SD, set) over synthetic images; 20 training, 5 validation, 5 test images.
fn synthetic_koniq(dir: &Path) -> (PathBuf, PathBuf) {
    let (csv, images) = common::synthetic_dataset(dir, 30, 96);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut out = String::from("image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n");
    for (i, line) in text.lines().skip(1).enumerate() {
        let mut it = line.split(',');
        let (name, mos) = (it.next().unwrap(), it.next().unwrap());
        let set = match i % 6 {
            4 => "validation",
            5 => "test",
            _ => "training",
        };
        out.push_str(&format!("{name},1,1,1,1,1,5,{mos},0.5,{set}\n"));
    }
    let labels = dir.join("koniq10k_distributions_sets.csv");
    std::fs::write(&labels, out).unwrap();
    (labels, images)
}

fn table(pairs: &[(&str, Value)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

/// The tiny-run overrides: random init, one epoch, small images, CPU.
fn shrink(e: &mut Experiment) {
    e.set("random_init", Value::Boolean(true)).unwrap();
    e.set("epochs", Value::Integer(1)).unwrap();
    e.set("device", s("cpu")).unwrap();
    e.set("test_during_training", Value::Boolean(false))
        .unwrap();
    e.set("model.drop_connect", Value::Float(0.0)).unwrap();
}

#[test]
fn every_shipped_experiment_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(experiments_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let e = Experiment::load(&p).unwrap_or_else(|err| panic!("{}: {err:#}", p.display()));
        let n_combos = match e.meta.procedure {
            normiqa::experiment::spec::ProcedureKind::Distill => e.distill_combos().unwrap().len(),
            _ => e.combos().unwrap().len(),
        };
        assert!(n_combos > 0, "{}", p.display());
        let expect = match e.name.as_str() {
            "fig1-koniq" | "fig4-clive" | "fig4-koniq" => Some(3),
            "fig1-clive" => Some(6),
            // 3 losses x (3 lr + 3 batch sizes + 4 ft ratios), the basic setting once per loss.
            "fig5-koniq" => Some(24),
            "fig6-7-koniq" => Some(12),
            "table1-clive" => Some(40),
            "table1-koniq" => Some(16),
            "table2-koniq" => Some(2),
            // 3 optimisers x 3 losses x 5 rates (1e-1 .. 1e-5, as Table A1)
            "suppl-c-optimizers-koniq" => Some(45),
            // 2 optimisers x 3 losses x 5 rates (the main text's Table 3)
            "table3-optimizers-clive" => Some(30),
            "suppl-d-nonbn-koniq" => Some(6),
            // 5 losses (p,q pairs and l + 0.1 l') x 10 CLIVE splits
            "suppl-e-ttest-clive" | "suppl-e-ttest-clive-lite0" => Some(50),
            // (baseline + URKD + 7 teacher rates) x 3 seeds
            "mrkd-table7-clive-short" => Some(27),
            "ttest-clive-lite0" => Some(20),
            // 3 EfficientNet-Lite backbones x 10 CLIVE splits
            "ttest-clive-lite012" => Some(30),
            // (baseline + URKD + 6 teacher rates) x 5 seeds
            "mrkd-lr-ablation" => Some(40),
            _ => None,
        };
        if let Some(k) = expect {
            assert_eq!(n_combos, k, "{}", e.name);
        }
        n += 1;
    }
    assert!(n >= 14, "only {n} experiment files");
    // Spot checks of the configurations.
    let e = Experiment::load(&experiments_dir().join("fig4-koniq.toml")).unwrap();
    let c = e.combos().unwrap();
    assert!(c[1].config.model.use_bn_end && c[1].config.loss.kind == normiqa::loss::LossKind::Mse);
    assert_eq!(c[1].config.data.resize, Some([498, 664]));
    assert_eq!(
        c[0].config.model.backbone,
        normiqa::model::BackboneName::ResNeXt101_32x8d
    );
    let e = Experiment::load(&experiments_dir().join("suppl-c-optimizers-koniq.toml")).unwrap();
    let c = e.combos().unwrap();
    assert!(matches!(
        c.last().unwrap().config.optimizer,
        normiqa::run::config::OptimizerKind::Adadelta { .. }
    ));
}

/// Runs the given combinations of a shipped KonIQ-10k experiment on the stand-in.
fn run_koniq_file(
    file: &str,
    only: &[usize],
    tmp: &Path,
    labels: &Path,
    images: &Path,
    resize: [i64; 2],
) -> PathBuf {
    run_koniq_file_with(file, only, tmp, labels, images, resize, &[])
}

/// As [`run_koniq_file`], with extra base overrides (e.g. a smaller backbone where the file's
/// ResNeXt-101 is already covered by another file).
fn run_koniq_file_with(
    file: &str,
    only: &[usize],
    tmp: &Path,
    labels: &Path,
    images: &Path,
    resize: [i64; 2],
    extra: &[(&str, Value)],
) -> PathBuf {
    let mut e = Experiment::load(&experiments_dir().join(file)).unwrap();
    for (k, v) in extra {
        e.set(k, v.clone()).unwrap();
    }
    e.set(
        "data.dataset",
        table(&[
            ("kind", s("koniq")),
            ("labels", s(labels.to_str().unwrap())),
            ("images", s(images.to_str().unwrap())),
        ]),
    )
    .unwrap();
    e.set(
        "data.resize",
        Value::Array(resize.iter().map(|&x| Value::Integer(x)).collect()),
    )
    .unwrap();
    shrink(&mut e);
    let opts = RunOptions {
        runs_root: tmp.join("runs"),
        only: Some(only.to_vec()),
        ..Default::default()
    };
    let dir = experiment::run(&e, &opts).unwrap_or_else(|err| panic!("{file}: {err:#}"));
    let combos = e.combos().unwrap();
    for &i in only {
        assert!(
            dir.join(&combos[i].name).join("run.json").exists(),
            "{file}: run {i} ({}) did not finish",
            combos[i].name
        );
    }
    dir
}

#[test]
fn paper_koniq_experiments_run_on_a_synthetic_stand_in() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let (labels, images) = synthetic_koniq(&tmp.path().join("koniq"));
    // ResNeXt-101 with MAE; bnMSE, alpha [1, 0.1] and b-hat logging (their ResNeXt-101 swapped
    // for ResNet-18: the backbone is covered by fig1), ResNet-50 at ft_lr_ratio 1, ResNet-18 with
    // batch 16 and with p=2 q=2, Adadelta, AlexNet and VGG-16.
    run_koniq_file(
        "fig1-koniq.toml",
        &[0],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
    );
    let r18 = [("model.backbone", s("resnet18"))];
    run_koniq_file_with(
        "fig4-koniq.toml",
        &[1],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
        &r18,
    );
    run_koniq_file(
        "fig5-koniq.toml",
        &[23],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
    );
    run_koniq_file(
        "fig6-7-koniq.toml",
        &[2],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
    );
    run_koniq_file(
        "table1-koniq.toml",
        &[3],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
    );
    run_koniq_file_with(
        "table2-koniq.toml",
        &[1],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
        &r18,
    );
    run_koniq_file_with(
        "suppl-b-bhat-koniq.toml",
        &[0],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
        &r18,
    );
    run_koniq_file(
        "suppl-c-optimizers-koniq.toml",
        &[26],
        tmp.path(),
        &labels,
        &images,
        [64, 64],
    );
    let d = run_koniq_file(
        "suppl-d-nonbn-koniq.toml",
        &[0, 5],
        tmp.path(),
        &labels,
        &images,
        [96, 96],
    );
    let csv = std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.contains(",done,")).count(),
        2,
        "{csv}"
    );
}

#[test]
fn clive_experiments_run_on_a_synthetic_stand_in_with_ttests_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let (csv, images) = common::synthetic_dataset(&tmp.path().join("data"), 30, 40);
    let mut e = Experiment::load(&experiments_dir().join("ttest-clive-lite0.toml")).unwrap();
    e.set(
        "data.dataset",
        table(&[
            ("kind", s("csv")),
            ("csv", s(csv.to_str().unwrap())),
            ("images", s(images.to_str().unwrap())),
        ]),
    )
    .unwrap();
    e.set("data.split", s("random")).unwrap();
    shrink(&mut e);
    e.set("epochs", Value::Integer(3)).unwrap();
    e.set("batch_size", Value::Integer(4)).unwrap();
    e.set("lr", Value::Float(1e-3)).unwrap();
    // MSE and Norm-in-Norm on splits 0-2: runs 0-2 and 10-12.
    let only = vec![0, 1, 2, 10, 11, 12];
    let opts = RunOptions {
        runs_root: tmp.path().join("runs"),
        only: Some(only.clone()),
        ..Default::default()
    };
    let dir = experiment::run(&e, &opts).unwrap();
    let results = experiment::runner::write_results(&e, &dir).unwrap();
    assert_eq!(
        results.rows.iter().filter(|r| r.status() == "done").count(),
        6
    );
    assert!(results
        .rows
        .iter()
        .all(|r| r.status() == "done" || r.status() == "pending"));
    // NiN's first epoch is every run's threshold on its split.
    let nin0 = results
        .rows
        .iter()
        .find(|r| r.name == "loss=norm-in-norm_exp_id=0")
        .unwrap();
    let first = nin0.data.as_ref().unwrap().epochs[0].val_plcc;
    assert_eq!(nin0.threshold, Some(first));
    assert_eq!(nin0.epochs_to_threshold, Some(1));
    let tt = normiqa::report::tables::ttests(&results);
    assert_eq!(tt.len(), 1, "mse vs norm-in-norm over 3 splits");
    assert_eq!(
        (tt[0].a.as_str(), tt[0].b.as_str(), tt[0].n),
        ("mse", "norm-in-norm", 3)
    );
    assert!((0.0..=1.0).contains(&tt[0].plcc_p));
    // results.csv carries the best epoch's validation PLCC (Norm-in-Norm Table 3's metric).
    let rcsv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(rcsv.as_bytes());
    let col = rd.headers().unwrap().iter().position(|h| h == "val_plcc_best").expect("val_plcc_best column");
    let nin0_row = rd
        .records()
        .map(|r| r.unwrap())
        .find(|r| r.get(1) == Some("loss=norm-in-norm_exp_id=0"))
        .unwrap();
    let val_plcc: f64 = nin0_row[col].parse().unwrap();
    assert!(
        (val_plcc - nin0.data.as_ref().unwrap().val.as_ref().unwrap().plcc).abs() < 1e-6,
        "{rcsv}"
    );
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(
        md.contains("Paired t-tests") && md.contains("| loss | mse | norm-in-norm |"),
        "{md}"
    );
    // The VQEG logistic PLCCs of every finished run, fitted on its test predictions.
    assert!(md.contains("PLCC (logistic4) | PLCC (logistic5)"), "{md}");
    let finished: Vec<_> = results.rows.iter().filter(|r| r.status() == "done").collect();
    assert!(!finished.is_empty());
    for row in finished {
        let [l4, l5] = row.data.as_ref().unwrap().logistic_plcc;
        assert!(l4.is_some_and(|p| p.abs() <= 1.0) && l5.is_some(), "{}", row.name);
    }

    // Finished runs are skipped; a run without run.json is run again from the start.
    let mtime = |p: PathBuf| std::fs::metadata(p).unwrap().modified().unwrap();
    let keep = dir.join("loss=mse_exp_id=0/run.json");
    let t_keep = mtime(keep.clone());
    std::fs::remove_file(dir.join("loss=mse_exp_id=1/run.json")).unwrap();
    experiment::run(&e, &opts).unwrap();
    assert_eq!(mtime(keep), t_keep, "a finished run was run again");
    assert!(
        dir.join("loss=mse_exp_id=1/run.json").exists(),
        "the interrupted run was not run again"
    );
    // An edited experiment: finished runs with another configuration are refused.
    e.set("lr", Value::Float(2e-3)).unwrap();
    let err = format!("{:#}", experiment::run(&e, &opts).unwrap_err());
    assert!(
        err.contains("--overwrite") && err.contains("lr 0.001 there, 0.002 now"),
        "{err}"
    );
    // --overwrite replaces such a run with the file's configuration.
    let replace = RunOptions {
        overwrite: true,
        only: Some(vec![0]),
        ..opts.clone()
    };
    experiment::run(&e, &replace).unwrap();
    let first = dir.join(&e.combos().unwrap()[0].name);
    let info = normiqa::run::RunInfo::load(&first).unwrap();
    assert_eq!(info.config.lr, 2e-3);

    // The report: PNGs that decode, and the markdown tables.
    let files = normiqa::cli::report::report(&dir, &Default::default()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "curves_val_plcc.png",
        "curves_val_srocc.png",
        "curves_val_rmse.png",
        "bhat.png",
        "bhat_per_epoch.png",
        "loss.png",
        "bars_loss.png",
        "report.md",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("scatter_")), "{names:?}");
    for f in files
        .iter()
        .filter(|f| f.extension().and_then(|x| x.to_str()) == Some("png"))
    {
        let img = image::open(f).unwrap().to_rgb8();
        assert!(img.width() >= 600 && img.height() >= 400);
        // Not blank: some dark pixels (text, axes).
        assert!(
            img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count() > 500,
            "{} looks empty",
            f.display()
        );
    }
    // A single run directory, with TensorBoard events from its log.
    let run = dir.join("loss=norm-in-norm_exp_id=0");
    let opts = normiqa::cli::report::ReportOptions {
        tensorboard: true,
        ..Default::default()
    };
    let one = normiqa::cli::report::report(&run, &opts).unwrap();
    assert!(
        one.iter().any(|f| f.ends_with("scatter.png"))
            && one.iter().any(|f| f.ends_with("curves_val_plcc.png"))
    );
    let ev = one
        .iter()
        .find(|f| f.to_string_lossy().contains("events.out.tfevents."))
        .expect("an event file");
    let bytes = std::fs::read(ev).unwrap();
    // TFRecord framing: the first record is the file_version event.
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(String::from_utf8_lossy(&bytes[12..12 + len]).contains("brain.Event:2"));
    let n_iter = std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event\":\"iter\""))
        .count();
    assert!(bytes.windows(10).filter(|w| w == b"train/bhat").count() == n_iter);
}

/// The reference's batch size (8) where the paper's figures use it, and Table A1's five rates.
#[test]
fn experiment_files_use_the_reference_settings() {
    for (file, bs) in [("fig6-7-koniq.toml", 8), ("suppl-d-nonbn-koniq.toml", 8)] {
        let e = Experiment::load(&experiments_dir().join(file)).unwrap();
        for c in e.combos().unwrap() {
            assert_eq!(c.config.batch_size, bs, "{file}");
        }
    }
    let e = Experiment::load(&experiments_dir().join("suppl-c-optimizers-koniq.toml")).unwrap();
    let mut rates: Vec<f64> = e.combos().unwrap().iter().map(|c| c.config.lr).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    assert_eq!(rates, [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
}

/// Every `normiqa ...` command quoted in the experiment files and their scripts parses with
/// normiqa's own command line (placeholders such as `<run>` stand for a value); a required
/// argument left out of a quoted fragment is fine, an unknown flag or value is not.
#[test]
fn commands_quoted_in_experiment_files_exist() {
    use clap::{error::ErrorKind, Parser};
    let mut files = Vec::new();
    for dir in [experiments_dir(), experiments_dir().join("mrkd")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "sh")) {
                files.push(p);
            }
        }
    }
    let mut checked = 0;
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let Some(rest) = quoted.strip_prefix("normiqa ") else {
                continue;
            };
            let args: Vec<String> = rest
                .split_whitespace()
                .map(|a| if a.contains('<') { "x".to_string() } else { a.to_string() })
                .collect();
            let parsed = normiqa::cli::Cli::try_parse_from(
                std::iter::once("normiqa".to_string()).chain(args),
            );
            if let Err(e) = parsed {
                assert!(
                    matches!(e.kind(), ErrorKind::MissingRequiredArgument),
                    "{}: `normiqa {rest}`: {e}",
                    p.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} quoted commands found");
}
