//! KonIQ-10k: the official labels CSV (`koniq10k_distributions_sets.csv`) and an image folder;
//! its own split is the official one.

use std::path::PathBuf;

use anyhow::Result;
use normiqa_core::data::split::Split;
use normiqa_core::data::{self, Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{to_fields, typed_fields, DatasetKind, DatasetSpec, Location, Options, SplitRequest};

pub struct Koniq;

#[derive(Serialize, Deserialize)]
struct Fields {
    labels: PathBuf,
    images: PathBuf,
}

/// KonIQ-10k with its labels file and image folder.
pub fn spec(labels: PathBuf, images: PathBuf) -> DatasetSpec {
    DatasetSpec::of(&Koniq, &Fields { labels, images })
}

impl DatasetKind for Koniq {
    fn kind(&self) -> &'static str {
        "koniq"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["KonIQ-10k"]
    }
    fn name(&self) -> &'static str {
        "KonIQ-10k"
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[
            Location { field: "labels", option: "labels", folder: false },
            Location { field: "images", option: "images", folder: true },
        ]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        to_fields(&Fields { labels: o.need(self, "labels")?, images: o.need(self, "images")? })
    }
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
        let f = spec.fields::<Fields>();
        Ok(data::koniq::load(f.labels, f.images, opts)?)
    }
    fn own_split(&self, spec: &DatasetSpec, r: &SplitRequest, _: &Dataset) -> Option<Result<Split>> {
        let f = spec.fields::<Fields>();
        Some(data::koniq::load_with_split(f.labels, f.images, r.loading).map(|(_, split)| split).map_err(Into::into))
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        "KonIQ-10k MOS scale, 1-5, higher is better".into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        "1024x768 photos (KonIQ-10k)".into()
    }
}
