//! KonIQ-10k: 10,073 in-the-wild images; labels in `koniq10k_distributions_sets.csv`
//! (`image_name,c1..c5,c_total,MOS,SD,set`), images under a user-given root (e.g. the
//! `1024x768/` or `512x384/` folder of the release).
//!
//! The official split comes from the `set` column: `training` → train (7,058),
//! `validation` → val (1,000), `test` → test (2,015).

use std::path::Path;

use super::csv::Table;
use super::error::{DataError, Result};
use super::split::Split;
use super::{Dataset, Sample};

/// Loads the labels; sample paths are `image_root/<image_name>`. The `set` column is not needed.
pub fn load(labels_csv: impl AsRef<Path>, image_root: impl AsRef<Path>) -> Result<Dataset> {
    Ok(read(labels_csv.as_ref(), image_root.as_ref(), false)?.0)
}

/// Loads the labels and the official split from the `set` column.
pub fn load_with_split(
    labels_csv: impl AsRef<Path>,
    image_root: impl AsRef<Path>,
) -> Result<(Dataset, Split)> {
    read(labels_csv.as_ref(), image_root.as_ref(), true)
}

fn read(labels_csv: &Path, image_root: &Path, with_split: bool) -> Result<(Dataset, Split)> {
    let t = Table::read(labels_csv)?;
    let c_img = t.col("image_name")?;
    let c_mos = t.col("MOS")?;
    let c_sd = t.opt_col("SD");
    let c_set = if with_split {
        Some(t.col("set")?)
    } else {
        None
    };
    let mut samples = Vec::with_capacity(t.rows.len());
    let mut split = Split::default();
    for (i, row) in t.rows.iter().enumerate() {
        let name = t.required_str(row, c_img)?.to_string();
        let mos = t.f64(row, c_mos)?;
        let mos_std = match c_sd {
            Some(c) if !row.get(c).is_empty() => Some(t.f64(row, c)?),
            _ => None,
        };
        if let Some(c) = c_set {
            match row.get(c).to_ascii_lowercase().as_str() {
                "training" | "train" => split.train.push(i),
                "validation" | "val" => split.val.push(i),
                "test" | "testing" => split.test.push(i),
                v => {
                    return Err(DataError::BadValue {
                        path: labels_csv.to_path_buf(),
                        row: row.line,
                        column: "set".into(),
                        value: v.into(),
                        msg: "expected training, validation or test".into(),
                    })
                }
            }
        }
        samples.push(Sample {
            path: image_root.join(&name),
            name,
            mos,
            mos_std,
            reference: None,
            distortion: None,
            level: None,
        });
    }
    Ok((
        Dataset {
            name: "KonIQ-10k".into(),
            samples,
            higher_is_better: true,
        },
        split,
    ))
}
