//! `normiqa synth`, `normiqa fr` and the per-type report end to end on the embedded references:
//! generate 6 references × 3 distortions × 2 levels, train 2 epochs (random-init backbone:
//! machinery, not accuracy) on a reference-disjoint split of the CSV, test per distortion type
//! and draw the per-type chart.

use std::path::Path;

use clap::Parser;
use normiqa::run;
use normiqa::cli::synth::{self, Score};
use normiqa::cli::{fr, Cli};
use normiqa::data::split::{Ratios, Split};
use normiqa::fr::FrMetric;
use normiqa::synth::{Distortion, GenerateOptions};
use normiqa::train;
use normiqa::run::{SplitProtocol, TrainConfig};

fn generate_small(out: &Path) -> Vec<normiqa::synth::SynthRecord> {
    let refs = normiqa::synth::write_embedded_references(&out.join("embedded")).unwrap();
    let opts = GenerateOptions {
        distortions: synth::parse_distortions("gaussian_blur,jpeg,white_noise").unwrap(),
        levels: synth::parse_levels("1,4").unwrap(),
        seed: 7,
        ..Default::default()
    };
    synth::generate(&refs, out, &opts, synth::DEFAULT_SCORE).unwrap()
}

#[test]
fn options_parse() {
    assert_eq!(synth::parse_distortions("all").unwrap().len(), 25);
    assert_eq!(
        synth::parse_distortions("jpeg, 1,jpeg").unwrap(),
        vec![Distortion::Jpeg, Distortion::GaussianBlur]
    );
    assert!(synth::parse_distortions("nope").is_err());
    assert_eq!(synth::parse_levels("5,1").unwrap(), vec![5, 1]);
    assert!(synth::parse_levels("0").is_err() && synth::parse_levels("6").is_err());
    assert_eq!(
        "gmsd".parse::<Score>().unwrap(),
        Score::Metric(FrMetric::Gmsd)
    );
    assert_eq!(
        "MS_SSIM".parse::<Score>().unwrap(),
        Score::Metric(FrMetric::MsSsim)
    );
    assert_eq!("fused".parse::<Score>().unwrap(), Score::Fused);
    assert!("vif".parse::<Score>().is_err());
    assert_eq!(fr::parse_metrics("all").unwrap().len(), 4);
    assert_eq!(fr::kadid_reference_stem("kodim01_09_3"), Some("kodim01"));
    assert_eq!(fr::kadid_reference_stem("I01_09_3"), Some("I01"));
    assert_eq!(fr::kadid_reference_stem("kodim01"), None);
    assert_eq!(fr::kadid_reference_stem("a_b_3"), None);
}

#[test]
fn labels_are_higher_is_better() {
    let (_, img) = &normiqa::synth::embedded_references()[0];
    for score in ["psnr", "ssim", "gmsd", "fused"] {
        let s: Score = score.parse().unwrap();
        let mild = normiqa::synth::apply(Distortion::GaussianBlur, img, 1, 0).unwrap();
        let strong = normiqa::synth::apply(Distortion::GaussianBlur, img, 5, 0).unwrap();
        let (a, b) = (
            s.compute(img, &mild).unwrap(),
            s.compute(img, &strong).unwrap(),
        );
        assert!(a > b, "{score}: level 1 {a} should score above level 5 {b}");
        assert!(
            s.compute(img, img).unwrap().is_finite(),
            "{score} of identical images must be finite"
        );
    }
}

#[test]
fn ms_ssim_on_embedded_references_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let refs = normiqa::synth::write_embedded_references(&tmp.path().join("embedded")).unwrap();
    let opts = GenerateOptions {
        distortions: vec![Distortion::Jpeg],
        levels: vec![1],
        ..Default::default()
    };
    let err = synth::generate(
        &refs,
        &tmp.path().join("out"),
        &opts,
        Score::Metric(FrMetric::MsSsim),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("176") && msg.contains("128x128"), "{msg}");
    assert!(!tmp.path().join("out/labels.csv").exists());
}

#[test]
fn generate_train_by_reference_test_per_type_and_plot() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("NORMIQA_FEATURE_CACHE", tmp.path().join("cache"));
    let out = tmp.path().join("synth");
    let records = generate_small(&out);
    assert_eq!(records.len(), 6 * 3 * 2);
    assert!(records
        .iter()
        .all(|r| r.score.is_finite() && r.score > 0.0 && r.score <= 1.0));
    // Per reference and type, the stronger level has the lower label.
    for w in records.chunks(2) {
        assert_eq!((w[0].level, w[1].level), (1, 4));
        assert!(
            w[0].score > w[1].score,
            "{} {} vs {} {}",
            w[0].image,
            w[0].score,
            w[1].image,
            w[1].score
        );
    }
    let header = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    assert!(header.starts_with("image,reference,distortion,level,score\n"));

    // The generic CSV loader reads the reference/distortion/level columns.
    let spec = normiqa::run::dataset::csv::with_columns(out.join("labels.csv"), out.clone(), "image", "score");
    let ds = run::data::load_dataset(&spec, &Default::default()).unwrap();
    assert_eq!(ds.len(), 36);
    assert!(ds
        .samples
        .iter()
        .all(|s| s.reference.is_some() && s.distortion.is_some() && s.level.is_some()));
    let split = Split::by_reference(&ds, 0, Ratios::train_test(0.8)).unwrap();
    let refs_of = |idx: &[usize]| {
        let mut v: Vec<_> = idx
            .iter()
            .map(|&i| ds.samples[i].reference.clone().unwrap())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let (tr, te) = (refs_of(&split.train), refs_of(&split.test));
    assert_eq!((tr.len(), te.len(), split.val.len()), (4, 2, 0));
    assert!(tr.iter().all(|r| !te.contains(r)), "reference-disjoint");

    // Train 2 epochs, frozen cached backbone, no validation set (the last epoch is kept).
    let mut cfg = TrainConfig::new(spec);
    cfg.data.split = SplitProtocol::ByReference;
    cfg.data.train_ratio = 0.8;
    cfg.data.train_val_ratio = 0.8;
    cfg.random_init = true;
    cfg.ft_lr_ratio = 0.0;
    cfg.epochs = 2;
    cfg.batch_size = 4;
    cfg.lr = 1e-3;
    cfg.device = "cpu".into();
    let run = tmp.path().join("run");
    let outcome = train::train(&cfg, &run).unwrap();
    assert_eq!(
        (
            outcome.info.sizes.train,
            outcome.info.sizes.val,
            outcome.info.sizes.test
        ),
        (24, 0, 12)
    );
    assert_eq!(outcome.info.best_epoch, 2);

    // `normiqa test --model RUN --plot`: the run's own test set, per type, chart.
    let png = tmp.path().join("plots/per_type.png");
    let preds_csv = tmp.path().join("test_predictions.csv");
    let cli = Cli::try_parse_from([
        "normiqa",
        "test",
        "--model",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--plot",
        png.to_str().unwrap(),
        "--predictions",
        preds_csv.to_str().unwrap(),
    ])
    .unwrap();
    normiqa::cli::run(cli).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory(&bytes).unwrap();
    assert!(img.width() >= 800 && img.height() >= 150);
    // Not a blank image: bars in the three colours.
    let rgb = img.to_rgb8();
    let has = |c: [u8; 3]| rgb.pixels().any(|p| p.0 == c);
    assert!(
        has([214, 39, 40]) && has([44, 160, 44]),
        "hardest (red) and easiest (green) bars"
    );

    // Per-type metrics of the model's test predictions (the CSV written by `test --predictions`).
    let preds = std::fs::read_to_string(preds_csv).unwrap();
    let run_split = run::data::split_dataset(&cfg.data, &ds, cfg.seed).unwrap();
    assert_eq!(run_split.test.len(), 12);
    let by_name: std::collections::HashMap<&str, usize> = ds
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let (mut names, mut pred, mut mos) = (vec![], vec![], vec![]);
    for line in preds.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let i = by_name[f[0]];
        assert!(run_split.test.contains(&i), "{} is not a test image", f[0]);
        names.push(ds.samples[i].distortion.clone());
        mos.push(ds.samples[i].mos);
        pred.push(f[5].parse::<f64>().unwrap());
    }
    assert_eq!(pred.len(), 12);
    let per = normiqa::cli::test::per_distortion(&names, &pred, &mos);
    assert_eq!(per.len(), 3);
    assert!(per.iter().all(|(_, m)| m.n == 4));
    assert!(
        per.windows(2).all(|w| w[0].1.srocc <= w[1].1.srocc),
        "sorted hardest first"
    );
}

#[test]
fn fr_folders_pair_synth_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("synth");
    generate_small(&out);
    let (pairs, unpaired) = fr::pair_folders(&out.join("references"), &out.join("images")).unwrap();
    assert_eq!((pairs.len(), unpaired.len()), (36, 0));
    for (r, d) in &pairs {
        let rs = r.file_stem().unwrap().to_str().unwrap();
        assert!(d
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("{rs}_")));
    }
    let p = fr::score_pair(
        &pairs[0].0,
        &pairs[0].1,
        &FrMetric::ALL,
        &Default::default(),
    )
    .unwrap();
    assert!(p.values[0].is_some() && p.values[1].is_some() && p.values[3].is_some());
    assert!(
        p.values[2].is_none() && p.note.as_deref().unwrap().contains("176"),
        "MS-SSIM on 128x128: no value"
    );
    // The CLI runs on files and on folders.
    for (a, b) in [
        (pairs[0].0.clone(), pairs[0].1.clone()),
        (out.join("references"), out.join("images")),
    ] {
        let cli = Cli::try_parse_from([
            "normiqa",
            "fr",
            "--ref",
            a.to_str().unwrap(),
            "--dist",
            b.to_str().unwrap(),
            "--json",
        ])
        .unwrap();
        normiqa::cli::run(cli).unwrap();
    }
}

/// `synth` says when generated images are pixel-identical to their reference (Gaussian blur at
/// level 1 leaves the embedded 128x128 references unchanged), in its summary and its JSON.
#[test]
fn synth_says_which_images_are_identical_to_their_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str, json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_normiqa"));
        c.args(["synth", "--embedded", "--distortions", "gaussian_blur,jpeg", "--levels", "1,4", "--out"]);
        c.arg(tmp.path().join(out));
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let text = run("a", false);
    assert!(
        text.contains("6 of the 24 generated images are identical to their reference (gaussian_blur level 1: 6)")
            && text.contains("--levels"),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&run("b", true)).unwrap();
    assert_eq!(doc["identical_to_reference"], serde_json::json!([{"what": "gaussian_blur level 1", "images": 6}]));
    // Their labels are those of no distortion, which is what the note says.
    let labels = std::fs::read_to_string(tmp.path().join("a/labels.csv")).unwrap();
    let row = labels.lines().find(|l| l.contains("_01_1.png")).unwrap();
    assert!(row.ends_with(",1"), "{row}");
}

/// `fr` on folders where one pair is identical to its reference: that pair's PSNR is infinite,
/// the mean PSNR is the other pairs' (not inf) and the output says how many were left out.
#[test]
fn fr_mean_psnr_leaves_out_identical_pairs_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, d) = (tmp.path().join("ref"), tmp.path().join("dist"));
    std::fs::create_dir_all(&r).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    let img = |k: u32| image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y + k) % 256) as u8]));
    for name in ["a.png", "b.png"] {
        img(0).save(r.join(name)).unwrap();
    }
    img(0).save(d.join("a.png")).unwrap();
    img(9).save(d.join("b.png")).unwrap();
    let run = |json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_normiqa"));
        c.args(["fr", "--ref", r.to_str().unwrap(), "--dist", d.to_str().unwrap(), "--metric", "psnr"]);
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let doc: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let b = doc["pairs"][1]["metrics"]["psnr"].as_f64().expect("b has a finite PSNR");
    let mean = doc["mean"]["psnr"].as_f64().expect("a finite mean PSNR");
    assert!((mean - b).abs() < 1e-9, "mean {mean} vs b {b}");
    assert_eq!(doc["identical_pairs"], 1);
    let table = run(false);
    let mean_row = table.lines().find(|l| l.starts_with("mean (2)")).unwrap();
    assert!(!mean_row.contains("inf"), "{table}");
    assert!(table.contains("1 of the 2 pairs are identical to their reference"), "{table}");
}

#[test]
fn plot_handles_negative_and_nan_srocc() {
    let tmp = tempfile::tempdir().unwrap();
    let m = |s: f64| normiqa::metrics::Metrics {
        srocc: s,
        krocc: s,
        plcc: s,
        rmse: 1.0,
        n: 10,
    };
    let rows = vec![
        ("a".to_string(), m(0.9)),
        ("b".into(), m(-0.3)),
        ("c".into(), m(f64::NAN)),
        ("d".into(), m(0.5)),
    ];
    let sorted = normiqa::report::per_type::sorted_by_srocc(&rows);
    let order: Vec<&str> = sorted.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
    let png = tmp.path().join("x.png");
    normiqa::report::per_type::plot_per_type(&rows, "test", Some(0.6), &png).unwrap();
    assert!(image::open(&png).is_ok());
    assert!(normiqa::report::per_type::plot_per_type(&[], "empty", None, &png).is_err());
}
