//! LIVE In the Wild Image Quality Challenge (CLIVE / LIVEC), 1,162 authentically distorted
//! images with MOS in about [3, 93].
//!
//! Two layouts are read (see [`Layout`]); [`load`] detects which. Sample names are the file
//! names each layout lists (`100.webp` in the normiqa layout, `100.bmp` in the official one);
//! images are matched across layouts by [`stem`] (`100`), which is how [`split`] looks them up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::csv::{CsvColumns, Table};
use super::error::{DataError, Result};
use super::rows::{LoadOptions, Place, Rows};
use super::split::{Ratios, Split};
use super::{Dataset, Sample};

/// On-disk layouts of CLIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `mos.csv` (`image,mos,mos_std`) + `images/` (+ `splits.csv`): the shared copy.
    Normiqa,
    /// The release: `Data/AllImages_release.mat`, `Data/AllMOS_release.mat`,
    /// `Data/AllStdDev_release.mat` (the `.mat`s may also be in the root or in `official/`)
    /// + `Images/` (or `images/`).
    Official,
}

const MAT_IMAGES: &str = "AllImages_release.mat";
const MAT_MOS: &str = "AllMOS_release.mat";
const MAT_STD: &str = "AllStdDev_release.mat";

/// The name's file stem: `100.bmp` → `100`, `sub/1000.JPG` → `1000`.
pub fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    }
}

/// Which layout `root` holds; the normiqa layout wins when both are present.
pub fn detect_layout(root: impl AsRef<Path>) -> Result<Layout> {
    let root = root.as_ref();
    if root.join("mos.csv").is_file() {
        return Ok(Layout::Normiqa);
    }
    if mat_dir(root).is_some() {
        return Ok(Layout::Official);
    }
    Err(DataError::Layout {
        root: root.to_path_buf(),
        msg: format!(
            "not a CLIVE folder: expected mos.csv + images/ (normiqa layout) or {MAT_IMAGES}, \
             {MAT_MOS}, {MAT_STD} in Data/, official/ or the folder itself + Images/ (official release)"
        ),
    })
}

/// Loads CLIVE from `root`, detecting the layout. Image names leaving the image folder and
/// repeated images are refused unless `opts` allows them.
pub fn load(root: impl AsRef<Path>, opts: &LoadOptions) -> Result<Dataset> {
    let root = root.as_ref();
    load_layout(root, detect_layout(root)?, opts)
}

/// Loads CLIVE from `root` in the given layout.
pub fn load_layout(root: impl AsRef<Path>, layout: Layout, opts: &LoadOptions) -> Result<Dataset> {
    let root = root.as_ref();
    let mut ds = match layout {
        Layout::Normiqa => super::csv::load(
            root.join("mos.csv"),
            root.join("images"),
            &CsvColumns::default(),
            opts,
        )?,
        Layout::Official => load_official(root, opts)?,
    };
    ds.name = "CLIVE".into();
    ds.higher_is_better = true;
    Ok(ds)
}

fn mat_dir(root: &Path) -> Option<PathBuf> {
    ["Data", "data", "official", ""]
        .iter()
        .map(|d| {
            if d.is_empty() {
                root.to_path_buf()
            } else {
                root.join(d)
            }
        })
        .find(|d| d.join(MAT_IMAGES).is_file())
}

/// True for the release's 7 training images `t1`..`t7` (not part of the 1,162 rated images).
fn is_training_image(name: &str) -> bool {
    let s = stem(name);
    s.len() > 1
        && (s.starts_with('t') || s.starts_with('T'))
        && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn load_official(root: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let dir = mat_dir(root).ok_or_else(|| DataError::MissingFile {
        path: root.join("Data").join(MAT_IMAGES),
        what: "CLIVE official release (also looked in official/ and the root)".into(),
    })?;
    let images_dir = ["Images", "images"]
        .iter()
        .map(|d| root.join(d))
        .find(|d| d.is_dir())
        .ok_or_else(|| DataError::MissingFile {
            path: root.join("Images"),
            what: "CLIVE image folder (Images/ or images/)".into(),
        })?;
    let names_path = dir.join(MAT_IMAGES);
    let names = super::mat::read_var(&names_path, "AllImages_release")?
        .as_strings()
        .ok_or_else(|| DataError::Mat {
            path: names_path.clone(),
            msg: "expected a cell array of strings".into(),
        })?;
    let numbers = |file: &str, var: &str| -> Result<Vec<f64>> {
        let p = dir.join(file);
        if !p.is_file() {
            return Err(DataError::MissingFile {
                path: p,
                what: "CLIVE official release".into(),
            });
        }
        let v = super::mat::read_var(&p, var)?;
        let data = v
            .as_f64s()
            .ok_or_else(|| DataError::Mat {
                path: p.clone(),
                msg: format!("`{var}` is not a numeric array"),
            })?
            .to_vec();
        if data.len() != names.len() {
            return Err(DataError::Inconsistent {
                path: p,
                msg: format!(
                    "{} values but {} has {} image names",
                    data.len(),
                    MAT_IMAGES,
                    names.len()
                ),
            });
        }
        Ok(data)
    };
    let mos = numbers(MAT_MOS, "AllMOS_release")?;
    let std = numbers(MAT_STD, "AllStdDev_release")?;
    let mut rows = Rows::new(&names_path, opts);
    for (i, ((name, mos), std)) in names.into_iter().zip(mos).zip(std).enumerate() {
        if is_training_image(&name) {
            continue;
        }
        let at = Place::Entry(i as u64 + 1);
        rows.check_inside(&images_dir, &name, at)?;
        let sample = Sample {
            path: resolve_image(&images_dir, &name),
            name,
            mos,
            mos_std: Some(std),
            reference: None,
            distortion: None,
            level: None,
        };
        rows.push(sample, at)?;
    }
    Ok(Dataset {
        name: "CLIVE".into(),
        samples: rows.into_samples(),
        higher_is_better: true,
    })
}

/// `dir/name`, or when that is absent `dir/<stem>.webp` / `.png` (lossless re-encodings of
/// the release's BMPs); the listed path when none exists (decoding then reports it).
fn resolve_image(dir: &Path, name: &str) -> PathBuf {
    let listed = dir.join(name);
    if listed.is_file() {
        return listed;
    }
    let s = stem(name);
    ["webp", "png", "WEBP", "PNG", "bmp", "BMP"]
        .iter()
        .map(|ext| dir.join(format!("{s}.{ext}")))
        .find(|p| p.is_file())
        .unwrap_or(listed)
}

/// The reference LinearityIQA split `exp_id` of CLIVE, from `root/splits.csv`
/// (`image,order_0,...`): images sorted by `order_<exp_id>` are cut by `ratios`
/// (see [`Split::from_permutation`]). Images are matched by [`stem`], so the splits file of
/// either layout serves both. Every image of `dataset` must be listed, and nothing else.
pub fn split(
    root: impl AsRef<Path>,
    dataset: &Dataset,
    exp_id: usize,
    ratios: Ratios,
) -> Result<Split> {
    split_from(&root.as_ref().join("splits.csv"), dataset, exp_id, ratios)
}

/// How many random permutations the reference's `data/CLIVEinfo.mat` holds (its `index`
/// is 1162 x 1000); the reference takes column `exp_id % 1000`.
pub const REFERENCE_PERMUTATIONS: usize = 1000;

/// The column of split `exp_id` in a splits file whose permutations are `order_0 ..
/// order_{k-1}`: `exp_id` itself, or `exp_id % k` when the file holds all of the reference's
/// permutations (as the reference's `index[:, exp_id % index.shape[1]]`). A file with fewer
/// permutations refuses ids beyond them.
pub fn permutation_column(path: &Path, k: usize, exp_id: usize) -> Result<usize> {
    if exp_id < k || k == 0 {
        return Ok(exp_id);
    }
    if k == REFERENCE_PERMUTATIONS {
        return Ok(exp_id % k);
    }
    Err(DataError::Inconsistent {
        path: path.to_path_buf(),
        msg: format!(
            "exp_id {exp_id} (column order_{exp_id}): this file holds permutations order_0..order_{} only; the reference's data/CLIVEinfo.mat (github.com/lidq92/LinearityIQA) holds {REFERENCE_PERMUTATIONS}: `python reference/clive_splits.py CLIVEinfo.mat clive-splits-1000.csv` writes them in this format, then pass --splits clive-splits-1000.csv",
            k.saturating_sub(1)
        ),
    })
}

/// [`split`] from the splits file `path` (`image,order_0,...`; any number of permutations).
pub fn split_from(path: &Path, dataset: &Dataset, exp_id: usize, ratios: Ratios) -> Result<Split> {
    let path = path.to_path_buf();
    if !path.is_file() {
        return Err(DataError::MissingFile {
            path,
            what: format!(
                "CLIVE splits (columns image,order_0..order_9) needed for exp_id {exp_id}"
            ),
        });
    }
    let t = Table::read(&path)?;
    let c_img = t.col("image")?;
    let k = (0..).take_while(|i| t.opt_col(&format!("order_{i}")).is_some()).count();
    let column = permutation_column(&path, k, exp_id)?;
    let c_ord = t.col(&format!("order_{column}"))?;
    let mut order: HashMap<String, (f64, u64)> = HashMap::with_capacity(t.rows.len());
    for row in &t.rows {
        let name = t.required_str(row, c_img)?;
        let o = t.f64(row, c_ord)?;
        if order
            .insert(stem(name).to_string(), (o, row.line))
            .is_some()
        {
            return Err(DataError::Inconsistent {
                path: path.clone(),
                msg: format!("row {}: image {name} is listed twice", row.line),
            });
        }
    }
    let mut keyed = Vec::with_capacity(dataset.len());
    let mut missing = Vec::new();
    for (i, s) in dataset.samples.iter().enumerate() {
        match order.remove(stem(&s.name)) {
            Some((o, _)) => keyed.push((o, i)),
            None => missing.push(s.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(DataError::NotListed {
            path,
            names: missing,
        });
    }
    if !order.is_empty() {
        let mut extra: Vec<_> = order.into_iter().map(|(k, (_, line))| (line, k)).collect();
        extra.sort();
        return Err(DataError::Inconsistent {
            path,
            msg: format!(
                "{} image(s) listed are not in the dataset (first: {} at row {})",
                extra.len(),
                extra[0].1,
                extra[0].0
            ),
        });
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let perm: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    Split::from_permutation(&perm, ratios)
}
