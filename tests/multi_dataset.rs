//! Multi-dataset Norm-in-Norm (`also` in a run's configuration): datasets on different MOS scales
//! train one network, every batch from one dataset, each dataset with its own mapping.

mod common;

use std::path::{Path, PathBuf};

use normiqa::run;
use normiqa::train;
use normiqa::run::{AlsoData, SplitProtocol, TrainConfig};

static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A test that trains: one at a time (libtorch's generator is global), in a fresh folder with
/// its own feature cache.
fn isolated() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir) {
    let serial = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    (serial, tmp)
}

/// A second dataset: the images of `common::synthetic_dataset` in `dir`, with MOS `f(mos)`.
fn rescaled_dataset(dir: &Path, n: usize, f: impl Fn(f64) -> f64) -> AlsoData {
    let (csv, images) = common::synthetic_dataset(dir, n, 40);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut out = String::from("image,mos\n");
    for line in text.lines().skip(1) {
        let (name, mos) = line.split_once(',').unwrap();
        out.push_str(&format!("{name},{}\n", f(mos.parse().unwrap())));
    }
    std::fs::write(&csv, out).unwrap();
    let data = common::csv_train_config(csv, images).data;
    AlsoData { data, weight: 1.0, per_epoch: None }
}

/// Frozen random backbone, cached features: the heads train on 24 main + 16 (of 20) other images.
fn two_dataset_config(tmp: &Path, f: impl Fn(f64) -> f64) -> TrainConfig {
    let mut cfg = common::tiny_train_config(&tmp.join("main"), 40, 40);
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 3;
    let mut also = rescaled_dataset(&tmp.join("other"), 20, f);
    also.data.train_ratio = 0.8;
    also.data.train_val_ratio = 0.8;
    cfg.also = vec![also];
    cfg
}

fn iter_events(run: &Path) -> usize {
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    log.lines().filter(|l| l.contains("\"event\":\"iter\"")).count()
}

fn train_in(cfg: &TrainConfig, out: PathBuf) -> run::RunInfo {
    train::train(cfg, &out).unwrap().info
}

#[test]
fn another_dataset_on_another_mos_scale_trains_the_same_network() {
    let (_serial, tmp) = isolated();
    let a = two_dataset_config(&tmp.path().join("a"), |m| m);
    let b = two_dataset_config(&tmp.path().join("b"), |m| 0.01 * m + 5.0);
    let ra = train_in(&a, tmp.path().join("run-a"));
    let rb = train_in(&b, tmp.path().join("run-b"));
    // Norm-in-Norm sees each batch's MOS centred and scaled: the other dataset's scale and
    // offset change nothing the network learns (only the epsilon of the norm differs).
    let (ta, tb) = (ra.test.unwrap(), rb.test.unwrap());
    for (x, y) in ta.iter().zip(&tb) {
        assert!((x.srocc - y.srocc).abs() < 1e-6, "{} vs {}", x.srocc, y.srocc);
        assert!((x.plcc - y.plcc).abs() < 1e-4, "{} vs {}", x.plcc, y.plcc);
    }
    // Its own mapping carries its scale: k·0.01, b·0.01 + 5.
    let (ma, mb) = (&ra.also[0].mapping, &rb.also[0].mapping);
    for (x, y) in ma.iter().zip(mb) {
        assert!((x.k * 0.01 - y.k).abs() < 1e-4 * x.k.abs().max(1.0), "k {} vs {}", x.k, y.k);
        assert!((x.b * 0.01 + 5.0 - y.b).abs() < 1e-3, "b {} vs {}", x.b, y.b);
    }
    // Set sizes: the main dataset's training set, the other's own split.
    assert_eq!(ra.sizes.train, 24);
    assert_eq!(ra.also[0].sizes.train, 16);
    assert_eq!(ra.also[0].sizes.test, 4);
    assert!(ra.also[0].test.is_some());
    // Every epoch has 24/4 main and 16/4 other batches.
    assert_eq!(iter_events(&tmp.path().join("run-a")), 3 * (6 + 4));
}

#[test]
fn the_other_dataset_s_loss_weight_changes_what_is_learnt() {
    // The other dataset's batches do reach the network: weighting their loss changes the result
    // (so the equality of the test above is not vacuous).
    let (_serial, tmp) = isolated();
    let a = two_dataset_config(&tmp.path().join("a"), |m| m);
    let mut b = a.clone();
    b.also[0].weight = 3.0;
    let ra = train_in(&a, tmp.path().join("run-a"));
    let rb = train_in(&b, tmp.path().join("run-b"));
    let (ta, tb) = (ra.test.unwrap(), rb.test.unwrap());
    assert!(ta.iter().zip(&tb).any(|(x, y)| (x.plcc - y.plcc).abs() > 1e-6), "the weight of the other dataset's loss changed nothing");
}

#[test]
fn per_epoch_draws_a_subset_of_the_other_dataset() {
    let (_serial, tmp) = isolated();
    let mut cfg = two_dataset_config(tmp.path(), |m| m);
    cfg.also[0].per_epoch = Some(8);
    cfg.mixing = run::Mixing::Shuffled;
    let run = tmp.path().join("run");
    train_in(&cfg, run.clone());
    assert_eq!(iter_events(&run), 3 * (6 + 2));
}

#[test]
fn another_dataset_needs_a_loss_that_normalises_each_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = two_dataset_config(tmp.path(), |m| m);
    cfg.loss.kind = normiqa::loss::LossKind::Mse;
    let e = format!("{:#}", cfg.validate().unwrap_err());
    assert!(e.contains("also") && e.contains("mse"), "{e}");
    cfg.loss.kind = Default::default();
    cfg.also[0].weight = 0.0;
    let e = format!("{:#}", cfg.validate().unwrap_err());
    assert!(e.contains("also[1].weight"), "{e}");
}

#[test]
fn an_also_table_in_a_config_file_is_read_and_unknown_keys_are_refused() {
    let text = r#"
[data.dataset]
kind = "clive"
root = "../shared/data/clive"

[[also]]
weight = 0.5
per_epoch = 800
[also.data]
split = "by-reference"
[also.data.dataset]
kind = "csv"
csv = "labels.csv"
images = "."
mos_column = "score"
"#;
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    assert_eq!(cfg.also.len(), 1);
    assert_eq!(cfg.also[0].per_epoch, Some(800));
    assert_eq!(cfg.also[0].data.split, SplitProtocol::ByReference);
    let bad = text.replace("per_epoch = 800", "per_epcoh = 800");
    let e = toml::from_str::<TrainConfig>(&bad).unwrap_err().to_string();
    assert!(e.contains("per_epcoh"), "{e}");
    // A configuration without `also` is written as before (run folders keep their identity).
    let plain: TrainConfig = toml::from_str(&text[..text.find("[[also]]").unwrap()]).unwrap();
    let written = toml::to_string_pretty(&plain).unwrap();
    assert!(!written.contains("also") && !written.contains("mixing"), "{written}");
}

#[test]
fn experiment_files_may_write_defaults_that_run_folders_omit_but_not_unknown_keys() {
    use normiqa::experiment::Experiment;
    let base = "[data.dataset]\nkind = \"clive\"\nroot = \"r\"\n";
    // `also = []` and `mixing = "alternate"` are the defaults, left out of a written config.
    let text = format!("also = []\nmixing = \"alternate\"\nprefix_precision = \"bf16\"\n{base}[sweep]\nmixing = [\"alternate\", \"shuffled\"]\n");
    let e = Experiment::parse(&text, "x").unwrap();
    assert_eq!(e.combos().unwrap().len(), 2);
    for bad in ["alsoo = []\n", "[[also]]\nwieght = 1\n[also.data.dataset]\nkind = \"clive\"\nroot = \"r\"\n"] {
        let err = Experiment::parse(&format!("{base}{bad}"), "x").and_then(|e| e.combos().map(|_| ()));
        let err = format!("{:#}", err.unwrap_err());
        assert!(err.contains("unknown") && (err.contains("alsoo") || err.contains("wieght")), "{err}");
    }
}
