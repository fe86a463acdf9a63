//! Argument groups shared by several subcommands, and the metric printers.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};
use normiqa_core::data::decode::{resize_limit_msg, DecodeOptions};
use normiqa_core::data::LoadOptions;
use normiqa_core::metrics::{fit_logistic, Logistic, Metrics};

use crate::run::{DataConfig, DatasetSpec, SplitProtocol};

/// A `--dataset` value: one of the datasets of [`crate::run::dataset`] (their kinds, or aliases).
#[derive(Clone, Copy)]
pub struct DatasetKind(pub &'static dyn crate::run::dataset::DatasetKind);

impl std::fmt::Debug for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.kind())
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::run::dataset::find(s).map(DatasetKind).ok_or_else(|| {
            format!("unknown dataset '{s}' (expected one of {})", crate::run::dataset::kind_names().join(", "))
        })
    }
}

/// The value parser of `--dataset`: every dataset of the registry.
pub fn dataset_parser() -> Named<DatasetKind> {
    named(crate::run::dataset::kind_names())
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    Default,
    Random,
    ByReference,
    AllTest,
}

/// Which dataset and split.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset kind.
    #[arg(long, value_parser = dataset_parser())]
    pub dataset: Option<DatasetKind>,
    /// Dataset folder (CLIVE: `mos.csv` + `images/` or the official release; KADID-10k, TID2013:
    /// their official layouts). Default for CLIVE: ../shared/data/clive.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Labels file: KonIQ-10k's `koniq10k_distributions_sets.csv` or a generic CSV.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Image folder for KonIQ-10k and generic CSV datasets.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Image-name column of a generic CSV.
    #[arg(long, default_value = "image")]
    pub image_column: String,
    /// MOS column of a generic CSV.
    #[arg(long, default_value = "mos")]
    pub mos_column: String,
    /// Split protocol.
    #[arg(long, value_enum, default_value = "default")]
    pub split: SplitArg,
    /// Split id (the reference's --exp_id). CLIVE: permutation `order_<id>` of the splits file
    /// (../shared/data/clive/splits.csv holds the reference's first 10; with all 1000 of the
    /// reference's data/CLIVEinfo.mat, any id, as the reference: `id % 1000`).
    #[arg(long, alias = "exp_id", default_value_t = 0)]
    pub exp_id: usize,
    /// CLIVE: the splits file (`image,order_0,...`; default ROOT/splits.csv), e.g. the
    /// reference's 1000 permutations written by `python reference/clive_splits.py CLIVEinfo.mat OUT.csv`.
    #[arg(long, value_name = "CSV")]
    pub splits: Option<PathBuf>,
    /// Share of the images in the training set (the reference's --train_ratio).
    #[arg(long, alias = "train_ratio", default_value_t = crate::run::config::defaults::TRAIN_RATIO)]
    pub train_ratio: f64,
    /// Share of the images in the training and validation sets together; the rest is the
    /// test set (the reference's --train_and_val_ratio).
    #[arg(long, alias = "train_and_val_ratio", default_value_t = crate::run::config::defaults::TRAIN_VAL_RATIO)]
    pub train_val_ratio: f64,
    /// Resize every image to H W after decoding; `--resize` alone is the reference's --resize
    /// (its default 498 664).
    #[arg(long, num_args = 0..=2, default_missing_values = ["498", "664"], value_names = ["H", "W"])]
    pub resize: Option<Vec<u32>>,
    /// Accept image paths in the labels file that leave the image folder (`../x.jpg`,
    /// absolute paths); refused by default.
    #[arg(long)]
    pub allow_outside_root: bool,
    /// Keep the first of the rows that list the same image and drop the others (each is
    /// logged); by default such a labels file is refused.
    #[arg(long)]
    pub drop_duplicates: bool,
    #[command(flatten)]
    pub decoding: ImageArgs,
}

/// How images are decoded: shared by every command that decodes images.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageArgs {
    /// Score truncated or corrupt JPEGs (the missing part comes out grey) instead of refusing
    /// them, like PIL's LOAD_TRUNCATED_IMAGES.
    #[arg(long)]
    pub allow_truncated: bool,
    /// Refuse images (declared size, or a --resize target) of more than N pixels; default
    /// 89478485, PIL's MAX_IMAGE_PIXELS; 0 = no limit.
    #[arg(long, value_name = "N")]
    pub max_image_pixels: Option<u64>,
}

impl ImageArgs {
    /// `base` with the options given on the command line.
    pub fn apply(&self, base: DecodeOptions) -> DecodeOptions {
        DecodeOptions {
            allow_truncated: base.allow_truncated || self.allow_truncated,
            max_image_pixels: self.max_image_pixels.unwrap_or(base.max_image_pixels),
        }
    }

    /// The decoding options of the command line (defaults where not given).
    pub fn options(&self) -> DecodeOptions {
        self.apply(DecodeOptions::default())
    }
}

/// Test-time views (`predict`, `test`, `serve`): [`crate::infer::tta`].
#[derive(Args, Debug, Clone, Default)]
pub struct TtaArgs {
    /// Score each image as the mean over views of it: none (the whole image), flip (the image
    /// and its horizontal mirror), five-crop (4 corner crops and the centre crop), ten-crop
    /// (the five crops and their mirrors). What each buys and costs: RESULTS.md, "Test-time
    /// choices".
    #[arg(long, value_enum, default_value = "none")]
    pub tta: crate::infer::Tta,
    /// Side of the crops of --tta five-crop and ten-crop as a fraction of the image's height
    /// and width, in (0, 1] (default 0.75).
    #[arg(long, value_name = "F")]
    pub tta_crop_fraction: Option<f64>,
}

impl TtaArgs {
    /// The views asked for, checked (a fraction outside (0, 1] is refused, naming the option).
    pub fn test_time(&self) -> Result<crate::infer::TestTime, crate::infer::tta::TtaError> {
        crate::infer::TestTime::new(self.tta, self.tta_crop_fraction)
    }
}

/// The value parser of an option whose values are a closed set that the type's `FromStr` parses:
/// `--help` lists `names` (`[possible values: ...]`), while parsing, its other accepted spellings
/// (aliases such as `maxmin`) and its error message stay the type's own.
#[derive(Clone)]
pub struct Named<T> {
    names: Vec<&'static str>,
    _type: std::marker::PhantomData<fn() -> T>,
}

/// A [`Named`] parser listing `names`.
pub fn named<T>(names: impl IntoIterator<Item = &'static str>) -> Named<T> {
    Named {
        names: names.into_iter().collect(),
        _type: std::marker::PhantomData,
    }
}

impl<T> TypedValueParser for Named<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        (|s: &str| s.parse::<T>()).parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.names.iter().map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

/// The names `--pool` lists, spelt as in run and experiment files (`maxmin`, `meanstd` are
/// accepted too).
pub const POOL_NAMES: [&str; 6] = ["avg", "max", "min", "std", "max-min", "mean-std"];

/// The names `--loss` lists (`nin`, `Lp` and `l1` are accepted too).
pub const LOSS_NAMES: [&str; 7] = [
    "norm-in-norm",
    "mae",
    "mse",
    "linearity",
    "min-max-norm",
    "mean-norm",
    "scaling",
];

/// The value parser of a backbone option (`--arch`): every backbone of the registry.
pub fn backbone_parser() -> Named<crate::model::BackboneName> {
    named(crate::model::BackboneName::ALL.iter().map(|b| b.as_str()))
}

/// `1 2 3`: numbers as a user types them.
pub fn numbers<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

impl DataArgs {
    /// The dataset options as given, for the datasets ([`crate::run::dataset::Options`]).
    fn options(&self) -> crate::run::dataset::Options<'_> {
        crate::run::dataset::Options {
            root: self.root.as_deref(),
            labels: self.labels.as_deref(),
            images: self.images.as_deref(),
            image_column: &self.image_column,
            mos_column: &self.mos_column,
        }
    }

    /// Whether any dataset option was given.
    pub fn given(&self) -> bool {
        self.dataset.is_some()
    }

    /// A run's own dataset with the --root, --labels and --images given (the data moved, or
    /// the run folder is used on another machine); an option that dataset has no use for is an
    /// error naming it.
    pub fn override_paths(&self, spec: &DatasetSpec) -> Result<DatasetSpec> {
        let mut spec = spec.clone();
        let kind = spec.kind();
        let takes: Vec<&str> = kind.locations().iter().map(|l| l.option).collect();
        let options = self.options();
        for l in kind.locations() {
            if let Some(p) = options.given(l.option) {
                spec.set_path(l.field, p);
            }
        }
        let name = kind.described();
        for option in crate::run::dataset::LOCATION_OPTIONS {
            if options.given(option).is_some() && !takes.contains(&option) {
                let takes: Vec<String> = takes.iter().map(|t| format!("--{t}")).collect();
                bail!(
                    "--{option}: the run was trained on {name}, whose location is given by {} (or give --dataset to test on another dataset)",
                    takes.join(" and ")
                );
            }
        }
        Ok(spec)
    }

    pub fn to_config(&self) -> Result<DataConfig> {
        let kind = self.dataset.map_or(&crate::run::dataset::clive::Clive as &dyn crate::run::dataset::DatasetKind, |k| k.0);
        let dataset = DatasetSpec::new(kind.kind(), kind.from_options(&self.options())?).map_err(anyhow::Error::msg)?;
        let resize = match &self.resize {
            None => None,
            Some(v) if v.len() == 2 && v[0] > 0 && v[1] > 0 => Some([v[0], v[1]]),
            Some(v) => bail!(
                "--resize {}: expected two positive numbers H W (or --resize alone for 498 664)",
                numbers(v)
            ),
        };
        let decoding = self.decoding.options();
        check_resize(resize, &decoding)?;
        if self.splits.is_some() && !kind.takes_splits_file() {
            bail!("--splits: only CLIVE's splits come from a file; --dataset {} has its own", kind.kind());
        }
        let mut cfg = DataConfig {
            dataset,
            split: match self.split {
                SplitArg::Default => SplitProtocol::Default,
                SplitArg::Random => SplitProtocol::Random,
                SplitArg::ByReference => SplitProtocol::ByReference,
                SplitArg::AllTest => SplitProtocol::AllTest,
            },
            exp_id: self.exp_id,
            train_ratio: self.train_ratio,
            train_val_ratio: self.train_val_ratio,
            resize,
            loading: LoadOptions::default(),
            decoding,
            splits: self.splits.clone(),
        };
        self.apply_input_flags(&mut cfg);
        Ok(cfg)
    }

    /// Turns on in `cfg` the label checks opted out of and the decoding options given on the
    /// command line (for a configuration read from a file or a run folder).
    pub fn apply_input_flags(&self, cfg: &mut DataConfig) {
        cfg.loading.allow_outside_root |= self.allow_outside_root;
        cfg.loading.drop_duplicates |= self.drop_duplicates;
        cfg.decoding = self.decoding.apply(cfg.decoding);
    }
}

/// Refuses a `--resize` target over the pixel limit before any image is read.
pub fn check_resize(resize: Option<[u32; 2]>, opts: &DecodeOptions) -> Result<()> {
    match resize {
        Some([h, w]) if !opts.allows(w, h) => bail!(
            "--resize {h} {w}: {}",
            resize_limit_msg(h, w, opts.max_image_pixels)
        ),
        _ => Ok(()),
    }
}

/// Replaces `path` by the option's value when given; returns `name` (for the caller's message).
/// Prints a table of metrics per head (`names`: the model's head names).
pub fn print_head_metrics(title: &str, names: &[String], m: &[Metrics]) -> Result<()> {
    crate::outln!("{title}")?;
    crate::outln!(
        "  {:<6} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "head", "SROCC", "PLCC", "KROCC", "RMSE", "n"
    )?;
    for (name, x) in names.iter().zip(m.iter()) {
        crate::outln!(
            "  {:<6} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>6}",
            name, x.srocc, x.plcc, x.krocc, x.rmse, x.n
        )?;
    }
    Ok(())
}

/// The metrics of every head as a JSON object keyed by head name.
pub fn head_metrics_json(names: &[String], m: &[Metrics]) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    for (name, x) in names.iter().zip(m.iter()) {
        o.insert(name.clone(), serde_json::to_value(x).unwrap_or_default());
    }
    serde_json::Value::Object(o)
}

/// The device option shared by the commands that run a model.
pub fn parse_device(s: &str) -> Result<tch::Device> {
    Ok(crate::model::parse_device(s)?)
}

/// PLCC and RMSE after each VQEG logistic mapping, fitted on `(pred, mos)` themselves (as papers
/// and pyiqa report them); a curve that cannot be fitted (too few points, constant predictions)
/// gives the reason instead.
pub fn logistic_json(pred: &[f64], mos: &[f64]) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    for curve in Logistic::ALL {
        let v = match fit_logistic(curve, pred, mos) {
            Ok(f) => serde_json::json!({"plcc": f.plcc, "rmse": f.rmse, "params": f.params}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        o.insert(curve.name().into(), v);
    }
    serde_json::Value::Object(o)
}

/// Prints one line per logistic mapping (see [`logistic_json`]).
pub fn print_logistic(what: &str, pred: &[f64], mos: &[f64]) -> Result<()> {
    for curve in Logistic::ALL {
        match fit_logistic(curve, pred, mos) {
            Ok(f) => crate::outln!(
                "  {what}, {} mapping fitted on these images: PLCC {:.4}  RMSE {:.4}",
                curve.name(),
                f.plcc,
                f.rmse
            )?,
            Err(e) => crate::outln!("  {what}, {}: not available ({e})", curve.name())?,
        }
    }
    Ok(())
}

/// The identities of a dataset's input files: its images and its labels file (for datasets given
/// by a root folder: every file in it, two levels deep), for refusing outputs over them.
pub fn dataset_input_ids(
    spec: &crate::run::DatasetSpec,
    dataset: &crate::data::Dataset,
) -> std::collections::HashSet<crate::inputs::FileId> {
    let mut files: Vec<PathBuf> = dataset.samples.iter().map(|s| s.path.clone()).collect();
    for (location, path) in spec.locations() {
        if location.folder && location.option == "root" {
            let walk = walkdir::WalkDir::new(&path).max_depth(2).into_iter();
            files.extend(walk.filter_map(|e| e.ok()).map(|e| e.into_path()))
        } else if !location.folder {
            files.push(path)
        }
    }
    files.iter().filter_map(|f| crate::inputs::FileId::of(f).ok()).collect()
}
