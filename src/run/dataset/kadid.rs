//! KADID-10k in its official layout (`dmos.csv`); its own split is random by reference image (no
//! content in two sets), seeded by `seed + exp_id`.

use std::path::PathBuf;

use anyhow::Result;
use normiqa_core::data::split::Split;
use normiqa_core::data::{self, Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{typed_fields, DatasetKind, DatasetSpec, Location, Options, SplitRequest};

pub struct Kadid;

#[derive(Serialize, Deserialize)]
struct Fields {
    root: PathBuf,
}

/// KADID-10k at `root`.
pub fn spec(root: PathBuf) -> DatasetSpec {
    DatasetSpec::of(&Kadid, &Fields { root })
}

impl DatasetKind for Kadid {
    fn kind(&self) -> &'static str {
        "kadid"
    }
    fn name(&self) -> &'static str {
        "KADID-10k"
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
        Ok(data::kadid::load(spec.fields::<Fields>().root, opts)?)
    }
    fn own_split(&self, _: &DatasetSpec, r: &SplitRequest, dataset: &Dataset) -> Option<Result<Split>> {
        Some(Split::by_reference(dataset, r.seed, r.ratios).map_err(Into::into))
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        "KADID-10k DMOS scale, 1-5, higher is better".into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        "512x384 images (KADID-10k)".into()
    }
}
