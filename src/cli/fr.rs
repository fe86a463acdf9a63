//! `normiqa fr`: full-reference metrics (PSNR, SSIM, MS-SSIM, GMSD; see [`normiqa_core::fr`]) of
//! a distorted image against its reference, or of every image of a folder against a reference
//! folder.
//!
//! Folder pairing: each file of `--dist` is paired with the file of `--ref` of the same name;
//! failing that, with the reference whose stem is the distorted stem without a KADID-style
//! `_<dd>_<l>` suffix (so `normiqa fr --ref OUT/references --dist OUT/images` works on a
//! `normiqa synth` output). Unpaired files are reported and skipped.
//!
//! Values are the metrics' own (GMSD is lower-is-better, the others higher-is-better). A metric
//! that cannot score an image (MS-SSIM below 176×176 px) gives `null` in JSON and `-` in the table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use normiqa_core::data::decode::{decode_one, DecodeOptions};
use normiqa_core::fr::{FrMetric, SsimMode, SsimOptions};
use rayon::prelude::*;

#[derive(Args, Debug)]
pub struct FrArgs {
    /// Reference image, or folder of reference images.
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// Distorted image, or folder of distorted images (paired by file name).
    #[arg(long)]
    pub dist: PathBuf,
    /// `all` or a comma list of psnr, ssim, ms-ssim, gmsd.
    #[arg(long, default_value = "all")]
    pub metric: String,
    /// Which SSIM: `pyiqa` (default; what IQA papers report: YIQ luma, no downsampling) or
    /// `matlab` (the authors' ssim.m: rgb2gray, automatic downsampling by round(min(H,W)/256)).
    #[arg(long, default_value = "pyiqa", value_parser = super::args::named::<SsimMode>(["pyiqa", "matlab"]))]
    pub ssim_mode: SsimMode,
    /// Print the metrics as one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub images: super::args::ImageArgs,
}

/// Parses `--metric`.
pub fn parse_metrics(s: &str) -> Result<Vec<FrMetric>> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(FrMetric::ALL.to_vec());
    }
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let m: FrMetric = p.parse().map_err(|e| anyhow::anyhow!("--metric: {e}"))?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        bail!("--metric '{s}': no metric given");
    }
    Ok(out)
}

/// One scored pair: metric values in the order asked (`None`: the metric cannot score it).
#[derive(Debug, Clone)]
pub struct FrPair {
    pub reference: PathBuf,
    pub distorted: PathBuf,
    pub values: Vec<Option<f64>>,
    /// Why a metric gave no value (the first such error).
    pub note: Option<String>,
}

/// Scores one pair of files (SSIM as [`SsimOptions::default`]; decoded as `decode_one` does, so
/// truncated files and images over the pixel limit are refused unless `opts` allows them).
pub fn score_pair(
    reference: &Path,
    distorted: &Path,
    metrics: &[FrMetric],
    opts: &DecodeOptions,
) -> Result<FrPair> {
    score_pair_with(reference, distorted, metrics, opts, &SsimOptions::default())
}

/// [`score_pair`] with the SSIM variant given.
pub fn score_pair_with(
    reference: &Path,
    distorted: &Path,
    metrics: &[FrMetric],
    opts: &DecodeOptions,
    ssim: &SsimOptions,
) -> Result<FrPair> {
    let a = decode_one(reference, &[], opts)?;
    let b = decode_one(distorted, &[], opts)?;
    if a.dimensions() != b.dimensions() {
        bail!(
            "{} is {}x{} but its reference {} is {}x{}",
            distorted.display(),
            b.width(),
            b.height(),
            reference.display(),
            a.width(),
            a.height()
        );
    }
    // Every metric's note is kept (an identical pair's infinite PSNR and MS-SSIM's size limit
    // can both apply), each once.
    let mut notes: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !notes.contains(&n) {
            notes.push(n);
        }
    };
    let values = metrics
        .iter()
        .map(|m| match m.compute_with(&a, &b, ssim) {
            Ok(v) if v.is_infinite() => {
                add("identical to its reference: PSNR is infinite (null in JSON)".to_string());
                Some(v)
            }
            Ok(v) => Some(v),
            Err(e) => {
                add(e.to_string());
                None
            }
        })
        .collect();
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(FrPair {
        reference: reference.to_path_buf(),
        distorted: distorted.to_path_buf(),
        values,
        note,
    })
}

/// The mean of each metric over the pairs it scored with a finite value, and how many it scored
/// infinite (PSNR of a pair identical to its reference), which the mean leaves out: one such
/// pair would make the mean infinite and hide the others.
pub fn means(scored: &[FrPair], n_metrics: usize) -> (Vec<Option<f64>>, Vec<usize>) {
    (0..n_metrics)
        .map(|k| {
            let all: Vec<f64> = scored.iter().filter_map(|p| p.values[k]).collect();
            let v: Vec<f64> = all.iter().copied().filter(|x| x.is_finite()).collect();
            let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            (mean, all.len() - v.len())
        })
        .unzip()
}

/// The stem without a KADID-style `_<dd>_<l>` suffix (`kodim01_09_3` → `kodim01`).
pub fn kadid_reference_stem(stem: &str) -> Option<&str> {
    let mut parts = stem.rsplitn(3, '_');
    let (l, d, r) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    (digits(l) && digits(d) && !r.is_empty()).then_some(r)
}

/// `(reference, distorted)` file pairs.
pub type Pairs = Vec<(PathBuf, PathBuf)>;

/// Pairs the files of two folders (see the module doc). Returns the pairs (in distorted-name
/// order) and the distorted files without a reference.
pub fn pair_folders(ref_dir: &Path, dist_dir: &Path) -> Result<(Pairs, Vec<PathBuf>)> {
    let refs = super::synth::list_images(ref_dir)?;
    let by_name: HashMap<String, &PathBuf> = refs
        .iter()
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect();
    let by_stem: HashMap<String, &PathBuf> = refs
        .iter()
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    let (mut pairs, mut unpaired) = (Vec::new(), Vec::new());
    for d in super::synth::list_images(dist_dir)? {
        let name = d.file_name().and_then(|s| s.to_str()).unwrap_or("");
        let stem = d.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let r = by_name
            .get(name)
            .or_else(|| kadid_reference_stem(stem).and_then(|s| by_stem.get(s)));
        match r {
            Some(r) => pairs.push(((*r).clone(), d)),
            None => unpaired.push(d),
        }
    }
    Ok((pairs, unpaired))
}

pub fn run(args: FrArgs) -> Result<()> {
    let metrics = parse_metrics(&args.metric)?;
    let decoding = args.images.options();
    let (pairs, unpaired) = match (args.reference.is_dir(), args.dist.is_dir()) {
        (false, false) => (vec![(args.reference.clone(), args.dist.clone())], vec![]),
        (true, true) => pair_folders(&args.reference, &args.dist)?,
        _ => bail!("--ref and --dist must both be files or both be folders"),
    };
    if pairs.is_empty() {
        bail!(
            "no pair of images to score ({} distorted files without a reference)",
            unpaired.len()
        );
    }
    let bar = crate::progress::bar(pairs.len() as u64, "fr");
    let scored: Result<Vec<FrPair>> = pairs
        .par_iter()
        .map(|(r, d)| score_pair_with(r, d, &metrics, &decoding, &args.ssim_mode.options()))
        .inspect(|_| bar.inc(1))
        .collect::<Result<_>>();
    bar.finish_and_clear();
    let scored = scored?;
    let (means, infinite) = means(&scored, metrics.len());
    let psnr = metrics.iter().position(|m| *m == FrMetric::Psnr);
    let identical = psnr.map_or(0, |k| infinite[k]);
    let scores = Scores { metrics: &metrics, scored: &scored, means: &means, identical, unpaired: &unpaired };
    if args.json {
        return print_json(&args, &scores);
    }
    print_table(&args, &scores)
}

/// What `normiqa fr` scored, to print.
struct Scores<'a> {
    metrics: &'a [FrMetric],
    scored: &'a [FrPair],
    /// Per metric, over the pairs (PSNR: over the pairs that differ).
    means: &'a [Option<f64>],
    /// Pairs identical to their reference (PSNR inf).
    identical: usize,
    /// Distorted files without a reference.
    unpaired: &'a [PathBuf],
}

/// `--json`: one pair's document, or the pairs, their means and the unpaired files.
fn print_json(args: &FrArgs, s: &Scores) -> Result<()> {
    let Scores { metrics, scored, means, identical, unpaired } = *s;
    let obj = |values: &[Option<f64>]| -> serde_json::Value {
        let mut o = serde_json::Map::new();
        for (m, v) in metrics.iter().zip(values) {
            o.insert(m.name().into(), serde_json::json!(v));
        }
        serde_json::Value::Object(o)
    };
    let pairs_json: Vec<_> = scored
        .iter()
        .map(|p| {
            serde_json::json!({"reference": p.reference, "distorted": p.distorted, "metrics": obj(&p.values), "note": p.note})
        })
        .collect();
    let out = if scored.len() == 1 && unpaired.is_empty() && !args.dist.is_dir() {
        pairs_json.into_iter().next().unwrap()
    } else {
        serde_json::json!({"pairs": pairs_json, "mean": obj(means), "identical_pairs": identical, "unpaired": unpaired, "ssim_mode": args.ssim_mode.name()})
    };
    crate::outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

/// A table: one line per pair, the means, then the notes.
fn print_table(args: &FrArgs, s: &Scores) -> Result<()> {
    let Scores { metrics, scored, means, identical, unpaired } = *s;
    let fmt = |v: &Option<f64>| v.map_or_else(|| format!("{:>10}", "-"), |x| format!("{x:>10.4}"));
    let width = scored
        .iter()
        .map(|p| p.distorted.display().to_string().len())
        .max()
        .unwrap_or(5)
        .clamp(5, 60);
    crate::out!("{:<width$}", "image")?;
    for m in metrics {
        crate::out!(" {:>10}", m.name())?;
    }
    crate::outln!()?;
    for p in scored {
        crate::out!("{:<width$}", p.distorted.display().to_string())?;
        for v in &p.values {
            crate::out!(" {}", fmt(v))?;
        }
        crate::outln!()?;
    }
    if scored.len() > 1 {
        crate::out!("{:<width$}", format!("mean ({})", scored.len()))?;
        for v in means {
            crate::out!(" {}", fmt(v))?;
        }
        crate::outln!()?;
        if identical > 0 {
            crate::outln!(
                "{identical} of the {} pairs are identical to their reference (PSNR inf): the mean PSNR is over the other {}",
                scored.len(),
                scored.len() - identical
            )?;
        }
    }
    if let Some(n) = scored.iter().find_map(|p| p.note.as_ref()) {
        crate::outln!("note: {n}")?;
    }
    if !unpaired.is_empty() {
        crate::outln!(
            "{} distorted files without a reference were skipped (first: {})",
            unpaired.len(),
            unpaired[0].display()
        )?;
    }
    crate::outln!(
        "(psnr: dB, higher is better; ssim ({}), ms-ssim: higher is better; gmsd: lower is better)",
        args.ssim_mode.name()
    )?;
    Ok(())
}
