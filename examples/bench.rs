//! Speed benchmark of normiqa (Rust/tch), the counterpart of `bench/bench_torch.py`; run both
//! with `bench/run.sh`, which records them side by side in BENCHMARKS.md.
//!
//! cargo run --release --example bench -- [--quick] [--what train|predict|epoch|all] [--size 500]
//!
//! Prints one JSON object: train-step and batch-1 predict times (median seconds) of LinearityIQA
//! on a ResNet-18 and an EfficientNet-Lite0 backbone (random init: speed only), and one CLIVE
//! frozen-backbone epoch including decoding.

use std::time::Instant;

use normiqa::run;
use normiqa::loss::{self, LossConfig};
use normiqa::model::{BackboneName, LinearityIqa, ModelConfig};
use normiqa::run::TrainConfig;
use tch::{nn, Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A random batch laid out as normiqa's loader lays out images (`batch::to_tensor`: NHWC pixels
/// viewed as NCHW, i.e. channels-last strides), so the timed convolutions are the ones training
/// and prediction run.
fn input(b: i64, size: i64) -> Tensor {
    Tensor::randn([b, size, size, 3], (Kind::Float, Device::Cpu)).permute([0, 3, 1, 2])
}

/// LinearityIQA on `backbone` with random weights (speed only), seed 0.
fn random_model(backbone: BackboneName) -> (nn::VarStore, LinearityIqa) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LinearityIqa::new(
        &vs,
        ModelConfig {
            backbone,
            ..Default::default()
        },
    );
    (vs, m)
}

/// Median seconds of a whole train step, and of its phases: forward + loss (synchronised by
/// reading the loss), backward, optimiser step.
fn train_step(backbone: BackboneName, size: i64, iters: usize) -> [f64; 4] {
    let (vs, m) = random_model(backbone);
    // normiqa's optimiser (train/optim.rs), as `normiqa train` runs it.
    let mut opt =
        normiqa::train::optim::Opt::build(normiqa::run::config::OptimizerKind::Adam, &vs, 1e-4, 0.0).unwrap();
    let x = input(8, size);
    let y = Tensor::rand([8], (Kind::Float, Device::Cpu)) * 100.0;
    let cfg = LossConfig::default();
    let mut times: [Vec<f64>; 4] = Default::default();
    for i in 0..iters + 1 {
        let t = Instant::now();
        let heads = m.forward(&x, true, true);
        let l = loss::multi_head(&cfg, [0.1, 0.1, 1.0], &heads, &y).unwrap();
        let _ = f64::try_from(&l).unwrap();
        let t_fwd = t.elapsed().as_secs_f64();
        opt.zero_grad();
        l.backward();
        let t_bwd = t.elapsed().as_secs_f64();
        opt.step();
        let t_all = t.elapsed().as_secs_f64();
        if i >= 1 {
            for (v, x) in times
                .iter_mut()
                .zip([t_all, t_fwd, t_bwd - t_fwd, t_all - t_bwd])
            {
                v.push(x);
            }
        }
    }
    times.map(median)
}

fn predict_b1(backbone: BackboneName, size: i64, iters: usize) -> f64 {
    let (_vs, m) = random_model(backbone);
    let x = input(1, size);
    let mut times = Vec::new();
    // What `normiqa predict` runs: the inference path (BatchNorm folded), built once per model.
    let inference = m.inference();
    tch::no_grad(|| {
        for i in 0..iters + 3 {
            let t = Instant::now();
            let out = inference.forward(&x);
            let _ = f64::try_from(out[2].sum(Kind::Float)).unwrap();
            if i >= 3 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
    });
    median(times)
}

fn clive_epoch(quick: bool, eval_bs: usize) -> serde_json::Value {
    let root = normiqa::run::dataset::clive::default_root();
    let mut cfg = TrainConfig::new(normiqa::run::dataset::clive::spec(root));
    cfg.ft_lr_ratio = 0.0;
    let t0 = Instant::now();
    let data = run::data::load(&cfg.data, cfg.seed).expect("CLIVE");
    let decode = t0.elapsed().as_secs_f64();
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LinearityIqa::new(&vs, cfg.model.clone());
    let wfile = BackboneName::EfficientNetLite0
        .default_weights()
        .expect("weights");
    normiqa::model::weights::load_pth(
        &vs,
        normiqa::model::linearity::BACKBONE_PREFIX,
        &wfile,
        m.backbone.ignored_weights(),
    )
    .unwrap();
    let mut idx: Vec<usize> = data
        .split
        .train
        .iter()
        .chain(&data.split.val)
        .chain(&data.split.test)
        .copied()
        .collect();
    if quick {
        idx.truncate(64);
    }
    let t1 = Instant::now();
    let taps = normiqa::infer::trained::compute_taps(&m, &data.images, &idx, eval_bs, Device::Cpu).unwrap();
    let (f6, f7) = (&taps[0], &taps[1]);
    let features = t1.elapsed().as_secs_f64();
    // normiqa's optimiser (train/optim.rs), as `normiqa train` runs it.
    let mut opt =
        normiqa::train::optim::Opt::build(normiqa::run::config::OptimizerKind::Adam, &vs, 1e-4, 0.0).unwrap();
    let mos = data.dataset.mos();
    let train: Vec<usize> = data
        .split
        .train
        .iter()
        .copied()
        .filter(|i| idx.contains(i))
        .collect();
    let t2 = Instant::now();
    for b in train.chunks_exact(8) {
        let t = Tensor::from_slice(&b.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let heads = m
            .heads
            .forward(&f6.index_select(0, &t), &f7.index_select(0, &t), true);
        let y =
            Tensor::from_slice(&b.iter().map(|&i| mos[i]).collect::<Vec<_>>()).to_kind(Kind::Float);
        let l = loss::multi_head(&LossConfig::default(), [0.1, 0.1, 1.0], &heads, &y).unwrap();
        opt.zero_grad();
        l.backward();
        opt.step();
    }
    let heads_epoch = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let val: Vec<usize> = data
        .split
        .val
        .iter()
        .copied()
        .filter(|i| idx.contains(i))
        .collect();
    normiqa::infer::trained::predict(
        &m,
        &normiqa::infer::trained::Inputs::Cached(&taps),
        &val,
        16,
        Device::Cpu,
    )
    .unwrap();
    let val_s = t3.elapsed().as_secs_f64();
    serde_json::json!({"images": idx.len(), "eval_batch_size": eval_bs, "decode_s": decode, "features_s": features, "heads_epoch_s": heads_epoch, "val_predict_s": val_s, "total_s": decode + features + heads_epoch + val_s})
}

/// Throughput of `normiqa predict` (the command's code path: parallel decode in chunks, inference
/// at batch 1, CSV written) on the first `n` CLIVE files, with the shipped model.
fn predict_files(n: usize) -> serde_json::Value {
    let root = normiqa::run::dataset::clive::default_root().join("images");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("CLIVE images")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.truncate(n);
    let out = std::env::temp_dir().join(format!("normiqa-bench-{}.csv", std::process::id()));
    let mut argv: Vec<String> = vec![
        "normiqa".into(),
        "predict".into(),
        "--device".into(),
        "cpu".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    argv.extend(files.iter().map(|f| f.display().to_string()));
    let t = Instant::now();
    normiqa::cli::run(<normiqa::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap())
        .expect("normiqa predict");
    let s = t.elapsed().as_secs_f64();
    let rows = std::fs::read_to_string(&out).unwrap().lines().count() - 1;
    let _ = std::fs::remove_file(&out);
    assert_eq!(rows, files.len(), "every file scored");
    serde_json::json!({"images": files.len(), "seconds": s, "images_per_s": files.len() as f64 / s})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let what = args
        .iter()
        .position(|a| a == "--what")
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| "all".into());
    let size: i64 = args
        .iter()
        .position(|a| a == "--size")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(500);
    // Timed repetitions after warm-up, as bench_torch.py: train 5 (2 quick), predict 30 (3 quick).
    let iters = if quick { 2 } else { 5 };
    let predict_iters = if quick { 3 } else { 30 };
    let eval_bs: usize = args
        .iter()
        .position(|a| a == "--eval-batch-size")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(1);
    let mut out = serde_json::json!({"impl": "normiqa (tch 0.26, libtorch 2.13)", "threads": tch::get_num_threads(), "size": size});
    if what == "train" || what == "all" {
        let r = train_step(BackboneName::ResNet18, size, iters);
        let e = train_step(BackboneName::EfficientNetLite0, size, iters);
        out["train_step_s"] = serde_json::json!({"resnet18": r[0], "efficientnet-lite0": e[0]});
        out["train_phases_s"] = serde_json::json!({
            "resnet18": {"forward": r[1], "backward": r[2], "optimizer": r[3]},
            "efficientnet-lite0": {"forward": e[1], "backward": e[2], "optimizer": e[3]},
        });
    }
    if what == "predict" || what == "all" {
        out["predict_b1_s"] = serde_json::json!({
            "resnet18": predict_b1(BackboneName::ResNet18, size, predict_iters),
            "efficientnet-lite0": predict_b1(BackboneName::EfficientNetLite0, size, predict_iters),
        });
    }
    if what == "predict-files" || what == "all" {
        out["predict_files"] = predict_files(if quick { 30 } else { 300 });
    }
    if what == "epoch" || what == "all" {
        out["clive_epoch"] = clive_epoch(quick, eval_bs);
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
