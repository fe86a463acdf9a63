//! KonIQ-10k: 10,073 in-the-wild images; labels in `koniq10k_distributions_sets.csv`
//! (`image_name,c1..c5,c_total,MOS,SD,set`), images under a user-given root (e.g. the
//! `1024x768/` or `512x384/` folder of the release).
//!
//! The official split comes from the `set` column: `training` → train (7,058),
//! `validation` → val (1,000), `test` → test (2,015).

use std::path::Path;

use super::csv::Table;
use super::error::{DataError, Result};
use super::rows::{LoadOptions, Place, Rows};
use super::split::Split;
use super::{Dataset, Sample};

/// Loads the labels; sample paths are `image_root/<image_name>`. The `set` column is not needed.
/// Paths leaving `image_root` and repeated images are refused unless `opts` allows them.
pub fn load(
    labels_csv: impl AsRef<Path>,
    image_root: impl AsRef<Path>,
    opts: &LoadOptions,
) -> Result<Dataset> {
    Ok(read(labels_csv.as_ref(), image_root.as_ref(), false, opts)?.0)
}

/// Loads the labels and the official split from the `set` column.
pub fn load_with_split(
    labels_csv: impl AsRef<Path>,
    image_root: impl AsRef<Path>,
    opts: &LoadOptions,
) -> Result<(Dataset, Split)> {
    read(labels_csv.as_ref(), image_root.as_ref(), true, opts)
}

fn read(
    labels_csv: &Path,
    image_root: &Path,
    with_split: bool,
    opts: &LoadOptions,
) -> Result<(Dataset, Split)> {
    let t = Table::read(labels_csv)?;
    let c_img = t.col("image_name")?;
    let c_mos = t.col("MOS")?;
    let c_sd = t.opt_col("SD");
    let c_set = if with_split {
        Some(t.col("set")?)
    } else {
        None
    };
    let mut samples = Rows::new(labels_csv, opts);
    let mut split = Split::default();
    for row in &t.rows {
        let name = t.required_str(row, c_img)?.to_string();
        let at = Place::Row(row.line);
        let path = samples.image_path(image_root, &name, at)?;
        let mos = t.f64(row, c_mos)?;
        let mos_std = match c_sd {
            Some(c) if !row.get(c).is_empty() => Some(t.f64(row, c)?),
            _ => None,
        };
        let set = match c_set {
            None => None,
            Some(c) => Some(match row.get(c).to_ascii_lowercase().as_str() {
                "training" | "train" => &mut split.train,
                "validation" | "val" => &mut split.val,
                "test" | "testing" => &mut split.test,
                v => {
                    return Err(DataError::BadValue {
                        path: labels_csv.to_path_buf(),
                        row: row.line,
                        column: "set".into(),
                        value: v.into(),
                        msg: "expected training, validation or test".into(),
                    })
                }
            }),
        };
        let index = samples.len();
        let sample = Sample {
            path,
            name,
            mos,
            mos_std,
            reference: None,
            distortion: None,
            level: None,
        };
        if samples.push(sample, at)? {
            set.into_iter().for_each(|s| s.push(index));
        }
    }
    Ok((
        Dataset {
            name: "KonIQ-10k".into(),
            samples: samples.into_samples(),
            higher_is_better: true,
        },
        split,
    ))
}
