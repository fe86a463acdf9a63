//! Datasets: one file each, one line in [`BUILT_IN`]. Everything a layer asks of a dataset (its
//! fields in a run's configuration, the command-line options that locate it, its rows, its own
//! split, a resize it needs, the scale and direction of its MOS, its name for people) is a
//! method of [`DatasetKind`]; the CLI, configs, caches and reports ask it.
//!
//! Adding a dataset: write `run/dataset/NAME.rs` with a unit struct implementing [`DatasetKind`]
//! (the row parser itself belongs in `normiqa-core`'s `data/` when it is more than a CSV) and add
//! it to [`BUILT_IN`]. A program using the library adds its own with [`register`]
//! (`tests/dataset_registry.rs` does so with a dataset written in the test).
//!
//! In a configuration a dataset is its `kind` and its own fields:
//! ```toml
//! [data.dataset]
//! kind = "clive"
//! root = "../shared/data/clive"
//! ```

pub mod clive;
pub mod csv;
pub mod kadid;
pub mod koniq;
pub mod reference_split;
pub mod tid2013;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{bail, Result};
use normiqa_core::data::decode::Resize;
use normiqa_core::data::split::{Ratios, Split};
use normiqa_core::data::{Dataset, LoadOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The datasets normiqa knows, in the order `--help` lists them.
pub static BUILT_IN: &[&dyn DatasetKind] = &[&clive::Clive, &koniq::Koniq, &kadid::KADID, &tid2013::TID2013, &csv::Csv];

/// Datasets added at run time by [`register`].
static REGISTERED: RwLock<Vec<&'static dyn DatasetKind>> = RwLock::new(Vec::new());

/// A field of a dataset's configuration that holds a path, and the command-line option that
/// sets it.
#[derive(Debug, Clone, Copy)]
pub struct Location {
    /// The field in the configuration (`root`, `labels`, `csv`, `images`).
    pub field: &'static str,
    /// The option of `--dataset`'s group that gives it: `root`, `labels` or `images`.
    pub option: &'static str,
    /// A folder (its files, two levels deep, are the dataset's inputs) or a file.
    pub folder: bool,
}

/// The dataset options of the command line, as given.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub root: Option<&'a Path>,
    pub labels: Option<&'a Path>,
    pub images: Option<&'a Path>,
    pub image_column: &'a str,
    pub mos_column: &'a str,
}

/// The options of the command line that locate a dataset ([`Location::option`]).
pub const LOCATION_OPTIONS: [&str; 3] = ["root", "labels", "images"];

impl Options<'_> {
    /// The path `option` (one of [`LOCATION_OPTIONS`]) gave, if it was given.
    pub fn given(&self, option: &str) -> Option<&Path> {
        match option {
            "root" => self.root,
            "labels" => self.labels,
            "images" => self.images,
            _ => None,
        }
    }

    /// The path given by `option`, or an error naming it.
    pub fn need(&self, kind: &dyn DatasetKind, option: &str) -> Result<PathBuf> {
        match self.given(option) {
            Some(p) => Ok(p.to_path_buf()),
            None => bail!("--dataset {} needs --{option}", kind.kind()),
        }
    }
}

/// What a run asks of a dataset's own split (`split = "default"`).
#[derive(Debug, Clone, Copy)]
pub struct SplitRequest<'a> {
    /// Which split (the reference's `--exp_id`).
    pub exp_id: usize,
    /// A splits file given by the run (`--splits`).
    pub splits: Option<&'a Path>,
    /// The checks of the labels file opted out of.
    pub loading: &'a LoadOptions,
    /// `seed + exp_id`, for seeded splits.
    pub seed: u64,
    pub ratios: Ratios,
}

/// What a dataset is to normiqa. One implementation per file of this folder.
pub trait DatasetKind: Send + Sync + 'static {
    /// `kind` in configurations, and the value of `--dataset`.
    fn kind(&self) -> &'static str;
    /// Other spellings `--dataset` accepts.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// Its name for people and in run names (`CLIVE`).
    fn name(&self) -> &'static str;
    /// How messages name a run's data of this kind ("the run was trained on ...").
    fn described(&self) -> String {
        self.name().to_string()
    }
    /// Its fields, checked and completed with their defaults, as a run's `config.toml` keeps them
    /// (most datasets: [`typed_fields`] of a serde struct).
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String>;
    /// The fields that are paths, with the options that set them.
    fn locations(&self) -> &'static [Location];
    /// Its fields from the command line's options (an error names a missing option).
    fn from_options(&self, options: &Options) -> Result<toml::Table>;
    /// Its rows: images, MOS and whatever else the labels hold.
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset>;
    /// Its own split for `split = "default"`; `None`: a seeded random split by image.
    fn own_split(&self, _spec: &DatasetSpec, _request: &SplitRequest, _dataset: &Dataset) -> Option<Result<Split>> {
        None
    }
    /// Whether its own split reads a splits file (`--splits`).
    fn takes_splits_file(&self) -> bool {
        false
    }
    /// A resize every image gets before `--resize` (CLIVE's 500×500).
    fn resize(&self) -> Option<Resize> {
        None
    }
    /// The scale and direction of its MOS, for people.
    fn score_scale(&self, spec: &DatasetSpec) -> String;
    /// What its images are, for warnings about images far from them.
    fn training_images(&self, spec: &DatasetSpec) -> String;
    /// How `serve` labels a model trained on it.
    fn label(&self, _spec: &DatasetSpec) -> String {
        self.name().to_string()
    }
}

/// Adds a dataset to those configurations and `--dataset` can name (a program using the
/// library; the built-in ones are [`BUILT_IN`]). A kind already known is refused.
pub fn register(kind: &'static dyn DatasetKind) -> Result<()> {
    if find(kind.kind()).is_some() {
        bail!("dataset kind '{}' is already registered", kind.kind());
    }
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).push(kind);
    Ok(())
}

/// Every dataset: the built-in ones, then the registered ones.
pub fn all() -> Vec<&'static dyn DatasetKind> {
    let extra = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    BUILT_IN.iter().copied().chain(extra.iter().copied()).collect()
}

/// The dataset of a `kind` or one of its aliases.
pub fn find(name: &str) -> Option<&'static dyn DatasetKind> {
    all().into_iter().find(|k| k.kind() == name || k.aliases().contains(&name))
}

/// An unknown `kind`, naming the known ones.
fn unknown(name: &str) -> String {
    let known: Vec<&str> = all().iter().map(|k| k.kind()).collect();
    format!("unknown dataset kind '{name}' (expected one of {})", known.join(", "))
}

/// `fields` read as the serde struct `P` and written back: its checks, defaults and field order.
pub fn typed_fields<P: Serialize + DeserializeOwned>(fields: toml::Table) -> Result<toml::Table, String> {
    let p: P = toml::Value::Table(fields).try_into().map_err(|e: toml::de::Error| e.message().to_string())?;
    match toml::Value::try_from(p) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Err("not a table".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The table of a kind's serde struct of fields (what [`DatasetKind::from_options`] returns).
pub fn to_fields<P: Serialize>(fields: &P) -> Result<toml::Table> {
    match toml::Value::try_from(fields)? {
        toml::Value::Table(t) => Ok(t),
        other => bail!("dataset fields are not a table: {other}"),
    }
}

/// A dataset as a run names it: its kind and its fields (normalised by the kind).
#[derive(Clone)]
pub struct DatasetSpec {
    kind: &'static dyn DatasetKind,
    fields: toml::Table,
}

impl DatasetSpec {
    /// The dataset `kind` with `fields` (checked and completed by the kind).
    pub fn new(kind: &str, fields: toml::Table) -> Result<Self, String> {
        let k = find(kind).ok_or_else(|| unknown(kind))?;
        let fields = k.normalise(fields).map_err(|e| format!("dataset kind '{}': {e}", k.kind()))?;
        Ok(DatasetSpec { kind: k, fields })
    }

    /// A spec of a kind from its serde struct of fields.
    pub fn of<P: Serialize>(kind: &'static dyn DatasetKind, fields: &P) -> Self {
        let fields = to_fields(fields).unwrap_or_else(|e| panic!("dataset kind '{}': {e}", kind.kind()));
        DatasetSpec::new(kind.kind(), fields).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn kind(&self) -> &'static dyn DatasetKind {
        self.kind
    }

    /// Whether this is the dataset `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.kind() == kind
    }

    /// The fields as the kind's serde struct (normalised at construction, so they parse).
    pub fn fields<P: DeserializeOwned>(&self) -> P {
        toml::Value::Table(self.fields.clone())
            .try_into()
            .unwrap_or_else(|e| panic!("dataset kind '{}': fields checked at construction: {e}", self.kind.kind()))
    }

    /// The path in `field` (one of the kind's [`Location`]s).
    pub fn path(&self, field: &str) -> Option<PathBuf> {
        self.fields.get(field).and_then(|v| v.as_str()).map(PathBuf::from)
    }

    /// Sets the path in `field`.
    pub fn set_path(&mut self, field: &str, path: &Path) {
        self.fields.insert(field.to_string(), toml::Value::String(path.to_string_lossy().into_owned()));
    }

    /// Every path of the spec, with its location.
    pub fn locations(&self) -> Vec<(Location, PathBuf)> {
        self.kind.locations().iter().filter_map(|l| self.path(l.field).map(|p| (*l, p))).collect()
    }

    /// Replaces every path of the spec by `f(path)`.
    pub fn map_paths(&mut self, mut f: impl FnMut(&Path) -> PathBuf) {
        for (l, p) in self.locations() {
            self.set_path(l.field, &f(&p));
        }
    }

    pub fn load(&self, opts: &LoadOptions) -> Result<Dataset> {
        self.kind.load(self, opts)
    }
    pub fn score_scale(&self) -> String {
        self.kind.score_scale(self)
    }
    pub fn training_images(&self) -> String {
        self.kind.training_images(self)
    }
    pub fn label(&self) -> String {
        self.kind.label(self)
    }
}

impl PartialEq for DatasetSpec {
    fn eq(&self, other: &Self) -> bool {
        self.kind.kind() == other.kind.kind() && self.fields == other.fields
    }
}

impl fmt::Debug for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatasetSpec").field("kind", &self.kind.kind()).field("fields", &self.fields).finish()
    }
}

/// `kind` first, then the fields in the kind's order.
impl Serialize for DatasetSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.fields.len() + 1))?;
        m.serialize_entry("kind", self.kind.kind())?;
        for (k, v) in &self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for DatasetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = toml::Table::deserialize(d)?;
        let kind = match fields.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(other) => return Err(serde::de::Error::custom(format!("dataset kind: expected a string, found {other}"))),
            None => return Err(serde::de::Error::missing_field("kind")),
        };
        DatasetSpec::new(&kind, fields).map_err(serde::de::Error::custom)
    }
}

/// The datasets' names for `--help`: `[possible values: ...]`.
pub fn kind_names() -> Vec<&'static str> {
    all().iter().map(|k| k.kind()).collect()
}
