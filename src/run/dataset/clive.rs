//! LIVE In the Wild (CLIVE): normiqa's layout (`mos.csv`, `images/`, `splits.csv`) or the
//! official release. Its own split is permutation `exp_id` of the splits file (the reference's);
//! every image that is not 500×500 becomes 500×500, as the reference does.

use std::path::PathBuf;

use anyhow::Result;
use normiqa_core::data::decode::Resize;
use normiqa_core::data::split::Split;
use normiqa_core::data::{self, Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{to_fields, typed_fields, DatasetKind, DatasetSpec, Location, Options, SplitRequest};

pub struct Clive;

#[derive(Serialize, Deserialize)]
struct Fields {
    root: PathBuf,
}

/// A CLIVE dataset at `root`.
pub fn spec(root: PathBuf) -> DatasetSpec {
    DatasetSpec::of(&Clive, &Fields { root })
}

/// The default CLIVE location: `../shared/data/clive` next to the checkout.
pub fn default_root() -> PathBuf {
    crate::locate::find(std::path::Path::new("../shared/data/clive"), |p| p.exists())
        .unwrap_or_else(|| PathBuf::from("../shared/data/clive"))
}

impl DatasetKind for Clive {
    fn kind(&self) -> &'static str {
        "clive"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["CLIVE"]
    }
    fn name(&self) -> &'static str {
        "CLIVE"
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[Location { field: "root", option: "root", folder: true }]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        let root = o.root.map(|p| p.to_path_buf()).unwrap_or_else(default_root);
        to_fields(&Fields { root })
    }
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
        Ok(data::clive::load(spec.fields::<Fields>().root, opts)?)
    }
    fn own_split(&self, spec: &DatasetSpec, r: &SplitRequest, dataset: &Dataset) -> Option<Result<Split>> {
        let root = spec.fields::<Fields>().root;
        let file = r.splits.map_or_else(|| root.join("splits.csv"), |p| p.to_path_buf());
        Some(data::clive::split_from(&file, dataset, r.exp_id, r.ratios).map_err(Into::into))
    }
    fn takes_splits_file(&self) -> bool {
        true
    }
    fn resize(&self) -> Option<Resize> {
        Some(Resize::IfNot { h: 500, w: 500 })
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        "CLIVE MOS scale, about 0-100, higher is better".into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        "500x500 photos (CLIVE)".into()
    }
}
