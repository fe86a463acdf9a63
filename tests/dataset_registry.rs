//! A dataset is one file plus one registry line (src/run/dataset/): here a newcomer's dataset is
//! written in this test file alone (a folder with `scores.txt`, lines `NAME SCORE` on a 0–10
//! scale), registered, named in a run's configuration, trained on, and its run loaded for
//! inference; nothing else in normiqa changes.

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use normiqa::data::{Dataset, LoadOptions, Sample};
use normiqa::run::dataset::{self, typed_fields, DatasetKind, DatasetSpec, Location, Options};
use normiqa::run::{RunInfo, SplitProtocol, TrainConfig};
use serde::{Deserialize, Serialize};

/// The whole dataset: its fields, where its files are, its rows, its scale and its name.
struct ScoresTxt;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    root: PathBuf,
}

impl DatasetKind for ScoresTxt {
    fn kind(&self) -> &'static str {
        "scores-txt"
    }
    fn name(&self) -> &'static str {
        "ScoresTxt"
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[Location { field: "root", option: "root", folder: true }]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        dataset::to_fields(&Fields { root: o.need(self, "root")? })
    }
    fn load(&self, spec: &DatasetSpec, _opts: &LoadOptions) -> Result<Dataset> {
        let root = spec.fields::<Fields>().root;
        let file = root.join("scores.txt");
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let samples = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let (name, score) = line.split_once(' ').with_context(|| format!("{}: line {}", file.display(), i + 1))?;
                Ok(Sample {
                    name: name.to_string(),
                    path: root.join(name),
                    mos: score.parse().with_context(|| format!("{}: line {}", file.display(), i + 1))?,
                    mos_std: None,
                    reference: None,
                    distortion: None,
                    level: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Dataset { name: "ScoresTxt".into(), samples, higher_is_better: true })
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        "ScoresTxt scale, 0-10, higher is better".into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        "32x32 test patterns (ScoresTxt)".into()
    }
}

static SCORES_TXT: ScoresTxt = ScoresTxt;

fn registered() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| dataset::register(&SCORES_TXT).unwrap());
}

/// `n` images and their `scores.txt` (the synthetic images of the other tests, MOS / 10).
fn scores_txt_folder(dir: &Path, n: usize) -> PathBuf {
    let (csv, images) = common::synthetic_dataset(dir, n, 32);
    let rows: Vec<String> = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (name, mos) = l.split_once(',').unwrap();
            format!("{name} {}", mos.parse::<f64>().unwrap() / 10.0)
        })
        .collect();
    std::fs::write(images.join("scores.txt"), rows.join("\n")).unwrap();
    images
}

#[test]
fn a_dataset_written_in_one_file_is_named_in_a_config_trained_on_and_scored() {
    registered();
    let tmp = tempfile::tempdir().unwrap();
    let root = scores_txt_folder(tmp.path(), 16);
    let text = format!(
        "random_init = true\nepochs = 1\nbatch_size = 4\nft_lr_ratio = 0.0\ndevice = \"cpu\"\n\
         [data]\nsplit = \"random\"\n[data.dataset]\nkind = \"scores-txt\"\nroot = {:?}\n",
        root.to_str().unwrap()
    );
    let cfg: TrainConfig = toml::from_str(&text).unwrap();
    assert!(cfg.data.dataset.is("scores-txt"));
    assert_eq!(cfg.data.split, SplitProtocol::Random);

    let out = tmp.path().join("run");
    normiqa::train::train(&cfg, &out).unwrap_or_else(|e| panic!("{e:#}"));
    let info = RunInfo::load(&out).unwrap();
    assert_eq!(info.sizes.train + info.sizes.val + info.sizes.test, 16);
    assert_eq!(info.score_scale(), "ScoresTxt scale, 0-10, higher is better");
    assert_eq!(info.training_images(), "32x32 test patterns (ScoresTxt)");
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("[data.dataset]\nkind = \"scores-txt\"\nroot = "), "{saved}");

    let model = normiqa::infer::trained::TrainedModel::load(&out, tch::Device::Cpu, None).unwrap();
    let im = image::open(root.join("img000.png")).unwrap().to_rgb8();
    let scores = model.score(&[im], 1).unwrap();
    assert!(scores.mapped[0].is_finite(), "{:?}", scores.mapped);
}

#[test]
fn a_registered_dataset_is_listed_checked_and_registered_once() {
    registered();
    assert!(dataset::kind_names().contains(&"scores-txt"));
    assert!(dataset::register(&SCORES_TXT).is_err(), "registered twice");
    let err = DatasetSpec::new("scores-txt", toml::toml! { root = "x" extra = 1 }).unwrap_err();
    assert!(err.contains("scores-txt") && err.contains("extra"), "{err}");
    let err = toml::from_str::<TrainConfig>("[data.dataset]\nkind = \"nope\"\n").unwrap_err().to_string();
    assert!(err.contains("unknown dataset kind 'nope'") && err.contains("scores-txt") && err.contains("clive"), "{err}");
}

#[test]
fn built_in_datasets_keep_their_config_fields_and_order() {
    let spec = dataset::csv::spec("a/labels.csv".into(), "a/images".into());
    let text = toml::to_string(&spec).unwrap();
    assert_eq!(text, "kind = \"csv\"\ncsv = \"a/labels.csv\"\nimages = \"a/images\"\nimage_column = \"image\"\nmos_column = \"mos\"\n");
    let back: DatasetSpec = toml::from_str("kind = \"csv\"\ncsv = \"a/labels.csv\"\nimages = \"a/images\"\n").unwrap();
    assert_eq!(back, spec, "defaults filled in as before");
    let json = serde_json::to_string(&dataset::clive::spec("c".into())).unwrap();
    assert_eq!(json, r#"{"kind":"clive","root":"c"}"#);
}
