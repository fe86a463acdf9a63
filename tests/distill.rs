//! MRKD (`normiqa distill`) on tiny synthetic data with random-init backbones: the eq.-5 term,
//! gradients of mutual vs one-way distillation, λ = 0 = independent training, per-model cosine
//! rates per step, and end-to-end experiment runs (frozen/cached and fine-tuning).

mod common;

/// Serialises the tests that build models: libtorch's random generator is global, so a test
/// running in parallel would change another test's initialisation between `manual_seed` and
/// the model's creation.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

use std::path::Path;

use normiqa::distill::{
    self, mrkd, pair, Arch, Direction, DistillConfig, Experiment, LrUnit, Member, Selection, Variant,
};
use normiqa::run::schedule::cosine;
use normiqa::run::{DataConfig, SplitProtocol};
use tch::{Device, Kind, Tensor};

/// A synthetic dataset with a distortion column (4 types) and a config for it.
fn tiny(dir: &Path, n: usize) -> DistillConfig {
    let (csv, images) = common::synthetic_dataset(dir, n, 32);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut out = String::from("image,mos,distortion\n");
    for (i, l) in text.lines().skip(1).enumerate() {
        out.push_str(&format!("{l},type{}\n", i % 4));
    }
    std::fs::write(&csv, out).unwrap();
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
    cfg.epochs = 2;
    cfg.batch_size = 4;
    cfg.device = "cpu".into();
    cfg
}

#[test]
fn eq5_term_is_the_mean_squared_difference() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let b = Tensor::from_slice(&[1.0f32, 0.0, 6.0]);
    let d = f64::try_from(distill::distill_term(&a, &b)).unwrap();
    assert!((d - 13.0 / 3.0).abs() < 1e-6, "{d}");
    assert_eq!(f64::try_from(distill::distill_term(&a, &a)).unwrap(), 0.0);
}

/// Gradients of `loss` with respect to a member's trainable variables.
fn grads(loss: &Tensor, m: &Member) -> Vec<Tensor> {
    let vars: Vec<Tensor> =
        m.vs.trainable_variables()
            .into_iter()
            .filter(|t| t.requires_grad())
            .collect();
    // Variables the loss does not reach get an undefined gradient: zero.
    Tensor::run_backward(&[loss], &vars, true, false)
        .into_iter()
        .zip(&vars)
        .map(|(g, v)| if g.defined() { g } else { v.zeros_like() })
        .collect()
}

fn max_abs_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::try_from((x - y).abs().max()).unwrap())
        .fold(0.0, f64::max)
}

#[test]
fn one_way_gives_the_teacher_no_distillation_gradient() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 8);
    cfg.teacher.arch = Arch::Linearity;
    cfg.student.arch = Arch::Plain;
    cfg.lambda = 1.0;
    tch::manual_seed(3);
    let members = [
        Member::new(&cfg.teacher, Device::Cpu).unwrap(),
        Member::new(&cfg.student, Device::Cpu).unwrap(),
    ];
    for m in &members {
        m.freeze_backbone();
    }
    let [c6, c7] = members[0].backbone().channels();
    let f6 = Tensor::randn([8, c6], (Kind::Float, Device::Cpu));
    let f7 = Tensor::randn([8, c7], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([8], (Kind::Float, Device::Cpu));
    let outs: [Vec<Tensor>; 2] =
        std::array::from_fn(|k| members[k].net.heads(&[f6.shallow_clone(), f7.shallow_clone()], true));

    let task_only: Vec<Vec<Tensor>> = (0..2)
        .map(|k| {
            grads(
                &members[k]
                    .task_loss(&cfg.loss, cfg.beta, &outs[k], &y)
                    .unwrap(),
                &members[k],
            )
        })
        .collect();

    cfg.direction = Direction::OneWay;
    let (total, _, _, d) = mrkd::pair_loss(&cfg, &members, &outs, &y).unwrap();
    assert!(f64::try_from(&d).unwrap() > 0.0);
    let one_way: Vec<Vec<Tensor>> = (0..2).map(|k| grads(&total, &members[k])).collect();
    assert!(
        max_abs_diff(&one_way[0], &task_only[0]) < 1e-6,
        "one-way: the teacher got a distillation gradient"
    );
    assert!(
        max_abs_diff(&one_way[1], &task_only[1]) > 1e-4,
        "one-way: the student got no distillation gradient"
    );

    cfg.direction = Direction::Mutual;
    let (total, _, _, _) = mrkd::pair_loss(&cfg, &members, &outs, &y).unwrap();
    let mutual: Vec<Vec<Tensor>> = (0..2).map(|k| grads(&total, &members[k])).collect();
    assert!(
        max_abs_diff(&mutual[0], &task_only[0]) > 1e-4,
        "mutual: the teacher got no distillation gradient"
    );
    // The student's gradient is the same in both directions (it always sees the teacher as a target).
    assert!(max_abs_diff(&mutual[1], &one_way[1]) < 1e-6);
    // And the teacher's distillation gradient is exactly λ·∂d/∂θ_teacher.
    let (_, _, _, d) = mrkd::pair_loss(&cfg, &members, &outs, &y).unwrap();
    let gd = grads(&d, &members[0]);
    let sum: Vec<Tensor> = task_only[0].iter().zip(&gd).map(|(a, b)| a + b).collect();
    assert!(max_abs_diff(&mutual[0], &sum) < 1e-5);
}

#[test]
fn lambda_zero_is_independent_training() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 30);
    cfg.lambda = 0.0;
    let data = pair::prepare(&cfg, 1).unwrap();
    let a = pair::train_pair(&cfg, &data, 1, None, false).unwrap();
    // A different teacher (rate and architecture) changes nothing for the student when λ = 0.
    let mut other = cfg.clone();
    other.teacher.lr = 0.05;
    let b = pair::train_pair(&other, &data, 1, None, false).unwrap();
    let preds = |r: &mrkd::PairResult, k: usize| -> Vec<u64> {
        r.history
            .iter()
            .map(|h| h.eval[k].test.srocc.to_bits())
            .collect()
    };
    assert_eq!(preds(&a, 1), preds(&b, 1));
    assert_eq!(
        a.history.iter().map(|h| h.task_loss[1]).collect::<Vec<_>>(),
        b.history.iter().map(|h| h.task_loss[1]).collect::<Vec<_>>()
    );
    assert_ne!(
        a.history.iter().map(|h| h.task_loss[0]).collect::<Vec<_>>(),
        b.history.iter().map(|h| h.task_loss[0]).collect::<Vec<_>>()
    );
    // With λ > 0 the teacher does change the student.
    let mut on = cfg.clone();
    on.lambda = 1.0;
    let c = pair::train_pair(&on, &data, 1, None, false).unwrap();
    assert_ne!(
        a.history.iter().map(|h| h.task_loss[1]).collect::<Vec<_>>(),
        c.history.iter().map(|h| h.task_loss[1]).collect::<Vec<_>>()
    );
    // Same seed, same numbers.
    let a2 = pair::train_pair(&cfg, &data, 1, None, false).unwrap();
    assert_eq!(preds(&a, 0), preds(&a2, 0));
}

#[test]
fn cosine_rate_per_model_per_step() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 30);
    cfg.lr_unit = LrUnit::Step;
    cfg.eta_min = 1e-4;
    cfg.epochs = 3;
    let data = pair::prepare(&cfg, 2).unwrap();
    let out = tmp.path().join("run");
    let r = pair::train_pair(&cfg, &data, 2, Some(&out), false).unwrap();
    assert_eq!(r.sizes, [18, 6, 6]);
    let iters = 18 / 4;
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let mut n = 0;
    for line in log.lines().filter(|l| l.contains("\"event\":\"iter\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["iter"].as_u64().unwrap() as usize - 1;
        for (k, eta_max) in [(0, 0.01), (1, 0.001)] {
            let want = cosine(t, 3 * iters, eta_max, 1e-4);
            let got = v["lr"][k].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-12,
                "step {t} model {k}: {got} vs {want}"
            );
        }
        n += 1;
    }
    assert_eq!(n, 3 * iters);
    // Per-epoch unit: constant within an epoch, eq. 6 in epochs.
    cfg.lr_unit = LrUnit::Epoch;
    assert_eq!(cfg.lr_at(0, 1, 3, iters), cosine(1, 3, 0.01, 1e-4));
    assert_eq!(cfg.lr_at(1, 2, 0, iters), cosine(2, 3, 0.001, 1e-4));
}

#[test]
fn two_epoch_experiment_writes_results_tables_and_plots() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 80);
    // A test set large enough for a per-type SRCC (≥ 3 images) of all 4 types.
    cfg.data.train_ratio = 0.5;
    cfg.data.train_val_ratio = 0.6;
    let exp = Experiment {
        run: cfg,
        variants: vec![Variant::Baseline, Variant::Urkd, Variant::Mrkd],
        seeds: vec![1, 2],
        urkd_lr: None,
        save_weights: true,
        plots: true,
    };
    let out = tmp.path().join("exp");
    let res = distill::run_experiment(&exp, &out, false, &normiqa::report::mrkd::write).unwrap().unwrap();
    for f in [
        "config.toml",
        "results.json",
        "results.md",
        "per_type_srcc.png",
        "curves.png",
        "fig1_per_type_srcc_per_epoch.png",
        "fig1_violins.png",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    // A PNG of the size drawn (not an empty or partial file).
    let violins = image::open(out.join("fig1_violins.png")).unwrap();
    assert_eq!((violins.width(), violins.height()), (1200, 560));
    for v in ["baseline", "urkd", "mrkd"] {
        for s in [1, 2] {
            let d = out.join(v).join(format!("seed-{s}"));
            assert!(
                d.join("log.jsonl").exists() && d.join("student.safetensors").exists(),
                "{}",
                d.display()
            );
        }
    }
    // 3 variants × 2 models × 3 selections (there is a validation set).
    let got: Vec<_> = res
        .summary
        .iter()
        .map(|r| (r.variant, r.model, r.selection))
        .collect();
    assert_eq!(res.summary.len(), 18, "{got:?}");
    let base = res.row(Variant::Baseline, 1, Selection::Final).unwrap();
    assert_eq!(
        base.test_srcc.n,
        2,
        "{}",
        std::fs::read_to_string(out.join("results.md")).unwrap()
    );
    assert_eq!(base.per_type_srcc.len(), 4);
    assert_eq!(res.hardest.len(), 2);
    assert_eq!(res.easiest.len(), 2);
    assert_eq!(res.runs[0].config.lambda, 0.0);
    assert_eq!(res.runs[1].config.teacher.lr, res.runs[1].config.student.lr);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("final epoch") && md.contains("best-val epoch") && md.contains("Hardest"),
        "{md}"
    );
    let back: distill::ExperimentResults =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(back.runs.len(), 3);
    // The experiment round-trips through its TOML.
    let exp2: Experiment =
        toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(exp2, exp);
}

/// A variant whose loss diverges (the MRKD teacher at an absurd rate) fails alone: the other
/// variant's pairs finish and get their table, the command ends with an error naming the failed
/// pairs, and a second run keeps the finished pairs and tries only the failed ones again.
#[test]
fn a_diverged_variant_fails_alone_and_the_finished_ones_get_their_table() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 24);
    cfg.teacher.lr = 1e12;
    let exp = Experiment {
        run: cfg,
        variants: vec![Variant::Urkd, Variant::Mrkd],
        seeds: vec![1, 2],
        urkd_lr: None,
        save_weights: false,
        plots: false,
    };
    let out = tmp.path().join("exp");
    let err = format!("{:#}", distill::run_experiment(&exp, &out, false, &normiqa::report::mrkd::write).unwrap_err());
    assert!(err.contains("2 of the experiment's pairs failed") && err.contains("mrkd seed 1") && err.contains("mrkd seed 2"), "{err}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| urkd | URKD model 2 |") && !md.contains("| mrkd | MRKD student |"), "{md}");
    assert!(md.contains("Failed pairs") && md.contains("non-finite"), "{md}");
    assert!(out.join("mrkd/seed-1/failed.txt").exists());
    assert!(!out.join("results.json").exists(), "not finished: the failed pairs run again");
    let done = out.join("urkd/seed-1/pair.json");
    let stamp = std::fs::metadata(&done).unwrap().modified().unwrap();
    assert!(distill::run_experiment(&exp, &out, false, &normiqa::report::mrkd::write).is_err());
    assert_eq!(std::fs::metadata(&done).unwrap().modified().unwrap(), stamp, "finished pairs are kept");
}

#[test]
fn fine_tuning_runs_through_the_backbones() {
    let _lock = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(tmp.path(), 16);
    cfg.ft_lr_ratio = 0.1;
    cfg.epochs = 1;
    cfg.teacher.model.backbone = normiqa::model::BackboneName::ResNet18;
    cfg.student.arch = Arch::Plain;
    cfg.student.model.backbone = normiqa::model::BackboneName::ResNet18;
    let data = pair::prepare(&cfg, 1).unwrap();
    assert!(matches!(data.inputs, pair::Inputs::Images(_)));
    let r = pair::train_pair(&cfg, &data, 1, Some(&tmp.path().join("ft")), true).unwrap();
    assert!(r.history[0].task_loss.iter().all(|v| v.is_finite()));
    // The student's backbone was trained: its first conv moved from the same initialisation
    // (train_pair seeds, then builds the teacher, then the student).
    tch::manual_seed(1);
    let _teacher = Member::new(&cfg.teacher, Device::Cpu).unwrap();
    let before = Member::new(&cfg.student, Device::Cpu).unwrap();
    let saved = Tensor::read_safetensors(tmp.path().join("ft/student.safetensors")).unwrap();
    let (_, w) = saved
        .iter()
        .find(|(n, _)| n == "backbone.conv1.weight")
        .expect("backbone saved");
    let w0 = &before.vs.variables()["backbone.conv1.weight"];
    assert!(
        f64::try_from((w - w0).abs().max()).unwrap() > 0.0,
        "the backbone did not change"
    );
}

#[test]
fn experiment_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mrkd");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = std::fs::read_to_string(&p).unwrap();
            let exp: Experiment =
                toml::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            exp.run.validate().unwrap();
            n += 1;
        }
    }
    assert!(n >= 1);
}

/// The experiment files of MRKD in the paper's own setting (TID2013 and KADID-10k; DBCNN, the
/// ResNet-50 regressor, HyperIQA) state that setting, and each model's file runs end to end on
/// the tiny fixture of one of the datasets (random weights, small images, one epoch, the MRKD
/// variant: machinery, not accuracy).
#[test]
fn paper_setting_files_hold_the_papers_setting_and_run_on_the_fixtures() {
    let _lock = lock();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mrkd");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/normiqa-core/tests/data/datasets");
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for dataset in ["tid2013", "kadid10k"] {
        for model in ["dbcnn", "resnet50", "hyperiqa"] {
            let file = dir.join(format!("paper-{dataset}-{model}.toml"));
            let mut exp: Experiment = toml::from_str(&std::fs::read_to_string(&file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let r = &exp.run;
            assert_eq!((r.batch_size, r.lambda, r.data.train_ratio, r.ft_lr_ratio), (16, 1.0, 0.8, 1.0), "{}", file.display());
            assert_eq!(r.data.split, SplitProtocol::Random);
            assert!(matches!(r.optimizer, normiqa::run::config::OptimizerKind::Sgd { momentum } if momentum == 0.9));
            assert!(exp.seeds.len() >= 3 && exp.variants.len() == 3);
            assert!(r.teacher.lr > r.student.lr);
            // Each model once, each dataset at least once.
            if !matches!((dataset, model), ("tid2013", "dbcnn") | ("kadid10k", "resnet50") | ("tid2013", "hyperiqa")) {
                continue;
            }
            // The fixture: its root, random weights, tiny images, one epoch of batch 2.
            let root = fixtures.join(dataset);
            let ds = &mut exp.run.data.dataset;
            assert!(ds.is("tid2013") || ds.is("kadid"), "{}: {ds:?}", file.display());
            ds.set_path("root", &root);
            // (ResNet-50 at 32 px has 1x1 last maps, whose batch-2 BatchNorm gives NaN outputs)
            let side = if model == "hyperiqa" { 224 } else { 64 };
            exp.run.data.resize = Some([side, side]);
            if let Some(a) = exp.run.augment.as_mut() {
                a.crop = Some([side, side]);
            }
            exp.run.random_init = true;
            exp.run.epochs = 1;
            exp.run.batch_size = 2;
            exp.run.device = "cpu".into();
            exp.seeds = vec![1];
            exp.variants = vec![Variant::Mrkd];
            exp.plots = false;
            let out = tmp.path().join(format!("{dataset}-{model}"));
            let res = distill::run_experiment(&exp, &out, false, &normiqa::report::mrkd::write)
                .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()))
                .unwrap();
            assert_eq!(res.runs[0].results.len(), 1, "{}", file.display());
            n += 1;
        }
    }
    assert_eq!(n, 3);
}
