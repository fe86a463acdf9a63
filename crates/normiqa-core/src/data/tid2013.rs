//! TID2013: 25 references × 24 distortion types × 5 levels = 3,000 images.
//! Layout of the release: `mos_with_names.txt` (lines `MOS name`, e.g. `5.51429 i01_01_1.bmp`),
//! optional `mos_std.txt` (one number per line, same order) and `distorted_images/`.
//! `i03_08_4.bmp` (or `I03_08_4.BMP`) is reference `i03`, distortion 08 ([`DISTORTIONS`]`[7]`),
//! level 4. MOS is in [0, 9], higher is better.

use std::path::Path;

use super::error::{io_err, DataError, Result};
use super::names::{image_dir, Folder};
use super::rows::{LoadOptions, Place, Rows};
use super::{Dataset, Sample};

/// The 24 distortion types in id order (id 1 first), as `Sample::distortion` holds them.
pub const DISTORTIONS: [&str; 24] = [
    "additive_gaussian_noise",
    "additive_noise_in_color_components",
    "spatially_correlated_noise",
    "masked_noise",
    "high_frequency_noise",
    "impulse_noise",
    "quantization_noise",
    "gaussian_blur",
    "image_denoising",
    "jpeg_compression",
    "jpeg2000_compression",
    "jpeg_transmission_errors",
    "jpeg2000_transmission_errors",
    "non_eccentricity_pattern_noise",
    "local_block_wise_distortions",
    "mean_shift",
    "contrast_change",
    "change_of_color_saturation",
    "multiplicative_gaussian_noise",
    "comfort_noise",
    "lossy_compression_of_noisy_images",
    "image_color_quantization_with_dither",
    "chromatic_aberrations",
    "sparse_sampling_and_reconstruction",
];

/// The official (TID2013 readme) names of [`DISTORTIONS`], same order.
pub const DISTORTION_NAMES: [&str; 24] = [
    "Additive Gaussian noise",
    "Additive noise in color components is more intensive than additive noise in the luminance component",
    "Spatially correlated noise",
    "Masked noise",
    "High frequency noise",
    "Impulse noise",
    "Quantization noise",
    "Gaussian blur",
    "Image denoising",
    "JPEG compression",
    "JPEG2000 compression",
    "JPEG transmission errors",
    "JPEG2000 transmission errors",
    "Non eccentricity pattern noise",
    "Local block-wise distortions of different intensity",
    "Mean shift (intensity shift)",
    "Contrast change",
    "Change of color saturation",
    "Multiplicative Gaussian noise",
    "Comfort noise",
    "Lossy compression of noisy images",
    "Image color quantization with dither",
    "Chromatic aberrations",
    "Sparse sampling and reconstruction",
];

/// Splits `i03_08_4.bmp` into (reference `i03` (lower-case), distortion id 8, level 4).
pub fn parse_name(name: &str) -> Option<(String, usize, u32)> {
    super::names::parse_ref_type_level(name, DISTORTIONS.len())
        .map(|(r, d, l)| (r.to_ascii_lowercase(), d, l))
}

/// Loads TID2013 from its root (the folder holding `mos_with_names.txt`). Image names leaving
/// the image folder and repeated images are refused unless `opts` allows them.
pub fn load(root: impl AsRef<Path>, opts: &LoadOptions) -> Result<Dataset> {
    let root = root.as_ref();
    let path = root.join("mos_with_names.txt");
    if !path.is_file() {
        return Err(DataError::MissingFile {
            path,
            what: "TID2013 labels (lines `MOS name`)".into(),
        });
    }
    let (mut samples, entries, listed) = read_labels(root, &path, opts)?;
    let std_path = root.join("mos_std.txt");
    if std_path.is_file() {
        let stds = read_stds(&std_path)?;
        if stds.len() != listed {
            return Err(DataError::Inconsistent {
                path: std_path,
                msg: format!(
                    "{} values but mos_with_names.txt has {listed} images",
                    stds.len()
                ),
            });
        }
        for (s, &e) in samples.iter_mut().zip(&entries) {
            s.mos_std = Some(stds[e]);
        }
    }
    Ok(Dataset {
        name: "TID2013".into(),
        samples,
        higher_is_better: true,
    })
}

/// The samples of `mos_with_names.txt`, the entry number (0-based, among the listed images) of
/// each (dropped duplicates leave gaps), and the number of images listed.
fn read_labels(
    root: &Path,
    path: &Path,
    opts: &LoadOptions,
) -> Result<(Vec<Sample>, Vec<usize>, usize)> {
    let text = read_text(path)?;
    let images = image_dir(root, &["distorted_images", "Distorted_images"]);
    let folder = Folder::new(&images);
    let bad = |line: usize, msg: String| DataError::BadLine {
        path: path.to_path_buf(),
        line: line as u64 + 1,
        msg,
    };
    let mut rows = Rows::new(path, opts);
    let (mut entries, mut listed) = (Vec::new(), 0);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut tok = line.split_whitespace();
        let (m, name) = match (tok.next(), tok.next(), tok.next()) {
            (Some(m), Some(n), None) => (m, n),
            _ => return Err(bad(i, format!("expected `MOS name`, got '{line}'"))),
        };
        let mos: f64 = m
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| bad(i, format!("MOS '{m}' is not a number")))?;
        let (reference, d, level) = parse_name(name).ok_or_else(|| {
            bad(
                i,
                format!("image name '{name}' is not like i03_08_4.bmp (distortion 01..24)"),
            )
        })?;
        let at = Place::Line(i as u64 + 1);
        rows.check_inside(&images, name, at)?;
        let sample = Sample {
            path: folder.path(name),
            name: name.to_string(),
            mos,
            mos_std: None,
            reference: Some(reference),
            distortion: Some(DISTORTIONS[d - 1].to_string()),
            level: Some(level),
        };
        if rows.push(sample, at)? {
            entries.push(listed);
        }
        listed += 1;
    }
    Ok((rows.into_samples(), entries, listed))
}

/// `mos_std.txt`: one number per non-empty line.
fn read_stds(path: &Path) -> Result<Vec<f64>> {
    let text = read_text(path)?;
    let mut stds = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: f64 = line.parse().map_err(|_| DataError::BadLine {
            path: path.to_path_buf(),
            line: i as u64 + 1,
            msg: format!("'{line}' is not a number"),
        })?;
        stds.push(v);
    }
    Ok(stds)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
