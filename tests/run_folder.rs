//! Run-folder rules (src/run/folder.rs) end to end, on tiny synthetic data with random-init
//! backbones: `train` and `distill` into a folder that already holds a run (same or another
//! configuration, finished or interrupted), `--overwrite`, two processes on one folder, a lock
//! left behind by a killed process, and what a write that fails half-way (a full disk) leaves.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use normiqa::distill::{self, DistillConfig, Experiment, Variant};
use normiqa::run::folder::{self, Start};
use normiqa::train;
use normiqa::run::{RunInfo, DataConfig, DatasetSpec, SplitProtocol, TrainConfig};

/// Tests that train run one at a time: libtorch's generator and the environment variables used
/// here are global to the process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn csv_spec(dir: &Path, n: usize) -> DatasetSpec {
    let (csv, images) = common::synthetic_dataset(dir, n, 32);
    normiqa::run::dataset::csv::spec(csv, images)
}

/// A frozen, cached, random-init training run of 2 epochs.
fn tiny_train(dir: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::new(csv_spec(dir, 24));
    cfg.data.split = SplitProtocol::Random;
    cfg.random_init = true;
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 2;
    cfg.batch_size = 4;
    cfg.lr = 1e-3;
    cfg.device = "cpu".into();
    cfg
}

/// Every file under `dir` with its contents, less the lock file.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != folder::LOCK)
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn events(dir: &Path, event: &str) -> usize {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .count()
}

#[test]
fn train_refuses_another_configuration_skips_a_finished_one_and_overwrites_on_request() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let a = tiny_train(tmp.path());
    let mut b = a.clone();
    b.seed = 7;
    let out = tmp.path().join("runs/r");
    let first = train::train(&a, &out).unwrap();
    assert_eq!(first.start, Start::Fresh);
    let before = snapshot(&out);

    let err = format!("{:#}", train::train(&b, &out).err().expect("refused"));
    assert!(
        err.contains(&out.display().to_string())
            && err.contains("a finished training run of another configuration")
            && err.contains("seed 19920517 there, 7 now")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before, "a refused run changes nothing");

    // The same configuration again (on another device): nothing to do.
    let mut a_elsewhere = a.clone();
    a_elsewhere.device = "auto".into();
    let again = train::train(&a_elsewhere, &out).unwrap();
    assert_eq!(again.start, Start::Finished);
    assert_eq!(again.info.mapping, first.info.mapping);
    assert_eq!(snapshot(&out), before, "a finished run is left as it is");

    // --overwrite: B replaces A, nothing of A is left.
    let replaced = train::train_with(&b, &out, true).unwrap();
    assert_eq!(replaced.start, Start::Fresh);
    assert_eq!(RunInfo::load(&out).unwrap().config.seed, 7);
    let cfg: TrainConfig =
        toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(cfg.seed, 7);
    assert_eq!(events(&out, "start"), 1);
}

#[test]
fn an_interrupted_run_is_resumed_only_by_its_own_configuration() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let a = tiny_train(tmp.path());
    let mut b = a.clone();
    b.lr = 2e-3;
    let out = tmp.path().join("runs/r");
    std::env::set_var("NORMIQA_STOP_AFTER_EPOCH", "1");
    let stopped = train::train(&a, &out);
    std::env::remove_var("NORMIQA_STOP_AFTER_EPOCH");
    assert!(format!("{:#}", stopped.err().unwrap()).contains("stopped after epoch 1"));
    let before = snapshot(&out);

    let err = format!("{:#}", train::train(&b, &out).err().expect("refused"));
    assert!(
        err.contains("an unfinished training run of another configuration")
            && err.contains("lr 0.001 there, 0.002 now"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before, "a refused run changes nothing");

    let resumed = train::train(&a, &out).unwrap();
    assert_eq!(resumed.start, Start::Resume);
    assert_eq!(events(&out, "resume"), 1);
    assert!(!out.join("resume").exists());
}

/// A one-variant, one-seed, one-epoch distillation experiment.
/// A `train` that fails on its data (here: a MOS column the CSV lacks) leaves nothing that
/// blocks the corrected command, though that command is another configuration.
#[test]
fn a_run_that_failed_on_its_data_does_not_block_the_corrected_command() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let good = tiny_train(tmp.path());
    let mut wrong = good.clone();
    let (csv, images) = (wrong.data.dataset.path("csv").unwrap(), wrong.data.dataset.path("images").unwrap());
    wrong.data.dataset = normiqa::run::dataset::csv::with_columns(csv, images, "image", "score");
    let out = tmp.path().join("runs/r");
    let err = format!("{:#}", train::train(&wrong, &out).err().expect("no column 'score'"));
    assert!(err.contains("score"), "{err}");
    let fixed = train::train(&good, &out).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(fixed.start, Start::Fresh);
    assert_eq!(events(&out, "start"), 1);
    // A run of another configuration that did start is still refused.
    let mut other = good.clone();
    other.seed = 7;
    let err = format!("{:#}", train::train(&other, &out).err().expect("refused"));
    assert!(err.contains("of another configuration"), "{err}");
}

/// `report --tensorboard` writes its event files into the report's folder: the run folder it
/// reads is left as it was.
#[test]
fn report_with_tensorboard_leaves_the_run_folder_as_it_was() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let out = tmp.path().join("runs/r");
    train::train(&tiny_train(tmp.path()), &out).unwrap();
    let before = snapshot(&out);
    let report = tmp.path().join("report");
    let opts = normiqa::cli::report::ReportOptions {
        out: Some(report.clone()),
        tensorboard: true,
        ..Default::default()
    };
    let files = normiqa::cli::report::report(&out, &opts).unwrap();
    assert_eq!(snapshot(&out), before, "the run folder was written into");
    let ev = files.iter().find(|f| f.to_string_lossy().contains("events.out.tfevents.")).expect("an event file");
    assert!(ev.starts_with(report.join("tensorboard")), "{}", ev.display());
}

fn tiny_distill(dir: &Path, seed: u64) -> Experiment {
    let data = DataConfig {
        dataset: csv_spec(dir, 24),
        split: SplitProtocol::Random,
        exp_id: 0,
        train_ratio: 0.6,
        train_val_ratio: 0.8,
        resize: None,
        loading: Default::default(),
        splits: None,
        decoding: Default::default(),
    };
    let mut run = DistillConfig::new(data, 0.01, 0.001);
    run.random_init = true;
    run.epochs = 1;
    run.batch_size = 4;
    run.device = "cpu".into();
    Experiment {
        run,
        variants: vec![Variant::Baseline],
        seeds: vec![seed],
        urkd_lr: None,
        save_weights: false,
        plots: false,
    }
}

#[test]
fn distill_follows_the_same_rules() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let one = tiny_distill(tmp.path(), 1);
    let two = tiny_distill(tmp.path(), 2);
    let out = tmp.path().join("runs/d");
    assert!(distill::run_experiment(&one, &out, false, &normiqa::report::mrkd::write).unwrap().is_some());
    let before = snapshot(&out);
    assert!(
        distill::run_experiment(&one, &out, false, &normiqa::report::mrkd::write).unwrap().is_none(),
        "a finished experiment is not run again"
    );
    assert_eq!(snapshot(&out), before);

    let err = format!("{:#}", distill::run_experiment(&two, &out, false, &normiqa::report::mrkd::write).unwrap_err());
    assert!(
        err.contains("a finished distillation experiment of another configuration")
            && err.contains("seeds [1] there, [2] now")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before);
    // Interrupted before its results were written: still seed 1's folder.
    std::fs::remove_file(out.join("results.json")).unwrap();
    let err = format!("{:#}", distill::run_experiment(&two, &out, false, &normiqa::report::mrkd::write).unwrap_err());
    assert!(err.contains("an unfinished distillation experiment"), "{err}");

    let res = distill::run_experiment(&two, &out, true, &normiqa::report::mrkd::write).unwrap().unwrap();
    assert_eq!(res.experiment.seeds, [2]);
    let cfg: Experiment =
        toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    let written: distill::ExperimentResults =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(cfg.seeds, written.experiment.seeds, "config.toml and results.json agree");
    assert!(!out.join("baseline/seed-1").exists(), "seed 1's files are gone");
}

/// The command line of a tiny frozen training run into `out` (with the ImageNet weights unless
/// `random_init`: only then are the backbone's features cached).
fn train_args(data: &Path, out: &Path, random_init: bool) -> Vec<String> {
    let (csv, images) = (data.join("labels.csv"), data.join("images"));
    let mut v: Vec<String> = ["train", "--dataset", "csv", "--split", "random"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if random_init {
        v.push("--random-init".into());
    }
    for (k, val) in [
        ("--labels", csv.display().to_string()),
        ("--images", images.display().to_string()),
        ("--ft-lr-ratio", "0".into()),
        ("-e", "1".into()),
        ("-b", "4".into()),
        ("--lr", "0.001".into()),
        ("--device", "cpu".into()),
        ("--out", out.display().to_string()),
    ] {
        v.push(k.into());
        v.push(val);
    }
    v
}

fn normiqa(args: &[String], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_normiqa"))
        .args(args)
        .env("NORMIQA_FEATURE_CACHE", cache)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Not a test by itself: the child process of
/// `a_second_process_is_refused_and_a_killed_holder_does_not_block`, which holds the lock on the
/// folder in `NORMIQA_TEST_HOLD_LOCK` until it is killed. Without that variable it does nothing.
#[test]
fn lock_holder_child_process() {
    let Some(dir) = std::env::var_os("NORMIQA_TEST_HOLD_LOCK") else {
        return;
    };
    let _lock = folder::Lock::acquire(Path::new(&dir)).unwrap();
    println!("locked");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_second_process_is_refused_and_a_killed_holder_does_not_block() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_dataset(tmp.path(), 24, 32);
    let (out, cache) = (tmp.path().join("runs/r"), tmp.path().join("cache"));
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder_child_process", "--nocapture", "--test-threads=1"])
        .env("NORMIQA_TEST_HOLD_LOCK", &out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    while !lines.next().expect("the holder ends early").unwrap().contains("locked") {}

    let args = train_args(tmp.path(), &out, true);
    let refused = normiqa(&args, &cache);
    let err = text(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("being written by another normiqa process")
            && err.contains(&format!("pid {}", holder.id()))
            && err.contains(&out.display().to_string()),
        "{err}"
    );
    assert!(!out.join("config.toml").exists(), "the refused process wrote nothing");

    // Killed: the lock file stays, the OS lock goes with the process.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(out.join(folder::LOCK).exists());
    let ran = normiqa(&args, &cache);
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    assert!(out.join("run.json").exists());

    // The same command again: a no-op that says where the results are (exit 0).
    let before = snapshot(&out);
    let again = normiqa(&args, &cache);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let said = text(&again.stdout);
    assert!(said.contains("nothing to do") && said.contains("run.json"), "{said}");
    assert_eq!(snapshot(&out), before);
}

#[test]
fn a_full_disk_leaves_no_partial_files_in_the_run_folder_or_the_feature_cache() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_dataset(tmp.path(), 24, 32);
    let (out, cache) = (tmp.path().join("runs/r"), tmp.path().join("cache"));
    // Files may not grow past 64 KiB (the feature cache and the weights do; the configuration
    // and the log do not); SIGXFSZ ignored, so writes fail with EFBIG as on a full disk.
    let run = Command::new("bash")
        .args(["-c", "trap '' XFSZ; ulimit -f 64; exec \"$@\"", "bash"])
        .arg(env!("CARGO_BIN_EXE_normiqa"))
        .args(train_args(tmp.path(), &out, false))
        .env("NORMIQA_FEATURE_CACHE", &cache)
        .output()
        .unwrap();
    let err = text(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains("weights.safetensors") && err.contains("File too large"), "{err}");
    let names = |d: &Path| -> Vec<String> {
        walkdir::WalkDir::new(d)
            .into_iter()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let left: Vec<String> = names(&out)
        .into_iter()
        .chain(names(&cache))
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
    assert!(!out.join("weights.safetensors").exists());
    assert!(
        err.contains("could not cache the features"),
        "the cache write was tried: {err}"
    );
}

/// `--overwrite` deletes the files the run's record (`.normiqa-files`) lists, the files `train`
/// wrote: a user's `predictions_koniq.csv` and `predictions_mine.csv` beside the run are kept.
/// A folder of an older normiqa, without a record, is not cleared: refused, naming the files.
#[test]
fn overwrite_deletes_only_what_the_run_recorded() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let dir = tmp.path().join("run");
    let a = tiny_train(tmp.path());
    let mut b = a.clone();
    b.seed += 1;
    train::train(&a, &dir).unwrap();
    let record = std::fs::read_to_string(dir.join(folder::RECORD)).unwrap();
    let listed: Vec<&str> = record.lines().filter(|l| !l.starts_with('#')).collect();
    for f in ["config.toml", "run.json", "weights.safetensors", "log.jsonl"] {
        assert!(listed.contains(&f), "{f} not in the record: {record}");
    }
    let written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(listed.len(), written.len(), "the record lists what the run wrote: {record} / {written:?}");
    for f in ["predictions_koniq.csv", "predictions_mine.csv"] {
        std::fs::write(dir.join(f), "mine").unwrap();
    }
    let replaced = train::train_with(&b, &dir, true).unwrap();
    assert_eq!(replaced.start, Start::Fresh);
    assert_eq!(RunInfo::load(&dir).unwrap().config.seed, b.seed);
    for f in ["predictions_koniq.csv", "predictions_mine.csv"] {
        assert_eq!(std::fs::read_to_string(dir.join(f)).unwrap(), "mine", "{f}");
    }
    assert_eq!(events(&dir, "start"), 1, "nothing of the first run's log is left");

    std::fs::remove_file(dir.join(folder::RECORD)).unwrap();
    let before = snapshot(&dir);
    let err = format!("{:#}", train::train_with(&a, &dir, true).err().expect("refused"));
    assert!(
        err.contains("written before normiqa kept a record") && err.contains("weights.safetensors"),
        "{err}"
    );
    assert_eq!(snapshot(&dir), before, "a refused --overwrite deletes nothing");
}
