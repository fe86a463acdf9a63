//! KADID-10k: 81 references × 25 distortion types × 5 levels = 10,125 images.
//! Layout of the release: `dmos.csv` (`dist_img,ref_img,dmos,var`) and `images/` (the images
//! may also sit next to `dmos.csv`). `I01_01_01.png` is reference `I01`, distortion 01
//! ([`DISTORTIONS`]`[0]`), level 01. Its `dmos` is a 1..5 mean opinion score (higher is better).

use std::path::Path;

use super::csv::Table;
use super::error::{DataError, Result};
use super::names::{image_dir, Folder};
use super::rows::{LoadOptions, Place, Rows};
use super::{Dataset, Sample};

/// The 25 distortion types in id order (id 1 first), as `Sample::distortion` holds them.
pub const DISTORTIONS: [&str; 25] = [
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "color_diffusion",
    "color_shift",
    "color_quantization",
    "color_saturation_1",
    "color_saturation_2",
    "jpeg2000",
    "jpeg",
    "white_noise",
    "white_noise_in_color_component",
    "impulse_noise",
    "multiplicative_noise",
    "denoise",
    "brighten",
    "darken",
    "mean_shift",
    "jitter",
    "non_eccentricity_patch",
    "pixelate",
    "quantization",
    "color_block",
    "high_sharpen",
    "contrast_change",
];

/// The official (KADID-10k paper / readme) names of [`DISTORTIONS`], same order.
pub const DISTORTION_NAMES: [&str; 25] = [
    "Gaussian blur",
    "Lens blur",
    "Motion blur",
    "Color diffusion",
    "Color shift",
    "Color quantization",
    "Color saturation 1 (HSV)",
    "Color saturation 2 (LAB)",
    "JPEG2000",
    "JPEG",
    "White noise",
    "White noise in color component",
    "Impulse noise",
    "Multiplicative noise",
    "Denoise",
    "Brighten",
    "Darken",
    "Mean shift",
    "Jitter",
    "Non-eccentricity patch",
    "Pixelate",
    "Quantization",
    "Color block",
    "High sharpen",
    "Contrast change",
];

/// Splits `I01_01_01.png` into (reference `I01`, distortion id 1, level 1).
pub fn parse_name(name: &str) -> Option<(String, usize, u32)> {
    super::names::parse_ref_type_level(name, DISTORTIONS.len())
        .map(|(r, d, l)| (r.to_string(), d, l))
}

/// Loads KADID-10k from its root (the folder holding `dmos.csv`). Image names leaving the
/// image folder and repeated images are refused unless `opts` allows them.
pub fn load(root: impl AsRef<Path>, opts: &LoadOptions) -> Result<Dataset> {
    let root = root.as_ref();
    let csv_path = root.join("dmos.csv");
    let t = Table::read(&csv_path)?;
    let c_dist = t.col("dist_img")?;
    let c_ref = t.opt_col("ref_img");
    let c_dmos = t.col("dmos")?;
    let c_var = t.opt_col("var");
    let images = image_dir(root, &["images", "Images"]);
    let folder = Folder::new(&images);
    let mut samples = Rows::new(&csv_path, opts);
    for row in &t.rows {
        let name = t.required_str(row, c_dist)?.to_string();
        let at = Place::Row(row.line);
        samples.check_inside(&images, &name, at)?;
        let (ref_from_name, d, level) = parse_name(&name).ok_or_else(|| DataError::BadValue {
            path: csv_path.clone(),
            row: row.line,
            column: t.headers[c_dist].clone(),
            value: name.clone(),
            msg:
                "expected a name like I01_01_01.png (reference_distortion_level, distortion 01..25)"
                    .into(),
        })?;
        let reference = match c_ref {
            Some(c) if !row.get(c).is_empty() => super::clive::stem(row.get(c)).to_string(),
            _ => ref_from_name,
        };
        let mos = t.f64(row, c_dmos)?;
        let mos_std = match c_var {
            Some(c) if !row.get(c).is_empty() => Some(t.f64(row, c)?.max(0.0).sqrt()),
            _ => None,
        };
        let sample = Sample {
            path: folder.path(&name),
            name,
            mos,
            mos_std,
            reference: Some(reference),
            distortion: Some(DISTORTIONS[d - 1].to_string()),
            level: Some(level),
        };
        samples.push(sample, at)?;
    }
    Ok(Dataset {
        name: "KADID-10k".into(),
        samples: samples.into_samples(),
        higher_is_better: true,
    })
}
