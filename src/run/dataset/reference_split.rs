//! What the synthetic datasets in their official layouts share (KADID-10k, TID2013): a root
//! folder, rows from `normiqa-core`'s parser, their own split random by reference image (no
//! content in two sets), seeded by `seed + exp_id`. Each dataset's file gives its values.

use std::path::{Path, PathBuf};

use anyhow::Result;
use normiqa_core::data::split::Split;
use normiqa_core::data::{Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{to_fields, typed_fields, DatasetKind, DatasetSpec, Location, Options, SplitRequest};

/// A dataset at a root folder, split by reference image.
pub struct ReferenceSplit {
    pub kind: &'static str,
    pub name: &'static str,
    /// Its rows (the parser of `normiqa-core`).
    pub load: fn(&Path, &LoadOptions) -> normiqa_core::data::Result<Dataset>,
    /// The scale and direction of its MOS.
    pub scale: &'static str,
    /// What its images are.
    pub images: &'static str,
}

#[derive(Serialize, Deserialize)]
struct Fields {
    root: PathBuf,
}

impl ReferenceSplit {
    /// The dataset at `root`.
    pub fn spec(&'static self, root: PathBuf) -> DatasetSpec {
        DatasetSpec::of(self, &Fields { root })
    }
}

impl DatasetKind for ReferenceSplit {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[Location { field: "root", option: "root", folder: true }]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        to_fields(&Fields { root: o.need(self, "root")? })
    }
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
        Ok((self.load)(&spec.fields::<Fields>().root, opts)?)
    }
    fn own_split(&self, _: &DatasetSpec, r: &SplitRequest, dataset: &Dataset) -> Option<Result<Split>> {
        Some(Split::by_reference(dataset, r.seed, r.ratios).map_err(Into::into))
    }
    fn score_scale(&self, _: &DatasetSpec) -> String {
        self.scale.into()
    }
    fn training_images(&self, _: &DatasetSpec) -> String {
        self.images.into()
    }
}
