//! `normiqa predict`: the mapped quality score (fused head, k·ŷ+b on the MOS scale of the training
//! data) of every image given, or found in the folders given. Images are decoded in parallel in
//! chunks and run in batches of same-size images; an unreadable image is reported and skipped, the
//! others are still scored (the exit status is then non-zero).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rayon::prelude::*;

use super::args::parse_device;
use crate::train::{self, Inputs};
use normiqa_core::data::decode::{decode_one, Resize};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files and/or folders (searched recursively for jpg, jpeg, png, bmp, webp, tif, tiff).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Run directory of a trained model. Default: the model shipped with normiqa
    /// (models/clive-efficientnet-lite0), or $NORMIQA_MODEL.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pretrained backbone weights, if not found automatically.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Also print the raw outputs of the three heads.
    #[arg(long)]
    pub all_heads: bool,
    /// Resize every image to H W before scoring (default: native size, as the reference demo).
    #[arg(long, num_args = 2, value_names = ["H", "W"], conflicts_with = "max_side")]
    pub resize: Option<Vec<u32>>,
    /// Downscale images whose longer side exceeds N pixels to N, keeping the aspect ratio
    /// (antialiased bilinear, as PIL; smaller images are left as they are). Bounds time and
    /// memory for large photos: e.g. 1024.
    #[arg(long, value_name = "N")]
    pub max_side: Option<u32>,
    /// Images per forward pass; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
    /// Images decoded per chunk (memory bound).
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

/// Shown under `normiqa predict --help`: what the numbers mean.
pub const SCORE_HELP: &str =
    "Scores are on the MOS scale of the model's training data (its k·ŷ+b mapping). \
The shipped default model (models/clive-efficientnet-lite0) gives CLIVE MOS: about 0-100, higher \
is better (CLIVE photos range from about 3 to 92). It was trained on 500x500 photos: images under \
128 px on a side score unreliably (a warning says so), and images over 2000 px are slow and need \
gigabytes at native size (a warning suggests --max-side).";

/// Sides (pixels) beyond which a warning says the image is far from what the model was trained on.
const TINY_SIDE: u32 = 128;
const HUGE_SIDE: u32 = 2000;

/// Expands folders into their image files (sorted), keeps files as given.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("no such file or folder: {}", p.display());
        }
    }
    Ok(out)
}

/// Writes rows as they are scored: CSV records, or the elements of one JSON array.
/// The same names in both: `image`, `score` and, with --all-heads, `head6`, `head7`, `fused`.
struct RowWriter {
    csv: Option<csv::Writer<Box<dyn Write>>>,
    json: Option<Box<dyn Write>>,
    n: usize,
}

impl RowWriter {
    fn new(sink: Box<dyn Write>, format: Format, all_heads: bool) -> Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(sink);
                if all_heads {
                    w.write_record(["image", "score", "head6", "head7", "fused"])?;
                } else {
                    w.write_record(["image", "score"])?;
                }
                RowWriter {
                    csv: Some(w),
                    json: None,
                    n: 0,
                }
            }
            Format::Json => {
                let mut w = sink;
                write!(w, "[")?;
                RowWriter {
                    csv: None,
                    json: Some(w),
                    n: 0,
                }
            }
        })
    }

    fn write(&mut self, r: Row) -> Result<()> {
        if let Some(w) = &mut self.csv {
            let mut rec = vec![r.image.clone(), format!("{:.4}", r.score)];
            if let Some(h) = r.heads {
                rec.extend(
                    [h.head6, h.head7, h.fused]
                        .iter()
                        .map(|v| format!("{v:.6}")),
                );
            }
            w.write_record(&rec)?;
        } else if let Some(w) = &mut self.json {
            write!(
                w,
                "{}\n  {}",
                if self.n == 0 { "" } else { "," },
                serde_json::to_string(&r)?
            )?;
        }
        self.n += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
        } else if let Some(w) = &mut self.json {
            w.flush()?;
        }
        Ok(())
    }

    /// Closes the output (the JSON array's bracket); returns the number of rows written.
    fn finish(mut self) -> Result<usize> {
        if let Some(w) = &mut self.json {
            writeln!(w, "\n]")?;
        }
        self.flush()?;
        Ok(self.n)
    }
}

/// The shipped default model's folder.
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NORMIQA_MODEL") {
        return Some(PathBuf::from(p));
    }
    crate::locate::find(Path::new("models/clive-efficientnet-lite0"), |p| {
        p.join("run.json").exists()
    })
}

#[derive(serde::Serialize)]
struct Row {
    image: String,
    score: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    heads: Option<Heads>,
}

/// The raw outputs of the three heads (before the mapping), named as the CSV columns.
#[derive(serde::Serialize)]
struct Heads {
    head6: f64,
    head7: f64,
    fused: f64,
}

/// "1 image", "3 images".
fn n_images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

/// Where the scores go, for messages.
fn destination(output: &Option<PathBuf>) -> String {
    output
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string())
}

/// The resize rules of the options.
fn resize_rules(args: &PredictArgs) -> Result<Vec<Resize>> {
    Ok(match (&args.resize, args.max_side) {
        (Some(v), _) if v.len() == 2 && v[0] > 0 && v[1] > 0 => {
            vec![Resize::Exact { h: v[0], w: v[1] }]
        }
        (Some(v), _) => bail!(
            "--resize {}: expected two positive numbers H W",
            super::args::numbers(v)
        ),
        (None, Some(0)) => bail!("--max-side 0: expected a positive number of pixels"),
        (None, Some(n)) => vec![Resize::MaxSide { n }],
        (None, None) => vec![],
    })
}

/// Images far from the sizes the model was trained on, for one warning per kind.
#[derive(Default)]
struct SizeWarnings {
    tiny: Vec<String>,
    huge: Vec<String>,
}

impl SizeWarnings {
    /// Notes a decoded image (after the resize rules) whose size is unusual.
    fn note(&mut self, name: &str, im: &image::RgbImage) {
        let (w, h) = im.dimensions();
        let item = format!("{name} ({w}x{h})");
        if w.min(h) < TINY_SIDE {
            self.tiny.push(item);
        } else if w.max(h) > HUGE_SIDE {
            self.huge.push(item);
        }
    }

    fn report(&self) {
        let list = |v: &[String]| {
            let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 3 {
                s.push_str(&format!(" and {} more", v.len() - 3));
            }
            s
        };
        if !self.tiny.is_empty() {
            tracing::warn!(
                "{} under {TINY_SIDE} px on a side: {}. The model saw 500x500 photos in training; scores of such small images are unreliable (they can fall far outside the scale)",
                n_images(self.tiny.len()),
                list(&self.tiny)
            );
        }
        if !self.huge.is_empty() {
            tracing::warn!(
                "{} over {HUGE_SIDE} px on a side: {}. Scored at native size, far larger than the 500x500 photos of training: slow and memory-hungry; --max-side 1024 downscales them first",
                n_images(self.huge.len()),
                list(&self.huge)
            );
        }
    }
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let dir = match &args.model {
        Some(d) => d.clone(),
        None => default_model_dir().context("no --model given and the shipped model (models/clive-efficientnet-lite0) was not found")?,
    };
    let files = collect_images(&args.inputs)?;
    if files.is_empty() {
        let given: Vec<String> = args
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(
            "no images found in {}: give image files or folders holding {} files",
            given.join(", "),
            EXTENSIONS.join("/")
        );
    }
    let tm = train::TrainedModel::load(&dir, device, args.weights.as_deref())?;
    let rules = resize_rules(&args)?;
    tracing::info!("scores: {}", tm.info.score_scale());
    let dest = destination(&args.output);
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let writing = || format!("writing the scores to {dest}");
    let mut out = RowWriter::new(sink, args.format, args.all_heads).with_context(writing)?;
    let mut failures = Vec::new();
    let mut sizes = SizeWarnings::default();
    let t0 = std::time::Instant::now();
    for chunk in files.chunks(args.chunk.max(1)) {
        let decoded: Vec<_> = chunk.par_iter().map(|p| decode_one(p, &rules)).collect();
        let mut images = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        for (p, r) in chunk.iter().zip(decoded) {
            match r {
                Ok(im) => {
                    let name = p.display().to_string();
                    if args.resize.is_none() {
                        sizes.note(&name, &im);
                    }
                    images.push(im);
                    names.push(name);
                }
                Err(e) => failures.push(format!("{}: {e}", p.display())),
            }
        }
        let idx: Vec<usize> = (0..images.len()).collect();
        let heads = train::predict(
            &tm.model,
            &Inputs::Images(&images),
            &idx,
            crate::train::config::eval_batch_size(args.batch_size, device),
            device,
        )?;
        let mapped = tm.info.mapping[2].apply(&heads[2]);
        for (i, name) in names.into_iter().enumerate() {
            out.write(Row {
                image: name,
                score: mapped[i],
                heads: args.all_heads.then(|| Heads {
                    head6: heads[0][i],
                    head7: heads[1][i],
                    fused: heads[2][i],
                }),
            })
            .with_context(writing)?;
        }
        // Each chunk's scores are on disk before the next chunk is decoded: an interrupted run
        // over thousands of files keeps everything scored so far.
        out.flush().with_context(writing)?;
    }
    let n = out.finish().with_context(writing)?;
    sizes.report();
    tracing::info!(
        "scored {} in {:.2} s ({:.1} images/s)",
        n_images(n),
        t0.elapsed().as_secs_f64(),
        n as f64 / t0.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "{} image(s) could not be scored:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}
