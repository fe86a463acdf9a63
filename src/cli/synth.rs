//! `normiqa synth`: a KADID-style synthetic IQA dataset from pristine references — every
//! reference × distortion type × level through [`normiqa_core::synth::generate`], labelled by a
//! full-reference score, ready for `normiqa train --dataset csv`.
//!
//! Output: `OUT/images/<ref>_<dd>_<l>.png`, `OUT/references/<ref>.png` and `OUT/labels.csv`
//! (`image,reference,distortion,level,score`, image paths relative to `OUT`). Train on it with
//! `normiqa train --dataset csv --labels OUT/labels.csv --images OUT --mos-column score
//! --split by-reference`.
//!
//! ## The label (`--score`)
//! The label is used as a MOS, so it is always **higher-is-better**:
//!
//! | `--score` | label |
//! |---|---|
//! | `psnr` | PSNR in dB (RGB, peak 255; 100 dB cap for identical images) |
//! | `ssim` | SSIM (pyiqa's: YIQ luma, no downsampling; `normiqa fr --ssim-mode`) |
//! | `ms-ssim` | MS-SSIM (luma); needs both sides ≥ 176 px |
//! | `gmsd` | 1 − GMSD (GMSD is a distortion measure, 0 for identical images) |
//! | `fused` | mean of SSIM and 1 − GMSD (both in [0, 1], same orientation) |
//!
//! The default, `fused`, was chosen by measuring each candidate's per-type Spearman correlation with
//! the distortion level (higher level = worse) on the 24 Kodak images (`--fr-report`; table in
//! RESULTS.md, section "Synthetic distortions"). MS-SSIM cannot score images smaller than
//! 176×176 px (five dyadic scales of an 11×11 window), e.g. the six embedded 128×128 references:
//! `--score ms-ssim` then stops with an error before generating anything.
//!
//! `--fr-report` additionally scores every image with all four metrics, writes
//! `OUT/fr_scores.csv` and prints, per distortion type, the SROCC of each metric with the level
//! (pooled over references) — the measurement behind the default.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use image::RgbImage;
use normiqa_core::fr::{self, FrMetric};
use normiqa_core::synth::{self, Distortion, GenerateOptions, SynthRecord};
use rayon::prelude::*;

/// The synthetic label: an FR metric or the documented fusion, oriented higher-is-better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    Metric(FrMetric),
    /// (SSIM + (1 − GMSD)) / 2.
    Fused,
}

/// The default `--score` (see the module doc for how it was chosen).
pub const DEFAULT_SCORE: Score = Score::Fused;

/// PSNR of identical images is infinite; labels must be finite.
pub const PSNR_CAP: f64 = 100.0;

impl Score {
    pub fn name(&self) -> &'static str {
        match self {
            Score::Metric(m) => m.name(),
            Score::Fused => "fused",
        }
    }

    /// The metrics this score needs.
    pub fn metrics(&self) -> Vec<FrMetric> {
        match self {
            Score::Metric(m) => vec![*m],
            Score::Fused => vec![FrMetric::Ssim, FrMetric::Gmsd],
        }
    }

    /// Higher-is-better label of `distorted` against `reference`.
    pub fn compute(&self, reference: &RgbImage, distorted: &RgbImage) -> Result<f64, fr::FrError> {
        Ok(match self {
            Score::Metric(m) => oriented(*m, m.compute(reference, distorted)?),
            Score::Fused => {
                let s = fr::ssim(reference, distorted)?;
                let g = fr::gmsd(reference, distorted)?;
                0.5 * (s + (1.0 - g))
            }
        })
    }

    /// Checks that every reference size can be scored (MS-SSIM needs ≥ 176 px per side).
    pub fn check_size(&self, name: &str, width: u32, height: u32) -> Result<()> {
        let min = self
            .metrics()
            .iter()
            .map(|m| min_side(*m))
            .max()
            .unwrap_or(1);
        if (width as usize) < min || (height as usize) < min {
            bail!(
                "--score {}: {name} is {width}x{height} px, but {} needs at least {min}x{min} px \
                 (the embedded references are 128x128: use --score ssim, gmsd, psnr or fused)",
                self.name(),
                self.name()
            );
        }
        Ok(())
    }
}

/// The smallest side a metric accepts.
pub fn min_side(m: FrMetric) -> usize {
    match m {
        FrMetric::MsSsim => fr::MS_SSIM_MIN_SIDE,
        FrMetric::Ssim => 11,
        FrMetric::Gmsd => 3,
        FrMetric::Psnr => 1,
    }
}

/// A metric value turned into a finite higher-is-better label: 1 − GMSD, PSNR capped.
pub fn oriented(m: FrMetric, v: f64) -> f64 {
    match m {
        FrMetric::Gmsd => 1.0 - v,
        FrMetric::Psnr => v.min(PSNR_CAP),
        _ => v,
    }
}

impl FromStr for Score {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "fused" | "ssim+gmsd" => Ok(Score::Fused),
            _ => FrMetric::from_str(&t).map(Score::Metric).map_err(|_| {
                anyhow::anyhow!(
                    "unknown --score '{s}': expected psnr, ssim, ms-ssim, gmsd or fused"
                )
            }),
        }
    }
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Folder of pristine reference images (every file `image` can decode, sorted by name).
    #[arg(
        long,
        conflicts_with = "embedded",
        required_unless_present = "embedded"
    )]
    pub references: Option<PathBuf>,
    /// Use the six 128x128 Kodak references compiled into normiqa (no download).
    #[arg(long)]
    pub embedded: bool,
    /// Output folder (images/, references/, labels.csv).
    #[arg(long)]
    pub out: PathBuf,
    /// Distortion types: `all` or a comma list of names or KADID ids (e.g. gaussian_blur,jpeg,11).
    #[arg(long, default_value = "all")]
    pub distortions: String,
    /// Levels, a comma list in 1..=5.
    #[arg(long, default_value = "1,2,3,4,5")]
    pub levels: String,
    /// Base seed of the random distortions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Label: psnr, ssim, ms-ssim, gmsd (stored as 1 − GMSD) or fused ((SSIM + 1 − GMSD)/2).
    #[arg(long, default_value = "fused", value_parser = super::args::named::<String>(["psnr", "ssim", "ms-ssim", "gmsd", "fused"]))]
    pub score: String,
    /// Also score every image with all FR metrics: OUT/fr_scores.csv and a per-type table of
    /// each metric's SROCC with the distortion level.
    #[arg(long)]
    pub fr_report: bool,
    /// Print the summary (and the --fr-report table) as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--distortions`.
pub fn parse_distortions(s: &str) -> Result<Vec<Distortion>> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Distortion::ALL.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: Distortion = part
            .parse()
            .map_err(|e| anyhow::anyhow!("--distortions: {e}"))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() {
        bail!("--distortions '{s}': no distortion type given");
    }
    Ok(out)
}

/// Parses `--levels`.
pub fn parse_levels(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let l: u8 = part
            .parse()
            .with_context(|| format!("--levels: '{part}' is not a level"))?;
        if !(1..=5).contains(&l) {
            bail!("--levels: {l} is out of range 1..=5");
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        bail!("--levels '{s}': no level given");
    }
    Ok(out)
}

/// The image files of a folder (by extension), sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    const EXT: [&str; 9] = [
        "png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "ppm", "pgm",
    ];
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXT.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Generates the dataset (the library entry point of the subcommand). `references` are image
/// files; returns the records as written to `out/labels.csv`.
pub fn generate(
    references: &[PathBuf],
    out: &Path,
    opts: &GenerateOptions,
    score: Score,
) -> Result<Vec<SynthRecord>> {
    if references.is_empty() {
        bail!("no reference images");
    }
    for r in references {
        let (w, h) = image::image_dimensions(r)
            .with_context(|| format!("reading reference {}", r.display()))?;
        score.check_size(&r.display().to_string(), w, h)?;
    }
    // One step per generated image (a bar on a terminal only).
    let total = references.len() * opts.distortions.len() * opts.levels.len();
    let bar = crate::progress::bar(total as u64, "synth");
    let step = bar.clone();
    let closure = move |a: &RgbImage, b: &RgbImage| -> f64 {
        let s = score.compute(a, b).unwrap_or(f64::NAN);
        step.inc(1);
        s
    };
    let records = synth::generate(references, out, opts, &closure);
    bar.finish_and_clear();
    let records = records?;
    if let Some(r) = records.iter().find(|r| !r.score.is_finite()) {
        bail!("--score {}: no finite score for {}", score.name(), r.image);
    }
    Ok(records)
}

/// The generated images identical to their reference, per distortion type and level:
/// ("quantization level 1", count), in generation order.
pub fn identical_counts(records: &[SynthRecord]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in records.iter().filter(|r| r.identical) {
        let key = format!("{} level {}", r.distortion.name(), r.level);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => out.push((key, 1)),
        }
    }
    out
}

/// What to tell the user when some generated images are identical to their reference.
pub fn identical_warning(records: &[SynthRecord]) -> Option<String> {
    let counts = identical_counts(records);
    let n: usize = counts.iter().map(|c| c.1).sum();
    if n == 0 {
        return None;
    }
    let first = records.iter().find(|r| r.identical).map(|r| (r.image.as_str(), r.score)).expect("one at least");
    let list: Vec<String> = counts.iter().take(6).map(|(k, c)| format!("{k}: {c}")).collect();
    let more = if counts.len() > 6 { format!(" and {} more", counts.len() - 6) } else { String::new() };
    Some(format!(
        "{n} of the {} generated images are identical to their reference ({}{more}), so their label is that of an undistorted image (e.g. {} = {}); drop those levels with --levels or keep them as pristine anchors",
        records.len(),
        list.join(", "),
        first.0,
        first.1
    ))
}

/// One row of `fr_scores.csv`: every metric (raw values, GMSD lower-is-better) of one image.
#[derive(Clone, Debug)]
pub struct FrRow {
    pub image: String,
    pub reference: String,
    pub distortion: Distortion,
    pub level: u8,
    /// In [`FrMetric::ALL`] order; NaN where the metric cannot score the image size.
    pub values: [f64; 4],
}

/// Scores every generated image with all FR metrics (in parallel) and writes `out/fr_scores.csv`.
pub fn fr_scores(out: &Path, records: &[SynthRecord]) -> Result<Vec<FrRow>> {
    let rows: Vec<FrRow> = records
        .par_iter()
        .map(|r| {
            let a = image::open(out.join(&r.reference))
                .with_context(|| format!("reading {}", r.reference))?
                .to_rgb8();
            let b = image::open(out.join(&r.image))
                .with_context(|| format!("reading {}", r.image))?
                .to_rgb8();
            let mut values = [f64::NAN; 4];
            for (v, m) in values.iter_mut().zip(FrMetric::ALL) {
                *v = m
                    .compute(&a, &b)
                    .map(|x| {
                        if m == FrMetric::Psnr {
                            x.min(PSNR_CAP)
                        } else {
                            x
                        }
                    })
                    .unwrap_or(f64::NAN);
            }
            Ok(FrRow {
                image: r.image.clone(),
                reference: r.reference.clone(),
                distortion: r.distortion,
                level: r.level,
                values,
            })
        })
        .collect::<Result<_>>()?;
    let path = out.join("fr_scores.csv");
    let mut w =
        csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record([
        "image",
        "reference",
        "distortion",
        "level",
        "psnr",
        "ssim",
        "ms_ssim",
        "gmsd",
    ])?;
    for r in &rows {
        let mut rec = vec![
            r.image.clone(),
            r.reference.clone(),
            r.distortion.name().to_string(),
            r.level.to_string(),
        ];
        rec.extend(r.values.iter().map(|v| v.to_string()));
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(rows)
}

/// Per distortion type, the SROCC of each candidate label (higher-is-better orientation:
/// PSNR, SSIM, MS-SSIM, 1 − GMSD, fused) with `−level`, pooled over references. NaN where
/// undefined (e.g. MS-SSIM on small images, or a constant label).
pub fn level_agreement(rows: &[FrRow]) -> Vec<(Distortion, [f64; 5])> {
    let mut types: Vec<Distortion> = rows.iter().map(|r| r.distortion).collect();
    types.sort();
    types.dedup();
    types
        .into_iter()
        .map(|d| {
            let sel: Vec<&FrRow> = rows.iter().filter(|r| r.distortion == d).collect();
            let neg_level: Vec<f64> = sel.iter().map(|r| -(r.level as f64)).collect();
            let label = |k: usize| -> Vec<f64> {
                sel.iter()
                    .map(|r| match k {
                        4 => 0.5 * (r.values[1] + 1.0 - r.values[3]),
                        k => oriented(FrMetric::ALL[k], r.values[k]),
                    })
                    .collect()
            };
            let mut s = [f64::NAN; 5];
            for (k, v) in s.iter_mut().enumerate() {
                let x = label(k);
                if x.iter().all(|v| v.is_finite()) {
                    *v = normiqa_core::metrics::srocc(&x, &neg_level).unwrap_or(f64::NAN);
                }
            }
            (d, s)
        })
        .collect()
}

pub const AGREEMENT_COLUMNS: [&str; 5] = ["psnr", "ssim", "ms-ssim", "1-gmsd", "fused"];

/// Prints [`level_agreement`] as a table with a mean and minimum row.
pub fn print_level_agreement(table: &[(Distortion, [f64; 5])]) -> Result<()> {
    crate::outln!("SROCC of each label with the distortion level (pooled over references; higher level = worse):")?;
    crate::out!("  {:<28}", "distortion")?;
    for c in AGREEMENT_COLUMNS {
        crate::out!(" {c:>8}")?;
    }
    crate::outln!()?;
    for (d, s) in table {
        crate::out!("  {:<28}", d.name())?;
        for v in s {
            crate::out!(" {v:>8.4}")?;
        }
        crate::outln!()?;
    }
    for (what, row) in [("mean", agreement_mean(table)), ("min", agreement_min(table))] {
        crate::out!("  {what:<28}")?;
        for v in row {
            crate::out!(" {v:>8.4}")?;
        }
        crate::outln!()?;
    }
    Ok(())
}

/// The values of column `k` of the table, if every type has one.
fn agreement_column(table: &[(Distortion, [f64; 5])], k: usize) -> Option<Vec<f64>> {
    let vals: Vec<f64> = table.iter().map(|(_, s)| s[k]).filter(|v| v.is_finite()).collect();
    (vals.len() == table.len() && !vals.is_empty()).then_some(vals)
}

/// The mean over types of each column of [`level_agreement`] (NaN where a type has none).
pub fn agreement_mean(table: &[(Distortion, [f64; 5])]) -> [f64; 5] {
    std::array::from_fn(|k| {
        agreement_column(table, k).map_or(f64::NAN, |v| v.iter().sum::<f64>() / v.len() as f64)
    })
}

/// The minimum over types of each column of [`level_agreement`] (NaN where a type has none).
pub fn agreement_min(table: &[(Distortion, [f64; 5])]) -> [f64; 5] {
    std::array::from_fn(|k| {
        agreement_column(table, k).map_or(f64::NAN, |v| v.iter().copied().fold(f64::INFINITY, f64::min))
    })
}

/// [`level_agreement`] as JSON: per type, then mean and min, each keyed by label (`null`: none).
fn agreement_json(table: &[(Distortion, [f64; 5])]) -> serde_json::Value {
    let row = |s: &[f64; 5]| -> serde_json::Value {
        AGREEMENT_COLUMNS
            .iter()
            .zip(s)
            .map(|(c, v)| (c.to_string(), serde_json::json!(v.is_finite().then_some(*v))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let per_type: serde_json::Map<_, _> =
        table.iter().map(|(d, s)| (d.name().to_string(), row(s))).collect();
    serde_json::json!({
        "per_type": per_type,
        "mean": row(&agreement_mean(table)),
        "min": row(&agreement_min(table)),
    })
}

pub fn run(args: SynthArgs) -> Result<()> {
    let score: Score = args.score.parse()?;
    let opts = GenerateOptions {
        distortions: parse_distortions(&args.distortions)?,
        levels: parse_levels(&args.levels)?,
        seed: args.seed,
        ..Default::default()
    };
    let references = if args.embedded {
        synth::write_embedded_references(&args.out.join("embedded"))?
    } else {
        let dir = args
            .references
            .as_ref()
            .expect("clap: --references or --embedded");
        crate::output::refuse_dir_over_inputs("--out", &args.out, [("reference folder", dir.as_path())])?;
        let v = list_images(dir)?;
        if v.is_empty() {
            bail!("--references {}: no image files found", dir.display());
        }
        v
    };
    let t0 = Instant::now();
    let records = generate(&references, &args.out, &opts, score)?;
    let secs = t0.elapsed().as_secs_f64();
    let labels = args.out.join("labels.csv");
    let report = if args.fr_report {
        let t1 = Instant::now();
        let rows = fr_scores(&args.out, &records)?;
        Some((rows.len(), t1.elapsed().as_secs_f64(), level_agreement(&rows)))
    } else {
        None
    };
    let fr_file = args.out.join("fr_scores.csv");
    if args.json {
        let fr = report.as_ref().map(|(n, s, table)| {
            serde_json::json!({"images": n, "seconds": s, "file": fr_file, "srocc_with_level": agreement_json(table)})
        });
        let names: Vec<&str> = opts.distortions.iter().map(|d| d.name()).collect();
        let doc = serde_json::json!({
            "out": args.out, "labels": labels, "images": records.len(),
            "references": references.len(), "distortions": names, "levels": opts.levels,
            "label": score.name(), "seconds": secs, "fr_report": fr,
            "identical_to_reference": identical_counts(&records).into_iter().map(|(k, n)| serde_json::json!({"what": k, "images": n})).collect::<Vec<_>>(),
        });
        return crate::outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    crate::outln!(
        "generated {} images ({} references x {} distortions x {} levels) in {:.1} s ({} threads), label: {}",
        records.len(),
        references.len(),
        opts.distortions.len(),
        opts.levels.len(),
        secs,
        rayon::current_num_threads(),
        score.name()
    )?;
    crate::outln!("labels: {}", labels.display())?;
    if let Some(w) = identical_warning(&records) {
        crate::outln!("note: {w}")?;
    }
    crate::outln!(
        "train:  normiqa train --dataset csv --labels {} --images {} --mos-column score --split by-reference --train-ratio 0.8 --train-val-ratio 0.8",
        labels.display(),
        args.out.display()
    )?;
    if let Some((n, s, table)) = &report {
        crate::outln!(
            "scored {n} images with all FR metrics in {s:.1} s: {}",
            fr_file.display()
        )?;
        print_level_agreement(table)?;
    }
    Ok(())
}
