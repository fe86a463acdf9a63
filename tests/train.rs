//! End-to-end training, checkpoint and inference on tiny synthetic data (random-init backbones:
//! these tests check the machinery, not accuracy), bad-input errors, and loading torchvision-layout
//! `.pth` files made by a minimal torch.save writer.

mod common;

use std::path::Path;

use normiqa::model::{
    linearity::BACKBONE_PREFIX, weights, BackboneName, LinearityIqa, ModelConfig,
};
use normiqa::train;
use normiqa::run::info as checkpoint;
use normiqa::run::{FrozenMode, TrainConfig};
use normiqa::infer::trained::Inputs;
use tch::{nn, Device, Kind, Tensor};

/// libtorch's random generator is global to the process: tests that train (and so draw from it)
/// run one at a time, so that a run is repeatable within a test.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_config(dir: &Path, n: usize) -> TrainConfig {
    common::tiny_train_config(dir, n, 40)
}

fn run_dir(tmp: &Path, name: &str) -> std::path::PathBuf {
    tmp.join("runs").join(name)
}

#[test]
fn frozen_cached_run_writes_a_complete_run_directory() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let mut cfg = tiny_config(tmp.path(), 30);
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 3;
    let out = run_dir(tmp.path(), "frozen");
    let outcome = train::train(&cfg, &out).unwrap();
    for f in [
        "config.toml",
        "run.json",
        "weights.safetensors",
        "log.jsonl",
        "predictions_test.csv",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let info = &outcome.info;
    assert_eq!(
        (info.sizes.train, info.sizes.val, info.sizes.test),
        (18, 6, 6)
    );
    assert!(info.best_epoch >= 1 && info.best_epoch <= 3);
    // random init changes nothing in the backbone, but it is not the pretrained one: saved.
    assert!(info.backbone_in_weights);
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"event\":\"epoch\""))
            .count(),
        3
    );
    // 18 train images, batch 4, drop_last → 4 iterations per epoch.
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"event\":\"iter\""))
            .count(),
        12
    );
    // The config round-trips through TOML.
    let back: TrainConfig =
        toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(back, cfg);

    // Reload and predict: the same outputs as the test predictions written by the run.
    let tm = normiqa::infer::trained::TrainedModel::load(&out, Device::Cpu, None).unwrap();
    assert_eq!(tm.info.mapping, info.mapping);
    let preds = std::fs::read_to_string(out.join("predictions_test.csv")).unwrap();
    let first: Vec<&str> = preds.lines().nth(1).unwrap().split(',').collect();
    let img = image::open(cfg_image_dir(&cfg).join(first[0]))
        .unwrap()
        .to_rgb8();
    let o = normiqa::infer::trained::predict(&tm.model, &Inputs::Images(&[img]), &[0], 1, Device::Cpu).unwrap();
    let fused: f64 = first[4].parse().unwrap();
    assert!(
        (o[2][0] - fused).abs() < 1e-4 * (1.0 + fused.abs()),
        "{} vs {fused}",
        o[2][0]
    );
}

fn cfg_image_dir(cfg: &TrainConfig) -> std::path::PathBuf {
    cfg.data.dataset.path("images").unwrap()
}

#[test]
fn same_seed_same_numbers() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 24);
    cfg.ft_lr_ratio = 0.1;
    cfg.epochs = 1;
    cfg.model.drop_connect = 0.0;
    let a = train::train(&cfg, &run_dir(tmp.path(), "a")).unwrap().info;
    let b = train::train(&cfg, &run_dir(tmp.path(), "b")).unwrap().info;
    assert_eq!(a.mapping, b.mapping);
    assert_eq!(a.test.unwrap()[2].srocc, b.test.unwrap()[2].srocc);
}

#[test]
fn reference_frozen_mode_updates_batchnorm_statistics() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 20);
    cfg.ft_lr_ratio = 0.0;
    cfg.frozen_mode = FrozenMode::Reference;
    cfg.epochs = 1;
    let out = run_dir(tmp.path(), "ref");
    let info = train::train(&cfg, &out).unwrap().info;
    assert!(
        info.backbone_in_weights,
        "running statistics changed, so the backbone is saved"
    );
    let saved = Tensor::read_safetensors(out.join("weights.safetensors")).unwrap();
    let rv = saved
        .iter()
        .find(|(n, _)| n == "backbone._bn0.running_var")
        .expect("backbone BN saved");
    // A fresh BatchNorm has running_var = 1; train-mode passes moved it.
    assert!(f64::try_from((&rv.1 - 1.0).abs().sum(Kind::Float)).unwrap() > 1e-3);
}

#[test]
fn corrupt_image_error_names_the_file() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), 12);
    std::fs::write(cfg_image_dir(&cfg).join("img005.png"), b"not a png").unwrap();
    let err = format!(
        "{:#}",
        train::train(&cfg, &run_dir(tmp.path(), "x")).err().unwrap()
    );
    assert!(err.contains("img005.png"), "{err}");
}

/// Rewrites the MOS of the CSV of `cfg` as `mos(row)` (row 0 = first image).
fn set_mos(cfg: &TrainConfig, mos: impl Fn(usize) -> String) {
    let csv = &cfg.data.dataset.path("csv").unwrap();
    let text: String = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                format!("{},{}\n", l.split(',').next().unwrap(), mos(i - 1))
            }
        })
        .collect();
    std::fs::write(csv, text).unwrap();
}

#[test]
fn a_constant_training_split_is_refused_with_the_dataset_named() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 12);
    set_mos(&cfg, |_| "50".into());
    cfg.ft_lr_ratio = 0.0;
    let err = format!(
        "{:#}",
        train::train(&cfg, &run_dir(tmp.path(), "c")).err().unwrap()
    );
    assert!(
        err.contains("training images of csv:labels.csv have the same MOS (50)")
            && err.contains("--loss mse"),
        "{err}"
    );
}

#[test]
fn batches_of_equal_mos_are_counted_and_training_goes_on() {
    // 5-level integer MOS at batch size 2: some batches hold one MOS value.
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 24);
    set_mos(&cfg, |i| format!("{}", 1 + i % 5));
    cfg.ft_lr_ratio = 0.0;
    cfg.batch_size = 2;
    let out = run_dir(tmp.path(), "levels");
    let info = train::train(&cfg, &out).unwrap().info;
    assert!(info.constant_mos_batches > 0);
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let events: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"event\":\"constant_mos_batch\""))
        .collect();
    assert_eq!(events.len(), info.constant_mos_batches);
    assert!(events[0].contains("\"images\":[\"img0"), "{}", events[0]);
    let saved = checkpoint::RunInfo::load(&out).unwrap();
    assert_eq!(saved.constant_mos_batches, info.constant_mos_batches);
    assert!(info.test.unwrap()[2].srocc.is_finite());
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 24);
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 1;
    let out = run_dir(tmp.path(), "n");
    train::train(&cfg, &out).unwrap();
    let good = std::fs::read(out.join("weights.safetensors")).unwrap();
    // MSE with an absurd learning rate overflows to inf/NaN within a few steps.
    cfg.loss.kind = normiqa::loss::LossKind::Mse;
    cfg.lr = 1e30;
    cfg.epochs = 3;
    // Another configuration is refused in the good run's folder (run_folder.rs)...
    assert!(train::train(&cfg, &out).is_err());
    assert_eq!(
        std::fs::read(out.join("weights.safetensors")).unwrap(),
        good,
        "checkpoint overwritten"
    );
    // ...and stops with a clear error in its own.
    let err = format!(
        "{:#}",
        train::train(&cfg, &run_dir(tmp.path(), "n2"))
            .err()
            .expect("the loss must blow up")
    );
    assert!(
        err.contains("the loss became") || err.contains("finite"),
        "{err}"
    );
}

#[test]
fn a_loss_blowing_up_in_the_first_epoch_says_nothing_was_kept() {
    // Was "The last good checkpoint in ... is kept" although no epoch had finished.
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 24);
    cfg.ft_lr_ratio = 0.0;
    cfg.loss.kind = normiqa::loss::LossKind::Mse;
    cfg.lr = 1e30;
    cfg.epochs = 3;
    let out = run_dir(tmp.path(), "blowup");
    let err = format!("{:#}", train::train(&cfg, &out).err().unwrap());
    assert!(
        err.contains("the loss became") && err.contains("epoch 1,"),
        "{err}"
    );
    assert!(
        err.contains("No checkpoint was written") && !err.contains("is kept"),
        "{err}"
    );
    assert!(!out.join("weights.safetensors").exists());
    // Image names as a plain list, not a debug structure.
    assert!(err.contains("(images img") && !err.contains("[\""), "{err}");
}

#[test]
fn bad_options_are_named() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 12);
    cfg.batch_size = 1;
    assert!(format!(
        "{:#}",
        train::train(&cfg, &run_dir(tmp.path(), "o")).err().unwrap()
    )
    .contains("--batch-size"));
    let mut cfg = tiny_config(tmp.path(), 12);
    cfg.data.train_ratio = 0.0;
    assert!(format!(
        "{:#}",
        train::train(&cfg, &run_dir(tmp.path(), "o2"))
            .err()
            .unwrap()
    )
    .contains("--train-ratio"));
}

/// Exports a VarStore's backbone in torchvision naming (plus num_batches_tracked and an fc layer
/// a classifier would have) as a torch zip file.
fn export_torchvision(vs: &nn::VarStore, path: &Path) {
    let mut entries = Vec::new();
    let mut names: Vec<_> = vs.variables().into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in names {
        let Some(n) = name.strip_prefix(&format!("{BACKBONE_PREFIX}.")) else {
            continue;
        };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let v: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
        entries.push((n.to_string(), shape, common::TensorData::F32(v)));
        if n.ends_with("running_var") {
            entries.push((
                n.replace("running_var", "num_batches_tracked"),
                vec![],
                common::TensorData::I64(vec![7]),
            ));
        }
    }
    entries.push((
        "fc.weight".into(),
        vec![3, 4],
        common::TensorData::F32(vec![0.5; 12]),
    ));
    entries.push((
        "fc.bias".into(),
        vec![3],
        common::TensorData::F32(vec![0.1; 3]),
    ));
    common::write_torch_zip(path, &entries);
}

#[test]
fn torchvision_resnet18_state_dict_loads_by_name() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("resnet18.pth");
    tch::manual_seed(1);
    let src_vs = nn::VarStore::new(Device::Cpu);
    let _src = LinearityIqa::new(
        &src_vs,
        ModelConfig {
            backbone: BackboneName::ResNet18,
            ..Default::default()
        },
    );
    // Give BatchNorm buffers non-default values so that a silent skip would be caught.
    tch::no_grad(|| {
        for (n, t) in src_vs.variables() {
            if n.contains("running_mean") {
                let _ = t.shallow_clone().uniform_(-1.0, 1.0);
            }
        }
    });
    export_torchvision(&src_vs, &file);

    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LinearityIqa::new(
        &vs,
        ModelConfig {
            backbone: BackboneName::ResNet18,
            ..Default::default()
        },
    );
    let n = weights::load_pth(&vs, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
    let src = src_vs.variables();
    let dst = vs.variables();
    let mut checked = 0;
    for (name, t) in src.iter().filter(|(k, _)| k.starts_with("backbone.")) {
        assert!(
            t.allclose(&dst[name], 0.0, 0.0, false),
            "{name} differs after loading"
        );
        checked += 1;
    }
    assert_eq!(n, checked);

    // The wrong architecture for the file: a clear error naming the file and a tensor.
    let vs50 = nn::VarStore::new(Device::Cpu);
    let m50 = LinearityIqa::new(
        &vs50,
        ModelConfig {
            backbone: BackboneName::ResNet50,
            ..Default::default()
        },
    );
    let err = format!(
        "{:#}",
        weights::load_pth(
            &vs50,
            BACKBONE_PREFIX,
            &file,
            m50.backbone.ignored_weights()
        )
        .unwrap_err()
    );
    assert!(
        err.contains("resnet18.pth") && (err.contains("shape") || err.contains("missing")),
        "{err}"
    );
}

#[test]
fn efficientnet_lite0_imagenet_weights_classify_a_pristine_image() {
    let _serial = serial();
    // The package's weights, loaded by our reader, must give a sensible ImageNet classifier:
    // the head features → `_fc` logits for a Kodak image; here we check the load is complete
    // and the features are finite and non-trivial.
    let Some(file) = BackboneName::EfficientNetLite0.default_weights() else {
        panic!("EfficientNet-Lite0 weights not found: run ./run setup")
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LinearityIqa::new(&vs, ModelConfig::default());
    let n = weights::load_pth(&vs, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
    assert_eq!(n, 245);
    let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let (f6, f7) = tch::no_grad(|| m.features(&x, false));
    assert_eq!(f6.size(), vec![1, 112]);
    assert_eq!(f7.size(), vec![1, 1280]);
    assert!(f64::try_from(f7.abs().sum(Kind::Float)).unwrap() > 1.0);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_numbers() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let base = tiny_config(tmp.path(), 32);
    // Fine-tuning with Adam and drop connect (optimiser moments, libtorch's generator), and a
    // frozen cached run with SGD momentum (momentum buffers).
    let mut ft = base.clone();
    ft.ft_lr_ratio = 0.1;
    ft.model.drop_connect = 0.2;
    ft.epochs = 4;
    let mut frozen = base.clone();
    frozen.ft_lr_ratio = 0.0;
    frozen.optimizer = normiqa::run::config::OptimizerKind::Sgd { momentum: 0.9 };
    frozen.epochs = 4;
    for (name, cfg) in [("ft", ft), ("frozen", frozen)] {
        let whole = run_dir(tmp.path(), &format!("{name}-whole"));
        let cut = run_dir(tmp.path(), &format!("{name}-cut"));
        let a = train::train(&cfg, &whole).unwrap().info;
        assert!(
            !whole.join("resume").exists(),
            "a finished run leaves no resume state"
        );
        std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "2");
        let err = match train::train(&cfg, &cut) {
            Ok(_) => panic!("{name}: the run should have stopped after epoch 2"),
            Err(e) => format!("{e:#}"),
        };
        std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
        assert!(err.contains("stopped after epoch 2"), "{err}");
        assert!(cut.join("resume/state.json").exists());
        let b = train::train(&cfg, &cut).unwrap().info;
        assert_eq!(a.best_epoch, b.best_epoch, "{name}");
        assert_eq!(a.mapping, b.mapping, "{name}");
        assert_eq!(
            a.test.as_ref().unwrap()[2].srocc,
            b.test.as_ref().unwrap()[2].srocc,
            "{name}"
        );
        assert_eq!(
            a.val.as_ref().unwrap()[2].plcc,
            b.val.as_ref().unwrap()[2].plcc,
            "{name}"
        );
        let preds = |d: &Path| std::fs::read_to_string(d.join("predictions_test.csv")).unwrap();
        assert_eq!(
            preds(&whole),
            preds(&cut),
            "{name}: the same test predictions"
        );
        // The log holds each epoch once, and says where the run was resumed.
        let log = |d: &Path| std::fs::read_to_string(d.join("log.jsonl")).unwrap();
        let count = |t: &str, ev: &str| {
            t.lines()
                .filter(|l| l.contains(&format!("\"event\":\"{ev}\"")))
                .count()
        };
        let (la, lb) = (log(&whole), log(&cut));
        assert_eq!(count(&lb, "epoch"), 4, "{name}");
        assert_eq!(count(&la, "iter"), count(&lb, "iter"), "{name}");
        assert_eq!(count(&lb, "resume"), 1, "{name}");
        assert!(!cut.join("resume").exists());
    }
    // An interrupted run of another configuration is refused (run_folder.rs); --overwrite
    // starts over, without its resume state.
    let mut other = base.clone();
    other.epochs = 3;
    let d = run_dir(tmp.path(), "other");
    std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "1");
    assert!(train::train(&other, &d).is_err());
    std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
    other.lr = 2e-3;
    assert!(train::train(&other, &d).is_err());
    train::train_with(&other, &d, true).unwrap();
    let log = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    assert!(!log.contains("\"event\":\"resume\""));
}

/// An image rewritten in place (same size, same modification time) is another feature-cache key:
/// the key holds each image's content, not only its path (a stale cache trained on old pixels).
#[test]
fn an_image_edited_in_place_changes_the_feature_cache_key() {
    use normiqa::train::features::cache_key;
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30])).save(&img).unwrap();
    let mtime = std::fs::metadata(&img).unwrap().modified().unwrap();
    let cfg = ModelConfig::default();
    let key = |p: &Path| cache_key(&cfg, None, "resize", "", &[p]);
    let before = key(&img);
    assert_eq!(before, key(&tmp.path().join(".").join("a.png")), "one file, one key");
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 20, 30])).save(&img).unwrap();
    std::fs::File::options().write(true).open(&img).unwrap().set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(&img).unwrap().modified().unwrap(), mtime);
    assert_ne!(before, key(&img), "the edited image kept the old key");
}

/// Labels edited between an interruption and the resume are not trained on silently (the result
/// matched neither the old labels nor the new): the resume is refused, naming the run and
/// `--overwrite`; restored labels resume.
#[test]
fn a_resume_on_edited_labels_is_refused() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 24);
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 3;
    let csv = &cfg.data.dataset.path("csv").unwrap();
    let csv = csv.clone();
    let out = run_dir(tmp.path(), "labels");
    std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "1");
    assert!(train::train(&cfg, &out).is_err());
    std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
    let labels = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = labels.lines().map(str::to_string).collect();
    let (name, mos) = lines[1].split_once(',').unwrap();
    lines[1] = format!("{name},{}", mos.parse::<f64>().unwrap() + 7.0);
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let err = match train::train(&cfg, &out) {
        Ok(_) => panic!("the resume on edited labels was not refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("trained on other labels") && err.contains("--overwrite"), "{err}");
    std::fs::write(&csv, labels).unwrap();
    train::train(&cfg, &out).unwrap();
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"resume\""));
}
