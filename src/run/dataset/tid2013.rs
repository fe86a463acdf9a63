//! TID2013 in its official layout (`mos_with_names.txt`); its own split is random by reference image (no
//! content in two sets), seeded by `seed + exp_id`.

use std::path::PathBuf;

use anyhow::Result;
use normiqa_core::data::split::Split;
use normiqa_core::data::{self, Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{typed_fields, DatasetKind, DatasetSpec, Location, Options, SplitRequest};

pub struct Tid2013;

#[derive(Serialize, Deserialize)]
struct Fields {
    root: PathBuf,
}

/// TID2013 at `root`.
pub fn spec(root: PathBuf) -> DatasetSpec {
    DatasetSpec::of(&Tid2013, &Fields { root })
}

impl DatasetKind for Tid2013 {
    fn kind(&self) -> &'static str {
        "tid2013"
    }
    fn name(&self) -> &'static str {
        "TID2013"
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[Location { field: "root", option: "root", folder: true }]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        Ok(spec(o.need(self, "root")?).fields)
    }
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
        Ok(data::tid2013::load(spec.fields::<Fields>().root, opts)?)
    }
    fn own_split(&self, _: &DatasetSpec, r: &SplitRequest, dataset: &Dataset) -> Option<Result<Split>> {
        Some(Split::by_reference(dataset, r.seed, r.ratios).map_err(Into::into))
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        "TID2013 MOS scale, 0-9, higher is better".into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        "512x384 images (TID2013)".into()
    }
}
