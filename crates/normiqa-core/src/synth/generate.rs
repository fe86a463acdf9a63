//! KADID-style dataset generation: every reference x distortion x level, written as
//! `out_dir/images/<refstem>_<dd>_<l>.<ext>` (dd = KADID type id, two digits), with
//! `out_dir/labels.csv` (`image,reference,distortion,level,score`) and copies of the
//! references in `out_dir/references/<refstem>.png`.

use super::{apply, embedded_references, Distortion, SynthError};
use image::{ImageFormat, RgbImage};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Distortion types (default: all 25).
    pub distortions: Vec<Distortion>,
    /// Levels, each in 1..=5 (default: 1..=5).
    pub levels: Vec<u8>,
    /// Base seed; each (reference, type) pair gets its own seed derived from it.
    pub seed: u64,
    /// Output format of the distorted images (default PNG; use a lossless one for IQA labels).
    pub format: ImageFormat,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            distortions: Distortion::ALL.to_vec(),
            levels: vec![1, 2, 3, 4, 5],
            seed: 0,
            format: ImageFormat::Png,
        }
    }
}

/// One generated image (one row of `labels.csv`).
#[derive(Clone, Debug, PartialEq)]
pub struct SynthRecord {
    /// Path of the distorted image relative to `out_dir`, e.g. `images/kodim01_09_3.png`.
    pub image: String,
    /// Path of the reference copy relative to `out_dir`, e.g. `references/kodim01.png`.
    pub reference: String,
    pub distortion: Distortion,
    pub level: u8,
    /// `score(reference, distorted)` from the caller's metric.
    pub score: f64,
    /// The distorted image is pixel-identical to its reference (some distortions do nothing
    /// at low levels on some images, e.g. a quantization whose steps the image does not cross):
    /// its score is that of no distortion.
    pub identical: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> SynthError {
    SynthError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn img_err(path: &Path, source: image::ImageError) -> SynthError {
    SynthError::Image {
        path: path.display().to_string(),
        source,
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The seed used for reference `stem` and type `d` (the same for all levels of that pair, so
/// e.g. the patches of a lower level are a prefix of those of a higher level).
pub fn image_seed(base: u64, stem: &str, d: Distortion) -> u64 {
    splitmix64(base ^ splitmix64(fnv1a(stem)) ^ ((d.id() as u64) << 56))
}

/// KADID-like file name of a distorted image: `<refstem>_<dd>_<l>.<ext>`.
pub fn image_name(stem: &str, d: Distortion, level: u8, format: ImageFormat) -> String {
    let ext = format.extensions_str().first().copied().unwrap_or("png");
    format!("{stem}_{:02}_{level}.{ext}", d.id())
}

/// Write atomically (temp file + rename), so an interrupted run never leaves a partial image.
fn save_atomic(img: &RgbImage, path: &Path, format: ImageFormat) -> Result<(), SynthError> {
    let tmp = path.with_extension(format!(
        "tmp{}.{}",
        std::process::id(),
        format.extensions_str().first().copied().unwrap_or("img")
    ));
    img.save_with_format(&tmp, format)
        .map_err(|e| img_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Generate the dataset. References are decoded (any format `image` reads) and copied as
/// PNG to `out_dir/references/`; their file stems must be unique. Images are produced in
/// parallel (rayon). Resumable: an image that already exists with the reference's size is
/// not regenerated (it is re-read to compute its score). `score` receives
/// `(reference, distorted)`; it must be `Sync` as it is called from several threads.
/// Returns the records in (reference, distortion, level) order, as written to `labels.csv`.
pub fn generate(
    references: &[PathBuf],
    out_dir: &Path,
    opts: &GenerateOptions,
    score: &(dyn Fn(&RgbImage, &RgbImage) -> f64 + Sync),
) -> Result<Vec<SynthRecord>, SynthError> {
    if let Some(&l) = opts.levels.iter().find(|l| !(1..=5).contains(*l)) {
        let d = opts
            .distortions
            .first()
            .map_or("any distortion", |d| d.name());
        return Err(SynthError::InvalidLevel {
            distortion: d,
            level: l,
        });
    }
    let mut stems = std::collections::HashSet::new();
    for r in references {
        let stem = r.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem.is_empty() || !stems.insert(stem.to_string()) {
            return Err(SynthError::InvalidOption(format!(
                "reference file stems must be unique and non-empty: {}",
                r.display()
            )));
        }
    }
    let img_dir = out_dir.join("images");
    let ref_dir = out_dir.join("references");
    std::fs::create_dir_all(&img_dir).map_err(|e| io_err(&img_dir, e))?;
    std::fs::create_dir_all(&ref_dir).map_err(|e| io_err(&ref_dir, e))?;

    // Load references and write their PNG copies.
    let refs: Vec<(String, RgbImage)> = references
        .par_iter()
        .map(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap().to_string();
            // as every image normiqa reads: truncated files and images over the pixel limit
            // (PIL's default) are refused before anything large is allocated
            let img = crate::data::decode::decode_one(p, &[], &Default::default())?;
            let copy = ref_dir.join(format!("{stem}.png"));
            let up_to_date =
                image::image_dimensions(&copy).map_or(false, |d| d == img.dimensions());
            if !up_to_date {
                save_atomic(&img, &copy, ImageFormat::Png)?;
            }
            Ok((stem, img))
        })
        .collect::<Result<_, SynthError>>()?;

    let jobs: Vec<(usize, Distortion, u8)> = (0..refs.len())
        .flat_map(|r| {
            opts.distortions
                .iter()
                .flat_map(move |&d| opts.levels.iter().map(move |&l| (r, d, l)))
        })
        .collect();

    let records: Vec<SynthRecord> = jobs
        .par_iter()
        .map(|&(r, d, level)| {
            let (stem, reference) = &refs[r];
            let name = image_name(stem, d, level, opts.format);
            let path = img_dir.join(&name);
            let existing = match image::image_dimensions(&path) {
                Ok(dims) if dims == reference.dimensions() => image::open(&path)
                    .ok()
                    .map(|i| i.to_rgb8())
                    .filter(|i| i.dimensions() == dims),
                _ => None,
            };
            let distorted = match existing {
                Some(img) => img,
                None => {
                    let img = apply(d, reference, level, image_seed(opts.seed, stem, d))?;
                    save_atomic(&img, &path, opts.format)?;
                    img
                }
            };
            Ok(SynthRecord {
                image: format!("images/{name}"),
                reference: format!("references/{stem}.png"),
                distortion: d,
                level,
                score: score(reference, &distorted),
                identical: distorted == *reference,
            })
        })
        .collect::<Result<_, SynthError>>()?;

    let csv_path = out_dir.join("labels.csv");
    let tmp = out_dir.join("labels.csv.tmp");
    {
        let mut w = csv::Writer::from_path(&tmp)?;
        w.write_record(["image", "reference", "distortion", "level", "score"])?;
        for r in &records {
            w.write_record([
                r.image.as_str(),
                r.reference.as_str(),
                r.distortion.name(),
                &r.level.to_string(),
                &r.score.to_string(),
            ])?;
        }
        w.flush().map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, &csv_path).map_err(|e| io_err(&csv_path, e))?;
    Ok(records)
}

/// Write the [embedded references](super::embedded_references) as PNGs into `dir` and return
/// their paths, ready to pass to [`generate`].
pub fn write_embedded_references(dir: &Path) -> Result<Vec<PathBuf>, SynthError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    embedded_references()
        .into_iter()
        .map(|(name, img)| {
            let p = dir.join(format!("{name}.png"));
            img.save_with_format(&p, ImageFormat::Png)
                .map_err(|e| img_err(&p, e))?;
            Ok(p)
        })
        .collect()
}
