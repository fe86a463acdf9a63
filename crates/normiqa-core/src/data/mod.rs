//! Datasets: loaders turn a dataset on disk into a [`Dataset`] (a list of [`Sample`]s); [`split`]
//! picks train/val/test indices; [`decode`] decodes and resizes every image once, in parallel.
//!
//! Flow: `clive::load` / `csv::load` / ... → [`Dataset`] → [`split::Split`] → `decode::decode_all`
//! → u8 RGB images kept in memory → (main crate) batches of normalised tensors.

use std::path::PathBuf;

/// One rated image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Name as the dataset lists it (e.g. `100.webp`, `i03_08_4.bmp`).
    pub name: String,
    /// Full path of the image file.
    pub path: PathBuf,
    /// Mean opinion score (or DMOS, as the dataset gives it; see [`Dataset::higher_is_better`]).
    pub mos: f64,
    /// Standard deviation of the opinion scores, when the dataset has it.
    pub mos_std: Option<f64>,
    /// Reference (pristine) image this one was made from, for synthetic datasets.
    pub reference: Option<String>,
    /// Distortion type name, for synthetic datasets.
    pub distortion: Option<String>,
    /// Distortion level (1 = mildest), for synthetic datasets.
    pub level: Option<u32>,
}

/// A loaded dataset: its samples in the dataset's own order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    /// Short name, e.g. `CLIVE`, `KonIQ-10k`, `csv:my.csv`.
    pub name: String,
    pub samples: Vec<Sample>,
    /// False for DMOS-style labels (KADID-10k's dmos is higher-is-better too; TID2013 MOS as well).
    pub higher_is_better: bool,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    pub fn mos(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.mos).collect()
    }
    /// Image paths in sample order (e.g. for [`decode::decode_all`]).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.samples.iter().map(|s| s.path.clone()).collect()
    }
}

mod bmp;
pub mod clive;
pub mod csv;
pub mod decode;
pub mod error;
mod jpeg;
pub mod kadid;
pub mod koniq;
pub mod mat;
mod names;
mod png_chunks;
pub mod rows;
pub mod split;
pub mod tid2013;

pub use error::{DataError, Result};
pub use rows::LoadOptions;
pub use split::{Ratios, Split};
