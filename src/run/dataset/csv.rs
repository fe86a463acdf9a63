//! Any CSV `image,mos[,mos_std][,reference,distortion,level]` with an image root; the columns of
//! the image names and the MOS can be named. Its MOS keep the labels' own scale and direction.

use std::path::PathBuf;

use anyhow::Result;
use normiqa_core::data::{self, Dataset, LoadOptions};
use serde::{Deserialize, Serialize};

use super::{to_fields, typed_fields, DatasetKind, DatasetSpec, Location, Options};

pub struct Csv;

#[derive(Serialize, Deserialize)]
struct Fields {
    csv: PathBuf,
    images: PathBuf,
    #[serde(default = "default_image_col")]
    image_column: String,
    #[serde(default = "default_mos_col")]
    mos_column: String,
}

fn default_image_col() -> String {
    "image".into()
}
fn default_mos_col() -> String {
    "mos".into()
}

/// The labels `csv` (columns `image`, `mos`) of the images under `images`.
pub fn spec(csv: PathBuf, images: PathBuf) -> DatasetSpec {
    with_columns(csv, images, &default_image_col(), &default_mos_col())
}

/// [`spec`] with the columns of the image names and the MOS named.
pub fn with_columns(csv: PathBuf, images: PathBuf, image_column: &str, mos_column: &str) -> DatasetSpec {
    let (image_column, mos_column) = (image_column.to_string(), mos_column.to_string());
    DatasetSpec::of(&Csv, &Fields { csv, images, image_column, mos_column })
}

/// The MOS column of a CSV dataset's spec.
pub fn mos_column(spec: &DatasetSpec) -> String {
    spec.fields::<Fields>().mos_column
}

impl DatasetKind for Csv {
    fn kind(&self) -> &'static str {
        "csv"
    }
    fn name(&self) -> &'static str {
        "csv"
    }
    fn described(&self) -> String {
        "a CSV dataset".into()
    }
    fn normalise(&self, fields: toml::Table) -> Result<toml::Table, String> {
        typed_fields::<Fields>(fields)
    }
    fn locations(&self) -> &'static [Location] {
        &[
            Location { field: "csv", option: "labels", folder: false },
            Location { field: "images", option: "images", folder: true },
        ]
    }
    fn from_options(&self, o: &Options) -> Result<toml::Table> {
        let (csv, images) = (o.need(self, "labels")?, o.need(self, "images")?);
        to_fields(&Fields { csv, images, image_column: o.image_column.to_string(), mos_column: o.mos_column.to_string() })
    }
    fn load(&self, spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
        let f = spec.fields::<Fields>();
        let cols = data::csv::CsvColumns { image: f.image_column, mos: f.mos_column, ..Default::default() };
        Ok(data::csv::load(&f.csv, &f.images, &cols, opts)?)
    }
    fn score_scale(&self, spec: &DatasetSpec) -> String {
        let f = spec.fields::<Fields>();
        format!("the scale of column '{}' of {} (the training labels), same direction", f.mos_column, f.csv.display())
    }
    fn training_images(&self, spec: &DatasetSpec) -> String {
        format!("the images of {}", spec.fields::<Fields>().csv.display())
    }
    fn label(&self, spec: &DatasetSpec) -> String {
        match spec.fields::<Fields>().csv.file_name() {
            Some(f) => format!("the labels of {}", f.to_string_lossy()),
            None => "a CSV dataset".into(),
        }
    }
}
