//! The command line, in process: errors name the file / column, and `predict` scores every
//! readable image even when another one is corrupt.

mod common;

use clap::Parser;
use normiqa::cli::{run, Cli};

fn cli(args: &[&str]) -> anyhow::Result<()> {
    run(Cli::try_parse_from(
        std::iter::once("normiqa").chain(args.iter().copied()),
    )?)
}

#[test]
fn metrics_command_checks_columns_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("p.csv");
    std::fs::write(&f, "image,score,mos\na,1,3\nb,2,5\nc,4,9\nd,3,7.5\n").unwrap();
    let p = f.to_str().unwrap();
    cli(&["metrics", p, "--pred-column", "score", "--fit", "--json"]).unwrap();
    cli(&[
        "metrics",
        p,
        "--pred-column",
        "score",
        "--mapping",
        "2",
        "1",
    ])
    .unwrap();
    // Without --pred-column: `predicted_mos` (test's output), else `score` (predict's).
    cli(&["metrics", p]).unwrap();
    std::fs::write(&f, "image,pred,mos\na,1,3\nb,2,5\n").unwrap();
    let err = format!("{:#}", cli(&["metrics", p]).unwrap_err());
    assert!(
        err.contains("no prediction column 'predicted_mos' or 'score'")
            && err.contains("columns: image, pred, mos")
            && err.contains("--pred-column")
            && err.contains("p.csv"),
        "{err}"
    );
    std::fs::write(&f, "score,mos\n1,3\nx,5\n").unwrap();
    let err = format!(
        "{:#}",
        cli(&["metrics", p, "--pred-column", "score"]).unwrap_err()
    );
    assert!(err.contains("row 3") && err.contains("'x'"), "{err}");
}

#[test]
fn predict_scores_the_good_images_and_names_the_bad_one() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    std::fs::create_dir_all(&dir).unwrap();
    image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
    })
    .save(dir.join("good.png"))
    .unwrap();
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
    let out = tmp.path().join("scores.csv");
    let err = cli(&[
        "predict",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cpu",
        "-o",
        out.to_str().unwrap(),
    ])
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("broken.jpg") && msg.contains("1 image(s) could not be scored"),
        "{msg}"
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    // The record of the model and options (src/output/record.rs), the header, the scored image.
    assert!(rows[0].starts_with("# {\"normiqa_predict\":"), "{csv}");
    assert_eq!(rows[1], "image,score");
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[2].contains("good.png"));
    let score: f64 = rows[2].split(',').nth(1).unwrap().parse().unwrap();
    assert!(score.is_finite());
}

#[test]
fn predict_streams_json_and_csv_in_chunks() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..3u32 {
        image::RgbImage::from_fn(40 + 8 * i, 32, |x, y| {
            image::Rgb([(x * 3 + i * 40) as u8, (y * 5) as u8, 90])
        })
        .save(dir.join(format!("im{i}.png")))
        .unwrap();
    }
    let run = |format: &str, file: &str| {
        let out = tmp.path().join(file);
        let m = model.to_str().unwrap();
        cli(&[
            "predict",
            dir.to_str().unwrap(),
            "--model",
            m,
            "--device",
            "cpu",
            "--chunk",
            "1",
            "--all-heads",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ])
        .unwrap();
        std::fs::read_to_string(out).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json", "s.json")).unwrap();
    let rows = json.as_array().unwrap();
    // The first element is the record (src/output/record.rs), as the CSV's first line.
    assert!(rows[0]["normiqa_predict"]["columns"].is_array(), "{json}");
    let rows = &rows[1..];
    assert_eq!(rows.len(), 3);
    let csv = run("csv", "s.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[1], "image,score,head6,head7,fused");
    assert_eq!(lines.len(), 5, "{csv}");
    // The same scores in both formats, in the same (sorted) order.
    for (row, line) in rows.iter().zip(&lines[2..]) {
        let score: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!((row["score"].as_f64().unwrap() - score).abs() < 1e-4);
        assert!(line.contains(row["image"].as_str().unwrap()));
        // The heads under the CSV's column names.
        for (k, head) in ["head6", "head7", "fused"].iter().enumerate() {
            let csv_value: f64 = line.split(',').nth(2 + k).unwrap().parse().unwrap();
            assert!(
                (row[head].as_f64().unwrap() - csv_value).abs() < 1e-5,
                "{head}"
            );
        }
        assert!(row.get("heads").is_none());
    }
}

#[test]
fn unknown_options_are_rejected_with_their_name() {
    let err = format!("{}", cli(&["train", "--arch", "resnet19"]).unwrap_err());
    assert!(err.contains("resnet19"), "{err}");
    let err = format!(
        "{:#}",
        cli(&["train", "--loss", "huber", "--dataset", "clive"]).unwrap_err()
    );
    assert!(err.contains("huber"), "{err}");
}

fn train_config(args: &[&str]) -> anyhow::Result<normiqa::run::TrainConfig> {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: normiqa::cli::train::TrainArgs,
    }
    // (train needs --dataset; CLIVE where the test does not name one)
    let dataset: &[&str] = if args.contains(&"--dataset") { &[] } else { &["--dataset", "clive"] };
    let all = std::iter::once("train").chain(dataset.iter().copied());
    let t = T::try_parse_from(all.chain(args.iter().copied()))?;
    t.a.to_config()
}

#[test]
fn momentum_is_refused_where_it_would_be_ignored() {
    let err = format!("{:#}", train_config(&["--momentum", "0.5"]).unwrap_err());
    assert!(err.contains("--momentum 0.5") && err.contains("--optimizer adam"), "{err}");
    let err = format!(
        "{:#}",
        train_config(&["--optimizer", "adadelta", "--momentum", "0.5"]).unwrap_err()
    );
    assert!(err.contains("--optimizer adadelta"), "{err}");
    let c = train_config(&["--optimizer", "sgd", "--momentum", "0.5"]).unwrap();
    assert_eq!(c.optimizer, normiqa::run::config::OptimizerKind::Sgd { momentum: 0.5 });
    let c = train_config(&["--optimizer", "sgd"]).unwrap();
    assert_eq!(c.optimizer, normiqa::run::config::OptimizerKind::Sgd { momentum: 0.9 });
    let err = format!(
        "{:#}",
        cli(&["distill", "--optimizer", "adam", "--momentum", "0.9"]).unwrap_err()
    );
    assert!(err.contains("--momentum 0.9"), "{err}");
}

/// The reference README's training command, with its long option names (its `-lr`, `-bs`,
/// `-arch` written long), gives the configuration it describes.
#[test]
fn reference_long_option_names_are_accepted() {
    let c = train_config(&[
        "--dataset", "KonIQ-10k", "--labels", "k.csv", "--images", "k", "--resize", "--exp_id", "0",
        "--learning_rate", "1e-4", "--batch_size", "8", "--epochs", "30", "--ft_lr_ratio", "0.1",
        "--architecture", "resnext101_32x8d", "--loss_type", "norm-in-norm", "--p", "1", "--q",
        "2", "--alpha", "1", "0.1", "--weight_decay", "0", "--lr_decay", "0.1",
        "--overall_lr_decay", "0.01", "--accumulation_steps", "1", "--P6", "1", "--P7", "1",
        "--train_ratio", "0.6", "--train_and_val_ratio", "0.8", "--use_bn_end",
        "--monotonicity_regularization", "--test_during_training",
    ])
    .unwrap();
    assert!(c.data.dataset.is("koniq"));
    assert_eq!(c.data.resize, Some([498, 664]));
    assert_eq!((c.lr, c.batch_size, c.ft_lr_ratio), (1e-4, 8, 0.1));
    assert_eq!(c.model.backbone, normiqa::model::BackboneName::ResNeXt101_32x8d);
    assert!(c.model.use_bn_end && c.loss.monotonicity.is_some() && c.test_during_training);
    let err = format!("{:#}", train_config(&["--resize", "500"]).unwrap_err());
    assert!(err.contains("--resize 500") && !err.contains('['), "{err}");
}

/// `--arch efficientnet-lite1|lite2` in `train` (ImageNet weights found by the default lookup:
/// `NORMIQA_EFFICIENTNET_LITEN`, which `.cargo/config.toml` and `./run` point at
/// `.venv/efficientnet-liteN.pth`) and `predict` with the run folder; a missing weights file is
/// named.
#[test]
fn lite1_and_lite2_train_and_predict_with_their_default_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (labels, images) = common::synthetic_dataset(tmp.path(), 12, 40);
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_normiqa"));
        c.current_dir(tmp.path())
            .env("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
        c
    };
    for arch in ["efficientnet-lite1", "efficientnet-lite2"] {
        let out = tmp.path().join(arch);
        let mut train = bin();
        train.args([
            "train",
            "--dataset",
            "csv",
            "--arch",
            arch,
            "--ft-lr-ratio",
            "0",
        ]);
        train.args([
            "-e",
            "1",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--labels",
        ]);
        train
            .arg(&labels)
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&out);
        let o = train.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{arch}: {err}");
        let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("backbone = \"{arch}\"")), "{cfg}");
        let o = bin()
            .args(["predict", "--device", "cpu", "--model"])
            .arg(&out)
            .arg(images.join("img000.png"))
            .output()
            .unwrap();
        let scores = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(scores.starts_with("image,score\n"), "{scores}");

        let var = format!("NORMIQA_{}", arch.to_uppercase().replace('-', "_"));
        let missing = tmp.path().join(format!("no-{arch}.pth"));
        let o = bin()
            .env(&var, &missing)
            .args(["predict", "--device", "cpu", "--model"])
            .arg(&out)
            .arg(images.join("img000.png"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success(),
            "{arch}: a missing weights file must fail"
        );
        assert!(err.contains(&format!("no-{arch}.pth")), "{err}");
    }
}
